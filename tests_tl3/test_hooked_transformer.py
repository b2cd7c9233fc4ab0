"""Every method, the metrics, the views and the ablation API on a TransformerLens 3.x HookedTransformer.

The main tier's reference tests are imported and collected here, where ``tiny_model`` and
``smollm2`` are HookedTransformers holding the HF weights (``conftest.py``): Grad-ELLM against the
plain-PyTorch loop of ``reference.py``, the gradient baselines against captum 0.9, the attention
methods against HF ``output_attentions``, all on the pristine Hugging Face model with the main
tier's tolerances. The tests written here cover what is particular to a HookedTransformer.
"""

from __future__ import annotations

import pytest
import torch
from test_analysis_patching import (  # noqa: F401  (collected here: patching against run_with_hooks loops)
    _pair,
    test_activation_patching_matches_a_head_by_head_hook_loop,
    test_attribution_patching_matches_hand_written_gradients,
    test_one_direction_and_layer_subset,
)
from test_grad_ellm import (  # noqa: F401  (collected here, on a HookedTransformer)
    _check_against_reference,
    test_matches_reference_tiny,
    test_named_variants_match_reference,
    test_sum_then_relu_matches_reference,
)
from test_methods_attention import (  # noqa: F401  (collected here)
    test_attention_methods_match_hf_smollm2,
    test_attention_x_gradient_matches_hf,
    test_raw_attention_matches_hf,
    test_rollout_method_matches_hf,
)
from test_methods_gradients import (  # noqa: F401  (collected here)
    test_contrast_matches_captum,
    test_integrated_gradients_completeness,
    test_matches_captum_smollm2,
    test_matches_captum_tiny,
)

import gradellm_lens as gl
from gradellm_lens import GradEllm, InvalidInputError, Step, Target, get_method


def _steps(ids, positions, contrast=None):
    return [Step(p, Target(int(ids[p + 1]), contrast)) for p in positions]


def test_hooked_transformer_has_the_hf_numerics(tiny_model, tiny_hf, tiny_ids):
    with torch.no_grad():
        torch.testing.assert_close(tiny_model(tiny_ids[None]), tiny_hf(tiny_ids[None]).logits, atol=1e-5, rtol=1e-5)


def test_probe_through_the_adapter(tiny_model, tiny_model_processed):
    info = gl.model_info(tiny_model)
    assert (info.model_class, info.architecture, info.attention_class) == (
        "HookedTransformer", "LlamaForCausalLM", "GroupedQueryAttention"
    )  # fmt: skip
    assert info.gradients_supported and info.supports_attn_result and info.weight_processing == ()
    assert (info.n_layers, info.n_heads, info.n_kv_heads, info.d_head) == (2, 4, 2, 16)
    assert not getattr(info, "single_position", False)  # the bridge-only fast path never runs here
    assert gl.model_info(tiny_model_processed).weight_processing == ("fold_ln", "center_unembed")


def test_smollm2_grad_ellm_matches_reference(smollm2, smollm2_hf):
    ids = torch.tensor(smollm2.tokenizer("The quick brown fox jumps over the lazy dog because").input_ids)
    with torch.no_grad():
        torch.testing.assert_close(smollm2(ids[None]), smollm2_hf(ids[None]).logits, atol=1e-4, rtol=1e-4)
    for variant in ("default", "reference"):
        switches = {k: v for k, v in gl.methods.grad_ellm.VARIANTS[variant].items() if k not in ("combine", "layers")}
        _check_against_reference(smollm2, smollm2_hf, ids, [len(ids) - 2], [27, 29], **switches)


@pytest.mark.parametrize("method", ["grad_ellm", "saliency", "attention_x_gradient"])
def test_processed_weights_keep_contrastive_scores(tiny_model, tiny_model_processed, tiny_ids, method):
    """from_pretrained's folding/centring shifts every logit of a position equally: target − contrast is unchanged."""
    steps = _steps(tiny_ids, [5, len(tiny_ids) - 2], contrast=7)
    plain = get_method(method)(tiny_model).attribute(tiny_ids, steps)
    processed = get_method(method)(tiny_model_processed).attribute(tiny_ids, steps)
    torch.testing.assert_close(processed.scores, plain.scores, atol=1e-5, rtol=1e-4, equal_nan=True)


def test_use_attn_result_changes_nothing(tiny_hf, tiny_tokenizer, tiny_ids):
    from conftest import hooked_transformer

    model = hooked_transformer(tiny_hf, tiny_tokenizer)
    before = GradEllm(model, layers="all").attribute(tiny_ids, _steps(tiny_ids, [6])).scores
    model.set_use_attn_result(True)
    after = GradEllm(model, layers="all").attribute(tiny_ids, _steps(tiny_ids, [6])).scores
    torch.testing.assert_close(after, before, atol=1e-6, rtol=1e-5, equal_nan=True)


@pytest.mark.parametrize("prepend_bos", [True, False])
def test_explain_follows_default_prepend_bos(tiny_hf, tiny_tokenizer, prepend_bos):
    from conftest import hooked_transformer

    model = hooked_transformer(tiny_hf, tiny_tokenizer)
    model.cfg.default_prepend_bos = prepend_bos
    result = gl.explain(model, "the cat sat on the mat", max_new_tokens=2)
    words = tiny_tokenizer("the cat sat on the mat").input_ids
    expected = [tiny_tokenizer.bos_token_id, *words] if prepend_bos else words
    assert list(result.token_ids[: len(expected)]) == expected


def test_views_and_report(tiny_model, tmp_path):
    result = gl.explain(tiny_model, "the cat sat on the mat", max_new_tokens=3, layers="all")
    assert result.scores.shape[0] == 3 and result.layer_head.shape[1:3] == (2, 4)
    assert "mat" in gl.viz.render(result)
    path = gl.viz.write_report([result], tmp_path / "report.html")
    assert "the" in path.read_text(encoding="utf-8")


def test_head_ablation_equals_zeroing_hook_z(tiny_model, tiny_ids):
    from gradellm_lens.analysis import Ablation, ablated

    def zero_head(z, hook):
        z[:, :, 2] = 0.0
        return z

    with torch.no_grad():
        with ablated(tiny_model, Ablation(heads=[(1, 2)])):
            ours = tiny_model(tiny_ids[None])
        manual = tiny_model.run_with_hooks(tiny_ids[None], fwd_hooks=[("blocks.1.attn.hook_z", zero_head)])
        clean = tiny_model(tiny_ids[None])
    torch.testing.assert_close(ours, manual)
    assert (ours - clean).abs().max() > 1e-3


def test_faithfulness_metrics_and_one_evaluate_run(tiny_model, tmp_path):
    from evaldata import write_task_files

    from gradellm_lens.evaluation import EvaluationConfig, run_evaluation
    from gradellm_lens.metrics import FaithfulnessConfig
    from gradellm_lens.tasks import make_task

    config = EvaluationConfig(n=2, metrics=FaithfulnessConfig(pis=(0.3, 0.7), n_draws=1), progress=False)
    task = make_task("sst2", data_dir=write_task_files(tmp_path / "data"))
    report = run_evaluation(tiny_model, task, "grad_ellm,saliency", tmp_path / "r.jsonl", config)
    assert report.written == 4 and report.failed == 0


def test_a_hooked_transformer_without_tokenizer_is_refused(tiny_hf):
    from conftest import llama_config
    from transformer_lens import HookedTransformer

    with pytest.raises(InvalidInputError, match="HookedTransformer has no tokenizer.*tokenizer="):
        gl.explain(HookedTransformer(llama_config(tiny_hf.config)), [1, 4, 5], max_new_tokens=1)


def test_attribution_leaves_no_hooks_or_gradients(tiny_model, tiny_ids):
    GradEllm(tiny_model).attribute(tiny_ids, _steps(tiny_ids, [4]))
    assert all(p.grad is None for p in tiny_model.parameters())
    assert not any(hook.fwd_hooks or hook.bwd_hooks for hook in tiny_model.hook_dict.values())


def test_patching_on_processed_weights_keeps_logit_differences(tiny_model, tiny_model_processed, tiny_tokenizer):
    """from_pretrained's folding and centring leave a logit difference, so every head's patching effect, unchanged."""
    clean, corrupted = _pair(tiny_tokenizer)
    target = Target(7, contrast_id=9)
    plain = gl.analysis.activation_patching(tiny_model, clean, corrupted, target)
    processed = gl.analysis.activation_patching(tiny_model_processed, clean, corrupted, target)
    torch.testing.assert_close(processed.noising, plain.noising, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(processed.denoising, plain.denoising, atol=1e-4, rtol=1e-3)
    estimate = gl.analysis.attribution_patching(tiny_model_processed, clean, corrupted, target)
    assert estimate.clean_metric == pytest.approx(plain.clean_metric, abs=1e-4)
