"""The periodic table: symbols, numbers, masses and the errors for unknown ones."""

from __future__ import annotations

import numpy as np
import pytest

from tensormol.elements import (
    MAX_ATOMIC_NUMBER,
    SYMBOLS,
    atomic_masses,
    check_atomic_numbers,
    element_symbol,
    number_to_symbol,
    symbol_to_number,
)


def test_symbols_and_numbers_round_trip() -> None:
    assert MAX_ATOMIC_NUMBER == 118 and len(SYMBOLS) == 119
    assert all(symbol_to_number(number_to_symbol(z)) == z for z in range(1, 119))
    assert symbol_to_number("CL") == 17 and symbol_to_number(" og ") == 118
    assert element_symbol(26) == "Fe" and element_symbol(0) == "Z=0"
    assert element_symbol(119) == "Z=119"


def test_unknown_elements_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown element symbol 'Xx' \(file a.xyz, line 3\)"):
        symbol_to_number("Xx", "file a.xyz, line 3")
    with pytest.raises(ValueError, match="unknown atomic number 0; expected 1..118"):
        number_to_symbol(0)
    with pytest.raises(ValueError, match="unknown atomic number 200 at atom index 1 in frame 2"):
        check_atomic_numbers(np.array([1, 200]), "frame 2")
    with pytest.raises(ValueError, match="must be integers"):
        check_atomic_numbers(np.array([1.5]))


def test_masses_are_iupac_values() -> None:
    # IUPAC 2013 standard atomic weights (conventional values) as ASE tabulates them.
    assert atomic_masses(np.array([1, 6, 8])) == pytest.approx([1.008, 12.011, 15.999])
    with pytest.raises(ValueError, match="unknown atomic number 0"):
        atomic_masses(np.array([0]))
