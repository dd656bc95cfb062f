"""Conventions shared by every Gaunt-product route: SH normalizations, input checks and the
row-block size of the tensor-op routes (the per-degree layout is ``tensormol.so3.degree_index``)."""

from __future__ import annotations

import math

import torch

__all__ = ["SH_NORMALIZATIONS", "GRID_CHUNK_BYTES", "broadcast_shape", "degree_factors",
           "degree_scale", "lmax_of"]

SH_NORMALIZATIONS = ("integral", "component", "norm")
# Largest grid temporary of one row block of the tensor-op routes (torus and sphere-grid twin).
GRID_CHUNK_BYTES = 4 << 20


def degree_factors(lmax: int, normalization: str) -> torch.Tensor:
    """Per-degree s_l (lmax+1,) float64 with Y_l^norm = s_l · Y_l^integral."""
    if normalization == "integral":
        per_l = [1.0] * (lmax + 1)
    elif normalization == "component":
        per_l = [math.sqrt(4 * math.pi)] * (lmax + 1)
    elif normalization == "norm":
        per_l = [math.sqrt(4 * math.pi / (2 * l + 1)) for l in range(lmax + 1)]
    else:
        raise ValueError(f"normalization must be one of {SH_NORMALIZATIONS}, got {normalization!r}")
    return torch.tensor(per_l, dtype=torch.float64)


def degree_scale(lmax: int, normalization: str) -> torch.Tensor | None:
    """Per-coefficient factor s with Y^norm = s · Y^integral, or None for "integral"."""
    if normalization == "integral":
        return None
    per_l = degree_factors(lmax, normalization)
    return per_l.repeat_interleave(2 * torch.arange(lmax + 1) + 1)


def broadcast_shape(shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """NumPy broadcasting of the leading shapes (torch.broadcast_shapes imports torch._refs,
    seconds on first use)."""
    ndim = max(len(s) for s in shapes)
    out = []
    for i in range(ndim):
        # Compare as ints but return the size objects themselves: under torch.jit.trace they are
        # traced values, and the traced graph must keep them dynamic (e.g. the number of edges).
        big = [s[len(s) - ndim + i] for s in shapes
               if len(s) - ndim + i >= 0 and int(s[len(s) - ndim + i]) != 1]
        if len({int(v) for v in big}) > 1:
            raise ValueError(f"input batch shapes {shapes} do not broadcast")
        out.append(big[0] if big else 1)
    return tuple(out)


def lmax_of(x: torch.Tensor, name: str) -> int:
    """Degree L of the SH vector ``x`` (..., (L+1)²); a clear error naming ``name`` otherwise."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor")
    d = x.shape[-1] if x.dim() else 0
    L = math.isqrt(d) - 1
    if d == 0 or (L + 1) ** 2 != d:
        raise ValueError(f"{name} must have a last dimension (lmax+1)² (1, 4, 9, 16, ...), "
                         f"holding degrees 0..lmax; got {d}")
    return L
