"""Hook-point lookup: unknown names are refused with a suggestion."""

from __future__ import annotations

import pytest

from gradellm_lens import InvalidInputError
from gradellm_lens.capture import capture_gradients


def test_capture_rejects_unknown_hook_points(tiny_model, tiny_ids):
    def capture(name):
        capture_gradients(tiny_model, tiny_ids[None], grad_names=[name], objective=lambda lg: lg.sum())

    with pytest.raises(InvalidInputError, match=r"Unknown hook point 'blocks.7.attn.hook_z'.*blocks.0 .. blocks.1"):
        capture("blocks.7.attn.hook_z")
    with pytest.raises(InvalidInputError, match="Did you mean 'blocks.1.attn.hook_z'"):
        capture("blocks.1.attn.hook_zz")
