"""Diagram → matrix maps: the dense ``(n**l, n**k)`` matrix of a diagram.

Rows are the output multi-index ``(i_1 … i_l)`` and columns the input multi-index
``(j_1 … j_k)``, both flattened in C order, so ``ρ(g)^{⊗k}`` is ``kron(g, …, g)``.

- Set-partition diagram (S_n): entry 1 where the indices are constant on every block.
- Brauer diagram, ``form="orthogonal"`` (O(n)): the same rule (each pair is a Kronecker δ).
- Brauer diagram, ``form="symplectic"`` (Sp(n)): a top–bottom pair is ``δ``; a pair ``p < q`` in
  one row is ``J[i_p, i_q]`` with the standard symplectic form ``J``.
- Levi-Civita diagram (SO(n)): the pairs as above times ``ε`` of the free vertices' indices,
  taken in increasing vertex order.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
import torch

from .._validate import check_int_ge
from ._diagrams import Diagram

__all__ = ["symplectic_form", "levi_civita_tensor", "diagram_matrix"]

FORMS = ("orthogonal", "symplectic")


def symplectic_form(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The standard symplectic form ``J = [[0, I], [-I, 0]]`` on ``R^n`` (``n`` even).

    Returns
    -------
    torch.Tensor
        Shape ``(n, n)``; ``Jᵀ = -J``, ``J² = -I``; ``g ∈ Sp(n)`` iff ``gᵀ J g = J``.
    """
    check_int_ge(n, "n", 2)
    if n % 2:
        raise ValueError(f"the symplectic form needs an even n, got n={n}")
    m = n // 2
    j = torch.zeros(n, n, dtype=dtype)
    j[:m, m:] = torch.eye(m, dtype=dtype)
    j[m:, :m] = -torch.eye(m, dtype=dtype)
    return j


@lru_cache(maxsize=16)
def _levi_civita_np(n: int) -> np.ndarray:
    eps = np.zeros((n,) * n)
    for perm in itertools.permutations(range(n)):
        # Sign from the number of inversions.
        inv = sum(1 for a in range(n) for b in range(a + 1, n) if perm[a] > perm[b])
        eps[perm] = -1.0 if inv % 2 else 1.0
    eps.setflags(write=False)
    return eps


def levi_civita_tensor(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The Levi-Civita symbol ``ε`` of order ``n``, shape ``(n,)*n``, ``ε[0,1,…,n-1] = 1``."""
    check_int_ge(n, "n", 1)
    if n > 8:
        raise ValueError(f"levi_civita_tensor stores n**n entries; n={n} is too large (max 8)")
    return torch.tensor(_levi_civita_np(n), dtype=dtype)


def partition_flat_indices(blocks, m: int, n: int) -> np.ndarray:
    """Flat C-order positions in ``[n]^m`` where the index is constant on every block.

    ``blocks`` must cover ``range(m)``; the result has ``n ** len(blocks)`` entries, ordered by the
    block values in C order (first block slowest).
    """
    idx = np.zeros(1, dtype=np.int64)
    for b in blocks:
        stride = sum(n ** (m - 1 - v) for v in b)
        idx = (idx[:, None] + np.arange(n, dtype=np.int64)[None, :] * stride).reshape(-1)
    return idx


def _check_form(form: str) -> str:
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    return form


def diagram_matrix(
    diagram: Diagram, n: int, *, form: str = "orthogonal", dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """The matrix of a diagram acting ``(R^n)^{⊗k} → (R^n)^{⊗l}``.

    Parameters
    ----------
    diagram : Diagram
        A set-partition, Brauer or Levi-Civita diagram.
    n : int
        Dimension of ``R^n`` (``>= 1``; even for ``form="symplectic"``).
    form : {"orthogonal", "symplectic"}
        How same-row pairs are read: Kronecker δ, or the symplectic form ``J``.
    dtype : torch.dtype
        Floating dtype of the result.

    Returns
    -------
    torch.Tensor
        Shape ``(n**l, n**k)``, dimensionless.
    """
    if not isinstance(diagram, Diagram):
        raise TypeError(f"diagram must be a Diagram, got {type(diagram).__name__}")
    check_int_ge(n, "n", 1)
    _check_form(form)
    k, l, m = diagram.k, diagram.l, diagram.num_vertices
    if diagram.free and len(diagram.free) != n:
        raise ValueError(
            f"a Levi-Civita diagram with {len(diagram.free)} free vertices needs n="
            f"{len(diagram.free)}, got n={n}"
        )
    symplectic = form == "symplectic"
    if symplectic and n % 2:
        raise ValueError(f"form='symplectic' needs an even n, got n={n}")
    if not diagram.free and not symplectic:
        flat = torch.zeros(n**m, dtype=dtype)
        flat[torch.from_numpy(partition_flat_indices(diagram.blocks, m, n))] = 1.0
        return flat.reshape(n**l, n**k)
    # General case: multiply broadcast factors on the full [n]^m grid (a dense reference).
    t = torch.ones((n,) * m, dtype=dtype)

    def bshape(vertices) -> list[int]:
        s = [1] * m
        for v in vertices:
            s[v] = n
        return s

    for b in diagram.blocks:
        if symplectic and len(b) == 2 and diagram.is_top(b[0]) == diagram.is_top(b[1]):
            t = t * symplectic_form(n, dtype).reshape(bshape(b))
        elif len(b) >= 2:
            delta = torch.zeros((n,) * len(b), dtype=dtype)
            delta[(torch.arange(n),) * len(b)] = 1.0
            t = t * delta.reshape(bshape(b))
    if diagram.free:
        t = t * levi_civita_tensor(n, dtype).reshape(bshape(diagram.free))
    return t.reshape(n**l, n**k)
