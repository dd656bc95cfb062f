"""Rank-2 Cartesian tensors stored by their irreducible parts, 1 + 3 + 5 numbers.

A 3x3 tensor ``X = a 1 + [v]x + S`` (``[v]x w = v x w``, ``S`` symmetric traceless) is stored as 9
components along the *first* dimension of a ``(9, M, H)`` tensor (M atoms, H channels):

    c[0]    = a = tr(X) / 3                                      (I, the scalar part)
    c[1:4]  = v = (X21 - X12, X02 - X20, X10 - X01) / 2          (A, the antisymmetric part)
    c[4:9]  = s in the basis E_xx - E_yy, (E_xx + E_yy - 2 E_zz)/sqrt(3), E_xy + E_yx,
              E_xz + E_zx, E_yz + E_zy                           (S, symmetric traceless)

so that the squared Frobenius norm is ``3 a^2 + 2 |v|^2 + 2 |s|^2``.

Why this layout: TensorNet's channel mixing (one H x H matrix per irreducible part) becomes one
batched GEMM over the 9 components, touching 9 numbers per channel instead of the 27 of three full
3x3 matrices; the maps between components and matrix entries are (9 x 9) @ (9, M*H) GEMMs; every
component is a contiguous (M, H) block, so products broadcast over whole blocks. Matrices are
``(3, 3, M, H)``, entry-major in the same way, built only where a product is needed.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor
from torch.autograd import Function

from tensormol._ext import Kernel
from tensormol.so3 import decompose_rank2

__all__ = [
    "GROUP",
    "PARTS",
    "decomposition_matrix",
    "assembly_matrix",
    "to_matrix",
    "from_matrix",
    "from_matrix_add",
    "matmul3",
    "anticommutator",
    "normalize",
    "matmul3_reference",
    "normalize_reference",
    "norm2",
    "group_norms2",
    "edge_basis",
    "mix_channels",
    "expand_groups",
    "to_matrix_reference",
    "from_matrix_reference",
]

#: Irreducible part (0 = I, 1 = A, 2 = S) of each of the 9 components.
GROUP: tuple[int, ...] = (0, 1, 1, 1, 2, 2, 2, 2, 2)
#: Sizes of the parts I, A, S along the component dimension.
PARTS: tuple[int, int, int] = (1, 3, 5)
_R3 = math.sqrt(3.0)
_NORM_WEIGHTS = (3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0)


def decomposition_matrix(dtype: torch.dtype = torch.float64) -> Tensor:
    """(9, 9) matrix mapping ``vec(X)`` (row-major 3x3 entries) to the 9 components: the
    decomposition of :func:`from_matrix_reference` applied to the 9 unit matrices."""
    return _layout_matrices()[0].to(dtype)


def assembly_matrix(dtype: torch.dtype = torch.float64) -> Tensor:
    """(9, 9) matrix mapping the 9 components to ``vec(X)``; the inverse of the decomposition
    (:func:`to_matrix_reference` applied to the 9 unit component vectors)."""
    return _layout_matrices()[1].to(dtype)


@functools.cache
def _layout_matrices() -> tuple[Tensor, Tensor]:
    with torch.inference_mode(False), torch.no_grad():  # cached: never inference tensors
        eye = torch.eye(9, dtype=torch.float64)
        d = from_matrix_reference(eye.T.reshape(3, 3, 9))  # column k: components of unit k
        m = to_matrix_reference(eye).reshape(9, 9)  # column k: entries of unit component k
    return d, m


@functools.lru_cache(maxsize=16)
def _constants(dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor,
                                                                 Tensor]:
    """Assembly, decomposition, norm weights (1, 9), part-norm weights (3, 9), group index.

    Memoised per (dtype, device): immutable constants, created outside inference mode so that a
    first call under ``torch.inference_mode()`` cannot leave inference tensors in the cache.
    """
    with torch.inference_mode(False), torch.no_grad():
        return _make_constants(dtype, device)


def _make_constants(dtype: torch.dtype, device: torch.device) -> tuple[Tensor, ...]:
    a = assembly_matrix(dtype).to(device)
    d = decomposition_matrix(dtype).to(device)
    w = torch.tensor([_NORM_WEIGHTS], dtype=dtype, device=device)
    wg = torch.zeros(3, 9, dtype=dtype, device=device)
    for k, g in enumerate(GROUP):
        wg[g, k] = _NORM_WEIGHTS[k]
    gi = torch.tensor(GROUP, dtype=torch.int64, device=device)
    return a, d, w, wg, gi


def _c(t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    return _constants(t.dtype, t.device)


def to_matrix(c: Tensor) -> Tensor:
    """Components (9, ...) -> matrices (3, 3, ...)."""
    return torch.mm(_c(c)[0], c.reshape(9, -1)).view(3, 3, *c.shape[1:])


def from_matrix(x: Tensor) -> Tensor:
    """Matrices (3, 3, ...) -> components (9, ...)."""
    return torch.mm(_c(x)[1], x.reshape(9, -1)).view(9, *x.shape[2:])


def from_matrix_add(base: Tensor, x: Tensor) -> Tensor:
    """``base + from_matrix(x)`` in one GEMM (``base`` (9, ...), ``x`` (3, 3, ...))."""
    return torch.addmm(base.reshape(9, -1), _c(x)[1], x.reshape(9, -1)).view(base.shape)


def to_matrix_reference(c: Tensor) -> Tensor:
    """Slow twin of :func:`to_matrix`, written entry by entry from the definition."""
    a, vx, vy, vz, s1, s2, s3, s4, s5 = c.unbind(0)
    d = s2 / _R3
    rows = [
        [a + s1 + d, s3 - vz, s4 + vy],
        [s3 + vz, a - s1 + d, s5 - vx],
        [s4 - vy, s5 + vx, a - 2.0 * d],
    ]
    return torch.stack([torch.stack(r) for r in rows])


def from_matrix_reference(x: Tensor) -> Tensor:
    """Slow twin of :func:`from_matrix`: the coordinates of the I, A, S parts of
    :func:`tensormol.so3.decompose_rank2` in this layout."""
    iso, anti, sym = decompose_rank2(torch.movedim(x, (0, 1), (-2, -1)))
    return torch.stack([
        iso[..., 0, 0], anti[..., 2, 1], anti[..., 0, 2], anti[..., 1, 0],
        0.5 * (sym[..., 0, 0] - sym[..., 1, 1]),
        (sym[..., 0, 0] + sym[..., 1, 1] - 2.0 * sym[..., 2, 2]) / (2.0 * _R3),
        sym[..., 0, 1], sym[..., 0, 2], sym[..., 1, 2],
    ])


def _matmul3(x: Tensor, y: Tensor, out: Tensor | None = None) -> Tensor:
    """``x y`` (or ``out + x y``) over the leading 3x3 axes, without autograd bookkeeping.

    Broadcast products of whole (M, H) blocks accumulated in place (one allocation), instead of a
    batched GEMM of tiny matrices.
    """
    xc, yc = x.unbind(1), y.unbind(0)  # columns x[:, c] and rows y[c], each (3, ...)
    if out is None:
        out = xc[0].unsqueeze(1) * yc[0].unsqueeze(0)
    else:
        out.addcmul_(xc[0].unsqueeze(1), yc[0].unsqueeze(0))
    out.addcmul_(xc[1].unsqueeze(1), yc[1].unsqueeze(0))
    return out.addcmul_(xc[2].unsqueeze(1), yc[2].unsqueeze(0))


class _MatMul3(Function):
    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor) -> Tensor:
        ctx.save_for_backward(x, y)
        return _matmul3(x, y)

    @staticmethod
    def backward(ctx, g: Tensor):
        x, y = ctx.saved_tensors
        gx = matmul3(g, y.transpose(0, 1)) if ctx.needs_input_grad[0] else None
        gy = matmul3(x.transpose(0, 1), g) if ctx.needs_input_grad[1] else None
        return gx, gy


class _Anticommutator(Function):
    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor) -> Tensor:
        ctx.save_for_backward(x, y)
        return _matmul3(y, x, _matmul3(x, y))

    @staticmethod
    def backward(ctx, g: Tensor):
        x, y = ctx.saved_tensors
        # d(xy + yx) = dx y + x dy + dy x + y dx  =>  gx = g y^T + y^T g,  gy = x^T g + g x^T
        gx = anticommutator(g, y.transpose(0, 1)) if ctx.needs_input_grad[0] else None
        gy = anticommutator(x.transpose(0, 1), g) if ctx.needs_input_grad[1] else None
        return gx, gy


def matmul3(x: Tensor, y: Tensor) -> Tensor:
    """Matrix product over the leading 3x3 axes: ``(xy)[a, b] = sum_c x[a, c] y[c, b]``.

    Its backward is two such products (so it differentiates to any order) instead of autograd's
    broadcast-and-reduce of every term.
    """
    return MATMUL3(x, y)


def anticommutator(x: Tensor, y: Tensor) -> Tensor:
    """``x y + y x`` over the leading 3x3 axes, accumulated in one buffer; its backward is two
    anticommutators."""
    return ANTICOMMUTATOR(x, y)


def _matmul3_traceable(x: Tensor, y: Tensor) -> Tensor:
    """:func:`_matmul3` out of place, so autograd records it (the traced graph's form): three
    broadcast products of whole (M, H) blocks; a batched GEMM of M·H tiny 3x3 matrices was the
    costliest op of a small molecule's traced step."""
    xc, yc = x.unbind(1), y.unbind(0)
    return (xc[0].unsqueeze(1) * yc[0].unsqueeze(0) + xc[1].unsqueeze(1) * yc[1].unsqueeze(0)
            + xc[2].unsqueeze(1) * yc[2].unsqueeze(0))


def matmul3_reference(x: Tensor, y: Tensor) -> Tensor:
    """Slow twin of :func:`matmul3` (batched ``torch.matmul``)."""
    xm, ym = torch.movedim(x, (0, 1), (-2, -1)), torch.movedim(y, (0, 1), (-2, -1))
    return torch.movedim(xm @ ym, (-2, -1), (0, 1))


def _norm2(c: Tensor) -> Tensor:
    return torch.mm(_c(c)[2], (c * c).reshape(9, -1)).view(c.shape[1:])


class _Normalize(Function):
    @staticmethod
    def forward(ctx, c: Tensor) -> Tensor:
        s = 1.0 / (_norm2(c) + 1.0)
        ctx.save_for_backward(c, s)
        return c * s

    @staticmethod
    def backward(ctx, g: Tensor):
        c, s = ctx.saved_tensors
        if torch.is_grad_enabled():  # double backward: s must carry its dependence on c
            s = 1.0 / (_norm2(c) + 1.0)
        w = _c(c)[2].view(9, *([1] * (c.dim() - 1)))
        t = (g * c).sum(0)  # sum_k g_k c_k
        # d/dc_l [c_k / (n + 1)] = s delta_kl - 2 s^2 w_l c_l c_k,  n = sum_k w_k c_k^2
        return g * s - (w * c) * (2.0 * s * s * t)


def normalize(c: Tensor) -> Tensor:
    """``X / (|X|_F^2 + 1)`` for components (9, ...), with a fused backward."""
    return NORMALIZE(c)


def normalize_reference(c: Tensor) -> Tensor:
    """Slow twin of :func:`normalize`."""
    return c / (norm2(c) + 1.0)


def norm2(c: Tensor) -> Tensor:
    """Squared Frobenius norm (...) of the tensors with components ``c`` (9, ...)."""
    return _norm2(c)


def group_norms2(c: Tensor) -> Tensor:
    """Squared Frobenius norms of I, A, S: (3, ...) from components (9, ...)."""
    return torch.mm(_c(c)[3], (c * c).reshape(9, -1)).view(3, *c.shape[1:])


def edge_basis(u: Tensor) -> Tensor:
    """Components (E, 9) of ``1 + [u]x + (u u^T - |u|^2/3 1)`` for vectors ``u`` (E, 3)."""
    ux, uy, uz = u.unbind(-1)
    return torch.stack(
        [
            torch.ones_like(ux), ux, uy, uz,
            0.5 * (ux * ux - uy * uy),
            (ux * ux + uy * uy - 2.0 * uz * uz) * (0.5 / _R3),
            ux * uy, ux * uz, uy * uz,
        ],
        dim=1,
    )


def mix_channels(c: Tensor, w_i: Tensor, w_a: Tensor, w_s: Tensor) -> Tensor:
    """Mix channels of each irreducible part with its own (H_out, H_in) matrix (no bias).

    ``c`` (9, M, H_in) -> (9, M, H_out): one batched GEMM.
    """
    w = torch.stack([w_i, w_a, w_s]).index_select(0, _c(c)[4])  # (9, H_out, H_in)
    return torch.bmm(c, w.transpose(1, 2))


def expand_groups(f: Tensor) -> Tensor:
    """Per-part factors (3, ...) -> per-component factors (9, ...)."""
    return f.index_select(0, _c(f)[4])


# ------------------------------------------------------------------------- kernels
def _anticommutator_traceable(x: Tensor, y: Tensor) -> Tensor:
    return _matmul3_traceable(x, y) + _matmul3_traceable(y, x)


def _anticommutator_reference(x: Tensor, y: Tensor) -> Tensor:
    return matmul3_reference(x, y) + matmul3_reference(y, x)


# "fused" runs; "traced" (plain broadcast ops, cheap to dispatch) runs while torch.jit.trace
# records; "reference" is the slow twin of the tests.
MATMUL3 = Kernel("tensornet.matmul3", traced="traced")
MATMUL3.register("fused", _MatMul3.apply, doc="autograd Function, in-place accumulation")
MATMUL3.register("traced", _matmul3_traceable, traceable=True, doc="three broadcast products")
MATMUL3.register("reference", matmul3_reference, traceable=True, doc="batched torch.matmul")
ANTICOMMUTATOR = Kernel("tensornet.anticommutator", traced="traced")
ANTICOMMUTATOR.register("fused", _Anticommutator.apply, doc="autograd Function, one buffer")
ANTICOMMUTATOR.register("traced", _anticommutator_traceable, traceable=True,
                        doc="two broadcast matmul3")
ANTICOMMUTATOR.register("reference", _anticommutator_reference, traceable=True,
                        doc="two batched torch.matmul")
NORMALIZE = Kernel("tensornet.normalize", traced="reference")
NORMALIZE.register("fused", _Normalize.apply, doc="autograd Function, fused backward")
NORMALIZE.register("reference", normalize_reference, traceable=True, doc="plain ops")
