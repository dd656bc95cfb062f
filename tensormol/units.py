"""Unit factors, each defined once (CODATA 2018).

Inside tensormol: Å, eV, eV/Å, eV/Å³, e, amu, K, fs. OpenMM's nm, kJ/mol and ps appear only at the
engine edge (``tensormol.export``, ``tensormol.md``, ``tensormol.fe``), converted with the factors
below. Never retype a factor elsewhere: import it from here.
"""

from __future__ import annotations

__all__ = [
    "AVOGADRO",
    "EV_TO_J",
    "EV_TO_KJ_PER_MOL",
    "KJ_PER_MOL_TO_EV",
    "KCAL_TO_KJ",
    "KCAL_PER_MOL_TO_EV",
    "HARTREE_TO_EV",
    "BOHR_TO_ANGSTROM",
    "ANGSTROM_TO_NM",
    "NM_TO_ANGSTROM",
    "FS_TO_PS",
    "BOLTZMANN_EV_PER_K",
    "AMU_TO_KG",
    "AMU_TO_G",
    "EV_PER_ANGSTROM_AMU_TO_ANGSTROM_PER_FS2",
    "ENERGY_UNITS",
    "LENGTH_UNITS",
    "MODEL_UNITS",
    "energy_factor",
    "length_factor",
]

AVOGADRO = 6.02214076e23  # 1/mol, exact (SI 2019)
EV_TO_J = 1.602176634e-19  # J, exact (SI 2019)
EV_TO_KJ_PER_MOL = EV_TO_J * AVOGADRO / 1000.0  # 96.48533212331...
KJ_PER_MOL_TO_EV = 1.0 / EV_TO_KJ_PER_MOL
KCAL_TO_KJ = 4.184  # thermochemical calorie, exact
KCAL_PER_MOL_TO_EV = KCAL_TO_KJ * KJ_PER_MOL_TO_EV
HARTREE_TO_EV = 27.211386245988  # CODATA 2018
BOHR_TO_ANGSTROM = 0.529177210903  # CODATA 2018
ANGSTROM_TO_NM = 0.1
NM_TO_ANGSTROM = 10.0
#: fs -> ps; a rate in 1/ps times this is the rate in 1/fs (Langevin friction is given in 1/ps,
#: OpenMM's convention, and applied per fs inside).
FS_TO_PS = 1e-3
BOLTZMANN_EV_PER_K = 8.617333262e-5  # CODATA 2018, exact in SI 2019
AMU_TO_KG = 1.66053906660e-27  # CODATA 2018
AMU_TO_G = AMU_TO_KG * 1000.0
#: Acceleration in Å/fs² of a 1 eV/Å force on a 1 amu mass; equally (Å/fs)² per eV/amu, the
#: factor between k_B T / m and a velocity variance in MD integrators (9.6485e-3).
EV_PER_ANGSTROM_AMU_TO_ANGSTROM_PER_FS2 = EV_TO_J / AMU_TO_KG * 1e-10

#: Energy units a data file may declare, as factors to eV.
ENERGY_UNITS: dict[str, float] = {
    "eV": 1.0,
    "meV": 1e-3,
    "Hartree": HARTREE_TO_EV,
    "kcal/mol": KCAL_PER_MOL_TO_EV,
    "kJ/mol": KJ_PER_MOL_TO_EV,
}

#: Length units a data file may declare, as factors to Å.
LENGTH_UNITS: dict[str, float] = {
    "Angstrom": 1.0,
    "nm": NM_TO_ANGSTROM,
    "Bohr": BOHR_TO_ANGSTROM,
}

#: Units of every quantity a tensormol model takes or returns (the inside of tensormol), as
#: recorded in checkpoints and model bundles.
MODEL_UNITS: dict[str, str] = {
    "length": "Angstrom",
    "energy": "eV",
    "forces": "eV/Angstrom",
    "stress": "eV/Angstrom^3",
}

_ALIASES = {"ev": "eV", "mev": "meV", "hartree": "Hartree", "ha": "Hartree", "au": "Hartree",
            "kcal/mol": "kcal/mol", "kj/mol": "kJ/mol", "angstrom": "Angstrom", "a": "Angstrom",
            "å": "Angstrom", "ang": "Angstrom", "nm": "nm", "bohr": "Bohr"}


def _lookup(name: str, table: dict[str, float], kind: str) -> float:
    key = _ALIASES.get(str(name).strip().lower(), str(name).strip())
    if key not in table:
        raise ValueError(
            f"unknown {kind} unit {name!r}; valid {kind} units are: {', '.join(table)}"
        )
    return table[key]


def energy_factor(unit: str) -> float:
    """Factor that converts an energy in ``unit`` to eV (``E_eV = E * factor``)."""
    return _lookup(unit, ENERGY_UNITS, "energy")


def length_factor(unit: str) -> float:
    """Factor that converts a length in ``unit`` to Å (``x_A = x * factor``)."""
    return _lookup(unit, LENGTH_UNITS, "length")
