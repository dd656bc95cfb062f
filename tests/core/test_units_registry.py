"""Unit factors and registries: values checked against independent definitions."""

from __future__ import annotations

import pytest

from tensormol import units
from tensormol.registry import Registry, suggest


def test_energy_factors_against_codata() -> None:
    # 1 eV = 96.485 332 12 kJ/mol (CODATA 2018 via exact SI e and N_A).
    assert units.EV_TO_KJ_PER_MOL == pytest.approx(96.48533212331, rel=1e-12)
    # 1 kcal/mol = 0.043 364 10 eV.
    assert units.KCAL_PER_MOL_TO_EV == pytest.approx(0.04336410424, rel=1e-9)
    assert units.energy_factor("Hartree") == pytest.approx(27.211386245988, rel=1e-14)
    assert units.energy_factor("kcal/mol") * units.energy_factor("eV") == units.KCAL_PER_MOL_TO_EV
    assert units.length_factor("Bohr") == pytest.approx(0.529177210903, rel=1e-14)
    assert units.length_factor("nm") == 10.0


def test_unit_aliases_and_unknown_unit() -> None:
    assert units.energy_factor("ev") == 1.0
    assert units.length_factor("Å") == 1.0
    with pytest.raises(ValueError, match="valid energy units are: eV"):
        units.energy_factor("furlong")


def test_registry_lists_valid_names_and_suggests() -> None:
    reg: Registry[int] = Registry("model")
    reg.register("tensornet", 1)

    @reg.register("gaunt")
    def _builder() -> int:
        return 2

    assert reg.get("tensornet") == 1 and reg.get("gaunt")() == 2
    expected = r"did you mean 'tensornet'.*valid models are: gaunt, tensornet"
    with pytest.raises(KeyError, match=expected):
        reg.get("tensornett")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("tensornet", 3)
    assert suggest("cutof", ["cutoff", "num_layers"]) == " (did you mean 'cutoff'?)"
    assert suggest("zzz", ["cutoff"]) == ""
