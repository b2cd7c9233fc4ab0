"""Per-draw, per-map and per-shuffle π-Soft values of a few examples: the raw data of the variance budget.

The committed results average every map over its Bernoulli draws (``mean``, ``maps``), so the draw
and map components of a random baseline's variance cannot be told apart from them. This script
scores each example's step once per draw ``d`` (``n_draws = 1``, mask seed ``d``: the uniforms of
draw ``d`` are shared by every map of the step, as in a run) and records, per draw:

* the method's values;
* ``shuffles`` shuffled controls (the method's scores permuted with seed ``j``);
* ``maps`` independent random maps ``s_k`` (``RandomAttribution`` sample ``k``) and their
  reflections ``1 - s_k`` (antithetic partners, Hammersley & Morton 1956);

with the process CPU time of every call. One JSON line per example::

    OMP_NUM_THREADS=1 python analyses/variance_budget_measure.py --n 7 --draws 3 --maps 4 --shuffles 2 \\
        --out analyses/results/variance-budget/draws.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from gradellm_lens import load_model
from gradellm_lens.attribute import build_steps, greedy_continuation
from gradellm_lens.evaluation import EvaluationConfig
from gradellm_lens.evaluation.runner import shuffled_scores, step_references
from gradellm_lens.methods.base import make_method
from gradellm_lens.metrics import FaithfulnessConfig, evaluate_step
from gradellm_lens.metrics.pi_soft import DEFAULT_PIS
from gradellm_lens.tasks import make_task

KEYS = ("soft_ns", "soft_nc", "auc_pi_ns", "auc_pi_nc", "pi_ns", "pi_nc")


def attribute_row(method, sequence, steps):
    """The method's scores over the (single) step's prefix, and the CPU seconds they took."""
    t0 = time.process_time()
    scores = method.attribute(sequence, steps).scores[0, : steps[0].position + 1]
    return scores, time.process_time() - t0


def score_map(model, reference, scores, metrics: FaithfulnessConfig) -> dict:
    """One draw's values of a map (``metrics.n_draws == 1``) and the CPU seconds the call took."""
    t0 = time.process_time()
    r = evaluate_step(model, reference.tokens, reference.token_id, scores, perturbable=reference.perturbable,
                      config=metrics, reference=reference)  # fmt: skip
    values = {k: getattr(r, k) if not k.startswith("pi_") else list(getattr(r, k)) for k in KEYS}
    return {**values, "cpu_s": time.process_time() - t0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--task", default="sst2")
    p.add_argument("--methods", default="grad_ellm,saliency")
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--maps", type=int, default=4, help="independent random maps (each with its reflection)")
    p.add_argument("--shuffles", type=int, default=2)
    p.add_argument("--pis", default=",".join(str(x) for x in DEFAULT_PIS))
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    torch.manual_seed(0)
    model = load_model(args.model, device="cpu")
    task = make_task(args.task, family="evaluation", label_match="restricted")
    pis = tuple(float(x) for x in args.pis.split(","))
    config = EvaluationConfig(metrics=FaithfulnessConfig(pis=pis, n_draws=1, batch_size=args.batch_size))
    methods = {name: make_method(name, model) for name in args.methods.split(",")}
    randoms = make_method("random", model).samples(args.maps)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as fh:
        for example in task.load(args.n, 0):
            prompted = task.prompt(model, example)
            generated = greedy_continuation(model, prompted.token_ids, task.max_new_tokens)
            sequence = torch.cat([prompted.token_ids, generated])
            steps = build_steps(prompted.length, sequence)
            (reference,) = step_references(model, sequence, steps, prompted, config)
            maps = {name: attribute_row(m, sequence, steps) for name, m in methods.items()}
            random_rows = [attribute_row(m, sequence, steps)[0] for m in randoms]
            record = {"example_id": example.id, "rho": reference.rho, "n_perturbable": int(reference.perturbable.sum()),
                      "pis": list(pis), "attribute_cpu_s": {k: v[1] for k, v in maps.items()}, "draws": []}  # fmt: skip
            for d in range(args.draws):
                metrics = FaithfulnessConfig(pis=pis, n_draws=1, seed=d, batch_size=args.batch_size)

                def score(scores, metrics=metrics, reference=reference):
                    return score_map(model, reference, scores, metrics)

                draw = {"methods": {}, "random": [score(s) for s in random_rows]}
                draw["reflected"] = [score(1.0 - s) for s in random_rows]
                for name, (scores, _t) in maps.items():
                    draw["methods"][name] = {
                        "value": score(scores),
                        "shuffled": [score(shuffled_scores(scores, reference, j)) for j in range(args.shuffles)],
                    }
                record["draws"].append(draw)
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            print(example.id, f"rho={reference.rho:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
