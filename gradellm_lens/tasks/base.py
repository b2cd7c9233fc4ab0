"""The task interface and registry: a dataset, its prompt template, and what each generated step explains.

A :class:`Task` loads :class:`Example` records (local JSONL or the hub, see :mod:`.data`), turns one
into a :class:`~gradellm_lens.tasks.prompts.PromptedExample` for a model (template, plain or chat
format, user-text token spans, optional token budget on long fields) and judges the model's
output. Every task defines its user text: the template fields that carry dataset text (the
review, the question and passage, the story and question, the infobox), so an evaluation can
perturb that text alone. Two kinds exist:

* ``classification`` (SST-2, IMDB, BoolQ): one greedy step; the explained target is the first
  generated token, whatever it is; accuracy compares the prediction with the gold label word;
* ``generation`` (TellMeWhy, WikiBio): greedy decoding of ``max_new_tokens`` tokens; every
  generated step is explained.

Registry: subclasses with a ``name`` register themselves (:func:`register_task`, which the
clean/corrupted contrast tasks of :mod:`.contrast`, kind ``"contrast"``, use too); :func:`list_tasks`
(optionally of one family), :func:`get_task` (the class, with did-you-mean on unknown names) and
:func:`make_task` (an instance; ``family=`` refuses a task of the other family before constructing
one). Besides the five built-in tasks, ``jsonl`` evaluates a JSONL file of your own (:mod:`.jsonl`).
Two families share the registry: ``"evaluation"`` tasks (:class:`Task`: examples from data, for the
faithfulness evaluation) and ``"contrast"`` tasks (clean/corrupted prompt pairs generated from
templates, for activation patching, :mod:`.contrast`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from ..encoding import PROMPT_FORMATS, PromptFormat, check_text, encode_prompt, encode_with_spans
from ..errors import InvalidInputError, UnknownTokenWarning, check_choice, unknown_name_error
from ..models import model_info
from ..registry import Registry
from . import data
from .prompts import PromptedExample, fill_template, template_fields, truncate_to_tokens

TaskKind = Literal["classification", "generation"]
TaskFamily = Literal["evaluation", "contrast"]
TASK_FAMILIES: tuple[str, ...] = ("evaluation", "contrast")
Source = Literal["local", "hub"]
SOURCES: tuple[str, ...] = ("local", "hub")
LabelMatch = Literal["first_token", "restricted"]
LABEL_MATCHES: tuple[str, ...] = ("first_token", "restricted")

TASKS: Registry[type] = Registry("task", "name")
"""Every task (both families) by ``name``; :mod:`gradellm_lens.tasks` imports the built-in ones."""


@dataclass(frozen=True)
class Example:
    """One dataset example.

    Attributes:
        id: unique id within the dataset (the sampling order hashes it).
        fields: the template fields (e.g. ``{"text": ...}`` or ``{"passage": ..., "question": ...}``).
        label: gold class index for classification (index into the task's label words), else None.
        references: gold answers / reference text for generation tasks.
        origin: where the record came from (``file:line`` or ``hub:dataset/split#row``).
    """

    id: str
    fields: dict[str, str]
    label: int | None = None
    references: tuple[str, ...] = ()
    origin: str = ""


@dataclass(frozen=True)
class HubSpec:
    """A hub dataset: ``datasets.load_dataset(path, config, split=splits[split])``."""

    path: str
    splits: dict[str, str]
    config: str | None = None


@dataclass(frozen=True)
class TaskOptions:
    """Options shared by every task (validated here; recorded with results except ``data_dir``).

    Attributes:
        data_dir: folder of the local JSONL files (default: see :mod:`.data`).
        source: ``"local"`` (default) or ``"hub"`` (``datasets.load_dataset``).
        split: dataset split (default: the task's evaluation split).
        prompt_format: ``"plain"`` (default: the filled template as it is) or ``"chat"`` (the model's
            chat template around it); an explicit choice, recorded with the results.
        system: optional system message for the chat template (None: the template's default).
        max_text_tokens: token budget of the task's long field (None: the task default; 0: no limit).
        max_new_tokens: generated tokens per example for generation tasks (classification uses 1).
        label_match: classification accuracy from the greedy ``"first_token"`` (default) or the
            ``"restricted"`` argmax over the label words' logits.
    """

    data_dir: str | None = None
    source: Source = "local"
    split: str | None = None
    prompt_format: PromptFormat = "plain"
    system: str | None = None
    max_text_tokens: int | None = None
    max_new_tokens: int = 10
    label_match: LabelMatch = "first_token"

    def __post_init__(self) -> None:
        for name, choices in (("source", SOURCES), ("prompt_format", PROMPT_FORMATS), ("label_match", LABEL_MATCHES)):
            check_choice(name, getattr(self, name), choices)
        if self.system is not None:
            if not isinstance(self.system, str):
                raise InvalidInputError(f"system must be a string (or None), got {type(self.system).__name__}.")
            check_text(self.system, "the system message")
        for name in ("max_text_tokens", "max_new_tokens"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise InvalidInputError(f"{name} must be a non-negative integer, got {value!r}.")
        if self.max_new_tokens < 1:
            raise InvalidInputError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}.")


class Task(ABC):
    """Base class of the evaluation tasks (see the module docstring)."""

    name: ClassVar[str]
    family: ClassVar[TaskFamily] = "evaluation"
    kind: ClassVar[TaskKind]
    template: ClassVar[str]
    files: ClassVar[dict[str, str]]  # split -> local JSONL file name
    default_split: ClassVar[str]
    hub: ClassVar[HubSpec]
    truncate_field: ClassVar[str | None] = None
    default_max_text_tokens: ClassVar[int | None] = None
    extra_options: ClassVar[tuple[str, ...]] = ()  # constructor options besides TaskOptions (for did-you-mean)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register_task(cls)

    def __init__(self, **options: Any) -> None:
        known = {f.name for f in dataclasses.fields(TaskOptions)} | set(self.extra_options)
        for key in options:
            if key not in known:
                raise unknown_name_error(f"option for task {self.name!r}:", key, known)
        self.options = TaskOptions(**options)
        self.split = self.options.split or self.default_split
        valid_splits = self.hub.splits if self.options.source == "hub" else self.files
        if self.split not in valid_splits:
            raise unknown_name_error(f"{self.options.source} split of task {self.name!r}:", self.split, valid_splits)
        budget = self.options.max_text_tokens
        self.max_text_tokens = self.default_max_text_tokens if budget is None else (budget or None)
        self.max_new_tokens = 1 if self.kind == "classification" else self.options.max_new_tokens
        self._data_file = None
        self._unknown_reported = False  # one unknown-token warning per load, not per example

    # ---- data ---------------------------------------------------------------------------------
    def load(self, n: int | None = None, seed: int = 0) -> list[Example]:
        """The first ``n`` examples (all when None) in the seeded hash order (see :mod:`.data`)."""
        self._unknown_reported = False
        if self.options.source == "hub":
            rows = data.load_hub_rows(self.hub.path, self.hub.splits[self.split], self.hub.config)
            where = f"hub:{self.hub.path}/{self.hub.splits[self.split]}"
            examples = [self._parse_hub_row(row, i, f"{where}#{i}") for i, row in enumerate(rows)]
        else:
            path = self._data_file = self.data_file()
            examples = [self.parse_record(rec, f"{path}:{line}") for line, rec in data.read_jsonl(path)]
        seen: dict[str, str] = {}
        for ex in examples:
            if ex.id in seen:
                raise InvalidInputError(f"{ex.origin}: duplicate example id {ex.id!r} (first seen at {seen[ex.id]}).")
            seen[ex.id] = ex.origin
        return data.select(examples, n, seed, key=lambda ex: ex.id)

    def data_file(self) -> Path:
        """The local JSONL file of this task's split (see :func:`.data.resolve_data_file`)."""
        return data.resolve_data_file(self.files[self.split], self.options.data_dir)

    @abstractmethod
    def parse_record(self, record: dict[str, Any], where: str) -> Example:
        """An :class:`Example` from one local JSONL record; errors name ``where`` (``file:line``)."""

    def _parse_hub_row(self, row: dict[str, Any], index: int, where: str) -> Example:
        """An :class:`Example` from one hub row (default: the local schema)."""
        return self.parse_record(row, where)

    # ---- prompts ------------------------------------------------------------------------------
    def prompt(self, model, example: Example) -> PromptedExample:
        """Fill the template (after the token budget), encode it and locate the user-text tokens.

        Text outside the model's vocabulary becomes its unknown token; that is reported by one
        :class:`~gradellm_lens.errors.UnknownTokenWarning` per task (and per :meth:`load`), naming
        the first example it happened in, not one warning per example.
        """
        fields = dict(example.fields)
        truncated = False
        if self.truncate_field and self.max_text_tokens:
            fields[self.truncate_field], truncated = truncate_to_tokens(
                model.tokenizer, fields[self.truncate_field], self.max_text_tokens
            )
        text, char_spans = fill_template(self.template, fields)
        fmt = self.options.prompt_format
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnknownTokenWarning)
            ids, spans = encode_with_spans(model, text, char_spans, fmt, self.options.system)
        self._reissue(caught, example)
        return PromptedExample(example.id, text, ids, spans, fmt, truncated)

    def _reissue(self, caught: list[warnings.WarningMessage], example: Example) -> None:
        """Re-issue warnings caught while encoding; unknown-token ones only the first time."""
        for w in caught:
            if not issubclass(w.category, UnknownTokenWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            elif not self._unknown_reported:
                self._unknown_reported = True
                warnings.warn(
                    f"Task {self.name!r}, example {example.id!r}: {w.message} Later examples with unknown tokens "
                    "are not reported.",
                    UnknownTokenWarning,
                    stacklevel=3,
                )

    def check_model(self, model) -> None:
        """Refuse a configuration that would fail (or mis-judge) every example on this model's tokenizer.

        Checked once, before a run evaluates any pair (:func:`~gradellm_lens.evaluation.run_evaluation`),
        so that it exits with one error instead of recording the same failure for every pair: the
        template with one-character text in each field (in the prompt format) must encode and leave
        room in the model's context for one generated token. Classification adds its label-word
        checks (:meth:`.ClassificationTask.check_model`).

        Raises:
            InvalidInputError: naming the task and what to change.
        """
        text, _spans = fill_template(self.template, dict.fromkeys(template_fields(self.template), "."))
        fmt, n_ctx = self.options.prompt_format, model_info(model).n_ctx
        try:
            with warnings.catch_warnings():  # unknown template words are reported once per load, by prompt()
                warnings.simplefilter("ignore", UnknownTokenWarning)
                length = encode_prompt(model, text, prompt_format=fmt, system=self.options.system).shape[0]
        except InvalidInputError as exc:
            raise InvalidInputError(
                f"Task {self.name!r}: the template cannot be a prompt for this model: {exc}"
            ) from None
        if length + 1 > n_ctx:
            raise InvalidInputError(
                f"Task {self.name!r}: the template alone takes {length} tokens ({fmt} format), which leaves no room "
                f"for text and one generated token in the model's context of {n_ctx}; shorten the template."
            )

    # ---- judging ------------------------------------------------------------------------------
    def judge(self, model, prompted: PromptedExample, example: Example, generated: Sequence[int]) -> dict[str, Any]:
        """What is recorded about the model's output (classification adds accuracy)."""
        return {"generated": model.tokenizer.decode(list(generated)), "references": list(example.references)}

    def describe(self, model=None) -> dict[str, Any]:
        """Everything about the task that changes results (recorded in result headers).

        With ``prompt_format="chat"`` and a ``model``, the sha256 of its tokenizer's chat template
        is recorded too (``chat_template_sha256``): the template is part of every prompt.
        """
        options = dataclasses.asdict(self.options)
        options.pop("data_dir")
        out: dict[str, Any] = {
            "task": self.name,
            "kind": self.kind,
            "template": self.template,
            **options,
            "split": self.split,
            "max_text_tokens": self.max_text_tokens,
            "max_new_tokens": self.max_new_tokens,
        }
        if model is not None and self.options.prompt_format == "chat":
            template = getattr(model.tokenizer, "chat_template", None) or ""
            out["chat_template_sha256"] = hashlib.sha256(str(template).encode("utf-8")).hexdigest()
        if self.options.source == "hub":
            out["data"] = {"hub": self.hub.path, "split": self.hub.splits[self.split]}
        else:
            path = self._data_file or self.data_file()
            out["data"] = {"file": path.name, "sha256": data.file_sha256(path)}
        return out


def register_task(cls: type) -> None:
    """Register ``cls`` under its own ``name`` class attribute (classes without one are bases)."""
    TASKS.register(cls)


def list_tasks(family: TaskFamily | None = None) -> list[str]:
    """Names of the registered tasks (of one ``family``, ``"evaluation"`` or ``"contrast"``, when given)."""
    if family is not None:
        check_choice("task family", family, TASK_FAMILIES)
    return TASKS.names(None if family is None else lambda cls: cls.family == family)


def get_task(name: str, family: TaskFamily | None = None) -> type:
    """The task class registered as ``name``; an unknown name, or with ``family`` a task of the other
    family, raises with a suggestion."""
    if name not in TASKS:
        raise unknown_name_error("task", name, list_tasks(family))
    cls = TASKS.get(name)
    if family is not None and cls.family != family:
        raise InvalidInputError(
            f"Task {name!r} is a {cls.family} task; this needs an {family} task: {', '.join(list_tasks(family))}."
            + (" Contrast tasks feed gradellm_lens.analysis.activation_patching." if cls.family == "contrast" else "")
        )
    return cls


def make_task(task: Any, *, family: TaskFamily | None = None, **options: Any) -> Any:
    """Instantiate the task ``task`` (a registered name) with ``options``; an instance is returned as is.

    ``family`` (``"evaluation"`` or ``"contrast"``) refuses a task of the other family with a clear
    message, before any option is read.
    """
    if isinstance(task, str):
        return get_task(task, family)(**options)
    name = getattr(type(task), "name", None)
    if name not in TASKS or not isinstance(task, TASKS.get(name)):
        raise InvalidInputError(f"Expected a task name or a task instance, got {type(task).__name__}.")
    get_task(name, family)
    if options:
        raise InvalidInputError("Options cannot be combined with an already constructed task instance.")
    return task


def text_field(record: dict[str, Any], name: str, where: str) -> str:
    """A non-empty string field of a record."""
    value = data.field(record, name, str, where)
    if not value.strip():
        raise InvalidInputError(f"{where}: field {name!r} is empty.")
    return value


__all__ = [
    "TASK_FAMILIES",
    "Example",
    "HubSpec",
    "Task",
    "TaskFamily",
    "TaskOptions",
    "get_task",
    "list_tasks",
    "make_task",
    "register_task",
    "text_field",
]
