"""Evaluation tasks: SST-2, IMDB, BoolQ (classification), TellMeWhy, WikiBio (open generation), and
``jsonl``: a JSONL file of your own, classification or generation (:mod:`.jsonl`).

``list_tasks()`` names them, ``get_task(name)`` returns the class and ``make_task(name, **options)``
an instance; ``task.load(n, seed)`` gives deterministic examples and ``task.prompt(model, example)``
the model input with its user-text token spans.
"""

from ..encoding import PROMPT_FORMATS
from .base import Example, Task, TaskOptions, get_task, list_tasks, make_task
from .classification import IMDB, SST2, BoolQ, ClassificationTask
from .data import DATA_ENV, resolve_data_file
from .generation import GenerationTask, TellMeWhy, WikiBio
from .jsonl import JsonlClassification, JsonlGeneration, JsonlTask
from .prompts import PromptedExample, fill_template

__all__ = [
    "DATA_ENV",
    "IMDB",
    "PROMPT_FORMATS",
    "SST2",
    "BoolQ",
    "ClassificationTask",
    "Example",
    "GenerationTask",
    "JsonlClassification",
    "JsonlGeneration",
    "JsonlTask",
    "PromptedExample",
    "Task",
    "TaskOptions",
    "TellMeWhy",
    "WikiBio",
    "fill_template",
    "get_task",
    "list_tasks",
    "make_task",
    "resolve_data_file",
]
