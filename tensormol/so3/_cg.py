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

import torch

from tensormol._validate import check_int_ge

__all__ = ["wigner_3j", "clebsch_gordan", "complex_clebsch_gordan", "real_basis_in_complex"]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check_degree(value: object, name: str) -> int:
    """Return ``value`` as an ``int`` degree ``l >= 0``; raise ``ValueError`` naming ``name``."""
    try:
        return check_int_ge(value, name, 0)
    except TypeError as err:  # a float or string degree is a bad value for this API
        raise ValueError(str(err)) from None


def _check_float_dtype(dtype: object, name: str = "dtype") -> torch.dtype:
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


@functools.cache
def complex_clebsch_gordan(l1: int, l2: int, l3: int) -> torch.Tensor:
    """Complex CG tensor ``C[l1+m1, l2+m2, l3+m3]`` (float64, Condon-Shortley phases).

    Racah's formula, ``CG = sqrt(A) * sum_k (-1)^k / [k! (a-k)! (b-k)! (c-k)! (d+k)! (e+k)!]``
    with ``a = l1+l2-l3``, ``b = l1-m1``, ``c = l2+m2``, ``d = l3-l2+m1``, ``e = l3-l1-m2`` and
    ``A = (2l3+1) (l3+l1-l2)! (l3-l1+l2)! a! (l3+m3)! (l3-m3)! (l1-m1)! (l1+m1)! (l2-m2)! (l2+m2)!
    / (l1+l2+l3+1)!``. Grouping factorials into binomials turns the sum into an integer,
    ``S = sum_k (-1)^k C(a, k) C(l3-m3, b-k) C(l3+m3, c-k)``, divided by
    ``a! (l3-m3)! (l3+m3)!``, so ``CG^2 = P (l1-m1)! (l1+m1)! (l2-m2)! (l2+m2)! S^2 /
    (Q (l3+m3)! (l3-m3)!)`` with integers ``P = (2l3+1) (l3+l1-l2)! (l3-l1+l2)!`` and
    ``Q = (l1+l2+l3+1)! a!``: exact integer arithmetic, one rounding at the end.
    """
    f = [math.factorial(n) for n in range(l1 + l2 + l3 + 2)]
    comb = math.comb
    a = l1 + l2 - l3
    p = (2 * l3 + 1) * f[l3 + l1 - l2] * f[l3 - l1 + l2]
    q = f[l1 + l2 + l3 + 1] * f[a]
    n1, n2, n3 = 2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1
    # <l1 -m1; l2 -m2 | l3 -m3> = (-1)^(l1+l2-l3) <l1 m1; l2 m2 | l3 m3>: compute m3 >= 0 only
    mirror = -1.0 if a % 2 else 1.0
    flat = [0.0] * (n1 * n2 * n3)
    for m1 in range(-l1, l1 + 1):
        for m2 in range(max(-l2, -m1), min(l2, l3 - m1) + 1):
            m3 = m1 + m2
            b, c = l1 - m1, l2 + m2
            total = 0
            for k in range(max(0, l2 - l3 - m1, l1 - l3 + m2), min(a, b, c) + 1):
                term = comb(a, k) * comb(l3 - m3, b - k) * comb(l3 + m3, c - k)
                total += -term if k % 2 else term
            if total == 0:
                continue
            num = p * f[l1 - m1] * f[l1 + m1] * f[l2 - m2] * f[l2 + m2] * total * total
            den = q * f[l3 + m3] * f[l3 - m3]
            # int / int is correctly rounded in Python; sqrt adds at most half an ulp.
            value = math.sqrt(num / den) if total > 0 else -math.sqrt(num / den)
            flat[((l1 + m1) * n2 + l2 + m2) * n3 + l3 + m3] = value
            flat[((l1 - m1) * n2 + l2 - m2) * n3 + l3 - m3] = mirror * value
    return torch.tensor(flat, dtype=torch.float64).reshape(n1, n2, n3)


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
    l = _check_degree(l, "l")
    if dtype not in (torch.complex64, torch.complex128):
        raise ValueError(f"dtype must be torch.complex64 or torch.complex128, got {dtype!r}")
    return _real_basis(l).to(dtype=dtype, device=device, copy=True)


@functools.cache
def _wigner_3j_f64(l1: int, l2: int, l3: int) -> torch.Tensor:
    b1, b2, b3 = _real_basis(l1), _real_basis(l2), _real_basis(l3)
    c = complex_clebsch_gordan(l1, l2, l3).to(torch.complex128)
    # one index at a time: three small contractions instead of one 4-operand einsum
    c = torch.einsum("ia,ijk->ajk", b1, c)
    c = torch.einsum("jb,ajk->abk", b2, c)
    real = torch.einsum("kc,abk->abc", b3.conj(), c)
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
    l1, l2, l3 = _check_degree(l1, "l1"), _check_degree(l2, "l2"), _check_degree(l3, "l3")
    dtype = _check_float_dtype(dtype)
    _check_triangle(l1, l2, l3)
    return _wigner_3j_f64(l1, l2, l3).to(dtype=dtype, device=device, copy=True)


clebsch_gordan = wigner_3j
