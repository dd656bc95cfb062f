"""The ASE calculator: forces and stress are derivatives of the energy; MD and optimization run."""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import molecule

from tensormol.export import TensorMolCalculator


def test_forces_and_stress_are_derivatives_of_the_energy(tiny_bundle):
    from ase import Atoms

    rng = np.random.default_rng(0)
    atoms = Atoms("H2C2O", positions=rng.uniform(0, 6.0, (5, 3)), cell=[[6.0, 0, 0],
                  [0.5, 6.2, 0], [0.3, -0.4, 6.5]], pbc=True)
    atoms.calc = TensorMolCalculator(tiny_bundle)
    f = atoms.get_forces()
    f_num = atoms.calc.calculate_numerical_forces(atoms, d=1e-4)
    np.testing.assert_allclose(f, f_num, atol=1e-6)
    s = atoms.get_stress()
    s_num = atoms.calc.calculate_numerical_stress(atoms, d=1e-5)
    np.testing.assert_allclose(s, s_num, atol=1e-7)
    assert np.abs(s).max() > 1e-4


def test_unknown_element_and_partial_pbc_are_refused(tiny_bundle):
    atoms = molecule("CH3CH2OH")
    atoms.calc = TensorMolCalculator(tiny_bundle)
    atoms.set_atomic_numbers([7] + list(atoms.get_atomic_numbers()[1:]))
    with pytest.raises(ValueError, match=r"N \(Z=7\)"):
        atoms.get_potential_energy()
    slab = molecule("CH3CH2OH", vacuum=4.0)
    slab.pbc = [True, True, False]
    slab.calc = TensorMolCalculator(tiny_bundle)
    with pytest.raises(ValueError, match="stress needs a cell periodic"):
        slab.get_stress()


def test_overlap_error_matches_the_openmm_routes(tiny_bundle):
    # The same GeometryError as the PythonForce graphs (0-based indices), periodic images too.
    from ase import Atoms

    from tensormol.export import GeometryError

    atoms = molecule("CH3CH2OH")
    atoms.positions[4] = atoms.positions[3]
    atoms.calc = TensorMolCalculator(tiny_bundle)
    with pytest.raises(GeometryError, match=r"^unphysical geometry \(overlap\): atoms 3 and 4 "
                                            r"\(0-based indices\)"):
        atoms.get_potential_energy()
    box = Atoms("HO", positions=[[0.2, 0.0, 0.0], [5.2, 0.0, 0.0]], cell=[5.0, 5.0, 5.0],
                pbc=True)  # O sits on an image of H
    box.calc = TensorMolCalculator(tiny_bundle)
    with pytest.raises(GeometryError, match="atoms 0 and 1"):
        box.get_potential_energy()


def test_langevin_and_geometry_optimization(trained_bundle):
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.optimize import BFGS

    atoms = molecule("CH3CH2OH")
    atoms.calc = TensorMolCalculator(trained_bundle)
    opt = BFGS(atoms, logfile=None)
    assert opt.run(fmax=0.02, steps=200)
    assert np.abs(atoms.get_forces()).max() < 0.02
    d_co = atoms.get_distance(1, 2) if atoms[2].symbol == "O" else atoms.get_distance(0, 2)
    assert 1.3 < d_co < 1.6  # a C-O bond survives the optimization
    e_min = atoms.get_potential_energy()
    rng = np.random.default_rng(1)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=rng)
    dyn = Langevin(atoms, 0.5 * units.fs, temperature_K=300, friction=0.05, rng=rng, fixcm=False)
    dyn.run(60)
    e = atoms.get_potential_energy()
    assert np.isfinite(e) and e > e_min
    assert e - e_min < 2.0  # 30 fs at 300 K: a thermal excursion, not a blow-up
    assert atoms.get_all_distances()[np.triu_indices(9, 1)].min() > 0.8
