"""Hydration free energy: a tiny real run (finite, resumable, identical after a kill), bad input,
the command line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("openmm")
pytest.importorskip("openmmtools")
pytest.importorskip("rdkit")

from tensormol.fe._hydration import (  # noqa: E402
    PRESETS,
    HydrationPreset,
    hydration_states,
    run_hydration,
    run_hydration_leg,
)

pytestmark = pytest.mark.openmm

#: A few seconds: methane in about 60 waters, 5 states, 4 iterations of 10 steps.
TINY = HydrationPreset("tiny", electrostatics=(1.0, 0.5, 0.0), sterics=(1.0, 0.5, 0.0),
                       n_iterations=4, steps_per_iteration=10, timestep_fs=2.0,
                       padding_nm=0.5, cutoff_nm=0.55, box_nm=1.25, equilibration_ps=0.2,
                       vacuum_iterations=4)


def test_states_and_presets():
    states = hydration_states(PRESETS["standard"])
    assert states[0] == {"lambda_electrostatics": 1.0, "lambda_sterics": 1.0}
    assert states[-1] == {"lambda_electrostatics": 0.0, "lambda_sterics": 0.0}
    assert len(states) == PRESETS["standard"].n_states == 12
    # Electrostatics off before sterics: no state has charges on a softened ligand.
    assert all(s["lambda_sterics"] == 1.0 for s in states if s["lambda_electrostatics"] > 0)
    with pytest.raises(ValueError, match="from 1.0 to 0.0"):
        hydration_states(HydrationPreset("x", (1.0, 0.5), (1.0, 0.0), 1, 1))


def test_tiny_run_finite_and_resume_equals_uninterrupted(tmp_path):
    # The Reference platform is deterministic (the CPU platform's FFT plans are not), so two
    # runs, one of them killed and resumed, can be compared bit for bit.
    cache = tmp_path / "cache"
    full = run_hydration("C", tmp_path / "full", preset=TINY, platform="Reference",
                         cache_dir=cache, progress=False)
    assert (tmp_path / "full" / "plots").is_dir()
    assert math.isfinite(full.dg_kcal) and math.isfinite(full.ddg_kcal)
    assert set(full.legs) == {"solvent", "vacuum"}
    # Methane: sterics dominate; a few iterations of a tiny box still land within a few kcal/mol.
    assert -3.0 < full.dg_kcal < 6.0
    sol = full.legs["solvent"]
    assert sol["dispersion_tail_kJ"] < 0.0  # the coupled state's missing attraction
    assert (tmp_path / "full" / "results.json").is_file()
    doc = json.loads((tmp_path / "full" / "hydration.json").read_text())
    assert doc["dg_kcal"] == pytest.approx(full.dg_kcal)
    # ΔG_hyd = ΔG_vacuum_leg - ΔG_solvent_leg (kT), as documented.
    kT_kcal = full.dg_kcal / (full.legs["vacuum"]["dg_kT"] - sol["dg_kT"])
    assert kT_kcal == pytest.approx(0.5925, rel=1e-3)  # k_B T at 298.15 K in kcal/mol

    # "Killed" after 2 iterations of the solvent leg, then resumed: the same numbers.
    part = tmp_path / "part"
    with pytest.raises(ValueError, match="nothing to resume|already holds"):
        (part / "x").mkdir(parents=True)
        run_hydration("C", part, preset=TINY, resume=True, cache_dir=cache, progress=False)
    (part / "x").rmdir()
    from tensormol.fe._hydration import prepare_hydration

    prepare_hydration("C", part, preset=TINY, platform="Reference", cache_dir=cache)
    run_hydration_leg(part, "solvent", platform="Reference", progress=False, n_iterations=2)
    with pytest.raises(ValueError, match="already holds a run"):
        run_hydration("C", part, preset=TINY, cache_dir=cache, progress=False)
    resumed = run_hydration("C", part, preset=TINY, resume=True, platform="Reference",
                            cache_dir=cache, progress=False, plots=False)
    assert resumed.legs["solvent"]["n_iterations"] == TINY.n_iterations
    assert resumed.dg_kcal == full.dg_kcal
    assert resumed.ddg_kcal == full.ddg_kcal
    # Resuming with other inputs is refused.
    other = HydrationPreset(**{**TINY.__dict__, "n_iterations": 5})
    with pytest.raises(ValueError, match="preset differ"):
        run_hydration("C", part, preset=other, resume=True, cache_dir=cache, progress=False)


def test_box_smaller_than_twice_the_cutoff(tmp_path):
    small = HydrationPreset(**{**TINY.__dict__, "box_nm": 1.0})
    with pytest.raises(ValueError, match=r"1.000 nm wide, less than twice the nonbonded cutoff"):
        run_hydration("C", tmp_path / "run", preset=small, cache_dir=tmp_path / "c")
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="preset must be one of"):
        run_hydration("C", tmp_path / "a", preset="fast")
    with pytest.raises(FileNotFoundError, match="potential"):
        run_hydration("C", tmp_path / "b", preset=TINY, potential=tmp_path / "none.tmol")
    with pytest.raises(ValueError, match="could not parse the SMILES"):
        run_hydration("C1CC", tmp_path / "c", preset=TINY, cache_dir=tmp_path / "cache")


def test_cli_errors(tmp_path, capsys):
    from tensormol.cli.main import main

    assert main(["fe", "hydration", "-o", str(tmp_path / "r")]) == 2
    assert "--smiles" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:
        main(["fe", "hydration", "--smiles", "C", "--preset", "fast"])
    assert err.value.code == 2
    assert "invalid choice: 'fast'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fe", "hydration", "--smiles", "C", "--temperature", "300"])
    assert "unrecognized arguments: --temperature" in capsys.readouterr().err
    assert main(["fe", "hydration", "--ligand", str(tmp_path / "no.sdf")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow  # about 90 s on a busy 2-core machine: the model runs through a Python callback
def test_tiny_ml_mm_run(tmp_path, tiny_bundle):
    """ML/MM end to end: the vacuum leg is constant (not run), the solvent leg gives a number."""
    preset = HydrationPreset(**{**TINY.__dict__, "n_iterations": 3})
    res = run_hydration("CO", tmp_path / "ml", preset=preset, potential=tiny_bundle, threads=1,
                        cache_dir=tmp_path / "cache", progress=False)
    assert set(res.legs) == {"solvent"}
    assert np.isfinite(res.dg_kcal) and np.isfinite(res.ddg_kcal)
    assert res.dg_kcal == pytest.approx(-res.legs["solvent"]["dg_kT"] * 0.59248, rel=1e-3)
