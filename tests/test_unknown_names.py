"""Unknown names and wrong objects across the API (methods, variants, options, models) are refused
with a did-you-mean suggestion."""

from __future__ import annotations

import pytest

import gradellm_lens as gl
from gradellm_lens import GradEllm, InvalidInputError
from gradellm_lens.methods import get_method, make_method


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda m: gl.explain(m, "the cat", "grad_elm"), "'grad_elm'.*Did you mean 'grad_ellm'"),
        (lambda m: gl.explain(m, "the cat", variant="refernce"), "Did you mean 'reference'"),
        (lambda m: gl.explain(m, "the cat", lyers=2), "option for method 'grad_ellm'.*Did you mean 'layers'"),
        (lambda m: gl.explain(m, "the cat", objective="logits"), "objective.*'logits'.*Did you mean 'logit'"),
        (lambda m: gl.explain(m, "the cat", sign="neg"), "sign.*'neg'"),
        (lambda m: gl.explain(m, "the cat", None), "Unknown attribution method None"),
        (lambda m: get_method("gradellm"), "Did you mean 'grad_ellm'"),
        (lambda m: make_method(GradEllm(m), m, layers=2), "Options cannot be combined"),
        (lambda m: GradEllm(m, variant="patern"), "Did you mean 'pattern'"),
        (lambda m: gl.load_model("tiny-lama"), "'tiny-lama'.*Did you mean 'tiny-llama'"),
        (lambda m: gl.load_model("/no/such/model/dir"), "'/no/such/model/dir'"),
        (lambda m: gl.load_model("tiny-llama", dtype="fp8"), "dtype.*'fp8'"),
        (lambda m: gl.explain(None, "the cat"), "TransformerBridge.*NoneType"),
        (lambda m: gl.explain("tiny-llama", "the cat"), r"load it first with load_model\('tiny-llama'\)"),
    ],
)
def test_unknown_names_and_wrong_objects(tiny_model, call, match):
    with pytest.raises(InvalidInputError, match=match):
        call(tiny_model)
