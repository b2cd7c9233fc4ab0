"""Open-generation tasks: TellMeWhy (Lal et al., 2021) and WikiBio (Lebret et al., 2016).

The generation datasets of the Grad-ELLM paper (arXiv 2601.03089), in the step-wise set-up of
ReAGent (Zhao & Shan, 2024): the model decodes greedily for ``max_new_tokens`` tokens (default 10,
the ReAGent convention; decoding stops early after an end-of-sequence token) and **every generated
step** is explained over its whole prefix (prompt plus earlier generated tokens). No accuracy is
computed; the generated text and the gold references are recorded.

Prompts:

* TellMeWhy: ``Read the story and answer the question.\\nStory: {narrative}\\nQuestion: {question}
  \\nAnswer:`` (ReAGent feeds the bare ``"<story> <question>"``; the instruction and answer cue make
  a small instruct model answer rather than continue the story);
* WikiBio: ``Write the first sentence of a biography of the person described by this table.\\n
  {table}\\nBiography:`` with the infobox as ``field: value`` lines (the data's ``table_text``).
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInputError
from .base import Example, HubSpec, Task, text_field
from .data import field


class GenerationTask(Task):
    """A task whose every generated token is an explained step."""

    kind = "generation"


class TellMeWhy(GenerationTask):
    """TellMeWhy annotated test subset (464 why-questions; ``shared/data/tellmewhy_test_annotated.jsonl``)."""

    name = "tellmewhy"
    template = "Read the story and answer the question.\nStory: {narrative}\nQuestion: {question}\nAnswer:"
    files = {"test": "tellmewhy_test_annotated.jsonl"}
    default_split = "test"
    hub = HubSpec("StonyBrookNLP/tellmewhy", {"test": "test", "validation": "validation"})

    def parse_record(self, record: dict[str, Any], where: str) -> Example:
        answers = record.get("answers")
        if answers is None:
            answers = [text_field(record, "answer", where)]
        elif not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise InvalidInputError(f"{where}: field 'answers' must be a list of strings.")
        fields = {
            "narrative": text_field(record, "narrative", where).strip(),
            "question": text_field(record, "question", where).strip(),
        }
        return Example(text_field(record, "id", where), fields, references=tuple(answers), origin=where)

    def _parse_hub_row(self, row: dict[str, Any], index: int, where: str) -> Example:
        record = {**row, "id": f"{row.get('question_meta') or 'tellmewhy'}#{index}"}
        return self.parse_record(record, where)


class WikiBio(GenerationTask):
    """WikiBio first sentences from infoboxes (``shared/data/wikibio_{test,validation}_first100.jsonl``)."""

    name = "wikibio"
    template = "Write the first sentence of a biography of the person described by this table.\n{table}\nBiography:"
    files = {"test": "wikibio_test_first100.jsonl", "validation": "wikibio_validation_first100.jsonl"}
    default_split = "test"
    hub = HubSpec("michaelauli/wiki_bio", {"test": "test", "validation": "val"})
    truncate_field = "table"

    def parse_record(self, record: dict[str, Any], where: str) -> Example:
        table = text_field(record, "table_text", where).strip()
        references = (text_field(record, "target_text", where).strip(),)
        return Example(text_field(record, "id", where), {"table": table}, references=references, origin=where)

    def _parse_hub_row(self, row: dict[str, Any], index: int, where: str) -> Example:
        table = field(field(row, "input_text", dict, where), "table", dict, where)
        headers, contents = table.get("column_header") or [], table.get("content") or []
        record = {
            "id": f"wikibio-{self.split}-{index}",
            "table_text": "\n".join(f"{h}: {c}" for h, c in zip(headers, contents)),
            "target_text": row.get("target_text"),
        }
        return self.parse_record(record, where)
