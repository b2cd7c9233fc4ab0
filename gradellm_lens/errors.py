"""Exceptions raised by gradellm-lens, and the helpers that word them.

Every error a user can trigger with bad input is a subclass of :class:`LensError`, so callers can
catch one type; the concrete classes also inherit the matching built-in (``ValueError``,
``ModuleNotFoundError``, ``FloatingPointError``) so generic handlers keep working.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TypeVar

_S = TypeVar("_S", bound=str)


class LensError(Exception):
    """Base class of every error gradellm-lens raises on purpose."""


class InvalidInputError(LensError, ValueError):
    """An argument, prompt, option or data record is invalid. The message names what and why."""


class UnsupportedModelError(LensError, ValueError):
    """The model's architecture does not expose what an attribution method needs."""


class MissingPackageError(LensError, ModuleNotFoundError):
    """An optional package (a model package, an extra) is not installed. The message has the pip command."""


class NumericalError(LensError, FloatingPointError):
    """A model produced NaN/inf logits or gradients, so no valid attribution exists."""


class FlatAttributionWarning(UserWarning):
    """A step's attribution scores are all equal (e.g. all zero): the map singles out no token."""


class UnknownTokenWarning(UserWarning):
    """Parts of a text are not in the model's vocabulary and became the tokenizer's unknown token."""


class HiddenTokensWarning(UserWarning):
    """A table or view leaves out prompt tokens outside the user's text (``full_prompt=True`` keeps them)."""


def did_you_mean(name: str, choices: Iterable[str], cutoff: float = 0.5) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or ``""`` when nothing is close.

    ``cutoff`` is :func:`difflib.get_close_matches`' similarity threshold in ``[0, 1]``.
    """
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=cutoff)
    return f" Did you mean {close[0]!r}?" if close else ""


def unknown_name_error(kind: str, name: str, choices: Iterable[str]) -> InvalidInputError:
    """Build the error for an unknown registry name (method, task, model, variant ...)."""
    choices = sorted(choices)
    return InvalidInputError(
        f"Unknown {kind} {name!r}.{did_you_mean(name, choices)} Available: {', '.join(choices)}."
    )



def check_choice(name: str, value: object, choices: Iterable[_S]) -> _S:
    """Return ``value`` if it is one of ``choices``; else raise :class:`InvalidInputError`.

    The one check of every option that takes one of a fixed set of strings. The message names the
    option and the bad value, suggests the closest choice and lists them all, in their order:
    ``"combine='sume' is invalid. Did you mean 'sum'? Use one of sum, mean."``; ``name`` may say
    whose option it is (``"grad_ellm option combine"``).
    """
    choices = list(choices)
    if isinstance(value, str) and value in choices:
        return value  # type: ignore[return-value]
    hint = did_you_mean(value, choices) if isinstance(value, str) else ""
    raise InvalidInputError(f"{name}={value!r} is invalid.{hint} Use one of {', '.join(choices)}.")
