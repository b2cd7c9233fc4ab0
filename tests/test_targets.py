"""Target and Step: argument validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradellm_lens import InvalidInputError, Step, Target


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: Target("dog"), r"token_id.*'dog'"),
        (lambda: Target(1.5), "got 1.5"),
        (lambda: Target(True), "got True"),
        (lambda: Target(-3), "non-negative integer, got -3"),
        (lambda: Target(1, contrast_id="x"), "Target contrast_id must be"),
        (lambda: Target(4, 4), "identically 0"),
        (lambda: Target(1, objective="lgit"), "Did you mean 'logit'"),
        (lambda: Step("a", Target(1)), "position.*'a'"),
        (lambda: Step(-1, Target(1)), "position.*-1"),
        (lambda: Step(1, 5), "target.*Target"),
    ],
)
def test_bad_targets_and_steps(make, match):
    with pytest.raises(InvalidInputError, match=match):
        make()


def test_numpy_and_tensor_integers_are_accepted():
    target = Target(np.int64(3), torch.tensor(4))
    step = Step(np.int32(2), target)
    assert (type(target.token_id), type(target.contrast_id), type(step.position)) == (int, int, int)
