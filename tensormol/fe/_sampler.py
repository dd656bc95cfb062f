"""Hamiltonian replica exchange over OpenMM context global parameters.

A leg is one ``openmm.System`` whose thermodynamic states differ only in context global
parameters (``lambda_sterics``, ``Lambda1``, ...). ``ReplicaExchange`` runs R = K replicas, one per
state, through one ``openmm.Context``: each iteration every replica in turn gets the context
(its box, positions, velocities and its state's parameters), runs ``steps_per_iteration``
Langevin steps, and its reduced potentials at all K states are evaluated; then states are
exchanged between replicas by repeated Metropolis swaps on the reduced-potential matrix.

One context serves all replicas because on the CPU (and for ML/MM systems whose potential is
evaluated by a Python callback) a context per replica would multiply memory and set-up cost by
K for no speed gain: replicas run one after the other anyway. Its single random stream is part of
every checkpoint (``Context.createCheckpoint``), so a killed and resumed run repeats an
uninterrupted one bit for bit.

Files in ``directory/name/``:

``samples.json``
    Layout of the sample records (K, R, states, record size); written once.
``samples.bin``
    One fixed-size record per iteration, appended as the run goes: the (K, K) reduced
    potentials, the replica → state map used for them, and the swap counts of that iteration.
    A partial run loads (``SamplingResult.load``); a torn last record is ignored.
``checkpoint.npz``
    Every ``checkpoint_every`` iterations, written to a temporary, fsync'ed and renamed (a kill
    mid-write leaves the previous checkpoint): per-replica positions, velocities, boxes, the
    replica → state map, the OpenMM context checkpoint (integrator random state), the NumPy
    generator state, cumulative swap counts and the fingerprint of the leg.
``fingerprint.json``
    What the checkpoint belongs to (hash of the System XML, the states, the settings that change
    the trajectory), in readable form.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from tensormol.units import BOLTZMANN_EV_PER_K, EV_TO_KJ_PER_MOL

__all__ = [
    "SamplerSettings",
    "ReplicaExchange",
    "SamplingResult",
    "SamplingError",
    "boltzmann_kj_per_mol",
]

#: Molar gas constant in kJ/(mol K), from tensormol's unit factors (k_B in eV/K times eV→kJ/mol).
_KB_KJ_PER_MOL_K = BOLTZMANN_EV_PER_K * EV_TO_KJ_PER_MOL

_SAMPLES_VERSION = 1
_MINIMIZE_MAX_ITER = 2000
_CHECKPOINT_VERSION = 1


def boltzmann_kj_per_mol(temperature_K: float) -> float:
    """k_B T in kJ/mol at ``temperature_K`` (K)."""
    return _KB_KJ_PER_MOL_K * float(temperature_K)


class SamplingError(FloatingPointError, ValueError):
    """A replica produced a non-finite or exploding energy or configuration.

    A ``FloatingPointError`` (what went wrong) and a ``ValueError`` (the user can act on it: the
    message says what to try), so command-line tools print it without a traceback. ``frame``
    holds the path of the saved npz, ``pdb`` the PDB (or ``None``).
    """

    def __init__(self, message: str, *, frame: Path | None = None, pdb: Path | None = None,
                 leg: str = "", state_index: int = -1, replica: int = -1,
                 iteration: int = -1) -> None:
        super().__init__(message)
        self.frame, self.pdb = frame, pdb
        self.leg, self.state_index, self.replica, self.iteration = (leg, state_index, replica,
                                                                    iteration)


@dataclass(frozen=True)
class SamplerSettings:
    """Settings of a replica-exchange leg.

    Parameters
    ----------
    n_iterations : int
        Total iterations (exchange attempts) of the leg.
    steps_per_iteration : int
        MD steps of each replica between exchanges.
    timestep_fs : float
        Integrator time step (fs).
    temperature_K : float
        Temperature (K) of every state.
    friction_per_ps : float
        Langevin friction (1/ps) of ``openmm.LangevinMiddleIntegrator``.
    checkpoint_every : int
        Iterations between atomic checkpoints (the last iteration is always checkpointed).
    platform : str
        OpenMM platform name: ``"CPU"``, ``"Reference"``, ``"CUDA"`` or ``"OpenCL"``.
    threads : int or None
        Threads of the CPU platform; ``None`` follows tensormol's thread policy.
    seed : int
        Seed of the integrator, the initial velocities and the swap moves.
    minimize : bool
        Minimise each replica at its own state before sampling.
    swap_scheme : str
        ``"all-pairs"`` (Gibbs-like: ``n_swap_attempts`` Metropolis swaps between random pairs of
        replicas) or ``"neighbors"`` (the same number of swaps between neighbouring states).
    n_swap_attempts : int or None
        Swap attempts per iteration; ``None``: R³ (enough to approach the Gibbs limit of mixing
        among the R replicas).
    explosion_kT_per_atom : float
        A replica whose reduced potential at its own state rises by more than this many kT per
        particle within one iteration is treated as exploded.
    progress_every : int
        Iterations between progress lines when stdout is not a terminal.
    """

    n_iterations: int
    steps_per_iteration: int
    timestep_fs: float = 2.0
    temperature_K: float = 298.15
    friction_per_ps: float = 1.0
    checkpoint_every: int = 10
    platform: str = "CPU"
    threads: int | None = None
    seed: int = 0
    minimize: bool = True
    swap_scheme: str = "all-pairs"
    n_swap_attempts: int | None = None
    explosion_kT_per_atom: float = 1000.0
    progress_every: int = 10

    def __post_init__(self) -> None:
        for name in ("n_iterations", "steps_per_iteration", "checkpoint_every", "progress_every"):
            v = getattr(self, name)
            minimum = 0 if name == "n_iterations" else 1
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
                raise ValueError(f"SamplerSettings.{name} must be an integer >= {minimum}, "
                                 f"got {v!r}")
        for name in ("timestep_fs", "temperature_K", "friction_per_ps", "explosion_kT_per_atom"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"SamplerSettings.{name} must be a finite number > 0, got {v!r}")
        if self.platform not in ("CPU", "Reference", "CUDA", "OpenCL", "HIP"):
            raise ValueError(f"SamplerSettings.platform must be one of CPU, Reference, CUDA, "
                             f"OpenCL, HIP; got {self.platform!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"SamplerSettings.threads must be None or an integer >= 1, "
                             f"got {self.threads!r}")
        if self.swap_scheme not in ("all-pairs", "neighbors"):
            raise ValueError(f"SamplerSettings.swap_scheme must be 'all-pairs' or 'neighbors', "
                             f"got {self.swap_scheme!r}")
        if self.n_swap_attempts is not None and (not isinstance(self.n_swap_attempts, int)
                                                 or self.n_swap_attempts < 0):
            raise ValueError(f"SamplerSettings.n_swap_attempts must be None or an integer >= 0, "
                             f"got {self.n_swap_attempts!r}")

    def trajectory_fields(self) -> dict[str, Any]:
        """The settings that change the sampled trajectory (part of the resume fingerprint).

        ``n_iterations`` (a run may be extended), ``checkpoint_every``, ``progress_every`` and
        ``threads`` are not among them.
        """
        skip = {"n_iterations", "checkpoint_every", "progress_every", "threads"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


@dataclass
class SamplingResult:
    """The samples of a leg.

    Attributes
    ----------
    u_kln : numpy.ndarray, shape (K, K, N), float64
        Reduced potential (kT) of the sample of iteration n drawn at state k, evaluated at state
        l (pymbar's ``u_kln`` layout).
    replica_states : numpy.ndarray, shape (N, R), int64
        State index of each replica at each iteration (before that iteration's swaps).
    acceptance : numpy.ndarray, shape (K, K), float64
        Accepted / attempted swaps between states k and l (0 where never attempted).
    temperature_K : float
        Temperature of the leg (K).
    directory : pathlib.Path
        The leg's directory (``directory/name`` of the sampler).
    states : list of dict
        The thermodynamic states (context parameters) in order.
    n_attempted : numpy.ndarray, shape (K, K), int64
        Attempted swaps between states k and l.
    n_iterations_target : int or None
        Iterations the last run was asked for.
    failure : dict or None
        Why the leg failed (``error``, ``iteration``, ``replica``, ``state_index``, ``frame``),
        from ``failed.json``; ``None`` unless a replica blew up.
    """

    u_kln: np.ndarray
    replica_states: np.ndarray
    acceptance: np.ndarray
    temperature_K: float
    directory: Path
    states: list[dict[str, float]] = field(default_factory=list)
    n_attempted: np.ndarray | None = None
    n_iterations_target: int | None = None
    failure: dict[str, Any] | None = None

    @property
    def n_iterations(self) -> int:
        """Number of iterations sampled."""
        return int(self.u_kln.shape[2])

    @property
    def status(self) -> str:
        """``"failed"`` (a replica blew up: ``failure`` says how), ``"done"`` or ``"partial"``."""
        if self.failure is not None:
            return "failed"
        if self.n_iterations_target is not None and self.n_iterations >= \
                self.n_iterations_target:
            return "done"
        return "partial"

    @classmethod
    def load(cls, directory: str | os.PathLike, name: str = "leg") -> SamplingResult:
        """Load the samples of leg ``name`` under ``directory`` (finished or partial runs).

        Raises ``FileNotFoundError`` when the leg has no samples yet.
        """
        leg_dir = Path(directory) / name
        layout_path = leg_dir / "samples.json"
        if not layout_path.is_file():
            raise FileNotFoundError(f"no samples of leg {name!r} in {Path(directory)} "
                                    f"({layout_path} is missing)")
        layout = json.loads(layout_path.read_text())
        data = (leg_dir / "samples.bin").read_bytes() if (leg_dir / "samples.bin").is_file() \
            else b""
        rec = _record_dtype(layout["n_states"], layout["n_replicas"])
        n = len(data) // rec.itemsize  # a torn last record (kill mid-append) is ignored
        records = np.frombuffer(data[: n * rec.itemsize], dtype=rec)
        return _result_from_records(records, layout, leg_dir)


def _record_dtype(n_states: int, n_replicas: int) -> np.dtype:
    return np.dtype([
        ("u", "<f8", (n_states, n_states)),
        ("states", "<i8", (n_replicas,)),
        ("accepted", "<i4", (n_states, n_states)),
        ("attempted", "<i4", (n_states, n_states)),
    ])


def _result_from_records(records: np.ndarray, layout: Mapping[str, Any],
                         leg_dir: Path) -> SamplingResult:
    k = int(layout["n_states"])
    failed = leg_dir / "failed.json"
    failure = json.loads(failed.read_text()) if failed.is_file() else None
    u_kln = np.ascontiguousarray(np.transpose(records["u"], (1, 2, 0)), dtype=np.float64)
    if u_kln.shape != (k, k, len(records)):  # zero records
        u_kln = np.zeros((k, k, 0))
    acc = records["accepted"].sum(axis=0).astype(np.int64) if len(records) else np.zeros((k, k),
                                                                                         np.int64)
    att = records["attempted"].sum(axis=0).astype(np.int64) if len(records) else np.zeros((k, k),
                                                                                          np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        acceptance = np.where(att > 0, acc / np.maximum(att, 1), 0.0)
    return SamplingResult(
        u_kln=u_kln,
        replica_states=np.array(records["states"], dtype=np.int64).reshape(len(records), -1),
        acceptance=acceptance, temperature_K=float(layout["temperature_K"]),
        directory=leg_dir, states=[dict(s) for s in layout["states"]], n_attempted=att,
        n_iterations_target=layout.get("n_iterations_target"), failure=failure,
    )


# --------------------------------------------------------------------------------- file helpers
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a kill at any moment leaves the old or the new file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _as_nm_array(x: Any, name: str, shape: tuple[int | None, ...]) -> np.ndarray:
    if hasattr(x, "value_in_unit"):
        from openmm import unit

        x = x.value_in_unit(unit.nanometer)
    elif isinstance(x, (list, tuple)) and x and hasattr(x[0], "value_in_unit"):
        from openmm import unit

        x = [row.value_in_unit(unit.nanometer) for row in x]
    try:
        arr = np.array([[float(c) for c in row] for row in x], dtype=np.float64) \
            if not isinstance(x, np.ndarray) else np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of shape {shape} in nm, got {type(x).__name__}"
                        ) from err
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
    if not ok:
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want} (nm), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _resolve_threads(threads: int | None) -> int | None:
    """CPU platform threads: as given, else the cores this process may run on (its affinity,
    which a job scheduler or a Dask worker may restrict; OpenMM's default counts every core)."""
    if threads is not None:
        return threads
    from tensormol._threads import available_cores

    return available_cores()


# ---------------------------------------------------------------------------------- the sampler
class ReplicaExchange:
    """Hamiltonian replica exchange of one leg over context global parameters.

    Parameters
    ----------
    system : openmm.System
        The leg's system; its states differ only in context global parameters.
    positions : array-like, shape (N, 3), float, nm (or an ``openmm.unit.Quantity``)
        Initial positions, shared by all replicas.
    states : sequence of mapping str -> float
        The K thermodynamic states: values of context global parameters. Every state names the
        same parameters, and each must exist in the system.
    settings : SamplerSettings
        Run length, integrator, platform, seed.
    directory : str or os.PathLike
        Run directory; the leg writes into ``directory/name``.
    name : str
        Leg name (its sub-directory and its name in messages).
    box_vectors : array-like, shape (3, 3), float, nm, optional
        Initial periodic box; default: the system's default box (periodic systems).
    topology : openmm.app.Topology, optional
        Used to write a failing frame as PDB.
    reduced_potentials : callable, optional
        ``reduced_potentials(context, state_index) -> (K,) float64``: u_l = E_l / k_B T at every
        state l for the context's current configuration (the context's parameters are those of
        ``state_index``; the callable may change them). Default: set each state's parameters
        and evaluate the energy.
    progress : bool
        Show progress (a tqdm bar on a terminal, else a line every ``progress_every`` iterations
        on stderr).
    """

    def __init__(self, system: Any, positions: Any, states: Sequence[Mapping[str, float]],
                 settings: SamplerSettings, directory: str | os.PathLike, *, name: str = "leg",
                 box_vectors: Any = None, topology: Any = None,
                 reduced_potentials: Callable[[Any, int], np.ndarray] | None = None,
                 progress: bool = True) -> None:
        import openmm

        if not isinstance(system, openmm.System):
            raise TypeError(f"system must be an openmm.System, got {type(system).__name__}")
        if not isinstance(settings, SamplerSettings):
            raise TypeError(f"settings must be a SamplerSettings, got {type(settings).__name__}")
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
            raise ValueError(f"name must be a non-empty file name (no '/'), got {name!r}")
        self.system = system
        n = system.getNumParticles()
        self.positions = _as_nm_array(positions, "positions", (n, 3))
        self.states = _check_states(states)
        self.settings = settings
        self.directory = Path(directory)
        self.name = name
        self.topology = topology
        self.reduced_potentials = reduced_potentials
        self.progress = bool(progress)
        if box_vectors is not None:
            self.box = _as_nm_array(box_vectors, "box_vectors", (3, 3))
        else:
            self.box = _as_nm_array(system.getDefaultPeriodicBoxVectors(), "box_vectors", (3, 3))
        self._periodic = system.usesPeriodicBoundaryConditions()
        self.kT = boltzmann_kj_per_mol(settings.temperature_K)  # kJ/mol
        self._context: Any = None
        self._integrator: Any = None

    # ---------------------------------------------------------------- paths and fingerprints
    @property
    def leg_dir(self) -> Path:
        """The leg's directory, ``directory/name``."""
        return self.directory / self.name

    @property
    def n_states(self) -> int:
        return len(self.states)

    def fingerprint(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed: system, states, trajectory settings."""
        import openmm

        try:
            xml = openmm.XmlSerializer.serialize(self.system)
            system_hash = hashlib.sha256(xml.encode()).hexdigest()
        except Exception:  # noqa: BLE001 - forces without a serializer (Python callbacks)
            parts = [str(self.system.getNumParticles())]
            parts += [type(f).__name__ for f in self.system.getForces()]
            system_hash = "forces:" + hashlib.sha256("|".join(parts).encode()).hexdigest()
        positions_hash = hashlib.sha256(self.positions.tobytes()).hexdigest()
        return {
            "system_sha256": system_hash,
            "n_particles": int(self.system.getNumParticles()),
            "initial_positions_sha256": positions_hash,
            "states": [dict(s) for s in self.states],
            "settings": self.settings.trajectory_fields(),
        }

    # ------------------------------------------------------------------------------- context
    def _make_context(self) -> None:
        import openmm
        from openmm import unit

        s = self.settings
        integrator = openmm.LangevinMiddleIntegrator(
            s.temperature_K * unit.kelvin, s.friction_per_ps / unit.picosecond,
            s.timestep_fs * unit.femtosecond)
        # OpenMM treats seed 0 as "pick one at random": keep it nonzero and deterministic.
        integrator.setRandomNumberSeed(_derived_seed(s.seed, "integrator"))
        try:
            platform = openmm.Platform.getPlatformByName(s.platform)
        except Exception as err:  # noqa: BLE001 - OpenMMException
            names = [openmm.Platform.getPlatform(i).getName()
                     for i in range(openmm.Platform.getNumPlatforms())]
            raise ValueError(f"OpenMM platform {s.platform!r} is not available here; available: "
                             f"{', '.join(names)}") from err
        props = {}
        threads = _resolve_threads(s.threads)
        if s.platform == "CPU" and threads is not None:
            props["Threads"] = str(threads)
        context = openmm.Context(self.system, integrator, platform, props)
        known = set(context.getParameters().keys())
        missing = sorted({k for st in self.states for k in st} - known)
        if missing:
            raise ValueError(
                f"leg {self.name!r}: states name context parameters the system does not define: "
                f"{', '.join(missing)}; the system defines: {', '.join(sorted(known)) or 'none'}")
        self._context, self._integrator = context, integrator
        self._split = _energy_split(self.system, {k for st in self.states for k in st})

    def _set_params(self, k: int) -> None:
        for key, value in self.states[k].items():
            self._context.setParameter(key, value)

    def _load_replica(self, positions: np.ndarray, velocities: np.ndarray | None,
                      box: np.ndarray) -> None:
        ctx = self._context
        if self._periodic:
            ctx.setPeriodicBoxVectors(*[_vec3(v) for v in box])
        ctx.setPositions(positions)
        if velocities is not None:
            ctx.setVelocities(velocities)

    def _read_replica(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        st = self._context.getState(getPositions=True, getVelocities=True, getEnergy=True)
        from openmm import unit

        pos = st.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        vel = st.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond)
        box = st.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
        energy = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        return (np.array(pos, dtype=np.float64), np.array(vel, dtype=np.float64),
                np.array(box, dtype=np.float64), float(energy))

    def _energy_kj(self, groups: int | None = None) -> float:
        from openmm import unit

        st = self._context.getState(getEnergy=True) if groups is None else \
            self._context.getState(getEnergy=True, groups=groups)
        return float(st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))

    def _reduced_row(self, k: int) -> np.ndarray:
        if self.reduced_potentials is not None:
            u = np.asarray(self.reduced_potentials(self._context, k), dtype=np.float64)
            if u.shape != (self.n_states,):
                raise ValueError(f"reduced_potentials returned shape {u.shape}; expected "
                                 f"({self.n_states},), one reduced potential per state")
            return u
        u = np.empty(self.n_states)
        if self._split is None:
            for ell in range(self.n_states):
                self._set_params(ell)
                u[ell] = self._energy_kj() / self.kT
            return u
        # Forces that no state parameter touches (an ML potential, the environment's MM terms)
        # are evaluated once, not once per state.
        dependent, independent = self._split
        fixed = self._energy_kj(independent)
        for ell in range(self.n_states):
            self._set_params(ell)
            u[ell] = (fixed + self._energy_kj(dependent)) / self.kT
        return u

    # ----------------------------------------------------------------------------- the run
    def run(self, n_iterations: int | None = None) -> SamplingResult:
        """Sample until ``n_iterations`` (default: ``settings.n_iterations``) are done.

        Resumes from the leg's checkpoint when one exists and matches this leg's fingerprint
        (else ``ValueError`` naming what changed); iterations already checkpointed are not
        redone. Returns every sample of the leg so far.
        """
        total = self.settings.n_iterations if n_iterations is None else n_iterations
        if isinstance(total, bool) or not isinstance(total, (int, np.integer)) or total < 0:
            raise ValueError(f"n_iterations must be an integer >= 0, got {total!r}")
        total = int(total)
        self.leg_dir.mkdir(parents=True, exist_ok=True)
        if self._context is None:
            self._make_context()
        state = self._resume_or_start()
        self._write_layout(max(total, self.settings.n_iterations))
        samples_path = self.leg_dir / "samples.bin"
        rec_dtype = _record_dtype(self.n_states, self.n_states)
        # Records after the checkpoint are recomputed (identically): cut them off first.
        with open(samples_path, "ab") as fh:
            fh.truncate(state["iteration"] * rec_dtype.itemsize)
        start = state["iteration"]
        if start >= total:
            return SamplingResult.load(self.directory, self.name)
        reporter = _Progress(self.name, start, total, self.progress, self.settings.progress_every)
        failed_path = self.leg_dir / "failed.json"
        failed_path.unlink(missing_ok=True)
        try:
            with open(samples_path, "ab") as fh:
                for it in range(start, total):
                    try:
                        rec = self._iteration(state, it)
                    except SamplingError as err:
                        fh.flush()
                        info = {"error": str(err), "iteration": err.iteration,
                                "replica": err.replica, "state_index": err.state_index,
                                "frame": err.frame, "pdb": err.pdb}
                        atomic_write_bytes(failed_path, json.dumps(
                            info, indent=1, default=_json_default).encode())
                        raise
                    fh.write(rec.tobytes())
                    state["iteration"] = it + 1
                    if (it + 1) % self.settings.checkpoint_every == 0 or it + 1 == total:
                        fh.flush()
                        os.fsync(fh.fileno())
                        self._write_checkpoint(state)
                    reporter.update(it + 1, state)
        finally:
            reporter.close()
        return SamplingResult.load(self.directory, self.name)

    def _iteration(self, state: dict[str, Any], it: int) -> np.ndarray:
        s = self.settings
        k_states = self.n_states
        u_rows = np.empty((k_states, k_states))
        rstates = state["replica_states"]
        n_particles = self.system.getNumParticles()
        for r in range(k_states):
            k = int(rstates[r])
            self._set_params(k)
            self._load_replica(state["positions"][r], state["velocities"][r], state["box"][r])
            bad = None
            try:
                self._integrator.step(s.steps_per_iteration)
            except Exception as err:  # noqa: BLE001 - OpenMMException: "Particle coordinate is NaN"
                bad = f"OpenMM stopped: {err}"
            try:
                pos, vel, box, energy = self._read_replica()
            except Exception:  # noqa: BLE001 - the state itself may be unreadable
                nan = np.full_like(state["positions"][r], np.nan)
                pos, vel, box, energy = nan, nan.copy(), state["box"][r], float("nan")
            u_own = energy / self.kT
            if bad is not None:
                pass
            elif not np.isfinite(pos).all() or not np.isfinite(vel).all():
                bad = "non-finite positions or velocities"
            elif not math.isfinite(energy):
                bad = f"non-finite potential energy ({energy})"
            elif u_own - state["u_own"][r] > s.explosion_kT_per_atom * n_particles:
                bad = (f"potential energy jumped by {(u_own - state['u_own'][r]):.4g} kT in one "
                       f"iteration (bound: {s.explosion_kT_per_atom:g} kT per particle)")
            if bad is None:
                u = self._reduced_row(k)
                if not np.isfinite(u[k]):
                    bad = f"non-finite reduced potential at its own state ({u[k]})"
            if bad is not None:
                raise self._failure(bad, it, r, k, state, pos, vel, box)
            u_rows[k] = u
            state["positions"][r], state["velocities"][r], state["box"][r] = pos, vel, box
            state["u_own"][r] = u_own
        rec = np.zeros((), dtype=_record_dtype(k_states, k_states))
        rec["u"] = u_rows
        rec["states"] = rstates
        rows = rstates.copy()
        acc, att = self._swap(u_rows, rstates, state["rng"])
        # Each replica's reference for the explosion check: its energy at its new state.
        state["u_own"] = u_rows[rows, rstates]
        rec["accepted"], rec["attempted"] = acc, att
        return rec

    def _swap(self, u_rows: np.ndarray, rstates: np.ndarray,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Metropolis swaps of states between replicas, in place on ``rstates``.

        ``u_rows[k, l]``: reduced potential at state l of the configuration now at state k.
        """
        k_states = self.n_states
        acc = np.zeros((k_states, k_states), np.int32)
        att = np.zeros((k_states, k_states), np.int32)
        if k_states < 2:
            return acc, att
        n = self.settings.n_swap_attempts
        n = k_states ** 3 if n is None else n
        # Configuration (row of u_rows) held by the replica at each state; a swap exchanges the
        # configurations of states i and j.
        config_at = np.empty(k_states, np.int64)
        config_at[rstates] = np.arange(k_states)
        replica_at = config_at.copy()  # state -> replica (configurations travel with replicas)
        row_of_replica = rstates.copy()  # replica -> row of u_rows (its pre-swap state)
        if self.settings.swap_scheme == "neighbors":
            first = rng.integers(0, k_states - 1, size=n)
            pairs = np.stack([first, first + 1], axis=1)
        else:
            pairs = rng.integers(0, k_states, size=(n, 2))
        log_r = np.log(rng.random(n))
        for (i, j), lr in zip(pairs.tolist(), log_r.tolist()):
            if i == j:
                continue
            ri, rj = replica_at[i], replica_at[j]
            xi, xj = row_of_replica[ri], row_of_replica[rj]
            # Replica ri (config xi) at state i, rj (config xj) at state j; propose the exchange.
            delta = (u_rows[xi, j] + u_rows[xj, i]) - (u_rows[xi, i] + u_rows[xj, j])
            att[i, j] += 1
            att[j, i] += 1
            if delta <= 0.0 or lr < -delta:
                acc[i, j] += 1
                acc[j, i] += 1
                replica_at[i], replica_at[j] = rj, ri
        rstates[replica_at] = np.arange(k_states)
        return acc, att

    # ------------------------------------------------------------------ start and checkpoints
    def _resume_or_start(self) -> dict[str, Any]:
        ckpt = self.leg_dir / "checkpoint.npz"
        fp = self.fingerprint()
        if ckpt.is_file():
            return self._load_checkpoint(ckpt, fp)
        # A fresh leg: drop samples of an earlier run that never reached a checkpoint.
        for stale in ("samples.bin", "samples.json"):
            (self.leg_dir / stale).unlink(missing_ok=True)
        atomic_write_bytes(self.leg_dir / "fingerprint.json",
                           json.dumps(fp, indent=1, default=_json_default).encode())
        return self._initial_state()

    def _initial_state(self) -> dict[str, Any]:
        import openmm
        from openmm import unit

        s = self.settings
        k_states = self.n_states
        n = self.system.getNumParticles()
        positions = np.empty((k_states, n, 3))
        velocities = np.empty((k_states, n, 3))
        boxes = np.repeat(self.box[None], k_states, axis=0)
        u_own = np.empty(k_states)
        for r in range(k_states):
            self._set_params(r)
            self._load_replica(self.positions, None, self.box)
            if s.minimize:
                # OpenMM's default tolerance (10 kJ/mol/nm), bounded so a large solvated
                # system does not minimise for minutes per replica.
                openmm.LocalEnergyMinimizer.minimize(self._context, 10.0, _MINIMIZE_MAX_ITER)
            elif self.system.getNumConstraints():
                self._context.applyConstraints(1e-6)
            self._context.setVelocitiesToTemperature(s.temperature_K * unit.kelvin,
                                                     _derived_seed(s.seed, f"velocities{r}"))
            pos, vel, box, energy = self._read_replica()
            if not (np.isfinite(pos).all() and math.isfinite(energy)):
                raise SamplingError(
                    f"leg {self.name!r}: the initial configuration has a non-finite energy "
                    f"({energy}) at state {r} {self.states[r]}; check the input structure for "
                    f"overlapping atoms and the system's parameters", leg=self.name,
                    state_index=r, replica=r, iteration=0)
            positions[r], velocities[r], boxes[r], u_own[r] = pos, vel, box, energy / self.kT
        state = {
            "iteration": 0,
            "positions": positions,
            "velocities": velocities,
            "box": boxes,
            "u_own": u_own,
            "replica_states": np.arange(k_states, dtype=np.int64),
            "rng": np.random.Generator(np.random.PCG64(_derived_seed(s.seed, "swaps"))),
        }
        self._write_checkpoint(state)
        return state

    def _write_checkpoint(self, state: dict[str, Any]) -> None:
        buf = io.BytesIO()
        np.savez(
            buf,
            version=np.int64(_CHECKPOINT_VERSION),
            iteration=np.int64(state["iteration"]),
            positions=state["positions"],
            velocities=state["velocities"],
            box=state["box"],
            u_own=state["u_own"],
            replica_states=state["replica_states"],
            rng=np.array(json.dumps(state["rng"].bit_generator.state, default=_json_default)),
            context=np.frombuffer(self._context.createCheckpoint(), dtype=np.uint8),
            fingerprint=np.array(json.dumps(self.fingerprint(), default=_json_default)),
        )
        atomic_write_bytes(self.leg_dir / "checkpoint.npz", buf.getvalue())

    def _load_checkpoint(self, path: Path, fp: dict[str, Any]) -> dict[str, Any]:
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except Exception as err:  # noqa: BLE001 - zipfile/ValueError on a damaged file
            raise ValueError(f"leg {self.name!r}: the checkpoint {path} cannot be read ({err}); "
                             f"delete the leg directory {self.leg_dir} to start it again") from err
        old = json.loads(str(data["fingerprint"]))
        diffs = _fingerprint_diff(old, json.loads(json.dumps(fp, default=_json_default)))
        if diffs:
            raise ValueError(
                f"leg {self.name!r}: cannot resume from {path}: the leg changed since the "
                f"checkpoint ({'; '.join(diffs)}). Restore the original inputs, or use a new "
                f"run directory (or delete {self.leg_dir}) to start over")
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = json.loads(str(data["rng"]))
        self._context.loadCheckpoint(data["context"].tobytes())
        return {
            "iteration": int(data["iteration"]),
            "positions": np.array(data["positions"]),
            "velocities": np.array(data["velocities"]),
            "box": np.array(data["box"]),
            "u_own": np.array(data["u_own"]),
            "replica_states": np.array(data["replica_states"], dtype=np.int64),
            "rng": rng,
        }

    def _write_layout(self, target: int) -> None:
        path = self.leg_dir / "samples.json"
        layout = {
            "version": _SAMPLES_VERSION,
            "name": self.name,
            "n_iterations_target": int(target),
            "n_states": self.n_states,
            "n_replicas": self.n_states,
            "record_bytes": _record_dtype(self.n_states, self.n_states).itemsize,
            "temperature_K": self.settings.temperature_K,
            "states": [dict(s) for s in self.states],
            "settings": asdict(self.settings),
        }
        atomic_write_bytes(path, json.dumps(layout, indent=1, default=_json_default).encode())

    # ------------------------------------------------------------------------------ failures
    def _failure(self, what: str, it: int, r: int, k: int, state: dict[str, Any],
                 pos: np.ndarray, vel: np.ndarray, box: np.ndarray) -> SamplingError:
        stem = self.leg_dir / f"failed_iter{it}_replica{r}_state{k}"
        npz = stem.with_suffix(".npz")
        start_pos = state["positions"][r]
        np.savez(npz, positions=pos, velocities=vel, box=box, start_positions=start_pos,
                 start_velocities=state["velocities"][r], start_box=state["box"][r],
                 state_index=np.int64(k), replica=np.int64(r), iteration=np.int64(it),
                 parameters=np.array(json.dumps(self.states[k])))
        pdb = None
        if self.topology is not None:
            from openmm import app

            pdb = stem.with_suffix(".pdb")
            frame = pos if np.isfinite(pos).all() and np.abs(pos).max() < 1e4 else start_pos
            with open(pdb, "w") as fh:
                app.PDBFile.writeFile(self.topology, frame * 10.0 * _angstrom(), fh)
        saved = f"{pdb} (PDB) and {npz}" if pdb else f"{npz}"
        params = ", ".join(f"{key}={v:g}" for key, v in self.states[k].items())
        msg = (f"leg {self.name!r}: replica {r} at state {k} ({params}) blew up in iteration "
               f"{it}: {what}. Saved the failing frame (and the frame it started from) to "
               f"{saved}. Try a smaller timestep (now {self.settings.timestep_fs:g} fs), "
               f"minimisation before sampling (minimize=True), no hydrogen mass repartitioning, "
               f"or more intermediate states near this one (a softer soft-core path).")
        return SamplingError(msg, frame=npz, pdb=pdb, leg=self.name, state_index=k, replica=r,
                             iteration=it)


# ------------------------------------------------------------------------------------ helpers
#: Forces known to read no context parameter (no global parameters to declare).
_PARAMETER_FREE_FORCES = frozenset({
    "HarmonicBondForce", "HarmonicAngleForce", "PeriodicTorsionForce", "RBTorsionForce",
    "CMAPTorsionForce", "CMMotionRemover", "GBSAOBCForce", "MonteCarloBarostat",
    "MonteCarloAnisotropicBarostat", "MonteCarloMembraneBarostat", "MonteCarloFlexibleBarostat",
    "AndersenThermostat", "RMSDForce",
})
#: Forces that contain other forces, whose parameters they may not list as their own.
_COMPOSITE_FORCES = frozenset({"CustomCVForce", "ATMForce"})


def _force_parameters(force: Any) -> set[str] | None:
    """The context parameters a force reads, or None when that cannot be known."""
    name = type(force).__name__
    if name in _COMPOSITE_FORCES:
        return None
    if hasattr(force, "getNumGlobalParameters"):
        return {force.getGlobalParameterName(i) for i in range(force.getNumGlobalParameters())}
    if hasattr(force, "getGlobalParameters"):  # PythonForce
        return set(force.getGlobalParameters())
    if name in _PARAMETER_FREE_FORCES:
        return set()
    return None


def _energy_split(system: Any, keys: set[str]) -> tuple[int, int] | None:
    """Force-group masks (dependent, independent) when the forces that read a state parameter
    and those that do not sit in disjoint force groups; else None (evaluate whole energies)."""
    dependent: set[int] = set()
    independent: set[int] = set()
    for force in system.getForces():
        params = _force_parameters(force)
        group = force.getForceGroup()
        if params is None or params & keys:
            dependent.add(group)
        else:
            independent.add(group)
    if not dependent or not independent or dependent & independent:
        return None
    return sum(1 << g for g in dependent), sum(1 << g for g in independent)


def _angstrom() -> Any:
    from openmm import unit

    return unit.angstrom


def _vec3(v: np.ndarray) -> Any:
    import openmm

    return openmm.Vec3(float(v[0]), float(v[1]), float(v[2]))


def _derived_seed(seed: int, purpose: str) -> int:
    """A nonzero 31-bit seed, deterministic in (seed, purpose)."""
    h = hashlib.sha256(f"{int(seed)}:{purpose}".encode()).digest()
    return int.from_bytes(h[:4], "little") % (2**31 - 2) + 1


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def _check_states(states: Sequence[Mapping[str, float]]) -> list[dict[str, float]]:
    if isinstance(states, (str, bytes)) or not isinstance(states, Sequence) or not states:
        raise ValueError("states must be a non-empty sequence of {parameter: value} mappings")
    out = []
    keys = None
    for i, st in enumerate(states):
        if not isinstance(st, Mapping) or not st:
            raise ValueError(f"states[{i}] must be a non-empty mapping of context parameter "
                             f"names to values, got {st!r}")
        d = {}
        for key, v in st.items():
            try:
                fv = float(v)
            except (TypeError, ValueError) as err:
                raise ValueError(f"states[{i}][{key!r}] must be a number, got {v!r}") from err
            if not math.isfinite(fv):
                raise ValueError(f"states[{i}][{key!r}] must be finite, got {v!r}")
            d[str(key)] = fv
        if keys is None:
            keys = set(d)
        elif set(d) != keys:
            raise ValueError(f"states[{i}] sets parameters {sorted(d)}, but states[0] sets "
                             f"{sorted(keys)}; every state must set the same parameters")
        out.append(d)
    return out


def _fingerprint_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    diffs = []
    if old.get("n_particles") != new.get("n_particles"):
        diffs.append(f"number of particles {old.get('n_particles')} -> {new.get('n_particles')}")
    if old.get("system_sha256") != new.get("system_sha256"):
        diffs.append("the System differs (forces, parameters or masses: its XML hash changed)")
    if old.get("initial_positions_sha256") != new.get("initial_positions_sha256"):
        diffs.append("the initial positions differ")
    so, sn = old.get("states", []), new.get("states", [])
    if len(so) != len(sn):
        diffs.append(f"number of states {len(so)} -> {len(sn)}")
    else:
        for i, (a, b) in enumerate(zip(so, sn)):
            if a != b:
                changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                diffs.append(f"state {i}: " + ", ".join(
                    f"{k} {a.get(k)} -> {b.get(k)}" for k in changed))
    seto, setn = old.get("settings", {}), new.get("settings", {})
    for k in sorted(set(seto) | set(setn)):
        if seto.get(k) != setn.get(k):
            diffs.append(f"settings.{k} {seto.get(k)!r} -> {setn.get(k)!r}")
    return diffs


class _Progress:
    """A tqdm bar on a terminal; otherwise a line with rate and ETA every ``every`` iterations."""

    def __init__(self, name: str, start: int, total: int, enabled: bool, every: int) -> None:
        self.name, self.start, self.total, self.every = name, start, total, every
        self.enabled = enabled
        self.t0 = time.perf_counter()
        self.bar = None
        if enabled and sys.stdout.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=start, unit="it", desc=name, dynamic_ncols=True)

    def update(self, done: int, state: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            return
        if (done - self.start) % self.every and done != self.total:
            return
        elapsed = time.perf_counter() - self.t0
        rate = (done - self.start) / elapsed if elapsed > 0 else float("inf")
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        print(f"[{self.name}] iteration {done}/{self.total} ({100.0 * done / self.total:5.1f}%)"
              f"  {rate:.3g} it/s  ETA {_fmt_seconds(eta)}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{sec:02d}"
