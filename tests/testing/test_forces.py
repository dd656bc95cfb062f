"""The finite-difference force checker must pass true gradients and catch wrong forces."""

from __future__ import annotations

import pytest
import torch

from tensormol.testing import check_forces_fd, finite_difference_forces

F64 = torch.float64


def _lj(pos: torch.Tensor) -> torch.Tensor:
    d2 = (pos[:, None] - pos[None]).pow(2).sum(-1)
    iu = torch.triu_indices(len(pos), len(pos), 1)
    inv6 = d2[iu[0], iu[1]].pow(-3)
    return 4 * (inv6 * inv6 - inv6).sum()


def _positions(gen):
    # a slightly perturbed cubic grid: no two atoms too close
    g = torch.stack(torch.meshgrid(*(torch.arange(2, dtype=F64),) * 3, indexing="ij"), -1)
    return 1.5 * g.reshape(-1, 3) + 0.1 * torch.randn(8, 3, generator=gen, dtype=F64)


def test_true_forces_pass(generator):
    pos = _positions(generator)
    err = check_forces_fd(_lj, pos)  # autograd forces
    assert err < 1e-6
    p = pos.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(_lj(p), p)
    assert check_forces_fd(_lj, pos, -g) == err
    # float32 positions are promoted: the check runs in float64
    assert check_forces_fd(_lj, pos.float()) < 1e-4
    fd = finite_difference_forces(_lj, pos)
    torch.testing.assert_close(fd, -g, atol=1e-6, rtol=1e-6)


def test_wrong_forces_are_caught(generator):
    pos = _positions(generator)
    p = pos.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(_lj(p), p)
    with pytest.raises(AssertionError, match=r"worst at atom \d, [xyz]"):
        check_forces_fd(_lj, pos, g)  # wrong sign
    wrong = -g.clone()
    wrong[5, 1] *= 1.001  # one component off by 0.1 %
    with pytest.raises(AssertionError, match=r"at 1 of 24 components; worst at atom 5, y"):
        check_forces_fd(_lj, pos, wrong)
    # an energy whose autograd gradient is wrong (a detached term)
    def bad_energy(q):
        return _lj(q) + (q.detach() * q).sum() * 0 + q.detach().pow(2).sum()

    with pytest.raises(AssertionError, match="disagree"):
        check_forces_fd(bad_energy, pos)


def test_sampling_and_errors(generator):
    pos = _positions(generator)
    assert check_forces_fd(_lj, pos, n_samples=5, generator=generator) < 1e-6
    with pytest.raises(ValueError, match="single energy"):
        check_forces_fd(lambda q: q.sum(-1), pos)
    with pytest.raises(ValueError, match="shape of positions"):
        check_forces_fd(_lj, pos, torch.zeros(3, 3, dtype=F64))
    with pytest.raises(ValueError, match="NaN"):
        check_forces_fd(_lj, pos * float("nan"))
    with pytest.raises(ValueError, match="n_samples"):
        check_forces_fd(_lj, pos, n_samples=0)
    with pytest.raises(ValueError, match="differentiabl"):
        check_forces_fd(lambda q: torch.tensor(1.0, dtype=F64), pos)
    with pytest.raises(ValueError, match="eps"):
        finite_difference_forces(_lj, pos, eps=0.0)
