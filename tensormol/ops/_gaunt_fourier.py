"""The "fourier" route of the Gaunt product: the 2D Fourier basis on the torus (Luo et al., ICLR
2024), in tensor ops.

The product (defined in :mod:`tensormol.ops._gaunt`, the dispatcher) of real spherical-harmonic
coefficient vectors, computed through Fourier series on the torus.

Algorithm, O(L³) per feature vector instead of the O(L⁶) of a dense CG/Gaunt contraction:

1. Spherical harmonics restricted to the torus (θ, φ) ∈ [0, 2π)² are trigonometric polynomials,
   ``Y_lm = Σ_{|u|,|v| ≤ l} y^{lm}_{uv} e^{i(uθ + vφ)}``, with ``y^{lm}_{uv} ≠ 0`` only for
   ``|v| = |m|``. The SH → Fourier map is therefore block-sparse: one small dense block per
   ``k = |m|`` (cost O(L³)). Only ``v ≥ 0`` is kept, since the functions are real.
2. The product of the functions is a 2D convolution of their Fourier coefficients; it is done by
   FFT (inverse real FFT to a torus grid, pointwise product, forward real FFT). The grid is the
   smallest FFT-friendly one with no aliasing onto the coefficients that step 3 reads:
   ``N_θ ≥ 2S + 1`` and ``N_φ ≥ S + L_out + 1`` with ``S`` the sum of the input degrees.
3. Fourier → SH is the exact integral ``∫_0^π∫_0^{2π} e^{i(uθ+vφ)} Y_lm sin θ dφ dθ``, again
   block-sparse in ``v``. It is computed in closed form from the Fourier series of
   ``Y_lm sin θ`` (``∫_0^π e^{inθ} dθ`` is π, 0 or 2i/n), so no quadrature error enters.

Any number of inputs multiply in one pass (step 2 multiplies all grids), which is how the
many-body (ν ≥ 2) products of MACE-like models are formed without chains of CG products.
The tables are built once per (degrees, dtype, device) and cached.

Data flow, with the batch Z = prod(leading dims) kept as the last (GEMM-friendly) axis: SH
k-blocks → (θ samples × φ half spectrum) by one batched matmul per input → φ samples by a second
matmul → pointwise product of all inputs on the torus grid → φ half spectrum → exact θ integral
per k-block. The θ-direction DFTs are folded into the precomputed block matrices: with at most
2·ΣL+1 θ samples a GEMM beats a batched small FFT, on CPU and GPU.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

from tensormol._ext import tracing

from ._gaunt_basis import GRID_CHUNK_BYTES, degree_scale

__all__ = ["fourier_grid_shape", "fourier_route"]


def _next_fast_len(n: int) -> int:
    """Smallest m ≥ n whose prime factors are 2, 3 and 5 (fast FFT sizes)."""
    m = n
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def fourier_grid_shape(lmax_in: Sequence[int], lmax_out: int) -> tuple[int, int]:
    """Torus grid (N_θ, N_φ) on which the product of inputs of degrees ``lmax_in`` is exact."""
    s = sum(lmax_in)
    n_theta = _next_fast_len(2 * s + 1)
    n_phi = _next_fast_len(max(s + lmax_out + 1, 2 * max(lmax_in) + 1))
    return n_theta, n_phi


def _torus_sh(lmax: int, n: int) -> torch.Tensor:
    """Real SH (integral normalization) on an n×n torus grid, shape (n_θ, n_φ, (lmax+1)²)."""
    from tensormol.so3 import spherical_harmonics

    t = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    theta, phi = torch.meshgrid(t, t, indexing="ij")
    # e3nn's real basis has its polar axis along y (its m = 0 harmonic is symmetric about y),
    # so θ is measured from y and φ turns in the z-x plane; then Y_lm ∝ e^{±i|m|φ}. For θ in
    # (π, 2π) this point is the analytic continuation of the trig polynomial, because real SH are
    # polynomials in (x, y, z) evaluated on the unit sphere.
    xyz = torch.stack([theta.sin() * phi.sin(), theta.cos(), theta.sin() * phi.cos()], dim=-1)
    return spherical_harmonics(list(range(lmax + 1)), xyz, normalize=False,
                               normalization="integral")


def _fourier_coefficients(values: torch.Tensor) -> torch.Tensor:
    """Exact 2D Fourier coefficients c[u, v] of trig polynomials sampled on an n×n grid.

    ``values``: (n, n, K) real. Returns (n, n, K) complex with u, v in FFT order.
    """
    return torch.fft.fft2(values.to(torch.complex128), dim=(0, 1), norm="forward")


def _block_layout(lmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Group the (lmax+1)² SH indices by k = |m|.

    Returns ``index`` (lmax+1, J) int64 into the SH vector (J = 2(lmax+1)), with -1 for padding,
    and ``mvals`` of the same shape holding m (0 for padding).
    """
    J = 2 * (lmax + 1)
    index = torch.full((lmax + 1, J), -1, dtype=torch.int64)
    mvals = torch.zeros((lmax + 1, J), dtype=torch.int64)
    fill = [0] * (lmax + 1)
    for l in range(lmax + 1):  # noqa: E741
        for m in range(-l, l + 1):
            k = abs(m)
            index[k, fill[k]] = l * l + (m + l)
            mvals[k, fill[k]] = m
            fill[k] += 1
    return index, mvals


@functools.lru_cache(maxsize=64)
def _analysis_table(lmax: int, n_theta: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SH → Fourier block table A[k, j, u, c], float64, c = (real, imag), u in FFT order of
    length n_theta, with F[u, v=k] = Σ_j x[index[k, j]] (A[k, j, u, 0] + i A[k, j, u, 1])."""
    n = 2 * lmax + 1
    coeff = _fourier_coefficients(_torus_sh(lmax, n))  # (n, n, D)
    index, mvals = _block_layout(lmax)
    us = torch.arange(-lmax, lmax + 1)
    k_of = torch.arange(lmax + 1)[:, None].expand_as(index)
    valid = index >= 0
    # cols[k, j, u] = coefficient of e^{i(uθ + kφ)} in Y_{index[k, j]}
    cols = coeff[us[None, None, :] % n, (k_of % n)[..., None], index.clamp(min=0)[..., None]]
    cols = cols * valid[..., None]
    A = torch.zeros(lmax + 1, index.shape[1], n_theta, 2, dtype=torch.float64)
    A[:, :, us % n_theta, 0] = cols.real
    A[:, :, us % n_theta, 1] = cols.imag
    # Sanity of the sparsity claim: coefficients off the |v| = |m| columns vanish.
    vs = torch.arange(n)
    vnat = torch.where(vs > lmax, vs - n, vs)
    ls = torch.arange(lmax + 1).repeat_interleave(2 * torch.arange(lmax + 1) + 1)
    ms = torch.arange(coeff.shape[-1]) - ls * ls - ls
    off = vnat.abs()[:, None] != ms.abs()[None, :]  # (v, D)
    leak = (coeff.abs() * off[None]).amax()
    if float(leak) > 1e-12:
        raise RuntimeError(f"SH Fourier table is not block-sparse (leak {float(leak):.2e})")
    return index, A


def _theta_integral(n: torch.Tensor) -> torch.Tensor:
    """∫_0^π e^{i n θ} dθ for integer n, as (real, imag)."""
    re = torch.where(n == 0, torch.full_like(n, math.pi, dtype=torch.float64),
                     torch.zeros_like(n, dtype=torch.float64))
    odd = (n % 2) != 0
    im = torch.where(odd, 2.0 / n.to(torch.float64).where(odd, torch.ones_like(n,
                     dtype=torch.float64)), torch.zeros_like(n, dtype=torch.float64))
    return torch.complex(re, im)


@functools.lru_cache(maxsize=64)
def _synthesis_table(lmax_out: int, n_theta: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fourier → SH block table B[k, u, c, j], float64, such that for real h with half spectrum
    H[u, v ≥ 0] (u in FFT order of length n_theta, every |u| ≤ n_theta//2 used):

        z[index[k, j]] = Σ_u H_re[u, k] B[k, u, 0, j] + H_im[u, k] B[k, u, 1, j].
    """
    L = lmax_out
    n = 2 * (L + 1) + 1  # Y sin θ has θ-degree L + 1
    coeff = _fourier_coefficients(_torus_sh(L, n) * torch.sin(
        2 * math.pi * torch.arange(n, dtype=torch.float64) / n)[:, None, None])
    index, _ = _block_layout(L)
    B = torch.zeros(L + 1, n_theta, 2, index.shape[1], dtype=torch.float64)
    us = torch.arange(n_theta)
    u_nat = torch.where(us > n_theta // 2, us - n_theta, us)  # frequencies the grid resolves
    ks = torch.arange(-(L + 1), L + 2)
    # M[lm, u, v] = ∫∫ e^{i(uθ + vφ)} Y_lm sin θ = 2π Σ_k c[k, -v] I(u + k).
    I = _theta_integral(u_nat[:, None] + ks[None, :])  # (n_theta, 2L+3)
    valid = index >= 0
    k_of = torch.arange(L + 1)[:, None].expand_as(index)
    # c[k, j, kθ] = coefficient of e^{i(kθ·θ - kφ)} in Y_{index[k, j]} sin θ
    c = coeff[ks[None, None, :] % n, ((-k_of) % n)[..., None], index.clamp(min=0)[..., None]]
    c = c * valid[..., None]
    M = 2 * math.pi * torch.einsum("uq,kjq->kuj", I, c)  # (L+1, n_theta, J) complex
    # Re(H M) = H_re M_re - H_im M_im; the v < 0 half doubles every k > 0 term.
    weight = torch.where(torch.arange(L + 1) == 0, 1.0, 2.0).to(torch.float64)[:, None, None]
    B = torch.stack([weight * M.real, -weight * M.imag], dim=2)  # (L+1, n_theta, 2, J)
    return index, B


@functools.lru_cache(maxsize=64)
def _grid_operators(lmaxes: tuple[int, ...], lmax_out: int):
    """Float64 operators of one product, with the θ-direction DFT folded in (see module doc).

    Returns (n_theta, n_phi, analysis, phi_synth, phi_anal, (index_out, proj)) where, per input,
    ``analysis = (index (K, J), P (K, 2·n_theta, J))`` maps the k-blocks of the SH coefficients to
    the half spectrum in φ sampled on the θ grid, rows ordered (re/im, θ); ``phi_synth``
    (n_phi, 2K) turns (re/im, k) into φ samples; ``phi_anal`` (2K_out, n_phi) is its inverse
    for the product; ``proj`` (K_out, J_out, 2·n_theta) integrates over θ exactly.
    """
    n_theta, n_phi = fourier_grid_shape(lmaxes, lmax_out)
    theta = 2 * math.pi * torch.arange(n_theta, dtype=torch.float64) / n_theta
    phi = 2 * math.pi * torch.arange(n_phi, dtype=torch.float64) / n_phi
    us = torch.arange(n_theta)
    u_nat = torch.where(us > n_theta // 2, us - n_theta, us).to(torch.float64)
    cos_ut = torch.cos(u_nat[:, None] * theta[None, :])  # (u, q)
    sin_ut = torch.sin(u_nat[:, None] * theta[None, :])
    analysis = []
    for L in lmaxes:
        index, A = _analysis_table(L, n_theta)  # A[k, j, u, c]
        # C_k(θ_q) = Σ_u (A_re + i A_im) e^{iuθ_q}
        c_re = torch.einsum("kju,uq->kqj", A[..., 0], cos_ut) - torch.einsum(
            "kju,uq->kqj", A[..., 1], sin_ut)
        c_im = torch.einsum("kju,uq->kqj", A[..., 0], sin_ut) + torch.einsum(
            "kju,uq->kqj", A[..., 1], cos_ut)
        analysis.append((index, torch.cat([c_re, c_im], dim=1)))
    K_in = max(lmaxes) + 1
    ks = torch.arange(K_in, dtype=torch.float64)
    w = torch.where(ks == 0, 1.0, 2.0)  # Hermitian completion of the v < 0 half
    kphi = ks[:, None] * phi[None, :]
    # f(θ, φ) = Σ_k w_k (C_re cos kφ - C_im sin kφ); columns ordered (re/im, k) per input K.
    phi_synth = {L + 1: torch.cat([(w[:, None] * kphi.cos())[: L + 1],
                                   (-w[:, None] * kphi.sin())[: L + 1]], dim=0).T.contiguous()
                 for L in set(lmaxes)}
    K_out = lmax_out + 1
    kphi_o = torch.arange(K_out, dtype=torch.float64)[:, None] * phi[None, :]
    phi_anal = torch.cat([kphi_o.cos(), -kphi_o.sin()], dim=0) / n_phi  # (2K_out, n_phi)
    index_o, B = _synthesis_table(lmax_out, n_theta)  # B[k, u, c, j]
    w0 = (torch.einsum("uq,kuj->kjq", cos_ut, B[:, :, 0]) - torch.einsum(
        "uq,kuj->kjq", sin_ut, B[:, :, 1])) / n_theta
    w1 = (torch.einsum("uq,kuj->kjq", sin_ut, B[:, :, 0]) + torch.einsum(
        "uq,kuj->kjq", cos_ut, B[:, :, 1])) / n_theta
    proj = torch.cat([w0, w1], dim=2)  # (K_out, J_out, 2 n_theta), columns (re/im, θ)
    return n_theta, n_phi, analysis, phi_synth, phi_anal, (index_o, proj)


@functools.lru_cache(maxsize=64)
def _device_tables(lmaxes: tuple[int, ...], lmax_out: int, dtype: torch.dtype,
                   device: torch.device):
    n_theta, n_phi, analysis, phi_synth, phi_anal, (index_o, proj) = _grid_operators(
        lmaxes, lmax_out)

    def cast(t: torch.Tensor) -> torch.Tensor:
        return t.to(dtype=dtype, device=device)

    def k_major(t: torch.Tensor, K: int) -> torch.Tensor:
        # (re/im, k) -> (k, re/im) order of the 2K axis (columns of t): then the (K, 2 n_theta,
        # Z) block products are read as (2K, n_theta Z) without a transposing copy.
        return t.reshape(t.shape[0], 2, K).transpose(1, 2).reshape(t.shape[0], 2 * K)

    # Padding slots of a block read one appended zero row (index D) instead of a masked copy.
    ana = [(torch.where(index >= 0, index, (L + 1) ** 2).to(device), cast(P),
            cast(k_major(phi_synth[L + 1], L + 1))) for (index, P), L in zip(analysis, lmaxes)]
    valid = index_o >= 0
    anal = k_major(phi_anal.T, lmax_out + 1).T.contiguous()  # rows (k, re/im)
    return n_theta, n_phi, ana, cast(anal), (index_o[valid].to(device), valid.to(device),
                                             cast(proj))


def fourier_route(xs: Sequence[torch.Tensor], lmaxes: Sequence[int], lmax_out: int,
                  batch_shape: tuple[int, ...], normalization: str) -> torch.Tensor:
    """The "fourier" route of :func:`tensormol.ops.gaunt_product` (inputs validated there)."""
    dtype, device = xs[0].dtype, xs[0].device
    # Degrees above sum(L_i) are exactly zero: compute up to l_eff and pad.
    l_eff = min(lmax_out, sum(lmaxes))
    n_theta, n_phi, analysis, phi_anal, (index_o, valid, proj) = _device_tables(
        tuple(lmaxes), l_eff, dtype, device)
    rows = max(64, GRID_CHUNK_BYTES // (n_theta * n_phi * xs[0].element_size()))
    n_rows = math.prod(batch_shape)
    # A traced graph keeps one pass: row blocks would freeze the row count into the graph.
    if (n_rows > rows and not tracing()
            and all(tuple(x.shape[:-1]) == tuple(batch_shape) for x in xs)):
        # Row blocks keep every grid-sized temporary under a few MiB: they stay in cache and
        # in malloc's heap (large blocks are mapped and unmapped, i.e. page-faulted, per call).
        flat = [x.reshape(n_rows, x.shape[-1]) for x in xs]
        out = torch.cat([fourier_route([f[r:r + rows] for f in flat], lmaxes, lmax_out,
                                       (min(rows, n_rows - r),), normalization)
                         for r in range(0, n_rows, rows)])
        return out.reshape(*batch_shape, (lmax_out + 1) ** 2)
    grid = None
    for x, L, (index, P, synth) in zip(xs, lmaxes, analysis):
        scale = degree_scale(L, normalization)
        if scale is not None:
            x = x * scale.to(dtype=dtype, device=device)
        # Each input is transformed at its own (unbroadcast) shape, e.g. edge harmonics (E, 1, D)
        # once, not once per channel; broadcasting happens on the grid.
        own = (1,) * (len(batch_shape) + 1 - x.dim()) + tuple(x.shape[:-1])
        xt = x.reshape(-1, x.shape[-1]).T  # (D, Z_x)
        xt = torch.cat([xt, xt.new_zeros(1, xt.shape[1])], dim=0)
        half = torch.bmm(P, xt[index])  # (K, 2 n_theta, Z_x), rows (re/im, θ) per k
        # synth's columns are (k, re/im): contract the (K, 2) rows of half as they lie.
        values = (synth @ half.view(2 * (L + 1), -1)).view(n_phi, n_theta, *own)  # torus grid
        grid = values if grid is None else grid * values
    grid = grid.expand(n_phi, n_theta, *batch_shape).reshape(n_phi, -1)
    spec = (phi_anal @ grid).view(l_eff + 1, 2 * n_theta, -1)  # rows (k | re/im, θ)
    blocks = torch.bmm(proj, spec)  # (K_out, J, Z)
    out = blocks.new_zeros((lmax_out + 1) ** 2, blocks.shape[-1])
    out[index_o] = blocks[valid]
    out = out.T
    out_scale = degree_scale(lmax_out, normalization)
    if out_scale is not None:
        # z in the chosen basis: Y^norm = s Y^int, so z^norm = z^int / s.
        out = out / out_scale.to(dtype=dtype, device=device)
    return out.reshape(*batch_shape, (lmax_out + 1) ** 2)
