"""Device and dtype follow the model: half-precision models give float32 scores, any device works.

CUDA cases run only where CUDA is available (CI has none); the CPU path needs no "meta" tensors.
"""

from __future__ import annotations

import copy

import pytest
import torch

import gradellm_lens as gl
from gradellm_lens import GradEllm, Step, Target
from gradellm_lens.metrics import FaithfulnessConfig, evaluate_step

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
SMALL_METRIC = FaithfulnessConfig(pis=(0.25, 0.5, 0.75), n_draws=2, batch_size=8)


def _steps(ids, positions):
    return [Step(p, Target(int(ids[p + 1]))) for p in positions]


@pytest.fixture(scope="module")
def bf16_model(tiny_hf, tiny_tokenizer):
    return gl.load_model(copy.deepcopy(tiny_hf), tokenizer=tiny_tokenizer, dtype="bfloat16", device="cpu")


def test_bf16_grad_ellm_and_metric_compute_in_float32(bf16_model, tiny_model, tiny_ids):
    assert next(bf16_model.parameters()).dtype == torch.bfloat16
    steps = _steps(tiny_ids, [5, 9])
    half = GradEllm(bf16_model, layers="all").attribute(tiny_ids, steps)
    full = GradEllm(tiny_model, layers="all").attribute(tiny_ids, steps)
    assert half.scores.dtype == torch.float32 and half.layer_head.dtype == torch.float32
    for row, step in enumerate(steps):
        h, f = half.scores[row, : step.position + 1], full.scores[row, : step.position + 1]
        assert torch.isfinite(h).all()
        # bf16 activations (8 mantissa bits): same scores up to a few percent of their scale
        assert (h - f).abs().max() <= 0.1 * f.abs().max()
    scores = half.scores[0, : steps[0].position + 1]
    metric = evaluate_step(bf16_model, tiny_ids[: steps[0].position + 1], steps[0].target, scores, config=SMALL_METRIC)
    reference = evaluate_step(tiny_model, tiny_ids[: steps[0].position + 1], steps[0].target, scores, config=SMALL_METRIC)
    values = [metric.soft_ns, metric.soft_nc, metric.auc_pi_ns, metric.auc_pi_nc, metric.full_prob]
    assert all(isinstance(v, float) and v == v and abs(v) != float("inf") for v in values)
    assert metric.full_prob == pytest.approx(reference.full_prob, rel=0.05)


def test_every_method_gives_float32_scores_on_bf16(bf16_model, tiny_ids):
    steps = _steps(tiny_ids, [4, 8])
    for name in gl.list_methods():
        out = gl.get_method(name)(bf16_model).attribute(tiny_ids, steps)
        assert out.scores.dtype == torch.float32, name
        for row, step in enumerate(steps):
            assert torch.isfinite(out.scores[row, : step.position + 1]).all(), name


@pytest.mark.parametrize("device", DEVICES)
def test_model_on_device(tiny_hf, tiny_tokenizer, tiny_model, tiny_ids, device):
    model = gl.load_model(copy.deepcopy(tiny_hf), tokenizer=tiny_tokenizer, device=device)
    assert next(model.parameters()).device.type == device
    steps = _steps(tiny_ids, [3, 10])
    method = GradEllm(model, layers="all")
    assert method.device.type == device
    out = method.attribute(tiny_ids, steps)  # CPU token ids are moved to the model's device
    ref = GradEllm(tiny_model, layers="all").attribute(tiny_ids, steps)
    assert out.scores.device.type == "cpu" and out.scores.dtype == torch.float32  # results live on the CPU
    torch.testing.assert_close(out.scores, ref.scores, equal_nan=True, atol=1e-4, rtol=1e-3)
    result = gl.explain(model, tiny_ids[:6], max_new_tokens=2)
    assert result.scores.device.type == "cpu" and result.n_steps >= 1
    metric = evaluate_step(model, tiny_ids[:4], Target(int(tiny_ids[4])), ref.scores[0, :4], config=SMALL_METRIC)
    assert 0.0 <= metric.full_prob <= 1.0
