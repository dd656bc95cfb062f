"""Named registries (models, datasets, losses, backends). Unknown names list the valid ones."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["Registry", "MODELS", "DATASETS", "LOSSES", "BACKENDS", "suggest"]

T = TypeVar("T")


def suggest(name: str, valid: list[str] | tuple[str, ...]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest valid name, or ``""``."""
    close = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[T]):
    """A mapping from names to builders of one kind.

    Parameters
    ----------
    kind : str
        What the registry holds ("model", "dataset", ...); used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Any:
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""

        def _add(o: T) -> T:
            if name in self._items and self._items[name] is not o:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = o
            return o

        if obj is None:
            return _add
        return _add(obj)

    def get(self, name: str) -> T:
        """Return the entry for ``name``, or raise ``KeyError`` listing the valid names."""
        if name not in self._items:
            valid = sorted(self._items)
            raise KeyError(
                f"unknown {self.kind} {name!r}{suggest(name, valid)}; "
                f"valid {self.kind}s are: {', '.join(valid) or '(none registered)'}"
            )
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


MODELS: Registry[Callable[..., Any]] = Registry("model")
DATASETS: Registry[Callable[..., Any]] = Registry("dataset")
LOSSES: Registry[Callable[..., Any]] = Registry("loss")
#: Backends of the fast ops: op name -> available backend names, filled by ``tensormol.ops``.
BACKENDS: Registry[tuple[str, ...]] = Registry("backend")
