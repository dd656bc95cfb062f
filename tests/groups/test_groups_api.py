"""Group elements, representations, the tensor-power action and AutomorphismGroup inputs."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from tensormol.groups import (
    AutomorphismGroup,
    random_elements,
    representation,
    spanning_set,
    symplectic_form,
    tensor_power_action,
)


def test_random_elements_belong_to_their_groups():
    gen = torch.Generator().manual_seed(0)
    eye = torch.eye(4, dtype=torch.float64)
    o = random_elements("O(n)", 4, 64, generator=gen)
    assert o.shape == (64, 4, 4) and o.dtype == torch.float64
    torch.testing.assert_close(o.transpose(1, 2) @ o, eye.expand(64, 4, 4))
    dets = torch.linalg.det(o)
    assert (dets > 0).any() and (dets < 0).any()  # Haar on O(n) hits both components
    so = random_elements("SO(n)", 4, 64, generator=gen)
    torch.testing.assert_close(torch.linalg.det(so), torch.ones(64, dtype=torch.float64))
    sp = random_elements("Sp(n)", 4, 64, generator=gen)
    j = symplectic_form(4)
    torch.testing.assert_close(sp.transpose(1, 2) @ j @ sp, j.expand(64, 4, 4))
    # Not only the compact part: some elements are far from orthogonal.
    assert float((sp.transpose(1, 2) @ sp - eye).abs().amax()) > 0.1
    perms = random_elements("S_n", 5, 10, generator=gen)
    assert perms.dtype == torch.long
    assert torch.equal(perms.sort(-1).values, torch.arange(5).expand(10, 5))
    assert random_elements("S_n", 3, 0).shape == (0, 3)
    assert random_elements("O(n)", 1, 3, generator=gen).abs().eq(1).all()


def test_permutation_representation_convention():
    sigma = torch.tensor([2, 0, 1])  # 0 -> 2, 1 -> 0, 2 -> 1
    rho = representation("S_n", 3, sigma)
    e0 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(rho @ e0, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    batch = representation("S_n", 3, torch.stack([sigma, torch.arange(3)]))
    assert batch.shape == (2, 3, 3)
    torch.testing.assert_close(batch[1], torch.eye(3, dtype=torch.float64))
    # A homomorphism: ρ(σ∘τ) = ρ(σ) ρ(τ).
    tau = torch.tensor([1, 2, 0])
    torch.testing.assert_close(representation("S_n", 3, sigma[tau]), rho @ representation(
        "S_n", 3, tau))


def test_tensor_power_action_is_the_kronecker_power():
    gen = torch.Generator().manual_seed(1)
    g = random_elements("O(n)", 3, 1, generator=gen)[0]
    for k in (0, 1, 2, 3):
        x = torch.randn(2, *([3] * k), 4, dtype=torch.float64, generator=gen)
        kron = torch.ones(1, 1, dtype=torch.float64)
        for _ in range(k):
            kron = torch.kron(kron, g)
        want = torch.einsum("ij,bjc->bic", kron, x.reshape(2, 3**k, 4)).reshape(x.shape)
        torch.testing.assert_close(tensor_power_action(g, x, k), want)
    with pytest.raises(ValueError, match="x must have shape"):
        tensor_power_action(g, torch.randn(2, 4, 4, dtype=torch.float64), 1)


def test_spanning_set_dtype_shape_and_cache_isolation():
    a = spanning_set("S_n", 3, 1, 2, dtype=torch.float32)
    assert a.shape == (5, 9, 3) and a.dtype == torch.float32
    a.zero_()  # the cached copy must not be affected
    assert float(spanning_set("S_n", 3, 1, 2).sum()) > 0
    assert spanning_set("O(n)", 3, 1, 2).shape == (0, 9, 3)
    assert spanning_set("SO(n)", 3, 1, 2).shape == (1, 9, 3)  # ε: the cross product
    with pytest.raises(ValueError, match="group must be one of"):
        spanning_set("GL(n)", 3, 1, 1)
    with pytest.raises(ValueError, match="k must be"):
        spanning_set("S_n", 3, -1, 1)


def test_automorphism_group_inputs():
    g = nx.cycle_graph(6)
    from_nx = AutomorphismGroup(g)
    adj = nx.to_numpy_array(g)
    from_np = AutomorphismGroup(adj)
    from_torch = AutomorphismGroup(torch.from_numpy(adj))
    assert from_nx.order == from_np.order == from_torch.order == 12
    assert np.array_equal(from_nx.elements, from_np.elements)
    assert np.array_equal(from_nx.elements[0], np.arange(6))  # identity first
    assert 1 <= len(from_nx.generators) <= 3
    # Directed cycle: only rotations.
    assert AutomorphismGroup(nx.cycle_graph(6, create_using=nx.DiGraph)).order == 6
    # Edge labels must be preserved: a 4-cycle with alternating weights keeps 4 of 8 symmetries.
    w = np.zeros((4, 4))
    for i, val in enumerate([1.0, 2.0, 1.0, 2.0]):
        w[i, (i + 1) % 4] = w[(i + 1) % 4, i] = val
    assert AutomorphismGroup(w).order == 4
    # Self-loops are vertex labels.
    loop = np.ones((3, 3)) - np.eye(3)
    loop[0, 0] = 1.0
    assert AutomorphismGroup(loop).order == 2
    # Node labels of a networkx graph are kept in order.
    h = nx.relabel_nodes(nx.path_graph(3), {0: "a", 1: "b", 2: "c"})
    assert AutomorphismGroup(h).nodes == ["a", "b", "c"]
    assert repr(from_nx) == "AutomorphismGroup(n=6, order=12)"


def test_automorphism_group_errors():
    with pytest.raises(ValueError, match="square adjacency"):
        AutomorphismGroup(np.ones((2, 3)))
    with pytest.raises(ValueError, match="max_order"):
        AutomorphismGroup(nx.complete_graph(6), max_order=100)
    with pytest.raises(ValueError, match="NaN"):
        AutomorphismGroup(np.array([[0.0, np.nan], [np.nan, 0.0]]))
    aut = AutomorphismGroup(nx.path_graph(3))
    with pytest.raises(TypeError, match="orbit basis"):
        from tensormol.groups import diagrams

        diagrams(aut, 3, 1, 1)
