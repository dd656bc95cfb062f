"""Gaunt products by contraction with the Gaunt coefficients (the "dense" route and the twin).

``z_k = Σ_ij x_i y_j G_ijk`` with ``G = ∫ Y_i Y_j Y_k dΩ`` (:func:`tensormol.so3.gaunt_tensor`).
O(L⁶) per pair, but arranged as one outer product and one GEMM (or, when an operand is broadcast,
folded into ``G`` first), it beats the O(L³) routes at small degrees. The einsum form,
:func:`gaunt_product_dense`, is the reference every route is tested against.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

from tensormol._validate import check_int_ge

from ._gaunt_basis import broadcast_shape, degree_scale, lmax_of

__all__ = ["dense_route", "gaunt_product_dense"]


@functools.lru_cache(maxsize=8)
def _dense_gaunt_full(lmax: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    from tensormol.so3 import gaunt_tensor

    return gaunt_tensor(lmax, lmax, lmax, dtype=dtype, device=device)


def _dense_gaunt(l1max: int, l2max: int, l3max: int, dtype: torch.dtype,
                 device: torch.device) -> torch.Tensor:
    # One cached table per degree bracket, sliced: the layout nests (block l at [l², (l+1)²)).
    top = max(l1max, l2max, l3max)
    full = _dense_gaunt_full(max(4, -(-top // 4) * 4), dtype, device)
    return full[: (l1max + 1) ** 2, : (l2max + 1) ** 2, : (l3max + 1) ** 2]


def _dense_pair(x: torch.Tensor, y: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """``z_k = Σ_ij x_i y_j G_ijk`` as GEMMs, folding a broadcast operand into ``G`` first."""
    D1, D2, D3 = G.shape
    shape = broadcast_shape([tuple(x.shape[:-1]), tuple(y.shape[:-1])])
    n, nx, ny = math.prod(shape), x[..., 0].numel(), y[..., 0].numel()
    if ny < n and ny <= nx:
        # y is shared along some axis (e.g. edge harmonics across channels): y·G once per y row.
        T = (y.reshape(-1, D2) @ G.transpose(0, 1).reshape(D2, D1 * D3))
        # einsum turns axes where only x is > 1 into GEMM rows (one bmm over the shared axes),
        # where a broadcasting matmul would run one tiny (1 x D1) product per row.
        return torch.einsum("...i,...ik->...k", x, T.view(*y.shape[:-1], D1, D3))
    if nx < n:
        T = x.reshape(-1, D1) @ G.reshape(D1, D2 * D3)
        return torch.einsum("...j,...jk->...k", y, T.view(*x.shape[:-1], D2, D3))
    outer = (x.unsqueeze(-1) * y.unsqueeze(-2)).reshape(*shape, D1 * D2)
    return outer @ G.reshape(D1 * D2, D3)


def dense_route(xs: Sequence[torch.Tensor], lmaxes: Sequence[int], lmax_out: int,
                batch_shape: tuple[int, ...], normalization: str) -> torch.Tensor:
    """The "dense" route of :func:`tensormol.ops.gaunt_product` (inputs validated there):
    chained pair contractions whose intermediates keep only the degrees that can still reach
    ``lmax_out``. ``batch_shape`` is unused (broadcasting is folded into the GEMMs)."""
    dtype, device = xs[0].dtype, xs[0].device
    scaled = []
    for x, L in zip(xs, lmaxes):
        s = degree_scale(L, normalization)
        scaled.append(x if s is None else x * s.to(dtype=dtype, device=device))
    if len(scaled) == 1:
        return gaunt_product_dense(*xs, lmax_out=lmax_out, normalization=normalization)
    acc, acc_l = scaled[0], lmaxes[0]
    for j in range(1, len(scaled)):
        rest = sum(lmaxes[j + 1:])
        l3 = min(acc_l + lmaxes[j], lmax_out + rest)
        acc = _dense_pair(acc, scaled[j], _dense_gaunt(acc_l, lmaxes[j], l3, dtype, device))
        acc_l = l3
    if acc_l < lmax_out:  # degrees above the sum of the inputs are zero
        acc = torch.nn.functional.pad(acc, (0, (lmax_out + 1) ** 2 - (acc_l + 1) ** 2))
    s = degree_scale(lmax_out, normalization)
    return acc if s is None else acc / s.to(dtype=dtype, device=device)


def gaunt_product_dense(*xs: torch.Tensor, lmax_out: int,
                        normalization: str = "integral") -> torch.Tensor:
    """Reference twin of :func:`tensormol.ops.gaunt_product`: contraction with the Gaunt
    coefficients.

    Products of more than two inputs are chained with untruncated intermediates (degree
    ``L_1 + L_2``, ...), which is exact. Cost O(L⁶) per pair; for tests and small degrees.
    """
    if not xs:
        raise ValueError("gaunt_product_dense needs at least one input tensor")
    check_int_ge(lmax_out, "lmax_out", 0)
    lmaxes = [lmax_of(x, f"xs[{i}]") for i, x in enumerate(xs)]
    dtype, device = xs[0].dtype, xs[0].device
    scaled = []
    for x, L in zip(xs, lmaxes):
        s = degree_scale(L, normalization)
        scaled.append(x if s is None else x * s.to(dtype=dtype, device=device))
    acc, acc_l = scaled[0], lmaxes[0]
    if len(scaled) == 1:
        # A single function projected onto degrees ≤ lmax_out: a truncation or zero padding.
        G = _dense_gaunt(acc_l, 0, lmax_out, dtype, device)
        acc = torch.einsum("...i,ijk->...k", acc,
                           G * math.sqrt(4 * math.pi))  # Y_00 = 1/sqrt(4π)
    for j, (y, Ly) in enumerate(zip(scaled[1:], lmaxes[1:])):
        last = j == len(scaled) - 2
        l3 = lmax_out if last else acc_l + Ly
        G = _dense_gaunt(acc_l, Ly, l3, dtype, device)
        acc = torch.einsum("...i,...j,ijk->...k", acc, y, G)
        acc_l = l3
    s = degree_scale(lmax_out, normalization)
    return acc if s is None else acc / s.to(dtype=dtype, device=device)
