"""``python -m analyses.layer_sweep [ARGS]``: the layer_sweep study.

The code is :mod:`gradellm_lens.analysis.studies.layer_sweep`.

Same as ``gradellm-lens study layer_sweep [ARGS]``; run from the repository root, it writes next to the
committed results in ``analyses/results/heads/``.
"""

import sys

from gradellm_lens.analysis.studies.layer_sweep import main

if __name__ == "__main__":
    sys.exit(main())
