"""Contrast tasks: equal-length clean/corrupted pairs, single-token names, determinism, the solve check."""

from __future__ import annotations

import pytest
import torch

from gradellm_lens.errors import InvalidInputError
from gradellm_lens.tasks import ContrastPair, get_task, list_tasks, make_task

CONTRAST = ["factual_recall", "greater_than", "induction", "ioi"]
# the tiny word-level vocabulary: names, places and templates made of its words
TINY_IOI = {
    "names": ("cat", "dog", "man", "woman", "child", "actor", "actress"),
    "templates": ("when {N1} and {N2} ran {PLACE} , {S} sat with", "the {N1} and the {N2} love {PLACE} . {S} ran to"),
    "places": ("home",),
    "objects": ("music",),
}
TINY_FACTS = {"facts": (("cat", "mat"), ("dog", "home"), ("man", "film"), ("woman", "story")),
              "templates": ("the {country} sat on the", "{country} is a")}  # fmt: skip


def test_contrast_tasks_share_the_registry_and_are_kept_out_of_evaluation():
    assert list_tasks("contrast") == CONTRAST
    assert set(CONTRAST) <= set(list_tasks()) and not set(CONTRAST) & set(list_tasks("evaluation"))
    assert get_task("ioi").family == "contrast" and get_task("sst2").family == "evaluation"
    with pytest.raises(InvalidInputError, match="'ioi' is a contrast task.*activation_patching"):
        make_task("ioi", family="evaluation")
    with pytest.raises(InvalidInputError, match="'sst2' is a evaluation task|'sst2' is an evaluation task"):
        make_task("sst2", family="contrast")
    with pytest.raises(InvalidInputError, match="Did you mean 'orders'"):
        make_task("ioi", order=("ABBA",))
    with pytest.raises(InvalidInputError, match="IOI orders"):
        make_task("ioi", orders=("AABB",))
    with pytest.raises(InvalidInputError, match="name slots"):
        make_task("ioi", templates=("no names here",))
    with pytest.raises(InvalidInputError, match="task family"):
        list_tasks("contrastive")


def test_ioi_pairs_on_the_tiny_vocabulary(tiny_model):
    task = make_task("ioi", **TINY_IOI)
    pairs = task.pairs(tiny_model, 6, seed=1)
    tokenizer = tiny_model.tokenizer
    assert [p.fields["order"] for p in pairs] == ["ABBA", "BABA"] * 3
    for pair in pairs:
        assert pair.clean.shape == pair.corrupted.shape
        (step,) = pair.steps
        assert step.position == pair.length - 1
        io, s = pair.fields["io"], pair.fields["s"]
        assert tokenizer.convert_ids_to_tokens([step.target.token_id, step.target.contrast_id]) == [io, s]
        assert pair.clean_text.split().count(s) == 2 and pair.clean_text.split().count(io) == 1
        first = pair.clean_text.split().index(io) < pair.clean_text.split().index(s)
        assert first == (pair.fields["order"] == "ABBA")
        assert not {io, s} & set(pair.corrupted_text.split())  # three other names in the corrupted prompt
    again = task.pairs(tiny_model, 8, seed=1)
    assert [p.clean_text for p in again[:6]] == [p.clean_text for p in pairs]  # prefix-stable, seeded
    assert [p.clean_text for p in task.pairs(tiny_model, 6, seed=2)] != [p.clean_text for p in pairs]


def test_ioi_refuses_a_tokenizer_without_single_token_names(tiny_model):
    with pytest.raises(InvalidInputError, match="single tokens for this tokenizer"):
        make_task("ioi").pairs(tiny_model, 1)  # the default names are not in the tiny vocabulary


def test_factual_recall_and_induction_on_the_tiny_vocabulary(tiny_model):
    for pair in make_task("factual_recall", **TINY_FACTS).pairs(tiny_model, 4):
        assert pair.clean.shape == pair.corrupted.shape
        assert pair.steps[0].target.contrast_id != pair.steps[0].target.token_id
    pairs = make_task("induction", length=5).pairs(tiny_model, 3)
    for pair in pairs:
        n = 5
        assert pair.clean[-2 * n : -n].tolist() == pair.clean[-n:].tolist()  # repeated
        assert pair.corrupted[-2 * n : -n].tolist() == pair.clean[-2 * n : -n].tolist()
        assert not set(pair.corrupted[-n:].tolist()) & set(pair.clean[-n:].tolist())
        assert [s.target.token_id for s in pair.steps] == pair.clean[-n + 1 :].tolist()
        assert all(s.target.objective == "log_prob" for s in pair.steps)


def test_check_reports_accuracy_gap_and_says_when_unsolved(tiny_model):
    task = make_task("ioi", **TINY_IOI)
    pairs = task.pairs(tiny_model, 4)
    check = task.check(tiny_model, pairs, min_accuracy=1.01)  # nothing reaches an accuracy above 1
    assert check.n == 4 and len(check.gaps) == 4
    with torch.no_grad():
        logits = tiny_model(pairs[0].clean[None])[0, -1]
    target = pairs[0].steps[0].target
    assert check.clean_metrics[0] == pytest.approx(
        float(logits[target.token_id] - logits[target.contrast_id]), abs=1e-5
    )
    assert check.accuracies[0] == float(check.clean_metrics[0] > 0)
    assert not check.solved and "NOT SOLVED" in check.summary()


def test_pairs_validate_lengths():
    from gradellm_lens import Step, Target

    with pytest.raises(InvalidInputError, match="equal lengths"):
        ContrastPair("x", torch.tensor([1, 2, 3]), torch.tensor([1, 2]), (Step(2, Target(5)),), "a", "b")


@pytest.mark.slow
@pytest.mark.parametrize("name", CONTRAST)
def test_smollm2_pairs_have_equal_lengths_and_single_token_answers(smollm2, name):
    task = make_task(name)
    pairs = task.pairs(smollm2, 12)
    tokenizer = smollm2.tokenizer
    for pair in pairs:
        assert pair.clean.shape == pair.corrupted.shape
        assert torch.equal(pair.clean, smollm2.to_tokens(pair.clean_text, truncate=False)[0].cpu())
        assert torch.equal(pair.corrupted, smollm2.to_tokens(pair.corrupted_text, truncate=False)[0].cpu())
    if name == "ioi":
        for pair in pairs:
            for word in (pair.fields["io"], pair.fields["s"], *pair.fields["corrupted_names"].split(",")):
                assert len(tokenizer(" " + word, add_special_tokens=False).input_ids) == 1, word
    check = task.check(smollm2, pairs)
    assert check.gap > 0, check.summary()  # the corruption removes evidence on every task
    if name in ("ioi", "factual_recall", "greater_than"):
        assert check.solved, check.summary()
