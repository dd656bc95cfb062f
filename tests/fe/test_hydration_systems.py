"""System building for free-energy legs: exact GAFF2 energies, water box, ions, HMR, receptors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openmm")
pytest.importorskip("rdkit")

import openmm  # noqa: E402
import openmm.app as app  # noqa: E402
from openmm import unit  # noqa: E402

from tensormol.fe._ligands import parameterize_ligand  # noqa: E402
from tensormol.fe._systems import SystemSettings, build_system, load_receptor  # noqa: E402

pytestmark = pytest.mark.openmm


def _energy(system, pos, box=None):
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001),
                         openmm.Platform.getPlatformByName("Reference"))
    if box is not None:
        ctx.setPeriodicBoxVectors(*[openmm.Vec3(*r) for r in box])
    ctx.setPositions(pos)
    return ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("ligands")


def test_vacuum_and_implicit_ligand_energy_is_the_prmtop_energy(cache):
    lig = parameterize_ligand("Cc1ccccc1", cache_dir=cache)
    ref = app.AmberPrmtopFile(str(lig.prmtop_path))
    built = build_system([lig], SystemSettings(solvent="vacuum", hydrogen_mass_amu=None))
    e_ref = _energy(ref.createSystem(nonbondedMethod=app.NoCutoff), lig.positions)
    assert _energy(built.system, built.positions) == pytest.approx(e_ref, abs=1e-8)
    for solvent in ("obc2", "gbn2"):  # implicit solvent lowers the energy of a polar-ish solute
        b = build_system([lig], SystemSettings(solvent=solvent, hydrogen_mass_amu=None))
        e = _energy(b.system, b.positions)
        assert np.isfinite(e) and e < e_ref


def test_water_box_ions_hmr_and_box_check(cache):
    lig = parameterize_ligand("CC(=O)[O-]", cache_dir=cache)  # acetate, net charge -1
    built = build_system([lig], SystemSettings(solvent="tip3p", box_nm=2.4, cutoff_nm=0.9,
                                               ionic_strength_molar=0.15, hydrogen_mass_amu=3.0))
    names = [r.name for r in built.topology.residues()]
    n_na, n_cl, n_wat = names.count("NA"), names.count("CL"), names.count("HOH")
    assert n_na == n_cl + 1  # one counter-ion neutralises the ligand
    expected_pairs = 0.15 * 6.02214076e23 * n_wat * 2.989e-26  # 0.15 mol/L in the water (L)
    assert abs(n_cl - expected_pairs) <= 1.0
    np.testing.assert_allclose(np.diag(built.box_vectors), 2.4)
    # HMR: ligand hydrogens weigh 3 amu, total mass unchanged; water keeps natural masses.
    masses = [built.system.getParticleMass(i).value_in_unit(unit.dalton)
              for i in range(built.system.getNumParticles())]
    lig_atoms = built.ligand_atoms[0]
    h = [i for i in lig_atoms if lig.atomic_numbers[i - lig_atoms[0]] == 1]
    assert all(masses[i] == pytest.approx(3.0) for i in h)
    assert sum(masses[i] for i in lig_atoms) == pytest.approx(59.04, abs=0.02)
    water_h = [a.index for a in built.topology.atoms()
               if a.residue.name == "HOH" and a.element.symbol == "H"]
    assert masses[water_h[0]] == pytest.approx(1.008, abs=1e-3)
    # Modeller's fresh box has close contacts; a short minimisation gives liquid-like energies.
    ctx = openmm.Context(built.system, openmm.VerletIntegrator(0.001),
                         openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    ctx.setPeriodicBoxVectors(*[openmm.Vec3(*r) for r in built.box_vectors])
    ctx.setPositions(built.positions)
    openmm.LocalEnergyMinimizer.minimize(ctx, 50.0, 100)
    e_min = ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    assert e_min / n_wat < -35.0  # TIP3P: about -41 kJ/mol per water at a minimum
    with pytest.raises(ValueError, match=r"1.500 nm wide, less than twice the nonbonded cutoff"):
        build_system([lig], SystemSettings(solvent="tip3p", box_nm=1.5, cutoff_nm=0.9))
    with pytest.raises(ValueError, match="solvent must be one of"):
        SystemSettings(solvent="spc")


def test_prmtop_receptor_with_ligand(cache):
    """CB7 (openmmtools' Amber files) + a GAFF2 ligand: every component keeps its own energy."""
    spec = importlib.util.find_spec("openmmtools")
    if spec is None:
        pytest.skip("openmmtools data not available")
    d = Path(spec.origin).parent / "data" / "cb7-b2"
    receptor = load_receptor(d / "receptor.prmtop", d / "receptor.inpcrd")
    lig = parameterize_ligand("OC12CC3CC(CC(C3)C1)C2", cache_dir=cache)  # 1-adamantanol
    far = lig.positions + np.array([30.0, 0.0, 0.0])  # 30 nm away: interactions negligible
    built = build_system([lig], SystemSettings(solvent="vacuum", hydrogen_mass_amu=None),
                         receptor=receptor, ligand_positions=[far])
    assert built.receptor_atoms == list(range(receptor.topology.getNumAtoms()))
    e_rec = _energy(receptor.prmtop.createSystem(nonbondedMethod=app.NoCutoff),
                    receptor.positions)
    e_lig = _energy(app.AmberPrmtopFile(str(lig.prmtop_path))
                    .createSystem(nonbondedMethod=app.NoCutoff), lig.positions)
    assert _energy(built.system, built.positions) == pytest.approx(e_rec + e_lig, abs=1e-3)
    with pytest.raises(ValueError, match="needs coordinates"):
        load_receptor(d / "receptor.prmtop")
    with pytest.raises(FileNotFoundError):
        load_receptor(d / "missing.pdb")
