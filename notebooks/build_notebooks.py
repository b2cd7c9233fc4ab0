"""Write the example notebooks from the cell sources below, executed, with their outputs.

    python notebooks/build_notebooks.py               # rebuild and execute notebooks/*.ipynb (minutes)
    python notebooks/build_notebooks.py --no-execute  # sources only (outputs dropped)
    python notebooks/build_notebooks.py --check       # exit 1 if a committed notebook's cells differ
                                                      # from this script or were not all executed
    python notebooks/build_notebooks.py 02_faithfulness.ipynb  # only the notebooks named

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
from gradellm_lens.viz.views import top_tokens

model = gl.load_model()  # "smollm2-135m-instruct"
info = gl.model_info(model)
info""",
    "md", """## Explain a generation

`explain` generates greedily and attributes each generated token to its whole prefix. Grad-ELLM's
default uses **every attention layer**: each layer's map is computed, the maps are summed, and the
ReLU is applied to the sum (`layers="all", combine="sum_then_relu"`, the configuration the
Grad-ELLM study in `analyses/grad_ellm_study.py` chose; see the methods guide). The released code's
last-layer setting is `variant="last_layer"`. The per-layer, per-head decomposition is kept in
`result.layer_head` (`[step, layer, head, pos]`).

The prompt is plain text, no chat template: SmolLM2 completes it with ` Paris,`.""",
    "code", """PROMPT = "The Eiffel Tower is in the city of"
result = gl.explain(model, PROMPT, max_new_tokens=2)
assert result.layer_head.shape[:3] == (result.n_steps, info.n_layers, info.n_heads)
result  # a short summary and one heatmap per generated token (static HTML)""",
    "md", """Every score as a long table (one row per step and prefix position; `layer_head=True` adds layer
and head), ready for pandas; `result.save("x.npz")` or `"x.json"` keeps it. Tables and views show
the user's text and the generated tokens: here only the `<|im_start|>` token that SmolLM2's tokenizer
puts in front of every prompt is left out, and `to_dataframe()` says so with a `HiddenTokensWarning`
(`full_prompt=True` keeps every position). In the top rows of the first step (` Paris`), `iffel` is
well ahead (5.4); ` the`, `The`, ` city`, ` Tower` and ` E` follow between 2.1 and 2.8, and ` is` and
` of` get 0.""",
    "code", """table = result.to_dataframe()
table[table.step == 0].sort_values("score", ascending=False).head(6)""",
    "md", """## Token heatmaps

One step (blue = supports the explained token; hover a token for its score), then every step at once
(one button per generated token). `result.user_view()` is the copy the table and the heatmap above
show (the user's text and the generated tokens); the CircuitsVis views take whatever they are given.""",
    "code", """shown = result.user_view()
gl.viz.colored_tokens(shown, step=0)""",
    "code", "gl.viz.colored_tokens_multi(shown)",
    "md", """## Layers and heads

Pick a layer and a head (or "all heads", the layer's map before the ReLU); one box per generated
token. The second view puts the final score and every layer's map side by side; the figure reduces
each head's map to one number (its positive mass, mean over steps).""",
    "code", "gl.viz.layer_head_tokens(shown)",
    "code", "gl.viz.layer_tokens(shown, step=0)  # the final score and each layer's map, one series each",
    "code", "gl.viz.plot_head_importance(result)",
    "md", """## Other methods on the same continuation

Forcing the continuation makes the results explain exactly the same tokens. Saliency (gradient norm)
and occlusion (the drop of the ` Paris` logit when one token is removed) agree with Grad-ELLM on the
first place: all three put `iffel` first for ` Paris`. Occlusion is the most concentrated: removing
`iffel` lowers the logit by 8.7, ` E` by 1.8 and any other token by 0.5 or less. Saliency ranks
` Tower` and ` city` next, Grad-ELLM ` the` and `The`. `compare_methods` divides each
method's scores by its largest one so that the colours are comparable.""",
    "code", """continuation = result.token_ids[result.prompt_length :]
saliency = gl.explain(model, PROMPT, "saliency", continuation=continuation)
occlusion = gl.explain(model, PROMPT, "occlusion", continuation=continuation)
for r in (result, saliency, occlusion):
    print(f"{r.method:10s}", ", ".join(top_tokens(r, step=0, k=3)))
gl.viz.compare_methods([r.user_view() for r in (result, saliency, occlusion)], step=0)""",
    "md", """## A chat prompt: the template is hidden, not removed

With `prompt_format="chat"` the question is wrapped in SmolLM2's chat template (its default system
prompt, the role markers). The scores still cover every token, but the heatmap, the table and the
report show the user's question and the answer, with a note saying how many tokens are hidden;
`full_prompt=True` shows all of them.""",
    "code", """chat = gl.explain(model, "Where is the Eiffel Tower?", prompt_format="chat", max_new_tokens=6)
chat  # the question and the answer only, and the note""",
    "code", "chat.show(full_prompt=True)  # every token: system prompt, template and question",
    "md", """## A self-contained HTML report

One page with the text, every step, the layer and head views and the options used; the CircuitsVis
bundle is inlined once and the page makes no network request. The command line does the same:
`gradellm-lens explain "The Eiffel Tower is in the city of" --max-new-tokens 2
--methods grad_ellm,saliency,occlusion --out report.html`.""",
    "code", """path = Path(tempfile.mkdtemp()) / "quickstart.html"
report = gl.viz.write_report([result, saliency, occlusion], path, title=PROMPT)
print(report, f"{report.stat().st_size / 1e6:.1f} MB")""",
]

FAITHFULNESS = [
    "md", """# Faithfulness: Soft-NS/NC and π-Soft-NS/NC on one example

Soft-NS (sufficiency) keeps each input embedding element with probability equal to the token's
normalised score; Soft-NC (comprehensiveness) keeps it with one minus that. Both are measured by the
probability of the explained token and normalised by the all-masked input. Their value also depends on
*how much* a method keeps on average, so π-Soft-NS/NC rescale every method's keep probabilities to the
same mean π and report curves over π, summarised by their normalised AUC (higher is better for both).

This notebook scores one example the way the evaluation runner (`gradellm_lens.evaluation`) scores
each example of a dataset: the SST-2 prompt template in plain format, the model's own first token as
the explained target, **only the review's tokens perturbed** (the instruction and the `Sentiment:`
cue are kept), the metric's default options, `random` averaged over 10 maps, and Grad-ELLM beside its
*shuffled* control (its own scores permuted over the review's tokens). One example shows how the
numbers are made, not which method is better.""",
    "code", """%matplotlib inline
import numpy as np
import pandas as pd

import gradellm_lens as gl
from gradellm_lens.evaluation.runner import shuffled_scores
from gradellm_lens.metrics import FaithfulnessConfig, evaluate_step, span_mask, step_reference
from gradellm_lens.tasks import SST2, Example

model = gl.load_model()""",
    "md", """The SST-2 prompt for one review; the task locates the review's tokens (the text the evaluation
perturbs):""",
    "code", """prompted = SST2().prompt(model, Example("demo", {"text": "a charming and often affecting journey."}))
PROMPT = prompted.text
((start, end),) = prompted.user_spans  # the review's tokens
print(PROMPT)
print("perturbed:", model.tokenizer.convert_ids_to_tokens(prompted.token_ids[start:end].tolist()))""",
    "md", """Explain the model's first token (` positive`) with the default Grad-ELLM (every layer), the released
code's last-layer setting (`variant="last_layer"`), attention×gradient (the method with the highest
π-Soft-NS on SmolLM2's SST-2 run), input×gradient, occlusion and 10 random maps:""",
    "code", """SPECS = {
    "grad_ellm": ("grad_ellm", {}),
    "grad_ellm (last_layer)": ("grad_ellm", {"variant": "last_layer"}),
    "attention_x_gradient": ("attention_x_gradient", {}),
    "input_x_gradient": ("input_x_gradient", {}),
    "occlusion": ("occlusion", {}),
}
results = {name: gl.explain(model, PROMPT, m, max_new_tokens=1, **o) for name, (m, o) in SPECS.items()}
randoms = [gl.explain(model, PROMPT, "random", max_new_tokens=1, sample=k) for k in range(10)]
assert results["grad_ellm"].explained(0) == "' positive'"  # the model's own answer
gl.viz.compare_methods([r.user_view() for r in results.values()])""",
    "code", """r = results["grad_ellm"]
prefix, target = r.token_ids[: r.step_positions[0] + 1], r.target_ids[0]
perturbable = span_mask(len(prefix), start, end)  # only the review; the template keeps its embeddings
config = FaithfulnessConfig()  # the protocol's defaults: π = 0.1 ... 0.9, 5 mask draws
reference = step_reference(model, prefix, target, perturbable=perturbable)  # shared by every map


def score(scores):
    return evaluate_step(model, prefix, target, scores, perturbable=perturbable, config=config, reference=reference)


maps = {name: res.step_scores(0) for name, res in results.items()}
maps = {  # Grad-ELLM's control right under it: its own scores permuted over the review's tokens
    "grad_ellm": maps["grad_ellm"],
    "grad_ellm (shuffled)": shuffled_scores(maps["grad_ellm"], reference, config.seed),
    **maps,
}
scores = {name: score(m) for name, m in maps.items()}
random_scores = [score(res.step_scores(0)) for res in randoms]

COLUMNS = {"Soft-NS": "soft_ns", "Soft-NC": "soft_nc", "AUC π-Soft-NS": "auc_pi_ns", "AUC π-Soft-NC": "auc_pi_nc",
           "mean normalised score": "mean_score"}  # fmt: skip
table = pd.DataFrame({name: {c: getattr(s, k) for c, k in COLUMNS.items()} for name, s in scores.items()}).T
table.loc["random (mean of 10)"] = {c: np.mean([getattr(s, k) for s in random_scores]) for c, k in COLUMNS.items()}
assert table.notna().all().all()
s = scores["grad_ellm"]
print(f"p(' positive') = {s.full_prob:.3f}, with the whole review masked {s.p_empty:.3f} (ρ = {s.rho:.2f})")
for c, k in list(COLUMNS.items())[2:4]:
    values = [getattr(s, k) for s in random_scores]
    print(f"random maps, {c}: {min(values):.3f} to {max(values):.3f}")
table.round(3)""",
    "md", """What this table shows, on this one review (ρ = 0.52: masking the whole review lowers
p(` positive`) from 0.458 to 0.221, so the step is well conditioned):

- On both π-Soft AUCs the default Grad-ELLM is first (NS 0.740, NC 0.892): above the mean of the 10
  random maps (0.534, 0.743) and above the best single random map (0.685, 0.872).
- Its shuffled control falls to 0.258 NS and 0.524 NC, below random: on this example *which* review
  token gets which score matters, not only how the scores are distributed.
- Where Grad-ELLM loses: attention×gradient has the best plain Soft-NC (1.000 against 0.914), and
  on plain Soft-NS Grad-ELLM is level with the random maps' mean (0.721 against 0.716). Plain Soft
  mixes in how much a map keeps on average (last column: 0.214 for Grad-ELLM, 0.491 for random),
  which is why π-Soft rescales every map to the same mean π.
- The released code's last-layer setting (0.306, 0.634), input×gradient and occlusion are below the
  random mean on both AUCs; attention×gradient is close to it (0.525 and 0.787 against 0.534 and
  0.743).
- Grad-ELLM's largest score is on ` a`, the review's first token (about three times that of any
  other review token), not on ` charming` (the view above): scoring well on these metrics is not the
  same as looking plausible.

One example proves nothing: single random maps already spread from 0.412 to 0.685 on NS, and here
Grad-ELLM is ahead of attention×gradient on both AUCs, while in the SST-2 run on SmolLM2
attention×gradient and saliency are ahead of all-layer Grad-ELLM on π-Soft-NS
(`docs/results/smollm2-sst2.md`). The dataset runs, with paired confidence intervals over examples
against random and against each method's shuffled scores, are in `docs/results/` (start at
`docs/results/index.md`); the study that chose Grad-ELLM's default is in
`analyses/results/grad-ellm-study/`.""",
    "md", """The π curves: NS rises with π (more of the important tokens are kept), NC falls (less is removed).
Grad-ELLM's NS curve is the highest from π = 0.2 on; its NC curve stays near 1 up to π = 0.7
(attention×gradient is above it at π = 0.5 and 0.9). The random curve is the mean of the 10 maps.""",
    "code", """curves = {name: (s.pis, s.pi_ns, s.pi_nc) for name, s in scores.items()}
curves["random (mean of 10)"] = (
    random_scores[0].pis,
    np.mean([s.pi_ns for s in random_scores], axis=0),
    np.mean([s.pi_nc for s in random_scores], axis=0),
)
gl.viz.plot_pi_curves(curves)""",
]

HEAD_ANALYSIS = [
    "md", """# Head analysis: Grad-ELLM head importance against ablations

Grad-ELLM decomposes every token score into per-head contributions `c[layer, head, pos]`. Summing a
head's positive contributions gives a head importance. Here it is compared with the ground truth of
ablating each head alone (zeroing its output, `hook_z`) and used to order cumulative ablations.

Every ablation is shown beside its **control**: the same number of heads drawn at random from the
*same layers* (`layer_matched_order`). Removing heads from some layers hurts more than from others,
so an order can beat a fully random one by finding the right layers alone; only beating the
same-layer control says that it found the right heads. The controls are drawn with 5 seeds.""",
    "code", """%matplotlib inline
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import gradellm_lens as gl
from gradellm_lens.analysis import (
    Ablation,
    ablated_continuation,
    ablation_curve,
    ablation_effect,
    activation_patching,
    attribution_patching,
    dataset_head_importance,
    grad_ellm_head_importance,
    layer_matched_order,
    output_norm_importance,
    random_head_order,
    random_importance,
    rank_agreement,
    scorer_agreement,
    single_head_effects,
)
from gradellm_lens.attribute import greedy_continuation
from gradellm_lens.tasks import make_task

model = gl.load_model()
info = gl.model_info(model)
ids = gl.encode_prompt(model, "The Eiffel Tower is in the city of")
target = gl.Target(model.to_single_token(" Paris"))
SEEDS = range(5)  # seeds of the random controls""",
    "code", """grad_ellm = grad_ellm_head_importance(model, ids, target)  # every layer, as explain's default
truth = single_head_effects(model, ids, target)  # logit drop when one head is zeroed (270 heads)
gl.viz.plot_head_importance(grad_ellm)""",
    "code", "gl.viz.plot_head_importance(truth)",
    "code", """norm = output_norm_importance(model, ids)
agreement = {
    "Grad-ELLM vs ablation": rank_agreement(grad_ellm, truth, k=10),
    "output norm vs ablation": rank_agreement(norm, truth, k=10),
}
for name, a in agreement.items():
    print(f"{name:26s} spearman {a.spearman:+.2f}  kendall {a.kendall:+.2f}  top-{a.k} overlap {a.top_k:.2f}")
chance = [rank_agreement(random_importance(info.n_layers, info.n_heads, seed=s), truth, k=10) for s in SEEDS]
print(f"{'random scores vs ablation':26s} spearman {np.mean([a.spearman for a in chance]):+.2f}  "
      f"kendall {np.mean([a.kendall for a in chance]):+.2f}  top-10 overlap {np.mean([a.top_k for a in chance]):.2f}"
      f"  (mean of {len(chance)} seeds)")""",
    "md", """Over all 270 heads, Grad-ELLM's ranking agrees weakly with the single-head ablations (Spearman
+0.27), more than the output norm (+0.14) and random scores (+0.03). Of the ten heads whose removal
costs the most, Grad-ELLM's top ten contain one (so does the output norm's).

## Cumulative ablations

Remove heads in the order each scoring ranks them and track the drop of the ` Paris` logit; dashed:
the same-layer control of each order (mean over the seeds, band = min to max), grey: heads in a
random order from any layer. An order that finds the important heads first rises fastest.""",
    "code", """counts = [0, 1, 2, 4, 8, 16, 32]
N = info.n_layers * info.n_heads


def curve(order):
    return ablation_curve(model, ids, target, order, counts, n_total=N)


orders = {"Grad-ELLM": grad_ellm.ranking(), "output norm": norm.ranking()}
curves = {name: curve(order) for name, order in orders.items()}
controls = {
    name: [curve(layer_matched_order(order, info.n_heads, k=max(counts), seed=s)) for s in SEEDS]
    for name, order in orders.items()
}
randoms = [curve(random_head_order(info.n_layers, info.n_heads, seed=s)) for s in SEEDS]

fig, ax = plt.subplots(figsize=(6, 3.6))
for (name, c), color in zip(curves.items(), ["C0", "C1"]):
    drops = np.array([k.score_drops for k in controls[name]])
    ax.plot(counts, c.score_drops, marker="o", color=color, label=f"{name} (AUC {c.auc():.3f})")
    ax.plot(counts, drops.mean(0), ls="--", color=color,
            label=f"  same layers, random heads (AUC {np.mean([k.auc() for k in controls[name]]):.3f})")
    ax.fill_between(counts, drops.min(0), drops.max(0), color=color, alpha=0.12)
drops = np.array([k.score_drops for k in randoms])
ax.plot(counts, drops.mean(0), color="grey", label=f"random heads (AUC {np.mean([k.auc() for k in randoms]):.3f})")
ax.fill_between(counts, drops.min(0), drops.max(0), color="grey", alpha=0.12)
ax.set_xlabel("heads ablated (zero)")
ax.set_ylabel("drop of the ' Paris' logit")
ax.legend(fontsize=7)
ax.grid(alpha=0.3)
print(f"logit drop after {counts[1:]} heads")
for name, c in curves.items():
    control = np.array([k.score_drops for k in controls[name]])
    print(f"{name:12s} {np.round(c.score_drops[1:], 2)}")
    print(f"{'  control':12s} {np.round(control.mean(0)[1:], 2)}  (seeds: {control.min(0)[-1]:+.2f} to {control.max(0)[-1]:+.2f} at 32)")
print(f"{'random':12s} {np.round(np.mean([k.score_drops for k in randoms], 0)[1:], 2)}")""",
    "md", """Grad-ELLM's order lowers the logit by 2.59 after 4 heads and 4.81 after 32 (not monotonically:
1.12 after 8); its same-layer control averages -0.91 and +1.41 there, so on average the heads
matter beyond their layers, but the control's seeds spread from -3.35 to +4.43 at 32 heads: a
single draw can match it. The output norm's order does more from 8 heads on (7.06 after 32) and its
same-layer controls stay between +0.43 and +2.10, so on this prompt it finds heads that matter at
least as well as Grad-ELLM (AUC 0.444 against 0.279). Random heads from any layer: 1.82 after 32.""",
    "md", """## The top five heads, and five heads from the same layers""",
    "code", """top = grad_ellm.top(5)
clean = greedy_continuation(model, ids, 4)
print("top-5 Grad-ELLM heads:", top)
p_clean = ablation_effect(model, ids, target, Ablation(heads=[])).clean_prob
print(f"{'clean:':34s} {model.tokenizer.decode(clean)!r:20s} p(' Paris') {p_clean:.3f}")


def show(label, heads):
    effect = ablation_effect(model, ids, target, Ablation(heads=heads))
    text = model.tokenizer.decode(ablated_continuation(model, ids, Ablation(heads=heads), 4))
    print(f"{label:34s} {text!r:20s} logit drop {effect.score_drop:+.2f}  p drop {effect.prob_drop:+.3f}")


show("ablated: top-5 Grad-ELLM", top)
for s in SEEDS:
    show(f"ablated: same-layer random 5 (seed {s})", layer_matched_order(top, info.n_heads, k=5, seed=s))""",
    "md", """Removing Grad-ELLM's top five heads lowers p(` Paris`) from 0.435 by 0.330 (the logit by 4.41)
but does not change the greedy continuation (` Paris, France.`). Five random heads from the same
layers do as much in two of five draws (p drops 0.277 and 0.406; seed 2 changes the answer to
` Dubai`) and almost nothing in the other three. The top five's logit drop is larger than every
control draw's, but the controls show that the logit is a poor measure here: with seed 1 the logit
*rises* by 6.42 while p(` Paris`) falls by 0.277 (zeroing heads shifts every logit). So on this
prompt the top-5 ablation does not single out these heads beyond their layers. One prompt proves
nothing either way; the head studies over SST-2 and TellMeWhy are in `docs/results/heads.md`.""",
    "md", """## Against activation patching: indirect-object identification

Zeroing a head asks what the model does without it. The field's standard question is narrower: on a
task with a clean and a corrupted prompt, which heads carry the difference? **Activation patching**
answers it by copying one head's `hook_z` from the corrupted run into the clean run and measuring
the metric (here logit(IO) − logit(S), *noising*); **attribution patching** estimates all heads at
once from one forward and one backward pass (gradient × activation difference). Both are compared
below with Grad-ELLM's head importance and the output norm, on IOI pairs generated in the package
(`gradellm_lens.tasks.contrast`, names that are single tokens for the model). Each panel has its
own colour scale; the truth's top-10 heads are outlined in every panel.""",
    "code", """task = make_task("ioi")
pairs = task.pairs(model, 6, seed=0)
print(task.check(model, pairs).summary())
print("clean:    ", pairs[0].clean_text)
print("corrupted:", pairs[0].corrupted_text)

per_pair = {"activation patching": [], "attribution patching": [], "Grad-ELLM": [], "output norm": []}
for pair in pairs:
    steps = list(pair.steps)
    truth_p = activation_patching(model, pair.clean, pair.corrupted, steps, direction="noising")
    per_pair["activation patching"].append(truth_p.importance("noising"))  # positive = carries the clean answer
    estimate = attribution_patching(model, pair.clean, pair.corrupted, steps)
    per_pair["attribution patching"].append(estimate.importance("noising"))
    per_pair["Grad-ELLM"].append(grad_ellm_head_importance(model, pair.clean, steps))
    per_pair["output norm"].append(output_norm_importance(model, pair.clean, pair.positions))
pooled = {name: dataset_head_importance(v) for name, v in per_pair.items()}
patching_truth = pooled.pop("activation patching")
gl.viz.plot_head_comparison(patching_truth, pooled, truth_label="activation patching (noising)")""",
    "code", """truths = per_pair["activation patching"]
for name in pooled:
    a = scorer_agreement(truths, per_pair[name], scorer=name, n_boot=500)
    print(f"{name:22s} ρ {a.spearman.format(2):22s} recall@10 {a.recall[10].format(2)}")
for name in pooled:  # by magnitude: Grad-ELLM's importance is unsigned, patching effects are not
    a = scorer_agreement([t.magnitude() for t in truths], [s.magnitude() for s in per_pair[name]], n_boot=500)
    print(f"{name:22s} |ρ| {a.spearman.format(2):21s} recall@10 {a.recall[10].format(2)}  (magnitudes)")
page = Path(tempfile.mkdtemp()) / "ioi_heads.html"  # the same view as a self-contained page
gl.viz.write_report([], page, "IOI heads", head_truth=patching_truth, head_scorers=pooled)
print("report:", page.name)""",
    "md", """On these 6 pairs (SmolLM2 answers 5 of 6 correctly; mean gap +3.5), activation patching puts the
IOI behaviour in a few late heads: L16H0, L23H3, L17H4, L20H0 and L24H4 carry the clean answer
(blue), and L29H0 works against it (red). Attribution patching reproduces that map (ρ 0.91
[0.89, 0.96], recall@10 0.80) from one forward and one backward pass. Grad-ELLM's importance is
unsigned and puts its largest mass on early heads (L1H3–H5) that patching finds inert. Its signed ρ
is 0.00 [−0.06, 0.07], and 0.40 [0.27, 0.42] by magnitude, ahead of the output norm's 0.25. Its top
10 hold only 2 of patching's top 10; the output norm's hold 4 (7 by magnitude).
The 20-pair run over four tasks and two models (`docs/results/head-patching.md`) shows the same
pattern. Grad-ELLM's head maps show where the explained logit's gradient reaches the input tokens,
not which heads carry the difference between two prompts: for that question, use patching.""",
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
    names = [a for a in argv if not a.startswith("--")] or list(NOTEBOOKS)
    unknown = [n for n in names if n not in NOTEBOOKS]
    if unknown:
        print(f"unknown notebook(s) {unknown}; known: {list(NOTEBOOKS)}")
        return 2
    for name in names:
        nb = build(NOTEBOOKS[name])
        if "--no-execute" not in argv:
            nb = execute(nb)
        path = HERE / name
        nbformat.write(nb, path)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))