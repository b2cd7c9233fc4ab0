"""``python -m analyses.head_agreement [ARGS]``: the head_agreement study.

The code is :mod:`gradellm_lens.cli.studies.head_agreement`.

Same as ``gradellm-lens study head_agreement [ARGS]``, except that its output folder defaults to the committed
results, ``analyses/results/heads/`` (run it from the repository root; ``--out`` still wins).
"""

import sys

from gradellm_lens.cli.studies.head_agreement import main

RESULTS = "analyses/results/heads"


if __name__ == "__main__":
    sys.exit(main(["--out", RESULTS, *sys.argv[1:]]))
