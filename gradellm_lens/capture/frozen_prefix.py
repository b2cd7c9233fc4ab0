r"""Frozen prefix keys/values: run later positions over earlier positions' keys and values held as constants.

In a causal transformer the positions before :math:`h` influence later ones only through their
keys and values at every layer. So once a no-grad forward over ``tokens[:h]`` has recorded them
(:func:`record_keys_values`: keys after RoPE from ``hook_rot_k``, values from ``hook_v``), any batch
of rows that share that head can run only their own positions (:func:`tail_forward`): the bridge's
re-implemented attention appends the frozen keys/values through a ``layer_past`` cache object
(:class:`FrozenKeysValues`) and takes a 4-D mask as given (:func:`cached_attention_mask`). This
serves two computations: single-position gradient passes (:mod:`.single_position`) and the
perturbed copies of π-Soft, whose unperturbed head is the same in every copy
(:mod:`gradellm_lens.metrics.perturb`).

TransformerLens 4.3 looks for the cache under ``past_key_values`` or ``layer_past`` while
transformers 5 passes it to attention as ``cache``, so Hugging Face's own KV cache does not reach the
bridge (and TransformerLens' cached ``generate()`` is wrong here); passing ``layer_past`` through
the model's keyword arguments does reach it. Because that is an implementation detail, every model
object is checked once numerically (:func:`prefix_cache_supported`: cached tail vs full forward on a
short sequence) before it is used, and the capability flag
(:attr:`~gradellm_lens.models.ModelInfo.single_position`), installed hooks (an ablation must see
whole sequences) and training mode are checked on every call.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

from ..models.capabilities import model_info
from .hooks import ActivationStore, FwdHook, active_hook_points, hook_name, logit_rows_hook

logger = logging.getLogger(__name__)
_SELF_CHECK: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class FrozenKeysValues:
    """A ``layer_past`` cache for the bridge's attention: frozen keys/values before the live ones.

    ``update(k, v, layer)`` receives the live rows' keys/values ``[rows, n_kv, m, d]`` and returns
    ``[rows, n_kv, h + m, d]``: the frozen ``[1, n_kv, h, d]`` tensors of that layer, shared by
    every row, then the live positions. Only the layers it holds may run.
    """

    def __init__(self, keys: dict[int, Tensor], values: dict[int, Tensor]) -> None:
        self.keys, self.values = keys, values

    @property
    def length(self) -> int:
        """``h``, the number of frozen positions."""
        return next(iter(self.keys.values())).shape[2]

    def head(self, length: int) -> FrozenKeysValues:
        """The first ``length`` frozen positions (views, no copy): the keys/values of ``tokens[:length]``."""
        if not 1 <= length <= self.length:
            raise ValueError(f"a head of {length} positions of {self.length} frozen ones")
        return FrozenKeysValues(
            {layer: k[:, :, :length] for layer, k in self.keys.items()},
            {layer: v[:, :, :length] for layer, v in self.values.items()},
        )

    @property
    def dtype(self) -> torch.dtype:
        return next(iter(self.keys.values())).dtype

    def update(self, k: Tensor, v: Tensor, layer_idx: int, *args, **kwargs) -> tuple[Tensor, Tensor]:
        frozen_k = self.keys[layer_idx].expand(k.shape[0], -1, -1, -1)
        frozen_v = self.values[layer_idx].expand(v.shape[0], -1, -1, -1)
        return torch.cat([frozen_k, k], dim=2), torch.cat([frozen_v, v], dim=2)


def cached_attention_mask(visible: Tensor, dtype: torch.dtype) -> Tensor:
    """Additive 4-D mask ``[rows, 1, queries, keys]`` from a boolean ``[rows, queries, keys]`` (True = visible).

    Used as given by Hugging Face and by the bridge's attention (a 4-D mask is authoritative there).
    """
    return torch.zeros(visible.shape, dtype=dtype, device=visible.device).masked_fill(~visible, torch.finfo(dtype).min)[
        :, None
    ]


def record_keys_values(
    model, tokens: Tensor, layers: Sequence[int], store: ActivationStore | None = None
) -> tuple[FrozenKeysValues, Tensor]:
    """One no-grad forward of ``tokens [1, pos]`` that records the keys (after RoPE) and values of ``layers``.

    Returns the :class:`FrozenKeysValues` (``[1, n_kv, pos, d]`` per layer) and the logits at the
    last position (the unembedding runs there only). ``store`` records further hook points in the
    same forward.
    """
    store = store or ActivationStore([])
    kv = ActivationStore([hook_name(kind, layer) for layer in layers for kind in ("rot_k", "v")])
    cut, _ = logit_rows_hook(model, [-1])
    with torch.no_grad(), model.hooks(fwd_hooks=[*store.hooks(), *kv.hooks(), *cut]):
        logits = model(tokens)
    kv.check_fired()
    store.check_fired()
    keys = {layer: _heads_first(kv[hook_name("rot_k", layer)]) for layer in layers}
    values = {layer: _heads_first(kv[hook_name("v", layer)]) for layer in layers}
    return FrozenKeysValues(keys, values), logits


def _heads_first(x: Tensor) -> Tensor:
    """``hook_rot_k`` / ``hook_v`` ``[batch, pos, n_kv, d]`` -> the attention's ``[batch, n_kv, pos, d]``."""
    return x.transpose(1, 2)


@contextlib.contextmanager
def skipped_blocks(blocks: Sequence[torch.nn.Module]) -> Iterator[None]:
    """Make ``blocks`` pass their hidden states through unchanged for the duration (their output is
    replaced at the first block that runs, so their work would be discarded).

    The pass-through is an instance attribute set with ``object.__setattr__``: the bridge's own
    ``__setattr__`` would forward ``forward`` to the wrapped Hugging Face layer.
    """
    saved = [block.__dict__.get("forward") for block in blocks]

    def passthrough(hidden_states, *args, **kwargs):
        return hidden_states

    try:
        for block in blocks:
            object.__setattr__(block, "forward", passthrough)
        yield
    finally:
        for block, forward in zip(blocks, saved):
            if forward is None:
                block.__dict__.pop("forward", None)
            else:
                object.__setattr__(block, "forward", forward)


def tail_forward(model, tail: Tensor, frozen: FrozenKeysValues, *, fwd_hooks: Sequence[FwdHook] = ()) -> Tensor:
    """Logits ``[batch, vocab]`` at the last position of ``tail [batch, m]``, the tokens after a frozen
    head of ``h`` positions (:func:`tail_logits` at the last position)."""
    return tail_logits(model, tail, frozen, [-1], fwd_hooks=fwd_hooks)[:, 0]


def tail_logits(
    model, tail: Tensor, frozen: FrozenKeysValues, positions: Sequence[int], *, fwd_hooks: Sequence[FwdHook] = ()
) -> Tensor:
    """Logits ``[batch, len(positions), vocab]`` at ``positions`` of ``tail [batch, m]`` (indices into the
    tail), the tokens after a frozen head of ``h`` positions; the unembedding runs there only.

    Each tail position attends to every frozen position and causally to the tail; position ids
    continue from ``h``. ``fwd_hooks`` see tail-shaped activations (e.g. ``hook_embed``
    ``[batch, m, d_model]``). No gradients.
    """
    h, m = frozen.length, tail.shape[1]
    visible = torch.ones(m, h + m, dtype=torch.bool, device=tail.device)
    visible[:, h:] = torch.ones(m, m, dtype=torch.bool, device=tail.device).tril()
    mask = cached_attention_mask(visible[None].expand(tail.shape[0], -1, -1), frozen.dtype)
    position_ids = torch.arange(h, h + m, device=tail.device)[None].expand(tail.shape[0], -1)
    rows, select = logit_rows_hook(model, positions)
    with torch.no_grad(), model.hooks(fwd_hooks=[*fwd_hooks, *rows]):
        return select(model(tail, attention_mask=mask, position_ids=position_ids, layer_past=frozen))


def prefix_cache_supported(model) -> bool:
    """Whether frozen-prefix passes are exact on ``model`` now (see the module docstring)."""
    if not model_info(model).single_position or model.training or active_hook_points(model):
        return False
    return checked_once(_SELF_CHECK, model, "frozen-prefix", _logits_agree)


def checked_once(results: weakref.WeakKeyDictionary, model, what: str, check: Callable[..., bool]) -> bool:
    """``check(model, tokens, tol)`` on a short fixed sequence, run once per model object and cached in ``results``.

    ``tol`` is the relative tolerance for the model's dtype (float rounding of a differently batched
    computation, far below any structural error). A failing or raising check means False (logged).
    """
    if model not in results:
        param = next(model.parameters())
        tokens = (torch.arange(10, device=param.device) * 7 + 1) % model_info(model).d_vocab
        tol = 1e-3 if param.dtype == torch.float32 else 5e-2
        try:
            results[model] = bool(check(model, tokens, tol))
        except Exception as exc:  # noqa: BLE001 - any failure means: do not take the fast path on this model
            logger.info("%s self-check failed (%s: %s)", what, type(exc).__name__, exc)
            results[model] = False
        if not results[model]:
            logger.info("%s self-check: results differ from the full computation; not used on this model", what)
    return results[model]


def relative_error(got: Tensor, expected: Tensor) -> float:
    """``max |got - expected| / max |expected|``."""
    return float((got - expected).abs().max() / expected.abs().max().clamp(min=1e-12))


def _logits_agree(model, tokens: Tensor, tol: float) -> bool:
    """Logits of a tail over a frozen head vs one plain forward."""
    frozen, _ = record_keys_values(model, tokens[None, :4], range(model.cfg.n_layers))
    with torch.no_grad():
        expected = model(tokens[None])[:, -1]
    return relative_error(tail_forward(model, tokens[None, 4:], frozen), expected) <= tol
