"""Write the example notebooks from the cell sources below, executed, with their outputs.

    python notebooks/build_notebooks.py               # rebuild and execute notebooks/*.ipynb (minutes)
    python notebooks/build_notebooks.py --no-execute  # sources only (outputs dropped)
    python notebooks/build_notebooks.py --check       # exit 1 if a committed notebook's cells differ
                                                      # from this script or were not all executed

The .ipynb files are committed with their outputs (figures, tables, views), so they can be read
without running them; the CircuitsVis bundle is inlined once per notebook (in its first view).
tests/test_notebooks.py runs --check and executes each notebook top to bottom.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

QUICKSTART = [
    "md", """# Quick start: Grad-ELLM on SmolLM2-135M-Instruct

Load the default model (offline; the GGUF checkpoint is cached as safetensors after the first load),
explain every generated token with Grad-ELLM, and look at the result: as a table, as a heatmap, and
with CircuitsVis views. Colours are the same everywhere: blue = positive (supports the explained
token), red = negative, white = 0. The views render offline: the first one inlines the CircuitsVis
bundle (once per notebook) instead of loading it from a CDN.""",
    "code", """%matplotlib inline
import tempfile
from pathlib import Path

import gradellm_lens as gl

model = gl.load_model()  # "smollm2-135m-instruct"
gl.model_info(model)""",
    "md", """## Explain a generation

`explain` generates greedily and attributes each generated token to its whole prefix. `layers=4` uses
the last four attention layers (the default is the last one) and keeps the per-layer, per-head
decomposition in `result.layer_head` (`[step, layer, head, pos]`).""",
    "code", """PROMPT = "What is the capital of France?"
result = gl.explain(model, PROMPT, prompt_format="chat", max_new_tokens=4, layers=4)
assert result.layer_head.shape[:3] == (result.n_steps, 4, gl.model_info(model).n_heads)
result  # a short summary and one heatmap per generated token (static HTML)""",
    "md", """Every score as a long table (one row per step and prefix position; `layer_head=True` adds layer
and head), ready for pandas; `result.save("x.npz")` or `"x.json"` keeps it.""",
    "code", """result.to_dataframe().sort_values("score", ascending=False).head(8)""",
    "md", """## Token heatmaps

One step (blue = supports the explained token; hover a token for its score), then every step at once
(one button per generated token).""",
    "code", "gl.viz.colored_tokens(result, step=0)",
    "code", "gl.viz.colored_tokens_multi(result)",
    "md", """## Layers and heads

Pick a layer and a head (or "all heads", the layer's map before its ReLU); one box per generated
token. The figure reduces each head's map to one number (its positive mass, mean over steps).""",
    "code", "gl.viz.layer_head_tokens(result)",
    "code", "gl.viz.layer_tokens(result, step=0)  # the final score and each layer's map, one series each",
    "code", "gl.viz.plot_head_importance(result)",
    "md", """## Another method on the same continuation

Forcing the continuation makes the two results explain exactly the same tokens; `compare_methods`
divides each method's scores by its largest one so that the colours are comparable.""",
    "code", """saliency = gl.explain(
    model, PROMPT, "saliency", prompt_format="chat", continuation=result.token_ids[result.prompt_length :]
)
gl.viz.compare_methods([result, saliency], step=0)""",
    "md", """## A self-contained HTML report

One page with the text, every step, the layer and head views and the options used; the CircuitsVis
bundle is inlined once and the page makes no network request. The command line does the same:
`gradellm-lens explain "What is the capital of France?" --prompt-format chat --methods grad_ellm,saliency
--out report.html`.""",
    "code", """path = Path(tempfile.mkdtemp()) / "quickstart.html"
report = gl.viz.write_report([result, saliency], path, title=PROMPT)
print(report, f"{report.stat().st_size / 1e6:.1f} MB")""",
]

FAITHFULNESS = [
    "md", """# Faithfulness: Soft-NS/NC and π-Soft-NS/NC on one example

Soft-NS (sufficiency) keeps each input embedding element with probability equal to the token's
normalised score; Soft-NC (comprehensiveness) keeps it with one minus that. Both are measured by the
probability of the explained token and normalised by the all-masked input. Their value also depends on
*how much* a method keeps on average, so π-Soft-NS/NC rescale every method's keep probabilities to the
same mean π and report curves over π, summarised by their normalised AUC (higher is better for both).

This is a small illustration (one prompt, two mask draws); `gradellm_lens.evaluation` runs datasets.""",
    "code", """%matplotlib inline
import pandas as pd

import gradellm_lens as gl
from gradellm_lens.metrics import FaithfulnessConfig, evaluate_step

model = gl.load_model()""",
    "md", "Explain the label word ` positive` after a sentiment prompt with Grad-ELLM and two baselines:",
    "code", """PROMPT = "Review: a charming and often affecting journey.\\nIs this review positive or negative? Answer:"
METHODS = ["grad_ellm", "input_x_gradient", "random"]
results = {name: gl.explain(model, PROMPT, name, target=" positive") for name in METHODS}
gl.viz.compare_methods(list(results.values()))""",
    "code", """config = FaithfulnessConfig(pis=(0.1, 0.3, 0.5, 0.7, 0.9), n_draws=2)
scores = {}
for name, r in results.items():
    prefix = r.token_ids[: r.step_positions[0] + 1]
    scores[name] = evaluate_step(model, prefix, r.target_ids[0], r.step_scores(0), config=config)

table = pd.DataFrame(
    {
        name: {
            "Soft-NS": s.soft_ns, "Soft-NC": s.soft_nc, "AUC π-Soft-NS": s.auc_pi_ns,
            "AUC π-Soft-NC": s.auc_pi_nc, "mean normalised score": s.mean_score,
        }
        for name, s in scores.items()
    }
).T
assert table.notna().all().all()
table.round(3)""",
    "md", """The π curves: NS rises with π (more of the important tokens are kept), NC falls (less is removed).
The mean normalised score is the axis plain Soft-NS/NC mix in: a method with a high mean keeps more.""",
    "code", "gl.viz.plot_pi_curves({name: (s.pis, s.pi_ns, s.pi_nc) for name, s in scores.items()})",
]

HEAD_ANALYSIS = [
    "md", """# Head analysis: Grad-ELLM head importance against ablations

Grad-ELLM decomposes every token score into per-head contributions `c[layer, head, pos]`. Summing a
head's positive contributions gives a head importance. Here it is compared with the ground truth of
ablating each head alone (zeroing its output, `hook_z`) and used to order cumulative ablations.""",
    "code", """%matplotlib inline
import matplotlib.pyplot as plt

import gradellm_lens as gl
from gradellm_lens.analysis import (
    Ablation,
    ablated_continuation,
    ablation_curve,
    grad_ellm_head_importance,
    output_norm_importance,
    random_head_order,
    rank_agreement,
    single_head_effects,
)
from gradellm_lens.attribute import greedy_continuation

model = gl.load_model()
info = gl.model_info(model)
ids = gl.encode_prompt(model, "The capital of France is")
target = gl.Target(model.to_single_token(" Paris"))
LAYERS = list(range(info.n_layers - 6, info.n_layers))  # the last six layers keep this quick""",
    "code", """grad_ellm = grad_ellm_head_importance(model, ids, target, layers=LAYERS)
truth = single_head_effects(model, ids, target, layers=LAYERS)  # logit drop when one head is zeroed
gl.viz.plot_head_importance(grad_ellm)""",
    "code", "gl.viz.plot_head_importance(truth)",
    "code", """norm = output_norm_importance(model, ids)
agreement = {
    "Grad-ELLM vs ablation": rank_agreement(grad_ellm, truth, k=5),
    "output norm vs ablation": rank_agreement(norm, truth, k=5),
}
for name, a in agreement.items():
    print(f"{name:26s} spearman {a.spearman:+.2f}  kendall {a.kendall:+.2f}  top-{a.k} overlap {a.top_k:.2f}")""",
    "md", """## Cumulative ablations

Remove the heads of the last six layers in the order each scoring ranks them (and in a random order),
and track the drop of the ` Paris` logit. An order that finds the important heads first rises fastest.""",
    "code", """heads_norm = [h for h in norm.ranking() if h[0] in LAYERS]
orders = {
    "Grad-ELLM": grad_ellm.ranking(),
    "output norm": heads_norm,
    "random": random_head_order(info.n_layers, info.n_heads, seed=0, layers=LAYERS),
}
counts = [0, 1, 2, 4, 8, 16, 32]
curves = {name: ablation_curve(model, ids, target, order, counts) for name, order in orders.items()}

fig, ax = plt.subplots(figsize=(5, 3.2))
for name, curve in curves.items():
    ax.plot(curve.counts, curve.score_drops, marker="o", label=f"{name} (AUC {curve.auc():.2f})")
ax.set_xlabel("heads ablated (zero)")
ax.set_ylabel("drop of the ' Paris' logit")
ax.legend()
ax.grid(alpha=0.3)""",
    "code", """top = grad_ellm.top(5)
clean = greedy_continuation(model, ids, 4)
ablated = ablated_continuation(model, ids, Ablation(heads=top), 4)
print("top-5 Grad-ELLM heads:", top)
print("clean:  ", repr(model.tokenizer.decode(clean)))
print("ablated:", repr(model.tokenizer.decode(ablated)))""",
]

NOTEBOOKS = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_faithfulness.ipynb": FAITHFULNESS,
    "03_head_analysis.ipynb": HEAD_ANALYSIS,
}


def build(cells: list[str]) -> nbformat.NotebookNode:
    """A notebook (no outputs) from ``["md" | "code", source, ...]``."""
    make = {"md": new_markdown_cell, "code": new_code_cell}
    nb = new_notebook(cells=[make[kind](source) for kind, source in zip(cells[::2], cells[1::2])])
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"  # stable ids: rebuilding gives identical files
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    return nb


def execute(nb: nbformat.NotebookNode, kernel_name: str = "python3") -> nbformat.NotebookNode:
    """Run every cell (from notebooks/, as a reader would) and keep the outputs, without timings.

    The kernel inherits this process's environment; Hugging Face's weight-loading progress bars
    are turned off there (``HF_HUB_DISABLE_PROGRESS_BARS``): they are not worth reading.
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=1200, record_timing=False,
                            resources={"metadata": {"path": str(HERE)}})  # fmt: skip
    return client.execute()


def cell_sources(nb: nbformat.NotebookNode) -> list[tuple[str, str, str]]:
    return [(cell.cell_type, cell.id, cell.source) for cell in nb.cells]


def problems(name: str) -> list[str]:
    """Why the committed notebook ``name`` is out of date (empty when it is not)."""
    path = HERE / name
    if not path.is_file():
        return [f"{name}: missing"]
    committed = nbformat.read(path, as_version=4)
    if cell_sources(committed) != cell_sources(build(NOTEBOOKS[name])):
        return [f"{name}: cells differ from build_notebooks.py"]
    counts = [cell.execution_count for cell in committed.cells if cell.cell_type == "code"]
    if counts != list(range(1, len(counts) + 1)):
        return [f"{name}: not executed top to bottom (execution counts {counts})"]
    return []


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = [p for name in NOTEBOOKS for p in problems(name)]
        if stale:
            print("out of date (run python notebooks/build_notebooks.py):\n  " + "\n  ".join(stale))
        return 1 if stale else 0
    for name in NOTEBOOKS:
        nb = build(NOTEBOOKS[name])
        if "--no-execute" not in argv:
            nb = execute(nb)
        path = HERE / name
        nbformat.write(nb, path)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
