"""Tasks. Evaluation tasks: SST-2, IMDB, BoolQ (classification), TellMeWhy, WikiBio (open generation),
and ``jsonl``: a JSONL file of your own, classification or generation (:mod:`.jsonl`). Contrast tasks
(:mod:`.contrast`): ``ioi``, ``factual_recall``, ``induction``, ``greater_than``, clean/corrupted
prompt pairs generated from templates for activation patching.

``list_tasks(family=None)`` names them, ``get_task(name)`` returns the class and
``make_task(name, **options)`` an instance; ``task.load(n, seed)`` gives deterministic examples and
``task.prompt(model, example)`` the model input with its user-text token spans; a contrast task's
``pairs(model, n, seed)`` gives deterministic pairs and ``check(model, pairs)`` says whether the
model solves it.

Each task class registers itself where it is defined (``name``); this package imports every built-in
task module below, so the registry is complete once it is imported (see :mod:`gradellm_lens.registry`).
"""

from ..encoding import PROMPT_FORMATS
from .base import TASK_FAMILIES, Example, Task, TaskFamily, TaskOptions, get_task, list_tasks, make_task
from .classification import IMDB, SST2, BoolQ, ClassificationTask
from .contrast import (
    IOI,
    ContrastCheck,
    ContrastPair,
    ContrastTask,
    FactualRecall,
    GreaterThan,
    Induction,
)
from .data import DATA_ENV, resolve_data_file
from .generation import GenerationTask, TellMeWhy, WikiBio
from .jsonl import JsonlClassification, JsonlGeneration, JsonlTask
from .prompts import PromptedExample, fill_template

__all__ = [
    "DATA_ENV",
    "IMDB",
    "IOI",
    "PROMPT_FORMATS",
    "SST2",
    "TASK_FAMILIES",
    "BoolQ",
    "ClassificationTask",
    "ContrastCheck",
    "ContrastPair",
    "ContrastTask",
    "Example",
    "FactualRecall",
    "GenerationTask",
    "GreaterThan",
    "Induction",
    "JsonlClassification",
    "JsonlGeneration",
    "JsonlTask",
    "PromptedExample",
    "Task",
    "TaskFamily",
    "TaskOptions",
    "TellMeWhy",
    "WikiBio",
    "fill_template",
    "get_task",
    "list_tasks",
    "make_task",
    "resolve_data_file",
]
