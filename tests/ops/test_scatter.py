"""scatter_sum / segment_sum against a one-hot matmul twin: forward, backward, double backward."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from tensormol.ops import scatter_sum, segment_sum

F64 = torch.float64


def one_hot_sum(src: torch.Tensor, index: torch.Tensor, dim_size: int, dim: int) -> torch.Tensor:
    """The obviously correct twin: out = M @ src along ``dim`` with M[g, e] = [index[e] == g]."""
    m = (torch.arange(dim_size)[:, None] == index[None, :]).to(src.dtype)
    moved = src.movedim(dim, 0)
    out = torch.tensordot(m, moved, dims=([1], [0]))
    return out.movedim(0, dim)


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-12) -> bool:
    return a.shape == b.shape and bool(((a - b).abs() <= tol * (1 + b.abs())).all())


@pytest.mark.parametrize(
    "dim, shape", [(0, (30,)), (0, (30, 4, 2)), (1, (3, 30, 2)), (-1, (2, 30))]
)
def test_scatter_sum_matches_twin(dim, shape, generator):
    src = torch.randn(*shape, generator=generator, dtype=F64, requires_grad=True)
    index = torch.randint(0, 7, (30,), generator=generator)
    index[0] = 6  # make sure the largest group is used, and leave group 3 empty
    index[index == 3] = 2
    out = scatter_sum(src, index, 7, dim)
    ref = one_hot_sum(src, index, 7, dim)
    assert _close(out, ref)
    assert not bool(out.select(dim % src.dim(), 3).any())
    w = torch.randn(ref.shape, generator=generator, dtype=F64)
    (g,) = torch.autograd.grad((out * w).sum(), src)
    (g_ref,) = torch.autograd.grad((ref * w).sum(), src)
    assert _close(g, g_ref)


def test_scatter_sum_gradgradcheck(generator):
    src = torch.randn(12, 3, generator=generator, dtype=F64, requires_grad=True)
    index = torch.randint(0, 5, (12,), generator=generator)
    # a nonlinear wrapper so the second derivative is not trivially zero
    assert gradcheck(lambda s: scatter_sum(s, index, 5) ** 2, (src,))
    assert gradgradcheck(lambda s: scatter_sum(s, index, 5) ** 2, (src,))


@pytest.mark.parametrize("backend", ["auto", "torch", "segment_reduce"])
@pytest.mark.parametrize("dim", [0, 1])
def test_segment_sum_matches_twin(backend, dim, generator):
    index = torch.sort(torch.randint(0, 9, (40,), generator=generator)).values
    index[index == 4] = 5  # an empty segment in the middle
    index[-1] = 7  # and an empty last segment (dim_size 9)
    index = torch.sort(index).values
    shape = (40, 3, 2) if dim == 0 else (2, 40, 3)
    src = torch.randn(*shape, generator=generator, dtype=F64, requires_grad=True)
    out = segment_sum(src, index, 9, dim, backend=backend)
    ref = one_hot_sum(src, index, 9, dim)
    assert _close(out, ref)
    w = torch.randn(ref.shape, generator=generator, dtype=F64)
    (g,) = torch.autograd.grad((out * w).sum(), src)
    (g_ref,) = torch.autograd.grad((ref * w).sum(), src)
    assert _close(g, g_ref)
    small = src[:12] if dim == 0 else src[:, :12]
    idx = index[:12]
    f = lambda s: segment_sum(s, idx, 9, dim, backend=backend) ** 2  # noqa: E731
    assert gradcheck(f, (small.detach().requires_grad_(True),))
    assert gradgradcheck(f, (small.detach().requires_grad_(True),))


def test_segment_sum_double_backward_through_forces_like_graph(generator):
    # Energy = Σ_segments (Σ_edges φ(x))², forces = -dE/dx, loss = |forces|²: needs d²/dx².
    x = torch.randn(20, generator=generator, dtype=F64, requires_grad=True)
    index = torch.sort(torch.randint(0, 4, (20,), generator=generator)).values
    losses = []
    for backend in ("torch", "segment_reduce"):
        energy = (segment_sum(torch.sin(x), index, 4, backend=backend) ** 2).sum()
        (forces,) = torch.autograd.grad(-energy, x, create_graph=True)
        (g,) = torch.autograd.grad((forces ** 2).sum(), x)
        losses.append(g)
    energy = (one_hot_sum(torch.sin(x), index, 4, 0) ** 2).sum()
    (forces,) = torch.autograd.grad(-energy, x, create_graph=True)
    (g_ref,) = torch.autograd.grad((forces ** 2).sum(), x)
    for g in losses:
        assert _close(g, g_ref)


def test_float32_and_empty(generator):
    src = torch.randn(10, 4, generator=generator)
    index = torch.sort(torch.randint(0, 3, (10,), generator=generator)).values
    assert scatter_sum(src, index, 3).dtype == torch.float32
    assert _close(segment_sum(src, index, 3, backend="segment_reduce"),
                  one_hot_sum(src, index, 3, 0), 1e-5)
    empty = torch.zeros(0, 4)
    none = torch.zeros(0, dtype=torch.int64)
    assert scatter_sum(empty, none, 5).shape == (5, 4)
    assert segment_sum(empty, none, 5, backend="segment_reduce").abs().sum() == 0


def test_errors():
    src = torch.randn(6, 2)
    index = torch.tensor([0, 0, 1, 1, 2, 2])
    with pytest.raises(IndexError, match=r"index values must lie in \[0, dim_size=2\)"):
        scatter_sum(src, index, 2)
    with pytest.raises(IndexError, match="index values"):
        scatter_sum(src, index - 1, 3)
    with pytest.raises(ValueError, match="index has length 5 but src has size 6"):
        scatter_sum(src, index[:5], 3)
    with pytest.raises(TypeError, match="index must be an integer"):
        scatter_sum(src, index.float(), 3)
    with pytest.raises(ValueError, match="dim=2 is out of range"):
        scatter_sum(src, index, 3, dim=2)
    with pytest.raises(ValueError, match="dim_size must be an integer >= 0"):
        scatter_sum(src, index, -1)
    with pytest.raises(ValueError, match=r"index must be sorted.*index\[2\] = 0 follows 1"):
        segment_sum(src, torch.tensor([0, 1, 0, 1, 2, 2]), 3)
    with pytest.raises(ValueError, match="backend must be one of"):
        segment_sum(src, index, 3, backend="cuda")


@pytest.mark.slow
def test_segment_sum_compiled_backend_matches_twin(generator):
    # Builds the optional extension (about a minute the first time), hence slow.
    from tensormol._ext import load_extension

    status = load_extension()
    assert status.loaded, status.reason
    index = torch.sort(torch.randint(0, 6, (25,), generator=generator)).values
    src = torch.randn(25, 3, generator=generator, dtype=F64, requires_grad=True)
    out = segment_sum(src, index, 6, backend="cpp")
    assert _close(out, one_hot_sum(src, index, 6, 0))
    f = lambda s: segment_sum(s, index, 6, backend="cpp") ** 2  # noqa: E731
    assert gradgradcheck(f, (src,))
