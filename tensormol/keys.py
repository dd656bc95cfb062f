"""Names of the fields of an atomic graph batch, each documented with shape, dtype and unit.

``N`` atoms, ``E`` directed edges, ``B`` structures in a batch. Models and data code refer to these
constants, never to string literals, so a renamed field is one edit.
"""

from __future__ import annotations

__all__ = [
    "POSITIONS", "ATOMIC_NUMBERS", "BATCH", "CELL", "PBC", "NUM_ATOMS", "EDGE_INDEX",
    "CELL_SHIFTS", "EDGE_VECTORS", "EDGE_LENGTHS", "ENERGY", "FORCES", "STRESS", "VIRIAL",
    "DIPOLE", "TOTAL_CHARGE", "FIELD_DOCS",
]

POSITIONS = "positions"  #: (N, 3) float64, Å
ATOMIC_NUMBERS = "atomic_numbers"  #: (N,) int64
BATCH = "batch"  #: (N,) int64, index of the structure each atom belongs to
CELL = "cell"  #: (B, 3, 3) float64, Å, lattice vectors as rows (ASE convention)
PBC = "pbc"  #: (B, 3) bool, periodic directions
NUM_ATOMS = "num_atoms"  #: (B,) int64
EDGE_INDEX = "edge_index"  #: (2, E) int64, rows (i, j): edge vector points from i to j
CELL_SHIFTS = "cell_shifts"  #: (E, 3) int64 or float64, integer lattice translations of atom j
EDGE_VECTORS = "edge_vectors"  #: (E, 3) float64, Å, r_j - r_i + shift @ cell
EDGE_LENGTHS = "edge_lengths"  #: (E,) float64, Å
ENERGY = "energy"  #: (B,) float64, eV
FORCES = "forces"  #: (N, 3) float64, eV/Å
STRESS = "stress"  #: (B, 3, 3) float64, eV/Å³, ASE sign convention (positive = tensile)
VIRIAL = "virial"  #: (B, 3, 3) float64, eV
DIPOLE = "dipole"  #: (B, 3) float64, e·Å
TOTAL_CHARGE = "total_charge"  #: (B,) float64, e

FIELD_DOCS: dict[str, str] = {
    POSITIONS: "(N, 3) float64, Å",
    ATOMIC_NUMBERS: "(N,) int64",
    BATCH: "(N,) int64, structure index of each atom",
    CELL: "(B, 3, 3) float64, Å, lattice vectors as rows",
    PBC: "(B, 3) bool",
    NUM_ATOMS: "(B,) int64",
    EDGE_INDEX: "(2, E) int64, edge i -> j",
    CELL_SHIFTS: "(E, 3), integer lattice translations applied to atom j",
    EDGE_VECTORS: "(E, 3) float64, Å, r_j - r_i + shift @ cell",
    EDGE_LENGTHS: "(E,) float64, Å",
    ENERGY: "(B,) float64, eV",
    FORCES: "(N, 3) float64, eV/Å",
    STRESS: "(B, 3, 3) float64, eV/Å³ (ASE convention)",
    VIRIAL: "(B, 3, 3) float64, eV",
    DIPOLE: "(B, 3) float64, e·Å",
    TOTAL_CHARGE: "(B,) float64, e",
}
