"""Method specs: parsing, refusals before a model is loaded, and one label per computation."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import gradellm_lens.evaluation.specs as specs_module
from gradellm_lens.cli import common
from gradellm_lens.errors import InvalidInputError
from gradellm_lens.evaluation.specs import (
    MethodSpec,
    build_methods,
    parse_method_spec,
    parse_method_specs,
    parse_options,
    resolved_options,
)


def test_parse_options_reads_json_values_and_refuses_repeats():
    assert parse_options(["layers=[1, 2]", "spatial=pattern", "w=0.5", "flag=true", "s="]) == {
        "layers": [1, 2], "spatial": "pattern", "w": 0.5, "flag": True, "s": "",
    }  # fmt: skip
    assert parse_options(None) == {}
    with pytest.raises(InvalidInputError, match="Option 'layers' is given twice"):
        parse_options(["layers=1", "layers=2"])
    for bad in ("layers", "=4"):
        with pytest.raises(InvalidInputError, match="must look like key=value"):
            parse_options([bad])
    assert common.parse_options is parse_options  # the command line uses this one


def test_specs_module_imports_nothing_from_the_cli():
    tree = ast.parse(Path(specs_module.__file__).read_text(encoding="utf-8"))
    imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert imported and not [m for m in imported if "cli" in m.split(".")]


def test_parse_method_spec():
    spec = parse_method_spec(" grad_ellm:reference+layers=[1,2]+combine=sum_then_relu ")
    assert spec == MethodSpec("grad_ellm", {"variant": "reference", "layers": [1, 2], "combine": "sum_then_relu"},
                              label="grad_ellm:reference+layers=[1,2]+combine=sum_then_relu")  # fmt: skip
    assert parse_method_spec("saliency+sign=abs").options == {"sign": "abs"}
    assert [s.label for s in parse_method_specs("grad_ellm+layers=[0,1],random")] == [
        "grad_ellm+layers=[0,1]",
        "random",
    ]


@pytest.mark.parametrize(
    "text,match",
    [
        ("grad_ellm:", "empty variant"),
        ("grad_ellm:+layers=2", "has an empty variant"),
        ("grad_ellm+layers=1+layers=2", "Option 'layers' is given twice"),
        ("grad_ellm:pattern+variant=rope", "gives the variant twice"),
        ("grad_ellm:patern", "variant.*'patern'.*Did you mean 'pattern'"),
        ("saliency:abs", "'saliency'.*no variants"),
        ("input_x_gradient+sign=ab", "sign.*'ab'.*Did you mean 'abs'"),
        ("grad_ellm+sign=positve", "Did you mean 'positive'"),
        (":reference", "has no method name"),
    ],
)
def test_bad_specs_are_refused_when_parsed(text, match):
    with pytest.raises(InvalidInputError, match=match):
        parse_method_spec(text)


@pytest.mark.parametrize(
    "first,second",
    [
        ("grad_ellm", "grad_ellm:default"),
        ("grad_ellm", "grad_ellm+layers=all+combine=sum_then_relu"),
        ("grad_ellm:last_layer", "grad_ellm+layers=1+combine=relu_then_sum"),
        ("grad_ellm+layers=1", "grad_ellm+layers=[-1]"),
        ("grad_ellm:reference", "grad_ellm+gradient_source=post_o+kv_expansion=legacy_repeat+layers=1+combine=relu_then_sum"),
        ("grad_ellm", "grad_ellm+share_forward=false"),
        ("occlusion", "occlusion+batch_size=3"),
        ("input_x_gradient", "input_x_gradient+sign=positive"),
        ("grad_ellm+layers=all", "grad_ellm+layers=all+gradient_path=full_graph"),
    ],
)
def test_one_computation_under_two_labels_is_refused(tiny_model, first, second):
    with pytest.raises(InvalidInputError, match=re.escape(f"'{first}' and '{second}'") + ".*same computation"):
        build_methods(parse_method_specs([first, second]), tiny_model)


def test_different_computations_are_kept(tiny_model):
    labels = ["grad_ellm", "grad_ellm:last_layer", "grad_ellm:reference", "input_x_gradient", "input_x_gradient+sign=abs", "random"]
    built = build_methods(parse_method_specs(labels), tiny_model)
    assert list(built) == labels and built["grad_ellm"].layers == tuple(range(tiny_model.cfg.n_layers))
    assert built["grad_ellm:last_layer"].layers == (tiny_model.cfg.n_layers - 1,)
    options = resolved_options(built["grad_ellm:reference"])
    assert "variant" not in options and not built["grad_ellm:reference"].throughput_options & set(options)
    assert options["gradient_source"] == "post_o" and options["layers"] == [tiny_model.cfg.n_layers - 1]


def test_speed_only_options_are_options_of_their_method():
    from gradellm_lens.methods import get_method, list_methods

    for name in list_methods():
        cls = get_method(name)
        assert cls.throughput_options <= cls.option_names(), name
