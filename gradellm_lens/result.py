"""``AttributionResult``: the one result type every method, view, metric and file format shares.

File format (``.npz``, written by :meth:`AttributionResult.save`): numpy arrays ``token_ids``,
``scores`` (``[step, pos]``, float32, NaN after each step's prefix), ``target_ids``,
``contrast_ids`` (-1 = none), ``target_logits``, ``step_positions`` and, when present,
``layer_head`` (``[step, layer, head, pos]``); plus ``meta``, a UTF-8 JSON string with
``format_version``, ``tokens``, ``prompt_length``, ``method``, ``variant``, ``options``, ``model``,
``layers``, ``objective`` and ``versions``. ``np.load(path)`` reads it without this package.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import InvalidInputError, NumericalError
from .numerics import first_nonfinite_row, flat_rows, prefix_mask
from .typing import StepLayerHeadScores, StepScores, TokenIds

FORMAT_VERSION = 1


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose behaviour a result depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("gradellm-lens", "torch", "transformer-lens", "transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "unknown"
    return out


@dataclass(frozen=True)
class AttributionResult:
    """Step-wise attribution of one sequence.

    Attributes:
        tokens: string form of every token of the sequence (prompt + generated).
        token_ids: ``[pos]`` token ids.
        prompt_length: number of prompt tokens; generated tokens follow.
        scores: ``[step, pos]`` scores; row ``t`` covers ``tokens[: step_positions[t] + 1]`` and is
            NaN after it.
        step_positions: position whose logits are explained at each step.
        target_ids: explained token id per step; ``contrast_ids`` the contrast (or None).
        target_logits: the explained scalar's value per step (logit by default).
        method, variant, options: which method produced the scores and how it was configured.
        model: model name.
        layer_head: optional ``[step, layer, head, pos]`` decomposition (method-specific; for
            Grad-ELLM the per-head contributions before ReLU).
        layers: model layer index of each ``layer`` row.
        objective: ``logit``, ``log_prob`` or ``prob``.
        versions: library versions used.

    Validation (``__post_init__``, so also on :meth:`load` and :meth:`with_scores`): shapes must
    agree, step positions lie inside the sequence, and every score inside a step's prefix and every
    ``target_logits`` entry must be finite (:class:`~gradellm_lens.errors.NumericalError`
    otherwise): NaN only ever means "outside this step's prefix". A *flat* step (all prefix scores
    equal, e.g. all zero) is valid but carries no ranking; see :attr:`flat_steps`.
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

    def __post_init__(self) -> None:
        if self.scores.ndim != 2:
            raise InvalidInputError(f"scores must be [step, pos], got shape {tuple(self.scores.shape)}.")
        n_steps, n_pos = self.scores.shape
        if len(self.tokens) != n_pos or self.token_ids.shape[0] != n_pos:
            raise InvalidInputError(f"{len(self.tokens)} tokens but scores cover {n_pos} positions.")
        for name in ("step_positions", "target_ids", "target_logits"):
            if len(getattr(self, name)) != n_steps:
                raise InvalidInputError(f"{name} has {len(getattr(self, name))} entries for {n_steps} steps.")
        if not self.contrast_ids:
            object.__setattr__(self, "contrast_ids", (None,) * n_steps)
        if self.layer_head is not None and self.layer_head.shape[0] != n_steps:
            raise InvalidInputError("layer_head must have one row per step.")
        if not 0 <= self.prompt_length <= n_pos:
            raise InvalidInputError(f"prompt_length {self.prompt_length} is outside 0..{n_pos}.")
        if bad := [p for p in self.step_positions if not 0 <= p < n_pos]:
            raise InvalidInputError(f"Step position {bad[0]} is outside the sequence of {n_pos} tokens.")
        step = first_nonfinite_row(self.scores, prefix_mask(self.step_positions, n_pos))
        if step is not None:
            raise NumericalError(
                f"Scores of step {step} contain NaN/inf inside the attributed prefix: the {self.method} "
                "attribution is numerically invalid (NaN may only mark positions after a step's prefix)."
            )
        if bad := [t for t, v in enumerate(self.target_logits) if not np.isfinite(v)]:
            value = self.target_logits[bad[0]]
            raise NumericalError(f"The explained {self.objective} of step {bad[0]} is not finite ({value}).")

    # ---- convenience ------------------------------------------------------------------------------
    @property
    def n_steps(self) -> int:
        return int(self.scores.shape[0])

    @property
    def generated_tokens(self) -> tuple[str, ...]:
        return self.tokens[self.prompt_length :]

    @property
    def target_tokens(self) -> tuple[str, ...]:
        """The explained token per step (for generated targets, the token after the prefix)."""
        out = []
        for pos, tid in zip(self.step_positions, self.target_ids):
            nxt = pos + 1
            same = nxt < len(self.tokens) and int(self.token_ids[nxt]) == tid
            out.append(self.tokens[nxt] if same else f"<id {tid}>")
        return tuple(out)

    @property
    def flat_steps(self) -> tuple[int, ...]:
        """Steps whose scores single out no token: all equal over the prefix (or all zero).

        For Grad-ELLM this happens when every selected layer's map is negative at every position,
        so the ReLU leaves only zeros ("no positive evidence"). The zeros are reported as they are,
        never rescaled into a ranking; :func:`gradellm_lens.explain` warns about such steps.
        """
        return tuple(int(t) for t in flat_rows(self.scores).nonzero().flatten())

    def step_scores(self, step: int = 0) -> torch.Tensor:
        """Scores of one step over its prefix (no NaN padding)."""
        return self.scores[step, : self.step_positions[step] + 1]

    def with_scores(self, scores: StepScores, **changes: Any) -> AttributionResult:
        """A copy with new scores (e.g. after aggregation); other fields may be replaced too."""
        return replace(self, scores=scores, **changes)

    # ---- persistence --------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the ``.npz`` format described in the module docstring; returns the path."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz")
        meta = {
            "format_version": FORMAT_VERSION,
            "tokens": list(self.tokens),
            "prompt_length": self.prompt_length,
            "method": self.method,
            "variant": self.variant,
            "options": self.options,
            "model": self.model,
            "layers": list(self.layers),
            "objective": self.objective,
            "versions": self.versions,
        }
        arrays = {
            "token_ids": self.token_ids.cpu().numpy().astype(np.int64),
            "scores": self.scores.cpu().numpy().astype(np.float32),
            "step_positions": np.asarray(self.step_positions, dtype=np.int64),
            "target_ids": np.asarray(self.target_ids, dtype=np.int64),
            "contrast_ids": np.asarray([-1 if c is None else c for c in self.contrast_ids], dtype=np.int64),
            "target_logits": np.asarray(self.target_logits, dtype=np.float64),
            "meta": np.asarray(json.dumps(meta, default=str)),
        }
        if self.layer_head is not None:
            arrays["layer_head"] = self.layer_head.cpu().numpy().astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        try:  # write-then-rename: an interrupted save never leaves a truncated file at ``path``
            np.savez_compressed(tmp, **arrays)
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path) -> AttributionResult:
        """Read a file written by :meth:`save`.

        Raises:
            InvalidInputError: no such file, not an ``.npz`` archive, missing or malformed fields,
                another format version, or inconsistent shapes; the message names the file.
            NumericalError: the file holds NaN/inf inside a step's prefix.
        """
        path = Path(path)
        if not path.is_file():
            raise InvalidInputError(f"No attribution file at {path}.")
        if not zipfile.is_zipfile(path):
            raise InvalidInputError(f"{path} is not a gradellm-lens attribution file (not an .npz archive).")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {k: data[k] for k in data.files if k != "meta"}
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise InvalidInputError(f"{path} is not a gradellm-lens attribution file ({exc}).") from None
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
            version = meta.get("format_version") if isinstance(meta, dict) else None
            raise InvalidInputError(f"{path} has format version {version}, expected {FORMAT_VERSION}.")
        try:
            return cls._from_fields(meta, arrays)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            if isinstance(exc, NumericalError):
                raise
            what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise InvalidInputError(f"{path} is not a valid gradellm-lens attribution file ({what}).") from None

    @classmethod
    def _from_fields(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> AttributionResult:
        return cls(
            tokens=tuple(meta["tokens"]),
            token_ids=torch.from_numpy(arrays["token_ids"]),
            prompt_length=int(meta["prompt_length"]),
            scores=torch.from_numpy(arrays["scores"]),
            step_positions=tuple(int(x) for x in arrays["step_positions"]),
            target_ids=tuple(int(x) for x in arrays["target_ids"]),
            contrast_ids=tuple(None if c < 0 else int(c) for c in arrays["contrast_ids"]),
            target_logits=tuple(float(x) for x in arrays["target_logits"]),
            method=meta["method"],
            variant=meta["variant"],
            options=meta["options"],
            model=meta["model"],
            layer_head=torch.from_numpy(arrays["layer_head"]) if "layer_head" in arrays else None,
            layers=tuple(meta["layers"]),
            objective=meta["objective"],
            versions=meta["versions"],
        )
