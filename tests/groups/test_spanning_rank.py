"""The spanning sets span exactly the equivariant maps: each element is equivariant, and the rank
equals the dimension of Hom_G computed independently (Burnside's lemma for S_n and Aut(G), the
Lie-algebra null space for O(n), SO(n), Sp(n)), for all n <= 4 and k + l <= 6."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch
from groups_reference import (
    brute_force_automorphisms,
    burnside,
    lie_dimension,
    nullspace_dimension,
    random_group_elements,
    symmetric_group,
)

from tensormol.groups import AutomorphismGroup, set_partition_diagrams, spanning_set

PAIRS = [(k, m - k) for m in range(7) for k in range(m + 1)]
LIE_CASES = [(g, n) for g in ("O(n)", "SO(n)") for n in (1, 2, 3, 4)] + [("Sp(n)", 2), ("Sp(n)", 4)]


def rank(s: torch.Tensor) -> int:
    if s.shape[0] == 0:
        return 0
    return int(torch.linalg.matrix_rank(s.reshape(s.shape[0], -1)))


def permutation_conjugation_error(s: torch.Tensor, perm: np.ndarray, k: int, l: int) -> float:
    """max |ρ_l(σ) M ρ_k(σ)^{-1} - M|: entry (I, J) of the conjugate is M[σ⁻¹(I), σ⁻¹(J)]."""
    n = len(perm)
    inv = torch.from_numpy(np.argsort(perm))
    t = s.reshape((s.shape[0],) + (n,) * (l + k))
    for leg in range(l + k):
        t = t.index_select(leg + 1, inv)
    return float((t.reshape(s.shape) - s).abs().max()) if s.numel() else 0.0


def conjugation_error(s: torch.Tensor, g: np.ndarray, k: int, l: int) -> float:
    """max |ρ_l(g) M ρ_k(g)^{-1} - M| over the stack, applying g leg by leg (no kron)."""
    n = g.shape[0]
    t = s.reshape((s.shape[0],) + (n,) * (l + k))
    gt, ginvt = torch.from_numpy(g), torch.from_numpy(np.linalg.inv(g).T)
    for leg in range(l + k):
        a = gt if leg < l else ginvt
        t = torch.movedim(torch.tensordot(t, a, dims=([leg + 1], [1])), -1, leg + 1)
    return float((t.reshape(s.shape) - s).abs().max()) if s.numel() else 0.0


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_symmetric_group_rank_equals_burnside(n):
    perms = symmetric_group(n)
    for k, l in PAIRS:
        s = spanning_set("S_n", n, k, l)
        assert s.shape == (s.shape[0], n**l, n**k)
        dim = burnside(perms, k + l)
        assert s.shape[0] == dim, (n, k, l)  # a basis: as many elements as the dimension
        assert rank(s) == dim, (n, k, l)
        for p in perms[:: max(1, len(perms) // 3)]:
            assert permutation_conjugation_error(s, p, k, l) == 0.0


@pytest.mark.parametrize("kind,n", LIE_CASES)
def test_classical_group_rank_equals_lie_nullspace(kind, n):
    rng = np.random.default_rng(7)
    elements = random_group_elements(kind, n, 2, rng)
    for k, l in PAIRS:
        s = spanning_set(kind, n, k, l)
        dim = lie_dimension(kind, n, k, l)
        assert rank(s) == dim, (kind, n, k, l, s.shape[0])
        for g in elements:
            assert conjugation_error(s, g, k, l) < 1e-9 * max(1.0, float(np.abs(g).max())) ** 6


@pytest.mark.parametrize("kind,n", [c for c in LIE_CASES if c[1] > 1])
def test_lie_reference_agrees_with_random_element_nullspace(kind, n):
    """The two independent dimension references agree where the dense null space is cheap."""
    rng = np.random.default_rng(3)
    elements = random_group_elements(kind, n, 3, rng)
    for k, l in PAIRS:
        if n ** (k + l) <= 256:
            assert lie_dimension(kind, n, k, l) == nullspace_dimension(elements, k, l), (k, l)


def test_special_orthogonal_needs_levi_civita_diagrams():
    """Without the (k+l)\\n diagrams, Brauer diagrams miss SO(n) maps (e.g. the cross product)."""
    for n, k, l in [(3, 2, 1), (2, 1, 1), (4, 2, 2), (3, 3, 2)]:
        so = spanning_set("SO(n)", n, k, l)
        o = spanning_set("O(n)", n, k, l)
        assert rank(so) == lie_dimension("SO(n)", n, k, l) > rank(o) == lie_dimension("O(n)", n,
                                                                                        k, l)


@pytest.mark.parametrize("n,m", [(1, 3), (2, 3), (2, 5), (3, 4), (3, 5), (4, 5), (4, 6), (5, 6)])
def test_partition_correction_at_most_n_blocks(n, m):
    """For n < k+l the Bell(k+l) partition diagrams are linearly dependent; those with at most n
    blocks are a basis (the count of Maron et al. holds only for n >= k+l; Pearce-Crump's
    correction)."""
    k, l = m // 2, m - m // 2
    full = torch.stack([torch.from_numpy(x) for x in _all_partition_matrices(n, k, l)])
    bounded = spanning_set("S_n", n, k, l)
    dim = burnside(symmetric_group(n), m)
    assert len(full) == len(set_partition_diagrams(k, l)) > dim
    assert rank(full) == dim == bounded.shape[0] == rank(bounded)


def test_partitions_independent_when_n_at_least_k_plus_l():
    for n, k, l in [(2, 1, 1), (3, 2, 1), (4, 2, 2), (4, 1, 3)]:
        s = torch.stack([torch.from_numpy(x) for x in _all_partition_matrices(n, k, l)])
        assert rank(s) == len(s) == len(set_partition_diagrams(k, l))


def _all_partition_matrices(n, k, l):
    from tensormol.groups import diagram_matrix

    return [diagram_matrix(d, n).numpy() for d in set_partition_diagrams(k, l)]


GRAPHS = {
    "path4": (nx.path_graph(4), 2),
    "cycle4": (nx.cycle_graph(4), 8),
    "cycle5": (nx.cycle_graph(5), 10),
    "star4": (nx.star_graph(3), 6),
    "complete4": (nx.complete_graph(4), 24),
    "petersen": (nx.petersen_graph(), 120),
    "asymmetric6": (nx.Graph([(0, 1), (1, 2), (2, 3), (3, 4), (2, 4), (4, 5)]), 1),
}


@pytest.mark.parametrize("name", list(GRAPHS))
def test_graph_orbit_basis_rank_equals_burnside(name):
    graph, order = GRAPHS[name]
    aut = AutomorphismGroup(graph)
    n = aut.n
    assert aut.order == order
    adj = nx.to_numpy_array(graph, nodelist=list(graph.nodes))
    if n <= 6:  # the group itself, independently of networkx's matcher
        brute = brute_force_automorphisms(adj)
        assert {tuple(p) for p in brute} == {tuple(p) for p in aut.elements}
    max_m = 6 if n <= 5 else 4
    rng = np.random.default_rng(0)
    for m in range(max_m + 1):
        dim = burnside(aut.elements, m)
        assert aut.orbit_labels(m)[1] == dim, (name, m)
        for k in sorted({0, m // 2, m}):
            l = m - k
            if n**m > 4096:
                continue
            s = spanning_set(aut, n, k, l)
            assert s.shape == (dim, n**l, n**k)
            # Disjoint non-empty 0/1 supports covering every entry: rank = number of orbits.
            flat = s.reshape(dim, -1)
            assert bool((flat.sum(0) == 1).all()) and bool((flat.sum(1) > 0).all())
            if dim <= 300:
                assert rank(s) == dim
            # Equivariance: the function "which orbit" on [n]^(l+k) is invariant under Aut(G).
            which = flat.argmax(0).to(torch.float64)[None]
            for p in aut.elements[rng.integers(0, aut.order, 3)]:
                assert permutation_conjugation_error(which, p, 0, m) == 0.0
            if n**m <= 256 and m:
                gens = [np.eye(n)[:, p] for p in aut.generators] or [np.eye(n)]
                assert nullspace_dimension(gens, k, l) == dim


def test_complete_graph_orbit_basis_spans_the_symmetric_group_maps():
    """Aut(K_n) = S_n: its orbit basis and the partition basis span the same space."""
    aut = AutomorphismGroup(nx.complete_graph(3))
    for k, l in [(1, 1), (2, 2), (3, 1), (2, 3)]:
        a, b = spanning_set(aut, 3, k, l), spanning_set("S_n", 3, k, l)
        assert a.shape[0] == b.shape[0] == rank(torch.cat([a, b]))


@pytest.mark.slow
@pytest.mark.parametrize("kind,n", LIE_CASES + [("S_n", 2), ("S_n", 3)])
def test_rank_sweep_k_plus_l_7_and_8(kind, n):
    for m in (7, 8):
        if n**m > 70_000:
            continue
        k = m // 2
        s = spanning_set(kind, n, k, m - k)
        dim = (burnside(symmetric_group(n), m) if kind == "S_n"
               else lie_dimension(kind, n, k, m - k))
        assert rank(s) == dim, (kind, n, m)
