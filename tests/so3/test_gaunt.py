"""Real Gaunt coefficients against independent quadrature of e3nn's spherical harmonics."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from e3nn import o3

from tensormol.so3 import (
    gaunt,
    gaunt_allowed,
    gaunt_coefficients,
    gaunt_table,
    gaunt_tensor,
)

F64 = torch.float64
LMAX = 6


def _sphere_quadrature(n_theta: int, n_phi: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre in cos(theta) x trapezoid in phi.

    Exact for polynomials on the sphere of degree <= min(2 n_theta - 1, n_phi - 1): after the phi
    average a polynomial of degree d is a polynomial of degree <= d in cos(theta).
    """
    x, w = np.polynomial.legendre.leggauss(n_theta)
    ct = torch.tensor(x, dtype=F64)
    st = (1.0 - ct**2).sqrt()
    phi = torch.arange(n_phi, dtype=F64) * (2 * math.pi / n_phi)
    pts = torch.stack([st[:, None] * phi.cos(), st[:, None] * phi.sin(),
                       ct[:, None].expand(-1, n_phi)], dim=-1).reshape(-1, 3)
    weights = (torch.tensor(w, dtype=F64)[:, None] * (2 * math.pi / n_phi)).expand(-1, n_phi)
    return pts, weights.reshape(-1)


@pytest.fixture(scope="module")
def quadrature_gaunt() -> torch.Tensor:
    # products of three harmonics of degree <= 6 have degree <= 18: 10 nodes and 19 angles suffice
    pts, w = _sphere_quadrature(n_theta=12, n_phi=25)
    y = o3.spherical_harmonics(list(range(LMAX + 1)), pts, normalize=True,
                               normalization="integral")
    return torch.einsum("p,pa,pb,pc->abc", w, y, y, y)


def test_quadrature_is_exact_for_orthonormality():
    # pairs of degree <= 9 give degree 18, the largest degree the Gaunt check integrates
    pts, w = _sphere_quadrature(n_theta=12, n_phi=25)
    y = o3.spherical_harmonics(list(range(10)), pts, normalize=True,
                               normalization="integral")
    gram = torch.einsum("p,pa,pb->ab", w, y, y)
    assert float((gram - torch.eye(gram.shape[0], dtype=F64)).abs().max()) <= 1e-13


def test_matches_quadrature_all_l_up_to_6(quadrature_gaunt):
    dense = gaunt_tensor(LMAX, LMAX, LMAX)
    assert dense.shape == ((LMAX + 1) ** 2,) * 3
    err = float((dense - quadrature_gaunt).abs().max())
    assert err <= 1e-10, err
    # block by block through the public per-triple function, zeros included
    for l1, l2, l3 in itertools.product(range(LMAX + 1), repeat=3):
        block = gaunt_coefficients(l1, l2, l3)
        ref = quadrature_gaunt[l1**2:(l1 + 1) ** 2, l2**2:(l2 + 1) ** 2, l3**2:(l3 + 1) ** 2]
        assert block.shape == ref.shape
        assert float((block - ref).abs().max()) <= 1e-10
        if not gaunt_allowed(l1, l2, l3):
            assert float(block.abs().max()) == 0.0
            assert float(ref.abs().max()) <= 1e-13  # the selection rules are real


def test_table_holds_exactly_the_allowed_blocks():
    table = gaunt_table(3, 4, 5)
    expected = {(a, b, c) for a in range(4) for b in range(5) for c in range(6)
                if gaunt_allowed(a, b, c)}
    assert set(table) == expected
    for (l1, l2, l3), block in table.items():
        assert torch.equal(block, gaunt_coefficients(l1, l2, l3))
        assert float(block.abs().max()) > 0.0
    dense = gaunt_tensor(3, 4, 5)
    assert dense.shape == (16, 25, 36)
    assert torch.equal(dense[4:9, 9:16, 25:36], table[(2, 3, 5)])


def test_product_expansion_pointwise(generator):
    # Y^{l1}_a(x) Y^{l2}_b(x) = sum_{l3, c} G[a, b, c] Y^{l3}_c(x) at arbitrary points
    x = torch.randn(40, 3, dtype=F64, generator=generator)
    sh = {l: o3.spherical_harmonics(l, x, normalize=True, normalization="integral")
          for l in range(7)}
    for l1, l2 in [(1, 1), (2, 3), (3, 3), (1, 4)]:
        lhs = torch.einsum("na,nb->nab", sh[l1], sh[l2])
        rhs = sum(torch.einsum("abc,nc->nab", gaunt(l1, l2, l3), sh[l3])
                  for l3 in range(abs(l1 - l2), l1 + l2 + 1))
        assert float((lhs - rhs).abs().max()) <= 1e-12


def test_known_values():
    assert abs(float(gaunt(0, 0, 0)) - 1 / math.sqrt(4 * math.pi)) <= 1e-16
    for l in range(6):
        eye = torch.eye(2 * l + 1, dtype=F64) / math.sqrt(4 * math.pi)
        assert torch.allclose(gaunt(l, l, 0)[:, :, 0], eye, atol=1e-15)
        assert torch.allclose(gaunt(0, l, l)[0], eye, atol=1e-15)


def test_m0_entries_against_sympy():
    # m = 0 harmonics are sqrt((2l+1)/4pi) P_l(cos theta) about the polar axis in every convention,
    # so the central entry is sympy's (complex) Gaunt integral with m1 = m2 = m3 = 0.
    from sympy.physics.wigner import gaunt as sympy_gaunt

    for l1, l2, l3 in [(1, 1, 2), (2, 2, 2), (2, 3, 3), (4, 2, 4), (3, 3, 6), (5, 4, 3)]:
        ours = float(gaunt(l1, l2, l3)[l1, l2, l3])
        ref = float(sympy_gaunt(l1, l2, l3, 0, 0, 0))
        assert ours > 0.0
        assert abs(ours - ref) <= 1e-15


def test_forbidden_triples_are_zero_with_shape():
    assert gaunt(1, 1, 1).shape == (3, 3, 3)
    assert float(gaunt(1, 1, 1).abs().max()) == 0.0  # odd sum
    assert float(gaunt(1, 1, 4).abs().max()) == 0.0  # triangle
    assert gaunt(1, 1, 4).shape == (3, 3, 9)
    assert not gaunt_allowed(2, 2, 1) and gaunt_allowed(2, 2, 4)


def test_dtype_and_errors():
    g32 = gaunt_coefficients(2, 2, 2, dtype=torch.float32)
    assert g32.dtype == torch.float32
    assert torch.allclose(g32.double(), gaunt(2, 2, 2), atol=1e-7)
    assert gaunt_table(1, 1, 2, dtype=torch.float32)[(1, 1, 2)].dtype == torch.float32
    assert gaunt_tensor(1, 1, 2, dtype=torch.float32).dtype == torch.float32
    with pytest.raises(ValueError, match="l3"):
        gaunt(1, 1, -2)
    with pytest.raises(ValueError, match="l1"):
        gaunt(0.5, 1, 1)
    with pytest.raises(ValueError, match="l2max"):
        gaunt_table(2, -1, 2)
    with pytest.raises(ValueError, match="dtype"):
        gaunt_tensor(1, 1, 1, dtype=torch.complex64)
    assert gaunt is gaunt_coefficients


def test_matches_quadrature_of_tensormol_harmonics(quadrature_gaunt):
    # independent quadrature again, with tensormol's own spherical harmonics (public API)
    from tensormol.so3 import spherical_harmonics

    pts, w = _sphere_quadrature(n_theta=12, n_phi=25)
    y = spherical_harmonics(list(range(LMAX + 1)), pts, normalize=True, normalization="integral")
    ref = torch.einsum("p,pa,pb,pc->abc", w, y, y, y)
    assert float((ref - quadrature_gaunt).abs().max()) <= 1e-12
    assert float((gaunt_tensor(LMAX, LMAX, LMAX) - ref).abs().max()) <= 1e-10
