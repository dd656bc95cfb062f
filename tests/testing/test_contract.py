"""The model contract on models written for the test: a smooth pair potential signs all of it; a
model that reads the direction of its edges breaks equivariance, and one that detaches part of
its graph gets wrong forces, and the checks say so."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from tensormol.models import AtomicGraph, EnergyModel
from tensormol.testing import (
    check_energy_model,
    check_equivariance,
    check_forces_finite_difference,
)

F64 = torch.float64


class PairModel(EnergyModel):
    """``eps_i = 1/2 sum_j a_{s_i s_j} (e^{-2(r-1)} - 2 e^{-(r-1)}) (1 - (r/rc)^2)^3``: a Morse
    pair energy per species pair with an envelope whose value and slope vanish at the cutoff."""

    def __init__(self, dtype: torch.dtype, atomic_numbers=(1, 6, 8), cutoff: float = 3.0,
                 seed: int = 0) -> None:
        super().__init__(cutoff=cutoff, atomic_numbers=atomic_numbers)
        gen = torch.Generator().manual_seed(seed)
        k = len(atomic_numbers)
        a = 0.5 + torch.rand(k, k, generator=gen, dtype=F64)
        self.depth = nn.Parameter((a + a.T).to(dtype))

    def pair_energy(self, graph: AtomicGraph, r: Tensor) -> Tensor:
        i, j = graph.edge_index
        x = torch.exp(-(r - 1.0))
        envelope = (1.0 - (r / self.cutoff) ** 2) ** 3
        return self.depth[graph.species[i], graph.species[j]] * (x * x - 2.0 * x) * envelope

    def atomic_energies(self, graph: AtomicGraph) -> Tensor:
        r = graph.edge_lengths.to(self.depth.dtype)
        e = self.pair_energy(graph, r)
        return torch.zeros(graph.num_nodes, dtype=e.dtype).index_add(0, graph.edge_index[0],
                                                                      0.5 * e)


class DirectionalModel(PairModel):
    """Adds a term in the x component of each edge: not rotation invariant."""

    def atomic_energies(self, graph: AtomicGraph) -> Tensor:
        extra = 0.1 * graph.edge_vectors[:, 0].to(self.depth.dtype) ** 2
        e = self.pair_energy(graph, graph.edge_lengths.to(self.depth.dtype)) + extra
        return torch.zeros(graph.num_nodes, dtype=e.dtype).index_add(0, graph.edge_index[0], e)


class DetachedModel(PairModel):
    """The envelope is evaluated on detached lengths: energies right, forces wrong."""

    def atomic_energies(self, graph: AtomicGraph) -> Tensor:
        r = graph.edge_lengths.to(self.depth.dtype)
        i, j = graph.edge_index
        x = torch.exp(-(r - 1.0))
        envelope = (1.0 - (r.detach() / self.cutoff) ** 2) ** 3
        e = self.depth[graph.species[i], graph.species[j]] * (x * x - 2.0 * x) * envelope
        return torch.zeros(graph.num_nodes, dtype=e.dtype).index_add(0, i, 0.5 * e)


def test_a_smooth_pair_potential_signs_the_whole_contract() -> None:
    errors = check_energy_model(PairModel, dtype=torch.float32, seed=4)
    # Measured: equivariance 0 / 9e-16 (edge geometry is float64 before the float32 layers),
    # finite differences 1.1e-10, strain 1.2e-11, float32 vs float64 1.1e-7.
    assert errors["equivariance"]["energy"] < 1e-10
    assert errors["equivariance"]["forces"] < 1e-10
    assert errors["forces_finite_difference"] < 1e-9
    assert errors["force_jacobian"]["symmetry"] < 1e-13
    assert errors["stress_finite_strain"] < 1e-10
    assert errors["dtypes"] < 1e-6
    assert errors["isolated_atoms"] < 1e-12
    assert errors["cutoff_smoothness"]["energy_jump"] < 1e-11


def test_equivariance_check_catches_a_direction_dependent_energy() -> None:
    model = DirectionalModel(F64)
    with pytest.raises(AssertionError, match=r"energy not equivariant under random O\(3\) "
                                             r"elements.*fn is not equivariant.*rotation"):
        check_equivariance(model, torch.Generator().manual_seed(0))
    # The float64 pair model is invariant to rounding, by the same oracle.
    errors = check_equivariance(PairModel(F64), torch.Generator().manual_seed(0))
    assert max(errors.values()) < 1e-13  # measured 1.9e-15


def test_finite_difference_check_catches_wrong_forces() -> None:
    with pytest.raises(AssertionError, match="forces differ from -dE/dr by central differences"):
        check_forces_finite_difference(DetachedModel(F64), torch.Generator().manual_seed(1))
