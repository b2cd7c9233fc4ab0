"""Does the model read the review? Per model and prompt format, on the first ~20 SST-2 examples.

A faithfulness metric can only rank attributions of a prediction that depends on the input. This
script measures, for each model and prompt format (plain, chat), with three forwards per example:

* accuracy of the restricted label argmax (the larger logit of the two label words) against the
  majority-class rate of the gold labels, and the share of each predicted label;
* the label AUROC: the probability that a positive review gets a larger ``logit(positive) −
  logit(negative)`` margin than a negative one (Mann–Whitney; 0.5 = the margin ignores the review);
* how often the greedy first token is a label word at all;
* ρ = (p(ŷ|x) − p(ŷ|x_∅)) / p(ŷ|x) for the greedy token ŷ with only the review masked (x_∅): its
  median and the share of examples with ρ < 0.1 (ill-conditioned under the evaluation's default).

Use it to choose the prompt format of a model before the verdict run::

    python analyses/faithfulness_reads_text.py --models smollm2-135m-instruct,qwen2.5-coder-0.5b-instruct \\
        > analyses/results/faithfulness/reads_text.md
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

from gradellm_lens import load_model
from gradellm_lens.errors import LensError
from gradellm_lens.metrics import all_prefix_mask, step_reference
from gradellm_lens.tasks import make_task

MODELS = "smollm2-135m-instruct,qwen2.5-coder-0.5b-instruct"


def auroc(scores: list[float], labels: list[int]) -> float | None:
    """P(score of a random positive > score of a random negative), ties counting one half; None if a class is empty."""
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    if not pos or not neg:
        return None
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


@torch.no_grad()
def measure(model, prompt_format: str, n: int, min_rho: float, data_dir: str | None) -> list[str]:
    """One table row: the statistics above for ``model`` under ``prompt_format``."""
    task = make_task("sst2", data_dir=data_dir, prompt_format=prompt_format)
    candidates = task.label_candidates(model.tokenizer)
    device = next(model.parameters()).device
    margins, gold, predicted, label_first, rhos = [], [], [], [], []
    for example in task.load(n):
        prompted = task.prompt(model, example)
        logits = model(prompted.token_ids[None].to(device))[0, -1].float().cpu()
        best = [float(logits[ids].max()) for ids in candidates]
        greedy = int(logits.argmax())
        mask = prompted.user_mask() & all_prefix_mask(prompted.length)
        reference = step_reference(model, prompted.token_ids, greedy, perturbable=mask)
        margins.append(best[1] - best[0])
        gold.append(example.label)
        predicted.append(int(torch.tensor(best).argmax()))
        label_first.append(task.match_token(model.tokenizer.decode([greedy])) is not None)
        rhos.append(reference.rho)
    k = len(gold)
    majority = max(gold.count(0), gold.count(1)) / k
    accuracy = sum(p == g for p, g in zip(predicted, gold)) / k
    shares = ", ".join(f"{task.label_words[c].strip()} {predicted.count(c) / k:.0%}" for c in (1, 0))
    area = auroc(margins, gold)
    return [
        str(k), f"{accuracy:.2f}", f"{majority:.2f}", shares, "–" if area is None else f"{area:.2f}",
        f"{sum(label_first) / k:.0%}", f"{statistics.median(rhos):.3f}", f"{sum(r < min_rho for r in rhos) / k:.0%}",
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS, help=f"comma-separated model names (default {MODELS})")
    parser.add_argument("--formats", default="plain,chat", help="prompt formats to compare (default plain,chat)")
    parser.add_argument("--n", type=int, default=20, help="SST-2 examples (default 20)")
    parser.add_argument("--min-rho", type=float, default=0.1, help="ill-conditioning threshold (default 0.1)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    parser.add_argument("--data-dir", default=None, help="task data folder (default ../shared/data)")
    args = parser.parse_args()
    head = ["model", "prompt", "n", "accuracy", "majority", "predicted", "label AUROC", "first token is a label",
            "median ρ", f"ρ < {args.min_rho:g}"]  # fmt: skip
    print("# Does the model read the review? (SST-2, restricted label argmax, only the review masked for ρ)\n")
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for name in args.models.split(","):
        try:
            model = load_model(name, device=args.device)
        except LensError as exc:
            reason = str(exc).split(":")[0]  # e.g. "Could not load model 'x'"
            print(f"| {name} | – | not available: {reason} |" + " |" * (len(head) - 3), flush=True)
            continue
        for prompt_format in args.formats.split(","):
            try:
                row = measure(model, prompt_format, args.n, args.min_rho, args.data_dir)
            except LensError as exc:
                row = [f"failed: {str(exc).splitlines()[0]}"] + ["–"] * (len(head) - 3)
            print(f"| {name} | {prompt_format} | " + " | ".join(row) + " |", flush=True)
        del model
    return 0


if __name__ == "__main__":
    sys.exit(main())
