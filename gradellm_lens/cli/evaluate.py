"""``gradellm-lens evaluate``: resumable faithfulness evaluation of attribution methods on a task.

Example::

    gradellm-lens evaluate --task sst2 --model smollm2-135m-instruct \\
        --methods grad_ellm,grad_ellm:reference,integrated_gradients,random --n 200 --out-dir runs/sst2

Results go to ``<out-dir>/results.jsonl`` (one line per example and method, appended as they
finish); rerunning the same command resumes. The summary (``summary.csv``, ``summary.md``,
``summary_pi_curves.png``) is written when the run ends; sharded runs (``--num-shards``) write
``results.shard-<i>-of-<n>.jsonl`` and are merged with ``gradellm-lens summarize <out-dir>``.

Under ``accelerate launch --multi_gpu --num_processes N -m gradellm_lens.cli evaluate ...`` (or
torchrun) each process takes shard RANK of N on its own device and the main process merges the
shards when all are done (:mod:`gradellm_lens.evaluation.distributed`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InvalidInputError
from ..evaluation.distributed import AUTO, shard_arg
from .common import add_model_args, load_model_from_args
from .summarize import add_summary_args, check_summary_args, write_and_print


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("evaluate", help="faithfulness evaluation (Soft-NS/NC, pi-Soft-NS/NC) on a task, resumable")
    p.add_argument("--task", required=True, help="sst2, imdb, boolq, tellmewhy or wikibio")
    add_model_args(p)
    p.add_argument(
        "--methods",
        default="all",
        help="comma-separated name[:variant][+key=value] specs, e.g. grad_ellm,grad_ellm:reference,"
        "integrated_gradients+n_steps=20; 'all' = every registered method (default)",
    )
    p.add_argument(
        "--n", "--num-examples", type=int, default=None,
        help="number of examples (seeded hash order; default all); under torchrun write --num-examples",
    )  # fmt: skip
    p.add_argument("--out-dir", default=None, help="run folder (default runs/<task>)")
    p.add_argument("--seed", type=int, default=0, help="sampling and Bernoulli-mask seed")
    m = p.add_argument_group("metric options")
    m.add_argument("--pis", default=None, help="comma-separated pi grid (default 0.1,0.2,...,0.9)")
    m.add_argument("--draws", type=int, default=5, help="Bernoulli draws per keep vector")
    m.add_argument("--batch-size", type=int, default=64, help="perturbed inputs per forward pass")
    m.add_argument("--rescale", default="scale_clip", help="pi rescaling: scale_clip or power")
    m.add_argument("--normalise", default="max", help="pi-Soft base normalisation: max, minmax or rank")
    m.add_argument("--probability", default="target", help="target (token probability) or distribution")
    m.add_argument("--perturb", default="all", help="all (every prefix token but BOS) or user_text")
    t = p.add_argument_group("task options")
    t.add_argument(
        "--data-dir", default=None, help="folder of the JSONL files (default ../shared/data or $GRADELLM_LENS_DATA)"
    )
    t.add_argument("--source", default="local", help="local (default) or hub (datasets.load_dataset)")
    t.add_argument("--split", default=None, help="dataset split (default: the task's)")
    t.add_argument("--prompt-format", default="auto", help="auto (chat template if the model has one), chat or plain")
    t.add_argument("--system", default=None, help="system message for the chat template")
    t.add_argument(
        "--max-text-tokens", type=int, default=None, help="token budget of long fields (IMDB default 256; 0 = none)"
    )
    t.add_argument("--max-new-tokens", type=int, default=10, help="generated tokens per example (generation tasks)")
    t.add_argument(
        "--label-match", default="first_token", help="accuracy from the first_token or restricted label argmax"
    )
    r = p.add_argument_group("run options")
    mode = r.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume", dest="mode", action="store_const", const="resume", help="continue an existing run (default)"
    )
    mode.add_argument(
        "--overwrite", dest="mode", action="store_const", const="overwrite", help="start the results file over"
    )
    r.add_argument(
        "--shard-index", type=shard_arg, default=AUTO,
        help="evaluate examples i with i %% num_shards == shard_index (default auto: the process's RANK under "
        "accelerate launch / torchrun, else 0)",
    )  # fmt: skip
    r.add_argument(
        "--num-shards", type=shard_arg, default=AUTO,
        help="number of shards (default auto: WORLD_SIZE under accelerate launch / torchrun, else 1)",
    )  # fmt: skip
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_summary_args(r)
    p.set_defaults(mode="resume")
    return p


def parse_pis(text: str | None) -> tuple[float, ...] | None:
    """``"0.1,0.5,0.9"`` -> ``(0.1, 0.5, 0.9)``; the metric validates the values."""
    if text is None:
        return None
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InvalidInputError(f"--pis must be comma-separated numbers in (0, 1), got {text!r}.") from None


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
            write_and_print(list(files.present), out_dir, args)
        for note in files.notes(out_dir):
            print(f"note: {note}")
    return 0


def _evaluate_shard(args: argparse.Namespace, distributed: bool, local_rank: int) -> Path:
    """Evaluate shard ``args.shard_index`` of ``args.num_shards``; returns the run folder."""
    from ..evaluation import EvaluationConfig, parse_method_specs, results_path, run_evaluation
    from ..metrics import FaithfulnessConfig
    from ..tasks import make_task

    check_summary_args(args)
    pis = parse_pis(args.pis)
    metrics = FaithfulnessConfig(
        **({"pis": pis} if pis is not None else {}), n_draws=args.draws, rescale=args.rescale, normalise=args.normalise,
        probability=args.probability, seed=args.seed, batch_size=args.batch_size,
    )  # fmt: skip
    mode = "allow_mixed" if args.allow_mixed and args.mode == "resume" else args.mode
    config = EvaluationConfig(
        n=args.n, seed=args.seed, perturb=args.perturb, metrics=metrics, shard_index=args.shard_index,
        num_shards=args.num_shards, mode=mode, progress=not args.no_progress and local_rank == 0,
    )  # fmt: skip
    task = make_task(
        args.task, data_dir=args.data_dir, source=args.source, split=args.split, prompt_format=args.prompt_format,
        system=args.system, max_text_tokens=args.max_text_tokens, max_new_tokens=args.max_new_tokens,
        label_match=args.label_match,
    )  # fmt: skip
    specs = parse_method_specs(args.methods)  # name errors before the model loads
    out_dir = Path(args.out_dir or Path("runs") / task.name)
    path = results_path(out_dir, args.shard_index, args.num_shards)
    model = load_model_from_args(args)
    report = run_evaluation(model, task, specs, path, config)
    note = " (an interrupted last line was dropped first)" if report.dropped_partial else ""
    print(
        f"{report.written} new result(s), {report.failed} failed, {report.skipped} already done{note}; "
        f"{report.n_examples} examples -> {path} in {report.elapsed_s:.1f} s"
    )
    if args.num_shards == 1:
        write_and_print([path], out_dir, args)
    elif not distributed:
        print(f"shard {args.shard_index + 1}/{args.num_shards} done; merge with: gradellm-lens summarize {out_dir}")
    return out_dir
