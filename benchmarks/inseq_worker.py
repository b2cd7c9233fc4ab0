"""Time inseq 0.7.1 in its own virtualenv (inseq pins typeguard 2, TransformerLens needs typeguard 4).

Run by ``benchmarks/run.py --inseq-python /path/to/venv/bin/python`` as
``python inseq_worker.py spec.json``; it needs only torch, transformers and inseq, and imports
:mod:`measure` from this directory for the same timing and memory rules. For every configuration
of the spec it times ``model.attribute(prompt, prompt + continuation, method=m)`` (forced
decoding: inseq attributes each continuation token over its prefix, one forward/backward per
step, its normal mode) for saliency, input x gradient and integrated gradients (50 Gauss-Legendre
steps, internal batch 16, as ours), plus this environment's own ``floor[HF]`` as a calibration
row. inseq loads the model with eager attention, as it does by default. Results are JSON lines on
stdout: ``{"config", "name", "wall_s", "cpu_s", "repeats", "peak_bytes", "note"}``.

Spec: ``{"model_dir", "device", "threads", "repeats", "budget_s", "memory", "configs": [{"config",
"prompt", "full", "methods"}]}``, ``full`` being the prompt text followed by the continuation.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure  # noqa: E402  (this directory, not a package, in the inseq virtualenv)

IG_OPTIONS = {"n_steps": 50, "internal_batch_size": 16}


def emit(**row) -> None:
    print(json.dumps(row), flush=True)


def main(spec_path: str) -> int:
    import inseq
    import torch

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(int(spec["threads"]))
    device = spec["device"]
    warnings.filterwarnings("ignore")
    model = inseq.load_model(spec["model_dir"], "saliency", device=device)
    hf, tokenizer = model.model, model.tokenizer
    for cfg in spec["configs"]:
        prompt, full = cfg["prompt"], cfg["full"]
        ids = tokenizer(full, return_tensors="pt", add_special_tokens=False).input_ids.to(device)
        n_prompt = len(tokenizer(prompt, add_special_tokens=False).input_ids)
        embed = hf.get_input_embeddings()

        def floor_hf(ids=ids):
            with torch.enable_grad():
                emb = embed(ids[:, :-1])
                logits = hf(inputs_embeds=emb).logits
                return torch.autograd.grad(logits[0, -1, ids[0, -1]], emb)

        runs = {"inseq-venv:floor[HF]": floor_hf}
        for method in cfg["methods"]:
            extra = IG_OPTIONS if method == "integrated_gradients" else {}

            def call(method=method, extra=extra):
                return model.attribute(
                    prompt, full, method=method, show_progress=False,
                    skip_special_tokens=True, **extra,
                )  # fmt: skip

            runs[f"inseq:{method}"] = call
        note = f"inseq re-tokenised: {n_prompt} prompt + {ids.shape[1] - n_prompt} continuation tokens"
        for name, fn in runs.items():
            try:
                warm = measure.timed(fn, device)
                n = measure.plan_repeats(warm.wall_s, int(spec["repeats"]), float(spec["budget_s"]))
                sample = measure.median([measure.timed(fn, device) for _ in range(n)])
                peak = measure.peak_memory_bytes(fn, device) if spec["memory"] else None
                emit(config=cfg["config"], name=name, wall_s=sample.wall_s, cpu_s=sample.cpu_s, repeats=n,
                     peak_bytes=peak, note=note)  # fmt: skip
            except Exception as exc:  # report and go on: one broken method must not hide the others
                emit(config=cfg["config"], name=name, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
