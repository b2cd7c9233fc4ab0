"""The rows of the benchmark: what is timed for one model, prompt length ``L`` and ``T`` steps.

Every case is a zero-argument callable built outside the timed region (method objects, scores
that a metric needs, embeddings layers), so only the work a user waits for is measured.

``floor``
    The reference cost: one forward through the bridge over the sequence (``tokens[: last step +
    1]``) and one ``torch.autograd.grad`` of the last step's target logit with respect to the
    output of ``hook_embed`` (the token embeddings): a full backward through every layer to the
    input, without parameter gradients. The unembedding runs at the explained position only (a
    hook slices its input), as our methods do, so that the floor is the least work of one exact
    input gradient rather than of a plain ``model(tokens)`` call, which also computes the
    ``[pos, vocab]`` logits of every position. Every row's ratio is to this.
``floor[hook_z last]``
    The same forward, backward only to the last layer's ``attn.hook_z``: the least any method that
    needs the last layer's gradient can cost. Default Grad-ELLM (last layer) compares to this.
``floor[HF]``
    A plain forward + backward to the embeddings on the Hugging Face model (no TransformerLens
    bridge, its default attention kernel, logits at every position): what the peers run on.
``forward`` / ``generate``
    A no-grad forward of the sequence, and greedy generation of ``T`` tokens with
    :func:`gradellm_lens.attribute.greedy_continuation` (full-prefix forwards), for context.
``grad_ellm`` rows
    Default options, ``layers="all"``, and for ``T > 1`` the same with ``share_forward=False``
    (``T`` separate computations, one per prefix) to show the shared-computation speed-up.
``<method>`` rows
    Every other registered method (``list_methods()``) with its default options.
``<row>[full_graph]`` rows ("before")
    Grad-ELLM (default and ``layers="all"``) and attention x gradient with
    ``gradient_path="full_graph"``: one forward with gradients over the sequence and one batched
    backward, the computation that ran before the single-position path existed; and
    ``occlusion[whole]``, occlusion with ``share_head=False`` (every occluded copy run whole, not
    from its batch's first occluded position over the clean prefix's keys/values).
``pi_soft`` rows (``T = 1`` only)
    :func:`gradellm_lens.metrics.evaluate_step` on the last step with Grad-ELLM's scores and the
    default ``FaithfulnessConfig``: ``pi_soft`` as an evaluation runs it (the step's
    :class:`~gradellm_lens.metrics.StepReference` computed once, outside the timed region, shared
    by every method; the unperturbed head of the prefix run once), and ``pi_soft[before]`` (whole
    prefixes, clean and all-masked forwards recomputed: the computation before). With
    :func:`task_pi_soft_cases` the same two on a task prompt with only the user text perturbed.
``captum:<method>`` rows
    captum 0.9's ``Saliency`` / ``InputXGradient`` / ``IntegratedGradients`` (zero baseline,
    Gauss-Legendre, 50 steps, internal batch 16: our IG defaults) on the input embeddings of the
    plain HF model, one attribution per step over its prefix (how captum's LLM wrappers loop).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from gradellm_lens.attribute import greedy_continuation
from gradellm_lens.capture import hook_name, logit_rows_hook
from gradellm_lens.methods import list_methods, make_method

from .inputs import BenchInput

CaseFn = Callable[[], object]
CAPTUM_METHODS = ("saliency", "input_x_gradient", "integrated_gradients")
IG_OPTIONS = {"n_steps": 50, "method": "gausslegendre", "internal_batch_size": 16}


@dataclass(frozen=True)
class Case:
    """One benchmark row for one configuration.

    Attributes:
        name: row label (``floor``, ``grad_ellm[layers=all]``, ``captum:saliency`` ...).
        group: ``floor``, ``context``, ``ours``, ``baseline``, ``metric`` or ``peer``.
        run: the timed callable.
        exempt: never skipped by the time budget (the floors, the no-grad forward and the shared-forward
            Grad-ELLM rows).
        per_step_of: for a row that runs one pass per step, the one-step row whose time bounds each
            pass (used to predict its cost, see :class:`benchmarks.measure.Budget`).
    """

    name: str
    group: str
    run: CaseFn
    exempt: bool = False
    per_step_of: str | None = None


def _device(model) -> torch.device:
    return next(model.parameters()).device


def gradient_pass(model, tokens: torch.Tensor, step, hook: str) -> CaseFn:
    """Forward ``tokens`` through the bridge (logits at the step's position only), then d(target) / d(``hook``)."""
    batch = tokens[None].to(_device(model))

    def run() -> object:
        store = {}

        def keep(x, hook=None):
            store["x"] = x
            return x

        hooks = [(hook, keep), *logit_rows_hook(model, [step.position])[0]]
        with torch.enable_grad(), model.hooks(fwd_hooks=hooks):
            logits = model(batch)
            return torch.autograd.grad(step.target(logits[0, 0]), store["x"])

    return run


def hf_gradient_pass(hf_model, tokens: torch.Tensor, step) -> CaseFn:
    """``floor`` on a plain HF causal LM: forward from the embeddings, gradient w.r.t. them."""
    batch = tokens[None].to(_device(hf_model))
    embed = hf_model.get_input_embeddings()

    def run() -> object:
        with torch.enable_grad():
            emb = embed(batch)
            logits = hf_model(inputs_embeds=emb).logits
            return torch.autograd.grad(step.target(logits[0, step.position]), emb)

    return run


def forward_pass(model, tokens: torch.Tensor) -> CaseFn:
    batch = tokens[None].to(_device(model))

    def run() -> object:
        with torch.no_grad():
            return model(batch)

    return run


def method_call(model, name: str, inp: BenchInput, **options) -> CaseFn:
    """``make_method(name, model, **options).attribute(tokens, steps)`` (the method built once)."""
    method = make_method(name, model, **options)
    return lambda: method.attribute(inp.tokens, inp.steps)


def pi_soft_call(model, prefix: torch.Tensor, step, *, before: bool, perturbable=None, **config) -> CaseFn:
    """π-Soft evaluation of ``step`` with Grad-ELLM's scores (computed here, not timed); see the module doc."""
    from gradellm_lens.metrics import FaithfulnessConfig, evaluate_step, step_reference
    from gradellm_lens.metrics.perturb import BridgeMaskedForward

    scores = make_method("grad_ellm", model).attribute(prefix, [step]).scores[0]
    cfg = FaithfulnessConfig(**config)
    if before:
        whole = BridgeMaskedForward(model, share_head=False)
        return lambda: evaluate_step(whole, prefix, step.target, scores, perturbable=perturbable, config=cfg)
    reference = step_reference(model, prefix, step.target, perturbable=perturbable)
    return lambda: evaluate_step(model, prefix, step.target, scores, perturbable=perturbable, config=cfg, reference=reference)


def task_pi_soft_cases(model, task: str = "sst2", pi_soft: dict | None = None) -> tuple[torch.Tensor, list[Case]]:
    """``floor`` and the π-Soft rows on the first example of ``task`` in the chat format, perturbing
    only its user text (the system prompt and instruction are the unperturbed head)."""
    from gradellm_lens.metrics import span_mask
    from gradellm_lens.targets import Step, Target
    from gradellm_lens.tasks import make_task

    prompts = make_task(task, prompt_format="chat")
    prompted = prompts.prompt(model, next(iter(prompts.load(n=1))))
    ids, (start, end) = prompted.token_ids, prompted.user_spans[0]
    with torch.no_grad():
        step = Step(len(ids) - 1, Target(int(model(ids[None].to(_device(model)))[0, -1].argmax())))
    mask = span_mask(len(ids), start, end)
    name = f"pi_soft[{task} chat, user text]"
    return ids, [
        Case("floor", "floor", gradient_pass(model, ids, step, "hook_embed"), exempt=True),
        Case(name, "metric", pi_soft_call(model, ids, step, before=False, perturbable=mask, **(pi_soft or {}))),
        Case(f"{name}[before]", "before", pi_soft_call(model, ids, step, before=True, perturbable=mask, **(pi_soft or {}))),
    ]


def captum_call(hf_model, inp: BenchInput, method: str) -> CaseFn:
    """captum's ``method`` on the HF model's input embeddings, one call per step (see module doc)."""
    from captum.attr import InputXGradient, IntegratedGradients, Saliency

    embed = hf_model.get_input_embeddings()
    ids = inp.tokens.to(_device(hf_model))

    def last_logit(emb: torch.Tensor, token: int) -> torch.Tensor:
        return hf_model(inputs_embeds=emb).logits[:, -1, token]

    algorithm = {"saliency": Saliency, "input_x_gradient": InputXGradient, "integrated_gradients": IntegratedGradients}
    attr = algorithm[method](last_logit)
    extra = IG_OPTIONS if method == "integrated_gradients" else {}

    def run() -> object:
        out = []
        for step in inp.steps:
            with torch.no_grad():
                emb = embed(ids[None, : step.position + 1])
            baselines = {"baselines": torch.zeros_like(emb)} if extra else {}
            scores = attr.attribute(emb, additional_forward_args=(step.target.token_id,), **baselines, **extra)
            out.append(scores.sum(-1))
        return out

    return run


def build_cases(
    model, inp: BenchInput, *, hf_model=None, pi_soft: dict | None = None, captum: bool = True
) -> list[Case]:
    """Every row for one configuration, floors first.

    Args:
        model: the bridged model.
        inp: the sequence and its steps.
        hf_model: an un-bridged copy for ``floor[HF]`` and the captum rows (rows skipped when None).
        pi_soft: ``FaithfulnessConfig`` overrides for the π-Soft rows (``{}``: defaults), None to skip them.
        captum: add the captum rows.
    """
    last = inp.last_step
    seq = inp.tokens[: last.position + 1]
    n_layers = model.cfg.n_layers
    cases = [
        Case("floor", "floor", gradient_pass(model, seq, last, hook_name("embed")), exempt=True),
        Case("floor[hook_z last]", "floor", gradient_pass(model, seq, last, hook_name("z", n_layers - 1)), True),
    ]
    if hf_model is not None:
        cases.append(Case("floor[HF]", "floor", hf_gradient_pass(hf_model, seq, last), exempt=True))
    prompt = inp.tokens[: inp.prompt_length]
    cases += [
        Case("forward", "context", forward_pass(model, seq), exempt=True),
        Case("generate", "context", lambda: greedy_continuation(model, prompt, inp.n_steps, stop_at_eos=False)),
        Case("grad_ellm", "ours", method_call(model, "grad_ellm", inp), exempt=True),
        Case("grad_ellm[layers=all]", "ours", method_call(model, "grad_ellm", inp, layers="all"), exempt=True),
        *before_cases(model, inp),
    ]
    if inp.n_steps > 1:
        separate = {"share_forward": False}
        cases += [
            Case("grad_ellm[separate]", "ours", method_call(model, "grad_ellm", inp, **separate), per_step_of="grad_ellm"),
            Case(
                "grad_ellm[layers=all,separate]",
                "ours",
                method_call(model, "grad_ellm", inp, layers="all", **separate),
                per_step_of="grad_ellm[layers=all]",
            ),
        ]
    cases += [Case(name, "baseline", method_call(model, name, inp)) for name in list_methods() if name != "grad_ellm"]
    if pi_soft is not None and inp.n_steps == 1:
        prefix = inp.tokens[: last.position + 1]
        cases += [
            Case("pi_soft", "metric", pi_soft_call(model, prefix, last, before=False, **pi_soft)),
            Case("pi_soft[before]", "before", pi_soft_call(model, prefix, last, before=True, **pi_soft)),
        ]
    if captum and hf_model is not None:
        cases += [Case(f"captum:{m}", "peer", captum_call(hf_model, inp, m)) for m in CAPTUM_METHODS]
    return cases


BEFORE_AFTER: tuple[tuple[str, str], ...] = (
    ("grad_ellm", "grad_ellm[full_graph]"),
    ("grad_ellm[layers=all]", "grad_ellm[layers=all,full_graph]"),
    ("attention_x_gradient", "attention_x_gradient[full_graph]"),
    ("occlusion", "occlusion[whole]"),
    ("pi_soft", "pi_soft[before]"),
    ("pi_soft[sst2 chat, user text]", "pi_soft[sst2 chat, user text][before]"),
)  # (after, before) row names


def before_cases(model, inp: BenchInput) -> list[Case]:
    """The rows as they were computed before the frozen-prefix paths: the gradient rows on the full
    graph (``gradient_path="full_graph"``), occlusion on whole copies (``share_head=False``)."""
    full = {"gradient_path": "full_graph"}
    return [
        Case("grad_ellm[full_graph]", "before", method_call(model, "grad_ellm", inp, **full), exempt=True),
        Case("grad_ellm[layers=all,full_graph]", "before", method_call(model, "grad_ellm", inp, layers="all", **full)),
        Case("attention_x_gradient[full_graph]", "before", method_call(model, "attention_x_gradient", inp, **full)),
        Case("occlusion[whole]", "before", method_call(model, "occlusion", inp, share_head=False)),
    ]


@contextmanager
def backward_paths() -> Iterator[list[str]]:
    """Collect the backward path (``single`` / ``vmap`` / ``loop``) of every ``capture_gradients`` call."""
    seen: list[str] = []
    logger = logging.getLogger("gradellm_lens.capture.gradients")

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.msg.startswith("backward path"):
                seen.append(str(record.args[0]))

    handler, level = Collect(logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
