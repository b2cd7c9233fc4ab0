"""``python -m analyses.layer_sweep [ARGS]``: the layer_sweep study.

The code is :mod:`gradellm_lens.cli.studies.layer_sweep`.

Same as ``gradellm-lens study layer_sweep [ARGS]``, except that its output folder defaults to the committed
results, ``analyses/results/heads/`` (run it from the repository root; ``--out`` still wins).
"""

import sys

from gradellm_lens.cli.studies.layer_sweep import main

RESULTS = "analyses/results/heads"


if __name__ == "__main__":
    sys.exit(main(["--out", RESULTS, *sys.argv[1:]]))
