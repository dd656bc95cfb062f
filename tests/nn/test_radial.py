"""Radial bases: formulas, TorchMD-Net initialisation, r -> 0 safety, dtypes, derivatives."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from tensormol.nn import (
    ACTIVATIONS,
    BesselRBF,
    CosineCutoff,
    ExpNormalRBF,
    GaussianRBF,
    ShiftedSoftplus,
    activation,
)

F64 = torch.float64


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-12) -> bool:
    return a.shape == b.shape and bool(((a - b).abs() <= tol * (1 + b.abs())).all())


def test_gaussian_values():
    rbf = GaussianRBF(5, 5.0, 1.0, dtype=F64)
    r = torch.tensor([1.0, 2.0, 2.5, 7.0], dtype=F64)
    out = rbf(r)
    assert out.shape == (4, 5)
    # centres at 1, 2, 3, 4, 5 with width 1
    centres = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=F64)
    assert _close(out, torch.exp(-0.5 * (r[:, None] - centres) ** 2))
    assert float(out[0, 0]) == 1.0 and float(out[1, 1]) == 1.0
    one = GaussianRBF(1, 4.0, 1.0, dtype=F64)(torch.tensor([1.0, 4.0], dtype=F64))
    assert _close(one[:, 0], torch.tensor([1.0, math.exp(-0.5)], dtype=F64))


def test_expnormal_initialisation_matches_torchmdnet():
    # TorchMD-Net ExpNormalSmearing(cutoff_lower=0.5, cutoff_upper=5.5, num_rbf=8):
    # start = exp(-5.5 + 0.5); means = linspace(start, 1, 8); betas = (2/8 * (1 - start))^-2
    rbf = ExpNormalRBF(8, 5.5, 0.5, dtype=F64)
    start = math.exp(-5.0)
    means = torch.tensor([start + k * (1 - start) / 7 for k in range(8)], dtype=F64)
    assert _close(rbf.means, means)
    assert _close(rbf.betas, torch.full((8,), (0.25 * (1 - start)) ** -2, dtype=F64))
    assert rbf.alpha == pytest.approx(1.0)
    r = torch.tensor([0.5, 1.3, 4.0, 6.0], dtype=F64)
    expect = torch.exp(-rbf.betas * (torch.exp(-(r[:, None] - 0.5)) - means) ** 2)
    assert _close(rbf(r), expect)
    assert _close(rbf(r)[0, -1], torch.tensor(1.0, dtype=F64))  # last mean is 1 = exp(0)
    with_cut = ExpNormalRBF(8, 5.5, 0.5, cosine_cutoff=True, dtype=F64)
    assert _close(with_cut(r), expect * CosineCutoff(5.5, 0.5)(r)[:, None])
    assert float(with_cut(r)[-1].abs().max()) == 0.0


def test_bessel_values_and_limit_at_zero():
    c = 4.0
    rbf = BesselRBF(6, c, dtype=F64)
    n = torch.arange(1, 7, dtype=F64)
    r = torch.tensor([0.3, 1.0, 2.7, 3.999], dtype=F64)
    naive = math.sqrt(2 / c) * torch.sin(n * math.pi * r[:, None] / c) / r[:, None]
    assert _close(rbf(r), naive, 1e-13)
    # r = 0 and r -> 0: the limit sqrt(2/c) n pi / c, no NaN, continuous across the Taylor switch
    limit = math.sqrt(2 / c) * n * math.pi / c
    tiny = torch.tensor([0.0, 1e-12, 1e-6], dtype=F64)
    assert _close(rbf(tiny), limit.expand(3, 6), 1e-11)
    w_max = 6 * math.pi / c
    edge = 0.25 / w_max  # where the largest frequency switches branch
    around = torch.tensor([edge * (1 - 1e-9), edge * (1 + 1e-9)], dtype=F64)
    v = rbf(around)
    assert _close(v[0], v[1], 1e-8)
    # each function vanishes at the cutoff
    assert float(rbf(torch.tensor([c], dtype=F64)).abs().max()) < 1e-14


def test_bessel_orthonormal_with_r_squared_weight():
    # ∫_0^c φ_n(r) φ_m(r) r² dr = δ_nm: checks the normalisation sqrt(2/c).
    c = 5.0
    rbf = BesselRBF(4, c, dtype=F64)
    r = torch.linspace(0.0, c, 20001, dtype=F64)
    phi = rbf(r) * r[:, None]
    gram = torch.trapezoid(phi[:, :, None] * phi[:, None, :], r, dim=0)
    assert _close(gram, torch.eye(4, dtype=F64), 1e-6)


@pytest.mark.parametrize(
    "module",
    [
        GaussianRBF(5, 5.0, 0.5),
        ExpNormalRBF(5, 5.0, 0.5),
        ExpNormalRBF(5, 5.0, cosine_cutoff=True),
        BesselRBF(5, 5.0),
    ],
    ids=["gaussian", "expnormal", "expnormal_cut", "bessel"],
)
def test_dtype_follows_input(module):
    r = torch.linspace(0.0, 6.0, 9)
    out32 = module(r)
    out64 = module(r.double())
    assert out32.dtype == torch.float32 and out64.dtype == F64
    assert out32.shape == (9, 5)
    assert _close(out64, out32.double(), 1e-5)
    assert bool(torch.isfinite(out32).all())
    assert module(torch.rand(2, 3) * 5).shape == (2, 3, 5)


@pytest.mark.parametrize("trainable", [False, True])
@pytest.mark.parametrize("name", ["gaussian", "expnormal", "expnormal_cut", "bessel"])
def test_gradcheck_and_gradgradcheck(name, trainable):
    module = {
        "gaussian": lambda: GaussianRBF(4, 5.0, 0.5, trainable=trainable, dtype=F64),
        "expnormal": lambda: ExpNormalRBF(4, 5.0, 0.5, trainable=trainable, dtype=F64),
        "expnormal_cut": lambda: ExpNormalRBF(4, 5.0, 0.5, trainable, cosine_cutoff=True,
                                              dtype=F64),
        "bessel": lambda: BesselRBF(4, 5.0, trainable=trainable, dtype=F64),
    }[name]()
    # includes r = 0 (Bessel's removable singularity) and points beyond the cutoff
    r = torch.tensor([0.0, 1e-3, 0.05, 0.7, 2.3, 4.1, 5.7], dtype=F64, requires_grad=True)
    if name == "expnormal_cut":
        r = r[2:].detach().requires_grad_(True)  # the lower bump's kink at r = 0.5 is not smooth
    assert gradcheck(module, (r,))
    assert gradgradcheck(module, (r,))
    params = list(module.parameters())
    assert len(params) == (2 if trainable and name != "bessel" else int(trainable))
    if trainable:
        (g,) = torch.autograd.grad(module(r).sum(), params[:1])
        assert bool(g.abs().sum() > 0)


def test_bessel_derivatives_at_zero_are_finite_and_correct():
    rbf = BesselRBF(3, 3.0, dtype=F64)
    w = torch.arange(1, 4, dtype=F64) * math.pi / 3.0
    r = torch.zeros(1, dtype=F64, requires_grad=True)
    out = rbf(r)[0]
    # φ(r) = k w (1 - (wr)²/6 + ...): φ'(0) = 0, φ''(0) = -k w³ / 3
    g1 = [torch.autograd.grad(out[k], r, create_graph=True)[0] for k in range(3)]
    g2 = torch.stack(
        [torch.autograd.grad(g1[k].sum(), r, retain_graph=True)[0][0] for k in range(3)]
    )
    assert _close(torch.stack([g[0] for g in g1]).detach(), torch.zeros(3, dtype=F64))
    assert _close(g2, -math.sqrt(2 / 3.0) * w ** 3 / 3, 1e-12)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: GaussianRBF(0, 5.0), "num_rbf must be an integer >= 1"),
        (lambda: GaussianRBF(3.0, 5.0), "num_rbf must be an integer"),
        (lambda: GaussianRBF(4, -1.0), "cutoff_upper must be a finite number > 0"),
        (lambda: GaussianRBF(4, 5.0, 5.0), "cutoff_lower must satisfy"),
        (lambda: ExpNormalRBF(4, 5.0, 6.0), "cutoff_lower must satisfy"),
        (lambda: ExpNormalRBF(4, 0.0), "cutoff_upper"),
        (lambda: ExpNormalRBF(4, 5.0, -0.5), "cutoff_lower"),
        (lambda: BesselRBF(0, 5.0), "num_rbf"),
        (lambda: BesselRBF(4, 0.0), "cutoff must be a finite number > 0"),
    ],
)
def test_validation(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()


def test_rejects_non_float_input():
    with pytest.raises(TypeError, match="r must be a floating-point tensor"):
        GaussianRBF(3, 5.0)(torch.tensor([1, 2]))


def test_activation_table_and_shifted_softplus() -> None:
    assert activation("ssp") is ShiftedSoftplus and set(ACTIVATIONS) >= {"silu", "tanh"}
    x = torch.tensor([0.0, 1.0, -30.0], dtype=torch.float64)
    y = ShiftedSoftplus()(x)
    assert float(y[0]) == 0.0
    assert float(y[1]) == pytest.approx(math.log1p(math.e) - math.log(2.0), rel=1e-15)
    assert float(y[2]) == pytest.approx(-math.log(2.0), abs=1e-12)
    with pytest.raises(ValueError, match="activation must be one of.*did you mean 'silu'"):
        activation("slu")
