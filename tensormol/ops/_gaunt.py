"""The Gaunt tensor product: public entry point, input checks and the choice of route.

A feature vector of real spherical-harmonic coefficients ``x_lm`` (l ≤ L) is a function on the
sphere, ``f(ω) = Σ x_lm Y_lm(ω)``. The Gaunt tensor product of ``x`` and ``y`` is the projection of
the pointwise product ``f_x f_y`` back onto the spherical harmonics,

    z_{l3 m3} = Σ x_{l1 m1} y_{l2 m2} G^{l1 l2 l3}_{m1 m2 m3},
    G = ∫ Y_{l1 m1} Y_{l2 m2} Y_{l3 m3} dΩ,

so only paths with l1 + l2 + l3 even exist (the inputs are treated as functions, i.e. degree l
has parity (-1)^l: irreps "0e+1o+2e+3o+..."). Odd paths need Clebsch–Gordan products
(``tensormol.ops.cg_tensor_product``). Any number of inputs multiply in one pass.

The routes, one module each, compute the same product exactly (they agree to rounding):

* "dense" (``_gaunt_dense``): contraction with the Gaunt coefficients as GEMMs; O(L⁶) but the
  fastest at small degrees; its einsum form :func:`gaunt_product_dense` is the reference twin;
* "fourier" (``_gaunt_fourier``): the torus 2D-Fourier route of Luo et al. (ICLR 2024), O(L³),
  tensor ops;
* "grid" and "cpp" (``_gaunt_grid``): a Gauss–Legendre × equispaced sphere grid, O(L³), as
  tensor ops ("grid") or one fused compiled kernel per row tile ("cpp").

Which route runs is decided by the kernel registry (:data:`GAUNT_PRODUCT`, rule
:func:`_auto_rule`), once per module (:func:`resolve_gaunt_backend`) and logged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from tensormol._ext import Kernel, Resolution, ext_status, extension_backend
from tensormol._validate import check_int_ge

from ._gaunt_basis import SH_NORMALIZATIONS, broadcast_shape, lmax_of
from ._gaunt_dense import dense_route
from ._gaunt_fourier import fourier_route
from ._gaunt_grid import grid_route

__all__ = ["GAUNT_PRODUCT", "gaunt_product", "resolve_gaunt_backend"]

# Up to these degrees (inputs and output) the dense contraction beats, or ties, the Fourier route
# on CPU (float32, one thread, 256 x 32 rows; forward and forward+backward measured): two inputs
# up to L = 4 (L = 4: forward 19 vs 36 ms, fwd+bwd 71 vs 75 ms), three or more up to L = 3.
_DENSE_MAX_DEGREE = 3
_DENSE_MAX_DEGREE_PAIR = 4
# With the compiled extension loaded, its fused sphere-grid kernel beats the dense contraction
# everywhere (forward and forward+backward, pairs and triples, L = 1..4; 256 x 32 rows, float32,
# 2 threads) except for a pair whose second operand is shared across channels, up to this degree.
_DENSE_MAX_DEGREE_SHARED_VS_KERNEL = 3
_KERNEL_DTYPES = (torch.float32, torch.float64)


def _auto_rule(kernel: Kernel, ctx: dict) -> tuple[str, str, str | None]:
    """``backend="auto"``: the compiled grid kernel when the extension is loaded at resolution
    (for CPU float32/float64 inputs; other inputs run the torch route below), except a pair with
    a shared operand at degree ≤ 3 (the dense route folds that operand into the Gaunt tensor);
    without it, "dense" up to degree 4 for pairs and 3 for more inputs, else "fourier"."""
    lmaxes, lmax_out = ctx["lmaxes"], ctx["lmax_out"]
    shared, dtype = ctx.get("shared", False), ctx.get("dtype", torch.float32)
    top = max(*lmaxes, min(lmax_out, sum(lmaxes)))
    limit = _DENSE_MAX_DEGREE_PAIR if len(lmaxes) == 2 else _DENSE_MAX_DEGREE
    what = f"degrees {tuple(lmaxes)} -> {lmax_out}{', shared operand' if shared else ''}"
    torch_route = "dense" if top <= limit else "fourier"
    torch_why = f"{what}: dense up to degree {limit}, fourier above"
    missing = kernel.backend("cpp").unavailable()
    if missing is not None:
        return torch_route, f"{missing}; {torch_why}", None
    if dtype not in _KERNEL_DTYPES:
        return torch_route, f"the kernel takes float32/float64, not {dtype}; {torch_why}", None
    if shared and len(lmaxes) == 2 and top <= _DENSE_MAX_DEGREE_SHARED_VS_KERNEL:
        return "dense", (f"compiled extension loaded at resolution, but {what}: dense folds "
                         f"the shared operand (faster up to degree "
                         f"{_DENSE_MAX_DEGREE_SHARED_VS_KERNEL})"), None
    return "cpp", f"compiled extension loaded at resolution; {what}", torch_route


def _kernel_supports(device: torch.device, dtype: torch.dtype) -> bool:
    return device.type == "cpu" and dtype in _KERNEL_DTYPES


def _cpp_route(*args):
    return grid_route(*args, impl="cpp")


GAUNT_PRODUCT = Kernel("gaunt_product", traced="grid", auto=_auto_rule)
GAUNT_PRODUCT.register("dense", dense_route, traceable=True,
                       doc="contraction with the Gaunt coefficients (GEMMs)")
GAUNT_PRODUCT.register("fourier", fourier_route, traceable=True,
                       doc="torus 2D-Fourier route, tensor ops")
GAUNT_PRODUCT.register("grid", grid_route, traceable=True, doc="sphere-grid route, tensor ops")
GAUNT_PRODUCT.register("cpp", _cpp_route, supports=_kernel_supports, **extension_backend(),
                       doc="sphere-grid route, fused compiled kernel, CPU float32/float64")


def resolve_gaunt_backend(lmax_in: Sequence[int], lmax_out: int, *, shared: bool = False,
                          dtype: torch.dtype = torch.float32,
                          backend: str | Resolution = "auto") -> Resolution:
    """Resolve (and log) the route of a Gaunt product, for a module to store at construction.

    Parameters
    ----------
    lmax_in : sequence of int
        Degrees of the inputs.
    lmax_out : int
        Output degree.
    shared : bool
        For a pair: one operand is broadcast along a batch axis (e.g. edge harmonics shared by
        all channels).
    dtype : torch.dtype
        Dtype of the inputs.
    backend : str or Resolution
        "auto", "dense", "fourier", "grid" or "cpp" (see :func:`gaunt_product`).

    Returns
    -------
    Resolution
        Pass it as ``backend=`` to :func:`gaunt_product`. "auto" uses the compiled kernel only if
        the extension is loaded now; loading it later does not change this resolution.
    """
    ctx = {"lmaxes": tuple(int(v) for v in lmax_in), "lmax_out": int(lmax_out),
           "shared": bool(shared), "dtype": dtype}
    return GAUNT_PRODUCT.resolve(backend, ctx)


def gaunt_product(*xs: torch.Tensor, lmax_out: int, normalization: str = "integral",
                  backend: str | Resolution = "auto") -> torch.Tensor:
    """Gaunt tensor product of any number of SH-coefficient tensors.

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
    backend : str or Resolution
        "dense" (contraction with the Gaunt coefficients as GEMMs, O(L⁶) but fastest at small
        degrees), "fourier" (the torus 2D-Fourier route of Luo et al., O(L³), tensor ops),
        "grid" (Gauss–Legendre × equispaced sphere grid, O(L³), tensor ops), "cpp" (the grid
        route as one fused compiled kernel, CPU float32/float64; loads the extension) or "auto"
        (default; rule in :func:`_auto_rule`: "cpp" when the extension is loaded, except
        "dense" for a pair with a shared operand and degrees ≤ 3; without it, "dense" when every
        degree involved is ≤ 4 for two inputs, ≤ 3 for more, else "fourier"), or a
        :class:`~tensormol._ext.Resolution` from :func:`resolve_gaunt_backend` (what modules
        pass: their choice is fixed at construction). A function call with "auto" resolves at
        the call, so it follows the extension being loaded; each distinct resolution is logged
        once on ``tensormol.kernels``. Traced graphs run a tensor-op route.

    Returns
    -------
    torch.Tensor
        (..., (lmax_out+1)²), dtype of the inputs: coefficients z with
        ``Σ z_lm Y_lm(ω) = Π_i f_i(ω)`` up to degree ``lmax_out`` (exact when
        ``lmax_out ≥ sum(L_i)``), ``f_i(ω) = Σ x_i,lm Y_lm(ω)``.
    """
    if not xs:
        raise ValueError("gaunt_product needs at least one input tensor")
    check_int_ge(lmax_out, "lmax_out", 0)
    if normalization not in SH_NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {SH_NORMALIZATIONS}, "
                         f"got {normalization!r}")
    lmaxes = tuple(lmax_of(x, f"xs[{i}]") for i, x in enumerate(xs))
    dtype, device = xs[0].dtype, xs[0].device
    if any(x.dtype != dtype or x.device != device for x in xs):
        raise TypeError("all inputs of gaunt_product must share dtype and device")
    batch_shape = broadcast_shape([tuple(x.shape[:-1]) for x in xs])
    if isinstance(backend, Resolution):
        backend = GAUNT_PRODUCT.resolve(backend)  # checks it is a resolution of this op
    else:
        rows = [math.prod(x.shape[:-1]) for x in xs]
        # A pair with one operand shared along an axis (edge harmonics × channels).
        shared = len(xs) == 2 and min(rows) < max(rows)
        ctx = {"lmaxes": lmaxes, "lmax_out": lmax_out, "shared": shared, "dtype": dtype}
        backend = GAUNT_PRODUCT.resolve_cached(
            backend, (lmaxes, lmax_out, shared, dtype, ext_status().loaded), ctx)
    route = GAUNT_PRODUCT.select(backend, device, dtype)
    return route.fn(xs, lmaxes, lmax_out, batch_shape, normalization)
