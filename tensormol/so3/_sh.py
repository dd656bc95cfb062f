r"""Real spherical harmonics in e3nn's basis, computed by a vectorized Cartesian recurrence.

Basis (identical to ``e3nn.o3.spherical_harmonics``): for an input ``v = (v0, v1, v2)`` set
``X = v2, Y = v0, Z = v1`` (e3nn's ``y`` axis is the polar axis). Then for ``m = -l..l`` (output
index ``l + m`` inside block ``l``, blocks concatenated in the order asked)

.. math::

    Y_{l m}(v) = c_l\, s_m \sqrt{\tfrac{(l-|m|)!}{(l+|m|)!}}\; \tilde P_l^{|m|}(Z, r^2)\;
    \begin{cases} \operatorname{Im}(X + iY)^{|m|} & m < 0 \\ 1 & m = 0 \\
    \operatorname{Re}(X + iY)^{m} & m > 0 \end{cases}

with ``s_0 = 1``, ``s_m = sqrt 2``, no Condon-Shortley phase, ``\tilde P_l^m(Z, r^2) =
r^{l-m} (d^m P_l / dt^m)(Z / r)`` (a homogeneous polynomial, so the harmonics are homogeneous
polynomials of degree ``l`` in ``v``) and ``c_l`` set by ``normalization``:
``"integral"`` ``sqrt((2l+1)/(4 pi))`` (orthonormal on the sphere), ``"component"``
``sqrt(2l+1)`` (``|Y_l|^2 = 2l+1`` on the sphere), ``"norm"`` ``1`` (``|Y_l| = 1``).

Algorithm: the normalized ``A_l^m = K_lm \tilde P_l^m`` are built degree by degree with the
first-order relations (derivatives of Bonnet's recurrence, homogenized)

.. math::

    \tilde P_{l+1}^m = Z \tilde P_l^m + (l+m) \tilde P_l^{m-1} \quad (m \ge 1), \qquad
    \tilde P_{l+1}^0 = Z \tilde P_l^0 - \frac{X^2+Y^2}{l+1} \tilde P_l^1 ,

a few in-place tensor ops per degree over the whole ``m`` axis, with the normalization ``K_lm``
folded into the coefficients so values stay O(1). (The usual three-term recurrence in ``l`` is as
fast but loses ~4x more float32 accuracy at ``l = 10`` near the poles; this form matches e3nn's
float32 error.) The powers ``(X + iY)^m`` come from the complex product recurrence. One gather
and one product per degree place everything in e3nn's order. Work happens feature-major (rows of
``n`` points: what PyTorch's CPU kernels vectorize) and is transposed once at the end.

Derivatives: the forward runs inside a custom ``autograd.Function`` without recording a graph;
its backward uses ``d Y^l / d v_k = G_k^l Y^{l-1}`` (each column of ``G`` has at most two
nonzeros: one sparse matrix product), written with differentiable ops on the saved output, so
double backward (forces in training) works. Coefficients and derivative tables are built once per
``(lmax, normalization, dtype, device)`` and cached. Slow twins for tests:
:func:`spherical_harmonics_reference` (closed form) and :func:`_sh_rows_autograd` (the same
recurrence in plain autograd ops).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch

from tensormol._ext import Kernel

from ._irreps import Irreps

__all__ = [
    "spherical_harmonics", "SphericalHarmonics", "sh_irreps", "degree_index",
    "spherical_harmonics_reference",
]

_NORMALIZATIONS = ("integral", "component", "norm")
# Same epsilon as torch.nn.functional.normalize (what e3nn uses), so zero vectors agree.
_NORMALIZE_EPS = 1e-12


def _norm_factor(l: int, normalization: str) -> float:  # noqa: E741
    if normalization == "integral":
        return math.sqrt((2 * l + 1) / (4 * math.pi))
    if normalization == "component":
        return math.sqrt(2 * l + 1)
    return 1.0


def _parse_ls(l: Any) -> tuple[tuple[int, ...], Irreps]:
    """Degrees asked for, and the output irreps (``1x l`` each, e3nn's parity rules)."""
    if isinstance(l, bool):
        raise TypeError(f"l must be an int, a list of ints, or irreps like '0e+1o+2e', got {l!r}")
    if isinstance(l, int) or _is_np_int(l):
        ls = (int(l),)
        if ls[0] < 0:
            raise ValueError(f"l must be >= 0, got {l}")
        return ls, Irreps([(1, (ls[0], (-1) ** ls[0]))])
    if isinstance(l, (str, Irreps)):
        irreps = Irreps(l)
        if len(irreps) == 0 or irreps.num_irreps == 0:
            raise ValueError(f"irreps {str(l)!r} for spherical harmonics is empty")
        vector = all(ir.p == (-1) ** ir.l for _, ir in irreps)
        pseudo = all(ir.p == 1 for _, ir in irreps)
        if not (vector or pseudo):
            raise ValueError(
                f"irreps {str(l)!r} cannot be spherical harmonics: every degree l must have parity "
                "(-1)^l (harmonics of a vector, e.g. '0e+1o+2e') or every parity must be even "
                "(harmonics of a pseudovector, e.g. '0e+1e+2e')"
            )
        ls = tuple(ir.l for mul, ir in irreps for _ in range(mul))
        return ls, Irreps([(1, ir) for mul, ir in irreps for _ in range(mul)]).simplify()
    if isinstance(l, Sequence):
        if len(l) == 0:
            raise ValueError("l is an empty list: ask for at least one degree")
        ls = []
        for item in l:
            if isinstance(item, bool) or not (isinstance(item, int) or _is_np_int(item)):
                raise TypeError(f"l must be a list of ints, got element {item!r} in {l!r}")
            if int(item) < 0:
                raise ValueError(f"l must hold degrees >= 0, got {int(item)} in {list(l)!r}")
            ls.append(int(item))
        return tuple(ls), Irreps([(1, (d, (-1) ** d)) for d in ls]).simplify()
    raise TypeError(f"l must be an int, a list of ints, or irreps like '0e+1o+2e', got {l!r}")


def _is_np_int(x: Any) -> bool:
    try:
        import numpy as np

        return isinstance(x, np.integer)
    except ImportError:  # pragma: no cover
        return False


def sh_irreps(l: Any) -> Irreps:
    """Output irreps of ``spherical_harmonics(l, ...)``: ``[0, 1, 2]`` -> ``1x0e+1x1o+1x2e``."""
    return _parse_ls(l)[1]


def degree_index(lmax: int) -> torch.Tensor:
    """Degree ``l`` of each of the ``(lmax + 1)**2`` components of degrees ``0..lmax`` stacked in
    order (``[0, 1, 1, 1, 2, ...]``): (``(lmax + 1)**2``,) int64, for per-degree weights.

    Raises
    ------
    ValueError
        If ``lmax`` is not an integer >= 0.
    """
    if isinstance(lmax, bool) or not isinstance(lmax, int) or lmax < 0:
        raise ValueError(f"lmax must be an integer >= 0, got {lmax!r}")
    degrees = torch.arange(lmax + 1)
    return torch.repeat_interleave(degrees, 2 * degrees + 1)


@functools.lru_cache(maxsize=64)
def _recurrence_coefficients(lmax: int, normalization: str
                             ) -> tuple[list[float], list[list[float]], list[list[float]]]:
    """``diag``, ``a``, ``b`` of the recurrence (float64 Python lists; see :class:`_Plan`)."""
    c = [_norm_factor(d, normalization) for d in range(lmax + 1)]

    # K[l][m] = c_l s_m sqrt((l-m)!/(l+m)!) normalizes P~_l^m (s_0 = 1, s_m = sqrt 2).
    def K(d: int, m: int) -> float:
        return c[d] * (math.sqrt(2.0) if m > 0 else 1.0) * math.exp(
            0.5 * (math.lgamma(d - m + 1) - math.lgamma(d + m + 1))
        )

    # diag[m] = A_m^m = K[m][m] (2m-1)!! = c_m s_m sqrt(prod_{k<=m} (2k-1)/(2k))
    diag = []
    prod = 1.0
    for m in range(lmax + 1):
        if m > 0:
            prod *= (2 * m - 1) / (2 * m)
        diag.append(c[m] * (math.sqrt(2.0) if m > 0 else 1.0) * math.sqrt(prod))
    # Step l -> l+1, rows m = 0..l (row l+1 is the constant diag[l+1]):
    #   A_{l+1}[m] = a[l][m] Z A_l[m] + b[l][m] A_l[m-1]              (m >= 1)
    #   A_{l+1}[0] = a[l][0] Z A_l[0] + b[l][0] (X^2 + Y^2) A_l[1]
    # from P~_{l+1}^m = Z P~_l^m + (l+m) P~_l^{m-1} and
    # P~_{l+1}^0 = Z P~_l^0 - (X^2 + Y^2) P~_l^1 / (l+1), with K folded in.
    a, b = [], []
    for d in range(lmax):
        a.append([K(d + 1, m) / K(d, m) for m in range(d + 1)])
        r0 = -K(d + 1, 0) / (K(d, 1) * (d + 1)) if d >= 1 else 0.0
        b.append([r0] + [(d + m) * K(d + 1, m) / K(d, m - 1) for m in range(1, d + 1)])
    return diag, a, b


class _Plan:
    """Coefficient tensors for one ``(lmax, normalization, dtype, device)``, built once.

    Forward: the recurrence of the module docstring. Backward: the exact identity
    ``d Y^l / d v_k = G_k^l Y^{l-1}`` (a derivative of a harmonic homogeneous polynomial is one of
    lower degree), where each column of ``G_k^l`` has at most two nonzeros, so the whole
    vector-Jacobian product is one sparse matrix product, one product and one sum.
    """

    def __init__(self, lmax: int, normalization: str, dtype: torch.dtype,
                 device: torch.device) -> None:
        self.lmax = lmax
        self.dim = (lmax + 1) ** 2
        diag, a, b = _recurrence_coefficients(lmax, normalization)

        def t(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float64).to(dtype=dtype, device=device)

        self.diag = diag
        self.a = [t(x)[:, None] for x in a]
        self.b = [t(x)[:, None] for x in b]
        self.r0 = [x[0] for x in b]
        # Row m of block l in e3nn's order (m = -l..l) reads A_l[|m|]; the trig rows are stored
        # as T[m + lmax] = Im (X+iY)^|m| (m < 0), 1 (m = 0), Re (X+iY)^m (m > 0).
        self.sym = [torch.tensor([abs(m) for m in range(-d, d + 1)], dtype=torch.long,
                                 device=device) for d in range(lmax + 1)]
        # Backward: h = G^T grad as one sparse (3 lmax^2, dim) matrix product.
        self.gt = None
        if lmax == 0:
            return
        idx, coef = _gradient_tables64(lmax, normalization)
        m = lmax**2
        rows = torch.arange(3 * m).view(3, 1, m).expand(3, 2, m)
        keep = coef != 0
        self.gt = torch.sparse_coo_tensor(
            torch.stack([rows[keep], idx[keep]]), coef[keep], (3 * m, self.dim),
            check_invariants=True,
        ).coalesce().to(dtype=dtype, device=device)


# Built eagerly even under torch.compile: Dynamo would otherwise trace through the cache into the
# table derivation (which itself runs autograd).
@torch.compiler.disable
@functools.lru_cache(maxsize=64)
def _plan(lmax: int, normalization: str, dtype: torch.dtype, device: torch.device) -> _Plan:
    return _Plan(lmax, normalization, dtype, device)


@functools.lru_cache(maxsize=16)
def _gradient_tables64(lmax: int, normalization: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse ``G_k^l`` as tables: ``dY/dv_k`` contracted with a cotangent ``g`` is
    ``sum_j Y_j sum_t coef[k, t, j] g[idx[k, t, j]]`` over the first ``lmax^2`` harmonics ``j``.

    ``G`` comes from least squares on exact derivatives (autograd through the differentiable twin
    :func:`_sh_rows_autograd`) at well-spread unit points, in float64; structural zeros are then
    dropped. Shapes ``(3, 2, lmax^2)``.
    """
    from ._wigner import _fibonacci_sphere  # well-conditioned sample points

    n = max(lmax, 1) ** 2
    idx = torch.zeros(3, 2, n, dtype=torch.long)
    coef = torch.zeros(3, 2, n, dtype=torch.float64)
    if lmax == 0:
        return idx, coef
    pts = _fibonacci_sphere(4 * lmax + 4).t().contiguous().requires_grad_(True)  # (3, K)
    plan = _AutogradPlan(lmax, normalization)
    with torch.enable_grad():
        rows = _sh_rows_autograd(plan, pts)  # (dim, K)
        # Each point's harmonics depend on that point only, so dY/dv_k at every point is one
        # Jacobian-vector product: the double-backward trick, 1 + 3 backward passes.
        w = torch.zeros_like(rows, requires_grad=True)
        (vjp,) = torch.autograd.grad(rows, pts, grad_outputs=w, create_graph=True)
        jac = [torch.autograd.grad(vjp[k].sum(), w, retain_graph=True)[0] for k in range(3)]
    Y = rows.detach().t()  # (K, dim)
    J = torch.stack(jac, dim=-1)  # (dim, K, 3): d Y_i / d v_k at each point
    for d in range(1, lmax + 1):
        lo, hi = (d - 1) ** 2, d * d  # block l-1 (columns j)
        blk = slice(d * d, (d + 1) ** 2)  # block l (rows i)
        pinv = torch.linalg.pinv(Y[:, lo:hi])  # (2l-1, K); Y_{l-1} samples are well conditioned
        for k in range(3):
            # J_l[:, :, k]^T = Y_{l-1} G^T  ->  G (2l+1, 2l-1)
            G = (pinv @ J[blk, :, k].t()).t()
            G = torch.where(G.abs() > 1e-9 * G.abs().max(), G, torch.zeros_like(G))
            for j in range(hi - lo):
                nz = G[:, j].nonzero().flatten().tolist()
                if len(nz) > 2:  # pragma: no cover - structural, checked by tests
                    raise AssertionError(f"harmonic derivative table is not 2-sparse at l={d}")
                for t_, i in enumerate(nz):
                    idx[k, t_, lo + j] = d * d + i
                    coef[k, t_, lo + j] = G[i, j]
    return idx, coef


def _powers_rows(X: torch.Tensor, Y: torch.Tensor, lmax: int, out: torch.Tensor) -> None:
    """Fill ``out`` (shape ``(2 lmax + 1, n)``) with ``T[m + lmax]``: Im/1/Re of ``(X+iY)^|m|``."""
    L = lmax
    out[L].fill_(1.0)
    out[L + 1].copy_(X)
    out[L - 1].copy_(Y)
    for m in range(2, L + 1):
        c, s = out[L + m - 1], out[L - m + 1]
        torch.mul(X, c, out=out[L + m]).addcmul_(Y, s, value=-1.0)
        torch.mul(Y, c, out=out[L - m]).addcmul_(X, s)


def _sh_forward_rows(plan: _Plan, v: torch.Tensor) -> torch.Tensor:
    """All harmonics up to ``plan.lmax`` of points given as rows ``v`` (``(3, n)``): ``(dim, n)``.

    Runs without autograd (the backward is analytic), in place where it can, feature-major: every
    op works on whole rows of ``n`` values, which is what PyTorch's CPU kernels vectorize.
    """
    n = v.shape[1]
    L = plan.lmax
    out = v.new_empty(plan.dim, n)
    out[0].fill_(plan.diag[0])
    v = v.contiguous()
    Y, Z, X = v[0], v[1], v[2]
    T = v.new_empty(2 * L + 1, n)
    _powers_rows(X, Y, L, T)
    rho2 = torch.addcmul(X * X, Y, Y) if L >= 2 else None
    A = v.new_full((1, n), plan.diag[0])
    for d in range(L):
        new = v.new_empty(d + 2, n)
        torch.mul(A, plan.a[d], out=new[: d + 1]).mul_(Z)
        if d >= 1:
            new[1 : d + 1].addcmul_(A[:d], plan.b[d][1:])
            new[0].addcmul_(A[1], rho2, value=plan.r0[d])
        new[d + 1].fill_(plan.diag[d + 1])
        A = new
        l = d + 1  # noqa: E741
        blk = out[l * l : (l + 1) ** 2]
        torch.mul(A.index_select(0, plan.sym[l]), T[L - l : L + l + 1], out=blk)
    return out


class _SphericalHarmonicsFn(torch.autograd.Function):
    """Rows ``v (3, n) -> Y (dim, n)``, with an analytic backward that is itself differentiable."""

    @staticmethod
    def forward(ctx: Any, v: torch.Tensor, plan: _Plan) -> torch.Tensor:  # type: ignore[override]
        Y = _sh_forward_rows(plan, v)
        ctx.plan = plan
        ctx.save_for_backward(Y)
        return Y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:  # type: ignore[override]
        if not ctx.needs_input_grad[0]:
            return None, None
        (Y,) = ctx.saved_tensors
        plan = ctx.plan
        m = plan.lmax**2
        # grad_k = sum_j (G_k^T grad)_j Y_j, as differentiable ops on (grad, Y). Y is this
        # function's output, so a second backward flows through it (and back here): double
        # backward comes for free. G is ~2-sparse per column: one sparse product, then rows of n
        # values keep every op vectorized. The cotangent usually arrives as a transposed view
        # (the caller's output is points-major): one explicit copy makes the product streaming.
        h = torch.sparse.mm(plan.gt, grad.contiguous())  # (3 m, n)
        return (h.view(3, m, -1) * Y[:m]).sum(dim=1), None


def _sh_all_rows(lmax: int, v: torch.Tensor, normalization: str) -> torch.Tensor:
    """All harmonics up to ``lmax`` of points given as rows ``v`` (``(3, n)``): ``(dim, n)``."""
    if lmax == 0:  # a constant, like e3nn (no graph to x)
        return v.new_full((1, v.shape[1]), _plan(0, normalization, v.dtype, v.device).diag[0])
    return SPHERICAL_HARMONICS(lmax, v, normalization)


def _sh_rows_fused(lmax: int, v: torch.Tensor, normalization: str) -> torch.Tensor:
    return _SphericalHarmonicsFn.apply(v, _plan(lmax, normalization, v.dtype, v.device))


def _sh_rows_traceable(lmax: int, v: torch.Tensor, normalization: str) -> torch.Tensor:
    return _sh_rows_autograd(_AutogradPlan(lmax, normalization), v)


# A traced graph cannot hold a custom autograd Function: it records the plain-op twin.
SPHERICAL_HARMONICS = Kernel("spherical_harmonics", traced="autograd")
SPHERICAL_HARMONICS.register("fused", _sh_rows_fused, doc="autograd Function, sparse backward")
SPHERICAL_HARMONICS.register("autograd", _sh_rows_traceable, traceable=True,
                             doc="plain-op recurrence")


def _sh_all(lmax: int, u: torch.Tensor, normalization: str) -> torch.Tensor:
    """All harmonics up to ``lmax`` of points ``u`` (``(n, 3)``): ``(n, dim)``, contiguous."""
    return _sh_all_rows(lmax, u.t(), normalization).t().contiguous()


class _AutogradPlan:
    """Coefficients of the plain-op twin: ``diag`` as floats, ``a``, ``b`` as flat float64
    tensors (step ``d`` holds ``d+1`` values from ``d(d+1)/2``). Tensors, not float lists:
    TorchScript turns a float list into a tensor through float32, losing digits."""

    def __init__(self, lmax: int, normalization: str) -> None:
        diag, a, b = _recurrence_coefficients(lmax, normalization)
        self.lmax = lmax
        self.diag = list(diag)
        # a trailing unused 0.0 keeps the tensors non-empty for lmax = 0
        self.a = torch.tensor([c for row in a for c in row] + [0.0], dtype=torch.float64)
        self.b = torch.tensor([c for row in b for c in row] + [0.0], dtype=torch.float64)


def _sh_rows_plain(v: torch.Tensor, lmax: int, diag: list[float], a: torch.Tensor,
                   b: torch.Tensor) -> torch.Tensor:
    """The recurrence in plain, out-of-place autograd ops (TorchScript-compatible).

    Rows ``v`` (``(3, n)``) -> ``(dim, n)``. The differentiable twin of
    :class:`_SphericalHarmonicsFn`: slower, but its derivatives come from autograd, so it derives
    the backward tables, tests the analytic backward, and backs :class:`SphericalHarmonics` under
    ``torch.jit.script`` (which cannot compile a custom autograd Function).
    """
    n = v.shape[1]
    Y, Z, X = v[0], v[1], v[2]
    a = a.to(dtype=v.dtype, device=v.device)
    b = b.to(dtype=v.dtype, device=v.device)
    rho2 = X * X + Y * Y
    C = [torch.ones_like(X)]
    S = [torch.zeros_like(X)]
    for _ in range(lmax):
        c, s = C[-1], S[-1]
        C.append(X * c - Y * s)
        S.append(Y * c + X * s)
    A = torch.full((1, n), diag[0], dtype=v.dtype, device=v.device)
    blocks = [A]
    for d in range(lmax):
        o0, o1 = d * (d + 1) // 2, (d + 1) * (d + 2) // 2
        head = A * a[o0:o1].unsqueeze(1) * Z
        if d >= 1:
            head = head + torch.cat([(A[1] * rho2).unsqueeze(0), A[:d]]) * b[o0:o1].unsqueeze(1)
        const = torch.full((1, n), diag[d + 1], dtype=v.dtype, device=v.device)
        A = torch.cat([head, const])
        l = d + 1  # noqa: E741
        rows = []
        for m in range(-l, l + 1):
            trig = S[-m] if m < 0 else C[m]
            rows.append(A[abs(m)] * trig)
        blocks.append(torch.stack(rows))
    return torch.cat(blocks)


def _sh_rows_autograd(plan: _AutogradPlan, v: torch.Tensor) -> torch.Tensor:
    """:func:`_sh_rows_plain` with the coefficients of ``plan``."""
    return _sh_rows_plain(v, plan.lmax, plan.diag, plan.a, plan.b)


def _check_input(x: Any, validate: bool) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape (..., 3), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor of shape (..., 3), got dtype {x.dtype}")
    if x.dim() == 0 or x.shape[-1] != 3:
        raise ValueError(
            f"x must have shape (..., 3) (last dimension x, y, z), got {tuple(x.shape)}"
        )
    # One reduction: a NaN or inf anywhere makes the sum non-finite (an overflow of the sum is a
    # false alarm that the exact check below clears).
    if validate and x.numel() and not bool(torch.isfinite(x.sum())) and not bool(
        torch.isfinite(x).all()
    ):
        flat = x.detach().reshape(-1, 3)
        first = int((~torch.isfinite(flat)).any(dim=-1).nonzero()[0])
        raise ValueError(
            f"x contains NaN or infinite values (first bad point at flat index {first} of "
            f"{flat.shape[0]}, shape {tuple(x.shape)})"
        )
    return x


def spherical_harmonics(l: Any, x: torch.Tensor, normalize: bool = True,
                        normalization: str = "integral", *, validate: bool = True) -> torch.Tensor:
    r"""Real spherical harmonics, numerically identical to ``e3nn.o3.spherical_harmonics``.

    Parameters
    ----------
    l : int, list of int, str or Irreps
        Degrees, concatenated in this order: ``2``, ``[0, 1, 2]``, ``"0e + 1o + 2e"`` (parity
        ``(-1)^l``, or all even for a pseudovector input), multiplicities allowed.
    x : torch.Tensor
        Points, shape ``(..., 3)``, any floating dtype (the output has the same dtype and device).
    normalize : bool
        Project ``x`` on the unit sphere first (``x / max(|x|, 1e-12)``, as e3nn). Without it the
        harmonics are homogeneous polynomials of degree ``l`` in ``x``.
    normalization : {"integral", "component", "norm"}
        ``"integral"``: orthonormal on the sphere; ``"component"``: ``|Y^l|^2 = 2l+1``;
        ``"norm"``: ``|Y^l| = 1`` (on the unit sphere). Independent of ``normalize``.
    validate : bool
        Check ``x`` for NaN/inf (one reduction; disable inside tight, already-checked loops).

    Returns
    -------
    torch.Tensor
        Shape ``(..., sum(2l+1))``.

    Raises
    ------
    ValueError
        If ``x`` has a last dimension other than 3, holds NaN/inf, or ``l``/``normalization`` is
        invalid.
    """
    ls, _ = _parse_ls(l)
    if normalization not in _NORMALIZATIONS:
        raise ValueError(
            f"normalization must be one of {_NORMALIZATIONS}, got {normalization!r}"
        )
    x = _check_input(x, validate)
    batch = x.shape[:-1]
    # Rows x, y, z (one small copy): every op below then runs along the n points.
    v = x.reshape(-1, 3).t().contiguous()
    if normalize:
        # x / max(|x|, eps), like e3nn's F.normalize; clamping r^2 before the root keeps the
        # gradient finite (zero) at x = 0. (Not F.normalize itself: a norm over the leading axis
        # of this row layout hits a slow reduction kernel, ~40x slower than these three ops.)
        v = v * torch.rsqrt((v * v).sum(dim=0).clamp_min(_NORMALIZE_EPS**2))
    lmax = max(ls)
    Y = _sh_all_rows(lmax, v, normalization)
    if list(ls) != list(range(lmax + 1)):
        Y = torch.cat([Y[d * d:(d + 1) ** 2] for d in ls])
    return Y.t().contiguous().reshape(*batch, Y.shape[0])


class SphericalHarmonics(torch.nn.Module):
    r"""Module form of :func:`spherical_harmonics` (same parameters and output).

    Eager mode runs the fast path. Under ``torch.jit.script`` (TorchScript export, e.g. for
    openmm-torch) the module runs the plain-op twin of the same recurrence: same values and
    derivatives (double backward included), slower, and input checks limited to shape and NaN.

    Parameters
    ----------
    irreps_out : int, list of int, str or Irreps
        Degrees of the output (see :func:`spherical_harmonics`).
    normalize : bool
        Project inputs on the unit sphere first.
    normalization : {"integral", "component", "norm"}
    validate : bool
        Check inputs for NaN/inf.

    Attributes
    ----------
    irreps_out : Irreps
        Output irreps, e.g. ``1x0e+1x1o+1x2e``.
    """

    # TorchScript infers the attribute types from their values (PEP 563 string annotations are
    # not resolved on module classes); irreps_out is Python-only metadata.
    __jit_ignored_attributes__ = ["irreps_out"]

    def __init__(self, irreps_out: Any, normalize: bool = True, normalization: str = "integral",
                 *, validate: bool = True) -> None:
        super().__init__()
        ls, self.irreps_out = _parse_ls(irreps_out)
        if normalization not in _NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {_NORMALIZATIONS}, got {normalization!r}"
            )
        self.normalize = bool(normalize)
        self.normalization = normalization
        self.validate = bool(validate)
        self._ls = list(ls)
        self._lmax = max(ls)
        plan = _AutogradPlan(self._lmax, normalization)
        # Plain float64 tensor attributes (not buffers): outside the state dict and untouched by
        # module.to(dtype), so float64 inputs always get float64 coefficients.
        self._diag, self._a, self._b = plan.diag, plan.a, plan.b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Harmonics of ``x`` (shape ``(..., 3)``), shape ``(..., irreps_out.dim)``."""
        if torch.jit.is_scripting():
            return self._forward_plain(x)
        return self._forward_fast(x)

    @torch.jit.unused
    def _forward_fast(self, x: torch.Tensor) -> torch.Tensor:
        return spherical_harmonics(self._ls, x, self.normalize, self.normalization,
                                   validate=self.validate)

    def _forward_plain(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 0 or x.shape[-1] != 3:
            raise ValueError("x must have shape (..., 3) (last dimension x, y, z)")
        if self.validate and bool(torch.isnan(x).any() | torch.isinf(x).any()):
            raise ValueError("x contains NaN or infinite values")
        batch = x.shape[:-1]
        v = x.reshape(-1, 3).t()
        if self.normalize:
            v = v * torch.rsqrt((v * v).sum(dim=0).clamp_min(1e-24))  # eps = 1e-12, squared
        Y = _sh_rows_plain(v, self._lmax, self._diag, self._a, self._b)
        parts = [Y[d * d:(d + 1) * (d + 1)] for d in self._ls]
        Y = torch.cat(parts)
        out_shape = list(batch)
        out_shape.append(Y.shape[0])
        return Y.t().reshape(out_shape)

    def extra_repr(self) -> str:
        return (f"irreps_out={self.irreps_out}, normalize={self.normalize}, "
                f"normalization={self.normalization!r}")


# ---------------------------------------------------------------------------------------------
# Slow, obviously-correct twin: the closed-form Cartesian expression, term by term.
# ---------------------------------------------------------------------------------------------
def spherical_harmonics_reference(ls: Sequence[int], x: torch.Tensor, normalize: bool = True,
                                   normalization: str = "integral") -> torch.Tensor:
    r"""Reference implementation (Python loops over l, m and the closed-form sum over k).

    ``Pi_l^m(Z, r^2) = sqrt((l-m)!/(l+m)!) sum_k (-1)^k 2^-l C(l,k) C(2l-2k,l)
    (l-2k)!/(l-2k-m)! r^{2k} Z^{l-2k-m}`` (Wikipedia, "Spherical harmonics", real form in
    Cartesian coordinates), times ``Re/Im (X + iY)^|m|``. Exact integer coefficients; meant for
    tests at moderate ``l`` (the alternating sum cancels for large ``l``).
    """
    v = x.reshape(-1, 3)
    if normalize:
        v = v / v.norm(dim=-1, keepdim=True).clamp_min(_NORMALIZE_EPS)
    X, Y, Z = v[:, 2], v[:, 0], v[:, 1]
    r2 = (v * v).sum(-1)
    out = []
    for d in ls:
        for m in range(-d, d + 1):
            am = abs(m)
            pi = torch.zeros_like(Z)
            for k in range((d - am) // 2 + 1):
                coef = (
                    (-1) ** k * math.comb(d, k) * math.comb(2 * d - 2 * k, d)
                    * math.factorial(d - 2 * k) // math.factorial(d - 2 * k - am)
                ) / 2.0**d
                pi = pi + coef * r2**k * Z ** (d - 2 * k - am)
            pi = pi * math.sqrt(math.factorial(d - am) / math.factorial(d + am))
            re = torch.ones_like(X)
            im = torch.zeros_like(X)
            for _ in range(am):
                re, im = re * X - im * Y, re * Y + im * X
            ang = im if m < 0 else (re if m > 0 else torch.ones_like(X))
            scale = _norm_factor(d, normalization) * (math.sqrt(2.0) if m != 0 else 1.0)
            out.append(scale * pi * ang)
    return torch.stack(out, dim=-1).reshape(*x.shape[:-1], -1)
