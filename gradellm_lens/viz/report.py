"""Self-contained HTML reports (placeholder: a static table; CircuitsVis views come with issue 5)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

from ..result import AttributionResult
from .tokens import display_token


def write_report(results: AttributionResult | Sequence[AttributionResult], path: str | Path, title: str = "gradellm-lens report") -> Path:
    results = [results] if isinstance(results, AttributionResult) else list(results)
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>"]
    for r in results:
        parts.append(f"<h2>{html.escape(r.method)} ({html.escape(str(r.variant))})</h2>")
        for t in range(r.n_steps):
            scores = r.step_scores(t).tolist()
            vmax = max([s for s in scores if math.isfinite(s)], default=0.0) or 1.0
            cells = "".join(
                f"<span style='background:rgba(220,30,30,{max(0.0, s) / vmax:.3f})'>{html.escape(display_token(tok))}</span>"
                for tok, s in zip(r.tokens, scores)
            )
            parts.append(f"<p><b>{html.escape(display_token(r.target_tokens[t]))}</b>: {cells}</p>")
    path = Path(path)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
