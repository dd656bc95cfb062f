"""ML/MM wiring of free-energy systems: exact energy bookkeeping, batching, errors."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openmm")
pytest.importorskip("openmmml")
pytest.importorskip("rdkit")

import openmm  # noqa: E402
import openmm.app as app  # noqa: E402
from openmm import unit  # noqa: E402

from tensormol.fe._ligands import parameterize_ligand  # noqa: E402
from tensormol.fe._mlmm import FORCE_NAME, add_ml_potential  # noqa: E402
from tensormol.fe._systems import SystemSettings, build_system  # noqa: E402

pytestmark = pytest.mark.openmm


def _energy(system, pos, box=None, groups=-1):
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001),
                         openmm.Platform.getPlatformByName("Reference"))
    if box is not None:
        ctx.setPeriodicBoxVectors(*[openmm.Vec3(*r) for r in box])
    ctx.setPositions(pos)
    st = ctx.getState(getEnergy=True, groups=groups)
    return st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


def _intra(lig, pos):
    """MM energy of a ligand alone (its intramolecular energy), no cutoff."""
    system = app.AmberPrmtopFile(str(lig.prmtop_path)).createSystem(nonbondedMethod=app.NoCutoff)
    return _energy(system, pos)


@pytest.fixture(scope="module")
def ligands(tmp_path_factory):
    cache = tmp_path_factory.mktemp("ligands")
    eth = parameterize_ligand("CCO", cache_dir=cache)
    ace = parameterize_ligand("CC(C)=O", cache_dir=cache)
    return eth, ace


def _split_groups(system):
    for f in system.getForces():
        f.setForceGroup(1 if f.getName() == FORCE_NAME else 0)


@pytest.mark.parametrize("solvent", ["vacuum", "tip3p"])
def test_mixed_energy_is_mm_minus_ligand_intramolecular_plus_model(ligands, tiny_bundle,
                                                                   solvent):
    eth, ace = ligands
    settings = SystemSettings(solvent=solvent, box_nm=1.9, cutoff_nm=0.8,
                              hydrogen_mass_amu=None, ionic_strength_molar=0.0)
    built = build_system([eth, ace], settings,
                         ligand_positions=[eth.positions, ace.positions + [0.9, 0.0, 0.0]])
    mixed = add_ml_potential(built.system, built.topology, built.ligand_atoms, tiny_bundle)
    names = [f.getName() for f in mixed.getForces()]
    assert names.count(FORCE_NAME) == 1  # both ligands in one force (one batched call)
    assert not any(isinstance(f, openmm.PythonForce) and f.getName() != FORCE_NAME
                   for f in mixed.getForces())
    _split_groups(mixed)
    box = built.box_vectors
    e_mm = _energy(built.system, built.positions, box)
    e_rest = _energy(mixed, built.positions, box, groups={0})
    e_intra = sum(_intra(lig, built.positions[idx])
                  for lig, idx in zip((eth, ace), built.ligand_atoms))
    # Exactly the ligands' intramolecular MM terms are gone; their mutual MM interaction stays.
    assert e_rest == pytest.approx(e_mm - e_intra, abs=1e-6 * max(1.0, abs(e_mm)))
    # The batched model energy is the sum of each ligand's energy alone (openmm-ml route).
    e_ml = _energy(mixed, built.positions, box, groups={1})
    from tensormol.md._systems import ml_potential

    single = 0.0
    for lig, idx in zip((eth, ace), built.ligand_atoms):
        top = app.AmberPrmtopFile(str(lig.prmtop_path)).topology
        single += _energy(ml_potential(tiny_bundle).createSystem(top), built.positions[idx])
    assert e_ml == pytest.approx(single, rel=1e-9, abs=1e-8)


def test_molecule_split_by_the_box_is_made_whole(ligands, tiny_bundle):
    eth, _ = ligands
    built = build_system([eth], SystemSettings(solvent="tip3p", box_nm=1.9, cutoff_nm=0.8,
                                               hydrogen_mass_amu=None))
    mixed = add_ml_potential(built.system, built.topology, built.ligand_atoms, tiny_bundle)
    _split_groups(mixed)
    e0 = _energy(mixed, built.positions, built.box_vectors, groups={1})
    moved = built.positions.copy()
    moved[built.ligand_atoms[0][0]] += built.box_vectors[0]  # one atom wrapped by a box vector
    e1 = _energy(mixed, moved, built.box_vectors, groups={1})
    assert e1 == pytest.approx(e0, rel=1e-9)


def test_states_of_the_alchemical_ml_system_match_mm_bookkeeping(ligands, tiny_bundle):
    """ML/MM differs from MM by the ligand's own MM terms only, swapped for the model's energy.

    The exact version of "ML/MM equals MM when the model reproduces the MM intramolecular
    energy". At every hydration state, D = E_mlmm(λ) - E_model - E_mm(λ) depends on the ligand's
    coordinates alone (moving the water leaves it unchanged); at states with λ_elec in {0, 1}
    it equals minus the ligand-alone MM energy at the same state. (In between, PME's exact
    treatment scales intramolecular charges pairs by λ², the vacuum factory linearly: the paths
    differ, the end states do not.)
    """
    from tensormol.fe._hydration import PRESETS, _alchemical, hydration_states

    eth, _ = ligands
    built = build_system([eth], SystemSettings(solvent="tip3p", box_nm=1.9, cutoff_nm=0.8,
                                               hydrogen_mass_amu=None))
    atoms = built.ligand_atoms[0]
    mixed = add_ml_potential(built.system, built.topology, [atoms], tiny_bundle)
    alch_ml = _alchemical(mixed, atoms)
    alch_mm = _alchemical(built.system, atoms)
    vac = app.AmberPrmtopFile(str(eth.prmtop_path))
    alch_vac = _alchemical(vac.createSystem(nonbondedMethod=app.NoCutoff), range(len(atoms)))
    for f in alch_ml.getForces():
        if f.getName() == FORCE_NAME:
            f.setForceGroup(31)
    plat = openmm.Platform.getPlatformByName("Reference")
    ctxs = [openmm.Context(s, openmm.VerletIntegrator(0.001), plat)
            for s in (alch_ml, alch_mm, alch_vac)]
    box = [openmm.Vec3(*r) for r in built.box_vectors]
    rng = np.random.default_rng(1)
    pos = built.positions + rng.normal(0.0, 0.003, built.positions.shape)
    water = np.setdiff1d(np.arange(len(pos)), atoms)
    moved = pos.copy()
    moved[water] += rng.normal(0.0, 0.002, (len(water), 3))

    def energies(x, state):
        for c in ctxs[:2]:
            c.setPeriodicBoxVectors(*box)
            c.setPositions(x)
        ctxs[2].setPositions(x[atoms])
        e = []
        for c in ctxs:
            for k, v in state.items():
                c.setParameter(k, v)
            e.append(c.getState(getEnergy=True).getPotentialEnergy()
                     .value_in_unit(unit.kilojoule_per_mole))
        e_model = ctxs[0].getState(getEnergy=True, groups={31}).getPotentialEnergy() \
            .value_in_unit(unit.kilojoule_per_mole)
        return e[0] - e_model - e[1], e[2]

    for state in hydration_states(PRESETS["quick"]):
        d0, vac0 = energies(pos, state)
        d1, _ = energies(moved, state)
        assert d1 == pytest.approx(d0, abs=1e-6)
        if state["lambda_electrostatics"] in (0.0, 1.0):
            assert d0 == pytest.approx(-vac0, abs=1e-6)


def test_element_the_model_does_not_know(tmp_path, tiny_bundle):
    from tensormol.export import BundleError

    lig = parameterize_ligand("CN", cache_dir=tmp_path)  # nitrogen: the bundle knows H, C, O
    built = build_system([lig], SystemSettings(solvent="vacuum"))
    with pytest.raises(BundleError, match=r"ligand 0 .*N \(Z=7\)"):
        add_ml_potential(built.system, built.topology, built.ligand_atoms, tiny_bundle)


def test_bad_ml_atoms_and_order_of_operations(ligands, tiny_bundle):
    from tensormol.fe._hydration import _alchemical

    eth, _ = ligands
    built = build_system([eth], SystemSettings(solvent="vacuum"))
    with pytest.raises(ValueError, match="outside"):
        add_ml_potential(built.system, built.topology, [[0, 1, 99]], tiny_bundle)
    with pytest.raises(ValueError, match="repeats"):
        add_ml_potential(built.system, built.topology, [[0, 1], [1, 2]], tiny_bundle)
    with pytest.raises(ValueError, match="empty"):
        add_ml_potential(built.system, built.topology, [], tiny_bundle)
    alch = _alchemical(built.system, built.ligand_atoms[0])
    with pytest.raises(ValueError, match="before alchemical modification"):
        add_ml_potential(alch, built.topology, built.ligand_atoms, tiny_bundle)
