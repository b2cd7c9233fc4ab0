"""``python -m analyses.head_curves [ARGS]``: the head_curves study.

The code is :mod:`gradellm_lens.analysis.studies.head_curves`.

Same as ``gradellm-lens study head_curves [ARGS]``; run from the repository root, it writes next to the
committed results in ``analyses/results/heads/``.
"""

import sys

from gradellm_lens.analysis.studies.head_curves import main

if __name__ == "__main__":
    sys.exit(main())
