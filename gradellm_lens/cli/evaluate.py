"""``gradellm-lens evaluate``: resumable faithfulness evaluation of attribution methods on a task.

Example::

    gradellm-lens evaluate --task sst2 --model smollm2-135m-instruct \\
        --methods grad_ellm,grad_ellm:reference,integrated_gradients,random --n 200 --out-dir runs/sst2

Results go to ``<out-dir>/results.jsonl`` (one line per example and method, appended as they
finish); rerunning the same command resumes. Before the first pair the estimated time of the run is
printed (:mod:`gradellm_lens.evaluation.estimate`). The summary (``summary.csv``, ``summary.md``,
``summary_pi_curves.png``) is written when the run ends; sharded runs (``--num-shards``) write
``results.shard-<i>-of-<n>.jsonl`` and are merged with ``gradellm-lens summarize <out-dir>``.

Your own data: ``--data my.jsonl --text-field review --label-field sentiment --label-words " negative,
positive"`` (classification) or ``--data my.jsonl --task-kind generation --template "Q: {text}\\nA:"``
evaluates any JSONL file with the same protocol and checks (task ``jsonl``, :mod:`gradellm_lens.tasks.jsonl`).

Under ``accelerate launch --multi_gpu --num_processes N -m gradellm_lens.cli evaluate ...`` (or
torchrun) each process takes shard RANK of N on its own device and the main process merges the
shards when all are done (:mod:`gradellm_lens.evaluation.distributed`).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ..errors import InvalidInputError
from ..evaluation.distributed import AUTO, shard_arg
from ..evaluation.presets import list_presets
from .common import DefaultsHelpFormatter, add_model_args, argument_type, load_model_from_args
from .summarize import add_summary_args, check_summary_args, write_and_print


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "evaluate",
        help="faithfulness evaluation (Soft-NS/NC, pi-Soft-NS/NC) on a task or your own JSONL file, resumable",
        description="Faithfulness evaluation of attribution methods on a built-in task (--task) or on your own "
        "JSONL file (--data). Rerunning the same command resumes.",
        formatter_class=DefaultsHelpFormatter,
    )
    p.add_argument("--task", default=None, help="sst2, imdb, boolq, tellmewhy or wikibio (required unless --data)")
    add_model_args(p)
    p.add_argument(
        "--methods",
        default="all",
        help="comma-separated name[:variant][+key=value] specs, e.g. grad_ellm,grad_ellm:reference,"
        "integrated_gradients+n_steps=20; 'all' = every registered method",
    )
    p.add_argument(
        "--n", "--num-examples", type=int, default=None,
        help="number of examples, in seeded hash order (default: all); under torchrun write --num-examples",
    )  # fmt: skip
    p.add_argument("--out-dir", default=None, help="run folder (default: runs/<task>, or runs/<file stem> with --data)")
    p.add_argument("--seed", type=int, default=0, help="sampling and Bernoulli-mask seed")
    p.add_argument(
        "--preset", default="standard", metavar="{" + ",".join([*list_presets(), "none"]) + "}",
        help="a named allocation of examples, draws, pi points, random maps and controls, from the measured "
        "variance budget (recorded in the results header); options given explicitly override its values; none: "
        "no preset, the options' own defaults (default: standard: up to 200 examples, 1 draw, 2 antithetic "
        "random maps)",
    )  # fmt: skip
    m = p.add_argument_group("metric options")
    m.add_argument("--pis", default=None, help="comma-separated pi grid (default: 0.1,0.2,...,0.9)")
    m.add_argument(
        "--draws", type=int, default=None, help="Bernoulli draws per keep vector (default: the preset's; 5 with --preset none)"
    )
    m.add_argument("--batch-size", type=int, default=64, help="perturbed inputs per forward pass")
    m.add_argument("--rescale", default="scale_clip", metavar="{scale_clip,power}", help="pi rescaling rule")
    m.add_argument(
        "--normalise", default="max", metavar="{max,minmax,rank}", help="pi-Soft normalisation of the scores"
    )
    m.add_argument(
        "--probability", default="target", metavar="{target,distribution}",
        help="the explained token's probability, or the whole next-token distribution",
    )  # fmt: skip
    m.add_argument(
        "--perturb", default="user_text", metavar="{user_text,all}",
        help="mask only the dataset text inside the template (user_text), or every prefix token but BOS (all)",
    )  # fmt: skip
    m.add_argument(
        "--min-rho", type=float, default=0.1,
        help="steps whose relative drop rho = (p - p_empty) / p is below this are ill-conditioned and left out of "
        "the means",
    )  # fmt: skip
    m.add_argument("--include-ill-conditioned", action="store_true", help="keep ill-conditioned steps in the means")
    m.add_argument(
        "--random-maps", type=int, default=None,
        help="maps the random baseline is averaged over (default: the preset's; 10 with --preset none)",
    )  # fmt: skip
    m.add_argument(
        "--antithetic", action=argparse.BooleanOptionalAction, default=None,
        help="score the random maps as pairs s, 1 - s (antithetic; --random-maps even) (default: off, or the "
        "preset's)",
    )  # fmt: skip
    m.add_argument(
        "--controls", default=None,
        help="per-method controls: comma-separated shuffled (scores reordered at random) and rank (rank-normalised), "
        "or none (default: shuffled,rank, or the preset's)",
    )  # fmt: skip
    t = p.add_argument_group("task options")
    t.add_argument(
        "--data-dir", default=None, help="folder of the built-in tasks' JSONL files (default: $GRADELLM_LENS_DATA, "
        "else ./data or ../shared/data under the working directory)",
    )  # fmt: skip
    t.add_argument("--source", default="local", metavar="{local,hub}", help="local files or the hub (needs datasets)")
    t.add_argument("--split", default=None, help="dataset split (default: the task's)")
    t.add_argument(
        "--prompt-format", default="plain", metavar="{plain,chat}",
        help="the filled template as it is (plain), or inside the model's chat template (chat)",
    )  # fmt: skip
    t.add_argument("--system", default=None, help="system message for --prompt-format chat (default: none)")
    t.add_argument(
        "--max-text-tokens", type=int, default=None,
        help="token budget of the long text field, 0 = no limit (default: the task's; IMDB 256)",
    )  # fmt: skip
    t.add_argument("--max-new-tokens", type=int, default=10, help="generated tokens per example (generation tasks)")
    t.add_argument(
        "--label-match", default="first_token", metavar="{first_token,restricted}",
        help="accuracy from the greedy first token, or from the argmax over the label words' logits",
    )  # fmt: skip
    own = p.add_argument_group("your own data (--data)")
    own.add_argument("--data", default=None, metavar="FILE.jsonl", help="evaluate this JSONL file (default: none)")
    own.add_argument(
        "--task-kind", default=None, metavar="{classification,generation}",
        help="classification (label words, accuracy) or generation (every generated token explained) "
        "(default: classification)",
    )  # fmt: skip
    own.add_argument("--text-field", default=None, help="field(s) holding the text, comma-separated (default: text)")
    own.add_argument(
        "--label-field", default=None, help="field holding the label, an index or a label word (default: label)"
    )
    own.add_argument(
        "--label-words", default=None,
        help="comma-separated label words in label order, leading spaces kept, e.g. ' negative, positive' "
        "(required for classification; default: none)",
    )  # fmt: skip
    own.add_argument(
        "--template", default=None,
        help="prompt with one {field} per text field, or {text} for a single one; \\n and \\t stand for a newline "
        "and a tab (default: '{text}\\nAnswer:' for classification, '{text}' for generation)",
    )  # fmt: skip
    own.add_argument("--id-field", default=None, help="field holding a unique id (default: the line number)")
    own.add_argument("--reference-field", default=None, help="generation: field holding reference text (default: none)")
    r = p.add_argument_group("run options")
    mode = r.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume", dest="mode", action="store_const", const="resume", help="continue an existing run (the default)"
    )
    mode.add_argument(
        "--overwrite", dest="mode", action="store_const", const="overwrite", help="start the results file over"
    )
    r.add_argument(
        "--shard-index", type=argument_type(shard_arg), default=AUTO,
        help="evaluate examples i with i %% num_shards == shard_index (default: auto, the process's RANK under "
        "accelerate launch / torchrun, else 0)",
    )  # fmt: skip
    r.add_argument(
        "--num-shards", type=argument_type(shard_arg), default=AUTO,
        help="number of shards (default: auto, WORLD_SIZE under accelerate launch / torchrun, else 1)",
    )  # fmt: skip
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_summary_args(r)
    p.set_defaults(mode="resume")
    return p


_OWN_DATA_OPTIONS = ("task_kind", "text_field", "label_field", "label_words", "template", "id_field", "reference_field")


def make_task_from_args(args: argparse.Namespace):
    """The task of ``evaluate``'s options: a built-in ``--task`` or ``--data`` (task ``jsonl``)."""
    from ..tasks import make_task

    common = {
        k: getattr(args, k)
        for k in ("source", "split", "prompt_format", "system", "max_text_tokens", "max_new_tokens", "label_match")
    }
    own = {k: getattr(args, k) for k in _OWN_DATA_OPTIONS if getattr(args, k) is not None}
    if "template" in own:
        own["template"] = unescape(own["template"])
    if args.data is None:
        if args.task is None:
            raise InvalidInputError("Give a built-in task (--task sst2, ...) or your own JSONL file (--data FILE).")
        if own:
            given = ", ".join(f"--{k.replace('_', '-')}" for k in own)
            raise InvalidInputError(f"{given}: only for your own data (--data FILE).")
        return make_task(args.task, family="evaluation", data_dir=args.data_dir, **common)
    if args.task not in (None, "jsonl"):
        raise InvalidInputError(f"Give either --task {args.task} or --data {args.data}, not both.")
    if args.data_dir is not None:
        raise InvalidInputError("--data-dir is for the built-in tasks; --data takes the file's path.")
    return make_task("jsonl", data=args.data, **own, **common)


def unescape(text: str) -> str:
    r"""``\n``, ``\t`` and ``\\`` typed on a command line -> a newline, a tab and a backslash."""
    return re.sub(r"\\([nt\\])", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m.group(1)], text)


def parse_controls(text: str) -> tuple[str, ...]:
    """``"shuffled,rank"`` -> ``("shuffled", "rank")``; ``"none"`` (or empty) -> ``()``."""
    if text.strip().lower() in ("none", ""):
        return ()
    return tuple(x.strip() for x in text.split(","))


def parse_pis(text: str | None) -> tuple[float, ...] | None:
    """``"0.1,0.5,0.9"`` -> ``(0.1, 0.5, 0.9)``; the metric validates the values."""
    if text is None:
        return None
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InvalidInputError(f"--pis must be comma-separated numbers in (0, 1), got {text!r}.") from None


def evaluation_config(args: argparse.Namespace, local_rank: int = 0):
    """The run's :class:`~gradellm_lens.evaluation.EvaluationConfig`: ``--preset``'s values (when given)
    under the options given explicitly, the options' own defaults without a preset."""
    from ..evaluation.runner import explicit_map_options, preset_config

    pis = parse_pis(args.pis)
    metrics = {"pis": pis, "n_draws": args.draws}
    metrics = {k: v for k, v in metrics.items() if v is not None}
    metrics.update(
        rescale=args.rescale, normalise=args.normalise, probability=args.probability, seed=args.seed,
        batch_size=args.batch_size,
    )  # fmt: skip
    explicit = {"n": args.n} if args.n is not None else {}
    explicit.update(explicit_map_options(args.random_maps, args.antithetic))
    if args.controls is not None:
        explicit["controls"] = parse_controls(args.controls)
    mode = "allow_mixed" if args.allow_mixed and args.mode == "resume" else args.mode
    options = dict(
        seed=args.seed, perturb=args.perturb, shard_index=args.shard_index, num_shards=args.num_shards, mode=mode,
        progress=not args.no_progress and local_rank == 0, min_rho=args.min_rho,
        include_ill_conditioned=args.include_ill_conditioned, **explicit,
    )  # fmt: skip
    return preset_config(None if args.preset == "none" else args.preset, metrics=metrics, **options)


def run(args: argparse.Namespace) -> int:
    """Evaluate this process's shard; under a distributed launch the main process then merges all shards."""
    from ..evaluation.distributed import find_shard_files, init_process_context, run_on_every_process

    context = init_process_context(args.device)
    try:
        args.shard_index, args.num_shards = context.resolve_shards(args.shard_index, args.num_shards)
        args.device = context.device
        out_dir = run_on_every_process(context, lambda: _evaluate_shard(args, context.distributed, context.local_rank))
    finally:
        context.close()
    if context.distributed and context.is_main:
        files = find_shard_files(out_dir, args.num_shards)
        if not files.missing:
            write_and_print(list(files.merged), out_dir, args)
        for note in files.notes(out_dir):
            print(f"note: {note}")
    return 0


def _evaluate_shard(args: argparse.Namespace, distributed: bool, local_rank: int) -> Path:
    """Evaluate shard ``args.shard_index`` of ``args.num_shards``; returns the run folder."""
    from ..evaluation import parse_method_specs, results_path, run_evaluation

    check_summary_args(args)
    config = evaluation_config(args, local_rank)
    task = make_task_from_args(args)
    task.load(config.n, args.seed)  # every data error (file:line) before the model loads or a header is written
    specs = parse_method_specs(args.methods)  # name errors before the model loads
    out_dir = Path(args.out_dir or Path("runs") / (Path(args.data).stem if args.data else task.name))
    path = results_path(out_dir, args.shard_index, args.num_shards)
    model = load_model_from_args(args)
    announce = (lambda estimated: print(estimated.describe(), flush=True)) if local_rank == 0 else None
    report = run_evaluation(model, task, specs, path, config, on_start=announce)
    note = " (an interrupted last line was dropped first)" if report.dropped_partial else ""
    print(
        f"{report.written} new result(s), {report.failed} failed, {report.skipped} already done{note}; "
        f"{report.n_examples} examples -> {path} in {report.elapsed_s:.1f} s"
    )
    if report.resumed_from:
        print(f"resumed from {', '.join(p.name for p in report.resumed_from)} (another number of shards)")
    if args.num_shards == 1:
        write_and_print([path, *report.resumed_from], out_dir, args)
    elif not distributed:
        print(f"shard {args.shard_index + 1}/{args.num_shards} done; merge with: gradellm-lens summarize {out_dir}")
    return out_dir
