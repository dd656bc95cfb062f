"""Gaunt tensor products through the 2D Fourier basis on the torus (Luo et al., ICLR 2024).

A feature vector of real spherical-harmonic coefficients ``x_lm`` (l ≤ L) is a function on the
sphere, ``f(ω) = Σ x_lm Y_lm(ω)``. The Gaunt tensor product of ``x`` and ``y`` is the projection of
the pointwise product ``f_x f_y`` back onto the spherical harmonics,

    z_{l3 m3} = Σ x_{l1 m1} y_{l2 m2} G^{l1 l2 l3}_{m1 m2 m3},
    G = ∫ Y_{l1 m1} Y_{l2 m2} Y_{l3 m3} dΩ,

so only paths with l1 + l2 + l3 even exist (the inputs are treated as functions, i.e. degree l
has parity (-1)^l: irreps "0e+1o+2e+3o+..."). Odd paths need Clebsch–Gordan products
(``tensormol.ops.cg_tensor_product``).

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
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

from tensormol._validate import check_int_ge

__all__ = ["gaunt_product", "gaunt_product_dense", "fourier_grid_shape", "SH_NORMALIZATIONS"]

SH_NORMALIZATIONS = ("integral", "component", "norm")


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


def _degree_factors(lmax: int, normalization: str) -> torch.Tensor:
    """Per-degree s_l (lmax+1,) float64 with Y_l^norm = s_l · Y_l^integral."""
    if normalization == "integral":
        per_l = [1.0] * (lmax + 1)
    elif normalization == "component":
        per_l = [math.sqrt(4 * math.pi)] * (lmax + 1)
    elif normalization == "norm":
        per_l = [math.sqrt(4 * math.pi / (2 * l + 1)) for l in range(lmax + 1)]
    else:
        raise ValueError(f"normalization must be one of {SH_NORMALIZATIONS}, got {normalization!r}")
    return torch.tensor(per_l, dtype=torch.float64)


def _degree_scale(lmax: int, normalization: str) -> torch.Tensor | None:
    """Per-coefficient factor s with Y^norm = s · Y^integral, or None for "integral"."""
    if normalization == "integral":
        return None
    per_l = _degree_factors(lmax, normalization)
    return per_l.repeat_interleave(2 * torch.arange(lmax + 1) + 1)


def _broadcast_shape(shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """NumPy broadcasting of the leading shapes (torch.broadcast_shapes imports torch._refs,
    seconds on first use)."""
    ndim = max(len(s) for s in shapes)
    out = []
    for i in range(ndim):
        # Compare as ints but return the size objects themselves: under torch.jit.trace they are
        # traced values, and the traced graph must keep them dynamic (e.g. the number of edges).
        big = [s[len(s) - ndim + i] for s in shapes
               if len(s) - ndim + i >= 0 and int(s[len(s) - ndim + i]) != 1]
        if len({int(v) for v in big}) > 1:
            raise ValueError(f"input batch shapes {shapes} do not broadcast")
        out.append(big[0] if big else 1)
    return tuple(out)


def _lmax_of(x: torch.Tensor, name: str) -> int:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor")
    d = x.shape[-1] if x.dim() else 0
    L = math.isqrt(d) - 1
    if d == 0 or (L + 1) ** 2 != d:
        raise ValueError(f"{name} must have a last dimension (lmax+1)² (1, 4, 9, 16, ...), "
                         f"holding degrees 0..lmax; got {d}")
    return L


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


# Up to these degrees (inputs and output) the dense contraction beats, or ties, the Fourier route
# on CPU (float32, one thread, 256 x 32 rows; forward and forward+backward measured): two inputs
# up to L = 4 (L = 4: forward 19 vs 36 ms, fwd+bwd 71 vs 75 ms), three or more up to L = 3.
_DENSE_MAX_DEGREE = 3
_DENSE_MAX_DEGREE_PAIR = 4
# With the compiled extension loaded, its fused sphere-grid kernel beats the dense contraction
# everywhere (forward and forward+backward, pairs and triples, L = 1..4; 256 x 32 rows, float32,
# 2 threads) except for a pair whose second operand is shared across channels, up to this degree.
_DENSE_MAX_DEGREE_SHARED_VS_KERNEL = 3
_BACKENDS = ("auto", "grid", "fourier", "dense")
# Largest grid temporary of one row block of the tensor-op routes (torus and sphere-grid twin).
_GRID_CHUNK_BYTES = 4 << 20


def _auto_backend(xs: Sequence[torch.Tensor], lmaxes: tuple[int, ...], lmax_out: int) -> str:
    """The route ``backend="auto"`` takes (see :func:`gaunt_product`)."""
    from tensormol._ext import ext_status

    top = max(*lmaxes, min(lmax_out, sum(lmaxes)))
    if (xs[0].device.type == "cpu" and xs[0].dtype in (torch.float32, torch.float64)
            and ext_status().loaded and not torch.jit.is_tracing()):
        rows = [x[..., 0].numel() for x in xs]
        # A pair with one operand shared along an axis (edge harmonics × channels): the dense
        # route folds the shared operand into the Gaunt tensor; the kernel expands it.
        shared = len(xs) == 2 and min(rows) < max(rows)
        return "dense" if shared and top <= _DENSE_MAX_DEGREE_SHARED_VS_KERNEL else "grid"
    limit = _DENSE_MAX_DEGREE_PAIR if len(lmaxes) == 2 else _DENSE_MAX_DEGREE
    return "dense" if top <= limit else "fourier"


def gaunt_product(*xs: torch.Tensor, lmax_out: int,
                  normalization: str = "integral", backend: str = "auto") -> torch.Tensor:
    """Gaunt tensor product of any number of SH-coefficient tensors, through the torus Fourier
    basis.

    Parameters
    ----------
    *xs : torch.Tensor
        Each (..., (L_i+1)²), float32 or float64: real SH coefficients of degrees 0..L_i in
        e3nn's basis and ordering; leading dimensions broadcast against each other.
    lmax_out : int
        Highest output degree. Degrees above ``sum(L_i)`` are zero.
    normalization : str
        The SH normalization the coefficients refer to: "integral" (orthonormal, default),
        "component" or "norm" (as in ``tensormol.so3.spherical_harmonics``).
    backend : str
        "grid" (O(L³): Gauss–Legendre × equispaced sphere grid, one fused compiled kernel per
        row tile when the extension is loaded, its torch twin otherwise; see
        ``tensormol.ops._gaunt_grid``), "fourier" (O(L³): the torus 2D-Fourier route of Luo et
        al., tensor ops), "dense" (contraction with the Gaunt coefficients,
        :func:`gaunt_product_dense`; O(L⁶) but few, large GEMMs) or "auto" (default). "auto"
        takes "grid" on the CPU once the compiled extension is loaded
        (``tensormol._ext.load_extension()``), except "dense" for a pair with a shared operand
        and degrees ≤ 3; without it, "dense" when every degree involved is ≤ 4 for two inputs,
        ≤ 3 for more, else "fourier". All routes are exact; they agree to rounding.

    Returns
    -------
    torch.Tensor
        (..., (lmax_out+1)²), dtype of the inputs: coefficients z with
        ``Σ z_lm Y_lm(ω) = Π_i f_i(ω)`` up to degree ``lmax_out`` (exact when
        ``lmax_out ≥ sum(L_i)``), ``f_i(ω) = Σ x_i,lm Y_lm(ω)``.

    Notes
    -----
    Data flow, with the batch Z = prod(leading dims) kept as the last (GEMM-friendly) axis:
    SH k-blocks → (θ samples × φ half spectrum) by one batched matmul per input → φ samples by a
    second matmul → pointwise product of all inputs on the torus grid → φ half spectrum →
    exact θ integral per k-block. The θ-direction DFTs are folded into the precomputed block
    matrices: with at most 2·ΣL+1 θ samples a GEMM beats a batched small FFT, on CPU and GPU.
    """
    if not xs:
        raise ValueError("gaunt_product needs at least one input tensor")
    check_int_ge(lmax_out, "lmax_out", 0)
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    lmaxes = tuple(_lmax_of(x, f"xs[{i}]") for i, x in enumerate(xs))
    dtype = xs[0].dtype
    device = xs[0].device
    if any(x.dtype != dtype or x.device != device for x in xs):
        raise TypeError("all inputs of gaunt_product must share dtype and device")
    if backend == "auto":
        backend = _auto_backend(xs, lmaxes, lmax_out)
    if backend == "dense":
        return _dense_route(xs, lmaxes, lmax_out, normalization)
    batch_shape = _broadcast_shape([tuple(x.shape[:-1]) for x in xs])
    if backend == "grid":
        from ._gaunt_grid import gaunt_product_grid

        return gaunt_product_grid(xs, lmaxes, lmax_out, batch_shape, normalization)
    # Degrees above sum(L_i) are exactly zero: compute up to l_eff and pad.
    l_eff = min(lmax_out, sum(lmaxes))
    n_theta, n_phi, analysis, phi_anal, (index_o, valid, proj) = _device_tables(
        lmaxes, l_eff, dtype, device)
    rows = max(64, _GRID_CHUNK_BYTES // (n_theta * n_phi * xs[0].element_size()))
    n_rows = math.prod(batch_shape)
    if (n_rows > rows and not torch.jit.is_tracing()
            and all(tuple(x.shape[:-1]) == tuple(batch_shape) for x in xs)):
        # Row blocks keep every grid-sized temporary under a few MiB: they stay in cache and
        # in malloc's heap (large blocks are mapped and unmapped, i.e. page-faulted, per call).
        flat = [x.reshape(n_rows, x.shape[-1]) for x in xs]
        out = torch.cat([gaunt_product(*(f[r:r + rows] for f in flat), lmax_out=lmax_out,
                                       normalization=normalization, backend="fourier")
                         for r in range(0, n_rows, rows)])
        return out.reshape(*batch_shape, (lmax_out + 1) ** 2)
    grid = None
    for x, L, (index, P, synth) in zip(xs, lmaxes, analysis):
        scale = _degree_scale(L, normalization)
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
    out_scale = _degree_scale(lmax_out, normalization)
    if out_scale is not None:
        # z in the chosen basis: Y^norm = s Y^int, so z^norm = z^int / s.
        out = out / out_scale.to(dtype=dtype, device=device)
    return out.reshape(*batch_shape, (lmax_out + 1) ** 2)


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
    shape = _broadcast_shape([tuple(x.shape[:-1]), tuple(y.shape[:-1])])
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


def _dense_route(xs: Sequence[torch.Tensor], lmaxes: Sequence[int], lmax_out: int,
                 normalization: str) -> torch.Tensor:
    """The ``backend="dense"`` route of :func:`gaunt_product`: chained pair contractions whose
    intermediates keep only the degrees that can still reach ``lmax_out``."""
    dtype, device = xs[0].dtype, xs[0].device
    scaled = []
    for x, L in zip(xs, lmaxes):
        s = _degree_scale(L, normalization)
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
    s = _degree_scale(lmax_out, normalization)
    return acc if s is None else acc / s.to(dtype=dtype, device=device)


def gaunt_product_dense(*xs: torch.Tensor, lmax_out: int,
                        normalization: str = "integral") -> torch.Tensor:
    """Reference twin of :func:`gaunt_product`: contraction with the Gaunt coefficients.

    Products of more than two inputs are chained with untruncated intermediates (degree
    ``L_1 + L_2``, ...), which is exact. Cost O(L⁶) per pair; for tests and small degrees.
    """
    if not xs:
        raise ValueError("gaunt_product_dense needs at least one input tensor")
    check_int_ge(lmax_out, "lmax_out", 0)
    lmaxes = [_lmax_of(x, f"xs[{i}]") for i, x in enumerate(xs)]
    dtype, device = xs[0].dtype, xs[0].device
    scaled = []
    for x, L in zip(xs, lmaxes):
        s = _degree_scale(L, normalization)
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
    s = _degree_scale(lmax_out, normalization)
    return acc if s is None else acc / s.to(dtype=dtype, device=device)
