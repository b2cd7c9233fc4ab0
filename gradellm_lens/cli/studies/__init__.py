"""Head and layer studies: cumulative head ablation, agreement with single-head ablation, layer sweep.

Each study module has ``build_parser()`` and ``main(argv) -> int`` and writes tables (CSV +
Markdown) and a figure to ``--out`` (default ``runs/studies/NAME`` under the working directory).
Run them with ``gradellm-lens study NAME [ARGS]``; the source checkout's ``analyses/`` folder keeps
thin ``python -m analyses.NAME`` commands, which write to its committed results. The studies are
command-line programs built on the library's analysis functions (:mod:`gradellm_lens.analysis`),
so they live with the command line, above the library.

- :mod:`.head_curves`: cumulative head ablation in Grad-ELLM / output-norm / random order.
- :mod:`.head_agreement`: rank agreement of Grad-ELLM head importance with single-head ablation.
- :mod:`.layer_sweep`: π-Soft faithfulness vs Grad-ELLM layer selection and variant switches.
- :mod:`.common`: examples from the task registry, shared arguments, tables and figures.
"""

STUDIES = {
    "head_curves": "cumulative head ablation in Grad-ELLM / output-norm / random order",
    "head_agreement": "rank agreement of Grad-ELLM head importance with single-head ablation",
    "layer_sweep": "pi-Soft faithfulness vs Grad-ELLM layer selection and variant switches",
}
