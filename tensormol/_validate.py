"""Argument checks shared by the public functions: clear messages that name the argument."""

from __future__ import annotations

import torch

__all__ = ["check_tensor", "check_finite", "check_positive", "check_int_ge"]


def check_tensor(x: object, name: str, *, shape: tuple | None = None, ndim: int | None = None,
                 floating: bool = False) -> torch.Tensor:
    """Check that ``x`` is a tensor of the given shape (``-1`` or ``None`` = any size there)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if ndim is not None and x.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if shape is not None:
        ok = x.dim() == len(shape) and all(
            s is None or s == -1 or s == xs for s, xs in zip(shape, x.shape)
        )
        if not ok:
            want = "(" + ", ".join("*" if s in (None, -1) else str(s) for s in shape) + ")"
            raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    return x


def check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """Raise if ``x`` holds NaN or infinite values, naming the first bad row."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = (~torch.isfinite(x)).reshape(x.shape[0], -1).any(dim=1).nonzero()
        first = int(bad[0]) if bad.numel() else -1
        raise ValueError(f"{name} contains NaN or infinite values (first at index {first})")
    return x


def check_positive(value: float, name: str) -> float:
    v = float(value)
    if not v > 0.0 or v != v or v == float("inf"):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def check_int_ge(value: object, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import numpy as np

            if isinstance(value, np.integer):
                value = int(value)
        except ImportError:  # pragma: no cover
            pass
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value
