"""Tasks: data loading and its errors, deterministic sampling, prompts and user-text spans, label matching,
one unknown-token warning per load."""

from __future__ import annotations

import hashlib
import json
import re
import sys

import pytest
import torch
from evaldata import SST2, TELLMEWHY, write_jsonl, write_task_files

from gradellm_lens.encoding import decode_json
from gradellm_lens.errors import InvalidInputError, MissingPackageError
from gradellm_lens.tasks import DATA_ENV, fill_template, get_task, list_tasks, make_task
from gradellm_lens.tasks import data as task_data

SHARED = task_data.default_data_dir()
needs_shared = pytest.mark.skipif(not (SHARED / "sst2_validation.jsonl").is_file(), reason="shared/data not present")


@pytest.fixture
def data_dir(tmp_path):
    return write_task_files(tmp_path / "data")


BUILT_IN = ["boolq", "imdb", "sst2", "tellmewhy", "wikibio"]


def test_registry_lists_five_tasks_and_your_own_data_and_suggests_names():
    assert list_tasks("evaluation") == sorted([*BUILT_IN, "jsonl"])
    assert get_task("sst2").kind == "classification" and get_task("wikibio").kind == "generation"
    with pytest.raises(InvalidInputError, match="Did you mean 'sst2'"):
        get_task("sst3")
    with pytest.raises(InvalidInputError, match="Did you mean 'max_new_tokens'"):
        make_task("sst2", max_new_token=3)
    with pytest.raises(InvalidInputError, match="split"):
        make_task("sst2", split="train")
    with pytest.raises(InvalidInputError, match="max_new_tokens"):
        make_task("tellmewhy", max_new_tokens=0)
    with pytest.raises(InvalidInputError, match=r"label_match.*'restrict'.*Did you mean 'restricted'"):
        make_task("sst2", label_match="restrict")
    with pytest.raises(InvalidInputError, match=r"prompt_format.*'auto'"):
        make_task("sst2", prompt_format="auto")  # no implicit choice any more
    with pytest.raises(InvalidInputError, match=r"source.*'hbu'.*Did you mean 'hub'"):
        make_task("sst2", source="hbu")
    with pytest.raises(InvalidInputError, match=r"system.*surrogate"):
        make_task("sst2", system="be \ud800 nice")


def test_prompt_format_is_plain_by_default_and_recorded(tiny_model, data_dir):
    plain, chat = make_task("sst2", data_dir=data_dir), make_task("sst2", data_dir=data_dir, prompt_format="chat")
    example = plain.load(1)[0]
    assert plain.options.prompt_format == "plain" and plain.prompt(tiny_model, example).prompt_format == "plain"
    assert plain.describe(tiny_model)["prompt_format"] == "plain" and "chat_template_sha256" not in plain.describe()
    described = chat.describe(tiny_model)
    template = tiny_model.tokenizer.chat_template
    assert described["prompt_format"] == "chat"
    assert described["chat_template_sha256"] == hashlib.sha256(template.encode()).hexdigest()
    assert chat.prompt(tiny_model, example).length > plain.prompt(tiny_model, example).length


def test_chat_prompts_need_a_chat_template(tiny_model, data_dir, monkeypatch):
    task = make_task("sst2", data_dir=data_dir, prompt_format="chat")
    monkeypatch.setattr(tiny_model.tokenizer, "chat_template", None)
    with pytest.raises(InvalidInputError, match=r"chat template.*prompt_format='plain'"):
        task.prompt(tiny_model, task.load(1)[0])


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_task_defines_user_text(tiny_model, data_dir, name):
    write_jsonl(data_dir / "imdb_test_sample.jsonl", [{"id": "r", "text": "the cat sat <br /> on the mat", "label": 1}])
    write_jsonl(data_dir / "wikibio_test_first100.jsonl", [{"id": "w", "table_text": "name : ann\nborn : one",
                                                           "target_text": "ann was born"}])  # fmt: skip
    task = make_task(name, data_dir=data_dir)
    example = task.load(1)[0]
    prompted = task.prompt(tiny_model, example)
    assert len(prompted.user_spans) == len(example.fields) >= 1
    assert 0 < int(prompted.user_mask().sum()) < prompted.length  # the dataset text, never the template words


def test_data_dir_argument_and_environment_variable(data_dir, tmp_path, monkeypatch):
    assert len(make_task("sst2", data_dir=str(data_dir)).load()) == len(SST2)
    monkeypatch.setenv(DATA_ENV, str(data_dir))
    assert task_data.resolve_data_file("sst2_validation.jsonl") == data_dir / "sst2_validation.jsonl"
    with pytest.raises(InvalidInputError, match=r"'imdb_test_sample\.jsonl'.*not found"):
        make_task("imdb").load()


def test_malformed_files_name_file_and_line(tmp_path):
    path = tmp_path / "sst2_validation.jsonl"
    lines = [json.dumps(SST2[0]), json.dumps(SST2[1]), '{"id": "x", "text": "broken', json.dumps(SST2[2])]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInputError, match=rf"{path}:3:.*JSON"):
        make_task("sst2", data_dir=tmp_path).load()
    write_jsonl(path, [SST2[0], {"id": "y", "text": "good"}])
    with pytest.raises(InvalidInputError, match=rf"{path}:2:.*missing.*'label'"):
        make_task("sst2", data_dir=tmp_path).load()
    write_jsonl(path, [{"id": "y", "text": "good", "label": "1"}])
    with pytest.raises(InvalidInputError, match=rf"{path}:1:.*'label'.*int"):
        make_task("sst2", data_dir=tmp_path).load()
    write_jsonl(path, [{"id": "y", "text": "good", "label": 7}])
    with pytest.raises(InvalidInputError, match=r":1:.*label 7\b"):
        make_task("sst2", data_dir=tmp_path).load()
    write_jsonl(path, [SST2[0], SST2[0]])
    with pytest.raises(InvalidInputError, match=rf"{path}:2:.*duplicate"):
        make_task("sst2", data_dir=tmp_path).load()
    path.write_text("[1, 2]\n")
    with pytest.raises(InvalidInputError, match=r":1:.*JSON object"):
        make_task("sst2", data_dir=tmp_path).load()
    path.write_text("\n\n")
    with pytest.raises(InvalidInputError, match="has no records"):
        make_task("sst2", data_dir=tmp_path).load()
    write_jsonl(tmp_path / "tellmewhy_test_annotated.jsonl", [{**TELLMEWHY[0], "answers": "not a list"}])
    with pytest.raises(InvalidInputError, match=r":1:.*'answers'.*list"):
        make_task("tellmewhy", data_dir=tmp_path).load()


@pytest.mark.parametrize(
    "record,match",
    [
        ({**SST2[1], "text": "good \ud800 fun"}, r"'text'.*U\+D800.*character 5"),
        ({**SST2[1], "text": "good \udcff fun"}, r"'text'.*0xff"),
        ({**SST2[1], "extra": ["ok", "\udfff"]}, r"'extra\[1\]'.*U\+DFFF"),
        ({**SST2[1], "\ud800": 1}, r"field name.*surrogate"),
    ],
)
def test_invalid_unicode_in_a_record_is_refused_at_load_time(tmp_path, record, match):
    path = tmp_path / "sst2_validation.jsonl"
    path.write_text(json.dumps(SST2[0]) + "\n" + json.dumps(record) + "\n", encoding="utf-8")  # JSON \ud800 escapes
    with pytest.raises(InvalidInputError, match=rf"^{path}:2:.*{match}"):
        make_task("sst2", data_dir=tmp_path).load()


def test_unicode_line_separators_inside_strings_do_not_split_records(tmp_path):
    write_jsonl(tmp_path / "sst2_validation.jsonl", [{**SST2[0], "text": "good\u2028fun\x85 film"}, SST2[1]])
    examples = make_task("sst2", data_dir=tmp_path).load()
    assert len(examples) == 2 and any("\u2028" in e.fields["text"] for e in examples)


def test_the_jsonl_reader_takes_a_bom_crlf_and_refuses_deep_nesting_and_bad_bytes_by_line(tmp_path):
    path = tmp_path / "sst2_validation.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(SST2[0]) + "\r\n" + json.dumps(SST2[1]) + "\r\n").encode())
    assert [line for line, _ in task_data.read_jsonl(path)] == [1, 2]
    assert len(make_task("sst2", data_dir=tmp_path).load()) == 2
    deep = json.dumps(SST2[1])[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path.write_text(json.dumps(SST2[0]) + "\n\n" + deep + "\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=rf"^{path}:3:.*nested.*100"):
        make_task("sst2", data_dir=tmp_path).load()
    assert decode_json("[" * 100 + "]" * 100, "f") is not None  # 100 levels are fine
    path.write_bytes(json.dumps(SST2[0]).encode() + b'\n{"id": "x", "text": "caf\xe9"}\n')
    with pytest.raises(InvalidInputError, match=rf"^{path}:2:.*0xe9"):
        make_task("sst2", data_dir=tmp_path).load()


def test_sampling_is_the_sha256_order_prefix_and_seeded(data_dir):
    task = make_task("sst2", data_dir=data_dir)
    ids = [e.id for e in task.load()]
    assert ids == sorted((r["id"] for r in SST2), key=lambda i: hashlib.sha256(i.encode()).hexdigest())
    assert [e.id for e in task.load(3)] == ids[:3]
    reseeded = [e.id for e in task.load(seed=1)]
    assert sorted(reseeded) == sorted(ids) and reseeded != ids
    assert reseeded == [e.id for e in task.load(seed=1)]
    with pytest.raises(InvalidInputError, match="positive number"):
        task.load(0)


@needs_shared
def test_shared_files_load_with_the_readme_counts():
    counts = {"sst2": 872, "imdb": 500, "boolq": 3270, "tellmewhy": 464, "wikibio": 100}
    for name, count in counts.items():
        examples = make_task(name).load()
        assert len(examples) == count
    boolq = make_task("boolq").load(5)
    assert all(not e.fields["question"].endswith("?") and e.label in (0, 1) for e in boolq)
    imdb = make_task("imdb").load(20)
    assert all("<br />" not in e.fields["text"] for e in imdb)
    wikibio = make_task("wikibio", split="validation").load(2)
    assert all(e.fields["table"] and e.references for e in wikibio)


def test_fill_template_reports_field_spans():
    text, spans = fill_template("A {x} and {y}.", {"x": "cat", "y": "the dog"})
    assert text == "A cat and the dog."
    assert text[slice(*spans["x"])] == "cat" and text[slice(*spans["y"])] == "the dog"
    with pytest.raises(InvalidInputError, match="field 'z'"):
        fill_template("{z}", {"x": "a"})


@pytest.mark.parametrize("prompt_format", ["chat", "plain"])
def test_prompt_user_spans_cover_exactly_the_dataset_text(tiny_model, data_dir, prompt_format):
    tok = tiny_model.tokenizer
    task = make_task("boolq", data_dir=data_dir, prompt_format=prompt_format)
    example = task.load(1)[0]
    prompted = task.prompt(tiny_model, example)
    assert prompted.prompt_format == prompt_format
    chat = prompt_format == "chat"
    from gradellm_lens.attribute import encode_prompt

    assert torch.equal(
        prompted.token_ids, encode_prompt(tiny_model, prompted.text, prompt_format="chat" if chat else "plain")
    )
    assert len(prompted.user_spans) == 2
    for (a, b), name in zip(prompted.user_spans, ("passage", "question")):
        assert prompted.token_ids[a:b].tolist() == tok(example.fields[name], add_special_tokens=False)["input_ids"]
    mask = prompted.user_mask()
    assert mask.sum() == sum(b - a for a, b in prompted.user_spans) and not mask[0]
    assert prompted.user_mask(prompted.length + 3).shape == (prompted.length + 3,)


def test_generation_task_prompt_and_references(tiny_model, data_dir):
    task = make_task("tellmewhy", data_dir=data_dir, max_new_tokens=4)
    example = task.load(1)[0]
    prompted = task.prompt(tiny_model, example)
    assert task.max_new_tokens == 4 and len(example.references) == 3
    narrative = tiny_model.tokenizer(example.fields["narrative"], add_special_tokens=False)["input_ids"]
    assert prompted.token_ids[slice(*prompted.user_spans[0])].tolist() == narrative
    judged = task.judge(tiny_model, prompted, example, [4, 5])
    assert judged["references"] == list(example.references) and "correct" not in judged


def test_token_budget_truncates_the_long_field(tiny_model, tmp_path):
    write_jsonl(
        tmp_path / "imdb_test_sample.jsonl",
        [{"id": "r", "text": "the cat sat on the mat <br /> and the dog ran", "label": 1}],
    )
    full = make_task("imdb", data_dir=tmp_path).prompt(tiny_model, make_task("imdb", data_dir=tmp_path).load()[0])
    task = make_task("imdb", data_dir=tmp_path, max_text_tokens=4)
    cut = task.prompt(tiny_model, task.load()[0])
    assert not full.truncated and cut.truncated
    assert tiny_model.tokenizer.decode(cut.token_ids[slice(*cut.user_spans[0])]) == "the cat sat on"
    assert task.describe(tiny_model)["max_text_tokens"] == 4
    assert make_task("imdb", max_text_tokens=0).max_text_tokens is None


def test_label_word_matching():
    sst2, boolq = make_task("sst2"), make_task("boolq")
    assert [sst2.match_token(t) for t in ("Positive", " positive", "pos", " Negative", "The", " ", "")] == [
        1, 1, 1, 0, None, None, None,
    ]  # fmt: skip
    assert [boolq.match_token(t) for t in ("No", " yes", "Y", "maybe")] == [0, 1, 1, None]


def test_classification_judge_first_token_and_restricted(tiny_model, data_dir):
    tok = tiny_model.tokenizer
    task = make_task("sst2", data_dir=data_dir)
    example = next(e for e in task.load() if e.label == 1)
    prompted = task.prompt(tiny_model, example)
    hit = task.judge(tiny_model, prompted, example, tok(" positive", add_special_tokens=False)["input_ids"])
    miss = task.judge(tiny_model, prompted, example, tok(" the", add_special_tokens=False)["input_ids"])
    assert hit["correct"] and hit["predicted"] == "positive" and hit["gold"] == "positive"
    assert hit["first_token_label"] == "positive" and hit["label_match"] == "first_token"
    assert not miss["correct"] and miss["predicted"] is None and miss["first_token_label"] is None
    restricted = make_task("sst2", data_dir=data_dir, label_match="restricted")
    candidates = restricted.label_candidates(tok)
    assert all(candidates) and not set(candidates[0]) & set(candidates[1]) and tok.unk_token_id not in candidates[0]
    judged = restricted.judge(tiny_model, prompted, example, tok(" the", add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        logits = tiny_model(prompted.token_ids[None])[0, -1]
    expected = int(torch.tensor([logits[ids].max() for ids in candidates]).argmax())
    assert judged["predicted"] == restricted.label_words[expected].strip()
    assert judged["first_token_label"] is None  # " the" names no label, whatever the restricted argmax says


def test_hub_source_converts_rows(monkeypatch):
    rows = {
        ("stanfordnlp/sst2", "validation"): [{"idx": 3, "sentence": "good fun", "label": 1}],
        ("google/boolq", "validation"): [{"question": "is it", "passage": "it is", "answer": True}],
        ("michaelauli/wiki_bio", "test"): [
            {
                "input_text": {"table": {"column_header": ["name", "born"], "content": ["ann", "1900"]}},
                "target_text": "ann was",
            }
        ],
        ("StonyBrookNLP/tellmewhy", "test"): [
            {"narrative": "a story", "question": "why ?", "answer": "so", "question_meta": "m"}
        ],
    }
    monkeypatch.setattr(task_data, "load_hub_rows", lambda path, split, config=None: rows[(path, split)])
    sst2 = make_task("sst2", source="hub").load()[0]
    assert (sst2.id, sst2.fields["text"], sst2.label) == ("sst2-validation-3", "good fun", 1)
    boolq = make_task("boolq", source="hub").load()[0]
    assert boolq.label == 1 and boolq.fields == {"passage": "it is", "question": "is it"}
    wiki = make_task("wikibio", source="hub").load()[0]
    assert wiki.fields["table"] == "name: ann\nborn: 1900" and wiki.references == ("ann was",)
    why = make_task("tellmewhy", source="hub").load()[0]
    assert why.id == "m#0" and why.references == ("so",)
    assert make_task("sst2", source="hub").describe()["data"] == {"hub": "stanfordnlp/sst2", "split": "validation"}


def test_hub_source_without_datasets_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(MissingPackageError, match="pip install datasets"):
        make_task("sst2", source="hub").load()


@pytest.mark.slow
@pytest.mark.parametrize("prompt_format", ["plain", "chat"])
def test_smollm2_prompts_locate_user_text(smollm2, prompt_format):
    for name in BUILT_IN:
        task = make_task(name, prompt_format=prompt_format)
        example = task.load(1)[0]
        prompted = task.prompt(smollm2, example)
        assert prompted.prompt_format == prompt_format
        if prompt_format == "chat":
            assert prompted.token_ids[0] == smollm2.tokenizer.bos_token_id
        first = smollm2.tokenizer.decode(prompted.token_ids[slice(*prompted.user_spans[0])]).strip()
        field = next(iter(example.fields.values()))
        assert field.startswith(first) or first.startswith(field[:20])
    imdb = make_task("imdb")
    long_review = max(imdb.load(40), key=lambda e: len(e.fields["text"]))
    assert imdb.prompt(smollm2, long_review).user_mask().sum() <= 257


def test_unknown_token_warnings_are_one_per_task_load_not_per_example(tiny_model, data_dir):
    import warnings

    from gradellm_lens import UnknownTokenWarning
    from gradellm_lens.tasks import make_task

    task = make_task("sst2", data_dir=data_dir)
    for _ in range(2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            prompts = [task.prompt(tiny_model, example) for example in task.load(4)]
        unknown = [w for w in caught if issubclass(w.category, UnknownTokenWarning)]
        assert len(prompts) == 4 and len(unknown) == 1  # the template words are not in tiny-llama's vocabulary
        assert re.match(
            r"Task 'sst2', example '[^']+': \d+ piece\(s\) of the prompt .*'<unk>'. Later", str(unknown[0].message)
        )
