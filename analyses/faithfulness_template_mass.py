"""Where each method puts its attribution mass: dataset text versus prompt template / chat markup.

With ``--perturb all`` the faithfulness metrics mask every prefix token but BOS, the chat template's
system prompt, instruction and markup included. A method that scores those tokens highly keeps them
under π-Soft-NS and removes them under π-Soft-NC, which a small chat model notices far more than
changes to the review itself. This script measures, per method, the share of each step's score
mass (BOS excluded) that falls on the user-text tokens, averaged over the same examples as the
report, next to the method's π-Soft AUCs from the report's results::

    python analyses/faithfulness_template_mass.py --task sst2 --n 6 \\
        > analyses/results/faithfulness-earlier/template_mass.md

It belongs to the earlier report (chat prompts, ``--perturb all``) in
``analyses/results/faithfulness-earlier/``; the corrected protocol perturbs only the dataset text.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from gradellm_lens import load_model
from gradellm_lens.attribute import build_steps, greedy_continuation
from gradellm_lens.evaluation import parse_method_specs, summarize
from gradellm_lens.tasks import make_task

DEFAULT_METHODS = (
    "grad_ellm,grad_ellm:reference,attention,attention_rollout,attention_x_gradient,saliency,"
    "input_x_gradient,integrated_gradients+n_steps=16,occlusion,random"
)


def user_share(scores: torch.Tensor, user: torch.Tensor) -> float:
    """Fraction of the non-BOS score mass on user-text positions (0 when the map is all zero)."""
    scores = scores.clamp(min=0).clone()
    scores[0] = 0.0
    total = float(scores.sum())
    return float(scores[user].sum()) / total if total > 0 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    parser.add_argument("--results", type=Path, default=Path("analyses/results/faithfulness-earlier"))
    args = parser.parse_args()

    model = load_model("smollm2-135m-instruct", device="cpu")
    task = make_task(args.task, label_match="restricted", prompt_format="chat")
    specs = parse_method_specs(args.methods)
    methods = {s.label: s.build(model) for s in specs}
    shares: dict[str, list[float]] = {label: [] for label in methods}
    user_fraction = []
    for example in task.load(args.n):
        prompted = task.prompt(model, example)
        generated = greedy_continuation(model, prompted.token_ids, task.max_new_tokens)
        sequence = torch.cat([prompted.token_ids, generated])
        steps = build_steps(prompted.length, sequence)
        user_fraction.append(float(prompted.user_mask()[1:].float().mean()))
        for label, method in methods.items():
            scores = method.attribute(sequence, steps).scores
            for t, step in enumerate(steps):
                length = step.position + 1
                shares[label].append(user_share(scores[t, :length], prompted.user_mask(length)))
    report = summarize(sorted((args.results / args.task).glob("results*.jsonl")))
    auc = {m.label: m.metrics for m in report.methods}
    print(f"# Attribution mass on the dataset text ({args.task}, {args.n} examples, SmolLM2-135M-Instruct, chat)\n")
    print(
        f"User-text tokens are {100 * sum(user_fraction) / len(user_fraction):.0f}% of the perturbable prompt "
        "positions (the rest: system prompt, instruction, chat markup).\n"
    )
    print("| method | score mass on user text | π-Soft-NS AUC | π-Soft-NC AUC |")
    print("|---|---|---|---|")
    for label, values in sorted(shares.items(), key=lambda kv: -sum(kv[1]) / len(kv[1])):
        ns = auc[label]["auc_pi_ns"].mean if label in auc else float("nan")
        nc = auc[label]["auc_pi_nc"].mean if label in auc else float("nan")
        print(f"| {label} | {100 * sum(values) / len(values):.0f}% | {ns:.3f} | {nc:.3f} |")


if __name__ == "__main__":
    main()
