r"""Cartesian <-> spherical (irreducible) maps in e3nn's irreps basis.

Every map here is linear and orthonormal (norm preserving), so each inverse is the transpose and
round trips are exact to rounding. The spherical side uses e3nn's real basis, so the results
transform with the (block-diagonal) Wigner matrices of the stated irreps, e.g.
``e3nn.o3.Irreps(ELASTICITY_IRREPS).D_from_matrix(R)``:

* vectors (``..., 3``) <-> ``1x1o``. e3nn (>= 0.5) orders the ``l = 1`` basis as ``(x, y, z)``
  (``Irreps("1o").D_from_matrix(R) == R``), so this map is the identity ordering.
* rank-2 tensors (``..., 3, 3``) <-> ``1x0e+1x1e+1x2e`` (9 numbers): ``0e = tr(X)/sqrt(3)``,
  ``1e_k = eps_ijk X_ij / sqrt(2)`` (axial vector of the antisymmetric part), ``2e`` =
  symmetric traceless part in the basis ``sqrt(5) * wigner_3j(1, 1, 2)``. For ``X = r r^T`` the
  ``2e`` block is a positive multiple of e3nn's ``Y^2(r)``.
* elasticity tensors ``C_ijkl`` (minor and major symmetries, 21 numbers) <-> Mandel 6x6 (Voigt
  order 11, 22, 33, 23, 13, 12 with ``sqrt(2)`` on shear rows/columns) <-> ``2x0e+2x2e+1x4e``.

Irreducible elasticity layout. Write the Mandel matrix in the basis of symmetric 3x3 tensors
adapted to ``0e + 2e`` (rows of :func:`rank2_basis` for ``0e`` and ``2e``):
``K = [[a, b^T], [b, D]]`` with ``a`` a scalar, ``b`` a 5-vector and ``D`` a symmetric 5x5 matrix.
The 21 irreducible coordinates, in e3nn order for ``2x0e+2x2e+1x4e``, are
``[a, y0(D), sqrt(2) b, y2(D), y4(D)]`` with ``y_l(D)_c = sqrt(2l+1) sum_ab C^{22l}_abc D_ab``.
``a`` is ``C_iijj / 3`` (bulk-like), ``y0(D)`` is the isotropic shear-like invariant; an isotropic
tensor has only the two ``0e`` coordinates, a cubic one only ``0e`` and ``4e``.
"""

from __future__ import annotations

import functools
import math

import torch

from tensormol.so3._cg import _wigner_3j_f64

__all__ = [
    "VECTOR_IRREPS",
    "RANK2_IRREPS",
    "ELASTICITY_IRREPS",
    "MANDEL_IRREPS",
    "VOIGT_PAIRS",
    "vector_to_irreps",
    "irreps_to_vector",
    "rank2_basis",
    "rank2_to_irreps",
    "irreps_to_rank2",
    "decompose_rank2",
    "mandel_basis",
    "elasticity_basis",
    "symmetrize_elasticity",
    "elasticity_to_mandel",
    "mandel_to_elasticity",
    "elasticity_to_irreps",
    "irreps_to_elasticity",
    "mandel_to_irreps",
    "irreps_to_mandel",
    "mandel_rotation",
]

VECTOR_IRREPS = "1x1o"
RANK2_IRREPS = "1x0e+1x1e+1x2e"
ELASTICITY_IRREPS = "2x0e+2x2e+1x4e"
#: Irreps of a Mandel (or symmetric 3x3) vector: the 6 symmetric components.
MANDEL_IRREPS = "1x0e+1x2e"
#: Voigt order of the Mandel index pairs.
VOIGT_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))

# Cartesian axis of each e3nn l=1 basis vector: e3nn >= 0.5 uses (x, y, z).
_L1_AXES = (0, 1, 2)


# ----------------------------------------------------------------------------- validation
def _check_trailing(x: object, name: str, trailing: tuple[int, ...]) -> torch.Tensor:
    want = "(..., " + ", ".join(str(s) for s in trailing) + ")"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {want}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < len(trailing) or tuple(x.shape[x.dim() - len(trailing):]) != trailing:
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    return x


def _default_rtol(dtype: torch.dtype) -> float:
    return {torch.float64: 1e-8, torch.float32: 1e-4}.get(dtype, 1e-2)


def _check_symmetric(x: torch.Tensor, sym: torch.Tensor, name: str, what: str,
                     rtol: float | None) -> None:
    """Raise unless ``x`` equals its symmetrisation ``sym`` to ``rtol`` times ``max|x|``."""
    if x.numel() == 0:
        return
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    tol = (_default_rtol(x.dtype) if rtol is None else float(rtol)) * float(x.abs().max())
    err = float((x - sym).abs().max())
    if err > tol:
        raise ValueError(
            f"{name} lacks the {what} (max deviation {err:.3g} > tolerance {tol:.3g}); "
            "pass symmetrize=True to project it onto the symmetric part instead"
        )


def _const(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.to(dtype=like.dtype, device=like.device)


# ----------------------------------------------------------------------------- vectors
def vector_to_irreps(v: torch.Tensor) -> torch.Tensor:
    """Cartesian vectors to e3nn ``1x1o`` coordinates.

    Parameters
    ----------
    v : torch.Tensor
        Shape ``(..., 3)``, floating; Cartesian components ``(x, y, z)`` in any unit.

    Returns
    -------
    torch.Tensor
        Shape ``(..., 3)``, same dtype/unit: coordinates in e3nn's ``1o`` basis (for e3nn >= 0.5
        the order is ``(x, y, z)``, so the values are unchanged; a new tensor is returned).
    """
    v = _check_trailing(v, "v", (3,))
    return v[..., list(_L1_AXES)]


def irreps_to_vector(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`vector_to_irreps`: ``(..., 3)`` ``1o`` coordinates to ``(x, y, z)``."""
    x = _check_trailing(x, "x", (3,))
    inv = [0, 0, 0]
    for a, axis in enumerate(_L1_AXES):
        inv[axis] = a
    return x[..., inv]


# ----------------------------------------------------------------------------- rank 2
@functools.cache
def _rank2_basis_f64() -> torch.Tensor:
    rows = []
    for l in range(3):
        c = _wigner_3j_f64(1, 1, l) * math.sqrt(2 * l + 1)  # (3, 3, 2l+1), orthonormal slices
        rows.append(c.permute(2, 0, 1))
    q = torch.cat(rows, dim=0)  # (9, 3, 3) in e3nn l=1 indices
    axes = list(_L1_AXES)
    out = torch.zeros_like(q)
    for a in range(3):
        for b in range(3):
            out[:, axes[a], axes[b]] = q[:, a, b]
    return out


def rank2_basis(dtype: torch.dtype = torch.float64,
                device: torch.device | str | None = None) -> torch.Tensor:
    """Orthonormal basis of 3x3 matrices adapted to ``1x0e+1x1e+1x2e``.

    Returns
    -------
    torch.Tensor
        ``Q`` of shape ``(9, 3, 3)`` with ``sum_ij Q[k, i, j] Q[k', i, j] = delta_kk'``:
        ``Q[0] = I / sqrt(3)``; ``Q[1:4]`` antisymmetric, ``Q[1 + k][i, j] = eps_ijk / sqrt(2)``
        (in e3nn's ``1e`` order); ``Q[4:9]`` symmetric traceless, ``sqrt(5) * wigner_3j(1, 1, 2)``
        on Cartesian indices. :func:`rank2_to_irreps` is ``einsum("kij,...ij->...k", Q, X)``.
    """
    return _rank2_basis_f64().to(dtype=dtype, device=device, copy=True)


def rank2_to_irreps(X: torch.Tensor) -> torch.Tensor:
    """Rank-2 Cartesian tensors to irreducible coordinates ``1x0e+1x1e+1x2e``.

    Parameters
    ----------
    X : torch.Tensor
        Shape ``(..., 3, 3)``, floating, any unit. Transforms as ``R X R^T``.

    Returns
    -------
    torch.Tensor
        Shape ``(..., 9)``, same dtype and unit: ``[0e, 1e (3), 2e (5)]`` (see
        :func:`rank2_basis`). The map is orthonormal: ``||out|| = ||X||_F``; it is equivariant,
        ``rank2_to_irreps(R X R^T) = D(R) rank2_to_irreps(X)`` with ``D`` the Wigner matrices of
        ``RANK2_IRREPS`` (also for improper ``R``).
    """
    X = _check_trailing(X, "X", (3, 3))
    return torch.einsum("kij,...ij->...k", _const(_rank2_basis_f64(), X), X)


def irreps_to_rank2(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rank2_to_irreps`: ``(..., 9)`` irreps to ``(..., 3, 3)`` tensors."""
    x = _check_trailing(x, "x", (9,))
    return torch.einsum("kij,...k->...ij", _const(_rank2_basis_f64(), x), x)


def decompose_rank2(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split rank-2 tensors into isotropic, antisymmetric and symmetric traceless parts.

    Parameters
    ----------
    X : torch.Tensor
        Shape ``(..., 3, 3)``, floating.

    Returns
    -------
    I, A, S : torch.Tensor
        Each of shape ``(..., 3, 3)`` and the dtype of ``X``, with ``X = I + A + S``:
        ``I = tr(X)/3 * Id``, ``A = (X - X^T)/2``, ``S = (X + X^T)/2 - I``. They are mutually
        orthogonal (Frobenius) and carry the ``0e``, ``1e`` and ``2e`` blocks of
        :func:`rank2_to_irreps` respectively (the TensorNet decomposition).
    """
    X = _check_trailing(X, "X", (3, 3))
    eye = torch.eye(3, dtype=X.dtype, device=X.device)
    trace = X.diagonal(dim1=-2, dim2=-1).sum(-1)
    iso = (trace / 3.0)[..., None, None] * eye
    xt = X.transpose(-1, -2)
    anti = 0.5 * (X - xt)
    sym = 0.5 * (X + xt) - iso
    return iso, anti, sym


# ----------------------------------------------------------------------------- elasticity
@functools.cache
def _mandel_basis_f64() -> torch.Tensor:
    b = torch.zeros(6, 3, 3, dtype=torch.float64)
    r = 1.0 / math.sqrt(2.0)
    for k, (i, j) in enumerate(VOIGT_PAIRS):
        if i == j:
            b[k, i, i] = 1.0
        else:
            b[k, i, j] = b[k, j, i] = r
    return b


def mandel_basis(dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """Orthonormal basis of symmetric 3x3 matrices in Mandel/Voigt order.

    Returns
    -------
    torch.Tensor
        ``B`` of shape ``(6, 3, 3)``: ``B[I] = e_i e_i^T`` for ``I = (i, i)`` and
        ``(e_i e_j^T + e_j e_i^T) / sqrt(2)`` for shear pairs, in the order ``VOIGT_PAIRS``.
        The Mandel vector of a symmetric ``S`` is ``sum_ij B[I, i, j] S_ij``
        ``= (S11, S22, S33, sqrt2 S23, sqrt2 S13, sqrt2 S12)``.
    """
    return _mandel_basis_f64().to(dtype=dtype, device=device, copy=True)


@functools.cache
def _elasticity_basis_f64() -> torch.Tensor:
    q = _rank2_basis_f64()
    sym_rows = torch.cat([q[0:1], q[4:9]])  # 0e and 2e: an orthonormal basis of Sym(3)
    p = torch.einsum("kij,Iij->kI", sym_rows, _mandel_basis_f64())  # (6, 6) orthogonal
    p0, p2 = p[0], p[1:]
    mats = [torch.outer(p0, p0)]

    def block(l: int) -> list[torch.Tensor]:
        c = _wigner_3j_f64(2, 2, l) * math.sqrt(2 * l + 1)
        t = torch.einsum("abc,aI,bJ->cIJ", c, p2, p2)
        return list(0.5 * (t + t.transpose(1, 2)))

    mats += block(0)
    mats += [(torch.outer(p2[c], p0) + torch.outer(p0, p2[c])) / math.sqrt(2.0) for c in range(5)]
    mats += block(2)
    mats += block(4)
    return torch.stack(mats)  # (21, 6, 6), orthonormal symmetric matrices


def elasticity_basis(dtype: torch.dtype = torch.float64,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """Orthonormal basis of symmetric 6x6 Mandel matrices adapted to ``2x0e+2x2e+1x4e``.

    Returns
    -------
    torch.Tensor
        ``T`` of shape ``(21, 6, 6)``, each ``T[k]`` symmetric, ``sum_IJ T[k] T[k'] = delta``.
        :func:`mandel_to_irreps` is ``einsum("kIJ,...IJ->...k", T, m)`` and
        :func:`irreps_to_mandel` is ``einsum("kIJ,...k->...IJ", T, x)``.
    """
    return _elasticity_basis_f64().to(dtype=dtype, device=device, copy=True)


def symmetrize_elasticity(C: torch.Tensor) -> torch.Tensor:
    """Orthogonal projection onto tensors with ``C_ijkl = C_jikl = C_ijlk = C_klij``.

    Parameters
    ----------
    C : torch.Tensor
        Shape ``(..., 3, 3, 3, 3)``, floating.

    Returns
    -------
    torch.Tensor
        Same shape and dtype: the average of ``C`` over the 8 index permutations generated by the
        three symmetries.
    """
    C = _check_trailing(C, "C", (3, 3, 3, 3))
    c = 0.5 * (C + C.transpose(-4, -3))
    c = 0.5 * (c + c.transpose(-2, -1))
    return 0.5 * (c + c.permute(*range(c.dim() - 4), -2, -1, -4, -3))


def elasticity_to_mandel(C: torch.Tensor, *, symmetrize: bool = False,
                         rtol: float | None = None) -> torch.Tensor:
    """Rank-4 elasticity tensors to Mandel 6x6 matrices.

    Parameters
    ----------
    C : torch.Tensor
        Shape ``(..., 3, 3, 3, 3)``, floating, any unit (e.g. eV/Å^3 or GPa), with the minor and
        major symmetries ``C_ijkl = C_jikl = C_ijlk = C_klij``.
    symmetrize : bool
        If True, project ``C`` onto the symmetric tensors (:func:`symmetrize_elasticity`) instead
        of checking it.
    rtol : float, optional
        Tolerance of the symmetry check relative to ``max|C|`` (default 1e-8 in float64, 1e-4 in
        float32, 1e-2 otherwise).

    Returns
    -------
    torch.Tensor
        Shape ``(..., 6, 6)``, symmetric, same dtype and unit:
        ``M_IJ = w_I w_J C_{ij kl}`` with ``(i, j), (k, l)`` the ``VOIGT_PAIRS`` and
        ``w = (1, 1, 1, sqrt2, sqrt2, sqrt2)``. Orthonormal: ``||M||_F = ||C||_F``.

    Raises
    ------
    ValueError
        If the shape is wrong, or (without ``symmetrize``) the symmetries do not hold, or ``C``
        holds NaN/inf.
    """
    C = _check_trailing(C, "C", (3, 3, 3, 3))
    sym = symmetrize_elasticity(C)
    if not symmetrize:
        _check_symmetric(C, sym, "C", "symmetries C_ijkl = C_jikl = C_ijlk = C_klij", rtol)
    return torch.einsum("Iij,...ijkl,Jkl->...IJ", _const(_mandel_basis_f64(), C), sym,
                        _const(_mandel_basis_f64(), C))


def _check_mandel(m: torch.Tensor, name: str, symmetrize: bool,
                  rtol: float | None) -> torch.Tensor:
    m = _check_trailing(m, name, (6, 6))
    sym = 0.5 * (m + m.transpose(-1, -2))
    if not symmetrize:
        _check_symmetric(m, sym, name, "major symmetry (a symmetric 6x6 matrix)", rtol)
    return sym


def mandel_to_elasticity(m: torch.Tensor, *, symmetrize: bool = False,
                         rtol: float | None = None) -> torch.Tensor:
    """Inverse of :func:`elasticity_to_mandel`.

    Parameters
    ----------
    m : torch.Tensor
        Shape ``(..., 6, 6)``, floating, symmetric Mandel matrices (Voigt order 11, 22, 33, 23,
        13, 12 with ``sqrt(2)`` factors on shear rows and columns).
    symmetrize : bool
        If True, use ``(m + m^T)/2`` instead of checking symmetry.
    rtol : float, optional
        Relative tolerance of the symmetry check (see :func:`elasticity_to_mandel`).

    Returns
    -------
    torch.Tensor
        Shape ``(..., 3, 3, 3, 3)`` with the minor and major symmetries, same dtype and unit.
    """
    m = _check_mandel(m, "m", symmetrize, rtol)
    b = _const(_mandel_basis_f64(), m)
    return torch.einsum("Iij,...IJ,Jkl->...ijkl", b, m, b)


def mandel_to_irreps(m: torch.Tensor, *, symmetrize: bool = False,
                     rtol: float | None = None) -> torch.Tensor:
    """Mandel 6x6 matrices to irreducible coordinates ``2x0e+2x2e+1x4e``.

    Parameters
    ----------
    m : torch.Tensor
        Shape ``(..., 6, 6)``, floating, symmetric.
    symmetrize : bool
        If True, use ``(m + m^T)/2`` instead of checking symmetry.
    rtol : float, optional
        Relative tolerance of the symmetry check.

    Returns
    -------
    torch.Tensor
        Shape ``(..., 21)``, same dtype and unit, layout ``[0e, 0e, 2e (5), 2e (5), 4e (9)]``
        (module docstring). Orthonormal: ``||out|| = ||m||_F``; equivariant under the Wigner
        matrices of ``ELASTICITY_IRREPS``.
    """
    m = _check_mandel(m, "m", symmetrize, rtol)
    return torch.einsum("kIJ,...IJ->...k", _const(_elasticity_basis_f64(), m), m)


def irreps_to_mandel(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`mandel_to_irreps`: ``(..., 21)`` irreps to symmetric ``(..., 6, 6)``."""
    x = _check_trailing(x, "x", (21,))
    return torch.einsum("kIJ,...k->...IJ", _const(_elasticity_basis_f64(), x), x)


def elasticity_to_irreps(C: torch.Tensor, *, symmetrize: bool = False,
                         rtol: float | None = None) -> torch.Tensor:
    """Rank-4 elasticity tensors ``(..., 3, 3, 3, 3)`` to ``2x0e+2x2e+1x4e`` ``(..., 21)``.

    Composition of :func:`elasticity_to_mandel` (same checks and options) and
    :func:`mandel_to_irreps`; orthonormal, ``||out|| = ||C||_F``.
    """
    return mandel_to_irreps(elasticity_to_mandel(C, symmetrize=symmetrize, rtol=rtol),
                            symmetrize=True)


def irreps_to_elasticity(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`elasticity_to_irreps`: ``(..., 21)`` to ``(..., 3, 3, 3, 3)``."""
    return mandel_to_elasticity(irreps_to_mandel(x), symmetrize=True)


def mandel_rotation(R: torch.Tensor) -> torch.Tensor:
    """The 6x6 matrix acting on Mandel vectors when 3x3 tensors are rotated.

    Parameters
    ----------
    R : torch.Tensor
        Shape ``(..., 3, 3)``, floating. Usually a rotation (or improper rotation) matrix.

    Returns
    -------
    torch.Tensor
        ``M`` of shape ``(..., 6, 6)``, same dtype, with ``mandel(R S R^T) = M mandel(S)`` for
        symmetric ``S`` and ``elasticity_to_mandel(R.C) = M elasticity_to_mandel(C) M^T`` where
        ``(R.C)_ijkl = R_ia R_jb R_kc R_ld C_abcd``. Both identities hold for any 3x3 ``R``;
        ``M`` is orthogonal exactly when ``R`` is.
    """
    R = _check_trailing(R, "R", (3, 3))
    b = _const(_mandel_basis_f64(), R)
    return torch.einsum("Iij,...ia,...jb,Jab->...IJ", b, R, R, b)
