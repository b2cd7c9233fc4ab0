"""Attribution methods. ``list_methods()`` names them; ``get_method(name)`` returns the class.

One module per method family; importing this package registers every method.
"""

from . import _load_all  # noqa: F401
from .base import AttributionMethod, MethodOutput, get_method, list_methods, make_method
from .grad_ellm import GradEllm, GradEllmOptions

__all__ = [
    "AttributionMethod",
    "GradEllm",
    "GradEllmOptions",
    "MethodOutput",
    "get_method",
    "list_methods",
    "make_method",
]
