"""The periodic table: element symbols, atomic numbers and masses, with clear errors.

The one home of element data for the whole package (data readers, models' species checks, export
metadata). A local symbol table, not ASE's, so the core needs no optional dependency; masses come
from ASE's IUPAC table where they are needed (data generation).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "SYMBOLS",
    "MAX_ATOMIC_NUMBER",
    "symbol_to_number",
    "number_to_symbol",
    "element_symbol",
    "check_atomic_numbers",
    "atomic_masses",
]

#: Element symbols indexed by atomic number (index 0 is a placeholder for "no element").
SYMBOLS: tuple[str, ...] = (
    "X",
    "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl",
    "Ar", "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As",
    "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In",
    "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb",
    "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl",
    "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk",
    "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh",
    "Fl", "Mc", "Lv", "Ts", "Og",
)
#: Largest known atomic number (118).
MAX_ATOMIC_NUMBER = len(SYMBOLS) - 1
_NUMBER = {s: z for z, s in enumerate(SYMBOLS) if z > 0}
_NUMBER_LOWER = {s.lower(): z for s, z in _NUMBER.items()}


def symbol_to_number(symbol: str, where: str = "") -> int:
    """Atomic number of an element symbol (case-insensitive, e.g. ``"Cl"``, ``"CL"``).

    Raises
    ------
    ValueError
        For an unknown symbol; ``where`` (e.g. ``"file x.xyz, frame 3, line 7"``) is named.
    """
    z = _NUMBER.get(symbol) or _NUMBER_LOWER.get(symbol.strip().lower())
    if z is None:
        loc = f" ({where})" if where else ""
        raise ValueError(f"unknown element symbol {symbol!r}{loc}")
    return z


def number_to_symbol(z: int) -> str:
    """Element symbol of an atomic number in ``1..118``; raises ``ValueError`` otherwise."""
    z = int(z)
    if not 1 <= z <= MAX_ATOMIC_NUMBER:
        raise ValueError(f"unknown atomic number {z}; expected 1..{MAX_ATOMIC_NUMBER}")
    return SYMBOLS[z]


def element_symbol(z: int) -> str:
    """Symbol of atomic number ``z`` for messages: never raises (``"Z=<z>"`` outside 1..118)."""
    z = int(z)
    return SYMBOLS[z] if 1 <= z <= MAX_ATOMIC_NUMBER else f"Z={z}"


def check_atomic_numbers(numbers: np.ndarray, where: str = "") -> np.ndarray:
    """Return ``numbers`` as int64, raising if any is outside ``1..118`` (names the first)."""
    arr = np.asarray(numbers)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            loc = f" in {where}" if where else ""
            raise ValueError(f"atomic numbers must be integers{loc}, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = np.flatnonzero((arr < 1) | (arr > MAX_ATOMIC_NUMBER))
    if bad.size:
        loc = f" in {where}" if where else ""
        raise ValueError(
            f"unknown atomic number {int(arr.flat[bad[0]])} at atom index {int(bad[0])}{loc}; "
            f"expected 1..{MAX_ATOMIC_NUMBER}"
        )
    return arr


def atomic_masses(numbers: np.ndarray) -> np.ndarray:
    """Standard atomic masses (amu) of ``numbers`` (n,) int: IUPAC values as tabulated by ASE."""
    from ase.data import atomic_masses as table

    return np.asarray(table, dtype=np.float64)[check_atomic_numbers(numbers)]
