"""``python -m analyses.head_agreement [ARGS]``: the head_agreement study.

The code is :mod:`gradellm_lens.analysis.studies.head_agreement`.

Same as ``gradellm-lens study head_agreement [ARGS]``; run from the repository root, it writes next to the
committed results in ``analyses/results/heads/``.
"""

import sys

from gradellm_lens.analysis.studies.head_agreement import main

if __name__ == "__main__":
    sys.exit(main())
