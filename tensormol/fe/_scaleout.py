"""Independent legs in parallel on Dask (a local cluster, or a scheduler address).

Legs and edges of a network share nothing while they sample: each is a task that writes into its
own directory (so each resumes on its own), and the results are combined afterwards. Dask's
``distributed`` runs them: by default a ``LocalCluster`` of single-threaded worker processes on
this machine, or any running scheduler (``tcp://host:8786``) for a cluster. With one worker and
no scheduler the tasks run here, one after the other, with no Dask at all.

A task is a picklable top-level function with plain arguments (paths, dicts, numbers). Failures
are collected, not raised: one failed leg does not stop the network.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["run_tasks", "run_leg_files", "save_leg_files"]

Task = Callable[[], Any] | tuple


def _normalise(i: int, task: Any) -> tuple[Callable[..., Any], tuple, dict]:
    if callable(task):
        return task, (), {}
    if isinstance(task, tuple) and task and callable(task[0]) and len(task) <= 3:
        fn = task[0]
        args = tuple(task[1]) if len(task) > 1 else ()
        kwargs = dict(task[2]) if len(task) > 2 else {}
        return fn, args, kwargs
    raise TypeError(f"tasks[{i}] must be a callable or a tuple (fn, args[, kwargs]), got "
                    f"{type(task).__name__}")


def _call(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """Run one task; an exception comes back as a value, with the worker's traceback noted."""
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - collected for the caller, not raised mid-network
        err.add_note("task traceback:\n" + traceback.format_exc())
        return err


def _name(fn: Callable[..., Any], args: tuple) -> str:
    base = getattr(fn, "__name__", type(fn).__name__)
    return f"{base}({args[0]!r})" if args and isinstance(args[0], (str, Path)) else base


def run_tasks(tasks: Sequence[Task], scheduler: str | None = None, n_workers: int = 1, *,
              progress: bool = True) -> list[Any]:
    """Run independent tasks, serially or on Dask; return their results in order.

    Parameters
    ----------
    tasks : sequence
        Each a callable without arguments, or a tuple ``(fn, args)`` / ``(fn, args, kwargs)``.
        On Dask they must pickle: top-level functions, plain arguments.
    scheduler : str, optional
        Address of a running Dask scheduler (``"tcp://host:8786"``); ``n_workers`` is then
        ignored (the cluster has its own).
    n_workers : int
        Worker processes of the local cluster (one thread each); 1 without a scheduler runs the
        tasks in this process, one after the other.
    progress : bool
        Print a line on stderr as each task finishes.

    Returns
    -------
    list
        Per task, its return value or the exception it raised (with the traceback as a note).
    """
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"n_workers must be an integer >= 1, got {n_workers!r}")
    calls = [_normalise(i, t) for i, t in enumerate(tasks)]
    if not calls:
        return []
    t0 = time.perf_counter()

    def say(done: int, i: int, result: Any) -> None:
        if progress:
            state = "failed" if isinstance(result, BaseException) else "done"
            print(f"task {done}/{len(calls)} {state}: {_name(calls[i][0], calls[i][1])} "
                  f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)

    if scheduler is None and n_workers == 1:
        results = []
        for i, (fn, args, kwargs) in enumerate(calls):
            results.append(_call(fn, args, kwargs))
            say(i + 1, i, results[-1])
        return results
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as err:  # pragma: no cover - dask is part of the fe extra
        raise ImportError("parallel legs need Dask: pip install 'dask[distributed]' (or run "
                          "with n_workers=1)") from err
    cluster = None
    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        if scheduler is None:
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster)
        else:
            try:
                client = Client(scheduler, timeout="30s")
            except OSError as err:
                raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r} ({err}); "
                                 "check the address, or leave it out to run a local cluster"
                                 ) from err
        try:
            futures = [client.submit(_call, fn, args, kwargs, pure=False)
                       for fn, args, kwargs in calls]
            index = {f.key: i for i, f in enumerate(futures)}
            results: list[Any] = [None] * len(calls)
            for done, fut in enumerate(as_completed(futures), start=1):
                i = index[fut.key]
                try:
                    results[i] = fut.result()
                except Exception as err:  # noqa: BLE001 - lost worker, unpicklable result
                    results[i] = err
                say(done, i, results[i])
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()
        quiet.setLevel(level)
    return results


# ------------------------------------------------------------- a leg as a self-contained task
def save_leg_files(directory: str | os.PathLike, system: Any, positions: Any,
                   box_vectors: Any = None) -> dict[str, str]:
    """Serialise a leg's System (XML) and positions (npy, nm) so any worker can run it.

    Returns ``{"system_xml": path, "positions_npy": path}`` for :func:`run_leg_files`.
    """
    import openmm

    from tensormol.fe._sampler import _as_nm_array, atomic_write_bytes

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    xml_path, pos_path = d / "system.xml", d / "positions.npy"
    atomic_write_bytes(xml_path, openmm.XmlSerializer.serialize(system).encode())
    pos = _as_nm_array(positions, "positions", (system.getNumParticles(), 3))
    np.save(pos_path, pos)
    out = {"system_xml": str(xml_path), "positions_npy": str(pos_path)}
    if box_vectors is not None:
        box_path = d / "box.npy"
        np.save(box_path, _as_nm_array(box_vectors, "box_vectors", (3, 3)))
        out["box_npy"] = str(box_path)
    return out


def run_leg_files(system_xml: str, positions_npy: str, states: Sequence[Mapping[str, float]],
                  settings: Mapping[str, Any], directory: str, name: str = "leg", *,
                  box_npy: str | None = None, n_slices: int = 10) -> dict[str, Any]:
    """Sample and analyse one leg from files: a Dask-friendly task (plain arguments only).

    Parameters
    ----------
    system_xml, positions_npy : str
        Files written by :func:`save_leg_files`.
    states : sequence of dict
        The thermodynamic states (context parameters).
    settings : dict
        Keyword arguments of :class:`SamplerSettings`.
    directory, name : str
        Where the leg writes (``directory/name``); it resumes from there.

    Returns
    -------
    dict
        ``{"name", "estimate": LegEstimate.to_dict(), "n_iterations"}``.
    """
    import openmm

    from tensormol.fe._analysis import analyze_leg
    from tensormol.fe._sampler import ReplicaExchange, SamplerSettings

    system = openmm.XmlSerializer.deserialize(Path(system_xml).read_text())
    positions = np.load(positions_npy)
    box = np.load(box_npy) if box_npy else None
    rex = ReplicaExchange(system, positions, states, SamplerSettings(**settings), directory,
                          name=name, box_vectors=box, progress=False)
    res = rex.run()
    est = analyze_leg(res.u_kln, res.temperature_K, n_slices=n_slices)
    return {"name": name, "estimate": est.to_dict(), "n_iterations": res.n_iterations}
