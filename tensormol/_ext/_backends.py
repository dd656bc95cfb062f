"""The kernel registry: one place that decides which implementation of an op runs, and says so.

Every op with more than one implementation owns a :class:`Kernel` and registers its backends on
it (the reference torch twin, compiled C++/CUDA kernels, fused autograd Functions, the traceable
twin), each with a capability predicate. A module resolves its backend once, at construction,
with :meth:`Kernel.resolve`, stores the :class:`Resolution` and passes it at every call; plain
functions resolve per call, cached by everything the choice depends on. Each distinct resolution
is logged as one line on the ``tensormol.kernels`` logger, e.g.::

    gaunt_product -> 'cpp' (requested 'auto'): compiled extension loaded at resolution; ...

Rules, the same for every op:

* ``"auto"`` takes the op's rule (default: the first registered backend usable in this
  process). It never starts a build of the compiled extension: a compiled backend is usable
  only once the extension is loaded, and a resolution made before that keeps its choice.
* An explicit name runs that backend or raises, naming the reason and the valid names (a
  compiled backend loads the extension first, which may compile it).
* A backend that cannot take a call's inputs (device, dtype) runs the fallback recorded at
  resolution time (printed in the same log line) when the request was ``"auto"``; an explicit
  request raises instead.
* While ``torch.jit.trace`` records, every op runs its traceable backend (a traced graph cannot
  hold custom autograd Functions or compiled ops that have no TorchScript schema);
  :func:`tracing` is the one place that asks.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import torch

from ._loader import ext_status, load_extension

__all__ = ["Backend", "Kernel", "Resolution", "extension_backend", "extension_key", "kernels",
           "tracing"]

_log = logging.getLogger("tensormol.kernels")

#: Modules that define the built-in kernels, imported on the first lookup by name.
_BUILTIN_MODULES = (
    "tensormol._ext._ops",
    "tensormol.ops._scatter",
    "tensormol.ops._neighbors",
    "tensormol.ops._gaunt",
    "tensormol.ops._gaunt_grid",
    "tensormol.models._tensornet_ops",
    "tensormol.models._irreducible",
    "tensormol.models._pairs",
    "tensormol.so3._sh",
)
_KERNELS: dict[str, Kernel] = {}
_lock = threading.Lock()


def tracing() -> bool:
    """True while ``torch.jit.trace`` records (the traceable backends run then)."""
    return torch.jit.is_tracing()


def _always(device: torch.device, dtype: torch.dtype) -> bool:
    return True


def _usable() -> str | None:
    return None


def _ext_unloaded() -> str | None:
    status = ext_status()
    return None if status.loaded else f"compiled extension not loaded ({status.reason})"


@dataclass(frozen=True)
class Backend:
    """One implementation of an op.

    Attributes
    ----------
    name : str
        Name users pass as ``backend=...``.
    fn : callable or None
        The implementation (None where the op dispatches on the name itself).
    unavailable : callable
        ``() -> str | None``: why it cannot run in this process (None when it can).
    supports : callable
        ``(device, dtype) -> bool``: whether it takes inputs of that device and dtype.
    traceable : bool
        Made of torch ops that ``torch.jit.trace`` records.
    load : callable or None
        Run before an explicit request is checked (loading the compiled extension).
    doc : str
        One line: what it is and what it needs.
    """

    name: str
    fn: Callable[..., Any] | None
    unavailable: Callable[[], str | None] = _usable
    supports: Callable[[torch.device, torch.dtype], bool] = _always
    traceable: bool = False
    load: Callable[[], Any] | None = None
    doc: str = ""


@dataclass(frozen=True)
class Resolution:
    """The outcome of one resolution: what runs, why, and what runs instead when it cannot.

    Attributes
    ----------
    op, backend, requested, reason : str
        The op, the backend chosen, what was asked for, why.
    fallback : str or None
        Backend for inputs ``backend`` does not support (only for ``"auto"`` requests).
    traced : str
        Backend that runs while ``torch.jit.trace`` records.
    """

    op: str
    backend: str
    requested: str
    reason: str
    fallback: str | None = None
    traced: str = ""

    def line(self) -> str:
        """The log line of this resolution."""
        text = f"{self.op} -> {self.backend!r} (requested {self.requested!r}): {self.reason}"
        if self.fallback is not None and self.fallback != self.backend:
            text += f"; inputs it does not take run {self.fallback!r}"
        if self.traced != self.backend:
            text += f"; traced graphs run {self.traced!r}"
        return text

    def __str__(self) -> str:
        return self.backend


#: An "auto" rule: ``(kernel, context) -> (backend, reason, fallback)``.
AutoRule = Callable[["Kernel", dict], tuple[str, str, "str | None"]]


@dataclass
class Kernel:
    """An op and its registered backends, in preference order.

    Parameters
    ----------
    op : str
        Name of the op (as logged).
    traced : str
        Name of the backend that runs while tracing (registered later, traceable).
    auto : callable, optional
        The op's "auto" rule (see :data:`AutoRule`); default: the first usable backend.
    warn_unavailable : tuple of str
        Backends whose absence is worth a warning when "auto" skips them (an installed
        dependency that fails to import), not an info line (an opt-in extension not loaded).
    """

    op: str
    traced: str
    auto: AutoRule | None = None
    warn_unavailable: tuple[str, ...] = ()
    _backends: dict[str, Backend] = field(default_factory=dict, repr=False)
    _cache: dict[Hashable, Resolution] = field(default_factory=dict, repr=False)
    _default: Resolution | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        with _lock:
            if self.op in _KERNELS:
                raise ValueError(f"kernel {self.op!r} is already registered")
            _KERNELS[self.op] = self

    # ------------------------------------------------------------------ registration
    def register(self, name: str, fn: Callable[..., Any] | None, *,
                 unavailable: Callable[[], str | None] = _usable,
                 supports: Callable[[torch.device, torch.dtype], bool] = _always,
                 traceable: bool = False, load: Callable[[], Any] | None = None,
                 doc: str = "") -> None:
        """Register backend ``name`` (after the ones already registered in preference order).

        ``fn`` is None for an op that dispatches on the chosen name itself.
        """
        if name in self._backends or name == "auto":
            raise ValueError(f"{self.op}: backend {name!r} is already registered")
        self._backends[name] = Backend(name, fn, unavailable, supports, traceable, load, doc)

    def names(self) -> tuple[str, ...]:
        """Registered backends, in preference order."""
        return tuple(self._backends)

    def usable(self) -> tuple[str, ...]:
        """Backends usable in this process now."""
        return tuple(n for n, b in self._backends.items() if b.unavailable() is None)

    def backend(self, name: str) -> Backend:
        """The registered backend ``name``."""
        return self._backends[name]

    # ------------------------------------------------------------------ resolution
    def _check_name(self, requested: str) -> None:
        if not isinstance(requested, str) or (requested != "auto"
                                              and requested not in self._backends):
            valid = ", ".join(repr(n) for n in ("auto", *self._backends))
            raise ValueError(f"backend must be one of {valid} for {self.op}, got {requested!r}")

    def resolve(self, requested: str | Resolution = "auto", context: dict | None = None, *,
                log: bool = True) -> Resolution:
        """Decide which backend runs for ``requested`` ("auto" or a registered name).

        Parameters
        ----------
        requested : str or Resolution
            A resolution is returned as it is (already decided).
        context : dict, optional
            What the op's "auto" rule needs (degrees, device, dtype, ...).
        log : bool
            Log the resolution (one line on ``tensormol.kernels``).

        Raises
        ------
        ValueError
            Unknown name.
        RuntimeError
            An explicit backend that cannot run in this process (with the reason).
        """
        if isinstance(requested, Resolution):
            if requested.op != self.op:
                raise ValueError(f"a resolution of {requested.op!r} was passed to {self.op}")
            return requested
        self._check_name(requested)
        ctx = context or {}
        if requested == "auto":
            if self.auto is not None:
                chosen, reason, fallback = self.auto(self, ctx)
            else:
                chosen, reason, fallback = self._first_usable()
        else:
            b = self._backends[requested]
            if b.load is not None:
                b.load()
            why = b.unavailable()
            if why is not None:
                raise RuntimeError(
                    f"backend {requested!r} of {self.op} was requested but cannot run here: {why}."
                    f" Usable: {', '.join(repr(n) for n in ('auto', *self.usable()))}")
            chosen, reason, fallback = requested, "explicit request", None
        b = self._backends[chosen]
        if b.traceable:
            traced = chosen
        elif fallback is not None and self._backends[fallback].traceable:
            traced = fallback
        else:
            traced = self.traced
        if b.supports is _always:
            fallback = None  # takes every input: no fallback to record
        res = Resolution(self.op, chosen, requested, reason, fallback, traced)
        if log:
            skipped = requested == "auto" and any(
                n != chosen and self._backends[n].unavailable() is not None
                for n in self.warn_unavailable)
            _log.log(logging.WARNING if skipped else logging.INFO, "%s", res.line())
        return res

    def resolve_cached(self, requested: str | Resolution, key: Hashable = (),
                       context: dict | None = None) -> Resolution:
        """:meth:`resolve` for per-call use: one resolution (and one log line) per distinct
        ``(requested, key)``; ``key`` must hold everything the rule reads (device, degrees, and
        whether the extension is loaded)."""
        if isinstance(requested, Resolution):
            return self.resolve(requested)
        full = (requested, key)
        res = self._cache.get(full)
        if res is None:
            res = self._cache[full] = self.resolve(requested, context)
        return res

    def clear_cache(self) -> None:
        """Forget the per-call resolutions (the next call resolves and logs again)."""
        self._cache.clear()
        self._default = None

    def _first_usable(self) -> tuple[str, str, str | None]:
        skipped = []
        for name, b in self._backends.items():
            why = b.unavailable()
            if why is None:
                reason = "first usable backend" + (
                    f" ({'; '.join(skipped)})" if skipped else "")
                # Inputs the chosen one does not take run the traceable twin (the reference).
                return name, reason, self.traced
            skipped.append(f"{name!r} skipped: {why}")
        raise RuntimeError(f"no backend of {self.op} can run here: {'; '.join(skipped)}")

    # ------------------------------------------------------------------ dispatch
    def select(self, res: Resolution, device: torch.device, dtype: torch.dtype) -> Backend:
        """The backend that runs a call with inputs on ``device`` of ``dtype``."""
        if tracing():
            return self._backends[res.traced]
        b = self._backends[res.backend]
        if b.supports(device, dtype):
            return b
        if res.fallback is not None:
            return self._backends[res.fallback]
        raise ValueError(
            f"backend {res.backend!r} of {self.op} does not take {dtype} tensors on {device}"
            f" ({b.doc}); use backend='auto' or another of "
            f"{', '.join(repr(n) for n in self._backends)}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the default resolution (``"auto"``, resolved and logged on the first call) or,
        while tracing, the traceable backend. For ops without device or dtype limits."""
        if tracing():
            return self._backends[self.traced].fn(*args, **kwargs)
        res = self._default
        if res is None:
            res = self._default = self.resolve("auto")
        return self._backends[res.backend].fn(*args, **kwargs)

    def run(self, backend: str | Resolution, *args: Any, **kwargs: Any) -> Any:
        """Run ``backend`` (a name or a resolution) on ``args``; the traceable one when tracing."""
        if tracing():
            return self._backends[self.traced].fn(*args, **kwargs)
        if isinstance(backend, Resolution):
            return self._backends[backend.backend].fn(*args, **kwargs)
        return self._backends[self.resolve_cached(backend).backend].fn(*args, **kwargs)


def extension_backend() -> dict[str, Any]:
    """Keyword arguments of :meth:`Kernel.register` for a backend that needs the compiled
    extension: unusable until it is loaded; an explicit request loads it."""
    return {"unavailable": _ext_unloaded, "load": load_extension}


def extension_key(device: torch.device | None = None) -> tuple:
    """Cache key part for per-call resolutions that involve the extension: the device type and
    what is known about the extension now (a later load gives a new, logged resolution)."""
    status = ext_status()
    return (None if device is None else device.type, status.loaded, status.cuda)


def kernels() -> dict[str, Kernel]:
    """Every registered kernel by op name; the built-in ones are found on this first lookup."""
    for name in _BUILTIN_MODULES:
        importlib.import_module(name)
    return dict(sorted(_KERNELS.items()))
