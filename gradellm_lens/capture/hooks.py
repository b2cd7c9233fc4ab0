"""TransformerLens hook names, built in one place, and the two hooks every capture uses.

:func:`hook_name` is this package's ``transformer_lens.utils.get_act_name``: the public vocabulary
of hook points (``hook_z``, ``hook_pattern``, ``hook_attn_out`` ...) is TransformerLens', and every
module that hooks a model builds its names here. :class:`ActivationStore` is the one hook that
keeps activations (with its "never fired" check); :func:`logit_rows_hook` is the one hook that
runs the unembedding only at chosen positions.

Tensor layouts (TransformerLens 4.x bridge): ``[batch, pos, ...]`` for every kind except
``pattern`` and ``attn_scores``, which are ``[batch, head, query_pos, key_pos]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..errors import InvalidInputError, check_choice, did_you_mean

FwdHook = tuple[str, Callable]

HOOK_TEMPLATES: dict[str, str] = {
    "embed": "hook_embed",
    "unembed_in": "unembed.hook_in",
    "resid_pre": "blocks.{layer}.hook_resid_pre",
    "q": "blocks.{layer}.attn.hook_q",
    "k": "blocks.{layer}.attn.hook_k",
    "v": "blocks.{layer}.attn.hook_v",
    "rot_k": "blocks.{layer}.attn.hook_rot_k",
    "attn_scores": "blocks.{layer}.attn.hook_attn_scores",
    "pattern": "blocks.{layer}.attn.hook_pattern",
    "z": "blocks.{layer}.attn.hook_z",
    "attn_out": "blocks.{layer}.hook_attn_out",
}
QUERY_KEY_KINDS: tuple[str, ...] = ("attn_scores", "pattern")  # [batch, head, query_pos, key_pos]


def hook_name(kind: str, layer: int | None = None) -> str:
    """TransformerLens name of a hook point, e.g. ``hook_name("z", 3) == "blocks.3.attn.hook_z"``.

    Kinds: ``embed``, ``unembed_in`` (no layer) and ``resid_pre``, ``q``, ``k``, ``v``, ``rot_k``
    (keys after RoPE), ``attn_scores``, ``pattern``, ``z`` (the o_proj input), ``attn_out``.

    Raises:
        InvalidInputError: an unknown kind, or a layer given / missing where it is not / is needed.
    """
    check_choice("hook kind", kind, HOOK_TEMPLATES)
    template = HOOK_TEMPLATES[kind]
    per_layer = "{layer}" in template
    if per_layer != (layer is not None):
        raise InvalidInputError(f"hook kind {kind!r} {'needs' if per_layer else 'takes no'} layer index.")
    return template.format(layer=layer) if per_layer else template


def hook_kind(name: str) -> str | None:
    """The kind of a hook name built by :func:`hook_name` (None for any other name)."""
    for kind, template in HOOK_TEMPLATES.items():
        head, _, tail = template.partition("{layer}")
        if name == template or (
            tail and name.startswith(head) and name.endswith(tail) and name[len(head) : -len(tail)].isdigit()
        ):
            return kind
    return None


def check_hook_names(model, names: Sequence[str]) -> None:
    """Raise :class:`InvalidInputError` (with a suggestion) for a hook name the model does not have."""
    known = getattr(model, "hook_dict", None)
    if known is None:
        return
    for name in names:
        if name not in known:
            n_layers = model.cfg.n_layers
            raise InvalidInputError(
                f"Unknown hook point {name!r} on this model.{did_you_mean(name, known, cutoff=0.8)} "
                f"It has {n_layers} layers (blocks.0 .. blocks.{n_layers - 1})."
            )


class ActivationStore:
    """Forward hooks that keep the tensor seen at each of ``names`` (and return it unchanged).

    Returning the live tensor keeps the hook's view inside the autograd graph (TransformerLens'
    converted hooks such as ``hook_z`` drop a view the hook does not return). With ``detach`` a
    detached copy is kept instead (recording without gradients). ``select`` maps a name to a
    function applied to the tensor before it is kept (e.g. keeping a few rows), not to what the
    model sees.
    """

    def __init__(self, names: Sequence[str], *, detach: bool = False, select: dict[str, Callable] | None = None):
        self.names = list(dict.fromkeys(names))
        self.detach = detach
        self.select = select or {}
        self.values: dict[str, Tensor] = {}

    def hooks(self) -> list[FwdHook]:
        """``(name, fn)`` pairs for ``model.hooks(fwd_hooks=...)``."""
        return [(name, self._keeper(name)) for name in self.names]

    def _keeper(self, name: str) -> Callable:
        pick = self.select.get(name)

        def hook(tensor: Tensor, hook=None) -> Tensor:
            kept = tensor if pick is None else pick(tensor)
            self.values[name] = kept.detach().clone() if self.detach else kept
            return tensor

        return hook

    def check_fired(self) -> None:
        """Raise :class:`InvalidInputError` naming the hook points that never fired."""
        missing = [n for n in self.names if n not in self.values]
        if missing:
            raise InvalidInputError(f"Hook point(s) never fired during the forward pass: {missing}.")

    def __getitem__(self, name: str) -> Tensor:
        return self.values[name]


def logit_rows_hook(
    model, positions: Sequence[int] | Tensor | None
) -> tuple[list[FwdHook], Callable[[Tensor], Tensor]]:
    """Forward hooks that run the unembedding only at ``positions``, and the logits post-processing.

    The hook slices the final residual stream (``unembed.hook_in``), so neither the forward nor the
    backward pays for ``[pos, vocab]`` logits nobody reads; row ``j`` of the logits is then position
    ``positions[j]`` (negative positions count from the end). Where the model has no such hook
    point the logits are computed in full and sliced after.
    """
    if positions is None:
        return [], lambda logits: logits
    index = torch.as_tensor(positions, dtype=torch.long)
    if index.ndim != 1 or index.numel() == 0:
        raise InvalidInputError("logit positions must be a non-empty list of positions.")
    name = hook_name("unembed_in")
    if name in getattr(model, "hook_dict", {}):

        def rows(resid: Tensor, hook=None) -> Tensor:
            return resid[:, index.to(resid.device)]

        return [(name, rows)], lambda logits: logits
    return [], lambda logits: logits[:, index.to(logits.device)]


def active_hook_points(model) -> list[str]:
    """Names of the model's hook points that have forward or backward hooks installed right now
    (e.g. an ablation applied with ``model.hooks``)."""
    points = getattr(model, "hook_dict", None) or dict(model.named_modules())
    return sorted(
        {
            name
            for name, point in points.items()
            if getattr(point, "fwd_hooks", None) or getattr(point, "bwd_hooks", None)
        }
    )
