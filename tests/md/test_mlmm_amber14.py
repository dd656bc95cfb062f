"""ML/MM through amber14: explicit TIP3P (PME, periodic), link atoms in vacuum, GBn2 refusal."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import openmm
import pytest
import torch
from openmm import unit

from tensormol import keys as K
from tensormol.export import load_model
from tensormol.md import create_mlmm_system, create_mm_system, load_structure, select_atoms
from tensormol.units import EV_TO_KJ_PER_MOL

pytestmark = pytest.mark.openmm

DATA = Path(importlib.util.find_spec("openmmtools").origin).parent / "data"


def _energy(system, structure):
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001),
                         openmm.Platform.getPlatformByName("Reference"))
    if system.usesPeriodicBoundaryConditions():
        ctx.setPeriodicBoxVectors(*structure.box)
    ctx.setPositions(structure.positions)
    return ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(
        unit.kilojoule_per_mole)


def test_explicit_water_with_one_ml_water(tiny_bundle):
    s = load_structure(DATA / "alanine-dipeptide-explicit" / "alanine-dipeptide.pdb")
    waters = [r for r in s.topology.residues() if r.name == "HOH"]
    ml = [a.index for a in waters[0].atoms()]
    mm = create_mm_system(s, forcefield="amber14", solvent="tip3p")
    mixed = create_mlmm_system(s, tiny_bundle, ml, mm_system=mm)
    assert mixed.usesPeriodicBoundaryConditions()
    assert not any(c in ml for i in range(mixed.getNumConstraints())
                   for c in mixed.getConstraintParameters(i)[:2])  # ML water is flexible
    # Rigid TIP3P has no internal MM terms (its geometry is constrained, intramolecular pairs
    # excluded), so mechanical embedding adds exactly the model's energy of the water.
    pos = np.asarray(s.positions.value_in_unit(unit.angstrom))[ml]
    cell = np.array([[v.x, v.y, v.z] for v in s.box.value_in_unit(unit.angstrom)])
    z = [a.element.atomic_number for a in waters[0].atoms()]
    out = load_model(tiny_bundle)({K.POSITIONS: torch.tensor(pos), K.ATOMIC_NUMBERS:
                                   torch.tensor(z), K.CELL: torch.tensor(cell)[None],
                                   K.PBC: torch.ones(1, 3, dtype=torch.bool)})
    e_ml = float(out[K.ENERGY][0]) * EV_TO_KJ_PER_MOL
    e_mm, e_mixed = _energy(mm, s), _energy(mixed, s)
    assert abs(e_mixed - (e_mm + e_ml)) < 1e-6 * abs(e_mm)


def test_gbn2_refuses_a_bond_cutting_ml_region(tiny_bundle):
    # openmm-ml's link atoms would leave the GB force one particle short: refused, explained.
    s = load_structure(DATA / "alanine-dipeptide-gbsa" / "alanine-dipeptide.pdb")
    ml = select_atoms(s.topology, "ACE")  # CH3-C(=O)-, bonded to ALA's N
    mm = create_mm_system(s, forcefield="amber14", solvent="gbn2")
    with pytest.raises(ValueError, match="cuts 1 covalent bond.*implicit solvent"):
        create_mlmm_system(s, tiny_bundle, ml, mm_system=mm)


def test_vacuum_with_a_link_atom(tiny_bundle):
    s = load_structure(DATA / "alanine-dipeptide-gbsa" / "alanine-dipeptide.pdb")
    ml = select_atoms(s.topology, "ACE")
    mixed = create_mlmm_system(s, tiny_bundle, ml, forcefield="amber14", solvent="vacuum")
    assert mixed.getNumParticles() == s.num_atoms + 1  # the link-atom hydrogen (virtual site)
    assert mixed.isVirtualSite(s.num_atoms)
    ctx = openmm.Context(mixed, openmm.VerletIntegrator(0.0005),
                         openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(list(s.positions) + [openmm.Vec3(0, 0, 0) * unit.nanometer])
    ctx.computeVirtualSites()
    e0 = ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    ctx.getIntegrator().step(5)
    e1 = ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    assert np.isfinite(e0) and np.isfinite(e1) and e0 != e1
