"""The EnergyModel contract itself: species, reference energies, dtypes, edge lists, stress sign
(against ASE's own numerical stress), autograd modes and input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tensormol import keys as K
from tensormol.elements import element_symbol
from tensormol.models import EnergyModel, TensorNet
from tensormol.ops import neighbor_list
from tensormol.testing import make_batch, random_molecule, random_periodic

F64 = torch.float64


def _model(dtype: str = "float64") -> TensorNet:
    torch.manual_seed(0)
    return TensorNet(atomic_numbers=[1, 6, 8], hidden_channels=6, num_layers=1, num_rbf=6,
                     cutoff_upper=3.0, dtype=dtype).eval()


def test_unknown_element_is_named() -> None:
    model = _model()
    batch = make_batch([random_molecule([1, 6, 9], 4, torch.Generator().manual_seed(0))])
    with pytest.raises(ValueError) as err:
        model(batch)
    assert str(err.value) == ("element F (Z=9) is not known to this model; it was trained on "
                              "H, C, O")
    batch[K.ATOMIC_NUMBERS] = torch.tensor([1, 6, 200, 8])
    with pytest.raises(ValueError, match="atomic number 200 is not known"):
        model(batch)
    assert element_symbol(26) == "Fe" and element_symbol(0) == "Z=0"
    with pytest.raises(ValueError, match="unique"):
        EnergyModel(cutoff=3.0, atomic_numbers=[1, 1])
    with pytest.raises(ValueError, match="cutoff"):
        EnergyModel(cutoff=0.0, atomic_numbers=[1])


def test_reference_energies_and_dtype_policy(generator) -> None:
    model = _model("float32")
    model.set_energy_statistics({1: -13.6, 6: -1029.5, 8: -2041.25}, scale=0.5, shift=0.25)
    assert model.reference_energies.dtype == F64
    assert model.reference_energies.tolist() == [-13.35, -1029.25, -2041.0]
    assert float(model.energy_scale) == 0.5
    with pytest.raises(ValueError, match="missing \\[8\\]"):
        model.set_energy_statistics({1: 0.0, 6: 0.0})
    with pytest.raises(ValueError, match="3 entries"):
        model.set_energy_statistics([1.0, 2.0])
    with pytest.raises(ValueError, match="scale"):
        model.set_energy_statistics(scale=-1.0)
    # casting the layers never casts the statistics
    model.double().float()
    assert model.reference_energies.dtype == F64 and model.model_dtype == torch.float32
    assert model.reference_energies.tolist() == [-13.35, -1029.25, -2041.0]
    # an O atom alone, and an O atom far from an H atom: exactly the reference energies
    far = torch.tensor([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]], dtype=F64)
    out = model({K.POSITIONS: far, K.ATOMIC_NUMBERS: torch.tensor([8, 1])})
    assert out[K.ENERGY].dtype == F64 and out[K.FORCES].dtype == F64
    # float32 layers leave rounding noise on isolated atoms when torch splits the work over
    # threads (measured 1.9e-9 eV on two threads, exactly 0 on one)
    assert abs(float(out[K.ENERGY][0]) - (-2041.0 - 13.35)) < 1e-8
    assert float(out[K.FORCES].abs().max()) == 0.0
    # state dict round trip keeps them
    other = _model("float32")
    other.load_state_dict(model.state_dict())
    assert other.reference_energies.tolist() == model.reference_energies.tolist()


def test_given_edge_list_equals_internal_one(generator) -> None:
    """A precomputed list (here with a larger cutoff, so with pairs beyond the model's) gives the
    same result: pairs beyond the cutoff are dropped."""
    model = _model()
    s = random_periodic([1, 6, 8], 5, generator)
    batch = make_batch([s])
    ref = model(batch, compute_stress=True)
    ei, shifts = neighbor_list(s.positions, model.cutoff + 1.5, cell=s.cell, pbc=s.pbc)
    given = dict(batch, **{K.EDGE_INDEX: ei, K.CELL_SHIFTS: shifts})
    out = model(given, compute_stress=True)
    for key in (K.ENERGY, K.FORCES, K.STRESS):
        assert torch.allclose(out[key], ref[key], atol=1e-12, rtol=0), key


def test_stress_sign_matches_ase(generator) -> None:
    """ASE's own numerical stress (its convention, by definition) equals the model's stress."""
    ase = pytest.importorskip("ase")
    from ase.calculators.calculator import Calculator, all_changes
    from ase.calculators.fd import calculate_numerical_stress

    model = _model()

    class _Calc(Calculator):
        implemented_properties = ["energy", "free_energy", "forces", "stress"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            batch = {
                K.POSITIONS: torch.tensor(atoms.positions, dtype=F64),
                K.ATOMIC_NUMBERS: torch.tensor(atoms.numbers, dtype=torch.int64),
                K.CELL: torch.tensor(np.asarray(atoms.cell), dtype=F64)[None],
                K.PBC: torch.tensor(atoms.pbc)[None],
            }
            out = model(batch, compute_stress=True)
            self.results = {
                "energy": float(out[K.ENERGY][0]), "free_energy": float(out[K.ENERGY][0]),
                "forces": out[K.FORCES].numpy(),
                "stress": out[K.STRESS][0].numpy()[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]],
            }

    s = random_periodic([1, 6, 8], 4, generator)
    atoms = ase.Atoms(numbers=s.atomic_numbers.numpy(), positions=s.positions.numpy(),
                      cell=s.cell.numpy(), pbc=True)
    atoms.calc = _Calc()
    analytic = atoms.get_stress(voigt=False)
    numeric = calculate_numerical_stress(atoms, eps=1e-5, voigt=False)
    assert np.abs(numeric).max() > 1e-4
    assert np.allclose(analytic, numeric, atol=1e-8), (analytic, numeric)
    # compressing the cell uniformly: pressure = -tr(stress)/3 and dE/dV = -pressure
    vol = atoms.get_volume()
    e0 = atoms.get_potential_energy()
    atoms.set_cell(atoms.cell * (1 + 1e-5), scale_atoms=True)
    de_dv = (atoms.get_potential_energy() - e0) / (atoms.get_volume() - vol)
    assert np.isclose(de_dv, np.trace(analytic) / 3, rtol=1e-3)


def test_autograd_modes() -> None:
    model = _model()
    batch = make_batch([random_molecule([1, 6, 8], 4, torch.Generator().manual_seed(1))])
    with torch.no_grad():
        out = model(batch)
    assert out[K.FORCES].abs().max() > 0
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        model(batch)
    with torch.inference_mode():
        energy = model(batch, compute_forces=False)[K.ENERGY]
    assert torch.allclose(energy, out[K.ENERGY])
    # positions that already require grad keep their graph (a user's own derivative)
    pos = batch[K.POSITIONS].clone().requires_grad_(True)
    e = model(dict(batch, **{K.POSITIONS: pos}), compute_forces=False)[K.ENERGY]
    (g,) = torch.autograd.grad(e.sum(), pos)
    assert torch.allclose(-g, out[K.FORCES])


def test_input_errors(generator) -> None:
    model = _model()
    mol = make_batch([random_molecule([1, 6, 8], 4, generator)])
    with pytest.raises(TypeError, match="dict"):
        model([mol])
    with pytest.raises(ValueError, match="nonzero volume"):
        model(mol, compute_stress=True)
    bad = dict(mol, **{K.BATCH: torch.tensor([0, 0, 1, 3])})
    with pytest.raises(ValueError, match="structure indices"):
        model(dict(bad, **{K.NUM_ATOMS: torch.tensor([2, 2])}))
    bad = dict(mol, **{K.PBC: torch.ones(1, 3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="periodic along lattice vector 0"):
        model(bad)
    pos = mol[K.POSITIONS].clone()
    pos[1] = pos[0]
    with pytest.raises(ValueError, match="coincide|overlap"):
        model(dict(mol, **{K.POSITIONS: pos}))
    with pytest.raises(TypeError, match="integer"):
        model(dict(mol, **{K.ATOMIC_NUMBERS: mol[K.ATOMIC_NUMBERS].double()}))
    ei = torch.tensor([[0, 7], [1, 0]])
    with pytest.raises(ValueError, match="edge_index"):
        model(dict(mol, **{K.EDGE_INDEX: ei}))
