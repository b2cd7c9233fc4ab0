"""The evaluation runner: examples x methods -> per-step faithfulness, one JSONL line per pair.

For each example of the task (deterministic hash order; this shard's share, ``i % num_shards ==
shard_index``):

1. build the prompt (task template; the recorded prompt format, plain or chat), decode greedily
   (classification: one token; generation: up to ``max_new_tokens``) and let the task judge the
   output (accuracy for classification);
2. run each generated step's clean prefix and all-masked prefix once
   (:func:`~gradellm_lens.metrics.step_reference`): ``p(ŷ|x)``, ``p(ŷ|x_∅)`` and the relative drop
   ``ρ = (p(ŷ|x) - p(ŷ|x_∅)) / p(ŷ|x)``. Every method, control and random map of the step reuses
   them. ``perturb="user_text"`` (default) masks only the dataset-text tokens of the prompt (the
   review, passage and question, or story), ``"all"`` every prefix position but BOS;
3. for each method whose (example, configuration) pair is in no results file of the folder yet
   (its own, or another sharding's: :func:`~.store.finished_elsewhere`; not with ``mode="overwrite"``): attribute
   every generated step in one call, then score each step with
   :func:`~gradellm_lens.metrics.evaluate_step`:

   * ``random`` is scored with ``random_maps`` (K) independent maps (``sample = 0 … K-1``), or with
     ``antithetic`` K / 2 of them each followed by its reflection ``1 - s`` (:mod:`.antithetic`); its
     values are the mean over the maps, and each map's values are kept (``maps``);
   * every other method but ``uniform`` also gets its *controls*: ``shuffled`` (its own scores
     randomly permuted over the perturbable positions, seeded by the step; the Bernoulli masks are
     seeded by the step too, so they are the very masks the method saw) and ``rank`` (π-Soft on
     rank-normalised scores, ``FaithfulnessConfig(normalise="rank")``);

4. append one line (:mod:`.store`) with per-step metrics, their mean over the steps that count,
   the controls' means, the method's diagnostics, the task's judgement and timings.

Conditioning: a step whose ``ρ`` is below ``min_rho`` (default 0.1) is *ill-conditioned*: masking
all of the perturbable text barely moves the prediction, so every keep vector moves ``p`` by noise.
It is flagged per step, counted (``n_ill_conditioned``) and, unless ``include_ill_conditioned``,
left out of the means; a pair with no step left gets ``status: "ill_conditioned"`` (also when some
of its steps are degenerate too: masking the text raised p(ŷ), so ρ < 0).

Failure handling: anything the library raises on purpose for one example (NaN/inf logits or
gradients, non-finite attribution scores, a prompt longer than the context, ...) is recorded as
``status: "failed"`` with the reason and never averaged. Steps the metric flags ``degenerate``
(``1 - S0`` below its numerical guard) stay in the line but are left out of the means; a pair with
only degenerate steps gets ``status: "degenerate"``. Steps whose scores single out no perturbable
token (all zero or all equal) are scored as the uniform map, as the metric defines; they are
flagged ``flat`` per step and counted in ``n_flat`` (and in the summary), not dropped.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from ..attribute import build_steps, greedy_continuation
from ..errors import InvalidInputError, LensError, NumericalError, check_choice
from ..methods.random import RandomAttribution
from ..metrics import FaithfulnessConfig, FaithfulnessScores, StepReference, evaluate_step, step_reference
from ..metrics.positions import all_prefix_mask
from ..models import model_info
from ..progress import progress_bar
from ..seeding import stable_seed
from ..targets import Step
from ..tasks import Example, PromptedExample, Task, make_task
from ..tensor_types import TokenIds, TokenScores
from ..versions import library_versions
from .antithetic import independent_maps, with_reflections
from .estimate import LENGTH_SAMPLE, RunEstimate, estimate, inputs_per_map, measure
from .presets import PresetName, get_preset
from .specs import MethodSpec, build_methods, parse_method_specs, without_throughput
from .store import CURVE_KEYS, METRIC_KEYS, OPEN_MODES, OpenMode, ResultsFile, RunHeader, finished_elsewhere

PerturbMode = Literal["all", "user_text"]
PERTURB_MODES: tuple[str, ...] = ("all", "user_text")
CONTROLS: tuple[str, ...] = ("shuffled", "rank")
BASELINES: tuple[str, ...] = ("random", "uniform")  # chance-level maps: no controls of their own
_STEP_DROP = ("config", "pis")


@dataclass(frozen=True)
class EvaluationConfig:
    """Options of a run (the metric options live in ``metrics``).

    Attributes:
        n: number of examples (the first ``n`` of the seeded hash order; None: all).
        seed: sampling seed (see :func:`gradellm_lens.tasks.data.order_key`).
        perturb: ``"user_text"`` (default: only the dataset-text tokens of the prompt; a prompt
            without user text falls back to ``"all"``) or ``"all"`` (every prefix position but BOS).
        metrics: faithfulness metric options.
        shard_index: this process evaluates examples ``i`` with ``i % num_shards == shard_index``.
        num_shards: the number of shards the examples are dealt to.
        mode: ``"resume"`` (default; refuse a file with other options), ``"overwrite"`` or
            ``"allow_mixed"``.
        progress: show a progress bar.
        min_rho: steps whose relative drop ``ρ = (p(ŷ|x) - p(ŷ|x_∅)) / p(ŷ|x)`` is below this are
            *ill-conditioned* (masking the perturbable text barely moves the prediction).
        include_ill_conditioned: keep ill-conditioned steps in the means (default: leave them out).
        random_maps: number K of independent maps the ``random`` baseline is averaged over.
        controls: per-method controls evaluated beside each method: ``"shuffled"`` (its scores
            randomly reordered over the perturbable positions) and/or ``"rank"`` (rank-normalised).
        antithetic: score the ``random_maps`` (then even) random maps as ``random_maps / 2``
            independent maps and their reflections ``1 - s`` (:mod:`.antithetic`).
        preset: the name of the :mod:`.presets` preset the options came from (recorded in the
            results header; None: no preset, nothing recorded). :func:`preset_config` sets it.
    """

    n: int | None = None
    seed: int = 0
    perturb: PerturbMode = "user_text"
    metrics: FaithfulnessConfig = field(default_factory=FaithfulnessConfig)
    shard_index: int = 0
    num_shards: int = 1
    mode: OpenMode = "resume"
    progress: bool = True
    min_rho: float = 0.1
    include_ill_conditioned: bool = False
    random_maps: int = 10
    controls: tuple[str, ...] = ("shuffled", "rank")
    antithetic: bool = False
    preset: PresetName | None = None

    def __post_init__(self) -> None:
        if self.n is not None and (isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1):
            raise InvalidInputError(f"n must be a positive number of examples (or None for all), got {self.n!r}.")
        check_choice("perturb", self.perturb, PERTURB_MODES)
        check_choice("mode", self.mode, OPEN_MODES)
        if not isinstance(self.metrics, FaithfulnessConfig):
            raise InvalidInputError(f"metrics must be a FaithfulnessConfig, got {type(self.metrics).__name__}.")
        if isinstance(self.num_shards, bool) or not isinstance(self.num_shards, int) or self.num_shards < 1:
            raise InvalidInputError(f"num_shards must be a positive integer, got {self.num_shards!r}.")
        if not isinstance(self.shard_index, int) or not 0 <= self.shard_index < self.num_shards:
            raise InvalidInputError(f"shard_index must be in 0..{self.num_shards - 1}, got {self.shard_index!r}.")
        if isinstance(self.min_rho, bool) or not isinstance(self.min_rho, (int, float)) or not 0 <= self.min_rho < 1:
            raise InvalidInputError(f"min_rho must be a number in [0, 1), got {self.min_rho!r}.")
        if not isinstance(self.include_ill_conditioned, bool):
            raise InvalidInputError(
                f"include_ill_conditioned must be True or False, got {self.include_ill_conditioned!r}."
            )
        if isinstance(self.random_maps, bool) or not isinstance(self.random_maps, int) or self.random_maps < 1:
            raise InvalidInputError(f"random_maps must be a positive integer, got {self.random_maps!r}.")
        if not isinstance(self.antithetic, bool):
            raise InvalidInputError(f"antithetic must be True or False, got {self.antithetic!r}.")
        independent_maps(self.random_maps, self.antithetic)  # an odd count of antithetic maps is refused
        if self.preset is not None:
            get_preset(self.preset)
        controls = tuple(self.controls)
        for control in controls:
            check_choice("control", control, CONTROLS)
        if len(set(controls)) != len(controls):
            raise InvalidInputError(f"controls lists a control twice: {controls}.")
        object.__setattr__(self, "controls", controls)


def preset_config(
    name: PresetName | None, *, metrics: dict[str, Any] | None = None, **options: Any
) -> EvaluationConfig:
    """The :class:`EvaluationConfig` of preset ``name`` (:mod:`.presets`); ``options`` (its fields) and
    ``metrics`` (:class:`~gradellm_lens.metrics.FaithfulnessConfig` fields) override the preset's values.
    ``name=None``: no preset, the options over the dataclasses' own defaults."""
    run_options, metric_options = {}, {}
    if name is not None:
        preset = get_preset(name)
        run_options, metric_options = preset.run_options(), preset.metric_options()
    metric_options = {**metric_options, **(metrics or {})}
    return EvaluationConfig(**{**run_options, **options, "metrics": FaithfulnessConfig(**metric_options)})


def explicit_map_options(random_maps: int | None, antithetic: bool | None = None) -> dict[str, Any]:
    """The random-map options a user gave, as :class:`EvaluationConfig` fields (None: not given).

    An odd ``random_maps`` given without ``antithetic`` cannot be antithetic pairs, so it asks for
    independent maps: a preset's pairs give way rather than the count being refused. (Passing
    ``antithetic=True`` with an odd count is still refused by :class:`EvaluationConfig`.)
    """
    options: dict[str, Any] = {} if random_maps is None else {"random_maps": random_maps}
    if antithetic is not None:
        options["antithetic"] = antithetic
    elif random_maps is not None and random_maps % 2:
        options["antithetic"] = False
    return options


@dataclass(frozen=True)
class RunReport:
    """What a run did: ``written`` new lines (``failed`` of them), ``skipped`` pairs already done.

    ``resumed_from`` lists the folder's other results files that held some of the skipped pairs
    (another sharding's): the run's summary merges them with ``path``.
    """

    path: Path
    n_examples: int
    written: int
    skipped: int
    failed: int
    dropped_partial: bool
    elapsed_s: float
    resumed_from: tuple[Path, ...] = ()


def results_path(out_dir: str | Path, shard_index: int = 0, num_shards: int = 1) -> Path:
    """``out_dir/results.jsonl``, or ``results.shard-<i>-of-<n>.jsonl`` for a sharded run."""
    name = "results.jsonl" if num_shards == 1 else f"results.shard-{shard_index}-of-{num_shards}.jsonl"
    return Path(out_dir) / name


def _extras(method, config: EvaluationConfig) -> dict[str, Any]:
    """What the runner adds to a method's recorded options: random's map count, the others' controls."""
    if isinstance(method, RandomAttribution):
        return {"random_maps": config.random_maps, **({"antithetic": True} if config.antithetic else {})}
    return {} if method.method_name in BASELINES else {"controls": list(config.controls)}


def run_header(model, task: Task, methods: dict[str, Any], config: EvaluationConfig) -> RunHeader:
    """The configuration recorded in (and compared against) the results file."""
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    common = {
        "task": task.describe(model),
        "model": {"name": model_info(model).name, "dtype": dtype},
        "metrics": without_throughput(config.metrics.to_dict(), config.metrics),
        "perturb": config.perturb,
        "conditioning": {"min_rho": config.min_rho, "include_ill_conditioned": config.include_ill_conditioned},
        **({"preset": config.preset} if config.preset is not None else {}),
    }
    described = {label: {**without_throughput(m.describe(), m), **_extras(m, config)} for label, m in methods.items()}
    return RunHeader(common, described, config.shard_index, config.num_shards, library_versions())


def _perturbable(prompted: PromptedExample, length: int, mode: PerturbMode) -> torch.Tensor | None:
    """The step's perturbable mask: None (every position but BOS) for ``"all"``, else the user text."""
    if mode == "all":
        return None  # the metric's default: every position but BOS
    return prompted.user_mask(length) & all_prefix_mask(length)


def resolve_perturb(prompted: PromptedExample, mode: PerturbMode) -> PerturbMode:
    """``mode``, except that ``"user_text"`` becomes ``"all"`` for a prompt that holds no user text."""
    return mode if mode == "all" or prompted.user_spans else "all"


def step_references(
    model, sequence: TokenIds, steps: Sequence[Step], prompted: PromptedExample, config: EvaluationConfig
) -> list[StepReference]:
    """The clean and all-masked forwards of every step (shared by every method, control and map).

    Raises:
        NumericalError: NaN/inf logits.
    """
    mode = resolve_perturb(prompted, config.perturb)
    return [
        step_reference(
            model,
            sequence[: step.position + 1],
            step.target,
            perturbable=_perturbable(prompted, step.position + 1, mode),
            batch_size=config.metrics.batch_size,
        )
        for step in steps
    ]


def shuffled_scores(scores: TokenScores, reference: StepReference, seed: int) -> TokenScores:
    """The shuffled control: ``scores`` randomly permuted over the step's perturbable positions.

    The permutation is drawn from ``stable_seed("shuffle", seed, prefix, target)``, so it is the
    same for every method on the step and independent of the metric's Bernoulli masks (which are
    seeded by the step, not by the scores, and hence identical for a method and its control).
    """
    where = reference.perturbable.nonzero().flatten()
    generator = torch.Generator().manual_seed(stable_seed("shuffle", seed, reference.tokens, reference.token_id))
    out = scores.clone()
    out[where] = scores[where[torch.randperm(where.numel(), generator=generator)]]
    return out


def _curve_values(result: FaithfulnessScores) -> dict[str, Any]:
    return {
        k: getattr(result, k) if k in METRIC_KEYS else list(getattr(result, k)) for k in (*METRIC_KEYS, *CURVE_KEYS)
    }


def _average(values: Sequence[dict[str, Any]], curves: bool = True) -> dict[str, Any]:
    """Entry-wise mean of metric dicts: the scalars of METRIC_KEYS and (``curves``) the curves of CURVE_KEYS."""
    out: dict[str, Any] = {k: sum(v[k] for v in values) / len(values) for k in METRIC_KEYS}
    for key in CURVE_KEYS if curves else ():
        out[key] = [sum(points) / len(values) for points in zip(*(v[key] for v in values))]
    return out


def counts_in_mean(step: dict[str, Any], include_ill_conditioned: bool) -> bool:
    """Whether a step enters a pair's means: never when degenerate, and when ill-conditioned only if asked."""
    return not step["degenerate"] and (include_ill_conditioned or not step["ill_conditioned"])


def control_input(name: str, scores: TokenScores, reference: StepReference, metrics: FaithfulnessConfig):
    """The scores and metric options a control evaluates: ``"shuffled"`` (:func:`shuffled_scores`, same
    options) or ``"rank"`` (the same scores, π-Soft on rank-normalised scores)."""
    if name == "shuffled":
        return shuffled_scores(scores, reference, metrics.seed), metrics
    return scores, dataclasses.replace(metrics, normalise="rank")


def _score_step(model, maps, controls, reference: StepReference, config: EvaluationConfig) -> dict[str, Any]:
    """Metrics of one step for every map of a method (one, or K for ``random``) and its controls."""

    def score(row: TokenScores, metrics: FaithfulnessConfig = config.metrics) -> FaithfulnessScores:
        return evaluate_step(
            model, reference.tokens, reference.token_id, row, perturbable=reference.perturbable, config=metrics,
            reference=reference,
        )  # fmt: skip

    results = [score(row) for row in maps]
    values = {k: v for k, v in results[0].to_dict().items() if k not in _STEP_DROP}
    if len(results) > 1:  # random: the step's values are the mean over the maps, each map kept
        per_map = [_curve_values(r) for r in results]
        values.update(_average(per_map), flat=all(r.flat for r in results))
        values["maps"] = [{k: m[k] for k in METRIC_KEYS} for m in per_map]
    values["ill_conditioned"] = bool(reference.rho < config.min_rho)
    if controls:
        inputs = {name: control_input(name, maps[0], reference, config.metrics) for name in controls}
        values["controls"] = {name: _curve_values(score(*args)) for name, args in inputs.items()}
    return values


def evaluate_pair(
    model,
    method,
    sequence: torch.Tensor,
    steps: Sequence,
    prompted: PromptedExample,
    config: EvaluationConfig,
    references: Sequence[StepReference] | None = None,
) -> dict[str, Any]:
    """Attribute all ``steps`` of ``sequence`` with ``method`` and score each step.

    ``random`` is scored as the mean over ``config.random_maps`` independent maps (per-map values
    kept); every other method but ``uniform`` also gets ``config.controls``. ``references`` are
    the steps' :class:`~gradellm_lens.metrics.StepReference` (:func:`step_references`; computed
    here when None).

    Raises:
        NumericalError: the method's scores are NaN/inf on a step's prefix.
    """
    t0 = time.perf_counter()
    is_random = isinstance(method, RandomAttribution)
    samplers = method.samples(independent_maps(config.random_maps, config.antithetic)) if is_random else [method]
    outputs = [m.attribute(sequence, steps) for m in samplers]
    n_maps = config.random_maps if is_random else 1
    controls = () if method.method_name in BASELINES else config.controls
    t1 = time.perf_counter()
    if references is None:
        references = step_references(model, sequence, steps, prompted, config)
    rows = []
    for t, (step, reference) in enumerate(zip(steps, references)):
        maps = [out.scores[t, : step.position + 1] for out in outputs]
        if is_random and config.antithetic:
            maps = with_reflections(maps)
        if not all(torch.isfinite(row).all() for row in maps):
            raise NumericalError(f"the attribution scores of step {t} contain NaN/inf (non-finite gradients?)")
        values = _score_step(model, maps, controls, reference, config)
        rows.append({"position": step.position, "target_id": step.target.token_id, **values})
    t2 = time.perf_counter()
    counted = [r for r in rows if counts_in_mean(r, config.include_ill_conditioned)]
    mean = _average([{k: r[k] for k in (*METRIC_KEYS, *CURVE_KEYS)} for r in counted]) if counted else None
    if mean is not None:
        status = "ok"
    elif not config.include_ill_conditioned and any(r["ill_conditioned"] for r in rows):
        status = "ill_conditioned"  # the substantive reason, even where the numerical guard also fired
    else:
        status = "degenerate"
    record: dict[str, Any] = {
        "status": status,
        "error": None,
        "perturb": resolve_perturb(prompted, config.perturb),
        "n_steps": len(rows),
        "n_degenerate": sum(r["degenerate"] for r in rows),
        "n_flat": sum(r["flat"] for r in rows),
        "n_ill_conditioned": sum(r["ill_conditioned"] for r in rows),
        "pis": list(config.metrics.pis),
        "mean": mean,
    }
    if controls:
        record["controls"] = {c: _average([r["controls"][c] for r in counted]) if counted else None for c in controls}
    if n_maps > 1:
        record["random_maps"] = n_maps
        record["maps"] = [
            _average([r["maps"][k] for r in counted], curves=False) if counted else None for k in range(n_maps)
        ]
    record["diagnostics"] = outputs[0].diagnostics
    record["steps"] = rows
    record["timing"] = {"attribute_s": round(t1 - t0, 4), "metrics_s": round(t2 - t1, 4)}
    return record


def _failure(exc: BaseException) -> dict[str, Any]:
    return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "mean": None, "steps": []}


def run_evaluation(
    model,
    task: str | Task,
    methods: str | Sequence[str | MethodSpec],
    out: str | Path,
    config: EvaluationConfig | PresetName = EvaluationConfig(),
    *,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[RunEstimate], None] | None = None,
) -> RunReport:
    """Evaluate ``methods`` on ``task`` and append the results to the JSONL file ``out``.

    Args:
        model: a ``TransformerBridge`` (:func:`gradellm_lens.load_model`).
        task: an evaluation task's name (:func:`gradellm_lens.tasks.list_tasks` ``("evaluation")``) or instance.
        methods: ``"grad_ellm,grad_ellm:reference,integrated_gradients"``, a list of such specs, or
            :class:`~.specs.MethodSpec` objects (see :mod:`.specs`).
        out: results file; resumed when it exists (see ``config.mode``). Pairs finished in the other
            results files of its folder (another number of shards) are skipped too, unless
            ``config.mode == "overwrite"``.
        config: run options, or a preset's name (:mod:`.presets`; :func:`preset_config` for a preset
            with some options overridden).
        on_record: called with each record right after it is written (progress hooks, tests).
        on_start: called, before the first pending pair, with the estimated time of the pending
            pairs (:mod:`.estimate`: a cost model and one quick measurement on the first pending
            example, made only when ``on_start`` is given and something is pending).

    Returns:
        A :class:`RunReport`. Interrupting (Ctrl-C) leaves every finished pair in the file; rerun
        the same call to continue.

    Raises:
        InvalidInputError: bad data, methods or options, a configuration the model's tokenizer
            cannot serve (:meth:`~gradellm_lens.tasks.Task.check_model`), or a damaged results file
            in the folder. Every check runs before any file is created, cut or appended to.
    """
    start = time.perf_counter()
    if isinstance(config, str):
        config = preset_config(config)
    task = make_task(task, family="evaluation")
    specs = parse_method_specs(methods)
    examples = task.load(config.n, config.seed)
    task.check_model(model)  # template and label words on this tokenizer: one error, not one failure per pair
    mine = [(i, ex) for i, ex in enumerate(examples) if i % config.num_shards == config.shard_index]
    built = build_methods(specs, model)
    header = run_header(model, task, built, config)
    fingerprints = {label: header.method_fingerprint(label) for label in built}
    written = failed = 0
    # every check before any file is touched: the folder's other results files are read (and a damaged
    # one refused) before this file is opened, which may cut an interrupted last line or write a header
    found = finished_elsewhere(out, fingerprints.values()) if config.mode != "overwrite" else {}
    with ResultsFile(out, header, config.mode) as store:
        wanted = {(ex.id, fp) for _i, ex in mine for fp in fingerprints.values()} - store.done
        resumed_from = tuple(p for p, pairs in found.items() if pairs & wanted)
        done = store.done.union(*found.values())
        pending = [(i, ex, [lb for lb in built if (ex.id, fingerprints[lb]) not in done]) for i, ex in mine]
        pending = [p for p in pending if p[2]]
        total = sum(len(p[2]) for p in pending)
        skipped = len(mine) * len(built) - total
        if on_start is not None and pending and (estimated := run_estimate(model, task, pending, built, config)):
            on_start(estimated)
        bar = progress_bar(total=total, desc=task.name, unit="pair", enabled=config.progress)
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
        Path(out), len(mine), written, skipped, failed, store.dropped_partial > 0, time.perf_counter() - start,
        resumed_from,
    )  # fmt: skip


def maps_per_step(method, config: EvaluationConfig) -> int:
    """Maps scored per step for a method: K for ``random``, 1 for ``uniform``, else 1 + its controls."""
    if isinstance(method, RandomAttribution):
        return config.random_maps
    return 1 if method.method_name in BASELINES else 1 + len(config.controls)


def run_estimate(
    model,
    task: Task,
    pending: Sequence[tuple[int, Example, list[str]]],
    methods: dict[str, Any],
    config: EvaluationConfig,
) -> RunEstimate | None:
    """The estimated time of the ``pending`` (index, example, method labels) of a run (:mod:`.estimate`),
    measured on the first of them whose prompt can be built; None when none can."""
    prompts = []
    for _index, example, _labels in pending[:LENGTH_SAMPLE]:
        try:
            prompts.append(task.prompt(model, example).token_ids)
        except LensError:  # the run records it as a failed pair
            continue
    if not prompts:
        return None
    metrics = config.metrics
    inputs = inputs_per_map(metrics.n_draws, len(metrics.pis))
    labels = list(dict.fromkeys(label for _i, _e, pair_labels in pending for label in pair_labels))
    measured = measure(model, prompts[0], {label: methods[label] for label in labels}, min(metrics.batch_size, inputs))
    random_samples = independent_maps(config.random_maps, config.antithetic)
    samples = {label: random_samples if isinstance(methods[label], RandomAttribution) else 1 for label in labels}
    measured = dataclasses.replace(
        measured, attribute_s={label: t * samples[label] for label, t in measured.attribute_s.items()}
    )
    return estimate(
        measured,
        [pair_labels for _i, _e, pair_labels in pending],
        {label: maps_per_step(methods[label], config) for label in labels},
        steps=task.max_new_tokens,
        generation=task.kind == "generation",
        inputs=inputs,
        batch_size=metrics.batch_size,
        mean_length=sum(p.shape[0] for p in prompts) / len(prompts),
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
    """Yield one record per pending method of one example (generation and step references shared by all)."""
    base: dict[str, Any] = {"example_id": example.id, "index": index}
    t0 = time.perf_counter()
    try:
        prompted = task.prompt(model, example)
        generated = greedy_continuation(model, prompted.token_ids, task.max_new_tokens)
        output = task.judge(model, prompted, example, generated.tolist())
        t1 = time.perf_counter()
        sequence = torch.cat([prompted.token_ids, generated])
        steps = build_steps(prompted.length, sequence)
        references = step_references(model, sequence, steps, prompted, config)
    except LensError as exc:
        for label in labels:
            yield {**base, "method": label, "fingerprint": fingerprints[label], **_failure(exc)}
        return
    timing = {"generate_s": round(t1 - t0, 4), "reference_s": round(time.perf_counter() - t1, 4)}
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
            evaluated = evaluate_pair(model, methods[label], sequence, steps, prompted, config, references)
            evaluated["timing"].update(timing)
        except LensError as exc:
            evaluated = _failure(exc)
        yield {**base, "method": label, "fingerprint": fingerprints[label], **evaluated}
