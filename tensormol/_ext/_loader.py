"""Compile-on-demand loader for the C++/CUDA sources shipped in ``tensormol/_ext/csrc/``, with a
once-per-process capability probe."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["ExtensionStatus", "ExtensionUnavailableError", "build_prerequisites", "ext_status",
           "load_extension", "require_extension", "sources_dir"]

_log = logging.getLogger("tensormol.ext")
_EXT_NAME = "tensormol_ext"
_CPU_SOURCES = ("segment_sum.cpp", "gaunt_grid.cpp")
_CUDA_SOURCES = ("segment_sum_kernel.cu", "segment_sum_cuda.cpp")


@dataclass(frozen=True)
class ExtensionStatus:
    """What is known about the compiled extension in this process.

    Attributes
    ----------
    loaded : bool
        The ops are registered under ``torch.ops.tensormol_ext``.
    cuda : bool
        The CUDA kernels were compiled in.
    reason : str
        Why it is not loaded (or where it was loaded from).
    """

    loaded: bool
    cuda: bool
    reason: str


class _Loader:
    """Holds the single load attempt; a lock makes concurrent first calls safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.status = ExtensionStatus(False, False, "not built in this process (opt-in)")

    def load(self, verbose: bool = False) -> ExtensionStatus:
        with self._lock:
            if self.status.loaded:
                return self.status
            self.status = self._build(verbose)
            _log.info("tensormol compiled extension: %s", self.status.reason)
            return self.status

    @staticmethod
    def _build(verbose: bool) -> ExtensionStatus:
        src = sources_dir()
        if src is None:
            return ExtensionStatus(False, False, "C++ sources not found (tensormol/_ext/csrc is "
                                   "missing from this install; set TENSORMOL_EXT_SOURCES)")
        missing = build_prerequisites()
        if missing is not None:
            return ExtensionStatus(False, False, missing)
        from torch.utils import cpp_extension

        with_cuda = torch.cuda.is_available() and cpp_extension.CUDA_HOME is not None
        sources = [str(src / f) for f in _CPU_SOURCES]
        # Built on the machine that runs it (JIT), so the host ISA (AVX2/AVX-512) is fair game.
        flags = ["-O3", "-march=native", "-fopenmp"]  # at::parallel_for is OpenMP in ATen
        if with_cuda:
            sources += [str(src / f) for f in _CUDA_SOURCES]
            flags.append("-DTENSORMOL_WITH_CUDA")
        try:
            module = cpp_extension.load(
                name=_EXT_NAME + ("_cuda" if with_cuda else "_cpu"),
                sources=sources,
                extra_cflags=flags,
                extra_ldflags=["-fopenmp"],
                extra_cuda_cflags=["-O3", "-DTENSORMOL_WITH_CUDA"] if with_cuda else None,
                verbose=verbose,
            )
        except Exception as err:  # a failed compile must be reported, not hidden
            return ExtensionStatus(False, False, f"build failed: {type(err).__name__}: {err}")
        return ExtensionStatus(True, bool(module.has_cuda()), f"loaded from {module.__file__}")


@functools.cache
def build_prerequisites() -> str | None:
    """Why the extension cannot be compiled here (no C++ compiler, no ninja), or None.

    Probed once per process: the compiler is the one torch's JIT builder runs
    (``torch.utils.cpp_extension.get_cxx_compiler()``: ``$CXX``, else ``c++``), looked up on
    ``PATH``.
    """
    from torch.utils.cpp_extension import get_cxx_compiler

    cxx = get_cxx_compiler()
    if shutil.which(cxx.split()[0] if cxx.strip() else "c++") is None:
        return f"no C++ compiler: {cxx!r} is not on PATH (install one, or set CXX)"
    if shutil.which("ninja") is None and not _ninja_in_python():
        return "ninja is not installed (pip install ninja)"
    return None


def _ninja_in_python() -> bool:
    try:
        import ninja  # noqa: F401
    except ImportError:
        return False
    return True


_LOADER = _Loader()


def sources_dir() -> Path | None:
    """Directory holding the C++/CUDA sources, or None when they are not shipped."""
    env = os.environ.get("TENSORMOL_EXT_SOURCES")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parent / "csrc")  # shipped as package data
    for c in candidates:
        if (c / _CPU_SOURCES[0]).is_file():
            return c
    return None


def load_extension(verbose: bool = False) -> ExtensionStatus:
    """Compile (first time, ~1 min) or load (cached) the extension; return its status.

    Never raises for a missing compiler or failed build: the status says why, and callers that
    asked explicitly for ``backend="cpp"`` turn that into an error.
    """
    return _LOADER.load(verbose=verbose)


def ext_status() -> ExtensionStatus:
    """Status without triggering a build."""
    return _LOADER.status


class ExtensionUnavailableError(RuntimeError, ValueError):
    """The compiled extension was required by a setting but cannot be loaded here.

    A ``RuntimeError`` (the environment lacks something) and a ``ValueError`` (the setting asks
    for what this machine cannot provide), so the CLI reports it as one actionable line.
    """


def require_extension(option: str) -> ExtensionStatus:
    """Load the extension for ``option`` (the setting that asks for it) or fail clearly.

    Parameters
    ----------
    option : str
        Name of the setting, e.g. ``"training.compiled_ops"``, quoted in the error.

    Raises
    ------
    ExtensionUnavailableError
        With the reason (no compiler, no ninja, failed build, sources missing).
    """
    status = load_extension()
    if not status.loaded:
        raise ExtensionUnavailableError(
            f"{option} is set but tensormol's compiled extension is unavailable: "
            f"{status.reason}. Fix that or unset {option} (the torch routes compute the same, "
            f"slower).")
    return status
