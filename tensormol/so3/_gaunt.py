r"""Real Gaunt coefficients: integrals of products of three real spherical harmonics.

Relation to the Wigner 3j tensor (derivation)
---------------------------------------------
Let ``Y^l_a`` be e3nn's real spherical harmonics with "integral" normalisation
(orthonormal on the unit sphere) and ``C^{l1 l2 l3}`` the real 3j tensor of :func:`wigner_3j`.

* ``G_abc = \int Y^{l1}_a Y^{l2}_b Y^{l3}_c dOmega`` is invariant under the real Wigner
  matrices (the harmonics are equivariant and ``dOmega`` is rotation invariant). The invariants
  of ``l1 x l2 x l3`` form a one-dimensional space, so ``G = kappa C`` for a real scalar ``kappa``.
* Norm. In the complex basis the Gaunt integral is
  ``sqrt((2l1+1)(2l2+1)(2l3+1)/(4 pi)) (l1 l2 l3; 0 0 0) (l1 l2 l3; m1 m2 m3)``, and the squares of
  the 3j symbols over all ``m`` sum to 1. The change to the real basis is unitary, so
  ``|kappa| = ||G|| = sqrt((2l1+1)(2l2+1)(2l3+1)/(4 pi)) |(l1 l2 l3; 0 0 0)|``.
* Sign. The ``m = 0`` harmonics are ``Y^l_0 = sqrt((2l+1)/(4 pi)) P_l(cos theta)`` about e3nn's
  polar axis (positive at the pole), so
  ``G_000 = sqrt(prod(2l+1)/(4 pi)) (l1 l2 l3; 0 0 0)^2 >= 0``.
  The real ``m = 0`` basis vector is ``(-i)^l |l, 0>``, so
  ``C_000 = (-i)^(l1+l2-l3) <l1 0; l2 0 | l3 0> / sqrt(2 l3 + 1)``. With
  ``<l1 0; l2 0 | l3 0> = (-1)^(l1-l2) sqrt(2l3+1) (l1 l2 l3; 0 0 0)`` and
  ``sign (l1 l2 l3; 0 0 0) = (-1)^g``, ``g = (l1+l2+l3)/2``, the sign of ``C_000`` is
  ``(-1)^((l1+l2-l3)/2 + l1 - l2 + g) = (-1)^(2 l1) = +1``. Hence ``kappa >= 0``:

  ``G = sqrt((2l1+1)(2l2+1)(2l3+1)/(4 pi)) |(l1 l2 l3; 0 0 0)| C``.

The tests check this against numerical quadrature of products of e3nn's harmonics.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import torch

from tensormol.so3._cg import _check_degree, _check_float_dtype, _wigner_3j_f64

__all__ = ["gaunt_coefficients", "gaunt", "gaunt_table", "gaunt_tensor", "gaunt_allowed"]


def gaunt_allowed(l1: int, l2: int, l3: int) -> bool:
    """True when the Gaunt block ``(l1, l2, l3)`` can be nonzero.

    That is the triangle rule ``|l1 - l2| <= l3 <= l1 + l2`` and ``l1 + l2 + l3`` even
    (parity: the product of the three harmonics must be even under inversion).
    """
    l1, l2, l3 = _check_degree(l1, "l1"), _check_degree(l2, "l2"), _check_degree(l3, "l3")
    return abs(l1 - l2) <= l3 <= l1 + l2 and (l1 + l2 + l3) % 2 == 0


def _threej_000_squared(l1: int, l2: int, l3: int) -> Fraction:
    """Exact ``(l1 l2 l3; 0 0 0)^2`` for an allowed triple (even sum, triangle)."""
    f = math.factorial
    g = (l1 + l2 + l3) // 2
    ratio = Fraction(f(2 * g - 2 * l1) * f(2 * g - 2 * l2) * f(2 * g - 2 * l3), f(2 * g + 1))
    binom = Fraction(f(g), f(g - l1) * f(g - l2) * f(g - l3))
    return ratio * binom * binom


@functools.cache
def _gaunt_f64(l1: int, l2: int, l3: int) -> torch.Tensor:
    if not (abs(l1 - l2) <= l3 <= l1 + l2 and (l1 + l2 + l3) % 2 == 0):
        return torch.zeros(2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1, dtype=torch.float64)
    sq = Fraction((2 * l1 + 1) * (2 * l2 + 1) * (2 * l3 + 1)) * _threej_000_squared(l1, l2, l3)
    kappa = math.sqrt(float(sq) / (4.0 * math.pi))
    return _wigner_3j_f64(l1, l2, l3) * kappa


def gaunt_coefficients(l1: int, l2: int, l3: int, dtype: torch.dtype = torch.float64,
                       device: torch.device | str | None = None) -> torch.Tensor:
    r"""Real Gaunt coefficients ``G[a, b, c] = \int Y^{l1}_a Y^{l2}_b Y^{l3}_c dOmega``.

    ``Y`` are e3nn's real spherical harmonics (same basis order and signs as
    ``e3nn.o3.spherical_harmonics``) with "integral" normalisation, i.e. orthonormal on the
    unit sphere; ``dOmega`` is the area element of the unit sphere (total area ``4 pi``).

    Exactly,
    ``G = sqrt((2l1+1)(2l2+1)(2l3+1) / (4 pi)) |(l1 l2 l3; 0 0 0)| * wigner_3j(l1, l2, l3)``
    (derivation in the module docstring). Consequently the product of two harmonics expands as
    ``Y^{l1}_a Y^{l2}_b = sum_{l3, c} G[a, b, c] Y^{l3}_c``.

    Selection rules: ``G`` is zero unless ``|l1 - l2| <= l3 <= l1 + l2`` (triangle rule) and
    ``l1 + l2 + l3`` is even (parity). For a forbidden triple this function returns a zero
    tensor of the right shape instead of raising, because Gaunt tensor products need the full
    table; use :func:`gaunt_allowed` to test a triple.

    Parameters
    ----------
    l1, l2, l3 : int
        Degrees, each ``>= 0``.
    dtype : torch.dtype
        Real floating dtype of the result (default ``torch.float64``).
    device : torch.device or str, optional
        Device of the result (default CPU).

    Returns
    -------
    torch.Tensor
        Shape ``(2*l1+1, 2*l2+1, 2*l3+1)``, pure numbers.

    Raises
    ------
    ValueError
        If a degree is negative or not an integer, or ``dtype`` is not a real floating dtype.
    """
    l1, l2, l3 = _check_degree(l1, "l1"), _check_degree(l2, "l2"), _check_degree(l3, "l3")
    dtype = _check_float_dtype(dtype)
    return _gaunt_f64(l1, l2, l3).to(dtype=dtype, device=device, copy=True)


gaunt = gaunt_coefficients


def gaunt_table(
    l1max: int, l2max: int, l3max: int, dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> dict[tuple[int, int, int], torch.Tensor]:
    """All nonzero Gaunt blocks up to the given maximal degrees.

    Parameters
    ----------
    l1max, l2max, l3max : int
        Maximal degrees (each ``>= 0``) of the first, second and third harmonic.
    dtype : torch.dtype
        Real floating dtype of the blocks (default ``torch.float64``).
    device : torch.device or str, optional
        Device of the blocks.

    Returns
    -------
    dict[tuple[int, int, int], torch.Tensor]
        Maps ``(l1, l2, l3)`` to :func:`gaunt_coefficients` ``(l1, l2, l3)`` of shape
        ``(2*l1+1, 2*l2+1, 2*l3+1)``, for exactly the triples allowed by the selection rules
        (:func:`gaunt_allowed`), in lexicographic order. Missing keys are zero blocks.
    """
    l1max, l2max = _check_degree(l1max, "l1max"), _check_degree(l2max, "l2max")
    l3max = _check_degree(l3max, "l3max")
    dtype = _check_float_dtype(dtype)
    table = {}
    for l1 in range(l1max + 1):
        for l2 in range(l2max + 1):
            for l3 in range(abs(l1 - l2), min(l1 + l2, l3max) + 1, 2):
                table[(l1, l2, l3)] = _gaunt_f64(l1, l2, l3).to(dtype=dtype, device=device,
                                                               copy=True)
    return table


def gaunt_tensor(l1max: int, l2max: int, l3max: int, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """Dense Gaunt tensor over all degrees up to the given maxima.

    Indices run over the concatenated harmonics ``l = 0 .. lmax`` in e3nn order (the layout of
    ``e3nn.o3.spherical_harmonics(range(lmax + 1), ...)``), so block ``(l1, l2, l3)`` sits at
    ``[l1**2 : (l1+1)**2, l2**2 : (l2+1)**2, l3**2 : (l3+1)**2]``.

    Parameters
    ----------
    l1max, l2max, l3max : int
        Maximal degrees (each ``>= 0``).
    dtype : torch.dtype
        Real floating dtype (default ``torch.float64``).
    device : torch.device or str, optional
        Device of the result.

    Returns
    -------
    torch.Tensor
        Shape ``((l1max+1)**2, (l2max+1)**2, (l3max+1)**2)``, zero outside allowed blocks.
        For orthonormal harmonics ``Y`` of a point, ``Y1_a Y2_b`` projected onto degrees
        ``<= l3max`` is ``sum_c G[a, b, c] Y3_c``.
    """
    table = gaunt_table(l1max, l2max, l3max, dtype=torch.float64)
    out = torch.zeros((l1max + 1) ** 2, (l2max + 1) ** 2, (l3max + 1) ** 2, dtype=torch.float64)
    for (l1, l2, l3), block in table.items():
        out[l1 * l1:(l1 + 1) ** 2, l2 * l2:(l2 + 1) ** 2, l3 * l3:(l3 + 1) ** 2] = block
    return out.to(dtype=_check_float_dtype(dtype), device=device)
