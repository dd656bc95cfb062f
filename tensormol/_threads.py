"""One thread policy for every workload: how many threads, how idle threads wait, for how long.

Why: torch's default (one intra-op thread per core, OpenMP threads spinning between parallel
regions) collapses as soon as another process uses a core. Each small op of a 9-atom molecule
then waits for a descheduled thread: ``tensormol md`` on ethanol fell from 9.8 to 0.08 ns/day
with one busy core beside it. Work too small to split runs on one thread; work that splits
(training and evaluation batches, large ML regions) uses the cores this process may run on; and
OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE``) instead of spinning on a core
someone else needs.

The OpenMP wait policy is read once, when the OpenMP runtime loads (on ``import torch``), so it
must be in the environment before that. The ``tensormol`` command does it first thing
(:func:`configure_openmp`); a Python program sets it before importing torch::

    import tensormol._threads as threads
    threads.configure_openmp()      # or: export OMP_WAIT_POLICY=PASSIVE in the shell
    import torch

Thread counts are scoped: :func:`thread_scope` sets them for a block and restores the previous
values afterwards, so a library call never leaves the process changed.

``TENSORMOL_NUM_THREADS`` (an integer, or ``torch`` for torch's own default) overrides the
torch thread count that :func:`choose_threads` picks, for every workload.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = [
    "WORKLOADS",
    "SMALL_ML_ATOMS",
    "ENV_NUM_THREADS",
    "ThreadPolicy",
    "available_cores",
    "idle_cores",
    "openmp_loaded",
    "configure_openmp",
    "openmp_wait_policy",
    "choose_threads",
    "thread_scope",
]

#: Workloads :func:`choose_threads` knows. "md": an ML region evaluated once per MD step
#: (PythonForce, openmm-ml, ASE); "inference": batched evaluation of many structures;
#: "train": optimisation on batches; "eval": evaluation of a data set.
WORKLOADS = ("md", "inference", "train", "eval")

#: ML regions up to this many atoms run on one torch thread: their ops (a few thousand per
#: step, each on tensors of a few hundred edges) are too small to split; splitting them only
#: adds a barrier per op, and a barrier waits for the slowest thread.
SMALL_ML_ATOMS = 256

#: Environment variable overriding the torch thread count of every workload.
ENV_NUM_THREADS = "TENSORMOL_NUM_THREADS"

# Environment of a passive OpenMP wait: GNU (libgomp, torch's Linux wheels) and LLVM/Intel
# runtimes read OMP_WAIT_POLICY; libgomp's GOMP_SPINCOUNT=0 also removes its short spin.
_PASSIVE_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0"}
_OPENMP_LIBS = ("libgomp", "libiomp", "libomp")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which a job scheduler may restrict)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def idle_cores() -> int:
    """Available cores minus the machine's recent load (1-minute average), at least 1.

    Batched work splits over this many threads: a thread on a core another process keeps busy
    makes every parallel region wait for it (measured: 2 threads on a loaded 2-core machine
    ran ~20x slower than 1 for small TensorNet steps).
    """
    cores = available_cores()
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on this platform
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))


def openmp_loaded() -> bool:
    """Whether an OpenMP runtime is already loaded in this process (it then has read its
    environment, and changing ``OMP_*`` variables has no effect on it)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            maps = fh.read()
    except OSError:  # not Linux: judge by whether torch is imported
        import sys

        return "torch" in sys.modules
    return any(lib in maps for lib in _OPENMP_LIBS)


def configure_openmp(environ: MutableMapping[str, str] | None = None) -> bool:
    """Make OpenMP threads wait passively, if it is not too late and the user chose nothing.

    Sets ``OMP_WAIT_POLICY=PASSIVE`` and ``GOMP_SPINCOUNT=0`` in ``environ`` (default
    ``os.environ``) where they are unset, but only while no OpenMP runtime is loaded: the
    runtime reads them once at load (``import torch``). Values the user set are kept.
    Child processes (data loaders, DDP workers) inherit the setting.

    Returns
    -------
    bool
        True if the OpenMP runtime will wait passively (set here, or already set by the user
        before it loaded); False if it was loaded before this call with another policy.
    """
    env = os.environ if environ is None else environ
    if openmp_loaded():
        return env.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
    for key, value in _PASSIVE_ENV.items():
        env.setdefault(key, value)
    return env.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"


def openmp_wait_policy() -> str:
    """The OpenMP wait policy of this process, in words, for run logs."""
    policy = os.environ.get("OMP_WAIT_POLICY")
    spin = os.environ.get("GOMP_SPINCOUNT")
    if policy is None:
        return "active (OMP_WAIT_POLICY unset: OpenMP threads spin between parallel regions)"
    return f"{policy.lower()} (OMP_WAIT_POLICY={policy}" + (
        f", GOMP_SPINCOUNT={spin})" if spin is not None else ")")


@dataclass(frozen=True)
class ThreadPolicy:
    """Threads of one workload.

    Attributes
    ----------
    workload : str
        One of :data:`WORKLOADS`.
    torch_threads : int or None
        torch intra-op threads (``None``: leave torch's setting as it is).
    openmm_threads : int or None
        Threads of OpenMM's CPU platform (``None``: OpenMM's default, all cores). Only MD sets it.
    reason : str
        Why these counts, for the run log.
    """

    workload: str
    torch_threads: int | None
    openmm_threads: int | None = None
    reason: str = ""

    def describe(self) -> str:
        """One log line: the counts, why, and how OpenMP threads wait."""
        torch_part = ("torch's default" if self.torch_threads is None
                      else str(self.torch_threads))
        parts = [f"threads ({self.workload}): torch {torch_part}"]
        if self.workload == "md":
            parts.append("OpenMM CPU " + ("default" if self.openmm_threads is None
                                          else str(self.openmm_threads)))
        text = ", ".join(parts)
        if self.reason:
            text += f" [{self.reason}]"
        return (f"{text}; {available_cores()} core(s) available; OpenMP wait "
                f"{openmp_wait_policy()}")


def _env_override() -> int | None | str:
    raw = os.environ.get(ENV_NUM_THREADS)
    if raw is None or not raw.strip():
        return "unset"
    if raw.strip().lower() == "torch":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{ENV_NUM_THREADS} must be a positive integer or 'torch', got {raw!r}")
    return value


def choose_threads(workload: str, *, n_atoms: int | None = None,
                   torch_threads: int | None = None,
                   openmm_threads: int | None = None) -> ThreadPolicy:
    """The thread counts of a workload.

    Parameters
    ----------
    workload : {"md", "inference", "train", "eval"}
    n_atoms : int, optional
        Atoms of the ML region (``"md"``): up to :data:`SMALL_ML_ATOMS` run on one torch
        thread, larger regions on the cores not busy with other processes (:func:`idle_cores`).
    torch_threads, openmm_threads : int, optional
        Explicit counts (a flag or config value); they win over the rule and over
        ``TENSORMOL_NUM_THREADS``.

    Returns
    -------
    ThreadPolicy
        For ``"md"`` of a small ML region with no MM atoms the caller may also pin OpenMM to one
        thread (``openmm_threads``); this function sets it only when ``openmm_threads`` is given.
    """
    if workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {', '.join(WORKLOADS)}, got {workload!r}")
    for name, value in (("torch_threads", torch_threads), ("openmm_threads", openmm_threads)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    cores = available_cores()
    if torch_threads is not None:
        return ThreadPolicy(workload, torch_threads, openmm_threads, "as requested")
    env = _env_override()
    if env != "unset":
        return ThreadPolicy(workload, env, openmm_threads,  # type: ignore[arg-type]
                            f"{ENV_NUM_THREADS}={os.environ[ENV_NUM_THREADS]}")
    if workload == "md":
        if n_atoms is None:
            raise ValueError("choose_threads('md') needs n_atoms, the size of the ML region")
        if n_atoms <= SMALL_ML_ATOMS:
            return ThreadPolicy(workload, 1, openmm_threads,
                                f"ML region of {n_atoms} atoms <= {SMALL_ML_ATOMS}: too small "
                                "to split")
        return ThreadPolicy(workload, idle_cores(), openmm_threads,
                            f"ML region of {n_atoms} atoms > {SMALL_ML_ATOMS}: split over the "
                            "available cores not busy with other processes")
    idle = idle_cores()
    why = ("batched work: all available cores" if idle == cores else
           f"batched work: the {idle} of {cores} available cores not busy with other processes")
    return ThreadPolicy(workload, idle, openmm_threads, why)


@contextmanager
def thread_scope(policy: ThreadPolicy | int | None) -> Iterator[ThreadPolicy | int | None]:
    """Apply a policy's torch thread count inside the block and restore the previous count.

    ``policy`` may be a :class:`ThreadPolicy`, a thread count, or ``None`` (no change).
    """
    import torch

    n = policy.torch_threads if isinstance(policy, ThreadPolicy) else policy
    if n is None:
        yield policy
        return
    previous = torch.get_num_threads()
    if n != previous:
        torch.set_num_threads(int(n))
    try:
        yield policy
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
