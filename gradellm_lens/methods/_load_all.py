"""Import every method module so that each registers itself (add new modules here)."""

from . import grad_ellm  # noqa: F401
