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
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import torch

from .encoding import (
    PROMPT_FORMATS,
    Prompt,
    PromptFormat,
    chat_messages,
    check_prompt_format,
    check_text,
    check_token_ids,
    encode_prompt,
    user_text_span,
    warn_unknown_tokens,
)
from .errors import FlatAttributionWarning, InvalidInputError, LensError, NumericalError
from .methods.base import AttributionMethod, make_method
from .models.capabilities import model_info
from .progress import progress_bar
from .result import AttributionResult
from .targets import ObjectiveKind, Step, Target, as_index, check_objective
from .tokens import quote_token
from .tensor_types import TokenIds
from .versions import library_versions

__all__ = [
    "PROMPT_FORMATS",
    "attribute_sequence",
    "build_steps",
    "chat_messages",
    "encode_prompt",
    "explain",
    "greedy_continuation",
]


LONG_GENERATION = 32
"""Generations of at least this many tokens get a progress bar (when progress is on)."""


def single_token(model, text: str | int, what: str = "target") -> int:
    """A target/contrast given as text (first token, with a warning if longer) or as a token id."""
    if not isinstance(text, str):
        return as_index(text, f"The {what} token id")
    check_text(text, f"the {what}")
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise InvalidInputError(f"The {what} {text!r} encodes to no tokens.")
    warn_unknown_tokens(model.tokenizer, text, ids[:1], what)
    if len(ids) > 1:
        pieces = model.tokenizer.convert_ids_to_tokens(ids)
        warnings.warn(
            f"The {what} {text!r} is {len(ids)} tokens {pieces}; explaining its first token only.", stacklevel=3
        )
    return int(ids[0])


def spaced_target_hint(model, ids: TokenIds, target: str | int | None, target_id: int | None) -> str | None:
    """A warning when a text ``target`` without a leading space is not what the model would generate
    after ``ids`` but its spaced form is (``"positive"`` vs ``" positive"``: two tokens in most
    vocabularies), else None. Costs one forward pass, only for such a target."""
    if not isinstance(target, str) or not target.strip() or target[0].isspace() or target_id is None:
        return None
    spaced = model.tokenizer(" " + target, add_special_tokens=False)["input_ids"][:1]
    if not spaced or spaced[0] == target_id:
        return None
    with torch.no_grad():
        logits = model(ids[None].to(next(model.parameters()).device))[0, -1].float()
    if logits[spaced[0]] <= logits[target_id]:
        return None
    shown = model.tokenizer.convert_ids_to_tokens(spaced)[0]
    return (
        f"target={target!r} explains the token {quote_token(model.tokenizer.convert_ids_to_tokens(target_id))}, but "
        f"after this prompt the model ranks {quote_token(shown)} (with a leading space) higher: that is the form it "
        f"would generate. Pass target={' ' + target!r} to explain it."
    )


def _continuation_ids(model, continuation: str | Sequence[int] | torch.Tensor) -> TokenIds:
    """Token ids of a forced continuation (text is tokenized without special tokens)."""
    if isinstance(continuation, str):
        check_text(continuation, "the forced continuation")
        ids = model.tokenizer(continuation, add_special_tokens=False)["input_ids"]
        if not ids:
            raise InvalidInputError(f"The forced continuation {continuation!r} encodes to no tokens.")
        warn_unknown_tokens(model.tokenizer, continuation, ids, "continuation")
        continuation = ids
    return check_token_ids(continuation, model_info(model), "the forced continuation")


def _generation_room(ids: TokenIds, n_ctx: int) -> int:
    """How many tokens fit after ``ids`` in the context; raise when none do."""
    room = n_ctx - ids.shape[0]
    if room < 1:
        raise InvalidInputError(
            f"The prompt has {ids.shape[0]} tokens and fills the model's context of {n_ctx}: "
            "there is no room to generate; shorten it."
        )
    return room


@torch.no_grad()
def greedy_continuation(
    model, ids: TokenIds, max_new_tokens: int, stop_at_eos: bool = True, *, progress: bool | None = False
) -> TokenIds:
    """Greedy decoding with full-prefix forwards (the same forward the attribution differentiates).

    Generation stops after ``max_new_tokens``, after an end-of-sequence token (``stop_at_eos``), or
    when the model's context is full (with a warning naming how many tokens were generated).
    ``progress`` shows a bar over the generated tokens for generations of at least
    :data:`LONG_GENERATION` tokens (``None``: only when stderr is a terminal).

    Raises:
        InvalidInputError: ``max_new_tokens`` is not an integer >= 1, or the prompt already fills
            the context.
        NumericalError: the model's logits are NaN/inf at some step.
    """
    max_new_tokens = as_index(max_new_tokens, "max_new_tokens", minimum=1)
    info = model_info(model)
    ids = check_token_ids(ids, info, "the prompt")
    room = _generation_room(ids, info.n_ctx)
    if max_new_tokens > room:
        warnings.warn(
            f"max_new_tokens={max_new_tokens} but only {room} token(s) fit in the model's context of "
            f"{info.n_ctx} after the {ids.shape[0]}-token prompt; generating at most {room}.",
            stacklevel=3,
        )
    eos = getattr(model.tokenizer, "eos_token_id", None)
    device = next(model.parameters()).device
    seq = ids.to(device)
    new: list[int] = []
    n_new = min(max_new_tokens, room)
    shown = progress if n_new >= LONG_GENERATION else False
    with progress_bar(total=n_new, desc="generate", unit="token", enabled=shown) as bar:
        for step in range(n_new):
            logits = model(seq[None])[0, -1]
            if not torch.isfinite(logits).all():
                raise NumericalError(
                    f"The model produced NaN/inf logits at generation step {step} (position {seq.shape[0] - 1}): "
                    "no continuation (and no attribution) can be computed."
                )
            nxt = int(logits.argmax())
            new.append(nxt)
            bar.update()
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
    return [Step(j - 1, Target(int(sequence[j]), contrast, objective)) for j in range(prompt_length, sequence.shape[0])]


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
    prompt_format: PromptFormat = "plain",
    system: str | None = None,
    stop_at_eos: bool = True,
    progress: bool | None = None,
    **method_options: Any,
) -> AttributionResult | list[AttributionResult]:
    """Generate (or force) a continuation of ``prompt`` and attribute every token of it.

    Args:
        model: a ``TransformerBridge`` from :func:`gradellm_lens.load_model`.
        prompt: text, token ids, or a list of prompts (texts or id lists, any lengths; returns a
            list of results).
        method: a registered method name (see :func:`gradellm_lens.list_methods`) or instance.
        max_new_tokens: greedy generation length (ignored with ``continuation`` or ``target``).
        continuation: text or ids to force instead of generating.
        target: explain this token / label word (first token) after the prompt instead of a
            continuation: one step.
        contrast: explain ``score(target) - score(contrast)`` at every step.
        objective: ``"logit"`` (default), ``"log_prob"`` or ``"prob"`` of the target.
        prompt_format: ``"plain"`` (default: text as given) or ``"chat"`` (a text prompt wrapped
            in the model's chat template); recorded in ``result.options["prompt_format"]``.
        system: optional system message for the chat template.
        stop_at_eos: stop greedy generation after an end-of-sequence token.
        progress: a progress bar (on stderr) over the prompts of a list and over long
            generations; ``None`` (default) shows it only when stderr is a terminal.
        **method_options: options of the method (e.g. ``variant="reference"``, ``layers=4``).

    Returns:
        One :class:`AttributionResult`, or a list of them (in order) when ``prompt`` is a list.

    Raises:
        InvalidInputError: bad arguments, found **before** any generation or attribution: every
            prompt of a batch is encoded and checked first, and the error names the bad prompt
            (``"Prompt 2 of 3: ..."``, counting from 1). Also ``target`` together with
            ``continuation``, an unknown method / option /
            variant / objective, ``max_new_tokens`` < 1 (when generating), a contrast equal to the
            target, and prompt + continuation longer than the model's context.
        NumericalError: NaN/inf logits, objectives, gradients or scores (no result is returned).

    Warns:
        FlatAttributionWarning: a step's scores are all equal (e.g. all zero: Grad-ELLM found no
            positive evidence). They are returned unchanged; see ``AttributionResult.flat_steps``.
        UserWarning: a multi-token target/contrast (first token used), text outside the
            vocabulary, a generation cut short by the context length, or a text target without a
            leading space (``"positive"``) when the model ranks its spaced token (``" positive"``,
            the form it would generate) higher after the (first) prompt.
    """
    batch = _prompt_batch(prompt)
    prompts = [prompt] if batch is None else batch
    if target is not None and continuation is not None:
        raise InvalidInputError("Pass either target= (one fixed token) or continuation= (forced text), not both.")
    check_objective(objective)
    if "chat_template" in method_options:
        raise InvalidInputError("explain's chat_template= is now prompt_format=: pass prompt_format='chat' or 'plain'.")
    check_prompt_format(prompt_format)
    generate = target is None and continuation is None
    if generate:
        max_new_tokens = as_index(max_new_tokens, "max_new_tokens", minimum=1)
    attributor = make_method(method, model, **method_options)
    info = model_info(model)
    target_id = None if target is None else single_token(model, target, "target")
    contrast_id = None if contrast is None else single_token(model, contrast, "contrast")
    if target_id is not None:
        Target(target_id, contrast_id, objective).validate(info.d_vocab)
    forced = torch.zeros(0, dtype=torch.long) if continuation is None else _continuation_ids(model, continuation)
    encoded, user_spans = [], []
    for i, item in enumerate(prompts):  # validate every prompt before any expensive work
        with _naming_prompt(i, len(prompts), batch is not None):
            ids = encode_prompt(model, item, prompt_format=prompt_format, system=system)
            check_token_ids(torch.cat([ids, forced]), info, "the prompt plus forced continuation")
            if generate:
                _generation_room(ids, info.n_ctx)
            encoded.append(ids)
            user_spans.append(user_text_span(model, item, ids, prompt_format, system))
    if (hint := spaced_target_hint(model, encoded[0], target, target_id)) is not None:
        warnings.warn(hint, stacklevel=2)
    results = []
    bar = progress_bar(encoded, desc="explain", unit="prompt", enabled=False if batch is None else progress)
    for i, ids in enumerate(bar):
        with _naming_prompt(i, len(encoded), batch is not None):
            generated = (
                greedy_continuation(model, ids, max_new_tokens, stop_at_eos, progress=progress) if generate else forced
            )
            sequence = torch.cat([ids, generated.cpu()])
            steps = build_steps(ids.shape[0], sequence, target=target_id, contrast=contrast_id, objective=objective)
            result = attribute_sequence(model, sequence, steps, attributor, prompt_length=ids.shape[0])
            result = replace(
                result, options={**result.options, "prompt_format": prompt_format}, user_span=user_spans[i]
            )
        if result.flat_steps:
            label = "" if batch is None else f"prompt {i + 1} of {len(encoded)}: "
            warnings.warn(
                f"{label}step(s) {list(result.flat_steps)} have flat scores (all equal over the prefix, e.g. all "
                f"zero): {result.method} singles out no token there. They are kept as computed, not rescaled.",
                FlatAttributionWarning,
                stacklevel=2,
            )
        results.append(result)
    return results if batch is not None else results[0]


def _prompt_batch(prompt: Any) -> list | None:
    """The prompts of a batch (a list/tuple of texts or of id sequences), or None for one prompt."""
    if not isinstance(prompt, (list, tuple)):
        return None
    if not prompt:
        raise InvalidInputError("The list of prompts is empty: pass at least one prompt.")
    nested = [isinstance(p, (str, list, tuple)) or (isinstance(p, torch.Tensor) and p.ndim > 0) for p in prompt]
    if all(nested):
        return list(prompt)
    if any(nested):
        raise InvalidInputError(
            "A prompt list mixes token ids with texts or id lists: pass one prompt (a flat list of ids) "
            "or a list of prompts (texts or id lists)."
        )
    return None


@contextmanager
def _naming_prompt(index: int, total: int, enabled: bool):
    """Prefix a :class:`LensError` raised inside with ``"Prompt i of n: "`` (batches only; ``i`` from 1)."""
    try:
        yield
    except LensError as exc:
        if not enabled:
            raise
        named = type(exc)(f"Prompt {index + 1} of {total}: {exc}")
        named.prompt_index = index  # which prompt (from 0), for callers that name it otherwise (file:line)
        raise named from exc


def attribute_sequence(
    model, sequence: TokenIds, steps: Sequence[Step], method: AttributionMethod, *, prompt_length: int
) -> AttributionResult:
    """Run ``method`` on prepared ``steps`` and package an :class:`AttributionResult`."""
    out = method.attribute(sequence, steps)
    with torch.no_grad():
        logits = model(sequence[None].to(method.device))[0]
        target_logits = tuple(float(s.target(logits[s.position])) for s in steps)
    description = method.describe()
    tokenizer = model.tokenizer
    return AttributionResult(
        tokens=tuple(tokenizer.convert_ids_to_tokens(sequence.tolist())),
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
        diagnostics=dict(out.diagnostics),
        target_tokens=tuple(tokenizer.convert_ids_to_tokens([s.target.token_id for s in steps])),
        contrast_tokens=tuple(
            None if (c := s.target.contrast_id) is None else tokenizer.convert_ids_to_tokens(c) for s in steps
        ),
    )
