"""AttributionResult: round trips (.npz and .json), hostile files refused before allocating, safe
concurrent saves, identity equality, label words shown as text, and the ways to look at a result."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import subprocess
import sys
import threading
import tracemalloc
import zipfile

import numpy as np
import pytest
import torch

import gradellm_lens as gl
from gradellm_lens import AttributionResult, InvalidInputError, NumericalError, explain
from gradellm_lens.aggregate import merge_words, normalise
from gradellm_lens.methods.base import MethodOutput
from gradellm_lens.methods.gradients import Saliency

FIELDS = [f.name for f in dataclasses.fields(AttributionResult)]


def assert_same_result(a: AttributionResult, b: AttributionResult) -> None:
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
            assert x.dtype == y.dtype and x.shape == y.shape, name
            torch.testing.assert_close(x, y, equal_nan=True, atol=0, rtol=0, msg=name)
        else:
            assert x == y, name


@pytest.fixture(scope="module")
def contrast_result(tiny_model):
    return explain(tiny_model, "the movie was", continuation="very good", contrast="bad", layers="all")


@pytest.fixture(scope="module")
def label_result(tiny_model):
    return explain(tiny_model, "the movie was", target=" good", contrast=" bad")


# ---- round trips -------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_round_trip_with_layer_head_and_contrast(contrast_result, tmp_path, suffix):
    result = dataclasses.replace(contrast_result, diagnostics={"gradient_path": "full_graph", "gap": [0.5, None]})
    assert result.layer_head is not None and torch.isnan(result.scores).any()
    assert set(result.contrast_ids) == {int(result.contrast_ids[0])}
    path = result.save(tmp_path / f"run{suffix}")
    assert path.name == f"run{suffix}"
    loaded = AttributionResult.load(path)
    assert_same_result(result, loaded)
    assert loaded.diagnostics == {"gradient_path": "full_graph", "gap": [0.5, None]}


def test_round_trip_without_layer_head_and_after_aggregation(tiny_model, tmp_path):
    result = normalise(merge_words(explain(tiny_model, "the cat sat", "occlusion", target=" good")), "l1")
    assert result.layer_head is None and result.contrast_ids == (None,)
    assert result.options["aggregation"] == ["words:sum", "normalise:l1"]
    assert_same_result(result, AttributionResult.load(result.save(tmp_path / "occ")))  # ".npz" appended


def test_diagnostics_of_the_method_reach_the_result(tiny_model, monkeypatch):
    original = Saliency._attribute

    def with_diagnostics(self, tokens, steps):
        out = original(self, tokens, steps)
        return MethodOutput(out.scores, diagnostics={"gradient_path": "single_position"})

    monkeypatch.setattr(Saliency, "_attribute", with_diagnostics)
    result = explain(tiny_model, "the cat sat", "saliency", max_new_tokens=2)
    assert result.diagnostics == {"gradient_path": "single_position"}


def test_file_is_readable_with_numpy_alone(contrast_result, tmp_path):
    path = contrast_result.save(tmp_path / "plain.npz")
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        assert meta["tokens"] == list(contrast_result.tokens) and meta["method"] == "grad_ellm"
        np.testing.assert_array_equal(data["scores"], contrast_result.scores.numpy())
        assert data["layer_head"].shape == tuple(contrast_result.layer_head.shape)
        assert (data["contrast_ids"] == contrast_result.contrast_ids[0]).all()
    as_json = json.loads(contrast_result.save(tmp_path / "plain.json").read_text())  # strict JSON: null, no NaN
    assert as_json["tokens"] == list(contrast_result.tokens) and None in as_json["scores"][0]


# ---- identity, immutability --------------------------------------------------------------------------
def test_result_is_frozen_and_compares_by_identity(contrast_result, tmp_path):
    with pytest.raises(dataclasses.FrozenInstanceError):
        contrast_result.method = "other"
    copy = AttributionResult.load(contrast_result.save(tmp_path / "copy.npz"))
    assert contrast_result == contrast_result and contrast_result != copy  # never raises
    assert len({contrast_result, copy, contrast_result}) == 2  # hashable
    assert contrast_result.to_dict() == copy.to_dict()  # content comparison


# ---- hostile files -----------------------------------------------------------------------------------
def _arrays(result: AttributionResult, tmp_path) -> dict[str, np.ndarray]:
    with np.load(result.save(tmp_path / "good.npz")) as data:
        return dict(data)


def _variant(tmp_path, name: str, arrays: dict, meta: dict | None = None, **changes) -> str:
    arrays = {**arrays, **changes}
    if meta is not None:
        arrays["meta"] = np.asarray(json.dumps({**json.loads(str(arrays["meta"])), **meta}))
    path = tmp_path / f"{name}.npz"
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_load_errors_name_the_file_and_the_field(contrast_result, tmp_path):
    a = _arrays(contrast_result, tmp_path)
    lh = a["layer_head"].copy()
    lh[0, 0, 0, 0] = np.inf
    scores = a["scores"].copy()
    scores[0, 0] = np.nan
    (tmp_path / "junk.npz").write_text("not a zip")
    with zipfile.ZipFile(tmp_path / "text.npz", "w") as zf:
        zf.writestr("readme.txt", "not numpy")
    cases = {
        tmp_path / "missing.npz": "No attribution file at",
        tmp_path / "junk.npz": r"junk\.npz.*not an \.npz archive",
        tmp_path / "text.npz": "meta is not a file in the archive",
        _variant(tmp_path, "v9", a, {"format_version": 9}): "format version 9",
        _variant(tmp_path, "inf_len", a, {"prompt_length": float("inf")}): "prompt_length.*non-negative",
        _variant(tmp_path, "str_len", a, {"prompt_length": "3"}): "prompt_length must be",
        _variant(tmp_path, "tokens", a, {"tokens": "abc"}): r"\btokens\b.*list",
        _variant(tmp_path, "method", a, {"method": 3}): r"\bmethod\b.*string",
        _variant(tmp_path, "layers", a, {"layers": ["a"]}): r"\blayers\b.*integer",
        _variant(tmp_path, "objective", a, {"objective": "loss"}): "objective must be",
        _variant(tmp_path, "noscores", a, scores=None): "missing field 'scores'",
        _variant(tmp_path, "int_scores", a, scores=np.zeros((2, 6), np.int64)): "scores: expected a 2-D float",
        _variant(tmp_path, "3d", a, scores=a["scores"][None]): "scores.*3-D",
        _variant(tmp_path, "float_ids", a, token_ids=a["token_ids"].astype(np.float32)): "token_ids: expected a 1-D",
        _variant(tmp_path, "short", a, token_ids=a["token_ids"][:-1]): r"token_ids: shape \(5,\), expected \(6,\)",
        _variant(tmp_path, "lh3d", a, layer_head=a["layer_head"][0]): "layer_head: expected a 4-D float",
        _variant(tmp_path, "lh_layers", a, {"layers": [0]}): r"layer_head: shape \(2, 2, 4, 6\), expected \(2, 1,",
        _variant(tmp_path, "lh_inf", a, layer_head=lh): "layer_head of step 0 contain NaN/inf",
        _variant(tmp_path, "nan", a, scores=scores): "scores of step 0 contain NaN/inf",
        _variant(tmp_path, "logit", a, target_logits=np.array([1.0, np.inf])): "target_logits.*not finite",
        _variant(tmp_path, "neg_id", a, target_ids=np.array([-5, 3])): "must be non-negative",
        _variant(tmp_path, "pos", a, step_positions=a["step_positions"] + 50): "outside the sequence",
    }
    for path, match in cases.items():
        with pytest.raises(InvalidInputError, match=match):
            AttributionResult.load(path)


def _huge_header_npz(path, good: dict) -> None:
    """A valid archive whose ``scores`` header claims 1e10 float32 elements (37 GiB) over 40 bytes."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (100_000, 100_000)}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    buffer.write(b"\x00" * 40)
    with zipfile.ZipFile(path, "w") as zf:
        for name, value in good.items():
            if name != "scores":
                with zf.open(f"{name}.npy", "w") as fh:
                    np.lib.format.write_array(fh, value)
        zf.writestr("scores.npy", buffer.getvalue())


def test_a_header_claiming_1e10_elements_is_refused_without_allocating(contrast_result, tmp_path):
    path = tmp_path / "huge.npz"
    _huge_header_npz(path, _arrays(contrast_result, tmp_path))
    assert path.stat().st_size < 10_000
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInputError, match=r"scores.*\(100000, 100000\)"):
            AttributionResult.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5e6


def test_max_bytes_caps_what_load_allocates(contrast_result, tmp_path):
    path = contrast_result.save(tmp_path / "r.npz")
    with pytest.raises(InvalidInputError, match="more than max_bytes=100"):
        AttributionResult.load(path, max_bytes=100)
    json_path = contrast_result.save(tmp_path / "r.json")
    with pytest.raises(InvalidInputError, match="larger than max_bytes=100"):
        AttributionResult.load(json_path, max_bytes=100)


def test_hostile_json_files(contrast_result, tmp_path):
    good = json.loads(contrast_result.to_json())
    cases = {
        "ragged": ({**good, "scores": [[1.0], [1.0, 2.0]]}, "scores: not a rectangular list"),
        "strings": ({**good, "target_logits": ["a", "b"]}, 'target_logits: "a" is not a number'),
        "number strings": ({**good, "scores": [["0.5"] * 6] * 2}, 'scores: "0.5" is not a number'),
        "booleans": ({**good, "target_logits": [True, 1.0]}, "target_logits: true is not a number"),
        "boolean ids": ({**good, "token_ids": [True] * 6}, "token_ids: true is not a number"),
        "float_ids": ({**good, "token_ids": [1.5] * 6}, "token_ids.*1-D"),
        "inf_len": ({**good, "prompt_length": 1e999}, "prompt_length must be"),
        "list": ([1, 2], "not a JSON object"),
    }
    for name, (data, match) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        with pytest.raises(InvalidInputError, match=match):
            AttributionResult.load(path)


def test_deeply_nested_json_is_refused_naming_the_file(contrast_result, tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    good = contrast_result.to_json()
    path = tmp_path / "deep.json"
    path.write_text(good[:-1] + ', "extra": ' + deep + "}", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"deep\.json:1:.*nested.*100"):
        AttributionResult.load(path)
    a = _arrays(contrast_result, tmp_path)
    meta = str(a["meta"])[:-1] + ', "extra": ' + deep + "}"
    with pytest.raises(InvalidInputError, match=r"deep\.npz.*meta:1:.*nested"):
        AttributionResult.load(_variant(tmp_path, "deep", {**a, "meta": np.asarray(meta)}))


def test_a_token_that_is_not_unicode_is_refused_at_load_time(contrast_result, tmp_path):
    good = json.loads(contrast_result.to_json())
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**good, "tokens": [*good["tokens"][:-1], "\ud800"]}), encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"bad\.json:1:.*'tokens\[5\]'.*U\+D800"):
        AttributionResult.load(path)
    a = _arrays(contrast_result, tmp_path)
    tokens = list(contrast_result.tokens)
    for name, ascii_only in (("escaped", True), ("raw", False)):  # a JSON escape, or the character itself
        meta = {**json.loads(str(a["meta"])), "tokens": [*tokens[:-1], "\udcff"]}
        npz = _variant(tmp_path, name, {**a, "meta": np.asarray(json.dumps(meta, ensure_ascii=ascii_only))})
        with pytest.raises(InvalidInputError, match=r"meta:1:.*'tokens\[5\]'.*0xff"):
            AttributionResult.load(npz)
    with pytest.raises(InvalidInputError, match=r"Token 5 of tokens.*surrogate"):
        dataclasses.replace(contrast_result, tokens=(*tokens[:-1], "\ud800"))


def test_save_onto_a_folder_is_refused(contrast_result, tmp_path):
    for folder in (tmp_path / "out", tmp_path / "out.npz"):
        folder.mkdir()
        with pytest.raises(InvalidInputError, match=rf"{folder.name} is a folder"):
            contrast_result.save(folder)
        assert folder.is_dir() and not list(tmp_path.glob("*.npz.npz")) and not (tmp_path / "out.npz").is_file()


# ---- saving -----------------------------------------------------------------------------------------
def test_concurrent_saves_to_one_path_do_not_collide(contrast_result, label_result, tmp_path, monkeypatch):
    temps = []
    real_replace = os.replace

    def recording_replace(src, dst):
        temps.append(os.path.basename(src))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    path = tmp_path / "shared.npz"
    threads = [threading.Thread(target=r.save, args=(path,)) for r in [contrast_result, label_result] * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(temps) == 8 and len(set(temps)) == 8  # one temporary name per call
    assert AttributionResult.load(path).method == "grad_ellm"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.npz"]


def test_stale_temporary_file_of_a_killed_save_is_removed(contrast_result, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".r.npz.{int(dead.stdout)}-0123abcd.tmp"
    stale.write_bytes(b"half-written")
    alive = tmp_path / f".r.npz.{os.getpid()}-feedbeef.tmp"  # a save of a running process: kept
    alive.write_bytes(b"in progress")
    contrast_result.save(tmp_path / "r.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name, "r.npz"]


def test_interrupted_save_leaves_previous_file_intact(contrast_result, tmp_path, monkeypatch):
    path = contrast_result.save(tmp_path / "r.npz")
    before = path.read_bytes()

    def interrupted(file, **arrays):
        file.write(b"half-written")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        contrast_result.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.npz"]


# ---- label words and contrasts as text ----------------------------------------------------------------
def test_label_word_target_and_contrast_are_text(label_result, tmp_path):
    assert label_result.target_tokens == ("good",) and label_result.contrast_tokens == ("bad",)
    assert label_result.explained(0) == "'good' vs 'bad'"
    loaded = AttributionResult.load(label_result.save(tmp_path / "label.npz"))
    assert loaded.target_tokens == ("good",) and loaded.contrast_tokens == ("bad",)
    no_text = dataclasses.replace(label_result, target_tokens=(), contrast_tokens=())
    assert no_text.target_tokens[0].startswith("<id ")  # derived when not given: the id, never a wrong token


# ---- looking at a result ------------------------------------------------------------------------------
def test_repr_is_short_and_show_prints_without_ansi_when_not_a_terminal(label_result, capsys):
    text = repr(label_result)
    assert "\n" not in text and len(text) < 200 and "'good' vs 'bad'" in text
    label_result.show()
    out = capsys.readouterr().out
    assert "step 1/1 -> 'good' vs 'bad'" in out and "\x1b[" not in out
    label_result.show(color=True, width=80)
    assert "\x1b[48;5;" in capsys.readouterr().out


def test_repr_html_is_a_static_heatmap(contrast_result):
    page = contrast_result._render_html(full_prompt=True)
    assert "<script" not in page and "step 2/2 -&gt; &#x27;good&#x27; vs &#x27;bad&#x27;" in page
    n_spans = sum(p + 1 for p in contrast_result.step_positions)
    assert len(re.findall(r'<span title="[^"]+" style="background:rgb', page)) == n_spans


def test_to_dataframe_long_format(contrast_result):
    pd = pytest.importorskip("pandas")
    r = contrast_result
    df = r.to_dataframe(full_prompt=True)
    assert list(df.columns) == ["step", "target", "position", "token", "score"]
    assert len(df) == sum(p + 1 for p in r.step_positions)
    for (step, position), score in df.set_index(["step", "position"])["score"].items():
        assert score == pytest.approx(float(r.scores[step, position]))
    assert set(df["target"]) == {"'very' vs 'bad'", "'good' vs 'bad'"}
    heads = r.to_dataframe(layer_head=True, full_prompt=True)
    assert list(heads.columns) == ["step", "target", "layer", "head", "position", "token", "score"]
    n_layers, n_heads = r.layer_head.shape[1:3]
    assert len(heads) == n_layers * n_heads * len(df)
    row = heads.query(f"step == 1 and layer == {r.layers[1]} and head == 2 and position == 3")
    assert float(row["score"].iloc[0]) == pytest.approx(float(r.layer_head[1, 1, 2, 3]))
    assert isinstance(df, pd.DataFrame)


def test_to_dataframe_without_decomposition(tiny_model):
    result = explain(tiny_model, "the cat sat", "saliency", max_new_tokens=1)
    with pytest.raises(InvalidInputError, match="no layer_head"):
        result.to_dataframe(layer_head=True)


# ---- the user's text view --------------------------------------------------------------------------
def test_a_chat_prompt_records_the_user_text_and_the_views_hide_the_rest(tiny_model):
    """The chat template's tokens are scored but hidden by default, with a note; full_prompt shows them."""
    prompt = "the cat sat on the mat"
    r = explain(tiny_model, prompt, prompt_format="chat", max_new_tokens=2)
    start, end = r.user_span
    assert tiny_model.tokenizer.decode(r.token_ids[start:end]).strip() == prompt
    assert 0 < start and end < r.prompt_length  # template tokens on both sides
    hidden = r.prompt_length - (end - start)
    assert r.hidden_note is not None and f"{hidden} other prompt token" in r.hidden_note
    assert r.visible_positions() == [*range(start, end), *range(r.prompt_length, len(r.tokens))]
    assert r.visible_positions(full_prompt=True) == list(range(len(r.tokens)))

    view = r.user_view()
    assert view.tokens == tuple(r.tokens[p] for p in r.visible_positions())
    assert view.prompt_length == end - start and view.target_tokens == r.target_tokens
    for t in range(r.n_steps):  # each step's scores are the full result's, at the visible positions
        kept = [p for p in r.visible_positions() if p <= r.step_positions[t]]
        torch.testing.assert_close(view.step_scores(t), r.scores[t, kept])
        assert view.layer_head[t, :, :, : len(kept)].shape[-1] == len(kept)
    assert view.diagnostics["hidden_note"] == r.hidden_note
    from gradellm_lens.viz.views import top_tokens

    best = int(r.scores[0, start:end].argmax()) + start  # positions in the view are the full sequence's
    assert top_tokens(view, 0)[0].rsplit(" ", 1)[0].endswith(f"@{best}")

    with pytest.warns(UserWarning, match="other prompt token"):
        df = r.to_dataframe()
    assert set(df.position) == {p for p in r.visible_positions() if p <= max(r.step_positions)}
    full = r.to_dataframe(full_prompt=True)
    assert set(full.position) == set(range(max(r.step_positions) + 1))
    assert "full_prompt=True" in r._repr_html_() and "full_prompt" not in r._render_html(full_prompt=True)


def test_a_plain_prompt_hides_only_the_tokenizers_own_special_tokens(tiny_model):
    r = explain(tiny_model, "the cat sat", max_new_tokens=1)
    prepended = r.prompt_length - len(tiny_model.tokenizer("the cat sat", add_special_tokens=False)["input_ids"])
    assert r.user_span == (prepended, r.prompt_length)
    assert (r.hidden_note is None) == (prepended == 0)


def test_ids_have_no_user_span_and_show_everything(tiny_model, tiny_ids):
    r = explain(tiny_model, tiny_ids, max_new_tokens=1)
    assert r.user_span is None and r.hidden_note is None and r.user_view() is r


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_the_user_span_survives_a_round_trip_and_a_bad_one_is_refused(tiny_model, tmp_path, suffix):
    r = explain(tiny_model, "the cat sat on the mat", prompt_format="chat", max_new_tokens=1)
    assert AttributionResult.load(r.save(tmp_path / f"r{suffix}")).user_span == r.user_span
    with pytest.raises(InvalidInputError, match="user_span"):
        dataclasses.replace(r, user_span=(0, r.prompt_length + 1))


def test_the_explain_command_hides_the_template_unless_asked(tiny_model, capsys, monkeypatch):
    from gradellm_lens.cli import main as cli_main

    monkeypatch.setattr("gradellm_lens.cli.explain.load_model_from_args", lambda args: tiny_model)
    args = ["explain", "the cat sat", "--prompt-format", "chat", "--max-new-tokens", "1", "--no-color", "--no-progress"]
    assert cli_main.main(args) == 0
    assert "--full-prompt shows every token" in capsys.readouterr().out
    assert cli_main.main([*args, "--full-prompt"]) == 0
    assert "hidden" not in capsys.readouterr().out


@pytest.fixture(scope="module")
def saved(tiny_model, tmp_path_factory):
    result = gl.explain(tiny_model, "the cat sat", max_new_tokens=2, layers="all")
    path = result.save(tmp_path_factory.mktemp("saved") / "ok.npz")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    return result, path, arrays


def _write_npz(path, arrays, **changes):
    arrays = {**arrays, **changes}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def _meta(arrays, **changes):
    return np.asarray(json.dumps({**json.loads(str(arrays["meta"])), **changes}))


def test_result_round_trip(saved):
    result, path, _ = saved
    loaded = AttributionResult.load(path)
    assert loaded.tokens == result.tokens and loaded.flat_steps == result.flat_steps
    torch.testing.assert_close(loaded.scores, result.scores, equal_nan=True)


def test_load_rejects_bad_files(saved, tmp_path):
    _, _, arrays = saved
    (tmp_path / "garbage.npz").write_bytes(b"\x00garbage\x1b")
    with zipfile.ZipFile(tmp_path / "text.npz", "w") as zf:
        zf.writestr("readme.txt", "not numpy")
    scores = arrays["scores"].copy()
    scores[0, 0] = np.nan
    cases = {
        tmp_path / "missing.npz": "No attribution file at",
        tmp_path: "No attribution file at",
        tmp_path / "garbage.npz": r"not an \.npz archive",
        tmp_path / "text.npz": "meta is not a file in the archive",
        _write_npz(tmp_path / "nometa.npz", arrays, meta=None): "meta is not a file",
        _write_npz(tmp_path / "badjson.npz", arrays, meta=np.asarray("{not json")): "meta is not JSON",
        _write_npz(tmp_path / "list.npz", arrays, meta=np.asarray("[1, 2]")): "format version None",
        _write_npz(tmp_path / "v9.npz", arrays, meta=_meta(arrays, format_version=9)): "format version 9, expected 1",
        _write_npz(tmp_path / "notokens.npz", arrays, meta=np.asarray('{"format_version": 1}')): "missing field 'tok",
        _write_npz(tmp_path / "noscores.npz", arrays, scores=None): "scores",
        _write_npz(tmp_path / "shape.npz", arrays, scores=arrays["scores"][:, :-1]): r"scores: shape \(\d+, \d+\)",
        _write_npz(tmp_path / "1d.npz", arrays, scores=arrays["scores"][0]): "scores: expected a 2-D float array",
        _write_npz(tmp_path / "steps.npz", arrays, step_positions=arrays["step_positions"][:1]): "step_positions: sh",
        _write_npz(tmp_path / "pos.npz", arrays, step_positions=arrays["step_positions"] + 50): "outside the sequence",
    }
    for path, match in cases.items():
        with pytest.raises(InvalidInputError, match=match):
            AttributionResult.load(path)
    with pytest.raises(InvalidInputError, match="scores of step 0.*NaN/inf"):
        AttributionResult.load(_write_npz(tmp_path / "nan.npz", arrays, scores=scores))


def test_results_never_hold_nan_inside_a_prefix(saved):
    result, _, _ = saved
    scores = result.scores.clone()
    scores[1, 2] = float("inf")
    with pytest.raises(NumericalError, match="step 1"):
        result.with_scores(scores)
    with pytest.raises(NumericalError, match=r"target_logits.*step 0.*not finite"):
        result.with_scores(result.scores, target_logits=(float("nan"),) * result.n_steps)
    padded = result.scores.clone()
    padded[0, -1] = float("nan")  # after step 0's prefix: the padding convention, fine
    assert result.with_scores(padded).n_steps == result.n_steps
