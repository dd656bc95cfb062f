"""Hydration free energy by alchemical decoupling, MM or ML/MM.

Thermodynamic cycle
-------------------
The ligand's interactions with its surroundings are switched off in two legs, each one
``openmm.System`` alchemically modified by openmmtools' ``AbsoluteAlchemicalFactory`` (the ligand
is the alchemical region; electrostatics annihilated, i.e. also scaled within the ligand; sterics
decoupled with the factory's soft-core Lennard-Jones, the ligand's own Lennard-Jones kept):

``solvent``  the ligand in a TIP3P box (PME; pure water, counter-ions only for a charged
             ligand): states go from fully coupled (λ_elec = λ_ster = 1) through λ_elec → 0, then
             λ_ster → 0.
``vacuum``   the ligand alone (no cutoff), the same states: it accounts for the intramolecular
             electrostatics that annihilation removed.

Both legs report ΔG_leg = G(decoupled) − G(coupled) (MBAR's f_{K−1} − f_0; positive when
coupling is favourable), and

    ΔG_hyd = ΔG_vacuum_leg − ΔG_solvent_leg

(negative: the molecule prefers water). The decoupled end states of the two legs are the same
ligand without electrostatics and without intermolecular interactions, so they cancel; both legs
have the same temperature (298.15 K), the solvent leg runs at constant volume in a box
equilibrated at 1 bar.

Long-range dispersion: the factory's soft-core sterics force would recompute its long-range
correction at every λ change (about 0.5 s each); it is switched off in sampling and the missing
ligand–water dispersion tail of the coupled state, a constant at fixed volume, is added
analytically: ΔG_solvent_leg += −E_tail/kT with E_tail = the correction of that force at
λ_ster = 1 (evaluated once with OpenMM).

ML/MM (``potential=BUNDLE``): the ligand's intramolecular energy comes from the tensormol model
(:func:`tensormol.fe._mlmm.add_ml_potential`, applied before the alchemical modification). The
ligand then has no MM intramolecular nonbonded terms, so every state of the vacuum leg has the
same energy function: ΔG_vacuum_leg = 0 exactly, and that leg is not run (checked on the built
system, not assumed).

Everything goes into ``run_dir``: ``inputs.json`` (as parsed), ``ligand/`` (GAFF2 files, SDF),
``legs/<leg>/`` (the MM system XML, topology PDB and equilibrated coordinates of the leg, the
sampler's checkpoints and samples, ``estimate.json``), ``results.json``/``results.csv`` and plots.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "HydrationPreset",
    "PRESETS",
    "hydration_states",
    "prepare_hydration",
    "run_hydration_leg",
    "run_hydration",
    "HydrationResult",
]

LEGS = ("solvent", "vacuum")


@dataclass(frozen=True)
class HydrationPreset:
    """Protocol of a hydration run.

    Attributes
    ----------
    name : str
    electrostatics : tuple of float
        λ_elec of the states at full sterics, from 1 to 0.
    sterics : tuple of float
        λ_ster of the states at zero electrostatics, from 1 to 0 (the first, 1, is the last
        electrostatics state and is not repeated).
    n_iterations, steps_per_iteration : int
        Replica-exchange iterations and MD steps between exchanges (both legs).
    timestep_fs : float
        With hydrogen mass repartitioning to ``hydrogen_mass_amu`` and bonds to H constrained.
    hydrogen_mass_amu : float
    padding_nm, cutoff_nm : float
        Water box (solute to face) and nonbonded cutoff. The cubic box edge is the larger of
        2 (radius + padding) and 2 cutoff + 0.2 nm (room for the NPT equilibration to shrink it).
    box_nm : float or None
        A fixed cubic box edge instead (checked: at least twice the cutoff).
    equilibration_ps : float
        NPT (1 bar) equilibration of the coupled solvent system before sampling.
    vacuum_iterations, vacuum_steps_per_iteration : int
        The vacuum leg's iterations and steps between exchanges (a small molecule alone
        decorrelates within a fraction of a picosecond; its steps are dominated by the
        per-step overhead of the alchemical forces, about 1 ms on one core).
    """

    name: str
    electrostatics: tuple[float, ...]
    sterics: tuple[float, ...]
    n_iterations: int
    steps_per_iteration: int
    timestep_fs: float = 4.0
    hydrogen_mass_amu: float = 3.0
    padding_nm: float = 0.8
    cutoff_nm: float = 0.9
    box_nm: float | None = None
    equilibration_ps: float = 20.0
    vacuum_iterations: int = 100
    vacuum_steps_per_iteration: int = 50
    temperature_K: float = 298.15

    @property
    def n_states(self) -> int:
        return len(self.electrostatics) + len(self.sterics) - 1


PRESETS: dict[str, HydrationPreset] = {
    # A smoke test of the whole pipeline: a few minutes, σ of about 0.5 kcal/mol.
    "quick": HydrationPreset(
        "quick", electrostatics=(1.0, 0.5, 0.0), sterics=(1.0, 0.6, 0.4, 0.25, 0.1, 0.0),
        n_iterations=20, steps_per_iteration=250, equilibration_ps=5.0, vacuum_iterations=50),
    # Small neutral molecules: aimed at σ <= 0.3 kcal/mol in <= 15 min on 2 cores (see
    # docs/free_energy.md for what was measured). 12 states: soft-core sterics needs its states
    # where the cavity opens (λ_ster 0.2-0.6).
    "standard": HydrationPreset(
        "standard", electrostatics=(1.0, 0.75, 0.5, 0.25, 0.0),
        sterics=(1.0, 0.8, 0.6, 0.45, 0.3, 0.2, 0.1, 0.0),
        n_iterations=40, steps_per_iteration=250, equilibration_ps=10.0, vacuum_iterations=100),
}


def hydration_states(preset: HydrationPreset) -> list[dict[str, float]]:
    """The states of both legs: dicts of the factory's context parameters, coupled first."""
    e, s = list(preset.electrostatics), list(preset.sterics)
    if not (e and s and e[0] == 1.0 and e[-1] == 0.0 and s[0] == 1.0 and s[-1] == 0.0):
        raise ValueError("electrostatics and sterics schedules must run from 1.0 to 0.0, got "
                         f"{e} and {s}")
    states = [{"lambda_electrostatics": float(x), "lambda_sterics": 1.0} for x in e]
    states += [{"lambda_electrostatics": 0.0, "lambda_sterics": float(x)} for x in s[1:]]
    return states


def _preset_from_inputs(inputs: Mapping[str, Any]) -> HydrationPreset:
    return HydrationPreset(**{k: tuple(v) if isinstance(v, list) else v
                              for k, v in inputs["preset"].items()})


def _resolve_preset(preset: str | HydrationPreset) -> HydrationPreset:
    if isinstance(preset, HydrationPreset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    return PRESETS[preset]


# --------------------------------------------------------------------------- files
def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _leg_dir(run_dir: Path, leg: str) -> Path:
    return run_dir / "legs" / leg


# --------------------------------------------------------------------------- preparation
def _alchemical(system: Any, ligand_atoms: Sequence[int]) -> Any:
    from tensormol.fe._analysis import quiet_pymbar

    with quiet_pymbar():  # openmmtools imports pymbar, whose import prints a banner
        from openmmtools.alchemy import AbsoluteAlchemicalFactory, AlchemicalRegion

    factory = AbsoluteAlchemicalFactory(disable_alchemical_dispersion_correction=True,
                                        alchemical_pme_treatment="exact")
    region = AlchemicalRegion(alchemical_atoms=list(ligand_atoms),
                              annihilate_electrostatics=True, annihilate_sterics=False)
    return factory.create_alchemical_system(system, region)


def _dispersion_tail_kj(alchemical_system: Any, positions: np.ndarray,
                        box: np.ndarray | None) -> float:
    """Long-range dispersion correction (kJ/mol) of the ligand–environment soft-core force at
    λ_ster = 1 (what sampling leaves out, see the module notes)."""
    import openmm
    from openmm import unit

    if box is None:
        return 0.0
    system = copy.deepcopy(alchemical_system)
    found = False
    for f in system.getForces():
        f.setForceGroup(0)
        # The ligand-environment soft-core force (an interaction group alchemical x rest).
        if isinstance(f, openmm.CustomNonbondedForce) and f.getNumInteractionGroups() == 1 \
                and "lambda_sterics" in f.getEnergyFunction() \
                and set(f.getInteractionGroupParameters(0)[0]) \
                != set(f.getInteractionGroupParameters(0)[1]):
            f.setForceGroup(1)
            found = True
    if not found:
        return 0.0
    energies = []
    for use in (False, True):
        for f in system.getForces():
            if f.getForceGroup() == 1:
                f.setUseLongRangeCorrection(use)
        ctx = openmm.Context(system, openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("Reference"))
        ctx.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box])
        ctx.setPositions(positions)
        ctx.setParameter("lambda_sterics", 1.0)
        ctx.setParameter("lambda_electrostatics", 1.0)
        st = ctx.getState(getEnergy=True, groups={1})
        energies.append(st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
        del ctx
    return float(energies[1] - energies[0])


def _equilibrate(built: Any, preset: HydrationPreset, threads: int | None, platform: str,
                 seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Minimise, then (periodic) NPT at 1 bar for ``equilibration_ps`` with the MM system."""
    import openmm
    from openmm import unit

    system = copy.deepcopy(built.system)
    periodic = built.box_vectors is not None
    if periodic:
        barostat = openmm.MonteCarloBarostat(1.0 * unit.bar, preset.temperature_K * unit.kelvin,
                                             25)
        barostat.setRandomNumberSeed(int(seed) + 2)  # 0 would draw a random seed
        system.addForce(barostat)
    integ = openmm.LangevinMiddleIntegrator(preset.temperature_K * unit.kelvin,
                                            1.0 / unit.picosecond,
                                            preset.timestep_fs * unit.femtosecond)
    integ.setRandomNumberSeed(int(seed) + 1)
    props = {"Threads": str(threads)} if (platform == "CPU" and threads) else {}
    ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName(platform), props)
    if periodic:
        ctx.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in built.box_vectors])
    ctx.setPositions(built.positions)
    openmm.LocalEnergyMinimizer.minimize(ctx, 10.0, 500)
    if periodic:
        ctx.setVelocitiesToTemperature(preset.temperature_K * unit.kelvin, int(seed) + 1)
        integ.step(int(round(preset.equilibration_ps * 1000.0 / preset.timestep_fs)))
    st = ctx.getState(getPositions=True, enforcePeriodicBox=False)
    pos = np.asarray(st.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    box = None
    if periodic:
        box = np.asarray(st.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer))
    return pos, box


def prepare_hydration(ligand: Any, run_dir: str | os.PathLike, *,
                      preset: str | HydrationPreset = "standard",
                      potential: str | os.PathLike | None = None,
                      cache_dir: str | os.PathLike | None = None, resume: bool = False,
                      threads: int | None = None, platform: str = "CPU", seed: int = 0,
                      name: str | None = None) -> dict[str, Any]:
    """Parameterise the ligand and build, equilibrate and save both legs' MM systems.

    Returns the parsed inputs (also written to ``run_dir/inputs.json``). Already prepared legs
    are reused when ``resume`` is true; a run directory with other inputs raises.
    """
    from rdkit import Chem

    from tensormol.fe._ligands import parameterize_ligand
    from tensormol.fe._systems import SystemSettings, build_system, check_box

    p = _resolve_preset(preset)
    run = Path(run_dir)
    smiles_in = ligand if isinstance(ligand, str) else None
    pot_path = None if potential is None else Path(potential)
    if pot_path is not None and not pot_path.is_file():
        raise FileNotFoundError(f"potential {str(pot_path)!r} does not exist")
    inputs_file = run / "inputs.json"
    if inputs_file.is_file() and not resume:
        raise ValueError(f"run directory {str(run)!r} already holds a run; pass resume=True "
                         "(--resume) to continue it, or choose another directory")
    if resume and not inputs_file.is_file() and run.is_dir() and any(run.iterdir()):
        raise ValueError(f"run directory {str(run)!r} is not empty but has no inputs.json; "
                         "nothing to resume")
    if p.box_nm is not None:  # validate before any expensive work
        check_box(np.eye(3) * p.box_nm, p.cutoff_nm, "water box (preset box_nm)")
    run.mkdir(parents=True, exist_ok=True)
    lig = parameterize_ligand(ligand, cache_dir=cache_dir or run / "ligand_cache", name=name)
    inputs = {
        "kind": "hydration", "name": lig.name, "smiles": lig.smiles, "input": smiles_in,
        "inchikey": lig.inchikey, "net_charge": lig.net_charge,
        "charge_method": lig.charge_method, "preset": asdict(p),
        "potential": None if pot_path is None else str(pot_path.resolve()),
        "potential_sha256": None if pot_path is None else _sha256(pot_path),
        "seed": int(seed), "legs": ["solvent"] if pot_path is not None else list(LEGS),
        "sign_convention": "dG_hyd = dG_vacuum_leg - dG_solvent_leg; dG_leg = G(decoupled) - "
                           "G(coupled)",
    }
    if inputs_file.is_file():
        old = json.loads(inputs_file.read_text())
        new = json.loads(json.dumps(inputs))  # tuples -> lists, as stored
        changed = [k for k in ("smiles", "preset", "potential_sha256", "seed", "charge_method")
                   if old.get(k) != new.get(k)]
        if changed:
            raise ValueError(f"cannot resume {str(run)!r}: {', '.join(changed)} differ from the "
                             "run's inputs.json; use another run directory")
    lig_dir = run / "ligand"
    lig_dir.mkdir(exist_ok=True)
    for src in (lig.prmtop_path, lig.inpcrd_path, lig.mol2_path, lig.frcmod_path):
        shutil.copyfile(src, lig_dir / src.name)
    Chem.MolToMolFile(lig.rdkit_mol, str(lig_dir / "ligand.mol"))
    _write_atomic(inputs_file, json.dumps(inputs, indent=1))
    for leg in inputs["legs"]:
        d = _leg_dir(run, leg)
        if (d / "prepared.json").is_file():
            continue
        d.mkdir(parents=True, exist_ok=True)
        settings = SystemSettings(
            solvent="tip3p" if leg == "solvent" else "vacuum", cutoff_nm=p.cutoff_nm,
            padding_nm=p.padding_nm, box_nm=_box_edge(lig.positions, p),
            ionic_strength_molar=0.0, neutralize=True, hydrogen_mass_amu=p.hydrogen_mass_amu)
        built = build_system([lig], settings)
        pos, box = _equilibrate(built, p, threads, platform, seed)
        _save_leg(d, built, pos, box, p)
    return inputs


def _box_edge(positions: np.ndarray, p: HydrationPreset) -> float:
    if p.box_nm is not None:
        return float(p.box_nm)
    center = 0.5 * (positions.min(axis=0) + positions.max(axis=0))
    radius = float(np.linalg.norm(positions - center, axis=1).max())
    return max(2.0 * (radius + p.padding_nm), 2.0 * p.cutoff_nm + 0.2)


def _save_leg(d: Path, built: Any, pos: np.ndarray, box: np.ndarray | None,
              p: HydrationPreset) -> None:
    import openmm
    import openmm.app as app
    from openmm import unit

    from tensormol.fe._systems import check_box

    if box is not None:
        check_box(box, p.cutoff_nm, "equilibrated water box")
        built.system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*r) for r in box])
        built.topology.setPeriodicBoxVectors([openmm.Vec3(*r) for r in box] * unit.nanometer)
    _write_atomic(d / "system.xml", openmm.XmlSerializer.serialize(built.system))
    with open(d / ".topology.pdb.tmp", "w") as fh:
        app.PDBFile.writeFile(built.topology, unit.Quantity(pos, unit.nanometer), fh,
                              keepIds=True)
    os.replace(d / ".topology.pdb.tmp", d / "topology.pdb")
    arrays = {"positions_nm": pos}
    if box is not None:
        arrays["box_nm"] = box
    tmp = d / ".initial.npz.tmp"
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, d / "initial.npz")
    meta = {"ligand_atoms": built.ligand_atoms[0], "n_particles": built.system.getNumParticles(),
            "box_nm": None if box is None else box.tolist(),
            "settings": asdict(built.settings)}
    _write_atomic(d / "prepared.json", json.dumps(meta, indent=1))


# --------------------------------------------------------------------------- one leg
def _leg_system(run: Path, leg: str, inputs: Mapping[str, Any], threads: int | None
                ) -> tuple[Any, Any, np.ndarray, np.ndarray | None, list[int]]:
    import openmm
    import openmm.app as app

    d = _leg_dir(run, leg)
    meta = json.loads((d / "prepared.json").read_text())
    system = openmm.XmlSerializer.deserialize((d / "system.xml").read_text())
    topology = app.PDBFile(str(d / "topology.pdb")).topology
    init = np.load(d / "initial.npz")
    pos = np.asarray(init["positions_nm"])
    box = np.asarray(init["box_nm"]) if "box_nm" in init else None
    atoms = [int(a) for a in meta["ligand_atoms"]]
    if inputs.get("potential"):
        from tensormol.fe._mlmm import add_ml_potential

        pot = Path(inputs["potential"])
        if not pot.is_file() or _sha256(pot) != inputs["potential_sha256"]:
            raise ValueError(f"potential {str(pot)!r} is missing or changed since the run was "
                             "prepared (sha256 differs)")
        system = add_ml_potential(system, topology, [atoms], pot, threads=1)
    return _alchemical(system, atoms), topology, pos, box, atoms


def run_hydration_leg(run_dir: str | os.PathLike, leg: str, *, threads: int | None = None,
                      platform: str = "CPU", progress: bool = True,
                      n_iterations: int | None = None) -> dict[str, Any]:
    """Sample and analyse one prepared leg (a picklable task: paths and plain values only).

    Writes ``legs/<leg>/estimate.json`` and returns it as a dict (ΔG in kT, kcal/mol, kJ/mol,
    the dispersion tail, wall time).
    """
    from tensormol.fe._sampler import ReplicaExchange, SamplerSettings, SamplingResult

    run = Path(run_dir)
    if leg not in LEGS:
        raise ValueError(f"leg must be one of {LEGS}, got {leg!r}")
    inputs = json.loads((run / "inputs.json").read_text())
    p = _preset_from_inputs(inputs)
    states = hydration_states(p)
    t0 = time.perf_counter()
    system, topology, pos, box, atoms = _leg_system(run, leg, inputs, threads)
    iters = n_iterations or (p.n_iterations if leg == "solvent" else p.vacuum_iterations)
    vacuum = leg == "vacuum"
    settings = SamplerSettings(
        n_iterations=iters,
        steps_per_iteration=p.vacuum_steps_per_iteration if vacuum else p.steps_per_iteration,
        timestep_fs=p.timestep_fs, temperature_K=p.temperature_K, platform=platform,
        # A molecule alone: more threads only add synchronisation to each tiny step.
        threads=1 if (vacuum and platform == "CPU") else threads,
        seed=int(inputs["seed"]) + (17 if vacuum else 0),
        checkpoint_every=max(1, min(10, iters // 10)),
        # The prepared coordinates are minimised (and, in water, equilibrated at full coupling):
        # every state starts from them as they are.
        minimize=False)
    result = None
    if (_leg_dir(run, leg) / "samples.json").is_file():
        done = SamplingResult.load(_leg_dir(run, leg).parent, leg)
        if done.n_iterations >= iters and done.failure is None:
            result = done  # a finished leg is analysed, not rerun
    if result is None:
        sampler = ReplicaExchange(system, pos, states, settings, _leg_dir(run, leg).parent,
                                  name=leg, box_vectors=box, topology=topology,
                                  progress=progress)
        result = sampler.run()
    est, note = _analyze(result.u_kln, p.temperature_K, leg)
    tail = _dispersion_tail_kj(system, pos, box)
    from tensormol.fe._sampler import boltzmann_kj_per_mol

    kT = boltzmann_kj_per_mol(p.temperature_K)
    out = {
        "leg": leg, "estimate": est.to_dict(), "dispersion_tail_kJ": tail,
        "dg_kT": est.dg_kT - tail / kT, "ddg_kT": est.ddg_kT,
        "n_iterations": int(result.u_kln.shape[2]), "wall_s_this_call": time.perf_counter() - t0,
        "acceptance_neighbors": [float(result.acceptance[i, i + 1])
                                 for i in range(len(states) - 1)],
        "min_neighbor_overlap": est.min_neighbor_overlap(),
        "analysis_note": note,
    }
    _write_atomic(_leg_dir(run, leg) / "estimate.json", json.dumps(out, indent=1))
    return out


def _analyze(u_kln: np.ndarray, temperature_K: float, leg: str) -> tuple[Any, str | None]:
    """MBAR of a leg; with too few samples after the detected equilibration MBAR may not
    converge, and the whole series is then used (said in the leg's ``analysis_note``)."""
    from tensormol.fe._analysis import analyze_leg

    try:
        return analyze_leg(u_kln, temperature_K), None
    except Exception as first:  # noqa: BLE001 - pymbar raises its own ParameterError
        try:
            est = analyze_leg(u_kln, temperature_K, discard_equilibration=False)
        except Exception as err:  # noqa: BLE001
            raise RuntimeError(
                f"MBAR failed for the {leg} leg ({u_kln.shape[2]} iterations): {err}; sample "
                "longer (resume with more iterations)") from err
        return est, (f"MBAR did not converge on the production samples after equilibration "
                     f"detection ({first}); estimate from all {u_kln.shape[2]} iterations")


def vacuum_leg_is_constant(run_dir: str | os.PathLike) -> bool:
    """ML/MM: whether every state of the vacuum leg has the same energy (checked on a built
    system at the prepared coordinates and a perturbed copy)."""
    import openmm
    import openmm.app as app
    from openmm import unit

    from tensormol.fe._mlmm import add_ml_potential

    run = Path(run_dir)
    inputs = json.loads((run / "inputs.json").read_text())
    p = _preset_from_inputs(inputs)
    prm = app.AmberPrmtopFile(str(run / "ligand" / "lig.prmtop"))
    mm = prm.createSystem(nonbondedMethod=app.NoCutoff)
    atoms = list(range(mm.getNumParticles()))
    mixed = add_ml_potential(mm, prm.topology, [atoms], inputs["potential"], threads=1)
    alch = _alchemical(mixed, atoms)
    pos = app.AmberInpcrdFile(str(run / "ligand" / "lig.inpcrd")).getPositions(asNumpy=True)
    ctx = openmm.Context(alch, openmm.VerletIntegrator(0.001),
                         openmm.Platform.getPlatformByName("Reference"))
    rng = np.random.default_rng(0)
    for x in (pos, pos + rng.normal(0, 0.005, pos.shape) * unit.nanometer):
        ctx.setPositions(x)
        es = []
        for s in hydration_states(p):
            for k, v in s.items():
                ctx.setParameter(k, v)
            es.append(ctx.getState(getEnergy=True).getPotentialEnergy()
                      .value_in_unit(unit.kilojoule_per_mole))
        if max(es) - min(es) > 1e-6 * max(1.0, abs(es[0])):
            return False
    return True


# --------------------------------------------------------------------------- whole run
@dataclass
class HydrationResult:
    """ΔG_hyd ± σ (kcal/mol and kJ/mol), per-leg estimates and wall time."""

    name: str
    smiles: str
    dg_kcal: float
    ddg_kcal: float
    dg_kJ: float
    ddg_kJ: float
    legs: dict[str, dict[str, Any]]
    wall_s: float
    run_dir: Path
    potential: str | None = None


def _combine(legs: Mapping[str, Mapping[str, Any]], temperature_K: float
             ) -> tuple[float, float]:
    """(ΔG_hyd, σ) in kT from the legs' ΔG (kT): vacuum − solvent, σ added in quadrature."""
    vac = legs.get("vacuum", {"dg_kT": 0.0, "ddg_kT": 0.0})
    sol = legs["solvent"]
    return (float(vac["dg_kT"]) - float(sol["dg_kT"]),
            float(np.hypot(vac["ddg_kT"], sol["ddg_kT"])))


def run_hydration(smiles_or_mol: Any, run_dir: str | os.PathLike, *,
                  preset: str | HydrationPreset = "standard",
                  potential: str | os.PathLike | None = None, resume: bool = False,
                  threads: int | None = None, platform: str = "CPU", n_workers: int = 1,
                  scheduler: str | None = None, cache_dir: str | os.PathLike | None = None,
                  seed: int = 0, name: str | None = None, progress: bool = True,
                  experimental_kcal: float | None = None, plots: bool = True
                  ) -> HydrationResult:
    """Hydration free energy of a molecule; everything goes into ``run_dir``.

    Parameters
    ----------
    smiles_or_mol : str or rdkit.Chem.Mol
        SMILES, an SDF/MOL path, or a molecule (see
        :func:`tensormol.fe._ligands.ligand_from_input`).
    run_dir : path-like
    preset : {"quick", "standard"} or HydrationPreset
    potential : path-like, optional
        A tensormol bundle: ML/MM (the ligand's intramolecular energy from the model).
    resume : bool
        Continue a killed run in ``run_dir`` (finished iterations are not redone).
    threads : int, optional
        CPU platform threads per leg.
    platform : str
        OpenMM platform.
    n_workers, scheduler :
        Legs run as independent tasks: serially (default), or through Dask
        (:func:`tensormol.fe._scaleout.run_tasks`) with ``n_workers`` local processes or a
        scheduler address.
    experimental_kcal : float, optional
        Written next to the result.
    plots : bool
        Draw the PNG plots (overlap, convergence, replica mixing) into ``run_dir/plots``.

    Returns
    -------
    HydrationResult
    """
    t0 = time.perf_counter()
    run = Path(run_dir)
    inputs = prepare_hydration(smiles_or_mol, run, preset=preset, potential=potential,
                               cache_dir=cache_dir, resume=resume, threads=threads,
                               platform=platform, seed=seed, name=name)
    if potential is not None and not vacuum_leg_is_constant(run):
        raise RuntimeError("ML/MM vacuum leg is not constant across states; the ligand still "
                           "has alchemically scaled intramolecular terms")
    legs = inputs["legs"]
    kwargs = {"threads": threads, "platform": platform, "progress": progress}
    if n_workers > 1 or scheduler is not None:
        from tensormol.fe._scaleout import run_tasks

        outs = run_tasks([(_leg_task, (str(run), leg, kwargs)) for leg in legs],
                         scheduler=scheduler, n_workers=n_workers)
        for leg, out in zip(legs, outs):
            if isinstance(out, BaseException):
                raise RuntimeError(f"hydration leg {leg!r} failed: {out}") from out
    else:
        outs = [run_hydration_leg(run, leg, **kwargs) for leg in legs]
    per_leg = dict(zip(legs, outs))
    temperature = float(inputs["preset"]["temperature_K"])
    from tensormol.fe._analysis import kT_to

    dg_kT, ddg_kT = _combine(per_leg, temperature)
    wall = time.perf_counter() - t0
    res = HydrationResult(
        name=inputs["name"], smiles=inputs["smiles"],
        dg_kcal=kT_to(dg_kT, "kcal/mol", temperature), ddg_kcal=kT_to(ddg_kT, "kcal/mol",
                                                                       temperature),
        dg_kJ=kT_to(dg_kT, "kJ/mol", temperature), ddg_kJ=kT_to(ddg_kT, "kJ/mol", temperature),
        legs=per_leg, wall_s=wall, run_dir=run, potential=inputs["potential"])
    _write_results(run, res, inputs, experimental_kcal, plots)
    return res


def _leg_task(run_dir: str, leg: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    return run_hydration_leg(run_dir, leg, **kwargs)


def _write_results(run: Path, res: HydrationResult, inputs: Mapping[str, Any],
                   experimental_kcal: float | None, plots: bool = True) -> None:
    from tensormol.fe._analysis import LegEstimate

    row = {"name": res.name, "kind": "hydration", "dg_kcal": res.dg_kcal,
           "ddg_kcal": res.ddg_kcal, "dg_kJ": res.dg_kJ, "ddg_kJ": res.ddg_kJ,
           "status": "done", "error": None, "legs": [f"legs/{leg}" for leg in res.legs],
           "smiles": res.smiles, "potential": res.potential,
           "wall_s": res.wall_s,
           "sign_convention": inputs["sign_convention"]}
    # Keyed by the leg directory relative to the run (where the report finds the samples).
    legs = {f"legs/{leg}": LegEstimate.from_dict(out["estimate"]) for leg, out in res.legs.items()}
    try:
        from tensormol.fe._results import write_results
    except ImportError:
        write_results = None
    if write_results is not None:
        exp = None if experimental_kcal is None else {res.name: experimental_kcal}
        write_results(run, [row], legs, experimental=exp, plots=plots)
    else:  # the results module is optional: keep a plain results.json
        doc = {"rows": [row], "legs": {k: v.to_dict() for k, v in legs.items()},
               "experimental_kcal": experimental_kcal}
        _write_atomic(run / "results.json", json.dumps(doc, indent=1))
    _write_atomic(run / "hydration.json", json.dumps(
        {**row, "experimental_kcal": experimental_kcal,
         "legs_detail": {k: {kk: vv for kk, vv in v.items() if kk != "estimate"}
                         for k, v in res.legs.items()}}, indent=1))
