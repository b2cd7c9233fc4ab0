"""``python -m analyses.head_curves [ARGS]``: the head_curves study.

The code is :mod:`gradellm_lens.cli.studies.head_curves`.

Same as ``gradellm-lens study head_curves [ARGS]``, except that its output folder defaults to the committed
results, ``analyses/results/heads/`` (run it from the repository root; ``--out`` still wins).
"""

import sys

from gradellm_lens.cli.studies.head_curves import main

RESULTS = "analyses/results/heads"


if __name__ == "__main__":
    sys.exit(main(["--out", RESULTS, *sys.argv[1:]]))
