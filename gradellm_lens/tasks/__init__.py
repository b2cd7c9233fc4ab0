"""Evaluation tasks: SST-2, IMDB, BoolQ (classification) and TellMeWhy, WikiBio (open generation).

``list_tasks()`` names them, ``get_task(name)`` returns the class and ``make_task(name, **options)``
an instance; ``task.load(n, seed)`` gives deterministic examples and ``task.prompt(model, example)``
the model input with its user-text token spans.
"""

from .base import Example, Task, TaskOptions, get_task, list_tasks, make_task
from .classification import IMDB, SST2, BoolQ, ClassificationTask
from .data import DATA_ENV, resolve_data_file
from .generation import GenerationTask, TellMeWhy, WikiBio
from .prompts import PromptedExample, fill_template

__all__ = [
    "DATA_ENV",
    "IMDB",
    "SST2",
    "BoolQ",
    "ClassificationTask",
    "Example",
    "GenerationTask",
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
