"""Named registries: a builder per name, found without importing anything first.

``MODELS.get("tensornet")`` works in a fresh interpreter. A registry knows three kinds of entries:

* **built-in** ones, declared by one line each in a table (name -> module, builder, config class)
  and imported the first time that name is looked up, so importing :mod:`tensormol` registers
  nothing and no module is imported for its side effects;
* **third-party** ones, published by an installed distribution under an entry-point group
  (``tensormol.models`` for models, as openmm-ml does for potentials) and loaded on first lookup;
* ones registered at run time with :meth:`Registry.register` (a notebook, a test).

Every entry pairs the builder with the config class describing its keyword arguments, registered
in the same call. Unknown names raise a ``KeyError`` listing the valid ones with a suggestion.

A third-party model declares, in its ``pyproject.toml``::

    [project.entry-points."tensormol.models"]
    mymodel = "mypackage.mymodel:ENTRY"

where ``ENTRY = RegistryEntry(build_mymodel, MyModelConfig)`` (or just the builder, when the model
publishes no config class).
"""

from __future__ import annotations

import difflib
import importlib
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar

__all__ = ["Registry", "RegistryEntry", "MODELS", "MODEL_ENTRY_POINT_GROUP", "suggest"]

T = TypeVar("T")

#: Entry-point group through which installed distributions publish models.
MODEL_ENTRY_POINT_GROUP = "tensormol.models"


def suggest(name: str, valid: list[str] | tuple[str, ...]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest valid name, or ``""``."""
    close = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class RegistryEntry(Generic[T]):
    """What a name stands for: the builder and the config class of its keyword arguments.

    Attributes
    ----------
    builder : callable
        Builds the object (a model builder is called as ``builder(config_or_mapping, /, *,
        atomic_numbers=..., **params)``).
    config_class : type or None
        Frozen dataclass (declared with :func:`tensormol.config.option`) of the builder's
        keyword arguments, used to validate YAML before anything is built; ``None`` when the
        builder publishes no schema.
    source : str
        Where the entry comes from: ``"built-in"``, ``"entry point <value> (<distribution>)"`` or
        ``"registered at run time"``.
    """

    builder: T
    config_class: type | None = None
    source: str = "registered at run time"


class Registry(Generic[T]):
    """A mapping from names to builders of one kind.

    Parameters
    ----------
    kind : str
        What the registry holds ("model", "kernel", ...); used in error messages.
    builtins : mapping, optional
        ``name -> (module, builder attribute, config class attribute or None)``: entries imported
        from ``module`` the first time ``name`` is looked up.
    entry_point_group : str, optional
        Entry-point group scanned (once, on the first lookup) for third-party entries. An entry
        point may load a :class:`RegistryEntry` or a bare builder. Built-in names take precedence.
    """

    def __init__(
        self,
        kind: str,
        *,
        builtins: Mapping[str, tuple[str, str, str | None]] | None = None,
        entry_point_group: str | None = None,
    ) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._builtins = dict(builtins or {})
        self._items: dict[str, RegistryEntry[T]] = {}
        self._entry_points: dict[str, metadata.EntryPoint] | None = None

    # ------------------------------------------------------------------ registration
    def register(self, name: str, builder: T | None = None, *, config: type | None = None) -> Any:
        """Register ``builder`` (with the ``config`` class of its arguments) under ``name``.

        Usable as a decorator when ``builder`` is omitted:
        ``@MODELS.register("mymodel", config=MyModelConfig)``.

        Raises
        ------
        ValueError
            If ``name`` is taken by another builder (built-in, entry point or earlier call).
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def _add(obj: T) -> T:
            self._add(name, RegistryEntry(obj, config))
            return obj

        if builder is None:
            return _add
        return _add(builder)

    def _add(self, name: str, entry: RegistryEntry[T]) -> None:
        old = self._items.get(name)
        same = old is not None and (old.builder, old.config_class) == (entry.builder,
                                                                       entry.config_class)
        if same:
            return  # the same registration twice (a module imported again): nothing to do
        if old is not None or name in self._builtins or name in self._discover():
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = entry

    # ------------------------------------------------------------------ lookup
    def entry(self, name: str) -> RegistryEntry[T]:
        """The :class:`RegistryEntry` of ``name``, importing it on first use.

        Raises
        ------
        KeyError
            For an unknown name, listing the valid names and suggesting the closest.
        ImportError
            If the module of a built-in or an entry point cannot be imported (the message names
            it).
        """
        if name in self._items:
            return self._items[name]
        if name in self._builtins:
            module, builder, config = self._builtins[name]
            mod = importlib.import_module(module)
            entry = RegistryEntry(getattr(mod, builder),
                                  getattr(mod, config) if config else None, "built-in")
        elif name in self._discover():
            entry = self._load_entry_point(name, self._discover()[name])
        else:
            valid = self.names()
            raise KeyError(
                f"unknown {self.kind} {name!r}{suggest(str(name), valid)}; "
                f"valid {self.kind}s are: {', '.join(valid) or '(none registered)'}"
            )
        self._items[name] = entry
        return entry

    def get(self, name: str) -> T:
        """The builder registered under ``name`` (see :meth:`entry` for the errors)."""
        return self.entry(name).builder

    def config_class(self, name: str) -> type | None:
        """The config class of ``name``'s keyword arguments, or ``None`` if it publishes none."""
        return self.entry(name).config_class

    def names(self) -> list[str]:
        """All valid names, sorted (nothing is imported to list them)."""
        return sorted(set(self._items) | set(self._builtins) | set(self._discover()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"

    # ------------------------------------------------------------------ entry points
    def _discover(self) -> dict[str, metadata.EntryPoint]:
        if self._entry_points is None:
            found: dict[str, metadata.EntryPoint] = {}
            if self.entry_point_group:
                for ep in metadata.entry_points(group=self.entry_point_group):
                    if ep.name in self._builtins:
                        warnings.warn(
                            f"entry point {ep.value!r} of group {self.entry_point_group!r} "
                            f"reuses the built-in {self.kind} name {ep.name!r}; it is ignored",
                            stacklevel=3,
                        )
                        continue
                    found.setdefault(ep.name, ep)
            self._entry_points = found
        return self._entry_points

    def _load_entry_point(self, name: str, ep: metadata.EntryPoint) -> RegistryEntry[T]:
        dist = getattr(getattr(ep, "dist", None), "name", None) or "unknown distribution"
        source = f"entry point {ep.value} ({dist})"
        try:
            obj = ep.load()
        except Exception as err:
            raise ImportError(
                f"{self.kind} {name!r}: cannot load {source} of group "
                f"{self.entry_point_group!r}: {type(err).__name__}: {err}"
            ) from err
        if isinstance(obj, RegistryEntry):
            return RegistryEntry(obj.builder, obj.config_class, source)
        if not callable(obj):
            raise TypeError(
                f"{self.kind} {name!r}: {source} must load a RegistryEntry or a callable "
                f"builder, got {type(obj).__name__}"
            )
        return RegistryEntry(obj, None, source)


#: The model zoo. Adding a built-in model: write its module (an :class:`EnergyModel` subclass, a
#: config class and a builder) and add its line here.
MODELS: Registry[Callable[..., Any]] = Registry(
    "model",
    builtins={
        "tensornet": ("tensormol.models._tensornet", "build_tensornet", "TensorNetConfig"),
        "gauntnet": ("tensormol.models._gaunt", "build_gauntnet", "GauntNetConfig"),
    },
    entry_point_group=MODEL_ENTRY_POINT_GROUP,
)
