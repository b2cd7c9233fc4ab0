"""Resumable faithfulness evaluation: tasks x methods -> JSONL results -> summary table and π curves.

``run_evaluation(model, "sst2", "grad_ellm,integrated_gradients", "runs/sst2/results.jsonl",
EvaluationConfig(n=200))`` appends one line per (example, method) and resumes where it stopped;
``summarize([...files])`` merges result files (shards) into a :class:`~.summary.Summary` (the
protocol facts: accuracy, majority rate, predicted labels, median ρ; mean and bootstrap 95% CI per
method, control and metric; paired differences between methods) and ``write_summary`` saves it as
CSV, Markdown and a π-curve PNG (``Summary.to_dataframe()`` for pandas). ``run_evaluation(..., "standard")``
or ``preset_config("standard", n=50)`` runs a named preset (:mod:`.presets`). Command line:
``gradellm-lens evaluate`` / ``gradellm-lens summarize``.
"""

from .presets import Preset, get_preset, list_presets
from .runner import (
    EvaluationConfig,
    RunReport,
    evaluate_pair,
    preset_config,
    results_path,
    run_evaluation,
    step_references,
)
from .specs import MethodSpec, parse_method_spec, parse_method_specs
from .statistics import Comparison, Estimate, bootstrap_ci, bootstrap_statistic, paired_bootstrap_ci
from .store import ResultsFile, RunHeader, read_results
from .summary import MethodSummary, Protocol, Summary, summarize, write_summary

__all__ = [
    "Comparison",
    "Estimate",
    "EvaluationConfig",
    "MethodSpec",
    "MethodSummary",
    "Preset",
    "Protocol",
    "ResultsFile",
    "RunHeader",
    "RunReport",
    "Summary",
    "bootstrap_ci",
    "bootstrap_statistic",
    "evaluate_pair",
    "get_preset",
    "list_presets",
    "paired_bootstrap_ci",
    "parse_method_spec",
    "parse_method_specs",
    "preset_config",
    "read_results",
    "results_path",
    "run_evaluation",
    "step_references",
    "summarize",
    "write_summary",
]
