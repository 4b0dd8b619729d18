"""A tiny name -> object registry that fails loudly and suggests the closest valid name.

A registry given a package imports every module in it (but `base`) on first lookup: adding a
target, backend or bridge is adding one module. Those modules import their frameworks only
inside functions, so loading a registry stays cheap.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> objects of one KIND (target, bridge, backend, source format, ...). With PACKAGE,
    the first lookup imports every module of that package but `base`, so registering is a
    module-level decorator. An unknown name raises UnknownNameError (BadInput) that lists the
    valid names and suggests the closest one."""

    def __init__(self, kind: str, package: str | None = None):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._package = package
        self._loaded = package is None

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering its object under NAME; a second registration of NAME raises
        ValueError (a programming error, found at import)."""
        def decorate(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            return obj
        return decorate

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            package = importlib.import_module(self._package)
            for module in pkgutil.iter_modules(package.__path__):
                if module.name != "base":
                    importlib.import_module(f"{self._package}.{module.name}")

    def get(self, name: str) -> T:
        """The object registered as NAME; raises UnknownNameError naming the valid ones."""
        self._load()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._items) from None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        self._load()
        return list(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        self._load()
        return iter(list(self._items.items()))

    def values(self) -> list[T]:
        self._load()
        return list(self._items.values())

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items
