"""Your own data: a task built from any JSONL file and a few options (``make_task("jsonl", ...)``).

One JSON object per line. Which fields matter is said by options, not by a schema:

* ``text_field``: the field(s) holding the dataset text (default ``"text"``; several as a list or
  ``"question,passage"``). They are the task's user text: an evaluation perturbs them alone.
* ``template``: the prompt, a ``str.format`` string with one ``{field}`` per text field (with a
  single text field, ``{text}`` stands for it whatever its name). Default: ``"{text}\\nAnswer:"``
  for classification and ``"{text}"`` for generation (several fields: one ``Field: {field}`` line
  each).
* ``task_kind="classification"`` (default) with ``label_field`` (default ``"label"``) and
  ``label_words`` (e.g. ``[" negative", " positive"]`` or ``" negative, positive"``): the explained
  target is the first generated token, judged against the label words exactly as the built-in
  classification tasks do. A label is the index of its label word (``0``, ``1``, ...; ``true`` /
  ``false`` count as 1 / 0) or the word itself (``"positive"``, any case, surrounding spaces ignored).
* ``task_kind="generation"``: every generated token is explained; ``reference_field`` (optional;
  a string or a list of strings) is recorded beside the output. An option of the other kind
  (``label_field`` or ``label_words`` for generation, ``reference_field`` for classification) is
  refused rather than ignored.
* ``id_field``: a unique id per record (default: ``line-N``, the record's line number). The
  examples are sampled in the hash order of their ids, as for the built-in tasks.

Every record is checked when the file is loaded (missing or empty fields, unknown labels,
duplicate ids, text that is not valid Unicode), each error naming ``file:line``. The file's name and
sha256 and every option above are recorded with the results.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from ..encoding import check_text
from ..errors import InvalidInputError, check_choice, unknown_name_error
from .base import Example, Task, text_field
from .classification import ClassificationTask
from .data import check_readable_file, field
from .generation import GenerationTask
from .prompts import template_fields

JsonlKind = Literal["classification", "generation"]
JSONL_KINDS: tuple[str, ...] = ("classification", "generation")


def split_names(value: str | Sequence[str], what: str) -> tuple[str, ...]:
    """``"a,b"`` or ``["a", "b"]`` -> ``("a", "b")`` (stripped; empty and repeated names refused)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(item, str) for item in items):
        raise InvalidInputError(f"{what} must be a field name or a list of field names, got {value!r}.")
    names = tuple(item.strip() for item in items)
    if not names or not all(names):
        raise InvalidInputError(f"{what} has an empty field name: {value!r}.")
    if len(set(names)) != len(names):
        raise InvalidInputError(f"{what} names a field twice: {value!r}.")
    return names


def parse_label_words(value: str | Sequence[str]) -> tuple[str, ...]:
    """``" negative, positive"`` or ``[" negative", " positive"]`` -> ``(" negative", " positive")``.

    Split on commas only, so each word keeps its leading space (the token a model generates after
    ``"Answer:"`` usually starts with one).
    """
    words = tuple(value.split(",")) if isinstance(value, str) else tuple(value)
    if not all(isinstance(w, str) for w in words):
        raise InvalidInputError(f"label_words must be strings, got {value!r}.")
    for word in words:
        check_text(word, "a label word")
    if len(words) < 2 or not all(w.strip() for w in words):
        raise InvalidInputError(f"label_words needs at least two non-blank words, got {list(words)!r}.")
    normalised = [w.strip().lower() for w in words]
    if len(set(normalised)) != len(normalised):
        raise InvalidInputError(f"label_words has the same word twice (case and spaces ignored): {list(words)!r}.")
    return words


class JsonlTask(Task):
    """A task over a JSONL file of your own (see the module docstring for the options).

    ``JsonlTask(data=..., task_kind=...)`` returns a :class:`JsonlClassification` or a
    :class:`JsonlGeneration`, which judge the output as the built-in tasks of that kind do.
    """

    name = "jsonl"
    files: ClassVar[dict[str, str]] = {"file": ""}
    default_split = "file"
    extra_options = (
        "data", "text_field", "template", "task_kind", "label_field", "label_words", "reference_field", "id_field",
    )  # fmt: skip

    def __new__(cls, *args: Any, task_kind: str = "classification", **kwargs: Any) -> JsonlTask:
        target = cls
        if cls is JsonlTask:
            check_choice("task_kind", task_kind, JSONL_KINDS)
            target = JsonlClassification if task_kind == "classification" else JsonlGeneration
        return super().__new__(target)

    def __init__(
        self,
        *,
        data: str | Path | None = None,
        text_field: str | Sequence[str] = "text",
        template: str | None = None,
        task_kind: JsonlKind = "classification",
        label_field: str | None = None,
        label_words: str | Sequence[str] | None = None,
        reference_field: str | None = None,
        id_field: str | None = None,
        **options: Any,
    ) -> None:
        if data is None:
            raise InvalidInputError("Task 'jsonl' needs data=PATH (--data my.jsonl): the JSONL file to evaluate.")
        if options.get("source", "local") != "local" or options.get("data_dir") is not None:
            raise InvalidInputError(
                "Task 'jsonl' reads the file given as data=; source='hub' and data_dir do not apply."
            )
        if options.get("split") not in (None, self.default_split):
            raise InvalidInputError("Task 'jsonl' has no splits: the whole file is one split.")
        self.path = Path(data).expanduser()
        check_readable_file(self.path)
        self.text_fields = split_names(text_field, "text_field")
        self.id_field = None if id_field is None else split_names(id_field, "id_field")[0]
        self.reference_field = None if reference_field is None else split_names(reference_field, "reference_field")[0]
        self._configure(label_field, label_words)
        if template is not None and not isinstance(template, str):
            raise InvalidInputError(f"template must be a string, got {type(template).__name__}.")
        self.template = check_text(self._default_template() if template is None else template, "the template")
        self.placeholders = self._placeholders(template_fields(self.template))
        self.truncate_field = next(iter(self.placeholders))
        super().__init__(**options)

    def _configure(self, label_field: str | None, label_words: str | Sequence[str] | None) -> None:
        """Kind-specific options (set by the two subclasses)."""
        raise NotImplementedError

    def _default_template(self) -> str:
        if len(self.text_fields) == 1:
            body = "{text}"
        else:
            body = "\n".join(f"{name.replace('_', ' ').capitalize()}: {{{name}}}" for name in self.text_fields)
        return body + ("\nAnswer:" if self.kind == "classification" else "")

    def _placeholders(self, names: list[str]) -> dict[str, str]:
        """Template placeholder -> record field; every text field appears exactly once."""
        fields = {name: name for name in self.text_fields}
        if len(self.text_fields) == 1 and "text" not in fields:
            fields["text"] = self.text_fields[0]
        for name in names:
            if name not in fields:
                raise unknown_name_error("template placeholder (not a text field)", name, fields)
        used = [fields[name] for name in names]
        missing = [name for name in self.text_fields if name not in used]
        if missing or len(set(used)) != len(used):
            raise InvalidInputError(
                f"The template {self.template!r} must use each text field ({', '.join(self.text_fields)}) exactly "
                f"once{'; it lacks ' + ', '.join(missing) if missing else ''}."
            )
        return {name: fields[name] for name in names}

    def data_file(self) -> Path:
        return self.path

    def _example_id(self, record: dict[str, Any], where: str) -> str:
        """The ``id_field`` value (a string or an integer), else ``line-N`` (``where`` is ``file:N``)."""
        if self.id_field is None:
            return f"line-{where.rsplit(':', 1)[1]}"
        if isinstance(field(record, self.id_field, (str, int), where), int):
            return str(record[self.id_field])
        return text_field(record, self.id_field, where)

    def _fields(self, record: dict[str, Any], where: str) -> dict[str, str]:
        return {key: text_field(record, name, where).strip() for key, name in self.placeholders.items()}

    def describe(self, model=None) -> dict[str, Any]:
        return {
            **super().describe(model),
            "text_fields": list(self.text_fields),
            "id_field": self.id_field,
            "reference_field": self.reference_field,
        }


class JsonlClassification(JsonlTask, ClassificationTask):
    """Your own classification data: label words, first-token target, accuracy."""

    kind = "classification"

    def _configure(self, label_field: str | None, label_words: str | Sequence[str] | None) -> None:
        if self.reference_field is not None:
            raise InvalidInputError(
                "reference_field (--reference-field) only applies to task_kind='generation' (--task-kind generation)."
            )
        if label_words is None:
            raise InvalidInputError(
                "Classification needs label_words (--label-words), e.g. ' negative, positive': the words the model "
                "answers with, in label order (label 0 first)."
            )
        self.label_field = split_names("label" if label_field is None else label_field, "label_field")[0]
        self.label_words = parse_label_words(label_words)

    def label(self, record: dict[str, Any], where: str) -> int:
        """A label index (``0..K-1``; a JSON boolean counts as 0/1) or a label word (any case and spacing)."""
        value = field(record, self.label_field, (int, str, bool), where)
        if isinstance(value, str):
            words = [w.strip().lower() for w in self.label_words]
            if value.strip().lower() not in words:
                raise InvalidInputError(
                    f"{where}: label {value!r} is not one of the label words "
                    f"({', '.join(repr(w.strip()) for w in self.label_words)})."
                )
            return words.index(value.strip().lower())
        if not 0 <= int(value) < len(self.label_words):
            raise InvalidInputError(f"{where}: label {value} is not one of 0..{len(self.label_words) - 1}.")
        return int(value)

    def parse_record(self, record: dict[str, Any], where: str) -> Example:
        fields = self._fields(record, where)
        return Example(self._example_id(record, where), fields, self.label(record, where), origin=where)

    def describe(self, model=None) -> dict[str, Any]:
        return {**super().describe(model), "label_field": self.label_field}


class JsonlGeneration(JsonlTask, GenerationTask):
    """Your own generation data: every generated token explained, references recorded."""

    kind = "generation"

    def _configure(self, label_field: str | None, label_words: str | Sequence[str] | None) -> None:
        if label_words is not None:
            raise InvalidInputError("label_words only applies to task_kind='classification'.")
        if label_field is not None:
            raise InvalidInputError(
                "label_field (--label-field) only applies to task_kind='classification'; generation records need "
                "no label (reference_field, --reference-field, names optional reference text)."
            )

    def parse_record(self, record: dict[str, Any], where: str) -> Example:
        references: tuple[str, ...] = ()
        if self.reference_field is not None:
            value = field(record, self.reference_field, (str, list), where)
            values = [value] if isinstance(value, str) else value
            if not all(isinstance(v, str) for v in values):
                raise InvalidInputError(
                    f"{where}: field {self.reference_field!r} must be a string or a list of strings."
                )
            references = tuple(values)
        fields = self._fields(record, where)
        return Example(self._example_id(record, where), fields, references=references, origin=where)


__all__ = ["JsonlClassification", "JsonlGeneration", "JsonlTask", "parse_label_words", "split_names"]
