"""The variance budget of a faithfulness evaluation: where the variance of each reported value sits
(examples, Bernoulli draws, random maps, shuffles) and which allocation narrows the paired
difference's confidence interval fastest per CPU-second.

Two sources (decomposition: :mod:`gradellm_lens.evaluation.variance`):

1. committed results folders (``results*.jsonl``): random's per-map values (``maps``, each already
   averaged over the run's draws) give the between-map component of random and of every method's
   paired difference to it; the draws cannot be told apart there;
2. ``draws.jsonl`` of ``analyses/variance_budget_measure.py``: per draw, per random map, per
   reflected map and per shuffle, so every component, the antithetic pairs and coarser π grids.

The allocation uses the cost model of :mod:`gradellm_lens.evaluation.estimate` with the per-input
CPU time and the attribution times measured in ``draws.jsonl``::

    python analyses/variance_budget.py --measured analyses/results/variance-budget/draws.jsonl \\
        --results analyses/results/faithfulness/*/* > analyses/results/variance-budget/README.md
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import statistics
from pathlib import Path

import numpy as np

from gradellm_lens.evaluation.estimate import inputs_per_map
from gradellm_lens.evaluation.store import read_results
from gradellm_lens.evaluation.variance import Z95, Components, allocations, crossed_components
from gradellm_lens.metrics.pi_soft import normalised_auc

METRICS = ("auc_pi_ns", "auc_pi_nc")
MIN_RHO = 0.1
GRIDS = {9: (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), 5: (0.1, 0.3, 0.5, 0.7, 0.9), 3: (0.1, 0.5, 0.9)}
CONTROLS = 2  # shuffled and rank: the maps a method scores besides its own


def fmt(x: float, digits: int = 4) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def pct(x: float) -> str:
    return "–" if x is None or math.isnan(x) else f"{100 * x:.0f}%"


# ---- committed results --------------------------------------------------------------------------------


def load_folder(folder: Path) -> tuple[dict, list[dict]]:
    headers, records = [], []
    for path in sorted(folder.glob("results*.jsonl")):
        h, r, _ = read_results(path)
        headers += h
        records += r
    return headers[0], records


def committed_rows(folder: Path) -> list[str]:
    """One table row per metric: random's components, and the median over methods of the paired
    difference's per-example variance and the share its maps hold at the run's K and at K = 2."""
    header, records = load_folder(folder)
    k_run = header["methods"]["random"]["config"]["random_maps"]
    draws, n_pis = header["config"]["metrics"]["n_draws"], len(header["config"]["metrics"]["pis"])
    random = {
        r["example_id"]: r
        for r in records
        if r["method"] == "random" and r["status"] == "ok" and r.get("maps") and None not in r["maps"]
    }
    methods = sorted({r["method"] for r in records} - {"random", "uniform"})
    rows = []
    for metric in METRICS:
        ids = sorted(random)
        r = np.array([[m[metric] for m in random[i]["maps"]] for i in ids])[:, :, None]
        rc = crossed_components(r)
        deltas, shuffled = [], []
        for method in methods:
            own = {x["example_id"]: x for x in records if x["method"] == method and x["status"] == "ok"}
            common = [i for i in ids if i in own]
            if len(common) < 5:
                continue
            m = np.array([own[i]["mean"][metric] for i in common])
            rr = np.array([[x[metric] for x in random[i]["maps"]] for i in common])
            deltas.append(crossed_components(m[:, None, None] - rr[:, :, None]))
            if all("shuffled" in (own[i].get("controls") or {}) for i in common):
                s = np.array([own[i]["controls"]["shuffled"][metric] for i in common])
                shuffled.append(float(np.var(m - s, ddof=1)))
        if not deltas:
            continue
        var_k = statistics.median(d.variance(1, k_run) for d in deltas)
        share_k = statistics.median(d.shares(1, k_run)["unit"] for d in deltas)
        share_2 = statistics.median(d.shares(1, 2)["unit"] for d in deltas)
        widen = statistics.median(math.sqrt(d.variance(1, 2) / d.variance(1, k_run)) for d in deltas)
        rows.append(
            f"| {folder.parent.parent.name} | {folder.parent.name} | {folder.name} | {metric} | {len(ids)} | {draws}/{n_pis}/{k_run} | "
            f"{fmt(rc.example)} | {fmt(rc.unit)} | {pct(rc.shares(1, k_run)['unit'])} | {len(deltas)} | "
            f"{fmt(var_k)} | {pct(share_k)} | {pct(share_2)} | ×{widen:.3f} | "
            f"{fmt(statistics.median(shuffled)) if shuffled else '–'} |"
        )
    return rows


# ---- the new measurement -----------------------------------------------------------------------------


def grid_auc(pis: list[float], values: list[float], grid: tuple[float, ...]) -> float:
    where = [min(range(len(pis)), key=lambda i: abs(pis[i] - p)) for p in grid]
    return normalised_auc(grid, [values[i] for i in where])


def measured_arrays(path: Path, metric: str, n_pis: int) -> dict:
    """Arrays of the kept examples (ρ >= MIN_RHO): per method ``m [E, D]``, ``shuffled [E, J, D]``;
    ``random`` and ``reflected`` ``[E, K, D]``; plus the CPU times."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    kept = [x for x in lines if x["rho"] >= MIN_RHO]
    side = metric.removeprefix("auc_")  # pi_ns / pi_nc
    grid = GRIDS[n_pis]

    def value(entry):
        return grid_auc(kept[0]["pis"], entry[side], grid)

    out = {
        "random": np.array([[[value(x["draws"][d]["random"][k]) for d in range(len(x["draws"]))]
                             for k in range(len(x["draws"][0]["random"]))] for x in kept]),
        "reflected": np.array([[[value(x["draws"][d]["reflected"][k]) for d in range(len(x["draws"]))]
                                for k in range(len(x["draws"][0]["reflected"]))] for x in kept]),
        "methods": {},
        "n_all": len(lines),
        "n": len(kept),
    }  # fmt: skip
    for name in kept[0]["draws"][0]["methods"]:
        m = np.array([[value(d["methods"][name]["value"]) for d in x["draws"]] for x in kept])
        s = np.array([[[value(d["methods"][name]["shuffled"][j]) for d in x["draws"]]
                       for j in range(len(x["draws"][0]["methods"][name]["shuffled"]))] for x in kept])  # fmt: skip
        out["methods"][name] = {"m": m, "shuffled": s}
    calls = [c["cpu_s"] for x in lines for d in x["draws"] for c in d["random"] + d["reflected"]]
    out["input_s"] = statistics.median(calls) / inputs_per_map(1, len(kept[0]["pis"]))
    out["attribute_s"] = {name: statistics.median(x["attribute_cpu_s"][name] for x in lines) for name in out["methods"]}
    return out


def decompositions(arrays: dict) -> dict[str, dict[str, Components]]:
    """Per method: its AUC, Δ vs random (independent maps), Δ vs random (antithetic pairs as units),
    Δ vs shuffled."""
    r, rr = arrays["random"], arrays["reflected"]
    out = {}
    for name, a in arrays["methods"].items():
        m = a["m"]
        out[name] = {
            "method": crossed_components(m[:, None, :]),
            "random": crossed_components(m[:, None, :] - r),
            "antithetic": crossed_components(m[:, None, :] - (r + rr) / 2),
            "shuffled": crossed_components(m[:, None, :] - a["shuffled"]),
        }
    return out


class Cost:
    """CPU seconds per example: attribution of ``n_methods`` methods plus the perturbed inputs of
    their maps (each with ``CONTROLS`` controls) and of ``random_maps`` random maps (the cost model of
    :mod:`gradellm_lens.evaluation.estimate`)."""

    def __init__(
        self, input_s: float, attribute_s: float, n_methods: int, n_pis: int, controls: int = CONTROLS
    ) -> None:
        self.input_s, self.attribute_s, self.n_methods, self.n_pis = input_s, attribute_s, n_methods, n_pis
        self.controls = controls

    def __call__(self, draws: int, random_maps: int, n_pis: int | None = None) -> float:
        inputs = inputs_per_map(draws, self.n_pis if n_pis is None else n_pis)
        maps = self.n_methods * (1 + self.controls) + random_maps
        return self.n_methods * self.attribute_s + 2 * self.input_s + inputs * maps * self.input_s

    def random_share(self, draws: int, random_maps: int) -> float:
        return random_maps / (self.n_methods * (1 + self.controls) + random_maps)


def report(args) -> str:
    out = ["# Variance budget of a π-Soft evaluation", ""]
    out += [
        "Where the variance of each reported value sits, and the allocation of draws (D), random maps (K),",
        "π points and examples that narrows the 95% CI of the paired difference *method − random* fastest",
        "per CPU-second. Decomposition: `gradellm_lens/evaluation/variance.py` (two-way crossed random-effects",
        "ANOVA within examples, draws shared by every map of a step); cost: `gradellm_lens/evaluation/estimate.py`.",
        "",
        "Commands (one thread, SmolLM2-135M-Instruct, SST-2, CPU):",
        "",
        "```bash",
        "OMP_NUM_THREADS=1 python analyses/variance_budget_measure.py --n 7 --draws 3 --maps 4 --shuffles 2 \\",
        "    --out analyses/results/variance-budget/draws.jsonl",
        "python analyses/variance_budget.py --measured analyses/results/variance-budget/draws.jsonl \\",
        "    --results 'analyses/results/faithfulness/*/*' 'analyses/results/faithfulness-generation/*/*' \\",
        "    'analyses/results/grad-ellm-study/*/*' > analyses/results/variance-budget/README.md",
        "```",
        "",
        "The grad-ellm-study rows were read from that study's results files while its shards were still running",
        "(not yet committed); the measurement was stopped after the first 7 examples of `--n 14` (the seeded",
        "order is the same, so `--n 7` reproduces it). Sections 1–3 are the script's output; section 4, the",
        "reading, is written by hand.",
        "",
    ]
    # 1. committed results
    out += [
        "## 1. Committed results: examples vs random maps",
        "",
        "Random's `maps` (each averaged over the run's D draws, which share their masks across maps) give",
        "the between-map component; the draws fold into the example component there. Per folder and metric:",
        "random's components (example, map) and the map share of the variance of random's mean at the run's",
        "K; then, over the methods paired with random, the median per-example variance of Δ = method − random,",
        "the share of it the random maps hold at the run's K and at K = 2 independent maps, the CI widening",
        "from K to 2 (√ of the variance ratio, examples held fixed), and the per-example variance of",
        "Δ = method − shuffled (one shuffle, draws shared: not decomposable here).",
        "",
        (
            "| source | model | task | metric | n | D/π/K | random σ²ex | random σ²map | map share | methods | Var Δ"
            " | map share @K | map share @2 | CI ×, K→2 | Var Δ shuffled |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    folders = [Path(p) for pattern in args.results for p in sorted(glob.glob(pattern)) if Path(p).is_dir()]
    for folder in folders:
        out += committed_rows(folder)
    out.append("")
    # 2. the measurement
    lines = [json.loads(line) for line in Path(args.measured).read_text().splitlines() if line.strip()]
    first = lines[0]
    n_d, n_k = len(first["draws"]), len(first["draws"][0]["random"])
    n_j = len(next(iter(first["draws"][0]["methods"].values()))["shuffled"])
    arrays9 = {metric: measured_arrays(Path(args.measured), metric, 9) for metric in METRICS}
    a0 = arrays9[METRICS[0]]
    out += [
        "## 2. Full decomposition (new measurement)",
        "",
        (
            f"`draws.jsonl`: SmolLM2-135M-Instruct, SST-2 validation, first {a0['n_all']} examples of the seeded "
            f"order ({a0['n']} with ρ ≥ {MIN_RHO}), {n_d} draws × ({n_k} random maps + their {n_k} reflections + "
            f"{n_j} shuffles + the method), default 9-point π grid. Components per example (σ²), and the share of"
            " each in"
        ),
        "the variance of one example's estimate at the committed protocol's D = 3, K = 10 (Δ vs random) or",
        "one shuffle (Δ vs shuffled). *antithetic* treats a map and its reflection as one unit.",
        "",
        "| method | metric | quantity | mean | σ²ex | σ²map | σ²draw | σ²map×draw | share ex | share draw | share map |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    decs = {metric: decompositions(arrays9[metric]) for metric in METRICS}
    for metric in METRICS:
        for name, parts in decs[metric].items():
            for quantity, c in parts.items():
                units = {"method": 1, "random": 10, "antithetic": 5, "shuffled": 1}[quantity]
                sh = c.shares(3, units)
                out.append(
                    f"| {name} | {metric} | {quantity} | {fmt(c.mean, 3)} | {fmt(c.example)} | {fmt(c.unit)} | "
                    f"{fmt(c.draw)} | {fmt(c.residual)} | {pct(sh['example'])} | {pct(sh['draw'])} | "
                    f"{pct(sh['unit'] + sh['residual'])} |"
                )
    out.append("")
    # antithetic efficiency
    out += [
        "### Antithetic random maps",
        "",
        "Per map scored, the variance the random maps add to Δ: independent maps σ²map, antithetic pairs",
        "σ²pair / 2 per map (a pair costs two maps). Efficiency = independent / antithetic (> 1: the pairs",
        "win); the correlation is that of a map's value with its reflection's (one draw). Last column: the CI",
        "half-width of Δ = method − random with random's 10 independent maps replaced by one antithetic pair",
        "(2 maps, a fifth of the cost), examples and D = 3 draws held fixed (√ of the variance ratio; < 1: narrower).",
        "",
        (
            "| method | metric | σ²map (independent) | σ²pair | efficiency | corr(f(s), f(1−s)) | CI ×, 10 independent"
            " → 2 antithetic |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    penalty = {}
    for metric in METRICS:
        a = arrays9[metric]
        r, rr = a["random"], a["reflected"]
        rc = (r - r.mean(axis=1, keepdims=True)).ravel()
        rrc = (rr - rr.mean(axis=1, keepdims=True)).ravel()
        corr = float(np.corrcoef(rc, rrc)[0, 1])
        for name, parts in decs[metric].items():
            ind = parts["random"].unit + parts["random"].residual / 3
            anti = parts["antithetic"].unit + parts["antithetic"].residual / 3
            eff = ind / (2 * anti) if anti > 0 else float("inf")
            base = parts["random"]
            common = base.example + base.draw / 3
            old = common + (base.unit + base.residual / 3) / 10
            new = common + anti
            penalty[(name, metric)] = math.sqrt(new / old)
            out.append(
                f"| {name} | {metric} | {fmt(ind)} | {fmt(anti)} | {eff:.2f} | {corr:+.2f} | ×{math.sqrt(new / old):.3f} |"
            )
    out.append("")
    # 3. allocation
    input_s = a0["input_s"]
    attribute_s = statistics.median(a0["attribute_s"].values())
    out += [
        "## 3. Allocation per CPU-second",
        "",
        f"Cost model (measured in `draws.jsonl`, one thread on a loaded 2-core machine): {1000 * input_s:.1f} ms CPU per",
        (
            f"perturbed input, {attribute_s:.2f} s per method's attribution (median of "
            f"{', '.join(a0['attribute_s'])}); each method scores itself and its 2 controls; random scores K maps;"
        ),
        "R = 2·D·(1 + |π|) inputs per map. CI half-width after one CPU-hour, z·√(V·c/3600), for Δ = method − random",
        "(median over the measured methods of the components), in a run of 1 method and of 12 methods (the verdict).",
        "V uses the antithetic components for antithetic K and the independent ones otherwise.",
        "",
    ]
    configs = [  # label, D, K, antithetic, π points, controls
        ("old default (CLI)", 5, 10, False, 9, 2),
        ("committed protocol", 3, 10, False, 9, 2),
        ("D = 1, K = 10 independent", 1, 10, False, 9, 2),
        ("D = 1, K = 2 independent", 1, 2, False, 9, 2),
        ("D = 2, K = 2 antithetic", 2, 2, True, 9, 2),
        ("D = 1, K = 2 antithetic, 5 π points", 1, 2, True, 5, 2),
        ("preset quick", 1, 2, True, 9, 1),
        ("preset standard", 1, 2, True, 9, 2),
        ("preset paper", 3, 4, True, 9, 2),
    ]
    for metric in METRICS:
        arrays = {p: measured_arrays(Path(args.measured), metric, p) for p in GRIDS}
        comps = {p: decompositions(arrays[p]) for p in GRIDS}

        def median_comp(p, kind, comps=comps):
            """Median components over the methods; the antithetic ones take the example and draw parts of the
            independent decomposition (the same quantities in expectation) and only their map parts from the pairs."""
            ind = [parts["random"] for parts in comps[p].values()]
            pairs = [parts["antithetic"] for parts in comps[p].values()]
            fields = {f: statistics.median(getattr(c, f) for c in ind) for f in ("example", "unit", "draw", "residual")}
            if kind == "antithetic":
                fields.update(unit=statistics.median(c.unit for c in pairs),
                              residual=statistics.median(c.residual for c in pairs))  # fmt: skip
            return Components(**fields, n_examples=ind[0].n_examples)

        out += [
            f"### {metric}",
            "",
            (
                "| configuration | D | K | π points | random's share of the cost (1 / 12 methods) | CPU s per example"
                " (1 / 12) | Var Δ per example | CI half-width after 1 CPU-h (1 / 12 methods) |"
            ),
            "|---|---|---|---|---|---|---|---|",
        ]
        for label, d, k, anti, p, controls in configs:
            comp = median_comp(p, "antithetic" if anti else "random")
            units = k // 2 if anti else k
            var = comp.variance(d, units)
            c1, c12 = Cost(input_s, attribute_s, 1, p, controls), Cost(input_s, attribute_s, 12, p, controls)
            hw = [Z95 * math.sqrt(var * c(d, k) / 3600) for c in (c1, c12)]
            out.append(
                f"| {label} | {d} | {k}{' (antithetic)' if anti else ''} | {p} | {pct(c1.random_share(d, k))} / "
                f"{pct(c12.random_share(d, k))} | {c1(d, k):.0f} / {c12(d, k):.0f} | {fmt(var)} | "
                f"{fmt(hw[0], 4)} / {fmt(hw[1], 4)} |"
            )
        out.append("")
        for n_methods in (1, 12):
            comp = median_comp(9, "antithetic")
            cost = Cost(input_s, attribute_s, n_methods, 9)
            fixed, per_draw = cost(0, 2), cost(1, 2) - cost(0, 2)
            d_star = math.sqrt(fixed * (comp.draw + comp.residual) / (per_draw * (comp.example + comp.unit)))
            out.append(
                f"- {n_methods} method(s), K = 2 antithetic: fixed cost a = {fixed:.1f} s, cost per draw b = "
                f"{per_draw:.1f} s per example; D* = √(a·σ²draw / (b·σ²ex)) = {d_star:.2f}"
            )
            for anti in (False, True):
                comp = median_comp(9, "antithetic" if anti else "random")
                cost = Cost(input_s, attribute_s, n_methods, 9)
                units = range(1, 6) if anti else range(1, 11)
                best = allocations(
                    comp, lambda d, u, cost=cost, anti=anti: cost(d, 2 * u if anti else u), range(1, 7), units
                )[0]
                k = 2 * best.units if anti else best.units
                out.append(
                    f"- best on the grid D ∈ 1..6, K ∈ {'2..10 antithetic' if anti else '1..10 independent'}, "
                    f"{n_methods} method(s), 9 π points: D = {best.draws}, K = {k}: half-width "
                    f"{best.half_width:.4f} after 1 CPU-h ({best.examples:.0f} examples)"
                )
        shifts = []
        for p in (5, 3):
            d9 = np.array([x["m"].mean(1) for x in arrays[9]["methods"].values()]) - arrays[9]["random"].mean((1, 2))
            dp = np.array([x["m"].mean(1) for x in arrays[p]["methods"].values()]) - arrays[p]["random"].mean((1, 2))
            shifts.append(f"{p} points {float(np.abs(dp - d9).mean()):.4f} (mean {float((dp - d9).mean()):+.4f})")
        out += [
            (
                f"- π grid: |Δ(coarse grid) − Δ(9 points)| per example and method, averaged: {', '.join(shifts)}; a"
                " coarser grid estimates a slightly different area: compare the shift of the mean with the half-widths"
            ),
            "",
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--measured", required=True, help="draws.jsonl of analyses/variance_budget_measure.py")
    p.add_argument("--results", nargs="*", default=[], help="results folders (globs) with results*.jsonl")
    args = p.parse_args(argv)
    print(report(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
