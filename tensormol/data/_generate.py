"""Reference data by Langevin MD with GFN2-xTB (tblite), written as extended XYZ, resumable.

Sampling: BAOAB Langevin dynamics (Leimkuhler & Matthews, J. Chem. Phys. 138, 174102 (2013)),
whose configurational distribution is the Boltzmann one at the chosen temperature whatever the
masses; so heavier hydrogens (``hydrogen_mass``) buy a longer time step without changing what
is sampled. Every MD step costs one tblite single point; frames are the configurations of every
``save_every``-th step after ``equilibration_steps``, labelled with that same single point
(energy, forces, dipole for molecules, stress for periodic systems).

Resume: every ``chunk_frames`` frames the new frames are appended to the output (each chunk
one compressed member for ``.gz``/``.bz2``/``.xz``), flushed to disk, and then the MD state
(positions, velocities, forces, step, RNG state, output size in bytes) is written atomically to
``<output>.state.json``. A restarted run truncates the output to the recorded size (dropping a
chunk written after the last state) and continues from the recorded step: it reproduces the
frames an uninterrupted run writes. Each single point starts from tblite's default guess (no
wavefunction carried between steps), so labels depend on positions alone.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..elements import atomic_masses
from ..units import (
    BOHR_TO_ANGSTROM,
    BOLTZMANN_EV_PER_K,
    EV_PER_ANGSTROM_AMU_TO_ANGSTROM_PER_FS2,
    FS_TO_PS,
    HARTREE_TO_EV,
)
from ._extxyz import format_extxyz_frame
from ._structures import (
    StartingStructure,
    build_box,
    structure_from_file,
    structure_from_smiles,
)

__all__ = ["SamplingSettings", "TBLiteLabeller", "baoab_step", "generate", "prepare_structure"]

_STATE_FORMAT = "tensormol-generate-state"
_STATE_VERSION = 1
_COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    ".gz": lambda b: gzip.compress(b, compresslevel=9, mtime=0),  # mtime=0: reproducible bytes
    ".bz2": bz2.compress,
    ".xz": lzma.compress,
}


@dataclass(frozen=True)
class SamplingSettings:
    """Settings of one generation run (all recorded in the state file and checked on resume).

    Attributes
    ----------
    n_frames : int
        Frames to write.
    temperature : float
        Thermostat temperature, K.
    timestep : float
        MD time step, fs.
    friction : float
        Langevin friction coefficient, 1/ps (OpenMM's convention, as in ``tensormol md``).
    save_every : int
        MD steps between written frames (decorrelation).
    equilibration_steps : int
        MD steps run before the first frame is kept.
    relax_steps : int
        FIRE steps (at most) on the starting structure before MD, 0 for none.
    hydrogen_mass : float or None
        Mass of H in amu for the dynamics (None: standard mass); does not change the sampled
        configurational distribution.
    method : str
        tblite method, ``"GFN2-xTB"`` or ``"GFN1-xTB"``.
    charge : int
        Total charge, e.
    multiplicity : int
        Spin multiplicity (1 = closed shell).
    electronic_temperature : float
        Fermi smearing temperature of the SCF, K (tblite's default 300).
    seed : int
        Seed of the initial velocities and the Langevin noise.
    chunk_frames : int
        Frames per checkpoint.
    decimals : int
        Digits after the point for positions and forces in the output.
    """

    n_frames: int
    temperature: float = 500.0
    timestep: float = 0.5
    friction: float = 10.0
    save_every: int = 20
    equilibration_steps: int = 1000
    relax_steps: int = 0
    hydrogen_mass: float | None = None
    method: str = "GFN2-xTB"
    charge: int = 0
    multiplicity: int = 1
    electronic_temperature: float = 300.0
    seed: int = 0
    chunk_frames: int = 50
    decimals: int = 6

    def __post_init__(self) -> None:
        for name in ("n_frames", "save_every", "chunk_frames"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        for name in ("equilibration_steps", "relax_steps", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
        for name in ("temperature", "timestep", "friction", "electronic_temperature"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if self.hydrogen_mass is not None and not self.hydrogen_mass > 0:
            raise ValueError(f"hydrogen_mass must be > 0 amu or None, got {self.hydrogen_mass!r}")
        if self.method not in ("GFN2-xTB", "GFN1-xTB", "IPEA1-xTB"):
            raise ValueError(f"method must be one of GFN2-xTB, GFN1-xTB, IPEA1-xTB, got "
                             f"{self.method!r}")
        if not isinstance(self.multiplicity, int) or self.multiplicity < 1:
            raise ValueError(f"multiplicity must be an integer >= 1, got {self.multiplicity!r}")
        if not 1 <= self.decimals <= 12:
            raise ValueError(f"decimals must be in 1..12, got {self.decimals!r}")

    @property
    def total_steps(self) -> int:
        return self.equilibration_steps + self.n_frames * self.save_every

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class TBLiteLabeller:
    """Single points with tblite: energy (eV), forces (eV/Å), dipole (e·Å), stress (eV/Å³).

    Parameters
    ----------
    numbers : (n,) int
    cell : (3, 3) float, Å (rows), zeros for a molecule
    pbc : (3,) bool
    method, charge, multiplicity, electronic_temperature : see :class:`SamplingSettings`
    """

    numbers: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    method: str = "GFN2-xTB"
    charge: int = 0
    multiplicity: int = 1
    electronic_temperature: float = 300.0
    calls: int = 0
    seconds: float = 0.0
    _calc: Any = field(default=None, repr=False)

    def __call__(self, positions: np.ndarray) -> dict[str, Any]:
        """Label one configuration; positions (n, 3) float64 Å. Timing accumulates."""
        from tblite.interface import Calculator

        x = np.ascontiguousarray(positions, dtype=np.float64) / BOHR_TO_ANGSTROM
        t0 = time.perf_counter()
        try:
            if self._calc is None:
                periodic = bool(np.any(self.pbc))
                self._calc = Calculator(
                    self.method, np.asarray(self.numbers, dtype=np.int32), x,
                    charge=float(self.charge), uhf=int(self.multiplicity - 1),
                    lattice=np.asarray(self.cell, dtype=np.float64) / BOHR_TO_ANGSTROM
                    if periodic else None,
                    periodic=np.asarray(self.pbc, dtype=bool) if periodic else None,
                )
                self._calc.set("verbosity", 0)
                self._calc.set("temperature", self.electronic_temperature * BOLTZMANN_EV_PER_K
                               / HARTREE_TO_EV)
            else:
                self._calc.update(positions=x)
            res = self._calc.singlepoint()  # fresh guess: labels depend on positions only
        except RuntimeError as exc:
            raise RuntimeError(f"tblite {self.method} single point failed: {exc}") from None
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        out: dict[str, Any] = {
            "energy": float(res.get("energy")) * HARTREE_TO_EV,
            "forces": -np.asarray(res.get("gradient")) * (HARTREE_TO_EV / BOHR_TO_ANGSTROM),
        }
        if np.any(self.pbc):
            volume = abs(float(np.linalg.det(self.cell)))
            # tblite's virial is dE/d(strain) in Hartree; / V gives ASE's stress sign (checked
            # against finite strain in the tests).
            out["stress"] = np.asarray(res.get("virial")) * HARTREE_TO_EV / volume
        else:
            out["dipole"] = np.asarray(res.get("dipole")) * BOHR_TO_ANGSTROM
        if not (math.isfinite(out["energy"]) and np.all(np.isfinite(out["forces"]))):
            raise RuntimeError(f"tblite {self.method} returned non-finite energy or forces")
        return out

    @property
    def mean_seconds(self) -> float:
        return self.seconds / max(self.calls, 1)


def prepare_structure(*, smiles: str | None = None, structure_file: str | Path | None = None,
                      copies: int = 1, density: float | None = None,
                      box_length: float | None = None, seed: int = 0) -> StartingStructure:
    """Starting structure from exactly one of ``smiles`` or ``structure_file`` (XYZ/SDF),
    optionally replicated into a cubic periodic box (``copies`` > 1, with ``density`` g/cm³ or
    ``box_length`` Å; a single copy with a box is also allowed)."""
    if (smiles is None) == (structure_file is None):
        raise ValueError("give exactly one of smiles and structure_file")
    mol = (structure_from_smiles(smiles, seed=seed) if smiles is not None
           else structure_from_file(structure_file))
    if copies != 1 or density is not None or box_length is not None:
        return build_box(mol, copies, density=density, box_length=box_length, seed=seed)
    return mol


# -- MD -----------------------------------------------------------------------------------------
def _fire_relax(label: TBLiteLabeller, x: np.ndarray, steps: int, fmax: float = 0.1,
                maxstep: float = 0.2) -> np.ndarray:
    """FIRE minimisation (Bitzek et al., PRL 97, 170201 (2006)), unit masses, at most ``steps``."""
    v = np.zeros_like(x)
    dt, alpha, n_pos = 0.1, 0.1, 0
    for _ in range(steps):
        f = label(x)["forces"]
        if np.sqrt((f**2).sum(axis=1)).max() < fmax:
            break
        p = float(np.vdot(f, v))
        if p > 0:
            v = (1 - alpha) * v + alpha * np.linalg.norm(v) / max(np.linalg.norm(f), 1e-12) * f
            if n_pos > 5:
                dt, alpha = min(dt * 1.1, 1.0), alpha * 0.99
            n_pos += 1
        else:
            v[:] = 0.0
            dt, alpha, n_pos = dt * 0.5, 0.1, 0
        v += dt * f
        dr = dt * v
        norm = float(np.sqrt((dr**2).sum()))
        if norm > maxstep:
            dr *= maxstep / norm
        x = x + dr
    return x


def baoab_step(x: np.ndarray, v: np.ndarray, lab: dict[str, Any],
               label: Callable[[np.ndarray], dict[str, Any]], inv_m: np.ndarray,
               sigma: np.ndarray, dt: float, c1: float, rng: np.random.Generator,
               ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One BAOAB Langevin step: half kick, half drift, Ornstein–Uhlenbeck, half drift, forces,
    half kick.

    Parameters
    ----------
    x, v : (n, 3) float64, Å and Å/fs
    lab : dict with ``"forces"`` (n, 3) eV/Å at ``x``
    label : callable mapping positions to such a dict (one force call per step)
    inv_m : (n, 1) float64, (Å/fs²) per (eV/Å), i.e. unit factor / mass
    sigma : (n, 1) float64, Å/fs, Maxwell–Boltzmann spread sqrt(k_B T / m)
    dt : float, fs
    c1 : float, exp(-friction * dt); 1 gives Velocity Verlet (no noise drawn)
    rng : numpy Generator of the noise

    Returns
    -------
    (x, v, lab) after the step (new arrays).
    """
    half = 0.5 * dt
    v = v + half * inv_m * lab["forces"]
    x = x + half * v
    if c1 < 1.0:
        v = c1 * v + math.sqrt(1.0 - c1 * c1) * sigma * rng.standard_normal(x.shape)
    x = x + half * v
    lab = label(x)
    v = v + half * inv_m * lab["forces"]
    return x, v, lab


def _wrap(x: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    if not np.any(pbc):
        return x
    frac = x @ np.linalg.inv(cell)
    frac[:, pbc] -= np.floor(frac[:, pbc])
    return frac @ cell


def _frame_text(structure: StartingStructure, x: np.ndarray, lab: dict[str, Any], step: int,
                frame: int, s: SamplingSettings, code: str) -> str:
    info: dict[str, Any] = {"energy": lab["energy"]}
    if "stress" in lab:
        info["stress"] = np.asarray(lab["stress"]).reshape(9)
    if "dipole" in lab:
        info["dipole"] = np.asarray(lab["dipole"]).reshape(3)
    info.update({
        "level_of_theory": s.method, "code": code, "energy_unit": "eV",
        "length_unit": "Angstrom", "forces_unit": "eV/Angstrom",
    })
    if "stress" in lab:
        info["stress_unit"] = "eV/Angstrom^3"
    if "dipole" in lab:
        info["dipole_unit"] = "e*Angstrom"
    info.update({"temperature_K": float(s.temperature), "md_step": step, "frame": frame,
                 "seed": s.seed})
    periodic = bool(np.any(structure.pbc))
    return format_extxyz_frame(
        structure.numbers, _wrap(x, structure.cell, structure.pbc),
        cell=structure.cell if periodic else None, pbc=structure.pbc, info=info,
        arrays={"forces": lab["forces"]}, decimals=s.decimals)


def _state_path(output: Path) -> Path:
    return output.with_name(output.name + ".state.json")


def _write_json_atomic(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def _append(output: Path, text: str) -> int:
    data = text.encode("utf-8")
    comp = _COMPRESSORS.get(output.suffix.lower())
    if comp is not None:
        data = comp(data)
    with open(output, "ab") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
        return fh.tell()


def _structure_record(st: StartingStructure) -> dict[str, Any]:
    return {"numbers": st.numbers.tolist(), "cell": st.cell.tolist(), "pbc": st.pbc.tolist(),
            "description": st.description}


def generate(
    output: str | Path,
    structure: StartingStructure,
    settings: SamplingSettings,
    *,
    overwrite: bool = False,
    max_new_frames: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Sample ``settings.n_frames`` labelled frames of ``structure`` into an extended XYZ file.

    Parameters
    ----------
    output : path
        ``.xyz``, ``.extxyz`` or a compressed ``.xyz.gz``/``.bz2``/``.xz``. If it exists with a
        state file ``<output>.state.json``, the run resumes (settings and structure must match,
        except ``n_frames``: a finished run is extended by asking for more frames, and asking
        for the frames it already has does nothing). The state file is kept after the run.
    structure : StartingStructure
        Starting atoms (see :func:`prepare_structure`).
    settings : SamplingSettings
    overwrite : bool
        Discard an existing output (and its state) instead of resuming or refusing.
    max_new_frames : int, optional
        Stop (checkpointed, resumable) after writing this many new frames in this call, e.g. to
        fit a wall-clock slot.
    progress : bool
        Show a tqdm progress bar on stderr.
    log : callable, optional
        Receives one-line messages (default: print to stderr).

    Returns
    -------
    dict
        ``path``, ``frames`` (written in total), ``complete``, ``resumed_from_frame`` (None for a
        fresh start), ``calls`` and ``seconds_per_call`` of tblite in this call, ``wall_seconds``.

    Raises
    ------
    FileExistsError
        If ``output`` exists without a state file to resume from and ``overwrite`` is False.
    ValueError
        If the state file was written with other settings or another structure.
    """
    out = Path(output)
    state_file = _state_path(out)
    say = log or (lambda m: print(m, file=sys.stderr, flush=True))
    s = settings
    if max_new_frames is not None and max_new_frames < 1:
        raise ValueError(f"max_new_frames must be >= 1 or None, got {max_new_frames!r}")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"output directory does not exist: {str(out.parent)!r}")
    try:
        import importlib.metadata as md

        code = f"tblite {md.version('tblite')}"
    except Exception:  # noqa: BLE001 - version string is informative only
        code = "tblite"

    if overwrite:
        for p in (out, state_file):
            if p.exists():
                p.unlink()
    record = _structure_record(structure)
    state: dict[str, Any] | None = None
    if state_file.exists():
        state = json.loads(state_file.read_text(encoding="utf-8"))
        if state.get("format") != _STATE_FORMAT or state.get("version") != _STATE_VERSION:
            raise ValueError(f"{str(state_file)!r} is not a tensormol generation state file")
        # n_frames may change: the trajectory does not depend on where it will stop, so a run
        # can be extended (or a longer one cut short) without touching the frames written.
        diffs = [f"{k}: {state['settings'].get(k)!r} then, {v!r} now"
                 for k, v in s.as_dict().items()
                 if k != "n_frames" and state["settings"].get(k) != v]
        if state["structure"]["numbers"] != record["numbers"] or not np.allclose(
                state["structure"]["cell"], record["cell"]):
            diffs.append("the structure (atoms or cell) differs")
        if diffs:
            raise ValueError(f"cannot resume {str(out)!r}: it was started with other settings ("
                             f"{'; '.join(diffs)}); use another output path or overwrite=True")
        if not out.exists() and state["bytes"] > 0:
            raise FileNotFoundError(f"state {str(state_file)!r} records {state['frames']} frames "
                                    f"but {str(out)!r} is missing; use overwrite=True")
        size = out.stat().st_size if out.exists() else 0
        if size < state["bytes"]:
            raise ValueError(f"{str(out)!r} is shorter ({size} bytes) than its state records "
                             f"({state['bytes']} bytes); it was modified, use overwrite=True")
        if state["frames"] > s.n_frames:
            raise ValueError(f"{str(out)!r} already holds {state['frames']} frames, more than "
                             f"n_frames={s.n_frames}; use overwrite=True to start afresh")
        if size > state["bytes"]:
            os.truncate(out, state["bytes"])  # drop a chunk appended after the last checkpoint
        if state["frames"] == s.n_frames and state.get("complete"):
            say(f"{out.name}: already complete with {s.n_frames} frames; nothing to do")
            return {"path": str(out), "frames": s.n_frames, "complete": True,
                    "resumed_from_frame": s.n_frames, "calls": 0, "seconds_per_call": 0.0,
                    "wall_seconds": 0.0}
    elif out.exists():
        raise FileExistsError(f"{str(out)!r} exists and has no generation state "
                              f"({state_file.name}) to resume from; remove it or pass "
                              f"overwrite=True")

    masses = atomic_masses(structure.numbers)
    if s.hydrogen_mass is not None:
        masses = np.where(structure.numbers == 1, float(s.hydrogen_mass), masses)
    inv_m = (EV_PER_ANGSTROM_AMU_TO_ANGSTROM_PER_FS2 / masses)[:, None]  # (Å/fs²) per (eV/Å)
    kT = BOLTZMANN_EV_PER_K * s.temperature
    sigma = np.sqrt(kT * inv_m)  # Å/fs, Maxwell–Boltzmann velocity spread per atom
    label = TBLiteLabeller(structure.numbers, structure.cell, structure.pbc, s.method, s.charge,
                           s.multiplicity, s.electronic_temperature)
    t_start = time.perf_counter()

    resumed_from = None
    if state is None:
        x = np.array(structure.positions, dtype=np.float64)
        if s.relax_steps:
            say(f"relaxing {structure.formula} with FIRE ({s.relax_steps} steps at most)")
            x = _fire_relax(label, x, s.relax_steps)
        rng = np.random.Generator(np.random.PCG64(s.seed))
        v = sigma * rng.standard_normal(x.shape)
        v -= (masses[:, None] * v).sum(axis=0) / masses.sum()  # no centre-of-mass drift
        lab = label(x)  # also proves the method works before anything is written
        step, frames, nbytes = 0, 0, 0
        out.touch()
    else:
        x = np.asarray(state["positions"], dtype=np.float64)
        v = np.asarray(state["velocities"], dtype=np.float64)
        lab = {k: (np.asarray(val) if isinstance(val, list) else val)
               for k, val in state["label"].items()}
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = state["rng"]
        step, frames, nbytes = state["step"], state["frames"], state["bytes"]
        resumed_from = frames
        say(f"resuming {out.name} at MD step {step} with {frames} frames written")

    def checkpoint() -> None:
        _write_json_atomic(state_file, {
            "format": _STATE_FORMAT, "version": _STATE_VERSION, "settings": s.as_dict(),
            "structure": record, "step": step, "frames": frames, "bytes": nbytes,
            "positions": x.tolist(), "velocities": v.tolist(),
            "label": {k: (np.asarray(val).tolist() if isinstance(val, np.ndarray) else val)
                      for k, val in lab.items()},
            "rng": rng.bit_generator.state, "complete": step >= s.total_steps,
        })

    if state is None:
        checkpoint()

    c1 = math.exp(-s.friction * FS_TO_PS * s.timestep)  # friction 1/ps, timestep fs
    dt = s.timestep
    chunk_steps = s.chunk_frames * s.save_every
    new_frames, pending = 0, []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=s.total_steps, initial=step, unit="step", desc=out.name,
                   mininterval=2.0, file=sys.stderr)
    stop = False
    try:
        while step < s.total_steps and not stop:
            try:
                x, v, lab = baoab_step(x, v, lab, label, inv_m, sigma, dt, c1, rng)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc} (MD step {step + 1}); the run can be resumed from "
                                   f"the last checkpoint") from None
            step += 1
            k = step - s.equilibration_steps
            if k > 0 and k % s.save_every == 0:
                pending.append(_frame_text(structure, x, lab, step, frames + len(pending), s,
                                           code))
                new_frames += 1
                if max_new_frames is not None and new_frames >= max_new_frames:
                    stop = True
            if step % chunk_steps == 0 or step == s.total_steps or stop:
                if pending:
                    nbytes = _append(out, "".join(pending))
                    frames += len(pending)
                    pending = []
                checkpoint()
                if bar is not None:
                    bar.set_postfix(frames=frames, ms_per_call=f"{1e3 * label.mean_seconds:.1f}",
                                    refresh=False)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    complete = step >= s.total_steps  # the state stays: a larger n_frames extends the run
    wall = time.perf_counter() - t_start
    say(f"{out.name}: {frames}/{s.n_frames} frames, {label.calls} tblite calls in this run, "
        f"{1e3 * label.mean_seconds:.2f} ms per call, {wall:.1f} s wall"
        + ("" if complete else " (stopped; run again to resume)"))
    return {"path": str(out), "frames": frames, "complete": complete,
            "resumed_from_frame": resumed_from, "calls": label.calls,
            "seconds_per_call": label.mean_seconds, "wall_seconds": wall}
