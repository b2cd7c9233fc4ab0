"""Does the model read the text? Per model, prompt format and task, on the first examples of each task.

A faithfulness metric can only rank attributions of a prediction that depends on the input. This
script measures, for each model, prompt format (plain, chat) and task (by default the verdict's
five: 20 examples of each classification task, 8 of each generation task), with the evaluation's
own greedy continuation and step references (so its ρ is the one the verdict conditions on):

* ρ = (p(ŷ|x) − p(ŷ|x_∅)) / p(ŷ|x) for every greedy token ŷ with only the dataset text masked
  (x_∅): its median over the explained steps and the share of steps with ρ < 0.1 (ill-conditioned
  under the evaluation's default, so left out of the verdict's means);
* for classification tasks, the accuracy of the restricted label argmax (the larger probability of
  the label words) against the majority-class rate of the gold labels, the share of each predicted
  label, the label AUROC (the probability that a gold-1 example gets a larger
  ``log p(label 1) − log p(label 0)`` margin than a gold-0 one; Mann–Whitney, 0.5 = the margin
  ignores the text) and how often the greedy first token is a label word at all.

Long fields are cut as in the verdict (``--text-tokens``). Use it to choose the prompt format of a
model, and to see which tasks a model is worth evaluating on, before the verdict run::

    python analyses/faithfulness_reads_text.py > analyses/results/faithfulness/reads_text.md
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys

import torch
from faithfulness_run import TEXT_TOKENS, make_verdict_task, parse_task_counts

from gradellm_lens import load_model
from gradellm_lens.attribute import build_steps, greedy_continuation
from gradellm_lens.errors import LensError
from gradellm_lens.evaluation import EvaluationConfig, step_references

MODELS = "smollm2-135m-instruct,qwen2.5-coder-0.5b-instruct"
SIZES = "sst2=20,imdb=20,boolq=20,tellmewhy=8,wikibio=8"


def auroc(scores: list[float], labels: list[int]) -> float | None:
    """P(score of a random positive > score of a random negative), ties counting one half; None if a class is empty."""
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    if not pos or not neg:
        return None
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


@torch.no_grad()
def measure(model, task, n: int, min_rho: float) -> list[str]:
    """One table row (from the ``n`` column on): the statistics above for ``model`` on ``task``."""
    config = EvaluationConfig(min_rho=min_rho)
    classify = task.kind == "classification"
    margins, gold, predicted, label_first, rhos = [], [], [], [], []
    examples = task.load(n)
    for example in examples:
        prompted = task.prompt(model, example)
        generated = greedy_continuation(model, prompted.token_ids, task.max_new_tokens)
        sequence = torch.cat([prompted.token_ids, generated])
        references = step_references(model, sequence, build_steps(prompted.length, sequence), prompted, config)
        rhos += [reference.rho for reference in references]
        if classify:
            best = [math.log(p) for p in task.label_scores(model.tokenizer, references[0].full)]
            margins.append(best[1] - best[0])
            gold.append(example.label)
            predicted.append(int(torch.tensor(best).argmax()))
            label_first.append(task.match_token(model.tokenizer.decode(generated[:1])) is not None)
    k, dash = len(examples), "–"
    head = [str(k), str(len(rhos))]
    tail = [f"{statistics.median(rhos):.3f}", f"{sum(r < min_rho for r in rhos) / len(rhos):.0%}"]
    if not classify:
        return head + [dash] * 5 + tail
    majority = max(gold.count(0), gold.count(1)) / k
    accuracy = sum(p == g for p, g in zip(predicted, gold)) / k
    shares = ", ".join(f"{task.label_words[c].strip()} {predicted.count(c) / k:.0%}" for c in (1, 0))
    area = auroc(margins, gold)
    return head + [
        f"{accuracy:.2f}", f"{majority:.2f}", shares, dash if area is None else f"{area:.2f}",
        f"{sum(label_first) / k:.0%}",
    ] + tail  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS, help=f"comma-separated model names (default {MODELS})")
    parser.add_argument("--formats", default="plain,chat", help="prompt formats to compare (default plain,chat)")
    parser.add_argument("--n", default=SIZES, help=f"examples per task, in table order (default {SIZES})")
    parser.add_argument("--text-tokens", default=TEXT_TOKENS,
                        help=f"long fields cut to this many tokens, per task (default {TEXT_TOKENS})")  # fmt: skip
    parser.add_argument("--max-new-tokens", type=int, default=10, help="generated tokens per example (default 10)")
    parser.add_argument("--min-rho", type=float, default=0.1, help="ill-conditioning threshold (default 0.1)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    parser.add_argument(
        "--data-dir", default=None, help="task data folder (default: $GRADELLM_LENS_DATA, ./data, ../shared/data)"
    )
    args = parser.parse_args()
    try:
        sizes = parse_task_counts(args.n, "--n")
        budgets = parse_task_counts(args.text_tokens, "--text-tokens")
        common = {"data_dir": args.data_dir, "max_new_tokens": args.max_new_tokens}
        tasks = {
            (name, prompt_format): make_verdict_task(name, budgets, prompt_format=prompt_format, **common)
            for name in sizes
            for prompt_format in args.formats.split(",")
        }
    except LensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    head = ["model", "task", "prompt", "n", "steps", "accuracy", "majority", "predicted", "label AUROC",
            "first token is a label", "median ρ", f"ρ < {args.min_rho:g}"]  # fmt: skip
    print(
        "# Does the model read the text? (only the dataset text masked for ρ; classification: restricted "
        f"label argmax; long fields cut: {args.text_tokens})\n"
    )
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for name in args.models.split(","):
        try:
            model = load_model(name, device=args.device)
        except LensError as exc:
            reason = str(exc).split(":")[0]  # e.g. "Could not load model 'x'"
            print(f"| {name} | – | – | not available: {reason} |" + " |" * (len(head) - 4), flush=True)
            continue
        for (task_name, prompt_format), task in tasks.items():
            try:
                row = measure(model, task, sizes[task_name], args.min_rho)
            except LensError as exc:
                row = [f"failed: {str(exc).splitlines()[0]}"] + ["–"] * (len(head) - 4)
            print(f"| {name} | {task_name} | {prompt_format} | " + " | ".join(row) + " |", flush=True)
        del model
    return 0


if __name__ == "__main__":
    sys.exit(main())
