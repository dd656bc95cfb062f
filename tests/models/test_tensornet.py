"""TensorNet: the model contract (O(3) and SO(3), float32 and float64), agreement with a slow
full-matrix twin (energies, forces, and the parameter gradient of a force loss), configuration."""

from __future__ import annotations

import pytest
import torch

from tensormol import keys as K
from tensormol.config import ConfigError
from tensormol.models import TensorNet, TensorNetConfig
from tensormol.registry import MODELS
from tensormol.testing import check_energy_model, make_batch, random_molecule, random_periodic

F64 = torch.float64
DERIVATIVE_CHECKS = ("forces_finite_difference", "force_jacobian", "stress_finite_strain", "dtypes")


def _factory(group: str, self_loops: bool = True, hidden_channels: int = 8, num_rbf: int = 8):
    def make(dtype: torch.dtype) -> TensorNet:
        torch.manual_seed(0)
        return TensorNet(
            atomic_numbers=[1, 6, 8], hidden_channels=hidden_channels, num_layers=2,
            num_rbf=num_rbf,
            cutoff_upper=3.0, equivariance_invariance_group=group, self_loops=self_loops,
            dtype="float64" if dtype == F64 else "float32",
        )

    return make


@pytest.mark.parametrize("group", ["O(3)", "SO(3)"])
def test_contract_float32(group: str) -> None:
    """The whole contract on a float32 model (derivative checks on its float64 twin)."""
    errors = check_energy_model(_factory(group), dtype=torch.float32, so3_only=group == "SO(3)")
    print(group, "float32", errors)
    assert errors["equivariance"]["forces"] < 1e-5
    assert errors["batching"] < 1e-5
    assert errors["forces_finite_difference"] < 1e-6
    assert errors["force_jacobian"]["symmetry"] < 1e-12
    assert errors["stress_finite_strain"] < 1e-8
    if group == "SO(3)":
        assert errors["reflection_sensitivity"] > 1e-9


@pytest.mark.parametrize("group", ["O(3)", "SO(3)"])
def test_contract_float64(group: str) -> None:
    """Symmetry, batching and locality checks on a float64 model hold to rounding."""
    errors = check_energy_model(_factory(group), dtype=F64, so3_only=group == "SO(3)",
                                skip=DERIVATIVE_CHECKS, seed=1)
    print(group, "float64", errors)
    assert errors["equivariance"]["energy"] < 1e-12
    assert errors["equivariance"]["forces"] < 1e-12
    assert errors["equivariance"]["stress"] < 1e-12
    assert errors["periodic_supercell"] < 1e-12
    assert errors["isolated_atoms"] < 1e-12


def test_contract_without_self_loops() -> None:
    errors = check_energy_model(_factory("O(3)", self_loops=False), dtype=F64,
                                skip=("dtypes", "force_jacobian"), seed=2)
    assert errors["forces_finite_difference"] < 1e-6


def _structures(seed: int):
    gen = torch.Generator().manual_seed(seed)
    return [random_molecule([1, 6, 8], 6, gen), random_periodic([1, 6, 8], 4, gen)]


# The embedding sums edge tensors per neighbour species when K (R + 1) <= 2 H (3 elements here):
# (H, R) = (16, 4) takes that path, (8, 8) the per-edge one.
_WIDTHS = {True: (16, 4), False: (8, 8)}


def _model(group: str, self_loops: bool, by_species: bool) -> TensorNet:
    h, r = _WIDTHS[by_species]
    model = _factory(group, self_loops, hidden_channels=h, num_rbf=r)(F64)
    assert model.tensor_embedding.sum_by_species == by_species
    gen = torch.Generator().manual_seed(7)
    model.set_energy_statistics(-torch.rand(3, generator=gen, dtype=F64), scale=1.3)
    return model


@pytest.mark.parametrize("group,self_loops,by_species", [
    ("O(3)", True, True), ("O(3)", True, False), ("SO(3)", True, True), ("O(3)", False, False),
])
def test_matches_slow_reference(group, self_loops, by_species, reference_tensornet) -> None:
    """Energies and forces equal those of the full-matrix twin to float64 rounding, with
    the embedding summed per neighbour species or per edge."""
    model = _model(group, self_loops, by_species)
    slow = reference_tensornet(model)
    batch = make_batch(_structures(3))
    fast_out, slow_out = model.eval()(batch), slow.eval()(batch)
    assert float(fast_out[K.FORCES].abs().max()) > 1e-3  # not vacuous
    for key in (K.ENERGY, K.FORCES):
        diff = float((fast_out[key] - slow_out[key]).abs().max())
        assert diff < 1e-12, (key, diff)


@pytest.mark.parametrize("group", ["O(3)", "SO(3)"])
def test_force_training_gradient_matches_reference(group, reference_tensornet) -> None:
    """The parameter gradient of a force loss (double backward through the fused edge ops)
    equals the full-matrix twin's."""
    model = _model(group, True, by_species=group == "O(3)")  # both embedding paths
    batch = make_batch(_structures(4))
    params = [p for p in model.parameters() if p.requires_grad]
    grads = []
    for m in (model, reference_tensornet(model)):
        out = m.train()(batch)
        loss = (out[K.FORCES] ** 2).sum() + (out[K.ENERGY] ** 2).sum()
        grads.append(torch.autograd.grad(loss, params))
    worst = max(float((a - b).abs().max()) for a, b in zip(*grads))
    scale = max(float(g.abs().max()) for g in grads[1])
    assert scale > 1e-3
    assert worst < 1e-11 * max(1.0, scale), worst


def test_training_mode_keeps_graph_and_eval_detaches() -> None:
    model = _factory("O(3)")(torch.float32)
    batch = make_batch(_structures(5)[:1])
    out = model.train()(batch)
    assert out[K.FORCES].requires_grad
    loss = out[K.FORCES].pow(2).sum() + out[K.ENERGY].pow(2).sum()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    out = model.eval()(batch)
    assert not out[K.FORCES].requires_grad and not out[K.ENERGY].requires_grad


def test_parameter_count_matches_torchmdnet() -> None:
    """TorchMD-Net 3.1.0's TensorNet + Scalar head at 128/2/32/max_z 128 has 769,921 parameters
    (counted in benchmarks/bench_tensornet.py); so must this one."""
    model = MODELS.get("tensornet")(atomic_numbers=[1, 6, 8], cutoff_upper=5.0)
    assert sum(p.numel() for p in model.parameters()) == 769_921
    h, r, z, layers = 16, 8, 10, 3
    small = TensorNet(atomic_numbers=[1], hidden_channels=h, num_rbf=r, max_z=z, num_layers=layers)
    embedding = 3 * (r * h + h) + z * h + (2 * h * h + h) + 3 * h * h + (h * 2 * h + 2 * h) + (
        2 * h * 3 * h + 3 * h) + 2 * h
    interaction = (r * h + h) + (h * 2 * h + 2 * h) + (2 * h * 3 * h + 3 * h) + 6 * h * h
    readout = 2 * 3 * h + (3 * h * h + h) + (h * (h // 2) + h // 2) + (h // 2 + 1)
    assert sum(p.numel() for p in small.parameters()) == embedding + layers * interaction + readout


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="hiden_channels.*did you mean 'hidden_channels'"):
        TensorNet(atomic_numbers=[1], hiden_channels=8)
    with pytest.raises(ConfigError, match="equivariance_invariance_group"):
        TensorNet(atomic_numbers=[1], equivariance_invariance_group="O3")
    with pytest.raises(ConfigError, match="cutoff_lower"):
        TensorNet(atomic_numbers=[1], cutoff_lower=5.0, cutoff_upper=4.0)
    with pytest.raises(ConfigError, match="num_layers"):
        TensorNet(atomic_numbers=[1], num_layers=-1)
    with pytest.raises(ConfigError, match="activation.*did you mean 'silu'"):
        TensorNet(atomic_numbers=[1], activation="sılu")
    with pytest.raises(ValueError, match="max_z"):
        TensorNet(atomic_numbers=[1, 8], max_z=8)
    model = TensorNet({"hidden_channels": 4, "num_layers": 1}, atomic_numbers=[8, 1],
                      dtype=torch.float64, rbf_type="gauss", activation="ssp")
    assert model.model_dtype == F64 and model.atomic_numbers == [1, 8]
    assert model.cutoff == 4.5 and model.config.hidden_channels == 4
    again = TensorNet(TensorNetConfig.from_dict(model.config.to_dict()), atomic_numbers=[1, 8])
    assert again.config == model.config
    assert MODELS.config_class("tensornet") is TensorNetConfig
    assert isinstance(MODELS.get("tensornet")(atomic_numbers=[1], hidden_channels=4), TensorNet)


def test_gauss_basis_and_lower_cutoff_sign_the_contract() -> None:
    def make(dtype):
        torch.manual_seed(1)
        return TensorNet(atomic_numbers=[1, 8], hidden_channels=4, num_layers=1, num_rbf=6,
                         rbf_type="gauss", cutoff_lower=0.3, cutoff_upper=2.5, activation="tanh",
                         dtype="float64" if dtype == F64 else "float32")

    errors = check_energy_model(make, dtype=F64, skip=("dtypes", "force_jacobian"), seed=3)
    assert errors["forces_finite_difference"] < 1e-6
