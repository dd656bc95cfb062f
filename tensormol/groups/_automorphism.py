"""Automorphism groups of graphs and their orbit bases on index tuples.

``Aut(G)`` acts on ``R^n`` by permutation matrices, hence on ``[n]^m`` index tuples. The
``Aut(G)``-equivariant maps ``(R^n)^{⊗k} → (R^n)^{⊗l}`` are exactly the functions on
``[n]^{l+k}`` constant on the orbits, so the orbit indicator matrices form a basis (Pearce-Crump,
"Graph Automorphism Group Equivariant Neural Networks", reach the same space through bilabelled
graphs; the orbit basis is the one we store).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._validate import check_int_ge

__all__ = ["AutomorphismGroup"]


def _adjacency(graph: Any) -> tuple[np.ndarray, list]:
    """Adjacency matrix (float64, edge labels kept) and the node order of ``graph``."""
    try:
        import networkx as nx
    except ImportError as exc:  # pragma: no cover - networkx is in the groups extra
        raise ImportError(
            "AutomorphismGroup needs networkx (pip install 'tensormol[groups]')"
        ) from exc
    if isinstance(graph, nx.Graph):
        nodes = list(graph.nodes)
        a = nx.to_numpy_array(graph, nodelist=nodes, weight=None, dtype=np.float64)
        return a, nodes
    if isinstance(graph, torch.Tensor):
        graph = graph.detach().cpu().numpy()
    a = np.asarray(graph, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(
            f"graph must be a networkx graph or a square adjacency matrix, got shape {a.shape}"
        )
    if not np.all(np.isfinite(a)):
        raise ValueError("graph adjacency matrix contains NaN or infinite values")
    return a, list(range(a.shape[0]))


class AutomorphismGroup:
    """The automorphism group ``Aut(G)`` of a graph, acting on ``R^n`` by permutation matrices.

    Parameters
    ----------
    graph : networkx.Graph or networkx.DiGraph or array_like
        The graph, or its ``(n, n)`` adjacency matrix. Non-zero entries are edges; their values are
        edge labels that automorphisms must preserve (a non-symmetric matrix is a directed graph;
        diagonal entries are labelled self-loops).
    max_order : int
        Refuse groups larger than this (all elements are enumerated and stored).

    Attributes
    ----------
    n : int
        Number of vertices.
    adjacency : numpy.ndarray
        ``(n, n)`` float64.
    nodes : list
        Node labels in the order used for ``R^n`` (``range(n)`` for a matrix).
    elements : numpy.ndarray
        ``(order, n)`` int64; row ``σ`` maps vertex ``i`` to ``σ[i]``; row 0 is the identity.
    generators : numpy.ndarray
        ``(r, n)`` int64, a generating set found greedily from ``elements``.

    Notes
    -----
    The group is enumerated with networkx's VF2 isomorphism matcher of the graph with itself
    (vertex and edge labels must match), and every element is checked against the adjacency.
    """

    def __init__(self, graph: Any, *, max_order: int = 200_000) -> None:
        import networkx as nx
        from networkx.algorithms import isomorphism as iso

        a, nodes = _adjacency(graph)
        n = a.shape[0]
        check_int_ge(n, "number of graph vertices", 1)
        check_int_ge(max_order, "max_order", 1)
        directed = not np.array_equal(a, a.T)
        g = nx.DiGraph() if directed else nx.Graph()
        for i in range(n):
            g.add_node(i, loop=float(a[i, i]))
        for i, j in zip(*np.nonzero(a)):
            if i != j:
                g.add_edge(int(i), int(j), w=float(a[i, j]))
        matcher_cls = iso.DiGraphMatcher if directed else iso.GraphMatcher
        matcher = matcher_cls(
            g,
            g,
            node_match=lambda x, y: x["loop"] == y["loop"],
            edge_match=lambda x, y: x["w"] == y["w"],
        )
        elements = []
        for mapping in matcher.isomorphisms_iter():
            elements.append([mapping[i] for i in range(n)])
            if len(elements) > max_order:
                raise ValueError(
                    f"the automorphism group has more than max_order={max_order} elements; "
                    "raise max_order if you really want to enumerate it"
                )
        el = np.array(elements, dtype=np.int64).reshape(-1, n)
        ident = np.arange(n)
        # Identity first, the rest in lexicographic order: a deterministic listing.
        el = np.unique(el, axis=0)
        el = np.concatenate([ident[None], el[~np.all(el == ident, axis=1)]], axis=0)
        for s in el:
            if not np.array_equal(a[np.ix_(s, s)], a):
                raise AssertionError("internal error: a matched permutation is no automorphism")
        self.n = n
        self.adjacency = a
        self.nodes = nodes
        self.elements = el
        self.generators = _greedy_generators(el)
        self._orbit_cache: dict[int, tuple[np.ndarray, int]] = {}

    @property
    def order(self) -> int:
        """Number of automorphisms."""
        return int(self.elements.shape[0])

    def __repr__(self) -> str:
        return f"AutomorphismGroup(n={self.n}, order={self.order})"

    def orbit_labels(self, m: int) -> tuple[np.ndarray, int]:
        """Orbits of ``Aut(G)`` on ``[n]^m`` (diagonal action on index tuples).

        Returns
        -------
        labels : numpy.ndarray
            ``(n**m,)`` int64: the orbit of each C-order-flattened tuple, numbered ``0 …`` in order
            of first appearance.
        num_orbits : int
        """
        check_int_ge(m, "m", 0)
        if m not in self._orbit_cache:
            self._orbit_cache[m] = _orbits(self.generators, self.n, m)
        return self._orbit_cache[m]


def _greedy_generators(elements: np.ndarray) -> np.ndarray:
    """A small generating set: keep each element not yet in the group generated so far."""
    n = elements.shape[1]
    ident = tuple(range(n))
    group = {ident}
    gens: list[np.ndarray] = []
    for g in elements:
        if tuple(g) in group:
            continue
        gens.append(g)
        # Closure under right multiplication by the generators (breadth first).
        frontier = list(group)
        while frontier:
            new = []
            for h in frontier:
                hh = np.asarray(h)
                for s in gens:
                    prod = tuple(s[hh])
                    if prod not in group:
                        group.add(prod)
                        new.append(prod)
            frontier = new
        if len(group) == len(elements):
            break
    if not gens:
        return np.zeros((0, n), dtype=np.int64)
    return np.stack(gens).astype(np.int64)


def _orbits(generators: np.ndarray, n: int, m: int) -> tuple[np.ndarray, int]:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    size = n**m
    if size > 50_000_000:
        raise ValueError(f"n**m = {size} index tuples is too many to enumerate")
    flat = np.arange(size, dtype=np.int64)
    if m == 0 or len(generators) == 0:
        return flat.copy(), size
    digits = np.stack(np.unravel_index(flat, (n,) * m), axis=0)  # (m, size)
    weights = n ** np.arange(m - 1, -1, -1, dtype=np.int64)
    rows, cols = [], []
    for s in generators:
        rows.append(flat)
        cols.append(weights @ s[digits])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones_like(r, dtype=np.int8), (r, c)), shape=(size, size))
    num, comp = connected_components(graph, directed=True, connection="weak")
    # Renumber in order of first appearance.
    _, first = np.unique(comp, return_index=True)
    order = np.argsort(first)
    relabel = np.empty(num, dtype=np.int64)
    relabel[order] = np.arange(num)
    return relabel[comp].astype(np.int64), int(num)
