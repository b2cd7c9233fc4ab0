"""``python -m gradellm_lens.cli COMMAND ...``: the ``gradellm-lens`` command, for launchers that start modules.

``accelerate launch --num_processes 2 -m gradellm_lens.cli evaluate ...`` and
``torchrun --nproc_per_node 2 -m gradellm_lens.cli evaluate ...`` use this entry point (see
:mod:`gradellm_lens.evaluation.distributed`).
"""

import sys

from .main import main

sys.exit(main())
