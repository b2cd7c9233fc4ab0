"""Time inseq 0.7.1 in its own virtualenv (inseq pins typeguard 2, TransformerLens needs typeguard 4).

Run by ``benchmarks/run.py --inseq-python /path/to/venv/bin/python`` as
``python inseq_worker.py spec.json``; it needs only torch, transformers and inseq, and imports
:mod:`measure` from this directory for the same timing, memory and budget rules. For every
configuration of the spec it times ``model.attribute(prompt, prompt + continuation, method=m)``
(forced decoding: inseq attributes each continuation token over its prefix, one forward/backward
per step, its normal mode) for saliency, input x gradient and integrated gradients (50
Gauss-Legendre steps, internal batch 16, as ours), plus this environment's own ``floor[HF]`` as a
calibration row. inseq loads the model with eager attention, as it does by default. Results are
JSON lines on stdout: ``{"config", "name", "wall_s", "cpu_s", "repeats", "peak_mb", "note",
"n_prompt", "n_continuation"}`` (the token counts inseq saw after re-tokenising the text; only
``config``, ``name`` and ``note`` for a skipped or failed row).

Spec: ``{"model_dir", "device", "threads", "repeats", "budget_s", "max_cell_s", "max_cell_mb",
"memory", "configs": [{"config", "steps", "length", "prompt", "full"}]}``, ``full`` being the
prompt text followed by the continuation; configurations ordered by steps, then length.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure  # noqa: E402  (this directory, not a package, in the inseq virtualenv)

IG_OPTIONS = {"n_steps": 50, "internal_batch_size": 16}
METHODS = ("saliency", "input_x_gradient", "integrated_gradients")


def emit(**row) -> None:
    print(json.dumps(row), flush=True)


def calls(model, prompt: str, full: str) -> dict:
    """This environment's ``floor[HF]`` and one inseq attribution per method, as zero-argument callables."""
    import torch

    hf, tokenizer = model.model, model.tokenizer
    ids = tokenizer(full, return_tensors="pt", add_special_tokens=False).input_ids.to(hf.device)
    embed = hf.get_input_embeddings()

    def floor_hf():
        with torch.enable_grad():
            emb = embed(ids[:, :-1])
            logits = hf(inputs_embeds=emb).logits
            return torch.autograd.grad(logits[0, -1, ids[0, -1]], emb)

    def attribution(method: str):
        extra = IG_OPTIONS if method == "integrated_gradients" else {}
        return lambda: model.attribute(prompt, full, method=method, show_progress=False, skip_special_tokens=True, **extra)

    return {"inseq-venv:floor[HF]": floor_hf, **{f"inseq:{m}": attribution(m) for m in METHODS}}


def main(spec_path: str) -> int:
    import inseq
    import torch

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(int(spec["threads"]))
    device = spec["device"]
    warnings.filterwarnings("ignore")
    model = inseq.load_model(spec["model_dir"], "saliency", device=device)
    tokenizer = model.tokenizer
    budget = measure.Budget(int(spec["repeats"]), float(spec["budget_s"]), float(spec["max_cell_s"]), float(spec["max_cell_mb"]))
    first = tokenizer(spec["configs"][0]["full"], add_special_tokens=False).input_ids
    for fn in calls(model, tokenizer.decode(first[:8]), tokenizer.decode(first[:10])).values():
        fn()  # first touch: lazy set-up happens here, untimed
    for cfg in spec["configs"]:
        n_prompt = len(tokenizer(cfg["prompt"], add_special_tokens=False).input_ids)
        n_full = len(tokenizer(cfg["full"], add_special_tokens=False).input_ids)
        sizes = {"n_prompt": n_prompt, "n_continuation": n_full - n_prompt}
        steps, length = cfg["steps"], cfg["length"]
        for name, fn in calls(model, cfg["prompt"], cfg["full"]).items():
            reason = None if name.endswith("floor[HF]") else budget.skip_reason(name, steps, length)
            if reason:
                emit(config=cfg["config"], name=name, note=reason)
                continue
            try:
                warm, peak = measure.first_run(fn, device, bool(spec["memory"]))
                n = budget.plan_repeats(warm.wall_s)
                sample = measure.median([measure.timed(fn, device) for _ in range(n)])
            except Exception as exc:  # report and go on: one broken method must not hide the others
                emit(config=cfg["config"], name=name, note=f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                continue
            mb = None if peak is None else peak / 2**20
            budget.record(name, steps, length, sample.wall_s, mb)
            emit(config=cfg["config"], name=name, wall_s=sample.wall_s, cpu_s=sample.cpu_s, repeats=n, peak_mb=mb, note="", **sizes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
