"""Real spherical harmonics: e3nn's basis to 1e-10, a slow twin, derivatives, errors."""

from __future__ import annotations

import math

import pytest
import torch
from e3nn import o3
from torch.autograd import gradcheck, gradgradcheck

from tensormol.so3 import (
    Irreps,
    SphericalHarmonics,
    sh_irreps,
    spherical_harmonics,
    spherical_harmonics_reference,
)
from tensormol.so3._sh import _AutogradPlan, _sh_rows_autograd

F64, F32 = torch.float64, torch.float32
NORMS = ("integral", "component", "norm")


def _points(n, gen, dtype=F64):
    x = torch.randn(n, 3, generator=gen, dtype=F64)
    # scatter the radii in [0.5, 2] so normalize=False exercises homogeneity
    x = x / x.norm(dim=-1, keepdim=True) * (0.5 + 1.5 * torch.rand(n, 1, generator=gen, dtype=F64))
    # plus the coordinate axes: the poles of e3nn's polar (y) axis and the other two
    axes = torch.cat([torch.eye(3, dtype=F64), -torch.eye(3, dtype=F64)])
    return torch.cat([x, axes]).to(dtype)


@pytest.mark.parametrize("normalization", NORMS)
@pytest.mark.parametrize("normalize", [True, False])
def test_matches_e3nn_float64(generator, normalization, normalize):
    x = _points(200, generator)
    ls = list(range(11))
    ours = spherical_harmonics(ls, x, normalize, normalization)
    ref = o3.spherical_harmonics(ls, x, normalize, normalization=normalization)
    assert ours.shape == ref.shape == (x.shape[0], 121) and ours.dtype == F64
    err = (ours - ref).abs().max() / ref.abs().max().clamp_min(1.0)
    assert err < 1e-12, f"max relative error {float(err):.2e}"


@pytest.mark.parametrize(
    "l",
    [0, 3, 7, [3, 1, 1], [2, 0], "0e+1o+2e", "1x0e+2x1e+3e", Irreps("2x2e+1o"), [10]],
)
def test_degree_selection_matches_e3nn(generator, l):
    x = _points(30, generator)
    ours = spherical_harmonics(l, x, True)
    ref = o3.spherical_harmonics(l if not isinstance(l, Irreps) else l.to_e3nn(), x, True)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)
    # the module agrees and reports e3nn's output irreps
    mod = SphericalHarmonics(l, normalize=True)
    torch.testing.assert_close(mod(x), ours, atol=0, rtol=0)
    assert repr(mod.irreps_out) == repr(o3.SphericalHarmonics(
        l if not isinstance(l, Irreps) else l.to_e3nn(), True).irreps_out)
    assert sh_irreps(l) == mod.irreps_out
    assert "normalize=True" in repr(mod)


def test_fast_path_equals_slow_twins(generator):
    """The recurrence against the closed-form Cartesian sum and the autograd twin."""
    x = _points(100, generator)
    for normalization in NORMS:
        ls = list(range(11))
        fast = spherical_harmonics(ls, x, False, normalization)
        slow = spherical_harmonics_reference(ls, x, False, normalization)
        twin = _sh_rows_autograd(_AutogradPlan(10, normalization), x.t()).t()
        scale = slow.abs().max()
        assert (fast - slow).abs().max() / scale < 1e-12
        assert (fast - twin).abs().max() / scale < 1e-13


def test_derivatives_equal_the_slow_twin(generator):
    """Analytic backward and double backward against autograd through the closed form."""
    x = _points(20, generator).requires_grad_(True)
    ls = list(range(9))
    cot = torch.randn(x.shape[0], 81, generator=generator, dtype=F64)
    w = torch.randn(x.shape[0], 3, generator=generator, dtype=F64)
    for normalize in (True, False):
        grads = []
        for f in (spherical_harmonics, spherical_harmonics_reference):
            y = f(ls, x, normalize, "component")
            (g,) = torch.autograd.grad((y * cot).sum(), x, create_graph=True)
            (h,) = torch.autograd.grad((g * w).sum(), x)
            grads.append((g.detach(), h))
        (g1, h1), (g2, h2) = grads
        assert (g1 - g2).abs().max() / g2.abs().max() < 1e-12
        assert (h1 - h2).abs().max() / h2.abs().max() < 1e-12


@pytest.mark.parametrize("normalize", [True, False])
def test_gradcheck_and_gradgradcheck(generator, normalize):
    # a few generic points plus points on every axis (normalize=True is singular only at 0)
    x = torch.cat([torch.randn(2, 3, generator=generator, dtype=F64),
                   torch.tensor([[0.0, 1.3, 0.0], [0.0, 0.0, -0.7], [2.0, 0.0, 0.0]],
                                dtype=F64)]).requires_grad_(True)
    for ls in ([1], [4, 2], list(range(6))):
        def f(z, ls=ls):
            return spherical_harmonics(ls, z, normalize, "component")

        assert gradcheck(f, (x,), eps=1e-6, atol=1e-6, rtol=1e-5)
        assert gradgradcheck(f, (x,), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_float32_accuracy_close_to_e3nn(generator):
    x = torch.randn(5000, 3, generator=generator, dtype=F64)
    ls = list(range(11))
    ref = spherical_harmonics(ls, x, True)
    ours = spherical_harmonics(ls, x.float(), True)
    theirs = o3.spherical_harmonics(ls, x.float(), True)
    assert ours.dtype == F32
    err_ours = float((ours.double() - ref).abs().max())
    err_theirs = float((theirs.double() - ref).abs().max())
    assert err_ours < 5e-6  # values up to ~1.3 ("integral")
    assert err_ours < 2.0 * err_theirs


@pytest.mark.parametrize("l", [12, 16, 20])
def test_addition_theorem_high_degree(generator, l):
    """sum_m Y_lm(x) Y_lm(y) = (2l+1)/(4 pi) P_l(x.y): an identity independent of the basis."""
    x = torch.randn(50, 3, generator=generator, dtype=F64)
    y = torch.randn(50, 3, generator=generator, dtype=F64)
    lhs = (spherical_harmonics(l, x) * spherical_harmonics(l, y)).sum(-1)
    t = (x / x.norm(dim=-1, keepdim=True) * y / y.norm(dim=-1, keepdim=True)).sum(-1)
    p0, p1 = torch.ones_like(t), t
    for k in range(1, l):  # Bonnet
        p0, p1 = p1, ((2 * k + 1) * t * p1 - k * p0) / (k + 1)
    rhs = (2 * l + 1) / (4 * math.pi) * p1
    assert (lhs - rhs).abs().max() < 1e-11
    # and the norm identity |Y_l|^2 = (2l+1)/(4 pi), also in float32
    n32 = spherical_harmonics(l, x.float()).double().pow(2).sum(-1)
    assert (n32 - (2 * l + 1) / (4 * math.pi)).abs().max() < 1e-4 * (2 * l + 1)


def test_orthonormal_on_the_sphere():
    """Integral normalization: Gauss-Legendre x uniform quadrature integrates Y_i Y_j exactly."""
    n_t, n_p = 12, 24  # exact for polynomial degree <= 2 * 10 + ...
    t, w = _gauss_legendre(n_t)
    phi = torch.arange(n_p, dtype=F64) * 2 * math.pi / n_p
    T, P = torch.meshgrid(t, phi, indexing="ij")
    s = torch.sqrt(1 - T**2)
    pts = torch.stack([s * torch.cos(P), T, s * torch.sin(P)], dim=-1).reshape(-1, 3)
    weights = (w[:, None] * torch.full((n_p,), 2 * math.pi / n_p, dtype=F64)).reshape(-1)
    Y = spherical_harmonics(list(range(8)), pts)
    gram = Y.t() @ (Y * weights[:, None])
    torch.testing.assert_close(gram, torch.eye(64, dtype=F64), atol=1e-12, rtol=0)


def _gauss_legendre(n):
    import numpy as np

    t, w = np.polynomial.legendre.leggauss(n)
    return torch.tensor(t), torch.tensor(w)


def test_shapes_zero_vector_and_layouts(generator):
    x = torch.randn(2, 5, 3, generator=generator, dtype=F64)
    y = spherical_harmonics([0, 1, 2], x)
    assert y.shape == (2, 5, 9) and y.is_contiguous()
    torch.testing.assert_close(y.reshape(10, 9), spherical_harmonics([0, 1, 2], x.reshape(10, 3)))
    # non-contiguous input
    xt = torch.randn(3, 7, generator=generator, dtype=F64).t()
    torch.testing.assert_close(spherical_harmonics(3, xt), spherical_harmonics(3, xt.contiguous()))
    # empty batch
    assert spherical_harmonics([0, 1], torch.zeros(0, 3)).shape == (0, 4)
    # zero vector with normalize=True: like e3nn, Y_0 is the constant and the rest vanish,
    # and the gradient stays finite
    z = torch.zeros(1, 3, dtype=F64, requires_grad=True)
    y = spherical_harmonics([0, 1, 2], z, True, "component")
    torch.testing.assert_close(y, o3.spherical_harmonics([0, 1, 2], z, True, "component"))
    (g,) = torch.autograd.grad(y.sum(), z)
    assert bool(torch.isfinite(g).all())
    # l = 0 is a constant, as in e3nn
    torch.testing.assert_close(spherical_harmonics(0, x, normalization="component"),
                               torch.ones(2, 5, 1, dtype=F64))


def test_bad_inputs_raise_clear_errors():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\).*\(4, 2\)"):
        spherical_harmonics(2, torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\)"):
        spherical_harmonics(2, torch.tensor(1.0))
    bad = x.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite.*index 2"):
        spherical_harmonics(2, bad)
    bad[2, 1] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        spherical_harmonics(2, bad)
    with pytest.raises(TypeError, match="floating-point"):
        spherical_harmonics(2, torch.ones(4, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        spherical_harmonics(2, [[1.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="normalization must be one of"):
        spherical_harmonics(2, x, normalization="unit")
    with pytest.raises(ValueError, match="l must be >= 0"):
        spherical_harmonics(-1, x)
    with pytest.raises(ValueError, match="degrees >= 0"):
        spherical_harmonics([1, -2], x)
    with pytest.raises(ValueError, match="empty"):
        spherical_harmonics([], x)
    with pytest.raises(TypeError, match="list of ints"):
        spherical_harmonics([1, 2.0], x)
    with pytest.raises(TypeError, match="must be an int"):
        spherical_harmonics(True, x)
    with pytest.raises(ValueError, match=r"parity \(-1\)\^l"):
        spherical_harmonics("0e+1e+2o", x)
    with pytest.raises(ValueError, match="cannot parse irreps"):
        spherical_harmonics("1x", x)
    with pytest.raises(ValueError, match="normalization must be one of"):
        SphericalHarmonics(2, normalization="bad")
    # validate=False skips the finiteness check (for pre-checked inputs)
    assert spherical_harmonics(1, bad, validate=False).shape == (4, 3)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torchscript_module_matches_eager(generator):
    """Under torch.jit.script the module runs the plain-op twin: same values and derivatives."""
    m = SphericalHarmonics([0, 1, 2, 3, 6], normalize=True, normalization="component")
    sm = torch.jit.script(m)
    x = torch.randn(5, 2, 3, generator=generator, dtype=F64, requires_grad=True)
    a, b = m(x), sm(x)
    assert b.shape == (5, 2, 29)
    torch.testing.assert_close(b, a, atol=1e-14, rtol=0)
    (ga,) = torch.autograd.grad(a.pow(2).sum(), x, create_graph=True)
    (gb,) = torch.autograd.grad(b.pow(2).sum(), x, create_graph=True)
    torch.testing.assert_close(gb, ga, atol=1e-12, rtol=0)
    (ha,) = torch.autograd.grad(ga.sum(), x)
    (hb,) = torch.autograd.grad(gb.sum(), x)
    torch.testing.assert_close(hb, ha, atol=1e-11, rtol=0)
    torch.testing.assert_close(sm(x.float()), m(x.float()), atol=1e-6, rtol=0)
    assert m.state_dict() == {}  # no state: nothing to break in checkpoints
    with pytest.raises(Exception, match=r"shape \(\.\.\., 3\)"):
        sm(torch.randn(4, 2))
    with pytest.raises(Exception, match="NaN"):
        sm(torch.full((2, 3), float("nan")))


def test_degree_index_matches_the_irreps_of_the_harmonics() -> None:
    from tensormol.so3 import degree_index

    for lmax in range(5):
        irreps = sh_irreps(list(range(lmax + 1)))
        want = [ir.l for mul, ir in irreps for _ in range(mul * ir.dim)]
        assert degree_index(lmax).tolist() == want
    assert degree_index(0).dtype == torch.int64
    with pytest.raises(ValueError, match="lmax must be an integer >= 0, got -1"):
        degree_index(-1)
