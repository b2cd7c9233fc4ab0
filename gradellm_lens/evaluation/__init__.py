"""Resumable faithfulness evaluation: tasks x methods -> JSONL results -> summary table and π curves.

``run_evaluation(model, "sst2", "grad_ellm,integrated_gradients", "runs/sst2/results.jsonl",
EvaluationConfig(n=200))`` appends one line per (example, method) and resumes where it stopped;
``summarize([...files])`` merges result files (shards) into a :class:`~.summary.Summary`
(mean and bootstrap 95% CI per method and metric, task accuracy) and ``write_summary`` saves it as
CSV, Markdown and a π-curve PNG. Command line: ``gradellm-lens evaluate`` / ``gradellm-lens summarize``.
"""

from .runner import EvaluationConfig, RunReport, evaluate_pair, results_path, run_evaluation
from .specs import MethodSpec, parse_method_spec, parse_method_specs
from .store import ResultsFile, RunHeader, read_results
from .summary import Estimate, MethodSummary, Summary, bootstrap_ci, summarize, write_summary

__all__ = [
    "Estimate",
    "EvaluationConfig",
    "MethodSpec",
    "MethodSummary",
    "ResultsFile",
    "RunHeader",
    "RunReport",
    "Summary",
    "bootstrap_ci",
    "evaluate_pair",
    "parse_method_spec",
    "parse_method_specs",
    "read_results",
    "results_path",
    "run_evaluation",
    "summarize",
    "write_summary",
]
