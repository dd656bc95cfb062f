"""The equivariance oracles must pass equivariant functions and catch non-equivariant ones."""

from __future__ import annotations

import pytest
import torch

from tensormol.so3 import Irreps, spherical_harmonics
from tensormol.testing import (
    CARTESIAN_POINTS,
    assert_equivariant,
    assert_equivariant_finite,
    default_tolerance,
    equivariance_error,
    finite_equivariance_error,
    matrix_action,
    permutation_action,
)

F64, F32 = torch.float64, torch.float32


def test_passes_equivariant_functions(generator):
    x = torch.randn(20, 3, generator=generator, dtype=F64)
    err = assert_equivariant(lambda v: spherical_harmonics([0, 1, 2, 3], v), x, "1o",
                             "0e+1o+2e+3o", generator=generator)
    assert err < 1e-13
    # float32: dtype-aware default tolerance
    err32 = assert_equivariant(lambda v: spherical_harmonics([0, 1, 2, 3], v), x.float(), "1o",
                               Irreps("0e+1o+2e+3o"))
    assert 0 < err32 < 1e-5
    # several inputs and outputs, an untouched (None) input, a pseudovector output
    feats = torch.randn(20, 5, generator=generator, dtype=F64)  # 2x0e + 1o
    species = torch.randint(0, 3, (20,), generator=generator)

    def fn(v, f, z):
        cross = torch.linalg.cross(v, f[:, 2:])
        return f[:, :2] * (z[:, None] + 1) * v.norm(dim=-1, keepdim=True), cross

    err = assert_equivariant(fn, (x, feats, species), ["1o", "2x0e+1o", None], ["2x0e", "1e"])
    assert err < 1e-13


def test_catches_non_equivariant_functions(generator):
    x = torch.randn(10, 3, generator=generator, dtype=F64)
    # permuted components: breaks rotations
    with pytest.raises(AssertionError, match=r"not equivariant: output 0 \(1x1o\) under rotation"):
        assert_equivariant(lambda v: v[:, [1, 0, 2]], x, "1o", "1o")
    # a vector declared a pseudovector: passes rotations, caught by reflections only
    with pytest.raises(AssertionError, match="det -1"):
        assert_equivariant(lambda v: v, x, "1o", "1e")
    assert assert_equivariant(lambda v: v, x, "1o", "1e", reflections=False) == 0.0
    # a cross product is a pseudovector, not a vector
    y = torch.randn(10, 3, generator=generator, dtype=F64)
    with pytest.raises(AssertionError, match="det -1"):
        assert_equivariant(torch.linalg.cross, (x, y), ["1o", "1o"], "1o")
    # a tiny symmetry breaking is still caught in float64 ...
    with pytest.raises(AssertionError, match=r"> tolerance"):
        assert_equivariant(lambda v: v + 1e-7 * v[:, :1], x, "1o", "1o")
    # ... and the error reported by equivariance_error is the real size
    assert 1e-8 < equivariance_error(lambda v: v + 1e-7 * v[:, :1], x, "1o", "1o") < 1e-6
    # an explicit tolerance
    assert assert_equivariant(lambda v: v + 1e-7 * v[:, :1], x, "1o", "1o", atol=1e-5) < 1e-6


def test_translations(generator):
    pos = torch.randn(8, 3, generator=generator, dtype=F64)
    centered = lambda p: p - p.mean(0)  # noqa: E731 - translation invariant, rotates
    assert assert_equivariant(centered, pos, CARTESIAN_POINTS, "1o", translations=True) < 1e-13
    # points out: translate with the input
    assert assert_equivariant(lambda p: 2 * p - p.mean(0), pos, CARTESIAN_POINTS,
                              CARTESIAN_POINTS, translations=True) < 1e-13
    with pytest.raises(AssertionError, match="translation"):
        assert_equivariant(lambda p: p, pos, CARTESIAN_POINTS, "1o", translations=True)
    # without translations the same function passes (points rotate like 1o)
    assert assert_equivariant(lambda p: p, pos, CARTESIAN_POINTS, "1o") < 1e-13
    with pytest.raises(ValueError, match="cartesian_points"):
        assert_equivariant(lambda p: p, pos, "1o", "1o", translations=True)


def test_bad_declarations_raise_clear_errors(generator):
    x = torch.randn(4, 3, generator=generator, dtype=F64)
    with pytest.raises(ValueError, match=r"declared 1x2e \(last dimension 5\)"):
        assert_equivariant(lambda v: v, x, "2e", "1o")
    with pytest.raises(ValueError, match="outputs of fn.*last dimension 5"):
        assert_equivariant(lambda v: v, x, "1o", "2e")
    with pytest.raises(ValueError, match="2 entries but there are 1"):
        assert_equivariant(lambda v: v, x, ["1o", None], "1o")
    # for a single tensor, a list reads as one irreps (like e3nn's list of (mul, ir) pairs)
    with pytest.raises(ValueError, match=r"declared 1x1o\+1x1o \(last dimension 6\)"):
        assert_equivariant(lambda v: v, x, ["1o", "1o"], "1o")
    with pytest.raises(ValueError, match="single entry"):
        assert_equivariant(lambda v, w: v, (x, x), "1o", "1o")
    with pytest.raises(ValueError, match="not irreps"):
        assert_equivariant(lambda v: v, x, "banana", "1o")
    with pytest.raises(TypeError, match="floating-point"):
        assert_equivariant(lambda v: v, torch.ones(4, 3, dtype=torch.long), "1o", "1o")
    with pytest.raises(TypeError, match="tensor or a tuple"):
        assert_equivariant(lambda v: 3.0, x, "1o", "0e")
    with pytest.raises(ValueError, match="n_trials"):
        assert_equivariant(lambda v: v, x, "1o", "1o", n_trials=0)
    assert default_tolerance(F64) == 1e-10 and default_tolerance(F32, 100.0) == 1e-3


def test_finite_group_oracle(generator):
    x = torch.randn(6, 4, generator=generator, dtype=F64)
    perms = [torch.randperm(6, generator=generator) for _ in range(4)]
    act = permutation_action(dim=0)
    # a per-node map is permutation equivariant; a sum is invariant
    assert assert_equivariant_finite(torch.tanh, x, perms, act, act) == 0.0
    assert assert_equivariant_finite(lambda v: v.sum(0), x, perms, act, None) < 1e-14
    # a cumulative sum is not
    with pytest.raises(AssertionError, match=r"output 0 under group element \d \(tensor"):
        assert_equivariant_finite(lambda v: v.cumsum(0), x, perms, act, act)
    assert finite_equivariance_error(lambda v: v.cumsum(0), x, perms, act, act) > 0.1
    # O(4) acting on the feature axis: a norm-based gate is equivariant, elementwise tanh is not
    Q = [torch.linalg.qr(torch.randn(4, 4, generator=generator, dtype=F64))[0] for _ in range(3)]
    mact = matrix_action(dim=-1)

    def gate(v):
        return v * torch.sigmoid(v.norm(dim=-1, keepdim=True))

    assert assert_equivariant_finite(gate, x, Q, mact, mact) < 1e-13
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant_finite(torch.tanh, x, Q, mact, mact)
    # per-input actions, and errors
    assert assert_equivariant_finite(lambda v, w: v * w.sum(), (x, x[:, 0]), perms,
                                     [act, act], act) < 1e-13
    with pytest.raises(ValueError, match="empty"):
        assert_equivariant_finite(torch.tanh, x, [], act, act)
    with pytest.raises(ValueError, match="2 actions but there are 1"):
        assert_equivariant_finite(torch.tanh, x, perms, [act, act], act)
