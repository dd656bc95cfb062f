"""Run MD with a tensormol model in OpenMM: build, minimize, integrate, report, checkpoint."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import openmm
import openmm.app as app
from openmm import unit

from tensormol._threads import ThreadPolicy, choose_threads, thread_scope
from tensormol.export import GeometryError
from tensormol.export._bundle import load_bundle
from tensormol.md._config import MDConfig
from tensormol.md._drift import EnergyDrift, energy_drift
from tensormol.md._inputs import OpenMMStructure, load_structure, select_atoms
from tensormol.md._reporters import (
    CheckpointWriter,
    DCDWriter,
    EnergyCSVReporter,
    ProgressReporter,
    degrees_of_freedom,
    restore_outputs,
)
from tensormol.md._systems import create_ml_system, create_mlmm_system

__all__ = ["MDResult", "MDInterrupted", "build_simulation", "run_md", "thread_policy",
           "changed_settings", "OUTPUT_FILES", "RESUMABLE_KEYS"]


@dataclass
class MDResult:
    """What a run did. Energies kJ/mol, speed ns/day."""

    steps_done: int
    final_step: int
    ns_per_day: float
    wall_seconds: float
    minimized_energy: float | None
    final_potential_energy: float
    ml_atoms: list[int] | None
    output: Path
    files: dict[str, str] = field(default_factory=dict)
    #: The thread policy of the run, in words (also the first line of ``md.log``).
    threads: str = ""
    #: Energy drift of an NVE run (``None`` for other ensembles).
    drift: EnergyDrift | None = None


def _system_for(cfg: MDConfig, structure: OpenMMStructure
                ) -> tuple[openmm.System, list[int] | None]:
    bundle = load_bundle(cfg.model)
    if cfg.ml is None:
        # An explicit torch_threads holds inside the force calls too (else the callback applies
        # the same md policy per call).
        return create_ml_system(structure, bundle, device=cfg.device, backend=cfg.backend,
                                threads=cfg.torch_threads), None
    ml_atoms = select_atoms(structure.topology, cfg.ml)
    system = create_mlmm_system(
        structure, bundle, ml_atoms, forcefield=cfg.forcefield, solvent=cfg.solvent,
        constraints=cfg.constraints, extra_forcefield=cfg.extra_forcefield,
        device=cfg.device, backend=cfg.backend, threads=cfg.torch_threads,
    )
    return system, ml_atoms


def build_simulation(cfg: MDConfig, structure: OpenMMStructure | None = None
                     ) -> tuple[app.Simulation, OpenMMStructure, list[int] | None]:
    """The OpenMM Simulation of ``cfg`` (system, integrator, barostat, platform), positions set."""
    if structure is None:
        structure = load_structure(cfg.structure, cfg.coordinates)
    system, ml_atoms = _system_for(cfg, structure)
    temperature = cfg.temperature * unit.kelvin
    dt = cfg.timestep * unit.femtosecond
    if cfg.ensemble == "npt":
        if not system.usesPeriodicBoundaryConditions():
            raise ValueError("ensemble 'npt' needs a periodic system (an input with a box)")
        system.addForce(openmm.MonteCarloBarostat(cfg.pressure * unit.bar, temperature,
                                                  cfg.barostat_interval))
    if cfg.ensemble == "nve":
        integrator: openmm.Integrator = openmm.VerletIntegrator(dt)
    else:
        integrator = openmm.LangevinMiddleIntegrator(temperature, cfg.friction / unit.picosecond,
                                                     dt)
        integrator.setRandomNumberSeed(cfg.seed)
    for f in system.getForces():
        if isinstance(f, openmm.MonteCarloBarostat):
            f.setRandomNumberSeed(cfg.seed)
    platform = openmm.Platform.getPlatformByName(cfg.platform)
    props = {}
    if cfg.platform == "CPU" and cfg.threads is not None:
        props["Threads"] = str(cfg.threads)
    sim = app.Simulation(structure.topology, system, integrator, platform, props)
    if structure.box is not None and system.usesPeriodicBoundaryConditions():
        sim.context.setPeriodicBoxVectors(*structure.box)
    sim.context.setPositions(structure.positions)
    return sim, structure, ml_atoms


def _energy(sim: app.Simulation) -> float:
    return sim.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(
        unit.kilojoule_per_mole)


class MDInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run cleanly: a checkpoint of ``step`` was written; ``--resume`` goes on."""

    def __init__(self, step: int, folder: Path) -> None:
        super().__init__(f"stopped at step {step}; checkpoint written to {folder}; resume with "
                         "--resume")
        self.step = step
        self.folder = folder


#: Files a run writes into its folder (``--overwrite`` removes exactly these).
OUTPUT_FILES = ("config.json", "checkpoint.chk", "checkpoint.json", "energies.csv",
                "trajectory.dcd", "minimized.pdb", "final.pdb", "results.json", "md.log")

#: Settings a resumed run may change: how it runs, not what it simulates.
RESUMABLE_KEYS = frozenset({
    "steps", "output", "threads", "torch_threads", "compiled_ops", "platform", "device",
    "backend", "checkpoint_interval", "minimize", "minimize_tolerance",
    "minimize_max_iterations",
})
_PATH_KEYS = ("structure", "model", "coordinates")


def _comparable(cfg: dict[str, Any], key: str) -> Any:
    value = cfg.get(key)
    if key in _PATH_KEYS and isinstance(value, str):
        return str(Path(value).resolve())
    if key == "extra_forcefield" and value is not None:
        return [str(v) for v in value]
    return value


def changed_settings(old: dict[str, Any], new: MDConfig) -> list[str]:
    """``key: old -> new`` for every setting of ``new`` that a resume may not change."""
    now = new.to_dict()
    return [f"{k}: {old.get(k)!r} -> {now[k]!r}" for k in now
            if k not in RESUMABLE_KEYS and _comparable(old, k) != _comparable(now, k)]


def _check_folder(folder: Path, cfg: MDConfig, resume: bool, overwrite: bool) -> None:
    """Refuse to mix runs: an earlier run's outputs are resumed or removed, never overwritten
    silently, and a resume continues the same simulation."""
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other: resume continues the run "
                         f"in {folder}, overwrite discards it")
    existing = [name for name in OUTPUT_FILES if (folder / name).exists()]
    if resume:
        saved = folder / "config.json"
        if saved.is_file():
            diffs = changed_settings(json.loads(saved.read_text()), cfg)
            if diffs:
                raise ValueError(
                    f"--resume: the run in {folder} was started with other settings "
                    f"({'; '.join(diffs)}); resume with the original values, or start a new "
                    "run (--overwrite, or another --output)")
        return
    if existing and not overwrite:
        raise FileExistsError(
            f"output folder {folder} already holds a run ({', '.join(existing)}); continue it "
            "with --resume, replace it with --overwrite, or choose another --output")
    for name in existing:
        (folder / name).unlink()


class _Log:
    """Writes each line to the caller's stream and to the run's ``md.log``."""

    def __init__(self, out: IO[str], path: Path, append: bool) -> None:
        self.out = out
        self._file = open(path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115

    def write(self, text: str) -> int:
        self.out.write(text)
        return self._file.write(text)

    def flush(self) -> None:
        self.out.flush()
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _ml_atom_count(cfg: MDConfig, structure: OpenMMStructure) -> int:
    if cfg.ml is None:
        return structure.num_atoms
    return len(select_atoms(structure.topology, cfg.ml))


def thread_policy(cfg: MDConfig, structure: OpenMMStructure) -> ThreadPolicy:
    """The threads of a run: ``torch_threads``/``threads`` as configured, else tensormol's policy
    (one torch thread for ML regions up to ``SMALL_ML_ATOMS`` atoms; a pure-ML run of such a
    region also gives OpenMM's CPU platform one thread, as its integrator has nothing to split)."""
    n_ml = _ml_atom_count(cfg, structure)
    policy = choose_threads("md", n_atoms=n_ml, torch_threads=cfg.torch_threads,
                            openmm_threads=cfg.threads)
    if (policy.openmm_threads is None and cfg.platform == "CPU" and cfg.ml is None
            and policy.torch_threads == 1):
        policy = replace(policy, openmm_threads=1,
                         reason=policy.reason + "; pure ML: OpenMM integrator on one thread")
    return policy


def run_md(cfg: MDConfig, *, resume: bool = False, overwrite: bool = False,
           stop_at_step: int | None = None, out: IO[str] | None = None) -> MDResult:
    """Run ``cfg``: minimize (fresh runs), integrate to ``cfg.steps`` with reporters.

    The torch and OpenMM thread counts come from :func:`thread_policy` (reported in the log)
    and apply during the run only. Everything printed also goes to ``md.log`` in the output
    folder; ``results.json`` there summarises the run (with the energy drift of NVE runs).

    Parameters
    ----------
    cfg : MDConfig
    resume : bool
        Continue from the last checkpoint in ``cfg.output``: state (positions, velocities, box,
        step, time, random-number state) from the checkpoint, CSV and DCD cut back to that step.
        Settings that change the simulation (ensemble, timestep, temperature, ...) must equal
        the original run's; ``steps`` may grow.
    overwrite : bool
        Remove an earlier run's outputs from ``cfg.output`` first. Without it (and without
        ``resume``) a folder holding a run is refused.
    stop_at_step : int, optional
        Stop at this step instead of ``cfg.steps`` (as a job killed there would; for time-limited
        jobs and tests). Outputs stay resumable.
    out : text stream
        Where progress lines go (default: stdout).

    Returns
    -------
    MDResult

    Raises
    ------
    MDInterrupted
        On Ctrl-C (SIGINT), after writing a checkpoint of the last finished step.
    GeometryError
        When the model meets a configuration it cannot evaluate (overlapping atoms, a molecule
        falling apart), naming the MD step.
    """
    folder = Path(cfg.output)
    _check_folder(folder, cfg, resume, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    log = _Log(out if out is not None else sys.stdout, folder / "md.log", append=resume)
    try:
        if cfg.compiled_ops:
            from tensormol._ext import require_extension

            require_extension("compiled_ops")
        structure = load_structure(cfg.structure, cfg.coordinates)
        policy = thread_policy(cfg, structure)
        print(policy.describe(), file=log, flush=True)
        with thread_scope(policy):
            return _run_md(replace_threads(cfg, policy), structure, policy, resume,
                           stop_at_step, log)
    finally:
        log.close()


def replace_threads(cfg: MDConfig, policy: ThreadPolicy) -> MDConfig:
    """``cfg`` with OpenMM's thread count from ``policy`` (the config's own wins)."""
    if cfg.threads is None and policy.openmm_threads is not None:
        return replace(cfg, threads=policy.openmm_threads)
    return cfg


@contextmanager
def _sigint_flag() -> Iterator[list[bool]]:
    """While inside, the first Ctrl-C sets a flag (the run stops at the next step boundary);
    a second one interrupts at once."""
    flag = [False]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        flag[0] = True
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


#: Steps per ``Simulation.step`` call between checks for Ctrl-C.
_CHUNK = 20


@contextmanager
def _geometry_errors(sim: app.Simulation, minimizing: bool = False) -> Iterator[None]:
    """Turn a model's refusal of a configuration (which OpenMM wraps into an
    ``OpenMMException``) back into :class:`GeometryError`, naming the MD step."""
    try:
        yield
    except (openmm.OpenMMException, GeometryError) as err:
        geo = GeometryError.from_exception(err)
        if geo is None:
            raise
        if minimizing:
            raise GeometryError(f"{geo} (during the initial minimization; try --no-minimize "
                                "or check the structure)", kind=geo.kind, atoms=geo.atoms
                                ) from None
        raise geo.at_step(sim.context.getStepCount()) from None


def _integrate(sim: app.Simulation, target: int, stop: list[bool]) -> None:
    with _geometry_errors(sim):
        while sim.currentStep < target and not stop[0]:
            sim.step(min(_CHUNK, target - sim.currentStep))


def _run_md(cfg: MDConfig, structure: OpenMMStructure, policy: ThreadPolicy, resume: bool,
            stop_at_step: int | None, out: IO[str]) -> MDResult:
    folder = Path(cfg.output)
    sim, structure, ml_atoms = build_simulation(cfg, structure)
    minimized = None
    if resume:
        info = restore_outputs(folder)
        sim.loadCheckpoint(str(folder / "checkpoint.chk"))
        print(f"resuming from step {sim.currentStep} (checkpoint of step {info['step']})",
              file=out, flush=True)
    else:
        if cfg.minimize or cfg.ensemble == "minimize":
            e0 = _energy(sim)
            with _geometry_errors(sim, minimizing=True):
                sim.minimizeEnergy(tolerance=cfg.minimize_tolerance * unit.kilojoule_per_mole
                                   / unit.nanometer, maxIterations=cfg.minimize_max_iterations)
            minimized = _energy(sim)
            print(f"minimized: {e0:.4f} -> {minimized:.4f} kJ/mol", file=out, flush=True)
            with open(folder / "minimized.pdb", "w") as fh:
                state = sim.context.getState(getPositions=True)
                app.PDBFile.writeFile(sim.topology, state.getPositions(), fh)
        sim.context.setVelocitiesToTemperature(cfg.temperature * unit.kelvin, cfg.seed)
    _atomic_write(folder / "config.json", json.dumps(cfg.to_dict(), indent=1, default=str))
    if cfg.ensemble == "minimize":
        result = MDResult(0, sim.currentStep, float("nan"), 0.0, minimized, _energy(sim),
                          ml_atoms, folder, {"minimized": str(folder / "minimized.pdb")},
                          threads=policy.describe())
        _write_results(result)
        return result

    dof = degrees_of_freedom(sim.system)
    progress = ProgressReporter(cfg.report_interval, cfg.steps, cfg.timestep, dof, out)
    csv = EnergyCSVReporter(folder / "energies.csv", cfg.report_interval, dof, append=resume)
    dcd = (DCDWriter(folder / "trajectory.dcd", cfg.trajectory_interval, sim, append=resume)
           if cfg.trajectory_interval else None)
    sim.reporters.extend([progress, csv] + ([dcd] if dcd else []))
    # The writer also serves Ctrl-C, so it exists without periodic checkpoints too.
    ckpt = CheckpointWriter(folder, cfg.checkpoint_interval or 1, csv, dcd)
    if cfg.checkpoint_interval:
        sim.reporters.append(ckpt)  # last: after the rows of the same step
    start_step = sim.currentStep
    target = cfg.steps if stop_at_step is None else min(cfg.steps, stop_at_step)
    t0 = time.perf_counter()
    try:
        with _sigint_flag() as stop:
            _integrate(sim, target, stop)
        if stop[0]:
            ckpt.write(sim)
            raise MDInterrupted(sim.currentStep, folder)
    finally:
        csv.close()
        if dcd is not None:
            dcd.close()
    wall = time.perf_counter() - t0
    done = sim.currentStep - start_step
    dt = (cfg.timestep * unit.femtosecond).value_in_unit(unit.nanosecond)
    day = (1 * unit.day).value_in_unit(unit.second)
    speed = dt * done / wall * day if wall > 0 and done else float("nan")
    files = {"energies": str(csv.path)}
    if dcd is not None:
        files["trajectory"] = str(dcd.path)
    if sim.currentStep >= cfg.steps:
        state = sim.context.getState(getPositions=True, enforcePeriodicBox=False)
        with open(folder / "final.pdb", "w") as fh:
            app.PDBFile.writeFile(sim.topology, state.getPositions(), fh)
        files["final"] = str(folder / "final.pdb")
    if cfg.checkpoint_interval:
        files["checkpoint"] = str(ckpt.checkpoint_path)
    drift = None
    if cfg.ensemble == "nve":
        drift = _nve_drift(csv.path, sim.system.getNumParticles())
    result = MDResult(done, sim.currentStep, speed, wall, minimized, _energy(sim), ml_atoms,
                      folder, files, threads=policy.describe(), drift=drift)
    print(f"done: {done} steps in {wall:.1f} s ({speed:.3f} ns/day); step {sim.currentStep}",
          file=out, flush=True)
    if drift is not None:
        print(drift.describe(), file=out, flush=True)
    files["results"] = str(folder / "results.json")
    files["log"] = str(folder / "md.log")
    _write_results(result)
    return result


def _nve_drift(csv_path: Path, n_atoms: int) -> EnergyDrift | None:
    import numpy as np

    rows = np.genfromtxt(csv_path, delimiter=",", names=True, ndmin=1)
    if rows.size < 3:
        return None
    return energy_drift(rows["time_ps"], rows["total_kJ_mol"], n_atoms)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_results(result: MDResult) -> None:
    d = dict(result.__dict__)
    d["output"] = str(d["output"])
    d["drift"] = None if result.drift is None else result.drift.to_dict()
    _atomic_write(result.output / "results.json",
                  json.dumps(d, indent=1, default=lambda v: None if v != v else str(v)))
