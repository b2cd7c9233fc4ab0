"""Gradient capture: non-finite objective rows are named."""

from __future__ import annotations

import pytest
import torch
from faults import backward_fault, nan_where_used

from gradellm_lens import NumericalError
from gradellm_lens.capture import capture_gradients


def test_capture_names_the_bad_objective_rows(tiny_model, tiny_ids):
    poison_from_position_5 = backward_fault(nan_where_used, slice(5, None))  # row 0 reads position 3 only
    with tiny_model.hooks(fwd_hooks=[("blocks.1.hook_resid_post", poison_from_position_5)]):
        with pytest.raises(NumericalError, match=r"objective row\(s\) \[1\]"):
            capture_gradients(
                tiny_model, tiny_ids[None], grad_names=["blocks.1.attn.hook_z"],
                objective=lambda lg: torch.stack([lg[0, 3, 5], lg[0, 7, 5]]),
            )  # fmt: skip
