r"""How well a head scorer finds the ground truth's heads over a set of prompts, with bootstrap CIs.

For prompts :math:`n = 1..N`, a ground truth :math:`T_n` (e.g. activation patching's oriented
effects, :meth:`~.patching.PatchingResult.importance`) and a scorer :math:`S_n` (Grad-ELLM head
importance, attribution patching, the output norm, random) are ``[layer, head]``
:class:`~.importance.HeadImportance` s of the same heads. Each is first divided by its total
:math:`\sum |\cdot|` so that every prompt weighs the same (:func:`~.importance.dataset_head_importance`).

Pooled (the dataset's ranking, what a circuit analysis reads)
    :math:`\bar T = \frac1N \sum_n T_n / \lVert T_n \rVert_1`, likewise :math:`\bar S`;
    Spearman's :math:`\rho(\bar S, \bar T)` (:func:`~.correlation.spearman`) and the top-k recall
    :math:`|\text{top}_k(\bar S) \cap \text{top}_k(\bar T)| / k`, the share of the truth's ``k``
    most important heads that the scorer also ranks among its ``k`` first
    (:func:`~.correlation.top_k_overlap`; ties broken by head index).
Per prompt
    :math:`\frac1N \sum_n \rho(S_n, T_n)` (prompts where either side is constant are left out).

Confidence intervals are percentile bootstraps over **prompts** (Efron & Tibshirani 1993;
:func:`~gradellm_lens.evaluation.statistics.bootstrap_statistic`): the ``N`` prompts are resampled
with replacement ``n_boot`` times and the pooled statistic is recomputed from the resampled
prompts, so the interval covers the variation between prompts, not only the ranking noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..evaluation.statistics import Estimate, bootstrap_ci, bootstrap_statistic
from .correlation import spearman, top_k_overlap
from .importance import HeadImportance

DEFAULT_KS: tuple[int, ...] = (5, 10, 20)


@dataclass(frozen=True)
class ScorerAgreement:
    """One scorer against the ground truth over ``n_prompts`` prompts (module docstring).

    Attributes:
        scorer: the scorer's name.
        spearman: pooled Spearman's ρ with its bootstrap CI over prompts.
        recall: ``k`` -> pooled top-k recall with its CI.
        per_prompt_spearman: mean per-prompt ρ with its CI (over the prompts where ρ is defined).
        n_prompts, n_heads: prompts and heads compared.
    """

    scorer: str
    spearman: Estimate
    recall: dict[int, Estimate]
    per_prompt_spearman: Estimate | None
    n_prompts: int
    n_heads: int

    def row(self) -> dict[str, Any]:
        """A flat table row: ``spearman``, ``spearman_low`` ... ``recall@k`` and its CI."""
        out: dict[str, Any] = {"scorer": self.scorer, "n_prompts": self.n_prompts, "n_heads": self.n_heads}
        items = [("spearman", self.spearman), *((f"recall@{k}", e) for k, e in self.recall.items())]
        items.append(("per_prompt_spearman", self.per_prompt_spearman))
        for key, estimate in items:
            out[key] = estimate.mean if estimate else float("nan")
            out[f"{key}_low"] = estimate.low if estimate else float("nan")
            out[f"{key}_high"] = estimate.high if estimate else float("nan")
        return out


def _stack(items: Sequence[HeadImportance], what: str) -> np.ndarray:
    """``[n, layer * head]`` scores, each prompt divided by its ``Σ|·|`` (0 stays 0)."""
    if not items:
        raise InvalidInputError(f"No {what}: pass one HeadImportance per prompt.")
    first = items[0]
    if any(i.layers != first.layers or i.scores.shape != first.scores.shape for i in items):
        raise InvalidInputError(f"Every {what} HeadImportance must cover the same layers and heads.")
    x = np.stack([i.values.numpy().astype(np.float64) for i in items])
    total = np.abs(x).sum(axis=1, keepdims=True)
    return np.divide(x, total, out=np.zeros_like(x), where=total > 0)


def scorer_agreement(
    truth: Sequence[HeadImportance],
    scores: Sequence[HeadImportance],
    *,
    scorer: str = "",
    ks: Sequence[int] = DEFAULT_KS,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> ScorerAgreement:
    """Spearman's ρ and top-k recall of ``scores`` against ``truth`` (one of each per prompt).

    Raises:
        InvalidInputError: different numbers of prompts, different heads, or ``k`` larger than the heads.
    """
    t, s = _stack(truth, "ground truth"), _stack(scores, "scorer")
    if t.shape != s.shape:
        raise InvalidInputError(
            f"The ground truth has {t.shape[0]} prompts x {t.shape[1]} heads, the scorer {s.shape[0]} x {s.shape[1]}."
        )
    n, n_heads = t.shape
    if bad := [k for k in ks if not 1 <= k <= n_heads]:
        raise InvalidInputError(f"k = {bad[0]} is outside 1..{n_heads} (the number of heads).")

    def pooled(statistic):
        return lambda idx: np.array([statistic(s[i].mean(axis=0), t[i].mean(axis=0)) for i in idx])

    rho = bootstrap_statistic(pooled(spearman), n, n_boot, level, seed)
    recall = {
        k: bootstrap_statistic(pooled(lambda a, b, k=k: top_k_overlap(b, a, k)), n, n_boot, level, seed) for k in ks
    }
    per_prompt = [spearman(s[i], t[i]) for i in range(n)]
    defined = [r for r in per_prompt if np.isfinite(r)]
    per_prompt_ci = bootstrap_ci(defined, n_boot, level, seed) if defined else None
    return ScorerAgreement(scorer, rho, recall, per_prompt_ci, n, n_heads)


__all__ = ["DEFAULT_KS", "ScorerAgreement", "scorer_agreement"]
