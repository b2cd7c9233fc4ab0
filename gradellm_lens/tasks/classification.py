"""Classification tasks: SST-2 (Socher et al., 2013), IMDB (Maas et al., 2011) and BoolQ (Clark et al., 2019).

The classification datasets of the Grad-ELLM paper (arXiv 2601.03089), evaluated with the Soft-NS /
Soft-NC protocol of Zhao & Aletras (2023); the zero-shot prompts below are this package's. The explained target is the **first generated token** (greedy over the full vocabulary), whatever
it is. Accuracy compares the model's answer with the gold label word:

* ``label_match="first_token"`` (default): the greedy first token, stripped and lower-cased, must be
  a non-empty prefix of exactly one label word (``"Positive"``, ``" positive"`` and ``"pos"`` all
  mean *positive*; ``"The"`` means no label and counts as wrong);
* ``label_match="restricted"``: the label whose surface forms (``" w"``, ``"w"``, ``" W"``, ``"W"``;
  first token of each, ids shared between labels dropped) have the highest logit.

What :meth:`ClassificationTask.judge` records per example: ``first_token`` (its text),
``first_token_label`` (the label it names, or None), ``predicted`` (the label counted for accuracy
under ``label_match``, or None when the first token names none), ``gold``, ``correct`` and
``label_match``. ``predicted`` over a run gives the share of each predicted label, ``gold`` the
majority-class rate.

Prompts (zero-shot, an answer cue at the end):

* SST-2 / IMDB: ``Classify the sentiment of the following movie review as positive or negative.
  \\nReview: {text}\\nSentiment:``; label words ``" negative"`` / ``" positive"``. IMDB's
  ``<br />`` tags become spaces and the review is cut to ``max_text_tokens`` (default 256) tokens.
* BoolQ: ``Passage: {passage}\\nQuestion: {question}?\\nAnswer yes or no.\\nAnswer:``; label words
  ``" no"`` / ``" yes"`` (the question's own trailing ``?`` is dropped before the template adds one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from ..errors import InvalidInputError, NumericalError
from ..tensor_types import Logits
from .base import Example, HubSpec, Task, text_field
from .data import field
from .prompts import PromptedExample

SENTIMENT_TEMPLATE = (
    "Classify the sentiment of the following movie review as positive or negative.\nReview: {text}\nSentiment:"
)


class ClassificationTask(Task):
    """A task whose explained target is the first generated token, judged against label words."""

    kind = "classification"
    label_words: ClassVar[tuple[str, ...]]

    def label(self, record: dict[str, Any], where: str) -> int:
        """The gold class index of a record (``label`` field, 0..number of labels - 1)."""
        value = field(record, "label", int, where)
        if not 0 <= value < len(self.label_words):
            raise InvalidInputError(f"{where}: label {value} is not one of 0..{len(self.label_words) - 1}.")
        return value

    def label_candidates(self, tokenizer) -> list[list[int]]:
        """Token ids that count as each label under ``label_match="restricted"``."""
        per_label = []
        for word in self.label_words:
            bare = word.strip()
            forms = {f" {bare}", bare, f" {bare.capitalize()}", bare.capitalize()}
            ids = {tokenizer(form, add_special_tokens=False)["input_ids"][:1][0] for form in forms}
            per_label.append(ids)
        out = []
        for i, ids in enumerate(per_label):
            others = set().union(*(s for j, s in enumerate(per_label) if j != i))
            unique = sorted(ids - others)
            if not unique:
                raise InvalidInputError(
                    f"Task {self.name!r}: label word {self.label_words[i]!r} has no token of its own in this "
                    "tokenizer; use label_match='first_token'."
                )
            out.append(unique)
        return out

    def check_model(self, model) -> None:
        """:meth:`.Task.check_model`, and label words this tokenizer can tell apart.

        ``label_match="restricted"``: every label word needs a candidate token of its own
        (:meth:`label_candidates`). ``"first_token"``: the first token of each label word must name
        that label (:meth:`match_token`); a first token that is a prefix of two label words (``" pos"``
        for ``" positive"`` and ``" post"``), or the tokenizer's unknown token, means the model's answer
        could never be counted as that label.
        """
        super().check_model(model)
        tokenizer = model.tokenizer
        if self.options.label_match == "restricted":
            self.label_candidates(tokenizer)
            return
        for i, word in enumerate(self.label_words):
            first = tokenizer.decode(tokenizer(word, add_special_tokens=False)["input_ids"][:1])
            if self.match_token(first) != i:
                norm = first.strip().lower()
                others = [w for w in self.label_words if w != word and norm and w.strip().lower().startswith(norm)]
                why = f"is also the start of {others[0]!r}" if others else "names no label word"
                raise InvalidInputError(
                    f"Task {self.name!r}: label word {word!r} starts with the token {first!r}, which {why}, so with "
                    "label_match='first_token' no answer would count as that label; choose label words whose first "
                    "tokens differ, or label_match='restricted' (--label-match restricted)."
                )

    def match_token(self, token_text: str) -> int | None:
        """The label a generated token names (a prefix of exactly one label word), else None."""
        norm = token_text.strip().lower()
        hits = [i for i, w in enumerate(self.label_words) if norm and w.strip().lower().startswith(norm)]
        return hits[0] if len(hits) == 1 else None

    @torch.no_grad()
    def label_scores(self, tokenizer, logits: Logits) -> list[float]:
        """Per label, the largest entry of ``logits`` over the label's candidate ids: the scores
        ``label_match="restricted"`` takes the argmax of. ``logits`` is one ``[vocab]`` vector;
        log-probabilities or probabilities give the same argmax."""
        if not torch.isfinite(logits).all():
            raise NumericalError("The model produced non-finite logits for the label words.")
        return [float(logits[ids].max()) for ids in self.label_candidates(tokenizer)]

    def _restricted_prediction(self, model, prompted: PromptedExample) -> int:
        device = next(model.parameters()).device
        logits = model(prompted.token_ids[None].to(device))[0, -1].float().cpu()
        return int(torch.tensor(self.label_scores(model.tokenizer, logits)).argmax())

    def judge(self, model, prompted: PromptedExample, example: Example, generated: Sequence[int]) -> dict[str, Any]:
        first = model.tokenizer.decode([int(generated[0])])
        if self.options.label_match == "first_token":
            predicted = self.match_token(first)
        else:
            predicted = self._restricted_prediction(model, prompted)
        return {
            **super().judge(model, prompted, example, generated),
            "first_token": first,
            "first_token_label": self._label_name(self.match_token(first)),
            "gold": self._label_name(example.label),
            "predicted": self._label_name(predicted),
            "correct": predicted == example.label,
            "label_match": self.options.label_match,
        }

    def _label_name(self, index: int | None) -> str | None:
        return None if index is None else self.label_words[index].strip()

    def describe(self, model=None) -> dict[str, Any]:
        return {**super().describe(model), "label_words": list(self.label_words)}


def _required_id(record: dict[str, Any], where: str) -> str:
    return text_field(record, "id", where)


class SST2(ClassificationTask):
    """GLUE SST-2 validation (872 sentences; ``shared/data/sst2_validation.jsonl``)."""

    name = "sst2"
    template = SENTIMENT_TEMPLATE
    label_words = (" negative", " positive")
    files = {"validation": "sst2_validation.jsonl"}
    default_split = "validation"
    hub = HubSpec("stanfordnlp/sst2", {"validation": "validation"})

    def parse_record(self, record: dict[str, Any], where: str) -> Example:
        text = text_field(record, "text", where).strip()
        return Example(_required_id(record, where), {"text": text}, self.label(record, where), origin=where)

    def _parse_hub_row(self, row: dict[str, Any], index: int, where: str) -> Example:
        record = {
            "id": f"sst2-validation-{row.get('idx', index)}",
            "text": row.get("sentence"),
            "label": row.get("label"),
        }
        return self.parse_record(record, where)


class IMDB(ClassificationTask):
    """IMDB test reviews (``shared/data/imdb_test_sample.jsonl``: 500 reviews of <= 200 words)."""

    name = "imdb"
    template = SENTIMENT_TEMPLATE
    label_words = (" negative", " positive")
    files = {"test": "imdb_test_sample.jsonl"}
    default_split = "test"
    hub = HubSpec("stanfordnlp/imdb", {"test": "test"})
    truncate_field = "text"
    default_max_text_tokens = 256

    def parse_record(self, record: dict[str, Any], where: str) -> Example:
        text = " ".join(text_field(record, "text", where).replace("<br />", " ").split())
        return Example(_required_id(record, where), {"text": text}, self.label(record, where), origin=where)

    def _parse_hub_row(self, row: dict[str, Any], index: int, where: str) -> Example:
        return self.parse_record(
            {"id": f"imdb-test-{index}", "text": row.get("text"), "label": row.get("label")}, where
        )


class BoolQ(ClassificationTask):
    """BoolQ dev (3270 questions; ``shared/data/boolq_validation.jsonl``)."""

    name = "boolq"
    template = "Passage: {passage}\nQuestion: {question}?\nAnswer yes or no.\nAnswer:"
    label_words = (" no", " yes")
    files = {"validation": "boolq_validation.jsonl"}
    default_split = "validation"
    hub = HubSpec("google/boolq", {"validation": "validation"})
    truncate_field = "passage"

    def parse_record(self, record: dict[str, Any], where: str) -> Example:
        fields = {
            "passage": text_field(record, "passage", where).strip(),
            "question": text_field(record, "question", where).strip().rstrip("?"),
        }
        return Example(_required_id(record, where), fields, self.label(record, where), origin=where)

    def _parse_hub_row(self, row: dict[str, Any], index: int, where: str) -> Example:
        answer = row.get("answer")
        record = {
            "id": f"boolq-validation-{index}",
            "passage": row.get("passage"),
            "question": row.get("question"),
            "label": int(answer) if isinstance(answer, bool) else answer,
        }
        return self.parse_record(record, where)
