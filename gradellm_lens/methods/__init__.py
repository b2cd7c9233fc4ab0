"""Attribution methods. ``list_methods()`` names them; ``get_method(name)`` returns the class.

One module per method family; importing this package registers every method.
"""

from . import _load_all  # noqa: F401
from .attention import Attention, AttentionRollout, AttentionXGradient
from .base import AttributionMethod, MethodOutput, get_method, list_methods, make_method
from .grad_ellm import GradEllm, GradEllmOptions
from .gradients import CompletenessWarning, InputXGradient, IntegratedGradients, Saliency
from .occlusion import Occlusion
from .random import RandomAttribution
from .uniform import UniformAttribution

__all__ = [
    "Attention",
    "AttentionRollout",
    "AttentionXGradient",
    "AttributionMethod",
    "CompletenessWarning",
    "GradEllm",
    "GradEllmOptions",
    "InputXGradient",
    "IntegratedGradients",
    "MethodOutput",
    "Occlusion",
    "RandomAttribution",
    "Saliency",
    "UniformAttribution",
    "get_method",
    "list_methods",
    "make_method",
]
