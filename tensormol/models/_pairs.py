"""Pairing the two directions of each edge of a full neighbour list.

A full list holds every pair twice, (i, j, s) and (j, i, -s). Anything that depends on the distance
only (radial bases, cutoffs, radial MLPs) is the same for both, so a model can compute it once per
*undirected pair* and gather it per edge: that halves the most expensive part of a radial model. The
gradient stays exact, because ``|r_ij|`` and ``|r_ji|`` are the same function of the positions (and
of the strain), so taking the length from one representative edge of the pair loses nothing.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tensormol._ext import Kernel

__all__ = ["undirected_pairs", "undirected_pairs_reference"]


def _lexicographic_sign(s: Tensor) -> Tensor:
    """Sign of the first nonzero component of each row of ``s`` (E, 3) int64; 0 for a zero row."""
    sx, sy, sz = s.unbind(-1)
    return torch.where(sx != 0, sx.sign(), torch.where(sy != 0, sy.sign(), sz.sign()))


def undirected_pairs(
    edge_index: Tensor, cell_shifts: Tensor, num_nodes: int
) -> tuple[Tensor, Tensor]:
    """Group directed edges into undirected pairs.

    Parameters
    ----------
    edge_index : Tensor
        (2, E) int64, rows (i, j).
    cell_shifts : Tensor
        (E, 3) int64, lattice translation of j (zeros without periodicity).
    num_nodes : int
        Number of nodes (bounds the indices).

    Returns
    -------
    pair : Tensor
        (E,) int64, index of the undirected pair of each edge; (i, j, s) and (j, i, -s) share it.
    representative : Tensor
        (P,) int64, one edge of each pair (the one with the smallest index).

    Notes
    -----
    Works for any list: an edge without its reverse forms a pair alone. The key of an edge is
    ``(min(i, j), max(i, j), o * s)`` with orientation ``o = +1`` for i < j, ``-1`` for i > j and,
    for a periodic image of the atom itself (i == j), the sign that makes ``s`` lexicographically
    positive.
    """
    i, j = edge_index[0], edge_index[1]
    n_edges = i.shape[0]
    if n_edges == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=i.device)
        return empty, empty
    s = cell_shifts.to(torch.int64)
    orient = torch.where(i < j, 1, torch.where(i > j, -1, _lexicographic_sign(s)))
    lo, hi = torch.minimum(i, j), torch.maximum(i, j)
    sc = s * orient[:, None]
    n = max(int(num_nodes), 1)
    uniq, pair = PAIR_KEYS(lo, hi, sc, n)
    # One slot per pair, sized by the unique keys (no host sync, dynamic in a traced graph).
    rep = torch.full_like(uniq[:, 0] if uniq.dim() == 2 else uniq, n_edges)
    rep = rep.scatter_reduce(0, pair, torch.arange(n_edges, device=i.device), reduce="amin")
    return pair, rep


def _pair_keys(lo: Tensor, hi: Tensor, sc: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Unique pair keys and the pair of each edge, with the shift range read as a Python int."""
    smax = int(sc.abs().max()) if sc.numel() else 0
    base = 2 * smax + 1
    if float(n) * n * base**3 < 2.0**62:
        # One int64 key per edge: a 1-D unique is much faster than unique over rows.
        key = lo * n + hi
        for d in range(3):
            key = key * base + (sc[:, d] + smax)
        return torch.unique(key, return_inverse=True)
    # astronomically large graphs
    rows = torch.cat([lo[:, None], hi[:, None], sc], dim=1)  # pragma: no cover
    return torch.unique(rows, dim=0, return_inverse=True)  # pragma: no cover


def _pair_keys_traceable(lo: Tensor, hi: Tensor, sc: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """:func:`_pair_keys` with the shift range kept a tensor, so that a traced graph stays valid
    for any shifts."""
    # amax of an empty list fails: a zero keeps it defined when no pair is in range.
    smax_t = torch.cat([sc.abs().reshape(-1), sc.new_zeros(1)]).max()
    key = lo * n + hi
    for d in range(3):
        key = key * (2 * smax_t + 1) + (sc[:, d] + smax_t)
    return torch.unique(key, return_inverse=True)


PAIR_KEYS = Kernel("undirected_pairs.keys", traced="traced")
PAIR_KEYS.register("eager", _pair_keys, doc="shift range as a Python int; row keys if huge")
PAIR_KEYS.register("traced", _pair_keys_traceable, traceable=True,
                   doc="shift range kept a tensor (dynamic in a traced graph)")


def undirected_pairs_reference(edge_index: Tensor, cell_shifts: Tensor) -> tuple[Tensor, Tensor]:
    """Slow, obviously correct twin of :func:`undirected_pairs` (a Python dict over edges)."""
    table: dict[tuple, int] = {}
    pair, rep = [], []
    for e, (a, b, s) in enumerate(
        zip(edge_index[0].tolist(), edge_index[1].tolist(), cell_shifts.tolist())
    ):
        fwd = (a, b, tuple(s))
        bwd = (b, a, tuple(-x for x in s))
        key = min(fwd, bwd)
        if key not in table:
            table[key] = len(rep)
            rep.append(e)
        pair.append(table[key])
    return torch.tensor(pair, dtype=torch.int64), torch.tensor(rep, dtype=torch.int64)
