"""Cutoff functions: values, smoothness at the cutoff, derivatives, validation."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from tensormol.nn import CosineCutoff, PolynomialCutoff

F64 = torch.float64


def derivatives(module, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Value, first and second derivative of an elementwise function, by autograd."""
    r = r.detach().requires_grad_(True)
    f = module(r)
    (d1,) = torch.autograd.grad(f.sum(), r, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), r)
    return f.detach(), d1.detach(), d2


def test_cosine_values_and_derivatives():
    rc = 4.0
    cut = CosineCutoff(rc)
    r = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 100.0], dtype=F64)
    f, d1, d2 = derivatives(cut, r)
    expect = torch.where(r < rc, 0.5 * (torch.cos(math.pi * r / rc) + 1), torch.zeros_like(r))
    assert bool(((f - expect).abs() < 1e-15).all())
    assert float(f[0]) == 1.0 and float(f[2]) == pytest.approx(0.5)
    # exactly 0 beyond rc; at rc itself up to rounding of sin(pi)
    assert bool((f[4:] == 0).all()) and bool((d1[5:] == 0).all()) and bool((d2[5:] == 0).all())
    assert abs(float(d1[4])) < 1e-15
    # approaching rc from below: f = O(h²), f' = O(h); f'' tends to pi² / (2 rc²), not 0
    for h in (1e-3, 1e-4):
        f, d1, d2 = derivatives(cut, torch.tensor([rc - h], dtype=F64))
        assert abs(float(f)) < 3 * h ** 2 and abs(float(d1)) < 2 * h
        assert float(d2) == pytest.approx(math.pi ** 2 / (2 * rc ** 2), rel=1e-5)


def test_cosine_with_lower_bound_is_torchmdnet_bump():
    cut = CosineCutoff(5.0, 1.0)
    r = torch.tensor([0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0], dtype=F64)
    expect = 0.5 * (torch.cos(math.pi * (2 * (r - 1.0) / 4.0 + 1.0)) + 1.0)
    expect = expect * ((r > 1.0) & (r < 5.0))
    f = cut(r)
    assert bool(((f - expect).abs() < 1e-15).all())
    assert float(f[3]) == pytest.approx(1.0)  # peak at the midpoint


@pytest.mark.parametrize("p", [1, 2, 5, 6, 9])
def test_polynomial_value_first_second_derivative_vanish_at_cutoff(p):
    rc = 3.5
    cut = PolynomialCutoff(rc, p)
    f0, d10, _ = derivatives(cut, torch.zeros(1, dtype=F64))
    assert float(f0) == 1.0
    # approaching rc from below: f = O(h³), f' = O(h²), f'' = O(h), with p-dependent constants
    scale = (p + 2) ** 3
    for h in (1e-3, 1e-4):
        f, d1, d2 = derivatives(cut, torch.tensor([rc - h], dtype=F64))
        assert abs(float(f)) < scale * (h / rc) ** 3
        assert abs(float(d1)) < scale * (h / rc) ** 2 / rc * 3
        assert abs(float(d2)) < scale * (h / rc) / rc ** 2 * 6
    # beyond rc everything is exactly 0, at rc up to rounding
    f, d1, d2 = derivatives(cut, torch.tensor([rc, rc + 1e-9, 10.0, 1e30], dtype=F64))
    assert bool((f[1:] == 0).all()) and bool((d1[1:] == 0).all()) and bool((d2[1:] == 0).all())
    assert float(f[0].abs() + d1[0].abs() + d2[0].abs()) < 1e-12
    # monotone decreasing on [0, rc]
    vals = cut(torch.linspace(0, rc, 200, dtype=F64))
    assert bool((vals[1:] <= vals[:-1] + 1e-15).all())


def test_polynomial_matches_dimenet_formula():
    cut = PolynomialCutoff(5.0, 6)
    r = torch.tensor([0.5, 2.0, 4.9], dtype=F64)
    d = r / 5.0
    expect = 1 - 28 * d ** 6 + 48 * d ** 7 - 21 * d ** 8
    assert bool(((cut(r) - expect).abs() < 1e-14).all())


@pytest.mark.parametrize(
    "module",
    [CosineCutoff(4.0), CosineCutoff(4.0, 1.0), PolynomialCutoff(4.0), PolynomialCutoff(4.0, 2)],
    ids=["cos", "cos_lower", "poly6", "poly2"],
)
def test_gradgradcheck_and_dtype(module):
    r = torch.tensor([0.0, 0.3, 1.7, 2.9, 3.99, 4.5], dtype=F64, requires_grad=True)
    if module.extra_repr().endswith("cutoff_lower=1.0"):
        r = r[1:].detach().requires_grad_(True)
    assert gradcheck(module, (r,))
    assert gradgradcheck(module, (r,))
    r32 = torch.linspace(0, 5, 7)
    assert module(r32).dtype == torch.float32 and module(r32).shape == (7,)
    assert module(r32.double()).dtype == F64


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: CosineCutoff(0.0), "cutoff_upper must be a finite number > 0"),
        (lambda: CosineCutoff(float("inf")), "cutoff_upper"),
        (lambda: CosineCutoff(4.0, 4.0), "cutoff_lower must satisfy"),
        (lambda: CosineCutoff(4.0, -1.0), "cutoff_lower must satisfy"),
        (lambda: PolynomialCutoff(-2.0), "cutoff must be a finite number > 0"),
        (lambda: PolynomialCutoff(4.0, 0), "p must be an integer >= 1"),
        (lambda: PolynomialCutoff(4.0, 2.5), "p must be an integer"),
    ],
)
def test_validation(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()
