"""The sphere-grid routes of the Gaunt product: Gauss–Legendre × equispaced ("grid": tensor ops;
"cpp": the fused compiled kernel).

Same product as :func:`tensormol.ops.gaunt_product` (see ``_gaunt``): the coefficients
``z`` of the projection of ``Π_i f_i`` onto the spherical harmonics, ``f_i = Σ x_i,lm Y_lm``.
The torus route of Luo et al. samples θ over the whole circle [0, 2π) because it works with 2D
Fourier series; the functions are determined by their values on θ ∈ [0, π], where Gauss–Legendre
quadrature in cos θ is exact with about a third of the θ samples (L = 10 → 10: 16 instead of 45).
The φ direction is the same half-spectrum DFT. Everything stays separable, O(L³) per row:

1. synthesis, per input: for every k = |m| and c ∈ {cos, sin}, a (n_θ × (L+1)) Legendre block
   maps the coefficients of that (k, c) to ring values; a (2K × n_φ) trig table turns the rings
   into grid values;
2. the pointwise product of all inputs on the grid;
3. analysis: the transposed steps, with the quadrature weights (Gauss–Legendre in cos θ, 2π/n_φ
   in φ) folded into the output's tables.

Exactness: the integrand of the projection is, after the φ integral, a polynomial in cos θ of
degree ≤ S + L_out (S = Σ L_i), so ``n_θ = ⌈(S + L_out + 1)/2⌉`` Gauss points integrate it
exactly; its φ frequencies are ≤ S + L_out, so ``n_φ = S + L_out + 1`` equispaced points do.

A *table* (Legendre blocks, coefficient index map, trig table) serves as synthesis of its
coefficients and, transposed, as their analysis. The whole product is therefore one generic
operation ``grid_product(xs, tables_in, table_out)``, and its gradient with respect to ``x_i``
is the same operation with ``grad_out`` synthesized by ``table_out`` and the analysis done by
``tables_in[i]`` (the adjoints). The compiled kernel (``_ext/csrc/gaunt_grid.cpp``) implements
that operation once; its backward and double backward call it again. The torch twin below is the
same arithmetic in tensor ops.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from tensormol._ext import Kernel, extension_backend, extension_key, tracing

from ._gaunt_basis import GRID_CHUNK_BYTES, degree_factors

__all__ = ["GAUNT_GRID", "GridTable", "grid_shape", "grid_product", "grid_product_torch",
           "grid_route"]


class GridTable(NamedTuple):
    """Synthesis/analysis table of one coefficient vector on a sphere grid.

    Attributes
    ----------
    leg : torch.Tensor
        (K, 2, n_θ, L+1): value of the θ part of the harmonic in slot (k, c, l) at each ring.
    index : torch.Tensor
        (K, 2, L+1) int64: position of slot (k, c, l) in the coefficient vector, -1 where the
        slot is empty (l < k, or c = sin at k = 0).
    trig : torch.Tensor
        (K, 2, n_φ): cos(kφ_j) (c = 0) and sin(kφ_j) (c = 1), times a weight for analysis tables.
    """

    leg: torch.Tensor
    index: torch.Tensor
    trig: torch.Tensor


def grid_shape(lmax_in: Sequence[int], lmax_out: int) -> tuple[int, int]:
    """Sphere grid (n_θ Gauss–Legendre rings, n_φ points per ring) on which the product of inputs
    of degrees ``lmax_in`` projected onto degrees ≤ ``lmax_out`` is exact."""
    top = sum(lmax_in) + lmax_out
    return top // 2 + 1, top + 1


def _sh_on_rings(lmax: int, cos_theta: np.ndarray, n_phi: int) -> torch.Tensor:
    """Real SH (integral normalization, e3nn basis) at (θ_q, φ_j): (n_θ, n_φ, (lmax+1)²)."""
    from tensormol.so3 import spherical_harmonics

    ct = torch.as_tensor(cos_theta, dtype=torch.float64)
    st = torch.sqrt(torch.clamp(1 - ct * ct, min=0.0))
    phi = 2 * math.pi * torch.arange(n_phi, dtype=torch.float64) / n_phi
    # θ from the y axis, φ in the z-x plane: e3nn's harmonics are then ∝ cos/sin(|m| φ).
    xyz = torch.stack([st[:, None] * phi.sin()[None, :], ct[:, None].expand(-1, n_phi),
                       st[:, None] * phi.cos()[None, :]], dim=-1)
    return spherical_harmonics(list(range(lmax + 1)), xyz, normalize=False,
                               normalization="integral")


@functools.lru_cache(maxsize=64)
def _base_table(lmax: int, n_theta: int, n_phi: int) -> GridTable:
    """Float64 synthesis table of degrees 0..lmax on the (n_θ, n_φ) grid, integral
    normalization. Found numerically from the harmonics themselves (so no sign convention is
    assumed) and checked to reproduce them."""
    x, _ = np.polynomial.legendre.leggauss(n_theta)
    n_fit = 2 * lmax + 2  # enough φ samples to separate cos/sin(kφ), k ≤ lmax
    Y = _sh_on_rings(lmax, x, n_fit)  # (q, j, D)
    phi = 2 * math.pi * torch.arange(n_fit, dtype=torch.float64) / n_fit
    K = lmax + 1
    leg = torch.zeros(K, 2, n_theta, lmax + 1, dtype=torch.float64)
    index = torch.full((K, 2, lmax + 1), -1, dtype=torch.int64)
    for l in range(lmax + 1):  # noqa: E741
        for m in range(-l, l + 1):
            d, k = l * l + l + m, abs(m)
            cos_part = (Y[:, :, d] * torch.cos(k * phi)).sum(1) * (2 if k else 1) / n_fit
            sin_part = (Y[:, :, d] * torch.sin(k * phi)).sum(1) * 2 / n_fit
            c = 0 if cos_part.abs().max() >= sin_part.abs().max() else 1
            if index[k, c, l] >= 0:
                raise RuntimeError(f"two harmonics of degree {l} share the slot k={k}, c={c}")
            index[k, c, l] = d
            leg[k, c, :, l] = cos_part if c == 0 else sin_part
    trig_fit = torch.stack([torch.cos(torch.arange(K, dtype=torch.float64)[:, None] * phi),
                            torch.sin(torch.arange(K, dtype=torch.float64)[:, None] * phi)], 1)
    rebuilt = torch.zeros_like(Y)
    valid = index >= 0
    ks, cs, ls = valid.nonzero(as_tuple=True)
    rebuilt[:, :, index[valid]] = leg[ks, cs, :, ls].T[:, None, :] * trig_fit[ks, cs].T[None]
    err = float((rebuilt - Y).abs().max())
    if err > 1e-12:
        raise RuntimeError(f"sphere-grid table does not reproduce the harmonics (error {err:.1e})")
    phi_g = 2 * math.pi * torch.arange(n_phi, dtype=torch.float64) / n_phi
    kk = torch.arange(K, dtype=torch.float64)[:, None] * phi_g
    trig = torch.stack([torch.cos(kk), torch.sin(kk)], dim=1)
    return GridTable(leg, index, trig)


@functools.lru_cache(maxsize=64)
def _product_tables(lmaxes: tuple[int, ...], lmax_out: int, normalization: str,
                    dtype: torch.dtype, device: torch.device):
    """Input synthesis tables and the output analysis table of one product, cast and placed."""
    n_theta, n_phi = grid_shape(lmaxes, lmax_out)
    _, w = np.polynomial.legendre.leggauss(n_theta)
    w = torch.as_tensor(w, dtype=torch.float64)

    def place(t: GridTable) -> GridTable:
        return GridTable(t.leg.to(dtype=dtype, device=device).contiguous(), t.index.to(device),
                         t.trig.to(dtype=dtype, device=device).contiguous())

    tabs = []
    for L in lmaxes:
        base = _base_table(L, n_theta, n_phi)
        # Coefficients in a scaled basis: f = Σ x^norm Y^norm = Σ (s x^norm) Y^int.
        tabs.append(place(base._replace(leg=base.leg * degree_factors(L, normalization))))
    base = _base_table(lmax_out, n_theta, n_phi)
    # z^norm = z^int / s; ∫ dΩ = Σ_q w_q (2π / n_φ) Σ_j in cos θ and φ.
    leg_o = base.leg * w[:, None] / degree_factors(lmax_out, normalization)
    out = place(GridTable(leg_o, base.index, base.trig * (2 * math.pi / n_phi)))
    return tuple(tabs), out


def _synthesis_torch(x: torch.Tensor, t: GridTable) -> torch.Tensor:
    """(Z, D) coefficients → (Z, n_θ, n_φ) grid values."""
    xz = torch.cat([x, x.new_zeros(x.shape[0], 1)], dim=1)  # slot -1 reads the zero column
    blocks = xz[:, t.index]  # (Z, K, 2, L+1)
    rings = torch.einsum("zkcl,kcql->zkcq", blocks, t.leg)
    return torch.einsum("zkcq,kcj->zqj", rings, t.trig)


def _analysis_torch(g: torch.Tensor, t: GridTable, dim: int) -> torch.Tensor:
    """(Z, n_θ, n_φ) grid values → (Z, dim) coefficients (the adjoint of synthesis)."""
    rings = torch.einsum("zqj,kcj->zkcq", g, t.trig)
    blocks = torch.einsum("zkcq,kcql->zkcl", rings, t.leg)
    valid = t.index >= 0
    out = g.new_zeros(g.shape[0], dim)
    return out.index_copy(1, t.index[valid], blocks[:, valid])


def grid_product_torch(xs: Sequence[torch.Tensor], tables: Sequence[GridTable],
                       out_table: GridTable, dim_out: int) -> torch.Tensor:
    """Torch twin of the compiled ``gaunt_grid`` op: ``analysis(Π_i synthesis(x_i))``.

    ``xs``: each (Z, D_i), one dtype; returns (Z, dim_out). Differentiable to any order.
    """
    n_theta, n_phi = out_table.leg.shape[2], out_table.trig.shape[2]
    Z = xs[0].shape[0]
    rows = max(16, GRID_CHUNK_BYTES // (n_theta * n_phi * xs[0].element_size()))
    if Z > rows and not tracing():  # a traced graph keeps one pass (row count stays dynamic)
        return torch.cat([grid_product_torch([x[r:r + rows] for x in xs], tables, out_table,
                                             dim_out) for r in range(0, Z, rows)])
    grid = None
    for x, t in zip(xs, tables):
        v = _synthesis_torch(x, t)
        grid = v if grid is None else grid * v
    return _analysis_torch(grid, out_table, dim_out)


class _GridProductCpp(torch.autograd.Function):
    """Compiled ``gaunt_grid``; each gradient is the same op with adjoint tables (so backward is
    itself differentiable through this Function: double backward for force training)."""

    @staticmethod
    def forward(ctx, tables, out_table, dim_out, *xs):  # type: ignore[override]
        ctx.tables, ctx.out_table = tables, out_table
        ctx.dims = [x.shape[1] for x in xs]
        ctx.save_for_backward(*xs)
        return _call_kernel(xs, tables, out_table, dim_out)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        xs = ctx.saved_tensors
        grads = []
        for i in range(len(xs)):
            if not ctx.needs_input_grad[3 + i]:
                grads.append(None)
                continue
            others = [x for j, x in enumerate(xs) if j != i]
            tabs = [t for j, t in enumerate(ctx.tables) if j != i]
            grads.append(_GridProductCpp.apply((ctx.out_table, *tabs), ctx.tables[i],
                                               ctx.dims[i], grad_out, *others))
        return (None, None, None, *grads)


def _call_kernel(xs, tables, out_table, dim_out):
    return torch.ops.tensormol_ext.gaunt_grid(
        [x.contiguous() for x in xs], [t.leg for t in tables], [t.index for t in tables],
        [t.trig for t in tables], out_table.leg, out_table.index, out_table.trig, dim_out)


def _kernel_supports(device: torch.device, dtype: torch.dtype) -> bool:
    return device.type == "cpu" and dtype in (torch.float32, torch.float64)


def _grid_product_cpp(xs: Sequence[torch.Tensor], tables: Sequence[GridTable],
                      out_table: GridTable, dim_out: int) -> torch.Tensor:
    return _GridProductCpp.apply(tuple(tables), out_table, dim_out, *xs)


GAUNT_GRID = Kernel("gaunt_grid", traced="torch")
GAUNT_GRID.register("cpp", _grid_product_cpp, supports=_kernel_supports, **extension_backend(),
                    doc="fused compiled kernel, CPU float32/float64")
GAUNT_GRID.register("torch", grid_product_torch, traceable=True, doc="tensor-op twin")


def grid_product(xs: Sequence[torch.Tensor], tables: Sequence[GridTable], out_table: GridTable,
                 dim_out: int, backend: str = "auto") -> torch.Tensor:
    """``analysis(Π_i synthesis(x_i))`` on one sphere grid, compiled or torch twin.

    Parameters
    ----------
    xs : sequence of torch.Tensor
        Each (Z, D_i), float32 or float64, same dtype and device.
    tables, out_table : GridTable
        Synthesis table per input, analysis table of the output (same grid).
    dim_out : int
        Length of the output coefficient vector.
    backend : str or Resolution
        "auto" (the compiled kernel when the extension is loaded, for CPU float32/float64
        tensors; the twin otherwise), "torch" or "cpp" (CPU only; loads the extension).
    """
    device, dtype = xs[0].device, xs[0].dtype
    res = GAUNT_GRID.resolve_cached(backend, extension_key(device))
    return GAUNT_GRID.select(res, device, dtype).fn(xs, tables, out_table, dim_out)


def grid_route(xs: Sequence[torch.Tensor], lmaxes: Sequence[int], lmax_out: int,
               batch_shape: tuple[int, ...], normalization: str,
               impl: str = "torch") -> torch.Tensor:
    """The "grid" (``impl="torch"``) and "cpp" routes of :func:`tensormol.ops.gaunt_product`
    (inputs validated and backend resolved there): broadcast inputs are expanded to the common
    batch, then one grid product."""
    l_eff = min(lmax_out, sum(lmaxes))
    dtype, device = xs[0].dtype, xs[0].device
    tables, out_table = _product_tables(tuple(lmaxes), l_eff, normalization, dtype, device)
    n = math.prod(batch_shape)
    flat = [x.expand(*batch_shape, x.shape[-1]).reshape(n, x.shape[-1]) for x in xs]
    out = GAUNT_GRID.backend(impl).fn(flat, tables, out_table, (l_eff + 1) ** 2)
    if l_eff < lmax_out:  # degrees above the sum of the inputs are zero
        out = torch.nn.functional.pad(out, (0, (lmax_out + 1) ** 2 - (l_eff + 1) ** 2))
    return out.reshape(*batch_shape, (lmax_out + 1) ** 2)
