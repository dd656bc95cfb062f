"""Read MD inputs (PDB, Amber prmtop/inpcrd, XYZ/SDF) and select ML atoms."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openmm
import openmm.app as app
from openmm import unit

from tensormol.units import ANGSTROM_TO_NM

__all__ = ["OpenMMStructure", "load_structure", "select_atoms"]


@dataclass
class OpenMMStructure:
    """A topology with coordinates, as OpenMM needs them.

    Attributes
    ----------
    topology : openmm.app.Topology
    positions : Quantity
        (N, 3) nm.
    box : tuple of Vec3 or None
        Periodic box vectors (nm), or ``None``.
    prmtop : openmm.app.AmberPrmtopFile or None
        The Amber topology (for the files' own MM parameters).
    path : Path
    """

    topology: app.Topology
    positions: Any
    box: Any
    prmtop: Any
    path: Path

    @property
    def num_atoms(self) -> int:
        return self.topology.getNumAtoms()


def _from_ase(path: Path) -> OpenMMStructure:
    import ase.io

    atoms = ase.io.read(str(path))
    top = app.Topology()
    chain = top.addChain()
    res = top.addResidue("MOL", chain)
    counts: dict[str, int] = {}
    for sym in atoms.get_chemical_symbols():
        counts[sym] = counts.get(sym, 0) + 1
        top.addAtom(f"{sym}{counts[sym]}", app.Element.getBySymbol(sym), res)
    box = None
    if atoms.get_pbc().all():
        cell = np.asarray(atoms.get_cell()) * ANGSTROM_TO_NM
        box = tuple(openmm.Vec3(*row) for row in cell) * unit.nanometer
        top.setPeriodicBoxVectors(box)
    elif atoms.get_pbc().any():
        raise ValueError(
            f"{path}: periodic in some directions only (pbc={atoms.get_pbc().tolist()}); OpenMM "
            "needs all three or none"
        )
    pos = atoms.get_positions() * ANGSTROM_TO_NM
    return OpenMMStructure(top, [openmm.Vec3(*p) for p in pos] * unit.nanometer, box, None, path)


def load_structure(path: str | os.PathLike, coordinates: str | os.PathLike | None = None
                   ) -> OpenMMStructure:
    """Read a PDB, an Amber prmtop (+ inpcrd/rst7), or an XYZ/extXYZ/SDF file.

    Parameters
    ----------
    path : path-like
        ``.pdb``, ``.prmtop``/``.parm7``, ``.xyz``/``.extxyz`` (also compressed, ``.xyz.gz``;
        a trajectory gives its last frame), ``.sdf``/``.mol``.
    coordinates : path-like, optional
        Coordinates of a prmtop (default: same name with ``.inpcrd``, ``.rst7`` or ``.crd``).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"structure file {str(p)!r} does not exist")
    ext = p.suffix.lower()
    if ext in (".gz", ".bz2", ".xz") and p.with_suffix("").suffix.lower() in (".xyz", ".extxyz"):
        return _from_ase(p)  # ASE decompresses; a trajectory gives its last frame
    if ext in (".pdb", ".ent"):
        pdb = app.PDBFile(str(p))
        box = pdb.topology.getPeriodicBoxVectors()
        return OpenMMStructure(pdb.topology, pdb.positions, box, None, p)
    if ext in (".prmtop", ".parm7", ".top"):
        if coordinates is None:
            cands = [p.with_suffix(s) for s in (".inpcrd", ".rst7", ".crd")]
            found = [c for c in cands if c.is_file()]
            if not found:
                raise FileNotFoundError(
                    f"no coordinates for {p}: give --coordinates (looked for "
                    f"{', '.join(c.name for c in cands)})"
                )
            coordinates = found[0]
        prmtop = app.AmberPrmtopFile(str(p))
        crd = app.AmberInpcrdFile(str(coordinates))
        box = crd.boxVectors
        if box is not None:
            prmtop.topology.setPeriodicBoxVectors(box)
        return OpenMMStructure(prmtop.topology, crd.positions, box, prmtop, p)
    if ext in (".xyz", ".extxyz", ".sdf", ".mol"):
        return _from_ase(p)
    raise ValueError(
        f"structure {str(p)!r}: unknown file type {ext!r}; use .pdb, .prmtop (+ .inpcrd), .xyz "
        "or .sdf"
    )


_INDEX_SPEC = re.compile(r"^\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*$")


def select_atoms(topology: app.Topology, spec: str) -> list[int]:
    """Atom indices selected by ``spec``.

    ``spec`` is either 0-based atom indices and ranges (``"0-17,20"``, ranges inclusive; prefix
    ``index:`` optional) or residue names (``"LIG"``, ``"resname:LIG,MOL"``).

    Raises
    ------
    ValueError
        For an empty selection or indices out of range, naming the residues present.
    """
    text = spec.strip()
    n = topology.getNumAtoms()
    kind = None
    if ":" in text:
        kind, text = (s.strip() for s in text.split(":", 1))
        if kind not in ("index", "resname"):
            raise ValueError(f"--ml {spec!r}: prefix must be 'index:' or 'resname:', got {kind!r}")
    if kind == "index" or (kind is None and _INDEX_SPEC.match(text)):
        if not _INDEX_SPEC.match(text):
            raise ValueError(f"--ml {spec!r}: expected indices like '0-17,20'")
        out: list[int] = []
        for part in text.split(","):
            a, _, b = part.partition("-")
            lo, hi = int(a), int(b) if b.strip() else int(a)
            out.extend(range(lo, hi + 1))
        bad = [i for i in out if i >= n]
        if bad:
            raise ValueError(f"--ml {spec!r}: atom indices {bad[:5]} are out of range; indices "
                             f"are 0-based, valid 0..{n - 1} for the {n} atoms")
        return sorted(set(out))
    names = {s.strip() for s in text.split(",") if s.strip()}
    chosen = [a.index for a in topology.atoms() if a.residue.name in names]
    if not chosen:
        present = sorted({r.name for r in topology.residues()})
        shown = ", ".join(present[:30]) + (" ..." if len(present) > 30 else "")
        raise ValueError(
            f"--ml {spec!r} selects no atoms: no residue named {', '.join(sorted(names))}; "
            f"residue names present: {shown}"
        )
    return chosen
