"""Your own data: the ``jsonl`` task (classification and generation) and ``gradellm-lens evaluate --data``."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from evaldata import write_jsonl

from gradellm_lens.cli.main import main
from gradellm_lens.errors import InvalidInputError
from gradellm_lens.evaluation import read_results
from gradellm_lens.tasks import JsonlClassification, JsonlGeneration, get_task, make_task

REVIEWS = [
    {"uid": "a", "review": "this movie was great fun", "sentiment": "Positive", "why": "fun"},
    {"uid": "b", "review": "a terrible and boring film", "sentiment": " negative", "why": ["bad", "boring"]},
    {"uid": "c", "review": "i love this film so much", "sentiment": 1, "why": "love"},
    {"uid": "d", "review": "the worst movie ever", "sentiment": False, "why": "worst"},
]
QA = [
    {"passage": "the cat sat on the mat .", "question": "is the cat on the mat", "answer": "yes"},
    {"passage": "the dog ran home at night .", "question": "did the dog sit", "answer": "no"},
]
WORDS = " negative, positive"
DROP = object()  # an option left out
FAST = ["--model", "tiny-llama", "--device", "cpu", "--pis", "0.3,0.7", "--draws", "1", "--no-progress",
        "--controls", "none", "--random-maps", "1"]  # fmt: skip


@pytest.fixture
def reviews(tmp_path) -> Path:
    return write_jsonl(tmp_path / "reviews.jsonl", REVIEWS)


def _classifier(path: Path, **options):
    return make_task("jsonl", data=path, text_field="review", label_field="sentiment", label_words=WORDS, **options)


def test_classification_reads_text_labels_and_ids(reviews):
    task = _classifier(reviews, id_field="uid")
    assert isinstance(task, JsonlClassification) and get_task("jsonl") is type(task).__mro__[1]
    assert task.kind == "classification" and task.max_new_tokens == 1
    assert task.label_words == (" negative", " positive") and task.template == "{text}\nAnswer:"
    examples = {e.id: e for e in task.load()}
    assert {k: e.label for k, e in examples.items()} == {"a": 1, "b": 0, "c": 1, "d": 0}  # word, index, boolean
    assert examples["a"].fields == {"text": "this movie was great fun"} and examples["a"].origin == f"{reviews}:1"
    assert sorted(e.id for e in _classifier(reviews).load()) == ["line-1", "line-2", "line-3", "line-4"]
    described = task.describe()
    assert described["task"] == "jsonl" and described["kind"] == "classification"
    assert described["data"] == {"file": "reviews.jsonl", "sha256": hashlib.sha256(reviews.read_bytes()).hexdigest()}
    assert described["label_words"] == [" negative", " positive"] and described["text_fields"] == ["review"]
    assert described["label_field"] == "sentiment" and described["prompt_format"] == "plain"


def test_generation_reads_references(reviews):
    task = make_task("jsonl", data=reviews, text_field="review", task_kind="generation", reference_field="why",
                     max_new_tokens=3)  # fmt: skip
    assert isinstance(task, JsonlGeneration) and task.kind == "generation" and task.max_new_tokens == 3
    examples = {e.id: e for e in task.load()}
    assert examples["line-2"].references == ("bad", "boring") and examples["line-1"].references == ("fun",)
    assert task.template == "{text}" and "label_words" not in task.describe()


def test_templates_name_the_text_fields(tmp_path, reviews):
    qa = write_jsonl(tmp_path / "qa.jsonl", QA)
    two = {"data": qa, "text_field": "passage,question", "label_field": "answer", "label_words": " no, yes"}
    assert make_task("jsonl", **two).template == "Passage: {passage}\nQuestion: {question}\nAnswer:"
    assert make_task("jsonl", **two, template="{question}? {passage} Answer:").load(1)[0].fields.keys() == {
        "question",
        "passage",
    }
    assert make_task("jsonl", **{**two, "text_field": ["passage", "question"]}).text_fields == ("passage", "question")
    assert _classifier(reviews, template="review : {review} sentiment :").placeholders == {"review": "review"}
    cases = {
        "{txt} sentiment :": "Unknown template placeholder .*'txt'. Did you mean 'text'",
        "no placeholder": "must use each text field",
        "{text} and {review}": "must use each text field .* exactly once",
        "{text} {text}": "uses {text} twice",
        "{text:>5}": "use plain {field} placeholders",
        "{text!r}": "use plain {field} placeholders",
        "{}": "use plain {field} placeholders",
        "{text": "malformed",
    }
    for template, match in cases.items():
        with pytest.raises(InvalidInputError, match=match):
            _classifier(reviews, template=template)


@pytest.mark.parametrize(
    "options,match",
    [
        ({"data": DROP}, "needs data=PATH"),
        ({"data": "missing.jsonl"}, r"missing\.jsonl.*does not exist"),
        ({"label_words": None}, "Classification needs label_words"),
        ({"label_words": " positive"}, "at least two non-blank words"),
        ({"label_words": " yes, Yes"}, "the same word twice"),
        ({"label_words": "a,\ud800"}, "unpaired surrogate"),
        ({"reference_field": "why"}, r"reference_field.*task_kind='generation'"),
        ({"task_kind": "generation", "label_words": DROP}, r"label_field.*only applies"),
        ({"data": "."}, r"Data file \. .*folder"),
        ({"data": "/dev/null"}, r"/dev/null.*not a regular file"),
        ({"task_kind": "generaton"}, "task_kind.*'generaton'.*Did you mean 'generation'"),
        ({"task_kind": "generation"}, "label_words.*task_kind='classification'"),
        ({"source": "hub"}, "source='hub'.*data_dir"),
        ({"split": "test"}, "has no splits"),
        ({"text_field": "review,,x"}, "empty field name"),
        ({"text_field": "review,review"}, "names a field twice"),
        ({"label_feild": "x"}, "'label_feild'.*Did you mean 'label_field'"),
        ({"label_match": "restrict"}, "Did you mean 'restricted'"),
    ],
)
def test_option_errors(reviews, options, match):
    full = {"data": reviews, "text_field": "review", "label_field": "sentiment", "label_words": WORDS, **options}
    with pytest.raises(InvalidInputError, match=match):
        make_task("jsonl", **{k: v for k, v in full.items() if v is not DROP})


def test_bad_records_are_named_by_file_and_line(tmp_path):
    path = tmp_path / "mine.jsonl"
    good = REVIEWS[0]
    cases = [
        ({"uid": "x", "sentiment": 1}, "missing field 'review'"),
        ({**good, "review": "  "}, "'review'.*empty"),
        ({**good, "sentiment": "neutral"}, "'neutral'.*label words"),
        ({**good, "sentiment": 2}, r"label 2\b"),
        ({**good, "sentiment": 1.0}, "'sentiment'.*int"),
        (
            {**good, "review": "great \ud800 fun"},
            r"'review'.*U\+D800.*character 6",
        ),
        ({**good, "note": {"x": ["\udcff"]}}, r"'note\.x\[0\]'.*0xff"),
        (good, "duplicate.*'a'"),
    ]
    for record, match in cases:
        write_jsonl(path, [good, record])
        with pytest.raises(InvalidInputError, match=rf"^{path}:2:.*{match}"):
            _classifier(path, id_field="uid").load()
    write_jsonl(path, [{**good, "why": 3}])
    with pytest.raises(InvalidInputError, match=rf"^{path}:1: field 'why' must be str or list"):
        make_task("jsonl", data=path, text_field="review", task_kind="generation", reference_field="why").load()


def test_prompt_spans_cover_every_text_field(tiny_model, tmp_path):
    qa = write_jsonl(tmp_path / "qa.jsonl", QA)
    task = make_task("jsonl", data=qa, text_field="passage,question", label_field="answer", label_words=" no, yes")
    example = task.load(1)[0]
    prompted = task.prompt(tiny_model, example)
    tok = tiny_model.tokenizer
    assert prompted.prompt_format == "plain" and len(prompted.user_spans) == 2
    for (a, b), name in zip(prompted.user_spans, ("passage", "question")):
        assert prompted.token_ids[a:b].tolist() == tok(example.fields[name], add_special_tokens=False)["input_ids"]
    judged = task.judge(tiny_model, prompted, example, tok(" yes", add_special_tokens=False)["input_ids"])
    assert judged["predicted"] == "yes" and judged["gold"] == ("yes" if example.label else "no")


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_own_classification_data(capsys, reviews, tmp_path):
    out = tmp_path / "run"
    argv = ["evaluate", "--data", reviews, "--text-field", "review", "--label-field", "sentiment", "--label-words", WORDS,
            "--template", r"review : {text}\n sentiment :", "--id-field", "uid", *FAST, "--methods", "random", "--n", "3",
            "--out-dir", out]  # fmt: skip
    code, stdout, err = _run(capsys, *argv)
    assert code == 0, err
    assert "3 new result(s), 0 failed" in stdout and (out / "summary.md").is_file()
    headers, results, _ = read_results(out / "results.jsonl")
    task = headers[0]["config"]["task"]
    assert task["task"] == "jsonl" and task["template"] == "review : {text}\n sentiment :"  # \\n typed: a newline
    assert task["data"]["sha256"] == hashlib.sha256(reviews.read_bytes()).hexdigest()
    assert task["label_words"] == [" negative", " positive"] and task["id_field"] == "uid"
    assert headers[0]["config"]["perturb"] == "user_text"
    assert len(results) == 3 and all(r["status"] == "ok" and "predicted" in r["output"] for r in results)
    assert all(0 < r["user_tokens"] < r["prompt_tokens"] for r in results)  # the review, not the template words
    code, stdout, _ = _run(capsys, *argv)  # resumes: nothing left to do
    assert code == 0 and "0 new result(s), 0 failed, 3 already done" in stdout


def test_evaluate_own_generation_data_default_out_dir(capsys, reviews, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["evaluate", "--data", reviews, "--task-kind", "generation", "--text-field", "review",
            "--reference-field", "why", "--max-new-tokens", "2", *FAST, "--methods", "random", "--n", "1"]  # fmt: skip
    code, _, err = _run(capsys, *argv)
    assert code == 0, err
    headers, results, _ = read_results(tmp_path / "runs" / "reviews" / "results.jsonl")
    assert headers[0]["config"]["task"]["kind"] == "generation" and results[0]["output"]["references"]


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--label-words", WORDS], r"--label-words.*--data"),
        (["--data", "x.jsonl", "--label-words", WORDS], "--task sst2.*--data x\\.jsonl"),
    ],
)
def test_evaluate_own_data_option_errors(capsys, tmp_path, extra, match):
    code, _, err = _run(capsys, "evaluate", "--task", "sst2", *FAST, *extra, "--out-dir", tmp_path / "run")
    assert code == 2 and re.search(match, err), err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--template", "the " * 130 + "{text}"], r"'jsonl'.*template.*context"),
        (["--template", "the " * 126 + "{text}"],
         r"'jsonl'.*template.*12\d tokens.*no room"),
        (["--label-words", " zebra, lion", "--label-match", "restricted"], "label word ' zebra' has no token of its"),
        (["--label-words", " the cat, the dog"],
         r"label word ' the cat' starts with the token 'the', which is also the start of ' the dog'.*'restricted'"),
        (["--label-words", " zebra, positive"], "label word ' zebra' starts with the token '<unk>', which names no"),
    ],
)  # fmt: skip
def test_a_configuration_the_tokenizer_cannot_serve_exits_2_before_any_pair(capsys, tmp_path, extra, match):
    data = write_jsonl(tmp_path / "d.jsonl", [{"review": r["review"], "label": i % 2} for i, r in enumerate(REVIEWS)])
    argv = ["evaluate", "--data", data, "--text-field", "review", "--label-words", WORDS, *FAST, "--methods", "random",
            "--out-dir", tmp_path / "run"]  # fmt: skip
    code, _, err = _run(capsys, *argv, *extra)
    lines = [line for line in err.splitlines() if ": warning: " not in line]
    assert code == 2 and len(lines) == 1 and re.search(match, lines[0]), err
    assert not (tmp_path / "run").exists()


def test_check_model_accepts_the_built_in_and_default_setups(tiny_model, reviews):
    for options in ({}, {"label_match": "restricted"}, {"prompt_format": "chat"}):
        _classifier(reviews, **options).check_model(tiny_model)
    make_task("jsonl", data=reviews, text_field="review", task_kind="generation").check_model(tiny_model)


def test_evaluate_refuses_a_bad_record_before_writing_anything(capsys, tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl", REVIEWS[:2])
    path.write_text(path.read_text() + json.dumps({**REVIEWS[2], "review": "x \ud800"}) + "\n", encoding="utf-8")
    argv = ["evaluate", "--data", path, "--text-field", "review", "--label-field", "sentiment", "--label-words", WORDS,
            *FAST, "--methods", "random", "--out-dir", tmp_path / "run"]  # fmt: skip
    code, _, err = _run(capsys, *argv)
    lines = [line for line in err.splitlines() if ": warning: " not in line]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"gradellm-lens evaluate: error: {path}:3: Field 'review' has an unpaired surrogate")
    assert not (tmp_path / "run").exists()
    code, _, err = _run(capsys, "evaluate", *FAST, "--methods", "random", "--out-dir", tmp_path / "run")
    assert code == 2 and "Give a built-in task (--task sst2, ...) or your own JSONL file (--data FILE)" in err
