"""Cartesian <-> irreps maps: orthonormality, exact inverses, equivariance, known values, errors.

Reference Wigner matrices come from exact quadrature of e3nn's float64 spherical harmonics
(e3nn 0.6's own ``D_from_matrix`` is float32-accurate only; it is compared at 1e-5).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from e3nn import o3

from tensormol.so3 import (
    ELASTICITY_IRREPS,
    MANDEL_IRREPS,
    RANK2_IRREPS,
    VECTOR_IRREPS,
    decompose_rank2,
    elasticity_basis,
    elasticity_to_irreps,
    elasticity_to_mandel,
    irreps_to_elasticity,
    irreps_to_mandel,
    irreps_to_rank2,
    irreps_to_vector,
    mandel_basis,
    mandel_rotation,
    mandel_to_elasticity,
    mandel_to_irreps,
    rand_matrix,
    rank2_basis,
    rank2_to_irreps,
    symmetrize_elasticity,
    vector_to_irreps,
)

F64 = torch.float64


# ----------------------------------------------------------------------------- references
def _sphere_quadrature(n_theta: int = 8, n_phi: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre x trapezoid: exact for polynomials of degree <= 11 (D up to l = 5)."""
    x, w = np.polynomial.legendre.leggauss(n_theta)
    ct = torch.tensor(x, dtype=F64)
    st = (1.0 - ct**2).sqrt()
    phi = torch.arange(n_phi, dtype=F64) * (2 * math.pi / n_phi)
    pts = torch.stack([st[:, None] * phi.cos(), st[:, None] * phi.sin(),
                       ct[:, None].expand(-1, n_phi)], dim=-1).reshape(-1, 3)
    weights = (torch.tensor(w, dtype=F64)[:, None] * (2 * math.pi / n_phi)).expand(-1, n_phi)
    return pts, weights.reshape(-1)


def _wigner_d(l: int, R: torch.Tensor) -> torch.Tensor:
    """Real Wigner matrix of a proper rotation in e3nn's basis, exact to rounding."""
    pts, w = _sphere_quadrature()
    y = o3.spherical_harmonics(l, pts, normalize=True, normalization="integral")
    y_rot = o3.spherical_harmonics(l, pts @ R.T, normalize=True, normalization="integral")
    return torch.einsum("p,pa,pb->ab", w, y_rot, y)


def _irreps_d(irreps: str, R: torch.Tensor) -> torch.Tensor:
    """Block-diagonal Wigner matrix of an irreps string, for proper or improper ``R``."""
    det = float(torch.det(R))
    proper = R * det  # R = det * proper, with proper a rotation
    blocks = []
    for term in irreps.split("+"):
        mul, ir = term.split("x")
        l, p = int(ir[:-1]), (1 if ir[-1] == "e" else -1)
        d = _wigner_d(l, proper) * (p if det < 0 else 1)
        blocks += [d] * int(mul)
    return torch.block_diag(*blocks)


def _random_rotation(gen: torch.Generator, proper: bool = True) -> torch.Tensor:
    """A Haar-random rotation, times the inversion when not ``proper``."""
    R = rand_matrix(generator=gen)
    return R if proper else -R


def _rotate4(R: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ia,jb,kc,ld,...abcd->...ijkl", R, R, R, R, C)


def _random_elasticity(gen: torch.Generator, *batch: int) -> torch.Tensor:
    return symmetrize_elasticity(torch.randn(*batch, 3, 3, 3, 3, dtype=F64, generator=gen))


def _isotropic(lam: float, mu: float) -> torch.Tensor:
    d = torch.eye(3, dtype=F64)
    return (lam * torch.einsum("ij,kl->ijkl", d, d)
            + mu * (torch.einsum("ik,jl->ijkl", d, d) + torch.einsum("il,jk->ijkl", d, d)))


# ----------------------------------------------------------------------------- vectors
def test_e3nn_l1_basis_is_xyz(generator):
    R = _random_rotation(generator)
    assert float((o3.Irreps(VECTOR_IRREPS).D_from_matrix(R) - R).abs().max()) <= 1e-5
    assert float((_wigner_d(1, R) - R).abs().max()) <= 1e-13
    v = torch.randn(5, 3, dtype=F64, generator=generator)
    sh = o3.spherical_harmonics(1, v, normalize=False, normalization="component")
    assert torch.allclose(sh, math.sqrt(3) * vector_to_irreps(v), atol=1e-14)
    assert torch.equal(irreps_to_vector(vector_to_irreps(v)), v)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        vector_to_irreps(torch.zeros(4, 2))


# ----------------------------------------------------------------------------- rank 2
def test_rank2_basis_orthonormal_and_blocks():
    q = rank2_basis()
    gram = torch.einsum("kij,lij->kl", q, q)
    assert float((gram - torch.eye(9, dtype=F64)).abs().max()) <= 1e-15
    assert torch.allclose(q[0], torch.eye(3, dtype=F64) / math.sqrt(3), atol=1e-16)
    assert torch.allclose(q[1:4], -q[1:4].transpose(1, 2), atol=0)
    assert torch.allclose(q[4:], q[4:].transpose(1, 2), atol=1e-16)
    assert float(q[4:].diagonal(dim1=1, dim2=2).sum(-1).abs().max()) <= 1e-15
    # axial vector convention: 1e_k = eps_ijk X_ij / sqrt(2)
    assert abs(float(q[3, 0, 1]) - 1 / math.sqrt(2)) <= 1e-16


def test_rank2_round_trip_norm_and_decomposition(generator):
    X = torch.randn(7, 3, 3, dtype=F64, generator=generator)
    y = rank2_to_irreps(X)
    assert y.shape == (7, 9)
    assert float((irreps_to_rank2(y) - X).abs().max()) <= 1e-14
    assert torch.allclose(y.norm(dim=-1), X.flatten(1).norm(dim=-1), atol=1e-14)
    iso, anti, sym = decompose_rank2(X)
    assert float((iso + anti + sym - X).abs().max()) <= 1e-15
    for part, sl in [(iso, slice(0, 1)), (anti, slice(1, 4)), (sym, slice(4, 9))]:
        only = torch.zeros_like(y)
        only[:, sl] = y[:, sl]
        assert float((irreps_to_rank2(only) - part).abs().max()) <= 1e-14
    assert float(torch.einsum("nij,nij->n", anti, sym).abs().max()) <= 1e-14
    assert torch.allclose(y[:, 0], X.diagonal(dim1=1, dim2=2).sum(-1) / math.sqrt(3), atol=1e-14)


@pytest.mark.parametrize("proper", [True, False])
def test_rank2_equivariance(generator, proper):
    R = _random_rotation(generator, proper=proper)
    D = _irreps_d(RANK2_IRREPS, R)
    X = torch.randn(4, 3, 3, dtype=F64, generator=generator)
    rx = R @ X @ R.T
    err = float((rank2_to_irreps(rx) - rank2_to_irreps(X) @ D.T).abs().max())
    assert err <= 1e-10
    d_e3nn = o3.Irreps(RANK2_IRREPS).D_from_matrix(R)
    assert float((D - d_e3nn).abs().max()) <= 1e-5  # same convention as e3nn, incl. parity
    R32, X32, D32 = R.float(), X.float(), D.float()
    err32 = float((rank2_to_irreps(R32 @ X32 @ R32.T) - rank2_to_irreps(X32) @ D32.T).abs().max())
    assert err32 <= 1e-5


def test_rank2_outer_product_matches_spherical_harmonics(generator):
    r = torch.randn(6, 3, dtype=F64, generator=generator)
    y = rank2_to_irreps(torch.einsum("ni,nj->nij", r, r))
    sh2 = o3.spherical_harmonics(2, r, normalize=False, normalization="component")
    # 2e block of r r^T is sqrt(2/15) Y2(r) (component normalisation, unnormalised r): for m = 0
    # the basis matrix is diag(-1, 2, -1)/sqrt(6): (3y^2 - r^2)/sqrt(6) vs sqrt(5)(3y^2 - r^2)/2
    assert float((y[:, 4:] - math.sqrt(2 / 15) * sh2).abs().max()) <= 1e-13


# ----------------------------------------------------------------------------- elasticity
def test_mandel_known_entries_and_basis(generator):
    C = _random_elasticity(generator)
    m = elasticity_to_mandel(C)
    s2 = math.sqrt(2)
    assert abs(float(m[0, 0] - C[0, 0, 0, 0])) <= 1e-15
    assert abs(float(m[0, 1] - C[0, 0, 1, 1])) <= 1e-15
    assert abs(float(m[3, 3] - 2 * C[1, 2, 1, 2])) <= 1e-14
    assert abs(float(m[0, 3] - s2 * C[0, 0, 1, 2])) <= 1e-14
    assert abs(float(m[4, 5] - 2 * C[0, 2, 0, 1])) <= 1e-14
    assert abs(float(m[2, 4] - s2 * C[2, 2, 0, 2])) <= 1e-14
    # slow twin: explicit loops over the Voigt pairs
    pairs = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    w = [1.0, 1.0, 1.0, s2, s2, s2]
    ref = torch.tensor([[w[a] * w[b] * float(C[i, j, k, l]) for b, (k, l) in enumerate(pairs)]
                        for a, (i, j) in enumerate(pairs)], dtype=F64)
    assert float((m - ref).abs().max()) <= 1e-14
    R = _random_rotation(generator)
    ref_rot = torch.tensor([[w[a] * w[b] * float(R[i, k] * R[j, l] + R[i, l] * R[j, k]) / 2
                             for b, (k, l) in enumerate(pairs)]
                            for a, (i, j) in enumerate(pairs)], dtype=F64)
    assert float((mandel_rotation(R) - ref_rot).abs().max()) <= 1e-15
    b = mandel_basis()
    assert float((torch.einsum("kij,lij->kl", b, b) - torch.eye(6, dtype=F64)).abs().max()) <= 1e-15
    t = elasticity_basis().reshape(21, 36)
    assert float((t @ t.T - torch.eye(21, dtype=F64)).abs().max()) <= 1e-14


def test_elasticity_round_trips_and_norms(generator):
    C = _random_elasticity(generator, 3, 2)
    m = elasticity_to_mandel(C)
    x = elasticity_to_irreps(C)
    assert m.shape == (3, 2, 6, 6) and x.shape == (3, 2, 21)
    assert float((mandel_to_elasticity(m) - C).abs().max()) <= 1e-14
    assert float((irreps_to_elasticity(x) - C).abs().max()) <= 1e-14
    assert float((irreps_to_mandel(mandel_to_irreps(m)) - m).abs().max()) <= 1e-14
    assert float((mandel_to_irreps(irreps_to_mandel(x)) - x).abs().max()) <= 1e-14
    assert float((mandel_to_irreps(m) - x).abs().max()) <= 1e-14
    norm_c = C.flatten(-4).norm(dim=-1)
    assert torch.allclose(m.flatten(-2).norm(dim=-1), norm_c, atol=1e-13)
    assert torch.allclose(x.norm(dim=-1), norm_c, atol=1e-13)
    # any 21-vector is a valid elasticity tensor
    z = torch.randn(21, dtype=F64, generator=generator)
    assert float((elasticity_to_irreps(irreps_to_elasticity(z)) - z).abs().max()) <= 1e-14


@pytest.mark.parametrize("proper", [True, False])
def test_mandel_rotation(generator, proper):
    R1 = _random_rotation(generator, proper=proper)
    R2 = _random_rotation(generator)
    M = mandel_rotation(R1)
    assert float((M @ M.T - torch.eye(6, dtype=F64)).abs().max()) <= 1e-12
    C = _random_elasticity(generator, 2)
    lhs = elasticity_to_mandel(_rotate4(R1, C))
    assert float((lhs - M @ elasticity_to_mandel(C) @ M.T).abs().max()) <= 1e-12
    assert float((mandel_rotation(R1 @ R2) - M @ mandel_rotation(R2)).abs().max()) <= 1e-13
    S = torch.randn(3, 3, dtype=F64, generator=generator)
    S = S + S.T
    mb = mandel_basis()
    vec = torch.einsum("kij,ij->k", mb, S)
    assert float((torch.einsum("kij,ij->k", mb, R1 @ S @ R1.T) - M @ vec).abs().max()) <= 1e-13
    batched = mandel_rotation(torch.stack([R1, R2]))
    assert torch.allclose(batched[0], M, atol=0) and batched.shape == (2, 6, 6)


@pytest.mark.parametrize("proper", [True, False])
def test_elasticity_irreps_equivariance(generator, proper):
    R = _random_rotation(generator, proper=proper)
    D = _irreps_d(ELASTICITY_IRREPS, R)
    assert D.shape == (21, 21)
    assert float((D - o3.Irreps(ELASTICITY_IRREPS).D_from_matrix(R)).abs().max()) <= 1e-5
    C = _random_elasticity(generator, 3)
    err = float((elasticity_to_irreps(_rotate4(R, C)) - elasticity_to_irreps(C) @ D.T)
                .abs().max())
    assert err <= 1e-10
    # Mandel side: in the 0e + 2e basis of symmetric tensors, M(R) is the Wigner matrix
    q = rank2_basis()[[0, 4, 5, 6, 7, 8]]
    p = torch.einsum("kij,Iij->kI", q, mandel_basis())
    dm = _irreps_d(MANDEL_IRREPS, R)
    assert float((p @ mandel_rotation(R) @ p.T - dm).abs().max()) <= 1e-12
    C32, R32, D32 = C.float(), R.float(), D.float()
    err32 = float((elasticity_to_irreps(_rotate4(R32, C32)) - elasticity_to_irreps(C32) @ D32.T)
                  .abs().max())
    assert err32 <= 1e-5


def test_isotropic_and_cubic_content():
    lam, mu = 1.7, 0.6
    x = elasticity_to_irreps(_isotropic(lam, mu))
    assert abs(float(x[0]) - (3 * lam + 2 * mu)) <= 1e-14  # = 3 K, K = bulk modulus
    assert abs(float(x[1]) - 2 * math.sqrt(5) * mu) <= 1e-14
    assert float(x[2:].abs().max()) <= 1e-14
    # cubic: C11, C12, C44 in Voigt notation -> only 0e and 4e
    c11, c12, c44 = 3.0, 1.2, 0.8
    m = torch.zeros(6, 6, dtype=F64)
    m[:3, :3] = c12
    m[range(3), range(3)] = c11
    m[range(3, 6), range(3, 6)] = 2 * c44
    xc = mandel_to_irreps(m)
    assert float(xc[2:12].abs().max()) <= 1e-14
    assert float(xc[12:].abs().max()) > 0.1  # anisotropy lives in 4e
    # the 4e part vanishes exactly when the cubic tensor is isotropic (2 C44 = C11 - C12)
    m[range(3, 6), range(3, 6)] = c11 - c12
    assert float(mandel_to_irreps(m)[2:].abs().max()) <= 1e-14


def test_symmetry_checks_and_symmetrize(generator):
    C = _random_elasticity(generator)
    bad = C.clone()
    bad[0, 1, 2, 2] += 0.1
    for fn in (elasticity_to_mandel, elasticity_to_irreps):
        with pytest.raises(ValueError, match="symmetrize=True"):
            fn(bad)
    fixed = elasticity_to_mandel(bad, symmetrize=True)
    assert torch.allclose(fixed, elasticity_to_mandel(symmetrize_elasticity(bad)), atol=1e-15)
    # loose tolerance accepts it
    elasticity_to_mandel(bad, rtol=1.0)
    m = elasticity_to_mandel(C)
    m_bad = m.clone()
    m_bad[0, 3] += 0.1
    for fn in (mandel_to_elasticity, mandel_to_irreps):
        with pytest.raises(ValueError, match="major symmetry"):
            fn(m_bad)
    assert torch.allclose(mandel_to_irreps(m_bad, symmetrize=True),
                          mandel_to_irreps(0.5 * (m_bad + m_bad.T)), atol=1e-15)
    nan = C.clone()
    nan[1, 1, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        elasticity_to_mandel(nan)


def test_shape_and_type_errors():
    with pytest.raises(ValueError, match=r"C must have shape \(\.\.\., 3, 3, 3, 3\)"):
        elasticity_to_mandel(torch.zeros(3, 3, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"\(\.\.\., 6, 6\)"):
        mandel_to_irreps(torch.zeros(6, 5, dtype=F64))
    with pytest.raises(ValueError, match=r"\(\.\.\., 21\)"):
        irreps_to_elasticity(torch.zeros(20, dtype=F64))
    with pytest.raises(ValueError, match=r"\(\.\.\., 9\)"):
        irreps_to_rank2(torch.zeros(2, 8, dtype=F64))
    with pytest.raises(ValueError, match=r"R must have shape"):
        mandel_rotation(torch.zeros(3, 4, dtype=F64))
    with pytest.raises(TypeError, match="floating"):
        rank2_to_irreps(torch.zeros(3, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        decompose_rank2(np.zeros((3, 3)))


def test_linear_maps_are_differentiable(generator):
    C = _random_elasticity(generator).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda c: elasticity_to_irreps(c, symmetrize=True), (C,))
    X = torch.randn(3, 3, dtype=F64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(rank2_to_irreps, (X,))


@pytest.mark.parametrize("proper", [True, False])
def test_equivariance_with_tensormol_irreps(generator, proper):
    # the same checks with tensormol's own Irreps.D_from_matrix (public API of tensormol.so3)
    from tensormol.so3 import Irreps

    R = _random_rotation(generator, proper=proper)
    X = torch.randn(4, 3, 3, dtype=F64, generator=generator)
    C = _random_elasticity(generator, 3)
    for dtype, tol in [(F64, 1e-10), (torch.float32, 1e-5)]:
        Rt, Xt, Ct = R.to(dtype), X.to(dtype), C.to(dtype)
        d2 = Irreps(RANK2_IRREPS).D_from_matrix(Rt)
        err = (rank2_to_irreps(Rt @ Xt @ Rt.T) - rank2_to_irreps(Xt) @ d2.T).abs().max()
        assert float(err) <= tol
        d4 = Irreps(ELASTICITY_IRREPS).D_from_matrix(Rt)
        err = (elasticity_to_irreps(_rotate4(Rt, Ct)) - elasticity_to_irreps(Ct) @ d4.T).abs().max()
        assert float(err) <= tol
        dv = Irreps(VECTOR_IRREPS).D_from_matrix(Rt)
        v = Xt[:, 0]
        assert float((vector_to_irreps(v @ Rt.T) - vector_to_irreps(v) @ dv.T).abs().max()) <= tol
    assert float((Irreps(ELASTICITY_IRREPS).D_from_matrix(R)
                  - _irreps_d(ELASTICITY_IRREPS, R)).abs().max()) <= 1e-12
