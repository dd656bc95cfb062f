"""Binding free energies with the Alchemical Transfer Method: config → legs → samples → ΔG.

A run (``tensormol fe binding -c FILE``) goes through three stages:

1. **Check** (nothing written): the config, its files, the ligands (read, or built from SMILES and
   posed by alignment on the reference ligand: MCS-constrained alignment when the two share at
   least three heavy atoms, Open3DAlign shape alignment otherwise, over 30 conformers, keeping
   the best one whose heavy atoms clear the receptor's by ``_CLASH_A``), that each ligand is in
   the site (a heavy atom within ``receptor.contact_A`` of a receptor heavy atom and its centroid
   within the site restraint's radius), the elements against ``potential``, and the water box
   against twice the cutoff.
2. **Prepare** each leg into ``<output>/legs/<leg>/`` (written in a temporary directory and renamed,
   so a leg is either complete or absent): ligand parameters (GAFF2/AM1-BCC, cached), the MM
   system (``mm_system.xml``), initial positions, a PDB and ``leg.json`` (ligand atoms,
   displacement, restraint atoms, states).
3. **Run** each leg (Hamiltonian replica exchange with the analytic ATM reduced potentials,
   checkpointed, resumable), analyse with MBAR and write the results.

Legs. An *absolute* leg of ligand L transfers L from the site (state 0) to the solvent (state
K−1): ΔG°_b = −(f_{K−1} − f_0) + kT·(−ln C°V_site). A *relative* leg A → B starts with A in the
site and B in the solvent (displaced by d, aligned to A) and ends swapped:
ΔΔG_b(A → B) = f_{K−1} − f_0.

The system is built first with molecular mechanics only; a machine-learning potential on the
ligands (``potential``) is added to that MM system (both ligands in one batched call), then the
non-bonded forces are moved into the ``ATMForce``: the potential's energy is translation
invariant, so it stays outside the ``ATMForce`` and is evaluated once per step.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tensormol.fe._atm import (
    ATMReducedPotentials,
    ATMSettings,
    RestraintSettings,
    add_alignment_restraint,
    add_atm_force,
    add_position_restraints,
    add_site_restraint,
    anneal_forward,
    atm_states,
    site_standard_state_kT,
)
from tensormol.fe._config import BindingConfig, load_binding_config
from tensormol.units import ANGSTROM_TO_NM, NM_TO_ANGSTROM

__all__ = [
    "LegPlan",
    "PosedLigand",
    "plan_legs",
    "pose_ligand",
    "check_binding_inputs",
    "prepare_binding",
    "build_leg_system",
    "run_leg",
    "run_binding",
]

#: Heavy atoms of a posed ligand closer than this (Å) to receptor heavy atoms are a clash.
_CLASH_A = 2.2
#: Below this (Å) even the best pose is rejected; between the two the least clashing one is kept
#: (minimisation relaxes it).
_CLASH_MIN_A = 1.5
_N_POSE_CONFORMERS = 30
_LEG_FILE = "leg.json"


@dataclass(frozen=True)
class LegPlan:
    """One leg: ``kind`` "absolute" (ligands = (L,)) or "relative" (ligands = (A, B))."""

    name: str
    kind: str
    ligands: tuple[str, ...]


@dataclass
class PosedLigand:
    """A ligand with its pose: RDKit molecule with explicit H and one conformer (Å)."""

    name: str
    mol: Any
    posed_by: str  # "input" | "mcs" | "shape"

    @property
    def positions_A(self) -> np.ndarray:
        return np.asarray(self.mol.GetConformer().GetPositions(), dtype=np.float64)

    @property
    def heavy(self) -> np.ndarray:
        return np.array([a.GetAtomicNum() > 1 for a in self.mol.GetAtoms()])


def plan_legs(cfg: BindingConfig) -> list[LegPlan]:
    """The legs of a config: absolute legs, then relative legs (edges, then the star's)."""
    legs = [LegPlan(f"abs_{n}", "absolute", (n,)) for n in cfg.absolute]
    legs += [LegPlan(f"rel_{a}_{b}", "relative", (a, b)) for a, b in cfg.edge_list()]
    return legs


# --------------------------------------------------------------------------- receptor
@dataclass
class _ReceptorInfo:
    positions_A: np.ndarray  # (N, 3)
    elements: list[int]
    names: list[str]
    residues: list[int]  # residue index per atom
    is_protein: bool


def _receptor_info(cfg: BindingConfig) -> _ReceptorInfo:
    from tensormol.fe._systems import load_receptor

    r = cfg.receptor
    rec = load_receptor(r.pdb or r.prmtop, r.inpcrd if r.pdb is None else None)
    atoms = list(rec.topology.atoms())
    z = [a.element.atomic_number if a.element is not None else 0 for a in atoms]
    names = [a.name for a in atoms]
    residues = [a.residue.index for a in atoms]
    is_protein = any(a.name == "CA" and a.residue.name in _AMINO for a in atoms)
    return _ReceptorInfo(np.asarray(rec.positions) * NM_TO_ANGSTROM, z, names, residues,
                         is_protein)


_AMINO = {"ALA", "ARG", "ASN", "ASP", "ASH", "CYS", "CYX", "GLN", "GLU", "GLH", "GLY", "HIS",
          "HID", "HIE", "HIP", "ILE", "LEU", "LYS", "LYN", "MET", "PHE", "PRO", "SER", "THR",
          "TRP", "TYR", "VAL"}


def _site_atoms(cfg: BindingConfig, rec: _ReceptorInfo, reference: PosedLigand) -> list[int]:
    if cfg.receptor.site_atoms is not None:
        n = len(rec.elements)
        bad = [i for i in cfg.receptor.site_atoms if not 0 <= i < n]
        if bad:
            raise ValueError(f"receptor.site_atoms: indices {bad[:5]} outside 0..{n - 1}")
        return list(cfg.receptor.site_atoms)
    heavy = [i for i, z in enumerate(rec.elements) if z > 1]
    if not rec.is_protein:
        return heavy
    lig = reference.positions_A[reference.heavy]
    d = np.linalg.norm(rec.positions_A[heavy][:, None, :] - lig[None, :, :], axis=-1).min(1)
    near_res = {rec.residues[heavy[i]] for i in np.nonzero(d < cfg.receptor.site_cutoff_A)[0]}
    site = [i for i, (nm, res) in enumerate(zip(rec.names, rec.residues))
            if nm == "CA" and res in near_res]
    if len(site) < 3:
        raise ValueError(f"only {len(site)} residues lie within receptor.site_cutoff_A = "
                         f"{cfg.receptor.site_cutoff_A} Å of ligand {reference.name!r}; is it in "
                         "the site? (or give receptor.site_atoms)")
    return site


def _restrained_atoms(cfg: BindingConfig, rec: _ReceptorInfo) -> list[int]:
    mode = cfg.receptor.restrain
    if mode == "none":
        return []
    if mode == "backbone" and rec.is_protein:
        return [i for i, nm in enumerate(rec.names) if nm in ("CA", "C", "N")]
    return [i for i, z in enumerate(rec.elements) if z > 1]


# ---------------------------------------------------------------------------- ligands
def _read_ligand(lig: Any, seed: int) -> Any:
    from tensormol.fe._ligands import ligand_from_input

    return ligand_from_input(lig.sdf or lig.mol2 or lig.smiles, seed=seed)


def _min_heavy_distance(xyz_A: np.ndarray, rec: _ReceptorInfo) -> float:
    heavy = np.array(rec.elements) > 1
    d = np.linalg.norm(rec.positions_A[heavy][:, None, :] - xyz_A[None, :, :], axis=-1)
    return float(d.min())


def pose_ligand(name: str, mol: Any, reference: PosedLigand, rec: _ReceptorInfo, *,
                seed: int = 0) -> PosedLigand:
    """Pose ``mol`` on ``reference`` (MCS-constrained or shape alignment), avoiding clashes.

    Conformers (ETKDGv3, ``_N_POSE_CONFORMERS``) are aligned on the reference; the best-scoring
    one (RMSD over the MCS atoms, or the Open3DAlign score) whose heavy atoms stay ≥ ``_CLASH_A``
    from the receptor's is kept.
    """
    from rdkit import Chem
    from rdkit.Chem import AllChem, rdFMCS, rdMolAlign

    mol = Chem.AddHs(Chem.RemoveHs(mol))
    ref = reference.mol
    mcs = rdFMCS.FindMCS([Chem.RemoveHs(ref), Chem.RemoveHs(mol)], ringMatchesRingOnly=True,
                         completeRingsOnly=True, timeout=10,
                         atomCompare=rdFMCS.AtomCompare.CompareElements,
                         bondCompare=rdFMCS.BondCompare.CompareOrder)
    maps: list[list[tuple[int, int]]] = []
    n_heavy = min(Chem.RemoveHs(ref).GetNumAtoms(), Chem.RemoveHs(mol).GetNumAtoms())
    if mcs.numAtoms >= max(3, n_heavy // 2):  # a real common core; else align the shapes
        patt = Chem.MolFromSmarts(mcs.smartsString)
        mine = mol.GetSubstructMatch(patt)
        # every symmetry-equivalent match on the reference: a substituent may point elsewhere
        maps = [list(zip(mine, theirs)) for theirs in
                ref.GetSubstructMatches(patt, uniquify=False, maxMatches=48)]
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed)
    cids = list(AllChem.EmbedMultipleConfs(mol, _N_POSE_CONFORMERS, params))
    if not cids:
        raise ValueError(f"ligand {name!r}: RDKit could not embed conformers for posing")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMoleculeConfs(mol, maxIters=500)
    heavy = np.array([a.GetAtomicNum() > 1 for a in mol.GetAtoms()])
    scored = []
    for cid in cids:
        for pairs in (maps or [None]):
            if pairs is not None:
                score = rdMolAlign.AlignMol(mol, ref, prbCid=cid, atomMap=pairs)
                how = "mcs"
            else:
                o3a = rdMolAlign.GetO3A(mol, ref, prbCid=cid)
                o3a.Align()
                score = -o3a.Score()
                how = "shape"
            xyz = mol.GetConformer(cid).GetPositions()
            clearance = _min_heavy_distance(xyz[heavy], rec)
            scored.append((clearance < _CLASH_A, round(score, 2), -clearance, cid, xyz, how))
    scored.sort(key=lambda t: t[:3])
    clash, _, neg_clear, cid, xyz, how = scored[0]
    if clash:  # no clash-free pose: the one that clears the receptor most, if tolerable
        clash, _, neg_clear, cid, xyz, how = min(scored, key=lambda t: t[2])
        if -neg_clear < _CLASH_MIN_A:
            raise ValueError(f"ligand {name!r}: every posed conformer clashes with the receptor "
                             f"(closest heavy atoms {-neg_clear:.2f} Å < {_CLASH_MIN_A} Å); "
                             "give its pose as an SDF instead")
    out = Chem.Mol(mol)
    conf = Chem.Conformer(mol.GetConformer(cid))
    for i, p in enumerate(xyz):
        conf.SetAtomPosition(i, [float(v) for v in p])
    out.RemoveAllConformers()
    out.AddConformer(conf, assignId=True)
    return PosedLigand(name, out, how)


def _check_in_site(lig: PosedLigand, rec: _ReceptorInfo, site_center_A: np.ndarray,
                   cfg: BindingConfig) -> None:
    xyz = lig.positions_A
    contact = _min_heavy_distance(xyz[lig.heavy], rec)
    if contact > cfg.receptor.contact_A:
        raise ValueError(
            f"ligand {lig.name!r} is outside the receptor's site: its closest heavy atom is "
            f"{contact:.1f} Å from the receptor's heavy atoms (receptor.contact_A = "
            f"{cfg.receptor.contact_A} Å); give a pose in the site")
    off = float(np.linalg.norm(xyz.mean(0) - site_center_A))
    if off > cfg.restraints.site_tolerance_A:
        raise ValueError(
            f"ligand {lig.name!r}: its centroid is {off:.1f} Å from the site centre, beyond the "
            f"site restraint's radius ({cfg.restraints.site_tolerance_A} Å); give a pose in the "
            "site, receptor.site_atoms, or a larger restraints.site_tolerance_A")
    if contact < 1.0:
        raise ValueError(f"ligand {lig.name!r} overlaps the receptor (heavy atoms {contact:.2f} Å "
                         "apart)")


def _check_potential(cfg: BindingConfig, posed: dict[str, PosedLigand]) -> None:
    if cfg.potential is None:
        return
    from tensormol.export._bundle import load_bundle

    bundle = load_bundle(cfg.potential)
    for name, lig in posed.items():
        zs = [a.GetAtomicNum() for a in lig.mol.GetAtoms()]
        try:
            bundle.check_species(zs, what=f"ligand {name!r}")
        except Exception as err:  # BundleError: re-raise as a plain user error
            raise ValueError(str(err)) from None


# -------------------------------------------------------------------------------- checks
@dataclass
class _Checked:
    cfg: BindingConfig
    rec: _ReceptorInfo
    posed: dict[str, PosedLigand]
    site_atoms: list[int]
    site_center_A: np.ndarray
    displacement_A: np.ndarray
    legs: list[LegPlan]


def _displacement(cfg: BindingConfig, rec: _ReceptorInfo, posed: dict[str, PosedLigand],
                  center: np.ndarray, solvent: str) -> np.ndarray:
    if cfg.atm.displacement_A is not None:
        d = np.asarray(cfg.atm.displacement_A, dtype=np.float64)
        if np.linalg.norm(d) < 5.0:
            raise ValueError(f"atm.displacement_A {d.tolist()} is shorter than 5 Å: the "
                             "displaced ligand would stay in the site")
        return d
    r_rec = float(np.linalg.norm(rec.positions_A - center, axis=1).max())
    r_lig = max(float(np.linalg.norm(p.positions_A - p.positions_A.mean(0), axis=1).max())
                for p in posed.values())
    margin = cfg.system.cutoff_A + 3.0 if solvent == "tip3p" else 10.0
    return np.ones(3) / math.sqrt(3.0) * (r_rec + r_lig + margin)


def _box_edge_A(cfg: BindingConfig, rec: _ReceptorInfo, posed: dict[str, PosedLigand],
                d: np.ndarray, leg: LegPlan) -> float:
    pts = [rec.positions_A]
    for i, name in enumerate(leg.ligands):
        p = posed[name].positions_A
        pts.append(p)
        pts.append(p + d)  # absolute: where the ligand goes; relative: where B is placed
        del i
    allp = np.vstack(pts)
    return float((allp.max(0) - allp.min(0)).max() + 2.0 * cfg.system.padding_A)


def check_binding_inputs(cfg: BindingConfig) -> _Checked:
    """Every check that needs no output: files, ligands and poses, site, elements, box."""
    solvent = cfg.preset_value(cfg.system, "solvent")
    rec = _receptor_info(cfg)
    seed = cfg.sampling.seed
    mols = {lig.name: _read_ligand(lig, seed) for lig in cfg.ligands}
    given = [lig.name for lig in cfg.ligands if lig.smiles is None]
    ref_name = cfg.reference or (given[0] if given else None)
    if ref_name is None or cfg.ligand(ref_name).smiles is not None:
        raise ValueError("SMILES ligands are posed on a reference ligand with a 3D pose: give "
                         "one ligand as sdf/mol2 (and name it in 'reference')")
    posed: dict[str, PosedLigand] = {ref_name: PosedLigand(ref_name, mols[ref_name], "input")}
    for lig in cfg.ligands:
        if lig.name in posed:
            continue
        if lig.smiles is None:
            posed[lig.name] = PosedLigand(lig.name, mols[lig.name], "input")
    site = _site_atoms(cfg, rec, posed[ref_name])
    center = rec.positions_A[site].mean(0)
    for lig in cfg.ligands:
        if lig.smiles is not None:
            posed[lig.name] = pose_ligand(lig.name, mols[lig.name], posed[ref_name], rec,
                                          seed=seed)
    for lig in cfg.ligands:
        _check_in_site(posed[lig.name], rec, center, cfg)
    _check_potential(cfg, posed)
    d = _displacement(cfg, rec, posed, center, solvent)
    legs = plan_legs(cfg)
    if solvent == "tip3p":
        for leg in legs:
            edge = cfg.system.box_A or _box_edge_A(cfg, rec, posed, d, leg)
            if edge < 2.0 * cfg.system.cutoff_A:
                raise ValueError(f"leg {leg.name}: water box edge {edge:.1f} Å is smaller than "
                                 f"twice the cutoff ({2 * cfg.system.cutoff_A:.1f} Å); use a "
                                 "larger system.box_A / padding_A or a smaller cutoff_A")
    return _Checked(cfg, rec, posed, site, center, d, legs)


# ------------------------------------------------------------------------------ prepare
def _reference_atoms(xyz: np.ndarray, heavy: np.ndarray) -> list[int]:
    """Three well-spread heavy atoms: nearest the centroid, farthest from it, off that axis."""
    idx = np.nonzero(heavy)[0]
    if len(idx) < 3:
        idx = np.arange(len(xyz))
    p = xyz[idx]
    c = p.mean(0)
    a1 = int(np.argmin(np.linalg.norm(p - c, axis=1)))
    a2 = int(np.argmax(np.linalg.norm(p - p[a1], axis=1)))
    axis = (p[a2] - p[a1]) / np.linalg.norm(p[a2] - p[a1])
    rel = p - p[a1]
    perp = np.linalg.norm(rel - np.outer(rel @ axis, axis), axis=1)
    perp[[a1, a2]] = -1.0
    a3 = int(np.argmax(perp))
    return [int(idx[a1]), int(idx[a2]), int(idx[a3])]


def _matching_atoms(xyz_b: np.ndarray, heavy_b: np.ndarray, targets: np.ndarray) -> list[int]:
    """Distinct heavy atoms of B nearest to each target position (B posed on A)."""
    idx = list(np.nonzero(heavy_b)[0]) or list(range(len(xyz_b)))
    out: list[int] = []
    for t in targets:
        order = sorted(idx, key=lambda i: float(np.linalg.norm(xyz_b[i] - t)))
        out.append(int(next(i for i in order if i not in out)))
    return out


def _system_settings(cfg: BindingConfig, box_edge_A: float | None) -> Any:
    from tensormol.fe._systems import SystemSettings

    solvent = cfg.preset_value(cfg.system, "solvent")
    return SystemSettings(
        solvent=solvent, cutoff_nm=cfg.system.cutoff_A * ANGSTROM_TO_NM,
        padding_nm=cfg.system.padding_A * ANGSTROM_TO_NM,
        box_nm=None if box_edge_A is None else box_edge_A * ANGSTROM_TO_NM,
        ionic_strength_molar=cfg.system.ionic_strength_molar,
        hydrogen_mass_amu=cfg.preset_value(cfg.system, "hydrogen_mass_amu"),
        constraints="hbonds")


def _prepare_leg(chk: _Checked, leg: LegPlan, params: dict[str, Any], dest: Path) -> None:
    import openmm
    import openmm.app as app

    from tensormol.fe._systems import build_system, load_receptor

    cfg = chk.cfg
    solvent = cfg.preset_value(cfg.system, "solvent")
    d = chk.displacement_A
    ligs = [params[n] for n in leg.ligands]
    # Ligand coordinates in prmtop order: pose (A), pose + d (B of a relative leg).
    poses = []
    for i, name in enumerate(leg.ligands):
        posed = chk.posed[name]
        lp = params[name]
        order = list(posed.mol.GetSubstructMatch(lp.rdkit_mol))
        xyz = posed.positions_A[order] if len(order) == lp.num_atoms else posed.positions_A
        poses.append((xyz + (d if i == 1 else 0.0)) * ANGSTROM_TO_NM)
    box_A = None
    if solvent == "tip3p" and leg.kind == "absolute":
        box_A = cfg.system.box_A or _box_edge_A(cfg, chk.rec, chk.posed, d, leg)
    elif solvent == "tip3p":
        box_A = cfg.system.box_A
    r = cfg.receptor
    receptor = load_receptor(r.pdb or r.prmtop, r.inpcrd if r.pdb is None else None)
    built = build_system(ligs, _system_settings(cfg, box_A), receptor=receptor,
                         ligand_positions=poses)
    lig_atoms = built.ligand_atoms
    ref_a = [lig_atoms[0][i] for i in _reference_atoms(poses[0], _heavy(ligs[0]))]
    meta: dict[str, Any] = {
        "name": leg.name, "kind": leg.kind, "ligands": list(leg.ligands),
        "ligand_atoms": lig_atoms, "receptor_atoms": built.receptor_atoms,
        "site_atoms": [built.receptor_atoms[i] for i in chk.site_atoms],
        "restrained_atoms": [built.receptor_atoms[i] for i in _restrained_atoms(cfg, chk.rec)],
        "displacement_nm": (d * ANGSTROM_TO_NM).tolist(),
        "solvent": solvent, "posed_by": {n: chk.posed[n].posed_by for n in leg.ligands},
        "reference_atoms": [ref_a],
        "atm": dataclasses.asdict(ATMSettings(**_atm_kwargs(cfg))),
        "restraints": dataclasses.asdict(RestraintSettings(**cfg.restraints.to_dict())),
        "temperature_K": cfg.sampling.temperature_K,
        "potential": cfg.potential,
    }
    if leg.kind == "relative":
        # B's reference atoms: those nearest A's in the overlaid poses (B posed on A).
        pos_b = poses[1] - d * ANGSTROM_TO_NM
        targets = poses[0][[lig_atoms[0].index(i) for i in ref_a]]
        ref_b_local = _matching_atoms(pos_b, _heavy(ligs[1]), targets)
        meta["reference_atoms"].append([lig_atoms[1][i] for i in ref_b_local])
    system = built.system
    _native_obc2(system)
    positions = _minimize(system, built.positions, built.box_vectors)
    dest.mkdir(parents=True)
    (dest / "mm_system.xml").write_text(openmm.XmlSerializer.serialize(system))
    np.savez(dest / "initial.npz", positions_nm=positions,
             box_nm=np.zeros((3, 3)) if built.box_vectors is None else built.box_vectors)
    with open(dest / "initial.pdb", "w") as fh:
        app.PDBFile.writeFile(built.topology, positions * 10.0 * _ang(), fh, keepIds=True)
    (dest / _LEG_FILE).write_text(json.dumps(meta, indent=1))


def _native_obc2(system: Any) -> bool:
    """Replace an OBC2 ``CustomGBForce`` (OpenMM's ``implicit/obc2.xml``) by ``GBSAOBCForce``.

    Same model (OBC type II with the ACE surface term; energies agree to ~1e-5 relative), but
    the native force is several times faster on the CPU platform (CB7 + two guests, 186 atoms:
    30 → 224 steps/s on one thread), and inside an ``ATMForce`` it is evaluated twice per step.
    """
    import openmm

    for i, f in enumerate(system.getForces()):
        if not isinstance(f, openmm.CustomGBForce):
            continue
        names = [f.getPerParticleParameterName(j) for j in range(f.getNumPerParticleParameters())]
        if names != ["charge", "or", "sr"] or f.getNonbondedMethod() != f.NoCutoff:
            return False
        gb = openmm.GBSAOBCForce()
        gb.setNonbondedMethod(openmm.GBSAOBCForce.NoCutoff)
        for p in range(f.getNumParticles()):
            q, offset_radius, scaled = f.getParticleParameters(p)
            # obc2.xml: "or" = radius − 0.009 nm (the dielectric offset), "sr" = scale · or
            gb.addParticle(q, offset_radius + 0.009, scaled / offset_radius)
        gb.setForceGroup(f.getForceGroup())
        system.removeForce(i)
        system.addForce(gb)
        return True
    return False


def _minimize(system: Any, positions: np.ndarray, box: np.ndarray | None) -> np.ndarray:
    """Local energy minimisation of the MM system (= ATM state 0); stored, so done once."""
    import openmm
    from openmm import unit

    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001),
                         openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    if box is not None:
        ctx.setPeriodicBoxVectors(*(openmm.Vec3(*row) for row in box))
    ctx.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(ctx, 10.0, 200)  # relieve clashes; MD does the rest
    out = ctx.getState(getPositions=True).getPositions(asNumpy=True)
    return np.asarray(out.value_in_unit(unit.nanometer), dtype=np.float64)


def _ang() -> Any:
    from openmm import unit

    return unit.angstrom


def _heavy(lp: Any) -> np.ndarray:
    return np.array([z > 1 for z in lp.atomic_numbers])


def _atm_kwargs(cfg: BindingConfig) -> dict[str, Any]:
    a = cfg.atm.to_dict()
    a.pop("displacement_A")
    return a


def prepare_binding(cfg: BindingConfig, run_dir: str | os.PathLike, *,
                    progress: bool = True) -> list[Path]:
    """Check everything, then write the legs of ``cfg`` that are not yet prepared; their paths.

    A prepared leg (its ``leg.json`` present) is kept as it is, so a resumed run samples the same
    systems.
    """
    run_dir = Path(run_dir)
    chk = check_binding_inputs(cfg)
    legs_dir = run_dir / "legs"
    todo = [leg for leg in chk.legs if not (legs_dir / leg.name / _LEG_FILE).is_file()]
    if todo:
        from tensormol.fe._ligands import parameterize_ligand

        names = sorted({n for leg in todo for n in leg.ligands})
        params = {}
        for n in names:
            lig = cfg.ligand(n)
            if progress:
                print(f"[binding] parameterising ligand {n} (GAFF2/{cfg.charge_method})",
                      flush=True)
            params[n] = parameterize_ligand(chk.posed[n].mol, cache_dir=run_dir / "ligand_cache",
                                            charge_method=cfg.charge_method,
                                            net_charge=lig.net_charge, name=n)
        legs_dir.mkdir(parents=True, exist_ok=True)
        for leg in todo:  # temporary directories of a preparation that was killed
            for stale in legs_dir.glob(f".{leg.name}-*"):
                shutil.rmtree(stale, ignore_errors=True)
        for leg in todo:
            if progress:
                print(f"[binding] preparing leg {leg.name}", flush=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{leg.name}-", dir=legs_dir))
            try:
                _prepare_leg(chk, leg, params, tmp / "leg")
                os.replace(tmp / "leg", legs_dir / leg.name)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    for name, lig in chk.posed.items():
        out = run_dir / "poses" / f"{name}.sdf"
        if not out.is_file():
            from rdkit import Chem

            out.parent.mkdir(parents=True, exist_ok=True)
            w = Chem.SDWriter(str(out))
            w.write(lig.mol)
            w.close()
    return [legs_dir / leg.name for leg in chk.legs]


# ----------------------------------------------------------------------------- the leg
def build_leg_system(leg_dir: str | os.PathLike) -> tuple[Any, np.ndarray, np.ndarray | None,
                                                          dict[str, Any], int]:
    """The leg's full system: MM (+ ML on the ligands) + ATMForce + restraints.

    Returns
    -------
    system, positions (N, 3) nm, box (3, 3) nm or None, leg metadata, index of the ATMForce
    """
    import openmm

    leg_dir = Path(leg_dir)
    meta = json.loads((leg_dir / _LEG_FILE).read_text())
    system = openmm.XmlSerializer.deserialize((leg_dir / "mm_system.xml").read_text())
    init = np.load(leg_dir / "initial.npz")
    pos = np.asarray(init["positions_nm"], dtype=np.float64)
    box = np.asarray(init["box_nm"], dtype=np.float64)
    box = None if not box.any() else box
    if meta.get("potential"):
        import openmm.app as app

        from tensormol.fe._mlmm import add_ml_potential

        top = app.PDBFile(str(leg_dir / "initial.pdb")).topology
        system = add_ml_potential(system, top, meta["ligand_atoms"], meta["potential"])
    d = np.asarray(meta["displacement_nm"])
    states = atm_states(ATMSettings(**meta["atm"]))
    disp = {i: d for i in meta["ligand_atoms"][0]}
    if meta["kind"] == "relative":
        disp.update({i: -d for i in meta["ligand_atoms"][1]})
    idx = add_atm_force(system, disp, states[0])
    rs = RestraintSettings(**meta["restraints"])
    add_site_restraint(system, meta["ligand_atoms"][0], meta["site_atoms"], rs)
    if meta["kind"] == "relative":
        add_site_restraint(system, meta["ligand_atoms"][1], meta["site_atoms"], rs, offset_nm=d)
        add_alignment_restraint(system, meta["reference_atoms"][0], meta["reference_atoms"][1],
                                d, rs)
    if meta["restrained_atoms"] and rs.posre_k_kcal_A2 > 0:
        add_position_restraints(system, meta["restrained_atoms"], pos, rs)
    return system, pos, box, meta, idx


def _sampler_settings(cfg_sampling: dict[str, Any]) -> Any:
    from tensormol.fe._sampler import SamplerSettings

    return SamplerSettings(**cfg_sampling)


def run_leg(leg_dir: str, sampler: dict[str, Any], progress: bool = True,
            anneal_ps: float | None = None) -> dict[str, Any]:
    """Sample and analyse one prepared leg (a picklable task for :func:`run_tasks`).

    ``anneal_ps`` is the forward annealing before replica exchange (``None``: ``_ANNEAL_PS``
    for relative legs and explicit solvent, none otherwise).

    Returns the leg's estimate as a dict: ``dg_kT``, ``ddg_kT`` (f_{K−1} − f_0), the MBAR
    estimate's fields, ``wall_s`` and the leg's metadata.
    """
    import openmm.app as app

    from tensormol.fe._analysis import analyze_leg
    from tensormol.fe._sampler import ReplicaExchange

    leg_dir = Path(leg_dir)
    system, pos, box, meta, idx = build_leg_system(leg_dir)
    settings = _sampler_settings(sampler)
    states = atm_states(ATMSettings(**meta["atm"]))
    top = app.PDBFile(str(leg_dir / "initial.pdb")).topology
    t0 = time.perf_counter()
    if anneal_ps is None:
        # Relative legs start with ligand B displaced; at the reverse-direction states B sits in
        # A's pose, which a rigid site (T4 L99A) can make infinitely repulsive for a larger B:
        # walking λ forward first lets both ligands relax. Explicit water must also leave the
        # displaced ligand's spot.
        relax = meta["solvent"] == "tip3p" or meta["kind"] == "relative"
        anneal_ps = _ANNEAL_PS if relax else 0.0
    if anneal_ps > 0:
        pos, box = _annealed(leg_dir, system, pos, box, states, settings, anneal_ps)
    rex = ReplicaExchange(system, pos, states, settings, leg_dir, name="sampling",
                          box_vectors=box, topology=top,
                          reduced_potentials=ATMReducedPotentials(idx, states,
                                                                  settings.temperature_K),
                          progress=progress)
    result = rex.run()
    wall = time.perf_counter() - t0
    est = analyze_leg(result.u_kln, settings.temperature_K)
    out = est.to_dict()
    half = len(states) // 2
    f = np.asarray(est.f_kT)
    out.update({
        "leg": meta["name"], "kind": meta["kind"], "ligands": meta["ligands"],
        "wall_s": wall, "n_iterations": int(result.u_kln.shape[2]),
        # the two directions: state 0 → its intermediate, state K−1 → its intermediate
        "forward_direction_kT": float(f[half - 1] - f[0]) if len(f) else None,
        "reverse_direction_kT": float(f[half] - f[-1]) if len(f) else None,
        "standard_state_kT": site_standard_state_kT(settings.temperature_K,
                                                    RestraintSettings(**meta["restraints"])),
    })
    tmp = leg_dir / "estimate.json.tmp"
    tmp.write_text(json.dumps(out, indent=1, default=_json_default))
    os.replace(tmp, leg_dir / "estimate.json")
    return out


#: Default length of the forward annealing before replica exchange (ps).
_ANNEAL_PS = 40.0


def _annealed(leg_dir: Path, system: Any, pos: np.ndarray, box: np.ndarray | None,
              states: list[dict[str, float]], settings: Any,
              anneal_ps: float) -> tuple[np.ndarray, Any]:
    """Positions after :func:`anneal_forward` (computed once, stored in ``annealed.npz``)."""
    import openmm
    from openmm import unit

    path = leg_dir / "annealed.npz"
    if not path.is_file():
        integ = openmm.LangevinMiddleIntegrator(
            settings.temperature_K * unit.kelvin, settings.friction_per_ps / unit.picosecond,
            settings.timestep_fs * unit.femtosecond)
        integ.setRandomNumberSeed(settings.seed + 7919)
        props = {"Threads": str(settings.threads)} if (settings.platform == "CPU"
                                                      and settings.threads) else {}
        ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName(settings.platform),
                             props)
        if box is not None:
            ctx.setPeriodicBoxVectors(*(openmm.Vec3(*row) for row in box))
        ctx.setPositions(pos)
        ctx.setVelocitiesToTemperature(settings.temperature_K * unit.kelvin, settings.seed + 1)
        n = max(1, int(anneal_ps * 1000.0 / settings.timestep_fs / (len(states) // 2)))
        anneal_forward(ctx, integ, states, n)
        st = ctx.getState(getPositions=True)
        out_pos = st.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        out_box = st.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
        tmp = leg_dir / "annealed.tmp.npz"
        np.savez(tmp, positions_nm=np.asarray(out_pos), box_nm=np.asarray(out_box))
        os.replace(tmp, path)
    data = np.load(path)
    # a non-periodic leg stays without a box
    return np.asarray(data["positions_nm"]), (None if box is None else np.asarray(data["box_nm"]))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(type(obj).__name__)


def _leg_dg_kcal(est: dict[str, Any]) -> tuple[float, float]:
    """The leg's binding quantity (kcal/mol): ΔG°_b (absolute) or ΔΔG_b (relative)."""
    from tensormol.fe._analysis import kT_to

    t = est["temperature_K"]
    if est["kind"] == "absolute":
        val = -est["dg_kT"] + est["standard_state_kT"]
    else:
        val = est["dg_kT"]
    return kT_to(val, "kcal/mol", t), kT_to(est["ddg_kT"], "kcal/mol", t)


def run_binding(config: str | os.PathLike, *, resume: bool = False,
                potential: str | None = None, overrides: Sequence[str] = (),
                n_workers: int | None = None, scheduler: str | None = None,
                n_iterations: int | None = None, progress: bool = True) -> dict[str, Any]:
    """``tensormol fe binding``: check, prepare, run every leg, analyse, write the results.

    Parameters
    ----------
    config : path-like
        Binding YAML (see :class:`~tensormol.fe._config.BindingConfig`).
    resume : bool
        Continue an existing run directory (prepared legs and checkpoints are reused). Without
        it an existing run directory with legs is an error.
    potential : str, optional
        tensormol bundle for the ligands (overrides the config's ``potential``).
    overrides : sequence of str
        ``section.key=value`` config overrides.
    n_workers, scheduler : optional
        Dask scale-out of the legs (override ``scaleout``).
    n_iterations : int, optional
        Override ``sampling.n_iterations``.

    Returns
    -------
    dict
        ``{"run_dir", "rows", "legs"}``: result rows (see ``write_results``) and leg estimates.
    """
    extra = list(overrides)
    if potential is not None:
        extra.append(f"potential={potential}")
    if n_iterations is not None:
        extra.append(f"sampling.n_iterations={int(n_iterations)}")
    cfg = load_binding_config(config, extra)
    run_dir = Path(cfg.output)
    if (run_dir / "legs").is_dir() and any((run_dir / "legs").iterdir()) and not resume:
        raise FileExistsError(f"run directory {str(run_dir)!r} already holds legs; pass --resume "
                              "to continue it or choose another output")
    leg_dirs = prepare_binding(cfg, run_dir, progress=progress)
    tmp = run_dir / "config.resolved.json.tmp"
    tmp.write_text(json.dumps(cfg.to_dict(), indent=1))
    os.replace(tmp, run_dir / "config.resolved.json")
    s = cfg.sampling
    sampler = {
        "n_iterations": cfg.preset_value(s, "n_iterations"),
        "steps_per_iteration": cfg.preset_value(s, "steps_per_iteration"),
        "timestep_fs": cfg.preset_value(s, "timestep_fs"),
        "temperature_K": s.temperature_K, "friction_per_ps": s.friction_per_ps,
        "checkpoint_every": s.checkpoint_every, "platform": cfg.preset_value(s, "platform"),
        "threads": s.threads, "seed": s.seed,
        # prepared positions are minimised at state 0; the soft-core bounds the other states
        "minimize": False,
    }
    workers = n_workers or cfg.scaleout.n_workers
    sched = scheduler or cfg.scaleout.scheduler
    tasks = [(run_leg, (str(d), sampler, progress and workers == 1, s.anneal_ps))
             for d in leg_dirs]
    outcomes = _run_tasks(tasks, sched, workers)
    rows, legs = [], {}
    for leg_dir, out in zip(leg_dirs, outcomes):
        meta = json.loads((leg_dir / _LEG_FILE).read_text())
        row: dict[str, Any] = {"name": _row_name(meta), "kind": meta["kind"],
                               "legs": [meta["name"]]}
        if isinstance(out, BaseException):
            row.update(status="failed", error=f"{type(out).__name__}: {out}", dg_kcal=None,
                       ddg_kcal=None, dg_kJ=None, ddg_kJ=None)
        else:
            dg, ddg = _leg_dg_kcal(out)
            from tensormol.units import KCAL_TO_KJ

            done = out["n_iterations"] >= sampler["n_iterations"]
            row.update(status="done" if done else "partial", error=None, dg_kcal=dg,
                       ddg_kcal=ddg, dg_kJ=dg * KCAL_TO_KJ, ddg_kJ=ddg * KCAL_TO_KJ,
                       forward_direction_kT=out["forward_direction_kT"],
                       reverse_direction_kT=out["reverse_direction_kT"],
                       wall_s=out["wall_s"])
            legs[meta["name"]] = out
        rows.append(row)
    _write(run_dir, rows, legs, cfg)
    return {"run_dir": str(run_dir), "rows": rows, "legs": legs}


def _run_tasks(tasks: list[tuple[Any, tuple]], scheduler: str | None,
               n_workers: int) -> list[Any]:
    try:
        from tensormol.fe._scaleout import run_tasks
    except ImportError:  # scale-out module absent: serial, failures collected the same way
        if scheduler is not None or n_workers > 1:
            raise ValueError("parallel legs need tensormol.fe's Dask scale-out, which is not "
                             "available here; use n_workers: 1") from None
        outcomes: list[Any] = []
        for fn, args in tasks:
            try:
                outcomes.append(fn(*args))
            except Exception as err:  # noqa: BLE001 - a failed leg is reported, not raised
                outcomes.append(err)
        return outcomes
    return list(run_tasks(tasks, scheduler=scheduler, n_workers=n_workers))


def _row_name(meta: dict[str, Any]) -> str:
    ligs = meta["ligands"]
    return ligs[0] if meta["kind"] == "absolute" else f"{ligs[0]}->{ligs[1]}"


def _write(run_dir: Path, rows: list[dict[str, Any]], legs: dict[str, Any],
           cfg: BindingConfig) -> None:
    experimental = {str(k): float(v) for k, v in cfg.experimental_kcal.items()} or None
    try:
        from tensormol.fe._analysis import LegEstimate
        from tensormol.fe._results import write_results
    except ImportError:  # results writer not available: plain JSON
        write_results = None
    if write_results is not None:
        estimates = {k: LegEstimate.from_dict(_estimate_fields(v)) for k, v in legs.items()}
        write_results(run_dir, rows, estimates, experimental=experimental)
    summary = {"rows": rows, "legs": legs, "experimental_kcal": experimental}
    tmp = run_dir / "binding.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1, default=_json_default))
    os.replace(tmp, run_dir / "binding.json")


def _estimate_fields(d: dict[str, Any]) -> dict[str, Any]:
    from tensormol.fe._analysis import LegEstimate

    names = {f.name for f in dataclasses.fields(LegEstimate)}
    return {k: v for k, v in d.items() if k in names}
