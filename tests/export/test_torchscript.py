"""The traced TorchScript module of the TorchForce route, run on CPU without openmm-torch: it must
equal the eager model (energy, and forces by autograd through the loaded graph) for other
configurations, boxes and edge counts than the one it was traced on."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from tensormol import keys as K
from tensormol.export._torchforce import torchscript_module
from tensormol.units import ANGSTROM_TO_NM, EV_TO_KJ_PER_MOL

F64 = torch.float64


def _roundtrip(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    buf = io.BytesIO()
    torch.jit.save(module, buf)
    buf.seek(0)
    return torch.jit.load(buf)


def _eager(model, z, pos_A, cell_A=None):
    batch = {K.POSITIONS: pos_A, K.ATOMIC_NUMBERS: torch.tensor(z)}
    if cell_A is not None:
        batch[K.CELL] = cell_A[None]
        batch[K.PBC] = torch.ones(1, 3, dtype=torch.bool)
    out = model(batch, compute_forces=True)
    return float(out[K.ENERGY][0]) * EV_TO_KJ_PER_MOL, out[K.FORCES] * (
        EV_TO_KJ_PER_MOL / ANGSTROM_TO_NM)


def _traced(module, pos_nm, box_nm=None):
    pos = pos_nm.clone().requires_grad_(True)
    energy = module(pos) if box_nm is None else module(pos, box_nm)
    (grad,) = torch.autograd.grad(energy, pos)
    return float(energy.detach()), -grad


def _water_frames():
    from pathlib import Path

    from tensormol.data import read_dataset

    ds = read_dataset(Path(__file__).parents[2] / "data" / "water32.xyz.gz")
    return ds.atomic_numbers[:96].tolist(), ds.positions.view(-1, 96, 3), ds.cell[0]


def _models():
    from tensormol.models import GauntNet, TensorNet

    torch.manual_seed(0)
    tn = TensorNet(atomic_numbers=[1, 8], hidden_channels=8, num_layers=1, cutoff_upper=3.5,
                   dtype="float64")
    gn = GauntNet(atomic_numbers=[1, 8], hidden_channels=4, num_layers=2, lmax=2,
                  correlation=2, cutoff_upper=3.5, dtype="float64")
    for m in (tn, gn):
        m.set_energy_statistics({1: -13.6, 8: -430.0}, scale=0.5)
    return {"tensornet": tn.eval(), "gauntnet": gn.eval()}


@pytest.mark.parametrize("name", ["tensornet", "gauntnet"])
def test_traced_module_equals_model_on_periodic_water(name):
    model = _models()[name]
    z, frames, cell = _water_frames()
    module = _roundtrip(torchscript_module(model, z, True, box_nm=cell * ANGSTROM_TO_NM))
    counts = set()
    for f, scale in ((3, 1.0), (120, 1.0), (199, 1.03)):  # last: a barostat-like box change
        pos, box = frames[f] * scale, cell * scale
        # An unwrapped copy: OpenMM passes positions as they are, several boxes away included.
        jump = torch.tensor([2.0, -1.0, 3.0], dtype=F64) @ box
        pos = pos + jump * (torch.arange(96) % 2)[:, None]
        e_ref, f_ref = _eager(model, z, pos, box)
        e, forces = _traced(module, pos * ANGSTROM_TO_NM, box * ANGSTROM_TO_NM)
        assert e == pytest.approx(e_ref, rel=1e-10, abs=1e-8)
        assert float((forces - f_ref).abs().max()) <= 1e-9 * float(f_ref.abs().max())
        from tensormol.ops import neighbor_list

        counts.add(neighbor_list(pos, model.cutoff, cell=box[None],
                                 pbc=torch.ones(1, 3, dtype=torch.bool))[0].shape[1])
    assert len(counts) == 3  # three different edge counts through the same traced graph


def test_traced_module_selects_an_ml_region_among_more_particles():
    model = _models()["tensornet"]
    from ase.build import molecule

    a = molecule("H2O")
    z = a.get_atomic_numbers().tolist()
    indices = [4, 1, 6]
    module = _roundtrip(torchscript_module(model, z, False, indices=indices, num_particles=8))
    rng = np.random.default_rng(0)
    for _ in range(2):
        pos_A = torch.tensor(a.get_positions() + rng.normal(scale=0.1, size=(3, 3)), dtype=F64)
        full = torch.tensor(rng.normal(scale=5.0, size=(8, 3)), dtype=F64)
        full[indices] = pos_A
        e_ref, f_ref = _eager(model, z, pos_A)
        e, forces = _traced(module, full * ANGSTROM_TO_NM)
        assert e == pytest.approx(e_ref, rel=1e-10)
        assert torch.allclose(forces[indices], f_ref, rtol=1e-9, atol=1e-9)
        others = [i for i in range(8) if i not in indices]
        assert float(forces[others].abs().max()) == 0.0


def test_box_smaller_than_twice_the_cutoff_is_refused():
    model = _models()["tensornet"]
    box = torch.eye(3, dtype=F64) * 0.6  # 6 Å < 2 x 3.5 Å
    with pytest.raises(ValueError, match="less than twice the model's cutoff"):
        torchscript_module(model, [8, 1, 1], True, box_nm=box)
    module = torchscript_module(model, [8, 1, 1], True, box_nm=box * 2)
    with pytest.raises((RuntimeError, torch.jit.Error), match="box width < 2 x cutoff"):
        module(torch.zeros(3, 3, dtype=F64) + torch.arange(3.0)[:, None] * 0.1, box)
