r"""Head and layer ablations as TransformerLens forward hooks: zero, mean and resample.

An :class:`Ablation` names *what* is removed and *how*; :func:`ablation_hooks` turns it into
``(hook_name, fn)`` pairs; :func:`ablated` applies them for the duration of a ``with`` block (so
they act on single forward passes, on :func:`~gradellm_lens.attribute.greedy_continuation` and on
gradient capture alike) and always removes them afterwards.

What is replaced (``kind``):

``"query_heads"``
    ``heads = ((layer, head), ...)`` with ``head`` a **query** head: the slice
    ``blocks.L.attn.hook_z[:, :, head, :]`` (the head's attention-weighted value mix, the input of
    o_proj), at every position. Only that head's write to the residual stream changes.
``"kv_heads"``
    ``heads = ((layer, kv_head), ...)`` with ``kv_head`` a **key/value** head (GQA, see
    :mod:`.gqa`): ``blocks.L.attn.hook_k[:, :, kv_head, :]`` and/or ``hook_v`` (``kv_parts``;
    pre-RoPE, as the bridge exposes them). This changes every query head of the group (and only
    those): zeroing k makes the group's attention uniform over the prefix, zeroing v zeroes what it
    reads; zeroing both zeroes the group's ``hook_z``.
``"layers"``
    ``layers = (L, ...)``: the whole attention output ``blocks.L.hook_attn_out`` (after o_proj).

How (``mode``), for the replaced slice :math:`a_{b,i}` (batch row ``b``, position ``i``):

``"zero"``
    :math:`a_{b,i} \leftarrow 0`.
``"mean"``
    :math:`a_{b,i} \leftarrow \bar a = \frac{1}{\sum_n T_n} \sum_n \sum_{i<T_n} a^{(n)}_{i}`,
    the mean over **all positions of all prompts** of a reference set (:func:`collect_reference`),
    per head (per KV head, or per layer).
``"resample"``
    :math:`a_{b,i} \leftarrow a^{(s)}_{\pi(i)}`: the activation of reference prompt ``s``
    (``source``; drawn with ``seed`` when None). ``positions="aligned"`` uses
    :math:`\pi(i) = \min(i, T_s - 1)` (position-aligned from the start; positions past the
    source's end reuse its last position); ``positions="random"`` draws :math:`\pi(i)` uniformly
    from :math:`\{0, \dots, T_s - 1\}` with ``seed`` (the draw for a longer sequence extends the
    draw for a shorter one, so generation sees consistent replacements). Use a reference set that
    does not contain the ablated prompt, or resampling can be the identity.

:func:`row_ablation_hooks` applies a *different* ablation to each row of a batch, which is how
:func:`~.effects.ablation_effects` evaluates hundreds of ablations of one prompt in a few forward
passes. Hooks clone the activation before editing it, so they are safe inside autograd.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from ..capture import FwdHook, hook_name, record_activations
from ..errors import InvalidInputError, check_choice
from ..models.capabilities import ModelInfo, model_info
from ..targets import as_index
from ..tensor_types import TokenIds

AblationKind = Literal["query_heads", "kv_heads", "layers"]
AblationMode = Literal["zero", "mean", "resample"]
ResamplePositions = Literal["aligned", "random"]
KVParts = Literal["kv", "k", "v"]
HeadIndex = tuple[int, int]

_CHOICES = {
    "kind": ("query_heads", "kv_heads", "layers"),
    "mode": ("zero", "mean", "resample"),
    "positions": ("aligned", "random"),
    "kv_parts": ("kv", "k", "v"),
}
REFERENCE_HOOKS: tuple[str, ...] = ("z", "k", "v", "attn_out")


@dataclass(frozen=True, eq=False)
class AblationReference:
    """Activations of a reference set of prompts at attention hook points (for mean / resample).

    Attributes:
        activations: hook name -> one ``[pos, ...]`` tensor per reference prompt.
    """

    activations: dict[str, tuple[Tensor, ...]]
    _means: dict[str, Tensor] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        counts = {len(v) for v in self.activations.values()}
        if not self.activations or counts == {0} or len(counts) != 1:
            raise InvalidInputError("An ablation reference needs the same (non-zero) number of prompts at every hook.")

    @property
    def n_prompts(self) -> int:
        return len(next(iter(self.activations.values())))

    def _require(self, name: str) -> tuple[Tensor, ...]:
        if name not in self.activations:
            raise InvalidInputError(
                f"The ablation reference has no activations at {name!r}; build it with "
                f"collect_reference(model, prompts, hooks=...) covering that hook and layer."
            )
        return self.activations[name]

    def mean(self, name: str) -> Tensor:
        """Mean over all positions of all reference prompts at ``name`` (shape ``[...]``)."""
        if name not in self._means:
            self._means[name] = torch.cat(self._require(name), dim=0).mean(dim=0)
        return self._means[name]

    def sample(self, name: str, index: int) -> Tensor:
        """The ``[pos, ...]`` activation of reference prompt ``index`` at ``name``."""
        samples = self._require(name)
        if not 0 <= index < len(samples):
            raise InvalidInputError(
                f"Resample source {index} is out of range: the reference has {len(samples)} prompts."
            )
        return samples[index]


def collect_reference(
    model,
    prompts: Sequence[TokenIds],
    *,
    hooks: Sequence[str] = REFERENCE_HOOKS,
    layers: Sequence[int] | None = None,
) -> AblationReference:
    """Record the reference activations that mean and resample ablations draw from.

    Args:
        model: a ``TransformerBridge``.
        prompts: token-id sequences (one forward each; lengths may differ).
        hooks: which hook kinds to keep: ``"z"``, ``"k"``, ``"v"``, ``"attn_out"``.
        layers: layers to keep (default: all).
    """
    info = model_info(model)
    bad = [h for h in hooks if h not in REFERENCE_HOOKS]
    if bad:
        raise InvalidInputError(f"Unknown reference hook kind(s) {bad}; use any of {', '.join(REFERENCE_HOOKS)}.")
    if not prompts:
        raise InvalidInputError("The reference set is empty: pass at least one prompt.")
    layers = range(info.n_layers) if layers is None else [_check_layer(layer, info) for layer in layers]
    names = [hook_name(kind, layer) for layer in layers for kind in hooks]
    samples: dict[str, list[Tensor]] = {n: [] for n in names}
    for prompt in prompts:
        _, acts = record_activations(model, prompt, names)
        for n in names:
            samples[n].append(acts[n][0].float().cpu())
    return AblationReference({n: tuple(v) for n, v in samples.items()})


@dataclass(frozen=True)
class Ablation:
    """What to ablate and how (see the module docstring for the exact replacement rules).

    Attributes:
        kind: ``"query_heads"``, ``"kv_heads"`` or ``"layers"``.
        heads: ``(layer, head)`` pairs (query heads, or KV heads for ``kv_heads``); may be empty
            (then the ablation does nothing, e.g. the 0-head point of a curve).
        layers: attention layers for ``kind="layers"``.
        mode: ``"zero"``, ``"mean"`` or ``"resample"``.
        reference: the :class:`AblationReference` that ``mean`` / ``resample`` use.
        source: ``resample``: index of the reference prompt to copy from (None: drawn with ``seed``).
        positions: ``resample``: ``"aligned"`` or ``"random"`` source positions.
        kv_parts: ``kv_heads``: replace ``"kv"`` (both), only ``"k"`` or only ``"v"``.
        seed: seed of the ``resample`` draws.
    """

    kind: AblationKind = "query_heads"
    heads: tuple[HeadIndex, ...] = ()
    layers: tuple[int, ...] = ()
    mode: AblationMode = "zero"
    reference: AblationReference | None = field(default=None, compare=False, repr=False)
    source: int | None = None
    positions: ResamplePositions = "aligned"
    kv_parts: KVParts = "kv"
    seed: int = 0

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            check_choice(f"Ablation {name}", getattr(self, name), allowed)
        try:
            pairs, layers = [(layer, head) for layer, head in self.heads], list(self.layers)
        except (TypeError, ValueError):
            raise InvalidInputError("heads must be (layer, head) pairs of ints and layers a list of ints.") from None
        what = "heads must be (layer, head) pairs of ints; a layer", "heads must be (layer, head) pairs of ints; a head"
        heads = tuple(dict.fromkeys((as_index(layer, what[0]), as_index(head, what[1])) for layer, head in pairs))
        layers = tuple(dict.fromkeys(as_index(layer, "Each layer in layers") for layer in layers))
        object.__setattr__(self, "heads", heads)
        object.__setattr__(self, "layers", layers)
        if self.kind == "layers" and heads:
            raise InvalidInputError("kind='layers' ablates whole attention layers: pass layers=..., not heads=.")
        if self.kind != "layers" and layers:
            raise InvalidInputError(f"kind={self.kind!r} ablates heads: pass heads=[(layer, head), ...], not layers=.")
        if self.mode != "zero" and self.reference is None:
            raise InvalidInputError(f"mode={self.mode!r} needs reference=collect_reference(model, reference_prompts).")

    def edits(self, info: ModelInfo) -> dict[str, tuple[int, ...] | None]:
        """Hook name -> head indices replaced there (None: the whole activation). Validates ranges."""
        out: dict[str, list[int] | None] = {}
        if self.kind == "layers":
            return {hook_name("attn_out", _check_layer(layer, info)): None for layer in self.layers}
        n = info.n_heads if self.kind == "query_heads" else info.n_kv_heads
        parts = ("z",) if self.kind == "query_heads" else tuple(self.kv_parts)
        for layer, head in self.heads:
            _check_layer(layer, info)
            if not 0 <= head < n:
                what = "query" if self.kind == "query_heads" else "KV"
                raise InvalidInputError(f"{what} head {head} of layer {layer} is out of range (0..{n - 1}).")
            for part in parts:
                out.setdefault(hook_name(part, layer), []).append(head)
        return {name: tuple(heads) for name, heads in out.items()}

    def source_index(self) -> int:
        """The reference prompt ``resample`` copies from."""
        if self.source is not None:
            return self.source
        generator = torch.Generator().manual_seed(self.seed)
        return int(torch.randint(self.reference.n_prompts, (1,), generator=generator))


def _check_layer(layer: int, info: ModelInfo) -> int:
    if not 0 <= layer < info.n_layers:
        raise InvalidInputError(f"Layer {layer} is out of range: the model has layers 0..{info.n_layers - 1}.")
    return layer


def _source_positions(ablation: Ablation, n_source: int, n_ctx: int) -> Tensor:
    """``π(i)`` for ``i < n_ctx`` (sliced to the sequence length inside the hook)."""
    if ablation.positions == "aligned":
        return torch.arange(n_ctx).clamp(max=n_source - 1)
    return torch.randint(n_source, (n_ctx,), generator=torch.Generator().manual_seed(ablation.seed))


def _replacement(ablation: Ablation, name: str, heads: tuple[int, ...] | None, n_ctx: int) -> Callable:
    """``value(x) -> replacement`` broadcastable to ``x[rows, :, heads]`` (or ``x[rows]``)."""
    pick = (lambda t: t) if heads is None else (lambda t: t[..., list(heads), :])
    if ablation.mode == "zero":
        return lambda x: x.new_zeros(())
    if ablation.mode == "mean":
        mean = pick(ablation.reference.mean(name))
        return lambda x: mean.to(x)
    source = ablation.reference.sample(name, ablation.source_index())
    positions = _source_positions(ablation, source.shape[0], n_ctx)
    return lambda x: pick(source[positions[: x.shape[1]]]).to(x)


def row_ablation_hooks(
    model, ablations: Sequence[Ablation | None], rows: Sequence[slice] | None = None
) -> list[FwdHook]:
    """Forward hooks applying ``ablations[j]`` to batch rows ``rows[j]`` (default: row ``j``).

    ``None`` (or an empty ablation) leaves its rows untouched. A single ablation with
    ``rows=[slice(None)]`` ablates the whole batch: that is :func:`ablation_hooks`.
    """
    info = model_info(model)
    rows = [slice(j, j + 1) for j in range(len(ablations))] if rows is None else list(rows)
    if len(rows) != len(ablations):
        raise InvalidInputError(f"{len(ablations)} ablations for {len(rows)} row selections.")
    per_hook: dict[str, list[tuple[slice, tuple[int, ...] | None, Callable]]] = {}
    for ablation, row in zip(ablations, rows):
        if ablation is None:
            continue
        for name, heads in ablation.edits(info).items():
            per_hook.setdefault(name, []).append((row, heads, _replacement(ablation, name, heads, info.n_ctx)))

    def make(edits: list) -> Callable:
        def hook(x: Tensor, hook=None) -> Tensor:
            x = x.clone()
            for row, heads, value in edits:
                if heads is None:
                    x[row] = value(x)
                else:
                    x[row, :, list(heads)] = value(x)
            return x

        return hook

    return [(name, make(edits)) for name, edits in per_hook.items()]


def ablation_hooks(model, ablation: Ablation) -> list[FwdHook]:
    """``(hook_name, fn)`` forward hooks that apply ``ablation`` to every batch row.

    Pass them to ``model.hooks(fwd_hooks=...)``, ``model.run_with_hooks`` or
    :func:`~gradellm_lens.capture.capture_gradients` (``fwd_hooks=``).
    """
    return row_ablation_hooks(model, [ablation], [slice(None)])


@contextlib.contextmanager
def ablated(model, ablation: Ablation) -> Iterator[None]:
    """Context manager: every forward pass of ``model`` inside the block is ablated.

    Example::

        with ablated(model, Ablation(heads=[(29, 3)])):
            new = greedy_continuation(model, ids, max_new_tokens=8)
    """
    with model.hooks(fwd_hooks=ablation_hooks(model, ablation)):
        yield
