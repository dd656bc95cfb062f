"""Rotations and Wigner D matrices: e3nn's conventions, representation properties, equivariance
of the spherical harmonics, a slow twin, and errors."""

from __future__ import annotations

import math

import pytest
import torch
from e3nn import o3

from tensormol.so3 import (
    Irrep,
    Irreps,
    angles_to_matrix,
    angles_to_xyz,
    axis_angle_to_matrix,
    identity_angles,
    matrix_to_angles,
    matrix_to_axis_angle,
    matrix_x,
    matrix_y,
    matrix_z,
    rand_angles,
    rand_matrix,
    rand_o3,
    spherical_harmonics,
    wigner_D,
    wigner_D_from_matrix,
    wigner_D_reference,
    xyz_to_angles,
)

F64, F32 = torch.float64, torch.float32


# ------------------------------------------------------------------------------------ rotations
def test_rand_matrix_is_haar_rotation(generator):
    R = rand_matrix(4000, generator=generator)
    assert R.shape == (4000, 3, 3) and R.dtype == F64
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=F64).expand(4000, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(4000, dtype=F64))
    # Haar moments: E[R] = 0, E[R_ij^2] = 1/3, and the trace is 1 + 2 cos(angle) with the
    # angle distributed as (1 - cos t)/pi: E[tr R] = 0, E[tr^2] = 1
    assert R.mean(0).abs().max() < 0.05
    assert (R.pow(2).mean(0) - 1 / 3).abs().max() < 0.03
    tr = R.diagonal(dim1=-2, dim2=-1).sum(-1)
    assert abs(float(tr.mean())) < 0.06 and abs(float(tr.pow(2).mean()) - 1) < 0.08
    # reproducible with a generator, and shapes / dtypes as asked
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(rand_matrix(2, 3, generator=g1), rand_matrix(2, 3, generator=g2))
    assert rand_matrix().shape == (3, 3) and rand_matrix(2, dtype=F32).dtype == F32


def test_rand_o3_has_both_determinants(generator):
    R = rand_o3(200, generator=generator)
    det = torch.linalg.det(R)
    torch.testing.assert_close(det.abs(), torch.ones(200, dtype=F64))
    assert 60 < int((det < 0).sum()) < 140


def test_angle_conventions_match_e3nn(generator):
    a, b, c = rand_angles(50, generator=generator)
    assert float(b.min()) >= 0 and float(b.max()) <= math.pi
    torch.testing.assert_close(angles_to_matrix(a, b, c), o3.angles_to_matrix(a, b, c),
                               atol=1e-15, rtol=0)
    for ours, theirs in ((matrix_x, o3.matrix_x), (matrix_y, o3.matrix_y),
                         (matrix_z, o3.matrix_z)):
        torch.testing.assert_close(ours(a), theirs(a), atol=0, rtol=0)
    # matrix_to_angles inverts angles_to_matrix (compare matrices: angles are not unique)
    R = rand_matrix(50, generator=generator)
    torch.testing.assert_close(angles_to_matrix(*matrix_to_angles(R)), R, atol=1e-14, rtol=0)
    ae, be, ce = o3.matrix_to_angles(R)
    ao, bo, co = matrix_to_angles(R)
    torch.testing.assert_close(bo, be, atol=1e-7, rtol=0)  # e3nn's acos loses digits near poles
    # gimbal lock (beta = 0 or pi) and near it: still exact
    for beta in (0.0, 1e-9, math.pi, math.pi - 1e-9):
        Rg = angles_to_matrix(torch.tensor(0.3, dtype=F64), torch.tensor(beta, dtype=F64),
                              torch.tensor(-1.1, dtype=F64))
        torch.testing.assert_close(angles_to_matrix(*matrix_to_angles(Rg)), Rg, atol=1e-14,
                                   rtol=0)
    # xyz <-> angles
    x = torch.randn(20, 3, generator=generator, dtype=F64)
    al, be_ = xyz_to_angles(x)
    torch.testing.assert_close(angles_to_xyz(al, be_), x / x.norm(dim=-1, keepdim=True))
    torch.testing.assert_close(angles_to_matrix(al, be_, torch.zeros_like(al))[..., :, 1],
                               x / x.norm(dim=-1, keepdim=True))
    z = identity_angles(4)
    assert all(t.shape == (4,) for t in z)
    torch.testing.assert_close(angles_to_matrix(*z), torch.eye(3, dtype=F64).expand(4, 3, 3))


def test_axis_angle(generator):
    axis = torch.randn(30, 3, generator=generator, dtype=F64)
    angle = torch.rand(30, generator=generator, dtype=F64) * math.pi
    R = axis_angle_to_matrix(axis, angle)
    torch.testing.assert_close(R, o3.axis_angle_to_matrix(axis, angle), atol=1e-14, rtol=0)
    ax2, an2 = matrix_to_axis_angle(R)
    torch.testing.assert_close(an2, angle, atol=1e-12, rtol=0)
    torch.testing.assert_close(ax2, axis / axis.norm(dim=-1, keepdim=True), atol=1e-12, rtol=0)
    # rotation by pi (where the trace-based formula is ill-conditioned)
    Rpi = axis_angle_to_matrix(axis[:3], torch.full((3,), math.pi, dtype=F64))
    torch.testing.assert_close(axis_angle_to_matrix(*matrix_to_axis_angle(Rpi)), Rpi,
                               atol=1e-12, rtol=0)
    # right-hand rule: +90 degrees about z takes x to y
    Rz = axis_angle_to_matrix(torch.tensor([0.0, 0.0, 2.0], dtype=F64),
                              torch.tensor(math.pi / 2, dtype=F64))
    torch.testing.assert_close(Rz @ torch.tensor([1.0, 0, 0], dtype=F64),
                               torch.tensor([0.0, 1, 0], dtype=F64), atol=1e-15, rtol=0)


def test_rotation_errors():
    with pytest.raises(ValueError, match="orthogonal"):
        matrix_to_angles(torch.eye(3, dtype=F64) * 1.1)
    with pytest.raises(ValueError, match="proper rotations"):
        matrix_to_angles(-torch.eye(3, dtype=F64))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3, 3\)"):
        matrix_to_angles(torch.eye(2, dtype=F64))
    with pytest.raises(ValueError, match="nonzero"):
        axis_angle_to_matrix(torch.zeros(3, dtype=F64), torch.tensor(1.0, dtype=F64))
    with pytest.raises(ValueError, match=r"axis must have shape \(\.\.\., 3\)"):
        axis_angle_to_matrix(torch.ones(2, dtype=F64), torch.tensor(1.0, dtype=F64))
    with pytest.raises(TypeError, match="floating-point torch.dtype"):
        rand_matrix(2, dtype=torch.long)
    with pytest.raises(ValueError, match="shape entry"):
        rand_matrix(-1)


# ------------------------------------------------------------------------------------ Wigner D
def _e3nn_wigner_D_float64(l, alpha, beta, gamma):
    """e3nn's own definition of wigner_D (o3/_wigner.py), evaluated in float64.

    e3nn builds its generators in the global default dtype (float32 unless changed, and tests
    never change it), so its wigner_D is only float32-accurate. Here the same construction:
    su(2) generators, e3nn's real<->complex change of basis, then Y-X-Y matrix exponentials.
    """
    from e3nn.o3._wigner import change_basis_real_to_complex

    j = l
    m = torch.arange(-j, j, dtype=F64)
    raising = torch.diag(-torch.sqrt(j * (j + 1) - m * (m + 1)), diagonal=-1)
    m = torch.arange(-j + 1, j + 1, dtype=F64)
    lowering = torch.diag(torch.sqrt(j * (j + 1) - m * (m - 1)), diagonal=1)
    m = torch.arange(-j, j + 1, dtype=F64)
    X = torch.stack([0.5 * (raising + lowering), torch.diag(1j * m),
                     -0.5j * (raising - lowering)]).to(torch.complex128)
    Q = change_basis_real_to_complex(l, dtype=F64)
    X = torch.real(Q.conj().T @ X @ Q)
    e = torch.linalg.matrix_exp
    return (e(alpha[..., None, None] * X[1]) @ e(beta[..., None, None] * X[0])
            @ e(gamma[..., None, None] * X[1]))


def test_wigner_D_matches_e3nn(generator):
    a, b, c = rand_angles(10, generator=generator)
    for l in range(9):
        D = wigner_D(l, a, b, c)
        assert D.shape == (10, 2 * l + 1, 2 * l + 1) and D.dtype == F64
        ref = _e3nn_wigner_D_float64(l, a, b, c)
        assert (D - ref).abs().max() < 1e-10, l
        # and e3nn's actual output (float32 generators) to float32 precision
        assert (D - o3.wigner_D(l, a, b, c)).abs().max() < 1e-5, l


def test_wigner_D_equals_slow_twin(generator):
    a, b, c = rand_angles(5, generator=generator)
    for l in (2, 5, 10):
        torch.testing.assert_close(wigner_D(l, a, b, c), wigner_D_reference(l, a, b, c),
                                   atol=1e-11, rtol=0)


def test_representation_properties(generator):
    R1, R2 = rand_matrix(8, generator=generator), rand_matrix(8, generator=generator)
    eye3 = torch.eye(3, dtype=F64)
    for l in (0, 1, 2, 4, 7, 10, 15):
        D1, D2 = wigner_D_from_matrix(l, R1), wigner_D_from_matrix(l, R2)
        eye = torch.eye(2 * l + 1, dtype=F64)
        assert (D1 @ D1.transpose(-1, -2) - eye).abs().max() < 1e-12, l
        assert (wigner_D_from_matrix(l, R1 @ R2) - D1 @ D2).abs().max() < 1e-12, l
        torch.testing.assert_close(wigner_D_from_matrix(l, R1.transpose(-1, -2)),
                                   D1.transpose(-1, -2), atol=1e-12, rtol=0)
        torch.testing.assert_close(wigner_D_from_matrix(l, eye3), eye, atol=1e-13, rtol=0)
    torch.testing.assert_close(wigner_D_from_matrix(1, R1), R1)  # e3nn's l=1 basis is (x, y, z)


@pytest.mark.parametrize("dtype, tol", [(F64, 1e-10), (F32, 1e-5)])
def test_harmonics_are_equivariant(generator, dtype, tol):
    """Y(R x) = D(R) Y(x) for rotations and, with parity (-1)^l, for improper matrices."""
    x = torch.randn(100, 3, generator=generator, dtype=F64).to(dtype)
    R = rand_o3(6, generator=generator).to(dtype)
    R[0] = torch.eye(3, dtype=dtype)
    R[1] = -R[2]  # make sure both determinants occur
    ls = list(range(11))
    irreps = Irreps.spherical_harmonics(10)
    Y = spherical_harmonics(ls, x)
    YR = spherical_harmonics(ls, torch.einsum("rij,nj->rni", R, x))
    D = irreps.D_from_matrix(R)
    assert D.dtype == dtype
    err = (YR - Y @ D.transpose(-1, -2)).abs().max()
    assert err < tol, f"{dtype}: equivariance error {float(err):.2e}"
    for normalization in ("component", "norm"):
        Y = spherical_harmonics(ls, x, normalization=normalization)
        YR = spherical_harmonics(ls, torch.einsum("rij,nj->rni", R, x),
                                 normalization=normalization)
        err = (YR - Y @ D.transpose(-1, -2)).abs().max() / Y.abs().max()
        assert err < tol, f"{dtype} {normalization}: relative error {float(err):.2e}"


def test_wigner_D_is_differentiable(generator):
    a, b, c = (t.requires_grad_(True) for t in rand_angles(2, generator=generator))
    assert torch.autograd.gradcheck(lambda a, b, c: wigner_D(3, a, b, c), (a, b, c))
    # through a parametrization, so the finite differences stay on the rotation manifold
    axis = torch.randn(2, 3, generator=generator, dtype=F64, requires_grad=True)
    angle = torch.rand(2, generator=generator, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda ax, an: wigner_D_from_matrix(4, axis_angle_to_matrix(ax, an)), (axis, angle))
    assert torch.autograd.gradgradcheck(
        lambda ax, an: wigner_D_from_matrix(2, axis_angle_to_matrix(ax, an)),
        (axis[:1].detach().requires_grad_(True), angle[:1].detach().requires_grad_(True)))


def test_wigner_errors(generator):
    R = rand_matrix(3, generator=generator)
    with pytest.raises(ValueError, match=r"improper.*pass the parity p"):
        wigner_D_from_matrix(2, -R)
    torch.testing.assert_close(wigner_D_from_matrix(2, -R, p=-1), -wigner_D_from_matrix(2, R))
    torch.testing.assert_close(wigner_D_from_matrix(2, -R, p=1), wigner_D_from_matrix(2, R))
    torch.testing.assert_close(Irrep("2o").D_from_matrix(-R), -wigner_D_from_matrix(2, R))
    with pytest.raises(ValueError, match="orthogonal"):
        wigner_D_from_matrix(2, R * 1.01)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3, 3\)"):
        wigner_D_from_matrix(2, torch.eye(4, dtype=F64))
    with pytest.raises(TypeError, match="floating-point"):
        wigner_D_from_matrix(2, torch.eye(3, dtype=torch.long))
    with pytest.raises(ValueError, match="l must be an integer >= 0"):
        wigner_D_from_matrix(-1, R)
    with pytest.raises(TypeError, match="l must be an integer"):
        wigner_D(1.5, *rand_angles(2, generator=generator))
    with pytest.raises(ValueError, match="p .parity. must be"):
        wigner_D_from_matrix(1, R, p=0)
    bad = R.clone()
    bad[1, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="orthogonal"):
        wigner_D_from_matrix(3, bad)
