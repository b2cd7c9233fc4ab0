"""Capture activations and gradients at TransformerLens hook points (see :mod:`.gradients`)."""

from .gradients import Captured, capture_gradients, hook_count

__all__ = ["Captured", "capture_gradients", "hook_count"]
