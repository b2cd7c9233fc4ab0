r"""Grouped-query attention (GQA): which query heads share which key/value head.

A GQA layer has ``n_heads`` query heads and ``n_kv_heads`` key/value heads, ``r = n_heads /
n_kv_heads`` query heads per group. As in Hugging Face's ``repeat_kv`` (``repeat_interleave`` on
the head axis), query head :math:`h` reads key/value head :math:`\lfloor h / r \rfloor`, so group
:math:`g` is the *contiguous* block of query heads :math:`\{g r, \dots, g r + r - 1\}`.
SmolLM2-135M has 9 query heads and 3 KV heads: groups ``{0,1,2}``, ``{3,4,5}``, ``{6,7,8}``.

Why it matters here:

* Grad-ELLM's per-head map (``layer_head[..., head, pos]``) and ``attn.hook_z`` are indexed by
  **query** head; ``attn.hook_k`` / ``attn.hook_v`` by **KV** head. Ablating one KV head therefore
  changes every query head of its group (and only those).
* A query-head score aggregates to a KV-group score with :func:`aggregate_kv_groups`:
  :math:`s_g = \operatorname{reduce}_{h \in g} s_h` with ``reduce`` = ``sum`` (default: the
  group's total importance, comparable to ablating the KV head, which removes all ``r`` heads),
  ``mean`` or ``max``.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from ..errors import InvalidInputError, check_choice

GroupReduce = Literal["sum", "mean", "max"]
GROUP_REDUCES: tuple[str, ...] = ("sum", "mean", "max")


def group_size(n_heads: int, n_kv_heads: int) -> int:
    """Query heads per KV head; raises if ``n_heads`` is not a multiple of ``n_kv_heads``."""
    if n_kv_heads < 1 or n_heads % n_kv_heads:
        raise InvalidInputError(
            f"n_heads={n_heads} is not a positive multiple of n_kv_heads={n_kv_heads}: not a GQA layout."
        )
    return n_heads // n_kv_heads


def kv_head_of(head: int, n_heads: int, n_kv_heads: int) -> int:
    """The KV head that query head ``head`` attends with (``head // group_size``)."""
    if not 0 <= head < n_heads:
        raise InvalidInputError(f"Query head {head} is out of range (the model has heads 0..{n_heads - 1}).")
    return head // group_size(n_heads, n_kv_heads)


def query_heads_of(kv_head: int, n_heads: int, n_kv_heads: int) -> tuple[int, ...]:
    """The query heads served by KV head ``kv_head``."""
    if not 0 <= kv_head < n_kv_heads:
        raise InvalidInputError(f"KV head {kv_head} is out of range (the model has KV heads 0..{n_kv_heads - 1}).")
    r = group_size(n_heads, n_kv_heads)
    return tuple(range(kv_head * r, (kv_head + 1) * r))


def aggregate_kv_groups(scores: Tensor, n_kv_heads: int, reduce: GroupReduce = "sum") -> Tensor:
    """Reduce the last (query-head) axis of ``scores`` ``[..., n_heads]`` to ``[..., n_kv_heads]``."""
    check_choice("reduce", reduce, GROUP_REDUCES)
    n_heads = scores.shape[-1]
    grouped = scores.reshape(*scores.shape[:-1], n_kv_heads, group_size(n_heads, n_kv_heads))
    if reduce == "max":
        return grouped.amax(dim=-1)
    return grouped.sum(dim=-1) if reduce == "sum" else grouped.mean(dim=-1)
