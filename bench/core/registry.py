"""Name -> class registries for backends, extractors and datasets.

Built-in classes register themselves with a decorator when their module is
imported; third-party packages register through an entry point group
(``bench.algorithms``, ``bench.extractors``, ``bench.datasets``). Entry points and
built-in modules are imported lazily, on the first lookup, so ``bench --help``
stays fast and a broken plugin only fails when it is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from bench.core.discovery import submodules
from bench.core.errors import BenchError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(
        self, kind: str, group: str, package: str | None, base: type | None = None
    ) -> None:
        """``package``: where built-ins are discovered; None: entry points only. ``base``:
        what a ``module:Class`` path must name (``os:system`` is refused, not called)."""
        self.kind = kind
        self._base = base
        self.group = group
        self._package = package
        self._classes: dict[str, type[T]] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def decorator(cls: type[T]) -> type[T]:
            existing = self._classes.get(name)
            if existing is not None and existing is not cls:
                raise BenchError(f"{self.kind} {name!r} is registered twice: {existing} and {cls}")
            self._classes[name] = cls
            cls.registered_name = name  # type: ignore[attr-defined]
            return cls

        return decorator

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in submodules(self._package) if self._package else ():
            importlib.import_module(module)
        for ep in entry_points(group=self.group):
            if ep.name in self._classes:
                continue
            try:
                cls = ep.load()
            except Exception as exc:  # a broken plugin must not break the built-ins
                raise BenchError(
                    f"plugin {ep.name!r} in entry point group {self.group} failed to load: {exc}"
                ) from exc
            self._classes.setdefault(ep.name, cls)
            cls.registered_name = ep.name

    def get(self, name: str) -> type[T]:
        """A registered name, or ``package.module:Class`` for an unregistered class."""
        if ":" in name:
            return self._import_path(name)
        self._load()
        try:
            return self._classes[name]
        except KeyError:
            known = ", ".join(sorted(self._classes)) or "none"
            raise BenchError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def _import_path(self, spec: str) -> type[T]:
        module_name, _, attr = spec.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise BenchError(f"{self.kind} {spec!r} could not be imported: {exc}") from None
        if self._base is not None and not (
            isinstance(cls, type) and issubclass(cls, self._base)
        ):
            raise BenchError(f"{self.kind} {spec!r} is not a {self._base.__name__} subclass "
                             f"(it is {type(cls).__name__} {getattr(cls, '__name__', '')!s})")
        if not getattr(cls, "registered_name", ""):
            cls.registered_name = spec
        return cls

    def names(self) -> list[str]:
        self._load()
        return sorted(self._classes)

    def items(self) -> list[tuple[str, type[T]]]:
        self._load()
        return sorted(self._classes.items())

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._classes
