"""A name -> class registry, the one behind the attribution methods and the tasks.

Classes register where they are defined: a base class's ``__init_subclass__`` (or the
:meth:`Registry.register` decorator) files each subclass under its name attribute (``method_name``
for methods, ``name`` for tasks); classes without one are bases and are skipped.

Completeness without an import circle: each registry lives in its package's ``base`` module,
and the package's ``__init__`` imports every built-in module explicitly. Python runs a package's
``__init__`` before any of its submodules can be imported from outside, so by the time code
outside the package can call :meth:`Registry.names` or :meth:`Registry.get`, every built-in class
has registered; ``base`` never imports the modules that subclass it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import unknown_name_error

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Classes by name.

    Args:
        kind: what the names name, for error messages (``"attribution method"``, ``"task"``).
        key: the class attribute holding a class's name; a class whose own ``__dict__`` lacks it
            is not registered (an abstract base).
    """

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        self._classes: dict[str, T] = {}

    def register(self, cls: T) -> T:
        """Register ``cls`` under its own name attribute and return it (usable as a decorator).

        Raises:
            TypeError: another class already holds the name.
        """
        name = cls.__dict__.get(self.key)
        if name is not None:
            if name in self._classes and self._classes[name] is not cls:
                raise TypeError(f"{self.kind} name {name!r} registered twice")
            self._classes[name] = cls
        return cls

    def get(self, name: str) -> T:
        """The class registered as ``name``; an unknown name raises
        :class:`~gradellm_lens.errors.InvalidInputError` with a did-you-mean suggestion."""
        if not isinstance(name, str) or name not in self._classes:
            raise unknown_name_error(self.kind, name, self._classes)
        return self._classes[name]

    def names(self, where: Callable[[T], bool] | None = None) -> list[str]:
        """Sorted registered names (of the classes ``where`` accepts, when given)."""
        return sorted(name for name, cls in self._classes.items() if where is None or where(cls))

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._classes)
