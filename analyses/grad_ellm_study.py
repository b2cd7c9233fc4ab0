"""The Grad-ELLM switch study: which layers and switches make its maps faithful, and why the last layer fails.

Subcommands (run from the repository root; ``analyses/run_grad_ellm_study.sh`` runs them in order)::

    python analyses/grad_ellm_study.py methods --model qwen2.5-coder-0.5b-instruct [--per-layer]
    python analyses/grad_ellm_study.py tables analyses/results/grad-ellm-study

``methods`` prints the comma-separated method specs that the faithfulness runner evaluates for one model:

* ``layers``: the last K layers for K in 1, 2, 4, 8, half the layers and all of them
  (``relu_then_sum``: the per-layer maps are ReLU'd, then summed);
* every single layer (``--per-layer``): ``layers=[i]`` for each i but the last (which is K = 1);
* the switches, one at a time from ``layers=all``: ``combine=sum_then_relu``,
  ``gradient_source=post_o``, ``kv_expansion=legacy_repeat``, each non-default ``spatial``, and
  the released code's pair of switches (``:reference``) over all layers;
* the released code as it is (``grad_ellm:reference``, last layer) and ``random``.

Every spec names its options explicitly, so the results do not depend on the package's default.
The faithfulness protocol is the verdict's (Zhao & Aletras 2023's Soft-NS/NC at a fixed retaining
probability π, arXiv 2601.03089), with the switches in :mod:`gradellm_lens.methods.grad_ellm`.
"""

from __future__ import annotations

import argparse
import sys

SWITCHES = (
    "combine=sum_then_relu",
    "gradient_source=post_o",
    "kv_expansion=legacy_repeat",
    "spatial=softmax",
    "spatial=pattern",
    "spatial=rope_minmax",
    "spatial=none",
)


def layer_counts(n_layers: int) -> list[int | str]:
    """K for the last-K configurations: 1, 2, 4, 8 and half the layers (where fewer than all), then ``all``."""
    ks = sorted({k for k in (1, 2, 4, 8, n_layers // 2) if k < n_layers})
    return [*ks, "all"]


def study_methods(n_layers: int, per_layer: bool) -> list[str]:
    """The method specs of the study for a model with ``n_layers`` attention layers."""
    specs = [f"grad_ellm+layers={k}" for k in layer_counts(n_layers)]
    specs += [f"grad_ellm+layers=all+{switch}" for switch in SWITCHES]
    specs += ["grad_ellm:reference+layers=all", "grad_ellm:reference+layers=1"]
    if per_layer:  # the last layer alone is layers=1 above
        specs += [f"grad_ellm+layers=[{i}]" for i in range(n_layers - 1)]
    return [*specs, "random"]


def _n_layers(model_name: str) -> int:
    from gradellm_lens import load_model, model_info

    return model_info(load_model(model_name, device="cpu")).n_layers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    methods = sub.add_parser("methods", help="print the study's method specs for one model")
    methods.add_argument("--model", required=True, help="built-in model name")
    methods.add_argument("--per-layer", action="store_true", help="add every single layer's map")
    args = parser.parse_args(argv)
    if args.command == "methods":
        print(",".join(study_methods(_n_layers(args.model), args.per_layer)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
