"""Smooth cutoff functions f(r): 1-ish inside, exactly 0 (with zero slope) at and beyond the cutoff.

Both clamp the reduced distance before the formula instead of masking afterwards: the value and
every derivative are then exactly 0 beyond the cutoff, and no inf/NaN can leak into a gradient
from a far-away distance (``0 * inf`` through a ``torch.where`` would).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._validate import check_int_ge, check_positive

__all__ = ["CosineCutoff", "PolynomialCutoff"]


class CosineCutoff(nn.Module):
    r"""Cosine cutoff (Behler 2011; TorchMD-Net's form with a lower bound).

    With ``cutoff_lower = 0``: :math:`f(r) = \tfrac12 (\cos(\pi r / r_c) + 1)` for :math:`r < r_c`,
    0 beyond. Value and first derivative vanish at :math:`r_c`; the second does not
    (:math:`f''(r_c) = \tfrac{\pi^2}{2 r_c^2}`).

    With ``cutoff_lower = r_l > 0`` it follows TorchMD-Net's ``CosineCutoff`` exactly, a bump
    that is 0 at :math:`r_l`, 1 at the midpoint and 0 at :math:`r_c`:
    :math:`f(r) = \tfrac12 (\cos(\pi (2 (r - r_l)/(r_c - r_l) + 1)) + 1)` on
    :math:`(r_l, r_c)`, 0 elsewhere (TorchMD-Net drops the edges below :math:`r_l`).

    Parameters
    ----------
    cutoff_upper : float
        :math:`r_c`, Å, > 0.
    cutoff_lower : float
        :math:`r_l`, Å, ``0 <= cutoff_lower < cutoff_upper``.

    Shapes
    ------
    ``r`` (...) float, Å → (...) same dtype.
    """

    def __init__(self, cutoff_upper: float, cutoff_lower: float = 0.0) -> None:
        super().__init__()
        self.cutoff_upper = check_positive(cutoff_upper, "cutoff_upper")
        self.cutoff_lower = _check_lower(cutoff_lower, self.cutoff_upper)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        _check_r(r)
        if self.cutoff_lower > 0.0:
            x = ((r - self.cutoff_lower) / (self.cutoff_upper - self.cutoff_lower)).clamp(0.0, 1.0)
            return 0.5 * (torch.cos(math.pi * (2.0 * x + 1.0)) + 1.0)
        x = (r / self.cutoff_upper).clamp(max=1.0)
        return 0.5 * (torch.cos(math.pi * x) + 1.0)

    def extra_repr(self) -> str:
        return f"cutoff_upper={self.cutoff_upper}, cutoff_lower={self.cutoff_lower}"


class PolynomialCutoff(nn.Module):
    r"""Polynomial envelope of DimeNet (Gasteiger et al. 2020, eq. 8), as used by NequIP and MACE.

    With :math:`d = r / r_c`,

    .. math::
        f(d) = 1 - \frac{(p+1)(p+2)}{2} d^p + p(p+2) d^{p+1} - \frac{p(p+1)}{2} d^{p+2}

    for :math:`d < 1`, 0 beyond. :math:`f(0) = 1`, and the value, first and second derivatives are
    0 at :math:`r_c` (so forces and their derivatives are continuous there).

    Parameters
    ----------
    cutoff : float
        :math:`r_c`, Å, > 0.
    p : int
        Exponent, >= 1 (6 as in NequIP).

    Shapes
    ------
    ``r`` (...) float, Å → (...) same dtype.
    """

    def __init__(self, cutoff: float, p: int = 6) -> None:
        super().__init__()
        self.cutoff = check_positive(cutoff, "cutoff")
        self.p = check_int_ge(p, "p", 1)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        _check_r(r)
        p = float(self.p)
        d = (r / self.cutoff).clamp(max=1.0)
        dp = d.pow(self.p)
        # Horner form of the three highest terms: d^p * (c0 + d * (c1 + d * c2)).
        poly = -(p + 1.0) * (p + 2.0) / 2.0 + d * (p * (p + 2.0) - d * (p * (p + 1.0) / 2.0))
        return 1.0 + dp * poly

    def extra_repr(self) -> str:
        return f"cutoff={self.cutoff}, p={self.p}"


def _check_lower(cutoff_lower: float, cutoff_upper: float) -> float:
    lower = float(cutoff_lower)
    if not 0.0 <= lower < cutoff_upper:
        raise ValueError(
            f"cutoff_lower must satisfy 0 <= cutoff_lower < cutoff_upper = {cutoff_upper}, "
            f"got {cutoff_lower!r}"
        )
    return lower


def _check_r(r: object) -> None:
    if not isinstance(r, torch.Tensor) or not r.is_floating_point():
        what = r.dtype if isinstance(r, torch.Tensor) else type(r).__name__
        raise TypeError(f"r must be a floating-point tensor of distances (Å), got {what}")
