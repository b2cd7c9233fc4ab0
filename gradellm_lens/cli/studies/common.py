"""What the head/layer studies share: examples from the task registry, arguments, tables, plots.

An example is a token sequence with its explained steps, built with :mod:`gradellm_lens.tasks`
(prompt templates, chat format, deterministic hash-ordered sampling):

* classification (SST-2): the prompt; one step explaining the model's greedy first token (the
  task convention), plus the label-word token groups (``task.label_candidates``) and the gold
  label, so that ablated accuracy can be read off the same forward pass;
* generation (TellMeWhy, WikiBio): prompt + the clean greedy continuation (``max_new_tokens``);
  one step per generated token, explained teacher-forced on the clean continuation.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...attribute import build_steps, greedy_continuation
from ...encoding import PROMPT_FORMATS, PromptFormat
from ...metrics import all_prefix_mask
from ...models import load_model
from ...optional import require
from ...targets import Step
from ...tasks import get_task, make_task

RESULTS_DIR = Path("runs") / "studies"
"""Default output folder, relative to the working directory: each study writes to ``runs/studies/<name>``
unless ``--out`` names a folder (the source checkout's ``analyses/`` wrappers pass its results folder)."""


@dataclass(frozen=True)
class StudyExample:
    """One example of a study.

    Attributes:
        id: the dataset id.
        tokens: ``[pos]`` prompt (+ clean continuation for generation tasks).
        prompt_length: number of prompt tokens.
        steps: explained steps (targets: the clean greedy tokens).
        label: gold label index (classification) or None.
        choices: per label, its candidate token ids (classification) or None.
        user_mask: ``[pos]`` True on the dataset-text tokens (never position 0): the
            ``perturb="user_text"`` positions of the faithfulness metrics.
    """

    id: str
    tokens: torch.Tensor
    prompt_length: int
    steps: tuple[Step, ...]
    label: int | None = None
    choices: tuple[tuple[int, ...], ...] | None = None
    user_mask: torch.Tensor | None = None

    @property
    def positions(self) -> list[int]:
        return [s.position for s in self.steps]


def make_parser(name: str, description: str, *, n: int, task: str = "sst2") -> argparse.ArgumentParser:
    """The parser of study ``name`` with the common arguments (every option's help shows its default)."""
    formatter = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(
        prog=f"gradellm-lens study {name}", description=description, formatter_class=formatter
    )
    add_common_args(parser, n=n, task=task, out=RESULTS_DIR / name)
    return parser


def add_common_args(
    parser: argparse.ArgumentParser, *, n: int, task: str = "sst2", out: str | Path = RESULTS_DIR
) -> None:
    parser.add_argument("--model", default="smollm2-135m-instruct", help="model name")
    parser.add_argument("--task", default=task, help="task name (sst2, imdb, boolq, tellmewhy, wikibio)")
    parser.add_argument("--n", type=int, default=n, help="number of examples (hash-ordered, deterministic)")
    parser.add_argument("--seed", type=int, default=0, help="example sampling seed")
    parser.add_argument("--max-new-tokens", type=int, default=8, help="generated tokens for generation tasks")
    parser.add_argument(
        "--prompt-format",
        default="chat",
        choices=PROMPT_FORMATS,
        help="plain text or the model's chat template (the committed head results used chat)",
    )
    parser.add_argument("--objective", default="logit", choices=["logit", "log_prob", "prob"], help="explained scalar")
    parser.add_argument(
        "--threads", type=int, default=int(os.environ.get("GRADELLM_THREADS", "1")), help="torch threads"
    )
    parser.add_argument("--out", default=str(out), help="output folder (relative to the working directory)")
    parser.add_argument(
        "--data-dir", default=None, help="task data folder (default: $GRADELLM_LENS_DATA, ./data, ../shared/data)"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (None: cuda if available)")


def stem(args: argparse.Namespace, *parts: str) -> str:
    """Output file stem: the parts, the task, and the objective when it is not the logit."""
    return "_".join([*parts, args.task, *([args.objective] if args.objective != "logit" else [])])


def setup(args: argparse.Namespace):
    """Check the task name, then seed, thread count, output folder; returns the loaded model."""
    get_task(args.task, "evaluation")  # an unknown task fails here, before the model is loaded
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    return load_model(args.model, device=args.device)


def load_examples(
    model,
    task_name: str,
    n: int,
    *,
    seed: int = 0,
    max_new_tokens: int = 8,
    objective: str = "logit",
    skip: int = 0,
    prompt_format: PromptFormat = "chat",
    data_dir: str | Path | None = None,
) -> tuple[Any, list[StudyExample]]:
    """``(task, examples)``: examples ``skip .. skip + n`` of the task's hash order, prompted in ``prompt_format``;
    the task's files are read from ``data_dir`` (default: :func:`gradellm_lens.tasks.data.default_data_dir`)."""
    task = make_task(
        task_name, family="evaluation", max_new_tokens=max_new_tokens, prompt_format=prompt_format, data_dir=data_dir
    )
    records = task.load(skip + n, seed)[skip:]
    classification = task.kind == "classification"
    choices = tuple(tuple(c) for c in task.label_candidates(model.tokenizer)) if classification else None
    out = []
    for record in records:
        prompted = task.prompt(model, record)
        ids = prompted.token_ids
        generated = greedy_continuation(model, ids, 1 if classification else task.max_new_tokens)
        if classification:
            steps = build_steps(len(ids), ids, target=int(generated[0]), objective=objective)
            tokens = ids
        else:
            tokens = torch.cat([ids, generated])
            steps = build_steps(len(ids), tokens, objective=objective)
        user_mask = prompted.user_mask(len(tokens)) & all_prefix_mask(len(tokens))
        out.append(StudyExample(record.id, tokens, len(ids), tuple(steps), record.label, choices, user_mask))
    return task, out


def load_study_examples(model, args: argparse.Namespace) -> tuple[Any, list[StudyExample]]:
    """:func:`load_examples` with a study's common arguments (:func:`add_common_args`)."""
    return load_examples(
        model,
        args.task,
        args.n,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
        objective=args.objective,
        prompt_format=args.prompt_format,
        data_dir=getattr(args, "data_dir", None),
    )


def mean_sem(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the finite values (NaN when there are none)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else 0.0


def _fmt(value: Any) -> str:
    """A Markdown table cell: floats to 4 significant digits, pipes escaped."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def write_table(
    rows: Sequence[dict[str, Any]],
    out: str | Path,
    stem: str,
    *,
    title: str = "",
    md_rows: Sequence[dict[str, Any]] | None = None,
) -> tuple[Path, Path]:
    """Write ``rows`` as ``<stem>.csv`` and ``<stem>.md`` (a Markdown table) under ``out``.

    ``md_rows`` replace ``rows`` in the Markdown table only (e.g. estimates written ``0.52 [0.31, 0.70]``).
    """
    out = Path(out)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    csv_path, md_path = out / f"{stem}.csv", out / f"{stem}.md"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    if md_rows is not None:
        rows, columns = md_rows, list(dict.fromkeys(k for row in md_rows for k in row))
    lines = [f"# {title}", ""] if title else []
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |" for row in rows]
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def save_figure(fig, out: str | Path, stem: str) -> Path:
    path = Path(out) / f"{stem}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend (the ``evaluation`` extra)."""
    require("matplotlib", "evaluation", "The studies' figures").use("Agg")
    return require("matplotlib.pyplot", "evaluation", "The studies' figures")


class Timer:
    """Wall-clock seconds since construction (reported in each table's caption)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __str__(self) -> str:
        return f"{time.perf_counter() - self.start:.0f} s"
