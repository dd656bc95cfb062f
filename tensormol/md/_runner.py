"""Run MD with a tensormol model in OpenMM: build, minimize, integrate, report, checkpoint."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import openmm
import openmm.app as app
import torch
from openmm import unit

from tensormol.export._bundle import load_bundle
from tensormol.md._config import MDConfig
from tensormol.md._inputs import Structure, load_structure, select_atoms
from tensormol.md._reporters import (
    CheckpointWriter,
    DCDWriter,
    EnergyCSVReporter,
    ProgressReporter,
    degrees_of_freedom,
    restore_outputs,
)
from tensormol.md._systems import create_ml_system, create_mlmm_system

__all__ = ["MDResult", "build_simulation", "run_md"]


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


def _system_for(cfg: MDConfig, structure: Structure) -> tuple[openmm.System, list[int] | None]:
    bundle = load_bundle(cfg.model)
    if cfg.ml is None:
        return create_ml_system(structure, bundle, device=cfg.device, backend=cfg.backend), None
    ml_atoms = select_atoms(structure.topology, cfg.ml)
    system = create_mlmm_system(
        structure, bundle, ml_atoms, forcefield=cfg.forcefield, solvent=cfg.solvent,
        constraints=cfg.constraints, extra_forcefield=cfg.extra_forcefield,
        device=cfg.device, backend=cfg.backend,
    )
    return system, ml_atoms


def build_simulation(cfg: MDConfig, structure: Structure | None = None
                     ) -> tuple[app.Simulation, Structure, list[int] | None]:
    """The OpenMM Simulation of ``cfg`` (system, integrator, barostat, platform), positions set."""
    if cfg.compiled_ops:
        from tensormol._ext import load_extension

        status = load_extension()
        if not status.loaded:
            raise RuntimeError(f"compiled_ops is set but tensormol's compiled extension is "
                               f"unavailable: {status.reason}. Fix that or unset it (the torch "
                               f"routes compute the same, slower).")
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


def run_md(cfg: MDConfig, *, resume: bool = False, stop_at_step: int | None = None,
           out: IO[str] | None = None) -> MDResult:
    """Run ``cfg``: minimize (fresh runs), integrate to ``cfg.steps`` with reporters.

    Parameters
    ----------
    cfg : MDConfig
    resume : bool
        Continue from the last checkpoint in ``cfg.output``: state (positions, velocities, box,
        step, time, random-number state) from the checkpoint, CSV and DCD cut back to that step.
    stop_at_step : int, optional
        Stop at this step instead of ``cfg.steps`` (as a job killed there would; for time-limited
        jobs and tests). Outputs stay resumable.
    out : text stream
        Where progress lines go (default: stdout).

    Returns
    -------
    MDResult
    """
    if cfg.torch_threads is None:
        return _run_md(cfg, resume, stop_at_step, out)
    previous = torch.get_num_threads()
    torch.set_num_threads(cfg.torch_threads)
    try:  # the process-wide setting is the run's only while it runs
        return _run_md(cfg, resume, stop_at_step, out)
    finally:
        torch.set_num_threads(previous)


def _run_md(cfg: MDConfig, resume: bool, stop_at_step: int | None,
            out: IO[str] | None) -> MDResult:
    out = out if out is not None else sys.stdout
    folder = Path(cfg.output)
    folder.mkdir(parents=True, exist_ok=True)
    sim, structure, ml_atoms = build_simulation(cfg)
    minimized = None
    if resume:
        info = restore_outputs(folder)
        sim.loadCheckpoint(str(folder / "checkpoint.chk"))
        print(f"resuming from step {sim.currentStep} (checkpoint of step {info['step']})",
              file=out, flush=True)
    else:
        (folder / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1, default=str))
        if cfg.minimize or cfg.ensemble == "minimize":
            e0 = _energy(sim)
            sim.minimizeEnergy(tolerance=cfg.minimize_tolerance * unit.kilojoule_per_mole
                               / unit.nanometer, maxIterations=cfg.minimize_max_iterations)
            minimized = _energy(sim)
            print(f"minimized: {e0:.4f} -> {minimized:.4f} kJ/mol", file=out, flush=True)
            with open(folder / "minimized.pdb", "w") as fh:
                state = sim.context.getState(getPositions=True)
                app.PDBFile.writeFile(sim.topology, state.getPositions(), fh)
        sim.context.setVelocitiesToTemperature(cfg.temperature * unit.kelvin, cfg.seed)
    if cfg.ensemble == "minimize":
        return MDResult(0, sim.currentStep, float("nan"), 0.0, minimized, _energy(sim),
                        ml_atoms, folder, {"minimized": str(folder / "minimized.pdb")})

    dof = degrees_of_freedom(sim.system)
    progress = ProgressReporter(cfg.report_interval, cfg.steps, cfg.timestep, dof, out)
    csv = EnergyCSVReporter(folder / "energies.csv", cfg.report_interval, dof, append=resume)
    dcd = (DCDWriter(folder / "trajectory.dcd", cfg.trajectory_interval, sim, append=resume)
           if cfg.trajectory_interval else None)
    sim.reporters.extend([progress, csv] + ([dcd] if dcd else []))
    ckpt = None
    if cfg.checkpoint_interval:
        ckpt = CheckpointWriter(folder, cfg.checkpoint_interval, csv, dcd)
        sim.reporters.append(ckpt)  # last: after the rows of the same step
    start_step = sim.currentStep
    target = cfg.steps if stop_at_step is None else min(cfg.steps, stop_at_step)
    t0 = time.perf_counter()
    try:
        if target > start_step:
            sim.step(target - start_step)
    finally:
        csv.close()
        if dcd is not None:
            dcd.close()
    wall = time.perf_counter() - t0
    done = sim.currentStep - start_step
    speed = cfg.timestep * 1e-6 * done / wall * 86400.0 if wall > 0 and done else float("nan")
    files = {"energies": str(csv.path)}
    if dcd is not None:
        files["trajectory"] = str(dcd.path)
    if sim.currentStep >= cfg.steps:
        state = sim.context.getState(getPositions=True, enforcePeriodicBox=False)
        with open(folder / "final.pdb", "w") as fh:
            app.PDBFile.writeFile(sim.topology, state.getPositions(), fh)
        files["final"] = str(folder / "final.pdb")
    if ckpt is not None:
        files["checkpoint"] = str(ckpt.checkpoint_path)
    result = MDResult(done, sim.currentStep, speed, wall, minimized, _energy(sim), ml_atoms,
                      folder, files)
    print(f"done: {done} steps in {wall:.1f} s ({speed:.3f} ns/day); step {sim.currentStep}",
          file=out, flush=True)
    return result


def _jsonable(result: MDResult) -> dict[str, Any]:
    d = dict(result.__dict__)
    d["output"] = str(d["output"])
    return d
