"""Real Clebsch-Gordan coefficients: e3nn agreement, exact values, symmetries, equivariance.

e3nn 0.6's ``wigner_D`` builds its generators in float32 (``torch.sqrt`` of an integer tensor), so
its matrices are off by ~1e-7 even in float64. For 1e-10 checks the Wigner matrices here are built
by exact quadrature from e3nn's float64 spherical harmonics: ``D_ab = int Y_a(R x) Y_b(x) dOmega``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from e3nn import o3

from tensormol.so3 import (
    clebsch_gordan,
    complex_clebsch_gordan,
    rand_matrix,
    real_basis_in_complex,
    wigner_3j,
)

F64 = torch.float64


def _sphere_quadrature(n_theta: int = 12, n_phi: int = 25) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre in cos(theta) x trapezoid in phi: exact for polynomials of degree <= 23."""
    x, w = np.polynomial.legendre.leggauss(n_theta)
    ct = torch.tensor(x, dtype=F64)
    st = (1.0 - ct**2).sqrt()
    phi = torch.arange(n_phi, dtype=F64) * (2 * math.pi / n_phi)
    pts = torch.stack([st[:, None] * phi.cos(), st[:, None] * phi.sin(),
                       ct[:, None].expand(-1, n_phi)], dim=-1).reshape(-1, 3)
    weights = (torch.tensor(w, dtype=F64)[:, None] * (2 * math.pi / n_phi)).expand(-1, n_phi)
    return pts, weights.reshape(-1)


def _wigner_d_quadrature(l: int, R: torch.Tensor) -> torch.Tensor:
    pts, w = _sphere_quadrature()
    y = o3.spherical_harmonics(l, pts, normalize=True, normalization="integral")
    y_rot = o3.spherical_harmonics(l, pts @ R.T, normalize=True, normalization="integral")
    return torch.einsum("p,pa,pb->ab", w, y_rot, y)


def _triples(lmax: int):
    for l1, l2, l3 in itertools.product(range(lmax + 1), repeat=3):
        if abs(l1 - l2) <= l3 <= l1 + l2:
            yield l1, l2, l3


def test_matches_e3nn_all_l_up_to_6():
    worst = 0.0
    count = 0
    for l1, l2, l3 in _triples(6):
        ours = wigner_3j(l1, l2, l3)
        ref = o3.wigner_3j(l1, l2, l3, dtype=F64)
        assert ours.shape == (2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1)
        assert ours.dtype == F64
        worst = max(worst, float((ours - ref).abs().max()))
        count += 1
    assert count == 175
    assert worst <= 1e-10, worst


@pytest.mark.parametrize("ls", [(10, 10, 10), (10, 7, 5), (3, 10, 9), (0, 10, 10), (9, 8, 1)])
def test_matches_e3nn_high_l(ls):
    ours = wigner_3j(*ls)
    ref = o3.wigner_3j(*ls, dtype=F64)
    assert float((ours - ref).abs().max()) <= 1e-10
    assert abs(float(ours.norm()) - 1.0) <= 1e-13


def test_unit_norm_and_schur_orthogonality():
    for l1, l2, l3 in _triples(5):
        c = wigner_3j(l1, l2, l3)
        assert abs(float(c.norm()) - 1.0) <= 1e-13
        gram = torch.einsum("abc,abd->cd", c, c)
        assert torch.allclose(gram, torch.eye(2 * l3 + 1, dtype=F64) / (2 * l3 + 1), atol=1e-14)
    # different l3 from the same pair are orthogonal (different irreps)
    c2, c4 = wigner_3j(3, 3, 2), wigner_3j(3, 3, 4)
    assert float(torch.einsum("abc,abd->cd", c2, c4).abs().max()) <= 1e-14


def test_known_closed_forms():
    eye = torch.eye(3, dtype=F64)
    assert torch.allclose(wigner_3j(1, 1, 0)[:, :, 0], eye / math.sqrt(3), atol=1e-15)
    eps = torch.zeros(3, 3, 3, dtype=F64)
    for (i, j, k), s in [((0, 1, 2), 1), ((1, 2, 0), 1), ((2, 0, 1), 1),
                         ((0, 2, 1), -1), ((2, 1, 0), -1), ((1, 0, 2), -1)]:
        eps[i, j, k] = s
    assert torch.allclose(wigner_3j(1, 1, 1), eps / math.sqrt(6), atol=1e-15)
    # coupling with l=0 is the identity / sqrt(2l+1)
    for l in range(5):
        c = wigner_3j(l, 0, l)[:, 0, :]
        assert torch.allclose(c, torch.eye(2 * l + 1, dtype=F64) / math.sqrt(2 * l + 1),
                              atol=1e-15)


def test_complex_cg_against_sympy():
    from sympy import S
    from sympy.physics.wigner import clebsch_gordan as sympy_cg

    for l1, l2, l3 in [(1, 1, 1), (2, 1, 2), (2, 2, 3), (3, 2, 4), (4, 3, 2)]:
        ours = complex_clebsch_gordan(l1, l2, l3)
        for m1 in range(-l1, l1 + 1):
            for m2 in range(-l2, l2 + 1):
                m3 = m1 + m2
                if abs(m3) > l3:
                    continue
                ref = float(sympy_cg(S(l1), S(l2), S(l3), S(m1), S(m2), S(m3)))
                assert abs(float(ours[l1 + m1, l2 + m2, l3 + m3]) - ref) <= 1e-15


def test_swap_symmetry():
    # <l1 m1 l2 m2|L M> = (-1)^(l1+l2-L) <l2 m2 l1 m1|L M>, and the real basis phases are symmetric
    for l1, l2, l3 in _triples(5):
        a = wigner_3j(l1, l2, l3)
        b = wigner_3j(l2, l1, l3).transpose(0, 1)
        assert torch.allclose(a, (-1) ** (l1 + l2 + l3) * b, atol=1e-15)


def test_real_basis_is_unitary_and_gives_real_wigner_matrices():
    for l in range(6):
        b = real_basis_in_complex(l)
        assert torch.allclose(b.conj().T @ b, torch.eye(2 * l + 1, dtype=torch.complex128),
                              atol=1e-15)


def test_quadrature_wigner_reference_is_sound(generator):
    R = rand_matrix(generator=generator)
    d1 = _wigner_d_quadrature(1, R)
    assert float((d1 - R).abs().max()) <= 1e-13  # e3nn's 1o basis is (x, y, z)
    for l in range(7):
        d = _wigner_d_quadrature(l, R)
        assert float((d @ d.T - torch.eye(2 * l + 1, dtype=F64)).abs().max()) <= 1e-12
        e3 = o3.wigner_D(l, *o3.matrix_to_angles(R))
        assert float((d - e3).abs().max()) <= 1e-5  # e3nn's D is float32-accurate only


def test_equivariance_float64_and_float32(generator):
    rotations = [rand_matrix(generator=generator) for _ in range(2)]
    ds = [{l: _wigner_d_quadrature(l, R) for l in range(5)} for R in rotations]
    worst64 = worst32 = 0.0
    for l1, l2, l3 in _triples(4):
        c = wigner_3j(l1, l2, l3)
        c32 = wigner_3j(l1, l2, l3, dtype=torch.float32)
        for d in ds:
            rot = torch.einsum("ai,bj,ck,ijk->abc", d[l1], d[l2], d[l3], c)
            worst64 = max(worst64, float((rot - c).abs().max()))
            d32 = {k: v.float() for k, v in d.items()}
            rot32 = torch.einsum("ai,bj,ck,ijk->abc", d32[l1], d32[l2], d32[l3], c32)
            worst32 = max(worst32, float((rot32 - c32).abs().max()))
    assert worst64 <= 1e-10, worst64
    assert worst32 <= 1e-5, worst32


@pytest.mark.parametrize("ls", [(10, 10, 10), (10, 6, 7), (8, 9, 3)])
def test_equivariance_high_l(generator, ls):
    R = rand_matrix(generator=generator)
    c = wigner_3j(*ls)
    d = [_wigner_d_quadrature(l, R) for l in ls]
    rot = torch.einsum("ai,bj,ck,ijk->abc", d[0], d[1], d[2], c)
    assert float((rot - c).abs().max()) <= 1e-10


def test_dtype_device_and_cache_copy():
    c32 = clebsch_gordan(2, 2, 2, dtype=torch.float32, device="cpu")
    assert c32.dtype == torch.float32 and c32.device.type == "cpu"
    first = wigner_3j(2, 3, 4)
    first.zero_()  # mutating a returned tensor must not corrupt the cache
    again = wigner_3j(2, 3, 4)
    assert abs(float(again.norm()) - 1.0) <= 1e-13
    assert clebsch_gordan is wigner_3j


def test_selection_rule_and_argument_errors():
    with pytest.raises(ValueError, match="triangle"):
        wigner_3j(1, 1, 3)
    with pytest.raises(ValueError, match="triangle"):
        wigner_3j(4, 1, 2)
    with pytest.raises(ValueError, match="l2"):
        wigner_3j(1, -1, 1)
    with pytest.raises(ValueError, match="l3"):
        wigner_3j(1, 1, 1.0)
    with pytest.raises(ValueError, match="l1"):
        wigner_3j("1", 1, 1)
    with pytest.raises(ValueError, match="dtype"):
        wigner_3j(1, 1, 1, dtype=torch.int64)
    assert wigner_3j(np.int64(2), 1, 1).shape == (5, 3, 3)


def test_equivariance_with_tensormol_wigner_d(generator):
    # the same check against tensormol's own Wigner matrices (public API of tensormol.so3)
    from tensormol.so3 import wigner_D_from_matrix

    R = rand_matrix(generator=generator)
    d = {l: wigner_D_from_matrix(l, R) for l in range(11)}
    for l in range(7):
        assert float((d[l] - _wigner_d_quadrature(l, R)).abs().max()) <= 1e-12
    d32 = {l: wigner_D_from_matrix(l, R.float()) for l in range(5)}
    worst64 = worst32 = 0.0
    for l1, l2, l3 in list(_triples(4)) + [(10, 10, 10), (10, 6, 7)]:
        c = wigner_3j(l1, l2, l3)
        rot = torch.einsum("ai,bj,ck,ijk->abc", d[l1], d[l2], d[l3], c)
        worst64 = max(worst64, float((rot - c).abs().max()))
        if max(l1, l2, l3) <= 4:
            c32 = wigner_3j(l1, l2, l3, dtype=torch.float32)
            rot32 = torch.einsum("ai,bj,ck,ijk->abc", d32[l1], d32[l2], d32[l3], c32)
            worst32 = max(worst32, float((rot32 - c32).abs().max()))
    assert worst64 <= 1e-10, worst64
    assert worst32 <= 1e-5, worst32
