"""Step-wise attribution of generated text: ``explain(model, prompt, method=...)``.

The sequence is ``prompt + continuation``. The continuation is generated greedily (default),
forced (``continuation="..."``), or absent when a fixed ``target`` token / label word is explained
at the end of the prompt. Each continuation token ``y_j`` at position ``j`` becomes one
:class:`~gradellm_lens.targets.Step` explained over its whole prefix ``tokens[:j]`` (prompt and
earlier generated tokens), exactly as the generating forward pass saw it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch

from .errors import InvalidInputError
from .methods.base import AttributionMethod, make_method
from .models.capabilities import model_info
from .result import AttributionResult, library_versions
from .targets import ObjectiveKind, Step, Target
from .typing import TokenIds

Prompt = str | Sequence[int] | torch.Tensor


def encode_prompt(model, prompt: Prompt, *, chat_template: bool = False, system: str | None = None) -> TokenIds:
    """Token ids of ``prompt``.

    A string is wrapped in the model's chat template (user turn + generation prompt) when
    ``chat_template`` is true, else tokenized with the model's default BOS policy. Token ids are
    taken as given. Empty or whitespace-only text raises.
    """
    tokenizer = model.tokenizer
    if isinstance(prompt, str):
        if not prompt.strip():
            raise InvalidInputError("The prompt is empty (or only whitespace): there is nothing to attribute.")
        if chat_template:
            if not getattr(tokenizer, "chat_template", None):
                raise InvalidInputError("This model's tokenizer has no chat template; pass chat_template=False.")
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": prompt}
            ]
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            if not isinstance(ids, list):  # BatchEncoding in recent transformers
                ids = ids["input_ids"]
            ids = torch.tensor(ids, dtype=torch.long)
        else:
            ids = model.to_tokens(prompt)[0].cpu()
    else:
        ids = torch.as_tensor(prompt, dtype=torch.long).flatten().cpu()
    if ids.numel() == 0:
        raise InvalidInputError("The prompt has no tokens: there is nothing to attribute.")
    info = model_info(model)
    if ids.shape[0] > info.n_ctx:
        raise InvalidInputError(
            f"The prompt has {ids.shape[0]} tokens, longer than the model's context of {info.n_ctx}; shorten it."
        )
    return ids


def _single_token(model, text: str | int, what: str) -> int:
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    ids = model.tokenizer(str(text), add_special_tokens=False)["input_ids"]
    if not ids:
        raise InvalidInputError(f"The {what} {text!r} encodes to no tokens.")
    if len(ids) > 1:
        pieces = model.tokenizer.convert_ids_to_tokens(ids)
        warnings.warn(f"The {what} {text!r} is {len(ids)} tokens {pieces}; explaining its first token only.", stacklevel=3)
    return int(ids[0])


@torch.no_grad()
def greedy_continuation(model, ids: TokenIds, max_new_tokens: int, stop_at_eos: bool = True) -> TokenIds:
    """Greedy decoding with full-prefix forwards (the same forward the attribution differentiates)."""
    if max_new_tokens < 1:
        raise InvalidInputError(f"max_new_tokens must be at least 1, got {max_new_tokens}.")
    info = model_info(model)
    eos = getattr(model.tokenizer, "eos_token_id", None)
    device = next(model.parameters()).device
    seq = ids.to(device)
    new: list[int] = []
    for _ in range(min(max_new_tokens, info.n_ctx - seq.shape[0])):
        logits = model(seq[None])[0, -1]
        if not torch.isfinite(logits).all():
            raise InvalidInputError("The model produced non-finite logits while generating.")
        nxt = int(logits.argmax())
        new.append(nxt)
        seq = torch.cat([seq, seq.new_tensor([nxt])])
        if stop_at_eos and eos is not None and nxt == eos:
            break
    return torch.tensor(new, dtype=torch.long)


def build_steps(
    prompt_length: int,
    sequence: TokenIds,
    *,
    target: int | None = None,
    contrast: int | None = None,
    objective: ObjectiveKind = "logit",
) -> list[Step]:
    """Steps for a sequence: one per continuation token, or one fixed-target step after the prompt."""
    if target is not None:
        return [Step(prompt_length - 1, Target(target, contrast, objective))]
    return [
        Step(j - 1, Target(int(sequence[j]), contrast, objective)) for j in range(prompt_length, sequence.shape[0])
    ]


def explain(
    model,
    prompt: Prompt | Sequence[str],
    method: str | AttributionMethod = "grad_ellm",
    *,
    max_new_tokens: int = 10,
    continuation: str | Sequence[int] | None = None,
    target: str | int | None = None,
    contrast: str | int | None = None,
    objective: ObjectiveKind = "logit",
    chat_template: bool = False,
    system: str | None = None,
    stop_at_eos: bool = True,
    **method_options: Any,
) -> AttributionResult | list[AttributionResult]:
    """Generate (or force) a continuation of ``prompt`` and attribute every token of it.

    Args:
        model: a ``TransformerBridge`` from :func:`gradellm_lens.load_model`.
        prompt: text, token ids, or a list of texts (returns a list of results).
        method: a registered method name (see :func:`gradellm_lens.list_methods`) or instance.
        max_new_tokens: greedy generation length (ignored with ``continuation`` or ``target``).
        continuation: text or ids to force instead of generating.
        target: explain this token / label word (first token) after the prompt instead of a
            continuation: one step.
        contrast: explain ``score(target) - score(contrast)`` at every step.
        objective: ``"logit"`` (default), ``"log_prob"`` or ``"prob"`` of the target.
        chat_template: wrap a text prompt in the model's chat template.
        system: optional system message for the chat template.
        stop_at_eos: stop greedy generation after an end-of-sequence token.
        **method_options: options of the method (e.g. ``variant="reference"``, ``layers=4``).
    """
    if isinstance(prompt, (list, tuple)) and prompt and all(isinstance(p, str) for p in prompt):
        attributor = make_method(method, model, **method_options)
        kwargs = dict(
            max_new_tokens=max_new_tokens, continuation=continuation, target=target, contrast=contrast,
            objective=objective, chat_template=chat_template, system=system, stop_at_eos=stop_at_eos,
        )  # fmt: skip
        return [explain(model, p, attributor, **kwargs) for p in prompt]
    if target is not None and continuation is not None:
        raise InvalidInputError("Pass either target= (one fixed token) or continuation= (forced text), not both.")
    attributor = make_method(method, model, **method_options)
    ids = encode_prompt(model, prompt, chat_template=chat_template, system=system)
    target_id = None if target is None else _single_token(model, target, "target")
    contrast_id = None if contrast is None else _single_token(model, contrast, "contrast")
    if target_id is not None:
        generated = torch.zeros(0, dtype=torch.long)
    elif continuation is not None:
        if isinstance(continuation, str):
            generated = torch.tensor(model.tokenizer(continuation, add_special_tokens=False)["input_ids"])
        else:
            generated = torch.as_tensor(continuation, dtype=torch.long).flatten()
        if generated.numel() == 0:
            raise InvalidInputError("The forced continuation is empty.")
    else:
        generated = greedy_continuation(model, ids, max_new_tokens, stop_at_eos)
    sequence = torch.cat([ids, generated.cpu()])
    steps = build_steps(ids.shape[0], sequence, target=target_id, contrast=contrast_id, objective=objective)
    return attribute_sequence(model, sequence, steps, attributor, prompt_length=ids.shape[0])


def attribute_sequence(
    model, sequence: TokenIds, steps: Sequence[Step], method: AttributionMethod, *, prompt_length: int
) -> AttributionResult:
    """Run ``method`` on prepared ``steps`` and package an :class:`AttributionResult`."""
    out = method.attribute(sequence, steps)
    with torch.no_grad():
        logits = model(sequence[None].to(method.device))[0]
        target_logits = tuple(float(s.target(logits[s.position])) for s in steps)
    description = method.describe()
    return AttributionResult(
        tokens=tuple(model.tokenizer.convert_ids_to_tokens(sequence.tolist())),
        token_ids=sequence.cpu(),
        prompt_length=int(prompt_length),
        scores=out.scores,
        step_positions=tuple(s.position for s in steps),
        target_ids=tuple(s.target.token_id for s in steps),
        contrast_ids=tuple(s.target.contrast_id for s in steps),
        target_logits=target_logits,
        method=method.method_name,
        variant=description.pop("variant", None),
        options=description,
        model=model_info(model).name,
        layer_head=out.layer_head,
        layers=out.layers,
        objective=steps[0].target.objective,
        versions=library_versions(),
    )
