"""The evaluation runner: examples x methods -> per-step faithfulness, one JSONL line per pair.

For each example of the task (deterministic hash order; this shard's share, ``i % num_shards ==
shard_index``):

1. build the prompt (task template; chat or plain), decode greedily (classification: one token;
   generation: up to ``max_new_tokens``) and let the task judge the output (accuracy for
   classification);
2. for each method whose (example, configuration) pair is not in the results file yet: attribute
   every generated step in one call, then score each step with
   :func:`~gradellm_lens.metrics.evaluate_step` (``perturb="all"``: every prefix position but BOS;
   ``"user_text"``: only the dataset-text tokens of the prompt);
3. append one line (:mod:`.store`) with per-step metrics, their mean over the steps, the
   task's judgement and timings.

Failure handling: anything the library raises on purpose for one example (NaN/inf logits or
gradients, non-finite attribution scores, a prompt longer than the context, ...) is recorded as
``status: "failed"`` with the reason and never averaged. Steps the metric flags ``degenerate``
(zeroing every perturbable embedding did not lower the target probability, so Soft-NS/NC are
undefined) stay in the line but are left out of the means; a pair with only degenerate steps gets
``status: "degenerate"``. Steps whose scores single out no perturbable token (all zero or all equal)
are scored as the uniform map, as the metric defines; they are flagged ``flat`` per step and
counted in ``n_flat`` (and in the summary), not dropped.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm.auto import tqdm

from ..attribute import build_steps, greedy_continuation
from ..errors import InvalidInputError, LensError, NumericalError, unknown_name_error
from ..metrics import FaithfulnessConfig, evaluate_step
from ..metrics.positions import all_prefix_mask
from ..models import model_info
from ..result import library_versions
from ..tasks import Example, PromptedExample, Task, make_task
from .specs import MethodSpec, build_methods, parse_method_specs
from .store import OPEN_MODES, OpenMode, ResultsFile, RunHeader

PerturbMode = Literal["all", "user_text"]
PERTURB_MODES: tuple[str, ...] = ("all", "user_text")
CONTROLS: tuple[str, ...] = ("shuffled", "rank")
METRIC_KEYS: tuple[str, ...] = ("soft_ns", "soft_nc", "auc_pi_ns", "auc_pi_nc", "mean_score")
CURVE_KEYS: tuple[str, ...] = ("pi_ns", "pi_nc")
_STEP_DROP = ("config", "pis")


@dataclass(frozen=True)
class EvaluationConfig:
    """Options of a run (the metric options live in ``metrics``).

    Attributes:
        n: number of examples (the first ``n`` of the seeded hash order; None: all).
        seed: sampling seed (see :func:`gradellm_lens.tasks.data.order_key`).
        perturb: ``"all"`` (every prefix position but BOS, default) or ``"user_text"``.
        metrics: faithfulness metric options.
        shard_index, num_shards: evaluate examples ``i`` with ``i % num_shards == shard_index``.
        mode: ``"resume"`` (default; refuse a file with other options), ``"overwrite"`` or
            ``"allow_mixed"``.
        progress: show a tqdm progress bar.
        min_rho: steps whose relative drop ``ρ = (p(ŷ|x) - p(ŷ|x_∅)) / p(ŷ|x)`` is below this are
            *ill-conditioned* (masking the perturbable text barely moves the prediction).
        include_ill_conditioned: keep ill-conditioned steps in the means (default: leave them out).
        random_maps: number K of independent maps the ``random`` baseline is averaged over.
        controls: per-method controls evaluated beside each method: ``"shuffled"`` (its scores
            randomly reordered over the perturbable positions) and/or ``"rank"`` (rank-normalised).
    """

    n: int | None = None
    seed: int = 0
    perturb: PerturbMode = "all"
    metrics: FaithfulnessConfig = field(default_factory=FaithfulnessConfig)
    shard_index: int = 0
    num_shards: int = 1
    mode: OpenMode = "resume"
    progress: bool = True
    min_rho: float = 0.1
    include_ill_conditioned: bool = False
    random_maps: int = 10
    controls: tuple[str, ...] = ("shuffled", "rank")

    def __post_init__(self) -> None:
        if self.n is not None and (isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1):
            raise InvalidInputError(f"n must be a positive number of examples (or None for all), got {self.n!r}.")
        if self.perturb not in PERTURB_MODES:
            raise unknown_name_error("perturb option", self.perturb, PERTURB_MODES)
        if self.mode not in OPEN_MODES:
            raise InvalidInputError(f"mode must be one of {', '.join(OPEN_MODES)}, got {self.mode!r}.")
        if not isinstance(self.metrics, FaithfulnessConfig):
            raise InvalidInputError(f"metrics must be a FaithfulnessConfig, got {type(self.metrics).__name__}.")
        if isinstance(self.num_shards, bool) or not isinstance(self.num_shards, int) or self.num_shards < 1:
            raise InvalidInputError(f"num_shards must be a positive integer, got {self.num_shards!r}.")
        if not isinstance(self.shard_index, int) or not 0 <= self.shard_index < self.num_shards:
            raise InvalidInputError(f"shard_index must be in 0..{self.num_shards - 1}, got {self.shard_index!r}.")
        if isinstance(self.min_rho, bool) or not isinstance(self.min_rho, (int, float)) or not 0 <= self.min_rho < 1:
            raise InvalidInputError(f"min_rho must be a number in [0, 1), got {self.min_rho!r}.")
        if not isinstance(self.include_ill_conditioned, bool):
            raise InvalidInputError(f"include_ill_conditioned must be True or False, got {self.include_ill_conditioned!r}.")
        if isinstance(self.random_maps, bool) or not isinstance(self.random_maps, int) or self.random_maps < 1:
            raise InvalidInputError(f"random_maps must be a positive integer, got {self.random_maps!r}.")
        controls = tuple(self.controls)
        for control in controls:
            if control not in CONTROLS:
                raise unknown_name_error("control", control, CONTROLS)
        if len(set(controls)) != len(controls):
            raise InvalidInputError(f"controls lists a control twice: {controls}.")
        object.__setattr__(self, "controls", controls)


@dataclass(frozen=True)
class RunReport:
    """What a run did: ``written`` new lines (``failed`` of them), ``skipped`` pairs already done."""

    path: Path
    n_examples: int
    written: int
    skipped: int
    failed: int
    dropped_partial: bool
    elapsed_s: float


def results_path(out_dir: str | Path, shard_index: int = 0, num_shards: int = 1) -> Path:
    """``out_dir/results.jsonl``, or ``results.shard-<i>-of-<n>.jsonl`` for a sharded run."""
    name = "results.jsonl" if num_shards == 1 else f"results.shard-{shard_index}-of-{num_shards}.jsonl"
    return Path(out_dir) / name


def _without_batch_size(options: dict[str, Any]) -> dict[str, Any]:
    """Drop throughput knobs that do not change results, so a rerun may use another batch size."""
    return {k: v for k, v in options.items() if k != "batch_size"}


def run_header(model, task: Task, methods: dict[str, Any], config: EvaluationConfig) -> RunHeader:
    """The configuration recorded in (and compared against) the results file."""
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    common = {
        "task": task.describe(model),
        "model": {"name": model_info(model).name, "dtype": dtype},
        "metrics": _without_batch_size(config.metrics.to_dict()),
        "perturb": config.perturb,
    }
    described = {label: _without_batch_size(m.describe()) for label, m in methods.items()}
    return RunHeader(common, described, config.shard_index, config.num_shards, library_versions())


def _perturbable(prompted: PromptedExample, length: int, mode: PerturbMode) -> torch.Tensor | None:
    if mode == "all":
        return None  # the metric's default: every position but BOS
    return prompted.user_mask(length) & all_prefix_mask(length)


def _mean_over_steps(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    valid = [s for s in steps if not s["degenerate"]]
    if not valid:
        return None
    out: dict[str, Any] = {k: sum(s[k] for s in valid) / len(valid) for k in METRIC_KEYS}
    for key in CURVE_KEYS:
        out[key] = [sum(vals) / len(valid) for vals in zip(*(s[key] for s in valid))]
    return out


def evaluate_pair(
    model,
    method,
    sequence: torch.Tensor,
    steps: Sequence,
    prompted: PromptedExample,
    config: EvaluationConfig,
) -> dict[str, Any]:
    """Attribute all ``steps`` of ``sequence`` with ``method`` and score each step.

    Raises:
        NumericalError: the method's scores are NaN/inf on a step's prefix.
    """
    t0 = time.perf_counter()
    scores = method.attribute(sequence, steps).scores
    t1 = time.perf_counter()
    rows = []
    for t, step in enumerate(steps):
        length = step.position + 1
        row = scores[t, :length]
        if not torch.isfinite(row).all():
            raise NumericalError(f"the attribution scores of step {t} contain NaN/inf (non-finite gradients?)")
        result = evaluate_step(
            model,
            sequence[:length],
            step.target,
            row,
            perturbable=_perturbable(prompted, length, config.perturb),
            config=config.metrics,
        )
        values = {k: v for k, v in result.to_dict().items() if k not in _STEP_DROP}
        rows.append({"position": step.position, "target_id": step.target.token_id, **values})
    t2 = time.perf_counter()
    mean = _mean_over_steps(rows)
    return {
        "status": "ok" if mean is not None else "degenerate",
        "error": None,
        "n_steps": len(rows),
        "n_degenerate": sum(r["degenerate"] for r in rows),
        "n_flat": sum(r["flat"] for r in rows),
        "pis": list(config.metrics.pis),
        "mean": mean,
        "steps": rows,
        "timing": {"attribute_s": round(t1 - t0, 4), "metrics_s": round(t2 - t1, 4)},
    }


def _failure(exc: BaseException) -> dict[str, Any]:
    return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "mean": None, "steps": []}


def run_evaluation(
    model,
    task: str | Task,
    methods: str | Sequence[str | MethodSpec],
    out: str | Path,
    config: EvaluationConfig = EvaluationConfig(),
    *,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> RunReport:
    """Evaluate ``methods`` on ``task`` and append the results to the JSONL file ``out``.

    Args:
        model: a ``TransformerBridge`` (:func:`gradellm_lens.load_model`).
        task: a task name (:func:`gradellm_lens.tasks.list_tasks`) or instance.
        methods: ``"grad_ellm,grad_ellm:reference,integrated_gradients"``, a list of such specs, or
            :class:`~.specs.MethodSpec` objects (see :mod:`.specs`).
        out: results file; resumed when it exists (see ``config.mode``).
        config: run options.
        on_record: called with each record right after it is written (progress hooks, tests).

    Returns:
        A :class:`RunReport`. Interrupting (Ctrl-C) leaves every finished pair in the file; rerun
        the same call to continue.
    """
    start = time.perf_counter()
    task = make_task(task)
    specs = parse_method_specs(methods)
    examples = task.load(config.n, config.seed)
    mine = [(i, ex) for i, ex in enumerate(examples) if i % config.num_shards == config.shard_index]
    built = build_methods(specs, model)
    header = run_header(model, task, built, config)
    fingerprints = {label: header.method_fingerprint(label) for label in built}
    written = failed = 0
    with ResultsFile(out, header, config.mode) as store:
        pending = [(i, ex, [lb for lb in built if (ex.id, fingerprints[lb]) not in store.done]) for i, ex in mine]
        pending = [p for p in pending if p[2]]
        total = sum(len(p[2]) for p in pending)
        skipped = len(mine) * len(built) - total
        bar = tqdm(total=total, desc=f"{task.name}", unit="pair", disable=not config.progress, dynamic_ncols=True)
        try:
            for index, example, labels in pending:
                for record in _evaluate_example(model, task, example, index, labels, built, fingerprints, config, bar):
                    try:
                        store.append(record)
                    except NumericalError as exc:
                        record = {**record, **_failure(exc)}
                        store.append(record)
                    written += 1
                    failed += record["status"] == "failed"
                    bar.update()
                    if on_record is not None:
                        on_record(record)
        except KeyboardInterrupt:
            print(
                f"\ninterrupted: {written} new result(s) are safe in {store.path}; rerun the same command to resume.",
                file=sys.stderr,
            )
            raise
        finally:
            bar.close()
    return RunReport(
        Path(out), len(mine), written, skipped, failed, store.dropped_partial > 0, time.perf_counter() - start
    )


def _evaluate_example(
    model,
    task: Task,
    example: Example,
    index: int,
    labels: list[str],
    methods: dict[str, Any],
    fingerprints: dict[str, str],
    config: EvaluationConfig,
    bar,
):
    """Yield one record per pending method of one example (generation shared by all methods)."""
    base: dict[str, Any] = {"example_id": example.id, "index": index}
    t0 = time.perf_counter()
    try:
        prompted = task.prompt(model, example)
        generated = greedy_continuation(model, prompted.token_ids, task.max_new_tokens)
        output = task.judge(model, prompted, example, generated.tolist())
    except LensError as exc:
        for label in labels:
            yield {**base, "method": label, "fingerprint": fingerprints[label], **_failure(exc)}
        return
    generate_s = round(time.perf_counter() - t0, 4)
    sequence = torch.cat([prompted.token_ids, generated])
    steps = build_steps(prompted.length, sequence)
    base.update(
        prompt_tokens=prompted.length,
        user_tokens=int(prompted.user_mask().sum()),
        truncated=prompted.truncated,
        prompt_format=prompted.prompt_format,
        generated_ids=generated.tolist(),
        output=output,
    )
    for label in labels:
        bar.set_postfix_str(f"{label} #{index}", refresh=False)
        try:
            evaluated = evaluate_pair(model, methods[label], sequence, steps, prompted, config)
            evaluated["timing"]["generate_s"] = generate_s
        except LensError as exc:
            evaluated = _failure(exc)
        yield {**base, "method": label, "fingerprint": fingerprints[label], **evaluated}
