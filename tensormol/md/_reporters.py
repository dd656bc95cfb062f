"""OpenMM reporters of ``tensormol md``: progress line, CSV of energies, DCD, checkpoints.

Each reporter owns its file and can report its size at a checkpoint, so that ``--resume`` cuts
every output back to exactly the checkpointed step before appending.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from pathlib import Path
from typing import IO, Any

import openmm
import openmm.app as app
from openmm import unit

from tensormol.units import BOLTZMANN_EV_PER_K, EV_TO_KJ_PER_MOL

__all__ = [
    "degrees_of_freedom",
    "ProgressReporter",
    "EnergyCSVReporter",
    "DCDWriter",
    "CheckpointWriter",
    "restore_outputs",
    "CSV_COLUMNS",
]

#: Gas constant R in kJ/mol/K, from units.py's Boltzmann constant.
_R_KJ_PER_MOL_K = BOLTZMANN_EV_PER_K * EV_TO_KJ_PER_MOL

CSV_COLUMNS = ("step", "time_ps", "potential_kJ_mol", "kinetic_kJ_mol", "total_kJ_mol",
               "temperature_K", "volume_nm3")


def degrees_of_freedom(system: openmm.System) -> int:
    """3 per massive particle, minus constraints, minus 3 with a CMMotionRemover."""
    dof = sum(3 for i in range(system.getNumParticles())
              if system.getParticleMass(i) > 0 * unit.dalton)
    dof -= sum(1 for i in range(system.getNumConstraints())
               if system.getParticleMass(system.getConstraintParameters(i)[0]) > 0 * unit.dalton
               and system.getParticleMass(system.getConstraintParameters(i)[1])
               > 0 * unit.dalton)
    if any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces()):
        dof -= 3
    return max(dof, 1)


class _Reporter:
    interval: int

    def describeNextReport(self, simulation: app.Simulation) -> tuple:  # noqa: N802 (OpenMM API)
        steps = self.interval - simulation.currentStep % self.interval
        return (steps, self._positions, False, False, self._energies, False)

    _positions = False
    _energies = True


class ProgressReporter(_Reporter):
    """One line every ``interval`` steps: step, time, ns/day, ETA, potential/total energy, T."""

    def __init__(self, interval: int, total_steps: int, timestep_fs: float, dof: int,
                 out: IO[str] | None = None) -> None:
        self.interval = int(interval)
        self.total_steps = int(total_steps)
        self.timestep_fs = float(timestep_fs)
        self.dof = int(dof)
        self.out = out if out is not None else sys.stdout
        self._t0: float | None = None
        self._step0 = 0
        #: ns/day of the last report (wall clock since the first report of this process).
        self.ns_per_day = float("nan")

    def report(self, simulation: app.Simulation, state: openmm.State) -> None:
        now = time.perf_counter()
        step = simulation.currentStep
        if self._t0 is None:
            self._t0, self._step0 = now, step
        done = step - self._step0
        elapsed = now - self._t0
        if done > 0 and elapsed > 0:
            per_step = elapsed / done
            self.ns_per_day = self.timestep_fs * 1e-6 / per_step * 86400.0
            eta = per_step * max(self.total_steps - step, 0)
            speed, eta_s = f"{self.ns_per_day:8.3f} ns/day", _hms(eta)
        else:
            speed, eta_s = "     --- ns/day", "--:--:--"
        pot = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        kin = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        temp = 2.0 * kin / (self.dof * _R_KJ_PER_MOL_K)
        t_ps = state.getTime().value_in_unit(unit.picosecond)
        pct = 100.0 * step / self.total_steps if self.total_steps else 100.0
        print(f"step {step:>9d}/{self.total_steps} ({pct:5.1f}%)  t {t_ps:10.3f} ps  {speed}  "
              f"ETA {eta_s}  Epot {pot:14.4f}  Etot {pot + kin:14.4f} kJ/mol  T {temp:7.1f} K",
              file=self.out, flush=True)


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class EnergyCSVReporter(_Reporter):
    """CSV rows of :data:`CSV_COLUMNS` every ``interval`` steps (kJ/mol, K, nm³)."""

    def __init__(self, path: str | os.PathLike, interval: int, dof: int,
                 append: bool = False) -> None:
        self.interval = int(interval)
        self.dof = int(dof)
        self.path = Path(path)
        exists = append and self.path.is_file() and self.path.stat().st_size > 0
        self._file = open(self.path, "a" if exists else "w", encoding="utf-8")  # noqa: SIM115
        if not exists:
            self._file.write(",".join(CSV_COLUMNS) + "\n")
            self._file.flush()

    def report(self, simulation: app.Simulation, state: openmm.State) -> None:
        pot = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        kin = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        temp = 2.0 * kin / (self.dof * _R_KJ_PER_MOL_K)
        vol = (state.getPeriodicBoxVolume().value_in_unit(unit.nanometer ** 3)
               if simulation.system.usesPeriodicBoundaryConditions() else float("nan"))
        t_ps = state.getTime().value_in_unit(unit.picosecond)
        self._file.write(f"{simulation.currentStep},{t_ps:.6f},{pot:.10g},{kin:.10g},"
                         f"{pot + kin:.10g},{temp:.6g},{vol:.8g}\n")
        self._file.flush()

    def size(self) -> int:
        self._file.flush()
        return self.path.stat().st_size

    def close(self) -> None:
        self._file.close()


class DCDWriter(_Reporter):
    """DCD frames every ``interval`` steps (OpenMM's DCD writer on a file this object owns)."""

    _positions = True
    _energies = False

    def __init__(self, path: str | os.PathLike, interval: int, simulation: app.Simulation,
                 append: bool = False) -> None:
        self.interval = int(interval)
        self.path = Path(path)
        exists = append and self.path.is_file() and self.path.stat().st_size > 0
        self._file = open(self.path, "r+b" if exists else "wb")  # noqa: SIM115
        dt = simulation.integrator.getStepSize()
        first = simulation.currentStep
        if exists:
            # Appending keeps the file's first step (header int at byte 12), or the "last step"
            # field OpenMM rewrites would count from the resume step.
            self._file.seek(12)
            first = struct.unpack("<i", self._file.read(4))[0]
        self._dcd = app.DCDFile(self._file, simulation.topology, dt, first, self.interval,
                                append=exists)
        self._periodic = simulation.system.usesPeriodicBoundaryConditions()

    def report(self, simulation: app.Simulation, state: openmm.State) -> None:
        box = state.getPeriodicBoxVectors() if self._periodic else None
        self._dcd.writeModel(state.getPositions(), periodicBoxVectors=box)
        self._file.flush()

    def size(self) -> int:
        self._file.flush()
        return self.path.stat().st_size

    def header(self) -> bytes:
        """The first 24 header bytes (frame count and last step live there)."""
        self._file.flush()
        with open(self.path, "rb") as fh:
            return fh.read(24)

    def close(self) -> None:
        self._file.close()


class CheckpointWriter(_Reporter):
    """Every ``interval`` steps: an OpenMM checkpoint plus the sizes of the other outputs.

    Register it *after* the CSV and DCD reporters, so a checkpoint at step k follows their rows
    of step k. Files are written to temporaries and renamed, so a kill never leaves a torn
    checkpoint.
    """

    _energies = False

    def __init__(self, folder: str | os.PathLike, interval: int,
                 csv: EnergyCSVReporter | None, dcd: DCDWriter | None) -> None:
        self.interval = int(interval)
        self.folder = Path(folder)
        self.csv, self.dcd = csv, dcd

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / "checkpoint.chk"

    @property
    def info_path(self) -> Path:
        return self.folder / "checkpoint.json"

    def report(self, simulation: app.Simulation, state: openmm.State) -> None:
        self.write(simulation)

    def write(self, simulation: app.Simulation) -> None:
        info: dict[str, Any] = {"step": int(simulation.currentStep)}
        if self.csv is not None:
            info["csv"] = {"path": self.csv.path.name, "size": self.csv.size()}
        if self.dcd is not None:
            info["dcd"] = {"path": self.dcd.path.name, "size": self.dcd.size(),
                           "header": self.dcd.header().hex()}
        tmp = self.checkpoint_path.with_suffix(".chk.tmp")
        simulation.saveCheckpoint(str(tmp))
        os.replace(tmp, self.checkpoint_path)
        tmpj = self.info_path.with_suffix(".json.tmp")
        tmpj.write_text(json.dumps(info, indent=1))
        os.replace(tmpj, self.info_path)


def restore_outputs(folder: str | os.PathLike) -> dict[str, Any]:
    """Cut the CSV and DCD of ``folder`` back to their sizes at the last checkpoint.

    Returns the checkpoint info (``step``, ...). Raises ``FileNotFoundError`` without one.
    """
    folder = Path(folder)
    info_path = folder / "checkpoint.json"
    if not info_path.is_file() or not (folder / "checkpoint.chk").is_file():
        raise FileNotFoundError(
            f"--resume: no checkpoint in {folder} (checkpoint.chk + checkpoint.json); start "
            "without --resume, or set checkpoint_interval > 0 next time"
        )
    info = json.loads(info_path.read_text())
    for key in ("csv", "dcd"):
        entry = info.get(key)
        if not entry:
            continue
        path = folder / entry["path"]
        if not path.is_file() or path.stat().st_size < entry["size"]:
            raise ValueError(
                f"--resume: {path} is shorter than at the checkpoint (step {info['step']}); the "
                "outputs were modified, cannot resume exactly"
            )
        with open(path, "r+b") as fh:
            fh.truncate(entry["size"])
            if key == "dcd":
                fh.seek(0)
                fh.write(bytes.fromhex(entry["header"]))
    return info


