"""Rank-2 Cartesian tensors stored by their irreducible parts, 1 + 3 + 5 numbers.

A 3x3 tensor ``X = a 1 + [v]x + S`` (``[v]x w = v x w``, ``S`` symmetric traceless) is stored as 9
components, component-major, channel-last: a tensor of shape ``(9, ..., H)`` holding

    c[0]    = a                                   (I, the scalar part: tr(X) / 3)
    c[1:4]  = v = (X21 - X12, X02 - X20, X10 - X01) / 2    (A, the antisymmetric part)
    c[4:9]  = s in the basis E_xx - E_yy, (E_xx + E_yy - 2 E_zz)/sqrt(3), E_xy + E_yx,
              E_xz + E_zx, E_yz + E_zy                       (S, the symmetric traceless part)

so that the squared Frobenius norm is ``3 a^2 + 2 |v|^2 + 2 |s|^2``. The channel mixing of
TensorNet (one weight matrix per irreducible part) then touches 9 numbers per channel instead of
the 27 of three full 3x3 matrices, and messages move 9 numbers per channel instead of 27.
Products are formed on full 3x3 matrices, built only where a product is needed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "GROUP",
    "decomposition_matrix",
    "assembly_matrix",
    "to_matrix",
    "from_matrix",
    "matmul3",
    "norm2",
    "group_norms2",
    "edge_basis",
    "mix_channels",
    "scale_groups",
]

#: Irreducible part (0 = I, 1 = A, 2 = S) of each of the 9 components.
GROUP: tuple[int, ...] = (0, 1, 1, 1, 2, 2, 2, 2, 2)
_R3 = math.sqrt(3.0)


def decomposition_matrix(dtype: torch.dtype = torch.float64, device=None) -> Tensor:
    """(9, 9) matrix mapping ``vec(X)`` (row-major 3x3 entries) to the 9 components."""
    d = torch.zeros(9, 9, dtype=torch.float64)
    x = lambda a, b: 3 * a + b  # noqa: E731 - flat index of entry (a, b)
    d[0, x(0, 0)] = d[0, x(1, 1)] = d[0, x(2, 2)] = 1.0 / 3.0
    d[1, x(2, 1)], d[1, x(1, 2)] = 0.5, -0.5
    d[2, x(0, 2)], d[2, x(2, 0)] = 0.5, -0.5
    d[3, x(1, 0)], d[3, x(0, 1)] = 0.5, -0.5
    d[4, x(0, 0)], d[4, x(1, 1)] = 0.5, -0.5
    d[5, x(0, 0)] = d[5, x(1, 1)] = 1.0 / (2.0 * _R3)
    d[5, x(2, 2)] = -1.0 / _R3
    d[6, x(0, 1)] = d[6, x(1, 0)] = 0.5
    d[7, x(0, 2)] = d[7, x(2, 0)] = 0.5
    d[8, x(1, 2)] = d[8, x(2, 1)] = 0.5
    return d.to(dtype=dtype, device=device)


def assembly_matrix(dtype: torch.dtype = torch.float64, device=None) -> Tensor:
    """(9, 9) matrix mapping the 9 components to ``vec(X)``; the inverse of the decomposition."""
    m = torch.zeros(9, 9, dtype=torch.float64)
    x = lambda a, b: 3 * a + b  # noqa: E731
    m[x(0, 0), 0] = m[x(1, 1), 0] = m[x(2, 2), 0] = 1.0
    m[x(2, 1), 1], m[x(1, 2), 1] = 1.0, -1.0
    m[x(0, 2), 2], m[x(2, 0), 2] = 1.0, -1.0
    m[x(1, 0), 3], m[x(0, 1), 3] = 1.0, -1.0
    m[x(0, 0), 4], m[x(1, 1), 4] = 1.0, -1.0
    m[x(0, 0), 5] = m[x(1, 1), 5] = 1.0 / _R3
    m[x(2, 2), 5] = -2.0 / _R3
    m[x(0, 1), 6] = m[x(1, 0), 6] = 1.0
    m[x(0, 2), 7] = m[x(2, 0), 7] = 1.0
    m[x(1, 2), 8] = m[x(2, 1), 8] = 1.0
    return m.to(dtype=dtype, device=device)


def to_matrix(c: Tensor, assembly: Tensor) -> Tensor:
    """Components (9, ..., H) -> matrices (3, 3, ..., H)."""
    rest = c.shape[1:]
    return torch.mm(assembly, c.reshape(9, -1)).view(3, 3, *rest)


def from_matrix(x: Tensor, decomposition: Tensor) -> Tensor:
    """Matrices (3, 3, ..., H) -> components (9, ..., H)."""
    rest = x.shape[2:]
    return torch.mm(decomposition, x.reshape(9, -1)).view(9, *rest)


def matmul3(x: Tensor, y: Tensor) -> Tensor:
    """Matrix product over the two leading 3x3 axes: ``(xy)[a, b] = sum_c x[a, c] y[c, b]``.

    Three broadcast products on the full ``(..., H)`` trailing block: vectorised over atoms and
    channels, without a batched GEMM of tiny matrices.
    """
    return x[:, 0:1] * y[0:1] + x[:, 1:2] * y[1:2] + x[:, 2:3] * y[2:3]


_NORM_WEIGHTS = (3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0)


def norm2(c: Tensor) -> Tensor:
    """Squared Frobenius norm (..., H) of the tensors with components ``c`` (9, ..., H)."""
    w = c.new_tensor(_NORM_WEIGHTS).view(9, *([1] * (c.dim() - 1)))
    return (w * c * c).sum(0)


def group_norms2(c: Tensor) -> Tensor:
    """Squared Frobenius norms of I, A, S: (3, ..., H) from components (9, ..., H)."""
    sq = c * c
    return torch.stack([3.0 * sq[0], 2.0 * sq[1:4].sum(0), 2.0 * sq[4:9].sum(0)])


def edge_basis(u: Tensor) -> Tensor:
    """Components (9, E) of ``1 + [u]x + (u u^T - |u|^2/3 1)`` for vectors ``u`` (E, 3)."""
    ux, uy, uz = u.unbind(-1)
    one = torch.ones_like(ux)
    return torch.stack(
        [
            one, ux, uy, uz,
            0.5 * (ux * ux - uy * uy),
            (ux * ux + uy * uy - 2.0 * uz * uz) / (2.0 * _R3),
            ux * uy, ux * uz, uy * uz,
        ]
    )


def mix_channels(c: Tensor, w_i: Tensor, w_a: Tensor, w_s: Tensor) -> Tensor:
    """Mix channels of each irreducible part with its own (H_out, H_in) matrix (no bias)."""
    return torch.cat([F.linear(c[0:1], w_i), F.linear(c[1:4], w_a), F.linear(c[4:9], w_s)])


def scale_groups(c: Tensor, f: Tensor) -> Tensor:
    """Multiply components (9, ..., H) by per-part factors ``f`` (3, ..., H) (I, A, S)."""
    return torch.cat([c[0:1] * f[0:1], c[1:4] * f[1:2], c[4:9] * f[2:3]])
