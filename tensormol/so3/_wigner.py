r"""Wigner D matrices of the real spherical-harmonic basis (e3nn's basis and angle convention).

``D^l(R)`` is the unique matrix with ``Y^l(R x) = D^l(R) Y^l(x)`` for all ``x`` (``Y^l`` from
:mod:`._sh`). We construct it directly from that identity: for a fixed set of ``K`` well-spread
points ``x_k`` on the sphere (a Fibonacci lattice with ``K = 4 lmax + 4``, for which every
``Y^l`` sample matrix has condition number below ~10 up to ``l = 20``),

.. math::  D^l(R) = Y^l(R X)^\top \, (Y^l(X)^+)^\top ,

with the pseudo-inverse ``Y^l(X)^+`` precomputed once per ``lmax`` in float64 and cached per
``(lmax, dtype, device)``. This is a polynomial in the entries of ``R``: exact to rounding,
batched, differentiable everywhere (no Euler-angle gimbal lock) and costs one batch of harmonics
plus one small matmul per degree. ``D^0 = 1`` and ``D^1 = R`` (e3nn's ``l = 1`` basis is
``(x, y, z)``) are special-cased. The slow twin :func:`wigner_D_reference` builds ``D`` from Lie
algebra generators obtained by differentiating the harmonics; tests check that they agree.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch

from .._validate import check_int_ge
from ._rotation import _check_orthogonal, _check_rotation, angles_to_matrix
from ._sh import _sh_all, _sh_all_rows

__all__ = ["wigner_D", "wigner_D_from_matrix", "wigner_D_reference"]


def _fibonacci_sphere(K: int) -> torch.Tensor:
    i = torch.arange(K, dtype=torch.float64) + 0.5
    y = 1 - 2 * i / K
    r = torch.sqrt(1 - y * y)
    phi = math.pi * (3 - math.sqrt(5)) * i
    return torch.stack([r * torch.sin(phi), y, r * torch.cos(phi)], dim=-1)


@functools.lru_cache(maxsize=32)
def _sampling_plan64(lmax: int) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Sample points (K, 3) and, per degree ``l``, ``(Y^l(X)^+)^T`` of shape ``(K, 2l+1)``."""
    K = 4 * lmax + 4
    pts = _fibonacci_sphere(K)
    Y = _sh_all(lmax, pts, "component")  # (K, (lmax+1)^2)
    qs = []
    for d in range(lmax + 1):
        M = Y[:, d * d:(d + 1) * (d + 1)]  # (K, 2l+1)
        qs.append(torch.linalg.pinv(M).t().contiguous())
    return pts, tuple(qs)


@torch.compiler.disable  # built eagerly, never traced (see _sh._plan)
@functools.lru_cache(maxsize=128)
def _sampling_plan(lmax: int, dtype: torch.dtype, device: torch.device
                   ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    pts, qs = _sampling_plan64(lmax)
    return pts.to(dtype=dtype, device=device), tuple(q.to(dtype=dtype, device=device) for q in qs)


def _wigner_blocks_from_matrix(ls: Sequence[int], R: Any, name: str
                               ) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """``D^l`` of the rotation part ``det(R) R`` for each ``l`` in ``ls``, and ``det(R)`` signs.

    Returns a dict ``l -> (..., 2l+1, 2l+1)`` and the determinant signs, shape ``(...)``.
    """
    R = _check_rotation(R, name)
    sign = _check_orthogonal(R, name)
    Rp = R * sign[..., None, None]
    batch = R.shape[:-2]
    out: dict[int, torch.Tensor] = {}
    big = [d for d in ls if d >= 2]
    for d in ls:
        if d == 0:
            out[0] = torch.ones(*batch, 1, 1, dtype=R.dtype, device=R.device)
        elif d == 1:
            out[1] = Rp
    if big:
        lmax = max(big)
        pts, qs = _sampling_plan(lmax, R.dtype, R.device)
        Rf = Rp.reshape(-1, 3, 3)
        B = Rf.shape[0]
        K = pts.shape[0]
        rot = (Rf @ pts.t()).transpose(0, 1).reshape(3, B * K)  # rotated points R x_k as rows
        Y = _sh_all_rows(lmax, rot, "component").view(-1, B, K)
        for d in big:
            blk = Y[d * d:(d + 1) * (d + 1)].transpose(0, 1)  # (B, 2l+1, K)
            out[d] = (blk @ qs[d]).reshape(*batch, 2 * d + 1, 2 * d + 1)
    return out, sign


def wigner_D_from_matrix(l: int, R: torch.Tensor, p: int | None = None) -> torch.Tensor:  # noqa: E741
    r"""Wigner D matrix ``D^l(R)`` with ``Y^l(R x) = D^l(R) Y^l(x)``.

    Parameters
    ----------
    l : int
        Degree, ``>= 0``.
    R : torch.Tensor
        Orthogonal matrices, shape ``(..., 3, 3)``, floating point. Rotations, or improper
        matrices (``det = -1``) if the parity ``p`` is given.
    p : {1, -1}, optional
        Parity of the irrep. An improper ``R`` is ``-I`` times the rotation ``-R``, so its matrix
        is ``p D^l(-R)``. ``p = (-1)**l`` gives the action on spherical harmonics. Required when
        any ``R`` is improper.

    Returns
    -------
    torch.Tensor
        Shape ``(..., 2l+1, 2l+1)``, dtype and device of ``R``; orthogonal.

    Raises
    ------
    ValueError
        If ``R`` is not orthogonal, or is improper and ``p`` is not given.
    """
    check_int_ge(l, "l", 0)
    if p is not None and p not in (1, -1):
        raise ValueError(f"p (parity) must be +1, -1 or None, got {p!r}")
    blocks, sign = _wigner_blocks_from_matrix([l], R, "R")
    D = blocks[l]
    improper = sign < 0
    if bool(improper.any()):
        if p is None:
            raise ValueError(
                "R contains improper matrices (det = -1): pass the parity p of the irrep "
                "(p=(-1)**l for spherical harmonics) or use Irrep(l, p).D_from_matrix(R)"
            )
        if p == -1:
            D = D * sign[..., None, None]
    return D


def wigner_D(l: int, alpha: torch.Tensor, beta: torch.Tensor,  # noqa: E741
             gamma: torch.Tensor) -> torch.Tensor:
    r"""Wigner D matrix of the rotation ``Ry(alpha) Rx(beta) Ry(gamma)`` (e3nn's ``o3.wigner_D``).

    Parameters
    ----------
    l : int
        Degree, ``>= 0``.
    alpha, beta, gamma : torch.Tensor
        Broadcastable Euler angles (Y-X-Y, ``gamma`` applied first), shape ``(...)``, radians.

    Returns
    -------
    torch.Tensor
        Shape ``(..., 2l+1, 2l+1)``.
    """
    check_int_ge(l, "l", 0)
    return wigner_D_from_matrix(l, angles_to_matrix(alpha, beta, gamma))


# ---------------------------------------------------------------------------------------------
# Slow twin: matrix exponentials of Lie algebra generators derived from the harmonics.
# ---------------------------------------------------------------------------------------------
_SO3_BASIS = {
    # d/dt of matrix_x(t), matrix_y(t), matrix_z(t) at t = 0
    "x": ((0.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
    "y": ((0.0, 0.0, 1.0), (0.0, 0.0, 0.0), (-1.0, 0.0, 0.0)),
    "z": ((0.0, -1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
}


@functools.lru_cache(maxsize=32)
def _generators(l: int) -> dict[str, torch.Tensor]:  # noqa: E741
    """``G_k`` with ``D^l(exp(t L_k)) = exp(t G_k)``: from ``grad Y(x) . (L_k x) = G_k Y(x)``."""
    from ._sh import spherical_harmonics

    pts = _fibonacci_sphere(4 * l + 4)
    M = spherical_harmonics(l, pts, normalize=False, normalization="component")
    out = {}
    for axis, mat in _SO3_BASIS.items():
        Lk = torch.tensor(mat, dtype=torch.float64)
        _, ydot = torch.autograd.functional.jvp(
            lambda x: spherical_harmonics(l, x, normalize=False, normalization="component"),
            pts, pts @ Lk.t(),
        )
        Gt = torch.linalg.lstsq(M, ydot).solution  # M G^T = ydot
        out[axis] = Gt.t().contiguous()
    return out


def wigner_D_reference(l: int, alpha: torch.Tensor, beta: torch.Tensor,  # noqa: E741
                   gamma: torch.Tensor) -> torch.Tensor:
    """Reference ``D^l(alpha, beta, gamma) = exp(alpha G_y) exp(beta G_x) exp(gamma G_y)``."""
    G = _generators(l)
    alpha, beta, gamma = torch.broadcast_tensors(alpha, beta, gamma)
    Gx = G["x"].to(alpha.dtype)
    Gy = G["y"].to(alpha.dtype)
    return (torch.linalg.matrix_exp(alpha[..., None, None] * Gy)
            @ torch.linalg.matrix_exp(beta[..., None, None] * Gx)
            @ torch.linalg.matrix_exp(gamma[..., None, None] * Gy))
