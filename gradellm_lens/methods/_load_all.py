"""Import every method module so that each registers itself (add new modules here)."""

from . import attention, grad_ellm, gradients, occlusion, random, uniform  # noqa: F401
