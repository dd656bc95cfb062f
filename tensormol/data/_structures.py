"""Starting structures for data generation: SMILES (RDKit), XYZ, SDF, and liquid boxes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..elements import SYMBOLS, atomic_masses
from ..so3 import rand_matrix
from ..units import AMU_TO_G
from ._extxyz import iter_extxyz

__all__ = ["StartingStructure", "structure_from_smiles", "structure_from_file", "build_box"]


@dataclass(frozen=True)
class StartingStructure:
    """Where data generation starts: numbers (n,) int64, positions (n, 3) Å, cell (3, 3) Å rows
    (zeros = no cell), pbc (3,) bool, and a description of the source (SMILES, file, box)."""

    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    description: str

    @property
    def formula(self) -> str:
        zs, counts = np.unique(self.numbers, return_counts=True)
        order = sorted(zip(zs.tolist(), counts.tolist()),
                       key=lambda zc: (zc[0] not in (6,), zc[0] != 1, SYMBOLS[zc[0]]))
        return "".join(SYMBOLS[z] + (str(c) if c > 1 else "") for z, c in order)


def structure_from_smiles(smiles: str, seed: int = 0) -> StartingStructure:
    """3D structure of a SMILES string: RDKit ETKDGv3 embedding (seeded), then MMFF94 (or UFF
    where MMFF has no parameters) optimisation, all hydrogens explicit.

    Raises
    ------
    ValueError
        If RDKit cannot parse ``smiles`` or cannot embed it in 3D.
    """
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"RDKit cannot parse the SMILES {smiles!r}")
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed)
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise ValueError(f"RDKit could not embed the SMILES {smiles!r} in 3D (seed {seed})")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
    else:
        AllChem.UFFOptimizeMolecule(mol, maxIters=2000)
    numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    positions = np.asarray(mol.GetConformer().GetPositions(), dtype=np.float64)
    return StartingStructure(numbers, positions, np.zeros((3, 3)), np.zeros(3, bool),
                             f"smiles:{smiles}")


def structure_from_file(path: str | Path) -> StartingStructure:
    """First structure of an XYZ/extended-XYZ file (Å) or an SDF/MOL file with 3D coordinates.

    Hydrogens missing from an SDF are added with RDKit-generated coordinates.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"structure file not found: {str(p)!r}")
    suffix = p.suffix.lower()
    if suffix in (".sdf", ".mol"):
        from rdkit import Chem

        mol = Chem.MolFromMolFile(str(p), removeHs=False)
        if mol is None:
            raise ValueError(f"RDKit cannot read the SDF/MOL file {str(p)!r}")
        if mol.GetNumConformers() == 0 or not mol.GetConformer().Is3D():
            raise ValueError(f"{str(p)!r} has no 3D coordinates")
        if any(a.GetTotalNumHs() > 0 for a in mol.GetAtoms()):
            mol = Chem.AddHs(mol, addCoords=True)
        numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
        positions = np.asarray(mol.GetConformer().GetPositions(), dtype=np.float64)
        return StartingStructure(numbers, positions, np.zeros((3, 3)), np.zeros(3, bool),
                                 f"sdf:{p.name}")
    frame = next(iter(iter_extxyz(p)), None)
    if frame is None:
        raise ValueError(f"{str(p)!r} holds no structure")
    return StartingStructure(frame.numbers, frame.positions, frame.cell, frame.pbc,
                             f"xyz:{p.name}")


def build_box(molecule: StartingStructure, copies: int, *, density: float | None = None,
              box_length: float | None = None, seed: int = 0) -> StartingStructure:
    """A cubic periodic box of ``copies`` randomly rotated copies of ``molecule``.

    Centres sit on the smallest simple-cubic, bcc or fcc lattice with at least ``copies`` sites
    (sites chosen at random when there are more), which keeps molecules apart without a packing
    search; the structure then melts in the equilibration run.

    Parameters
    ----------
    molecule : StartingStructure
        A non-periodic molecule.
    copies : int
        Number of molecules (>= 1).
    density : float, optional
        Mass density in g/cm³; sets the box length. Exactly one of ``density``, ``box_length``.
    box_length : float, optional
        Cubic box edge in Å.
    seed : int
        Seed of the orientations and site choice.
    """
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    if (density is None) == (box_length is None):
        raise ValueError("give exactly one of density (g/cm³) and box_length (Å)")
    if molecule.pbc.any():
        raise ValueError("build_box needs a non-periodic molecule")
    mass = atomic_masses(molecule.numbers).sum() * copies
    if density is not None:
        if not density > 0:
            raise ValueError(f"density must be > 0 g/cm³, got {density}")
        length = float((mass * AMU_TO_G / density * 1e24) ** (1.0 / 3.0))  # 1 cm³ = 1e24 Å³
    else:
        length = float(box_length)
        if not length > 0:
            raise ValueError(f"box_length must be > 0 Å, got {box_length}")
    bases = {
        "sc": np.zeros((1, 3)),
        "bcc": np.array([[0, 0, 0], [0.5, 0.5, 0.5]]),
        "fcc": np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]),
    }
    best = None
    for basis in bases.values():
        m = 1
        while len(basis) * m**3 < copies:
            m += 1
        sites = len(basis) * m**3
        if best is None or sites < best[0]:
            grid = np.array([[i, j, k] for i in range(m) for j in range(m) for k in range(m)])
            frac = (grid[:, None, :] + basis[None, :, :]).reshape(-1, 3) / m
            best = (sites, frac)
    rng = np.random.default_rng(seed)
    frac = best[1]
    chosen = np.sort(rng.choice(len(frac), size=copies, replace=False))
    centred = molecule.positions - molecule.positions.mean(axis=0)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    rotations = rand_matrix(copies, generator=gen).numpy()
    pos = [centred @ q.T + (frac[s] + 0.25 / np.cbrt(len(frac))) * length
           for q, s in zip(rotations, chosen)]
    numbers = np.tile(molecule.numbers, copies)
    return StartingStructure(numbers, np.concatenate(pos), np.eye(3) * length, np.ones(3, bool),
                     f"box:{copies}x{molecule.description}")
