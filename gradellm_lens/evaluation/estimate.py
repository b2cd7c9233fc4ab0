"""How long an evaluation will take: a cost model, fed by one quick measurement before the run starts.

The run's cost is counted in forward passes, and the perturbed inputs of the π-Soft metrics dominate
it (Huang & Chan, arXiv 2601.03089; Zhao & Aletras 2023): every scored map of a step runs

    R = 2 · n_draws · (1 + len(π))

perturbed inputs (100 with the defaults), in forward batches of ``B = batch_size`` inputs.
A method scores ``M`` maps per step: itself and each control (``1 + len(controls)``), ``K =
random_maps`` for ``random``, one for ``uniform``. A pending (example, method) pair with ``S``
explained steps (1 for classification, at most ``max_new_tokens`` for generation) then takes

    t_pair = S · (a_m + M · R · b / B)

and each pending example adds ``S · 2 · f`` (greedy generation and the two reference inputs of each
step), where ``b`` is the time of one forward of ``B`` copies of a prompt (``min(B, R)`` copies when
``R`` is smaller: the size of the run's batches), ``f`` that of one copy, and ``a_m`` the time
method ``m`` takes to attribute one step. :func:`measure` times ``b``, ``f`` and every ``a_m`` once,
on the first pending example (after one warm-up forward); forward time grows
about linearly with the sequence length on these model sizes, so every time is scaled by the mean
prompt length of (up to :data:`LENGTH_SAMPLE`) pending examples, plus ``S / 2`` generated tokens,
over the measured prompt's length. The measurement runs under the machine's current load, as the
run will.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ..attribute import build_steps
from ..errors import LensError
from ..tensor_types import TokenIds

LENGTH_SAMPLE = 16
"""Pending examples whose prompts are tokenized for the mean prompt length."""


@dataclass(frozen=True)
class Measurement:
    """Seconds measured on one prompt of ``length`` tokens: ``forward_s`` (one copy), ``batch_s`` (a
    batch of ``batch_rows`` copies) and ``attribute_s`` (method label -> one step's attribution)."""

    length: int
    forward_s: float
    batch_s: float
    batch_rows: int
    attribute_s: dict[str, float]


@dataclass(frozen=True)
class RunEstimate:
    """The estimated time of a run's pending pairs (see the module docstring)."""

    seconds: float
    pairs: int
    examples: int
    steps: int
    generation: bool
    perturbed_inputs: int
    batch_size: int

    def describe(self) -> str:
        """One line for the terminal, e.g. ``"estimate: about 9 min for 18 pairs (...)"``."""
        each = f"up to {self.steps} steps" if self.generation else "1 step"
        text = (
            f"estimate: about {duration(self.seconds)} for {self.pairs} pair(s) ({self.examples} example(s), "
            f"{each} each; {self.perturbed_inputs:,} perturbed inputs in batches of {self.batch_size}), measured "
            "on the first example"
        )
        if self.seconds > 600:
            text += "; --methods, --draws, --pis, --controls and --random-maps set the cost"
        return text


def duration(seconds: float) -> str:
    """``"40 s"``, ``"12 min"`` or ``"3.4 h"``."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def inputs_per_map(n_draws: int, n_pis: int) -> int:
    """``R = 2 · n_draws · (1 + len(π))``: perturbed inputs of one scored map at one step."""
    return 2 * n_draws * (1 + n_pis)


def estimate(
    measured: Measurement,
    pending: Sequence[Sequence[str]],
    maps: Mapping[str, int],
    *,
    steps: int,
    generation: bool,
    inputs: int,
    batch_size: int,
    mean_length: float,
) -> RunEstimate:
    """The cost model of the module docstring (no timing here).

    Args:
        measured: the times of :func:`measure`.
        pending: per pending example, the labels of its pending methods.
        maps: method label -> maps scored per step (``M``).
        steps: explained steps per example (``S``; an upper bound for generation).
        generation: whether ``steps`` is an upper bound (generation) or exact (classification).
        inputs: perturbed inputs per map and step (:func:`inputs_per_map`).
        batch_size: perturbed inputs per forward batch (``B``).
        mean_length: mean prompt length of the pending examples, in tokens.
    """
    scale = (mean_length + (steps / 2 if generation else 0)) / measured.length
    map_s = inputs * measured.batch_s / measured.batch_rows  # R inputs, at the measured batch's time per input
    seconds = 0.0
    n_inputs = 0
    for labels in pending:
        seconds += steps * 2 * measured.forward_s
        for label in labels:
            seconds += steps * (measured.attribute_s[label] + maps[label] * map_s)
            n_inputs += steps * maps[label] * inputs
    return RunEstimate(
        seconds=seconds * scale,
        pairs=sum(len(labels) for labels in pending),
        examples=len(pending),
        steps=steps,
        generation=generation,
        perturbed_inputs=n_inputs,
        batch_size=batch_size,
    )


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(model, ids: TokenIds, methods: Mapping[str, object], batch_rows: int) -> Measurement:
    """Time one forward of ``ids`` (after a warm-up), one of ``batch_rows`` copies, and one step of
    every method's attribution (the step that predicts the model's greedy token after ``ids``).

    A method that raises a :class:`~gradellm_lens.errors.LensError` on this prompt is counted with
    the time it took to fail (the run records such pairs as failed).
    """
    device = next(model.parameters()).device
    prompt = ids[None].to(device)
    with torch.no_grad():
        next_token = int(model(prompt)[0, -1].argmax())  # also the warm-up
        forward_s = _timed(lambda: model(prompt))
        batch_s = _timed(lambda: model(prompt.expand(batch_rows, -1)))
    sequence = torch.cat([ids.cpu(), torch.tensor([next_token])])
    steps = build_steps(ids.shape[0], sequence)
    attribute_s = {}
    for label, method in methods.items():
        start = time.perf_counter()
        with warnings.catch_warnings():  # the run reports them, once
            warnings.simplefilter("ignore")
            try:
                method.attribute(sequence, steps)
            except LensError:
                pass
        attribute_s[label] = time.perf_counter() - start
    return Measurement(int(ids.shape[0]), forward_s, batch_s, batch_rows, attribute_s)
