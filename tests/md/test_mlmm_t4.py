"""ML/MM on T4 lysozyme L99A with p-xylene (openmmtools data): the ligand in ML, the rest MM."""

from __future__ import annotations

import numpy as np
import openmm
import openmm.app as app
import pytest
import torch
from openmm import unit

from tensormol import keys as K
from tensormol.export import load_model
from tensormol.md import create_mlmm_system, create_mm_system, load_structure, select_atoms
from tensormol.units import ANGSTROM_TO_NM, EV_TO_KJ_PER_MOL

pytestmark = pytest.mark.openmm


def _energy(system, positions, platform="Reference"):
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001),
                         openmm.Platform.getPlatformByName(platform))
    ctx.setPositions(positions)
    st = ctx.getState(getEnergy=True, getForces=True)
    return (st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))


@pytest.fixture(scope="module")
def t4(t4_dir):
    s = load_structure(t4_dir / "complex.prmtop", t4_dir / "complex.crd")
    return s, select_atoms(s.topology, "TMP")


@pytest.fixture(scope="module")
def t4_mm(t4):
    return create_mm_system(t4[0], forcefield="amber", solvent="obc2")


def test_total_is_mm_plus_ml_minus_ligand_internal_mm(t4, t4_mm, t4_dir, tiny_bundle):
    s, lig = t4
    assert len(lig) == 18
    mm = t4_mm
    mixed = create_mlmm_system(s, tiny_bundle, lig, mm_system=mm)
    e_mixed, f_mixed = _energy(mixed, s.positions)
    e_mm, f_mm = _energy(mm, s.positions)
    # The ligand's internal MM energy, computed independently from the ligand's own prmtop
    # (same GAFF parameters): bonds, angles, torsions, intra-ligand Coulomb + LJ, in vacuum.
    lp = app.AmberPrmtopFile(str(t4_dir / "ligand.prmtop"))
    assert [a.name for a in lp.topology.atoms()] == \
        [a.name for a in s.topology.atoms() if a.residue.name == "TMP"]
    lig_sys = lp.createSystem(nonbondedMethod=app.NoCutoff, constraints=None)
    pos = np.asarray(s.positions.value_in_unit(unit.nanometer))
    e_int, f_int = _energy(lig_sys, pos[lig])
    # The model's energy of the ligand alone.
    z = [a.element.atomic_number for a in s.topology.atoms() if a.residue.name == "TMP"]
    out = load_model(tiny_bundle)({K.POSITIONS: torch.tensor(pos[lig] / ANGSTROM_TO_NM),
                                   K.ATOMIC_NUMBERS: torch.tensor(z)}, compute_forces=True)
    e_ml = float(out[K.ENERGY][0]) * EV_TO_KJ_PER_MOL
    f_ml = out[K.FORCES].numpy() * EV_TO_KJ_PER_MOL / ANGSTROM_TO_NM
    expected = e_mm + e_ml - e_int
    assert abs(e_mixed - expected) <= 1e-8 * abs(e_mm)
    f_expected = f_mm.copy()
    f_expected[lig] += f_ml - f_int
    assert np.abs(f_mixed - f_expected).max() <= 1e-7 * np.abs(f_mm).max()
    # Sanity: the decomposition is not trivially satisfied.
    assert abs(e_int) > 1.0 and abs(e_ml) > 1.0


def test_species_outside_the_model_are_refused_in_the_ml_region(t4, t4_mm, tiny_bundle):
    from tensormol.export import BundleError

    s, _ = t4
    mm = t4_mm
    residue_with_n = [a.index for a in list(s.topology.residues())[0].atoms()]
    with pytest.raises(BundleError, match=r"N \(Z=7\).*ML region"):
        create_mlmm_system(s, tiny_bundle, residue_with_n, mm_system=mm)


def test_amber14_route_asks_for_ligand_templates(t4):
    s, lig = t4
    with pytest.raises(ValueError, match="extra-forcefield"):
        create_mm_system(s, forcefield="amber14", solvent="gbn2")


@pytest.mark.slow
def test_one_picosecond_of_mlmm_dynamics_is_stable(t4, trained_bundle, tmp_path):
    from tensormol.md import load_md_config, run_md

    s, lig = t4
    cfg = load_md_config(structure=str(s.path), model=str(trained_bundle), ml="TMP",
                         forcefield="amber", solvent="obc2", ensemble="nvt", timestep=1.0,
                         steps=1000, report_interval=100, trajectory_interval=100,
                         checkpoint_interval=0, output=str(tmp_path), threads=2,
                         minimize_max_iterations=200)
    result = run_md(cfg)
    rows = np.genfromtxt(tmp_path / "energies.csv", delimiter=",", names=True)
    assert len(rows) == 10 and np.isfinite(rows["potential_kJ_mol"]).all()
    assert 150 < rows["temperature_K"][-5:].mean() < 400  # friction 1/ps: still warming up
    final = app.PDBFile(result.files["final"]).getPositions(asNumpy=True)
    x = np.asarray(final.value_in_unit(unit.angstrom))[lig]
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    assert d[np.triu_indices(18, 1)].min() > 0.8  # no collapsed atoms
    assert np.sort(d[:8, :8], axis=1)[:, 1].max() < 1.8  # every carbon keeps a bonded neighbour
