"""Real Clebsch-Gordan coefficients (Wigner 3j tensors) in e3nn's real basis.

The coefficients are computed from scratch:

1. complex (Condon-Shortley) Clebsch-Gordan coefficients ``<l1 m1; l2 m2 | l3 m3>`` by the Racah
   formula, in exact rational arithmetic (the square of a coefficient is rational, its sign is the
   sign of the Racah sum), rounded to float64 once at the end;
2. a change to e3nn's real basis, whose vectors are the complex combinations returned by
   :func:`real_basis_in_complex` (the usual real spherical-harmonic combinations with an extra
   phase ``(-i)**l`` that makes the coupling coefficients real);
3. division by ``sqrt(2 l3 + 1)``, which gives Frobenius norm 1 (for each ``m3`` the coefficients
   form a unit vector), with no further sign change.

This is the convention of ``e3nn.o3.wigner_3j`` (e3nn normalises the same real tensor to norm 1
and applies no extra sign), so the tensors agree with e3nn to float64 rounding.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import torch

from tensormol._validate import check_int_ge

__all__ = ["wigner_3j", "clebsch_gordan", "real_basis_in_complex", "check_degree"]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_degree(value: object, name: str) -> int:
    """Return ``value`` as an ``int`` degree ``l >= 0``; raise ``ValueError`` naming ``name``."""
    try:
        return check_int_ge(value, name, 0)
    except TypeError as err:  # a float or string degree is a bad value for this API
        raise ValueError(str(err)) from None


def check_float_dtype(dtype: object, name: str = "dtype") -> torch.dtype:
    """Raise ``ValueError`` unless ``dtype`` is a real floating torch dtype."""
    if dtype not in _FLOAT_DTYPES:
        raise ValueError(
            f"{name} must be a real floating torch dtype (float16, bfloat16, float32, float64), "
            f"got {dtype!r}"
        )
    return dtype  # type: ignore[return-value]


def _check_triangle(l1: int, l2: int, l3: int) -> None:
    if not abs(l1 - l2) <= l3 <= l1 + l2:
        raise ValueError(
            "Clebsch-Gordan coefficients need the triangle rule |l1 - l2| <= l3 <= l1 + l2, "
            f"got l1={l1}, l2={l2}, l3={l3}"
        )


def _racah_cg_squared_signed(l1: int, m1: int, l2: int, m2: int, l3: int) -> tuple[int, Fraction]:
    """Exact complex CG ``<l1 m1; l2 m2 | l3 m1+m2>`` as ``(sign, square)``.

    Racah's formula: the coefficient is ``sqrt(A) * S`` with ``A`` a ratio of factorials and
    ``S`` an alternating sum of reciprocal factorial products, both rational.
    """
    m3 = m1 + m2
    f = math.factorial
    a = Fraction(
        (2 * l3 + 1) * f(l3 + l1 - l2) * f(l3 - l1 + l2) * f(l1 + l2 - l3)
        * f(l3 + m3) * f(l3 - m3) * f(l1 - m1) * f(l1 + m1) * f(l2 - m2) * f(l2 + m2),
        f(l1 + l2 + l3 + 1),
    )
    k_min = max(0, l2 - l3 - m1, l1 - l3 + m2)
    k_max = min(l1 + l2 - l3, l1 - m1, l2 + m2)
    s = Fraction(0)
    for k in range(k_min, k_max + 1):
        den = (
            f(k) * f(l1 + l2 - l3 - k) * f(l1 - m1 - k) * f(l2 + m2 - k)
            * f(l3 - l2 + m1 + k) * f(l3 - l1 - m2 + k)
        )
        s += Fraction((-1) ** k, den)
    if s == 0:
        return 0, Fraction(0)
    return (1 if s > 0 else -1), a * s * s


@functools.cache
def _complex_cg(l1: int, l2: int, l3: int) -> torch.Tensor:
    """Complex CG tensor ``C[l1+m1, l2+m2, l3+m3]`` (float64, Condon-Shortley phases)."""
    out = torch.zeros(2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1, dtype=torch.float64)
    for m1 in range(-l1, l1 + 1):
        for m2 in range(max(-l2, -l3 - m1), min(l2, l3 - m1) + 1):
            sign, sq = _racah_cg_squared_signed(l1, m1, l2, m2, l3)
            if sign:
                # float(Fraction) is correctly rounded; sqrt adds at most half an ulp.
                out[l1 + m1, l2 + m2, l3 + m1 + m2] = sign * math.sqrt(float(sq))
    return out


@functools.cache
def _real_basis(l: int) -> torch.Tensor:
    b = torch.zeros(2 * l + 1, 2 * l + 1, dtype=torch.complex128)
    r = 1.0 / math.sqrt(2.0)
    b[l, l] = 1.0
    for m in range(1, l + 1):
        sgn = (-1) ** m
        # real index +m: (|-m> + (-1)^m |+m>) / sqrt(2)   (~ cos(m phi))
        b[l - m, l + m] = r
        b[l + m, l + m] = sgn * r
        # real index -m: -i (|-m> - (-1)^m |+m>) / sqrt(2)   (~ sin(m phi))
        b[l - m, l - m] = -1j * r
        b[l + m, l - m] = 1j * sgn * r
    # The extra phase (-i)^l makes every coupling coefficient real (e3nn's choice).
    return ((-1j) ** l) * b


def real_basis_in_complex(l: int, dtype: torch.dtype = torch.complex128,
                          device: torch.device | str | None = None) -> torch.Tensor:
    """Complex coordinates of e3nn's real basis vectors of the irrep of degree ``l``.

    Parameters
    ----------
    l : int
        Degree, ``l >= 0``.
    dtype : torch.dtype
        ``torch.complex128`` (default) or ``torch.complex64``.
    device : torch.device or str, optional
        Device of the result.

    Returns
    -------
    torch.Tensor
        Unitary matrix ``B`` of shape ``(2l+1, 2l+1)``; column ``a`` (real index, ``m = a - l``)
        holds the coordinates of the real basis vector in the complex basis ``|l, mu>``
        (row ``l + mu``). Real Wigner matrices are ``B^H D_complex B``.
    """
    l = check_degree(l, "l")
    if dtype not in (torch.complex64, torch.complex128):
        raise ValueError(f"dtype must be torch.complex64 or torch.complex128, got {dtype!r}")
    return _real_basis(l).to(dtype=dtype, device=device, copy=True)


@functools.cache
def _wigner_3j_f64(l1: int, l2: int, l3: int) -> torch.Tensor:
    b1, b2, b3 = _real_basis(l1), _real_basis(l2), _real_basis(l3)
    c = _complex_cg(l1, l2, l3).to(torch.complex128)
    real = torch.einsum("ia,jb,kc,ijk->abc", b1, b2, b3.conj(), c)
    # The phase (-i)^l guarantees a real result; a large imaginary part would be a bug here.
    if float(real.imag.abs().max()) > 1e-9:
        raise RuntimeError(f"internal error: complex 3j tensor for ({l1}, {l2}, {l3})")
    # Each m3 slice of the complex CG is a unit vector, so the norm is sqrt(2 l3 + 1).
    return (real.real / math.sqrt(2 * l3 + 1)).contiguous()


def wigner_3j(l1: int, l2: int, l3: int, dtype: torch.dtype = torch.float64,
              device: torch.device | str | None = None) -> torch.Tensor:
    r"""Real Clebsch-Gordan coefficients (Wigner 3j tensor) in e3nn's convention.

    The tensor ``C`` is the unique (up to sign) unit-norm tensor invariant under simultaneous
    rotation of its three indices, ``C_{abc} = D^{l1}_{aa'} D^{l2}_{bb'} D^{l3}_{cc'} C_{a'b'c'}``
    with ``D`` the real Wigner matrices of e3nn (``e3nn.o3.wigner_D``), and its sign is e3nn's:
    it equals ``e3nn.o3.wigner_3j(l1, l2, l3)`` to float64 rounding. Coupling two irreps into a
    third is ``z_c = sum_ab C_abc x_a y_b``. The result does not depend on parity.

    Results are computed once per ``(l1, l2, l3)`` in float64 (exact rational Racah formula,
    then a change of basis) and cached; every call returns a fresh copy.

    Parameters
    ----------
    l1, l2, l3 : int
        Degrees, each ``>= 0``, satisfying the triangle rule ``|l1 - l2| <= l3 <= l1 + l2``.
    dtype : torch.dtype
        Real floating dtype of the result (default ``torch.float64``).
    device : torch.device or str, optional
        Device of the result (default CPU).

    Returns
    -------
    torch.Tensor
        Shape ``(2*l1+1, 2*l2+1, 2*l3+1)``, Frobenius norm 1.

    Raises
    ------
    ValueError
        If a degree is negative or not an integer, if the triangle rule fails, or if ``dtype``
        is not a real floating dtype.
    """
    l1, l2, l3 = check_degree(l1, "l1"), check_degree(l2, "l2"), check_degree(l3, "l3")
    dtype = check_float_dtype(dtype)
    _check_triangle(l1, l2, l3)
    return _wigner_3j_f64(l1, l2, l3).to(dtype=dtype, device=device, copy=True)


clebsch_gordan = wigner_3j
