"""Attribution methods. ``list_methods()`` names them; ``get_method(name)`` returns the class.

One module per method family; each class registers itself where it is defined (``method_name``),
and this package imports every built-in module below, so the registry is complete once it is
imported (see :mod:`gradellm_lens.registry`). A new built-in method module is added here.
"""

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
