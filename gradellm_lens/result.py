"""``AttributionResult``: the one result type every method, view, metric and file format shares.

Its files (``.npz`` and ``.json``, :meth:`AttributionResult.save` / :meth:`AttributionResult.load`)
are described, written and checked by :mod:`gradellm_lens.result_io`.
"""

from __future__ import annotations

import html
import json
import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .encoding import check_text
from .errors import HiddenTokensWarning, InvalidInputError, MissingPackageError, NumericalError
from .numerics import first_nonfinite_row, flat_rows, prefix_mask
from .result_io import MAX_LOAD_BYTES, load_result, result_arrays, result_meta, save_result
from .tensor_types import StepLayerHeadScores, StepScores, TokenIds
from .tokens import display_token, quote_token

_RENDERERS: dict[str, Callable[[AttributionResult], str]] = {}


def set_renderer(kind: str, render: Callable[[AttributionResult], str]) -> None:
    """Register how results are shown: ``"text"`` (:meth:`AttributionResult.show` in a terminal)
    or ``"html"`` (notebooks). :mod:`gradellm_lens.viz` registers both when it is imported."""
    _RENDERERS[kind] = render


@dataclass(frozen=True, eq=False)
class AttributionResult:
    """Step-wise attribution of one sequence.

    Attributes:
        tokens: string form of every token of the sequence (prompt + generated), in the
            tokenizer's alphabet (``"Ġcat"``); :func:`gradellm_lens.tokens.display_token` gives
            the text (``" cat"``).
        token_ids: ``[pos]`` token ids.
        prompt_length: number of prompt tokens; generated tokens follow.
        scores: ``[step, pos]`` scores; row ``t`` covers ``tokens[: step_positions[t] + 1]`` and is
            NaN after it.
        step_positions: position whose logits are explained at each step.
        target_ids: explained token id per step; ``contrast_ids`` the contrast (or None).
        target_logits: the explained scalar's value per step (the objective of the target, or
            target minus contrast when a contrast is given).
        method: which method produced the scores.
        variant: its named variant (or None).
        options: its resolved options.
        model: model name.
        layer_head: optional ``[step, layer, head, pos]`` decomposition (specific to the method;
            for Grad-ELLM the per-head contributions before ReLU), NaN after each step's prefix.
        layers: model layer index of each ``layer`` row.
        objective: ``logit``, ``log_prob`` or ``prob``.
        versions: library versions used.
        diagnostics: JSON-friendly facts about how the scores were computed (e.g.
            ``"gradient_path"``, integrated gradients' ``"completeness_gap"``).
        target_tokens: string form of each step's explained token (a label word too, even when
            it is not in the sequence); derived from the sequence when not given.
        contrast_tokens: string form of each step's contrast token (None without a contrast).
        user_span: ``(start, end)``, the prompt tokens of the user's own text (without a chat
            template, its system prompt or a BOS the tokenizer adds), or None where unknown. The
            views (:meth:`show`, the notebook display, the HTML report) and :meth:`to_dataframe`
            show those tokens and the generated ones by default, with a note that the rest is
            hidden; ``full_prompt=True`` shows every token. The scores themselves always cover the
            whole prompt.

    Validation (``__post_init__``, so also on :meth:`load` and :meth:`with_scores`): shapes must
    agree, step positions lie inside the sequence, ids are non-negative, token strings are valid
    Unicode (no lone surrogate, which no HTML page or terminal can encode), and every score and
    ``layer_head`` entry inside a step's prefix and every ``target_logits`` entry must be finite
    (:class:`~gradellm_lens.errors.NumericalError` otherwise): NaN only ever means "outside this
    step's prefix". A *flat* step (all prefix scores equal, e.g. all zero) is valid but carries no
    ranking; see :attr:`flat_steps`.

    Results compare and hash by identity (they hold tensors), as inseq's attributions do; compare
    fields, or :meth:`to_dict`, to test two results for equal content.
    """

    tokens: tuple[str, ...]
    token_ids: TokenIds
    prompt_length: int
    scores: StepScores
    step_positions: tuple[int, ...]
    target_ids: tuple[int, ...]
    target_logits: tuple[float, ...]
    method: str
    model: str
    contrast_ids: tuple[int | None, ...] = ()
    variant: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    layer_head: StepLayerHeadScores | None = None
    layers: tuple[int, ...] = ()
    objective: str = "logit"
    versions: dict[str, str] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    target_tokens: tuple[str, ...] = ()
    contrast_tokens: tuple[str | None, ...] = ()
    user_span: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.scores.ndim != 2:
            raise InvalidInputError(f"scores must be [step, pos], got shape {tuple(self.scores.shape)}.")
        n_steps, n_pos = self.scores.shape
        if len(self.tokens) != n_pos or self.token_ids.shape[0] != n_pos:
            raise InvalidInputError(f"{len(self.tokens)} tokens but scores cover {n_pos} positions.")
        if not self.contrast_ids:
            object.__setattr__(self, "contrast_ids", (None,) * n_steps)
        for name in ("step_positions", "target_ids", "target_logits", "contrast_ids"):
            if len(getattr(self, name)) != n_steps:
                raise InvalidInputError(f"{name} has {len(getattr(self, name))} entries for {n_steps} steps.")
        if not 0 <= self.prompt_length <= n_pos:
            raise InvalidInputError(f"prompt_length {self.prompt_length} is outside 0..{n_pos}.")
        if self.user_span is not None:
            span = tuple(self.user_span)
            ints = len(span) == 2 and all(isinstance(x, int) for x in span)
            if not ints or not 0 <= span[0] < span[1] <= self.prompt_length:
                raise InvalidInputError(
                    f"user_span {self.user_span} is not a (start, end) range inside the prompt's "
                    f"{self.prompt_length} tokens."
                )
            object.__setattr__(self, "user_span", span)
        if bad := [p for p in self.step_positions if not 0 <= p < n_pos]:
            raise InvalidInputError(f"Step position {bad[0]} is outside the sequence of {n_pos} tokens.")
        ids = [*self.target_ids, *(c for c in self.contrast_ids if c is not None)]
        if (n_pos and int(self.token_ids.min()) < 0) or any(i < 0 for i in ids):
            raise InvalidInputError("Token ids (token_ids, target_ids, contrast_ids) must be non-negative.")
        if self.layer_head is not None:
            if self.layer_head.ndim != 4 or self.layer_head.shape[0] != n_steps or self.layer_head.shape[3] != n_pos:
                shape = tuple(self.layer_head.shape)
                raise InvalidInputError(f"layer_head must be [step={n_steps}, layer, head, pos={n_pos}], got {shape}.")
            if self.layer_head.shape[1] != len(self.layers):
                n_layers = self.layer_head.shape[1]
                raise InvalidInputError(f"layer_head has {n_layers} layers but layers lists {len(self.layers)}.")
        self._check_finite(n_pos)
        self._fill_token_strings(n_steps)
        for name in ("tokens", "target_tokens", "contrast_tokens"):  # shown in reports, terminals and files
            for i, token in enumerate(getattr(self, name)):
                if token is not None:
                    check_text(token, f"token {i} of {name}")

    def _check_finite(self, n_pos: int) -> None:
        inside = prefix_mask(self.step_positions, n_pos)
        for name, values in (("scores", self.scores), ("layer_head", self.layer_head)):
            step = None if values is None else first_nonfinite_row(values, inside)
            if step is not None:
                raise NumericalError(
                    f"{name} of step {step} contain NaN/inf inside the attributed prefix: the {self.method} "
                    "attribution is numerically invalid (NaN may only mark positions after a step's prefix)."
                )
        if bad := [t for t, v in enumerate(self.target_logits) if not math.isfinite(v)]:
            value = self.target_logits[bad[0]]
            what = f"The explained {self.objective} (target_logits) of step {bad[0]}"
            raise NumericalError(f"{what} is not finite ({value}).")

    def _fill_token_strings(self, n_steps: int) -> None:
        """Derive ``target_tokens`` / ``contrast_tokens`` from the sequence when not given."""
        if not self.target_tokens:
            derived = (self._token_string(p + 1, i) for p, i in zip(self.step_positions, self.target_ids))
            object.__setattr__(self, "target_tokens", tuple(derived))
        if not self.contrast_tokens:
            derived = (None if c is None else f"<id {c}>" for c in self.contrast_ids)
            object.__setattr__(self, "contrast_tokens", tuple(derived))
        for name in ("target_tokens", "contrast_tokens"):
            if len(getattr(self, name)) != n_steps:
                raise InvalidInputError(f"{name} has {len(getattr(self, name))} entries for {n_steps} steps.")

    def _token_string(self, position: int, token_id: int) -> str:
        same = position < len(self.tokens) and int(self.token_ids[position]) == token_id
        return self.tokens[position] if same else f"<id {token_id}>"

    # ---- convenience ------------------------------------------------------------------------------
    @property
    def n_steps(self) -> int:
        return int(self.scores.shape[0])

    @property
    def generated_tokens(self) -> tuple[str, ...]:
        return self.tokens[self.prompt_length :]

    @property
    def flat_steps(self) -> tuple[int, ...]:
        """Steps whose scores single out no token: all equal over the prefix (or all zero).

        For Grad-ELLM this happens when every selected layer's map is negative at every position,
        so the ReLU leaves only zeros ("no positive evidence"). The zeros are reported as they are,
        never rescaled into a ranking; :func:`gradellm_lens.explain` warns about such steps.
        """
        return tuple(int(t) for t in flat_rows(self.scores).nonzero().flatten())

    def explained(self, step: int) -> str:
        """What ``step`` explains, as text: ``"' positive'"`` or ``"' positive' vs ' negative'"``."""
        target = quote_token(self.target_tokens[step])
        contrast = self.contrast_tokens[step]
        return target if contrast is None else f"{target} vs {quote_token(contrast)}"

    def step_scores(self, step: int = 0) -> torch.Tensor:
        """Scores of one step over its prefix (no NaN padding)."""
        return self.scores[step, : self.step_positions[step] + 1]

    def with_scores(self, scores: StepScores, **changes: Any) -> AttributionResult:
        """A copy with new scores (e.g. after aggregation); other fields may be replaced too."""
        return replace(self, scores=scores, **changes)

    # ---- looking at it ----------------------------------------------------------------------------
    def visible_positions(self, full_prompt: bool = False) -> list[int]:
        """The positions the views show: the user's text and the generated tokens (every position with
        ``full_prompt=True`` or where :attr:`user_span` is unknown)."""
        if full_prompt or self.user_span is None:
            return list(range(len(self.tokens)))
        start, end = self.user_span
        return [*range(start, end), *range(self.prompt_length, len(self.tokens))]

    @property
    def hidden_note(self) -> str | None:
        """The note the views show when they hide prompt tokens (None when nothing is hidden)."""
        n = len(self.tokens) - len(self.visible_positions())
        if not n:
            return None
        return (f"Showing the user's text: {n} other prompt token(s) (chat template, system prompt, special "
                "tokens) are hidden, not removed; full_prompt=True shows every token.")  # fmt: skip

    def user_view(self) -> AttributionResult:
        """A copy restricted to :meth:`visible_positions` (for display: each step's row ends at its last
        visible position; the explained tokens are unchanged); ``self`` when nothing is hidden."""
        keep = self.visible_positions()
        if len(keep) == len(self.tokens):
            return self
        index = torch.tensor(keep)
        positions = tuple(max(j for j, p in enumerate(keep) if p <= q) for q in self.step_positions)
        start, end = self.user_span  # type: ignore[misc]
        return replace(
            self,
            tokens=tuple(self.tokens[p] for p in keep),
            token_ids=self.token_ids[index],
            prompt_length=end - start,
            scores=self.scores[:, index],
            step_positions=positions,
            layer_head=None if self.layer_head is None else self.layer_head[..., index],
            user_span=None,
            diagnostics={**self.diagnostics, "hidden_note": self.hidden_note, "shown_positions": keep},
        )

    def displayed(self, full_prompt: bool = False) -> tuple[AttributionResult, str | None]:
        """What a view shows and the note it adds: ``(self.user_view(), self.hidden_note)`` by default,
        ``(self, None)`` with ``full_prompt=True``."""
        return (self, None) if full_prompt else (self.user_view(), self.hidden_note)

    def __repr__(self) -> str:
        variant = "" if self.variant in (None, "default") else f" ({self.variant})"
        steps = ", ".join(self.explained(t) for t in range(min(self.n_steps, 3)))
        more = ", ..." if self.n_steps > 3 else ""
        layer_head = "" if self.layer_head is None else f", layer_head={list(self.layer_head.shape)}"
        return (
            f"<AttributionResult {self.method}{variant} on {self.model}: {len(self.tokens)} tokens "
            f"({self.prompt_length} prompt), {self.n_steps} step(s) [{steps}{more}]{layer_head}>"
        )

    def show(self, *, full_prompt: bool = False, **options: Any) -> None:
        """Show the result: rich HTML in a notebook, else a heatmap on stdout (colour when a terminal).

        The user's text and the generated tokens by default (see :attr:`user_span`; a note says what
        is hidden); ``full_prompt=True`` shows every token. ``options`` go to
        :func:`gradellm_lens.viz.render` (e.g. ``max_steps=2``, ``color=False``).
        """
        if _in_notebook() and not options:
            from IPython.display import HTML, display

            display(HTML(self._render_html(full_prompt)))
            return
        shown, note = self.displayed(full_prompt)
        print(shown._render("text", **options) + (f"\n{note}" if note else ""))

    def _repr_html_(self) -> str | None:
        return self._render_html(full_prompt=False) if "html" in _RENDERERS else None

    def _render_html(self, full_prompt: bool) -> str:
        shown, note = self.displayed(full_prompt)
        note_html = f'<p style="font-size:0.85em;color:#555">{html.escape(note)}</p>' if note else ""
        return shown._render("html") + note_html

    def _render(self, kind: str, **options: Any) -> str:
        if kind not in _RENDERERS:
            raise InvalidInputError(f"No {kind} renderer is registered: import gradellm_lens.viz first.")
        return _RENDERERS[kind](self, **options)

    def to_dataframe(self, *, layer_head: bool = False, full_prompt: bool = False):
        """The scores as a long-format ``pandas.DataFrame`` (pandas is imported here, on first use).

        One row per step and prefix position: ``step`` (0-based), ``target`` (the explained token as
        text, ``"' positive' vs ' negative'"`` with a contrast), ``position``, ``token`` (text),
        ``score``. With ``layer_head=True``, one row per step, layer, head and position, with
        ``layer`` (model index), ``head`` and ``score`` the per-head contribution.

        Only the user's text and the generated tokens by default (see :attr:`user_span`), with their
        positions in the full sequence; a :class:`~gradellm_lens.errors.HiddenTokensWarning` says how
        many prompt tokens are left out, and ``full_prompt=True`` gives every position.
        """
        try:
            import pandas as pd
        except ModuleNotFoundError:
            raise MissingPackageError("to_dataframe needs pandas: pip install pandas.") from None
        if layer_head and self.layer_head is None:
            raise InvalidInputError(f"The {self.method!r} result has no layer_head decomposition.")
        text = [display_token(t) for t in self.tokens]
        shown = set(self.visible_positions(full_prompt))
        if not full_prompt and self.hidden_note:
            warnings.warn(self.hidden_note, HiddenTokensWarning, stacklevel=2)
        rows = []
        for t in range(self.n_steps):
            n = self.step_positions[t] + 1
            base = {"step": t, "target": self.explained(t)}
            if not layer_head:
                rows += [{**base, "position": i, "token": text[i], "score": float(s)}
                         for i, s in enumerate(self.scores[t, :n].tolist()) if i in shown]  # fmt: skip
                continue
            values = self.layer_head[t, :, :, :n].tolist()
            for li, layer in enumerate(self.layers):
                for h, per_pos in enumerate(values[li]):
                    rows += [{**base, "layer": layer, "head": h, "position": i, "token": text[i], "score": s}
                             for i, s in enumerate(per_pos) if i in shown]  # fmt: skip
        columns = ["step", "target", *(["layer", "head"] if layer_head else []), "position", "token", "score"]
        return pd.DataFrame(rows, columns=columns)

    # ---- persistence (the file format: :mod:`gradellm_lens.result_io`) ------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-ready values: the meta fields and the arrays as lists (NaN -> None)."""
        arrays = {k: np.where(np.isnan(v), None, v).tolist() if v.dtype.kind == "f" else v.tolist()
                  for k, v in result_arrays(self).items()}  # fmt: skip
        return {**json.loads(json.dumps(result_meta(self), default=str)), **arrays}

    def to_json(self, indent: int | None = None) -> str:
        """:meth:`to_dict` as a JSON string (strict JSON: no NaN literals)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def save(self, path: str | Path) -> Path:
        """Write the ``.npz`` (default) or ``.json`` format (:mod:`gradellm_lens.result_io`); returns the path.

        Another suffix gets ``.npz`` appended. The file is written under a temporary name unique
        to this call (process id + random) and renamed into place, so an interrupted save never
        leaves a truncated file at ``path`` and concurrent saves to one path do not collide
        (the last rename wins). Temporary files left by a killed save are removed by the next
        save to the same path (when their process is gone), and never read by :meth:`load`.
        """
        return save_result(self, path)

    @classmethod
    def load(cls, path: str | Path, *, max_bytes: int = MAX_LOAD_BYTES) -> AttributionResult:
        """Read a file written by :meth:`save` (``.npz`` or ``.json``), checking it first.

        Args:
            path: the file.
            max_bytes: refuse files whose arrays would need more memory than this.

        Raises:
            InvalidInputError: no such file, not an attribution file, another format version, a
                missing, wrong-typed or wrong-shaped field, inconsistent sizes, arrays larger than
                ``max_bytes``, or NaN/inf inside a step's prefix; the message names the file and
                the field.
        """
        return load_result(cls, path, max_bytes=max_bytes)


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (where ``display`` renders HTML)."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})
