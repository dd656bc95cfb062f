"""Radial basis expansions of interatomic distances: r (...) -> (..., num_rbf).

None of them applies a cutoff by itself (multiply by a ``tensormol.nn`` cutoff), except where a
keyword says so. Parameters are stored in the module's dtype and cast to the dtype of ``r`` in
``forward``, so a float32 model can be evaluated on float64 distances and vice versa.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._validate import check_int_ge, check_positive
from ._cutoff import CosineCutoff, _check_lower, _check_r

__all__ = ["GaussianRBF", "ExpNormalRBF", "BesselRBF"]


def _store(module: nn.Module, name: str, value: torch.Tensor, trainable: bool) -> None:
    if trainable:
        module.register_parameter(name, nn.Parameter(value))
    else:
        module.register_buffer(name, value)


class GaussianRBF(nn.Module):
    r"""Gaussians on a uniform grid (SchNet; TorchMD-Net's ``GaussianSmearing``).

    .. math:: \phi_k(r) = \exp\left(-\frac{(r - \mu_k)^2}{2 \sigma_k^2}\right)

    with ``num_rbf`` centres :math:`\mu_k` evenly spaced from ``cutoff_lower`` to
    ``cutoff_upper`` and every width :math:`\sigma_k` equal to the spacing (``cutoff_upper -
    cutoff_lower`` when ``num_rbf == 1``).

    Parameters
    ----------
    num_rbf : int
        Number of basis functions, >= 1.
    cutoff_upper, cutoff_lower : float
        Å, ``0 <= cutoff_lower < cutoff_upper``.
    trainable : bool
        Learn the centres ``means`` and widths ``widths`` (else they are buffers).
    dtype : torch.dtype, optional
        Dtype of the stored parameters (torch's default when ``None``).

    Shapes
    ------
    ``r`` (...) float, Å → (..., num_rbf), dtype of ``r``.
    """

    def __init__(self, num_rbf: int, cutoff_upper: float, cutoff_lower: float = 0.0,
                 trainable: bool = False, *, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.num_rbf = check_int_ge(num_rbf, "num_rbf", 1)
        self.cutoff_upper = check_positive(cutoff_upper, "cutoff_upper")
        self.cutoff_lower = _check_lower(cutoff_lower, self.cutoff_upper)
        self.trainable = bool(trainable)
        span = self.cutoff_upper - self.cutoff_lower
        means = torch.linspace(self.cutoff_lower, self.cutoff_upper, self.num_rbf,
                               dtype=torch.float64)
        width = span / (self.num_rbf - 1) if self.num_rbf > 1 else span
        widths = torch.full((self.num_rbf,), width, dtype=torch.float64)
        dtype = dtype or torch.get_default_dtype()
        _store(self, "means", means.to(dtype), self.trainable)
        _store(self, "widths", widths.to(dtype), self.trainable)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        _check_r(r)
        means = self.means.to(r.dtype)
        widths = self.widths.to(r.dtype)
        return torch.exp(-0.5 * ((r.unsqueeze(-1) - means) / widths) ** 2)

    def extra_repr(self) -> str:
        return (f"num_rbf={self.num_rbf}, cutoff_upper={self.cutoff_upper}, "
                f"cutoff_lower={self.cutoff_lower}, trainable={self.trainable}")


class ExpNormalRBF(nn.Module):
    r"""Exponential-normal basis of PhysNet (Unke & Meuwly, JCTC 2019) in TorchMD-Net's form.

    .. math::
        \phi_k(r) = \exp\left(-\beta_k \left(e^{\alpha (r_l - r)} - \mu_k\right)^2\right),
        \qquad \alpha = \frac{5}{r_c - r_l}

    Initialisation exactly as TorchMD-Net's ``ExpNormalSmearing._initial_params``: the means are
    ``linspace(exp(r_l - r_c), 1, num_rbf)`` and every :math:`\beta_k = (2 (1 - e^{r_l - r_c}) /
    \text{num\_rbf})^{-2}`. Note that the start value uses :math:`e^{-(r_c - r_l)}` (in Å), not
    :math:`e^{-\alpha (r_c - r_l)} = e^{-5}`; that is TorchMD-Net's choice, kept so weights and
    results carry over.

    TorchMD-Net also multiplies by its ``CosineCutoff(r_l, r_c)`` inside the smearing;
    here that is opt-in (``cosine_cutoff=True``) so the basis and the cutoff stay separate
    layers by default.

    Parameters
    ----------
    num_rbf : int
        Number of basis functions, >= 1.
    cutoff_upper, cutoff_lower : float
        :math:`r_c`, :math:`r_l`, Å, ``0 <= cutoff_lower < cutoff_upper``.
    trainable : bool
        Learn ``means`` and ``betas`` (TorchMD-Net's default is True; here False).
    cosine_cutoff : bool
        Multiply by ``CosineCutoff(cutoff_upper, cutoff_lower)``, as TorchMD-Net does.
    dtype : torch.dtype, optional
        Dtype of the stored parameters.

    Shapes
    ------
    ``r`` (...) float, Å → (..., num_rbf), dtype of ``r``.
    """

    def __init__(self, num_rbf: int, cutoff_upper: float, cutoff_lower: float = 0.0,
                 trainable: bool = False, *, cosine_cutoff: bool = False,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.num_rbf = check_int_ge(num_rbf, "num_rbf", 1)
        self.cutoff_upper = check_positive(cutoff_upper, "cutoff_upper")
        self.cutoff_lower = _check_lower(cutoff_lower, self.cutoff_upper)
        self.trainable = bool(trainable)
        self.alpha = 5.0 / (self.cutoff_upper - self.cutoff_lower)
        self.cutoff_fn = (CosineCutoff(self.cutoff_upper, self.cutoff_lower)
                          if cosine_cutoff else None)
        start = math.exp(-self.cutoff_upper + self.cutoff_lower)
        means = torch.linspace(start, 1.0, self.num_rbf, dtype=torch.float64)
        betas = torch.full((self.num_rbf,), (2.0 / self.num_rbf * (1.0 - start)) ** -2,
                           dtype=torch.float64)
        dtype = dtype or torch.get_default_dtype()
        _store(self, "means", means.to(dtype), self.trainable)
        _store(self, "betas", betas.to(dtype), self.trainable)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        _check_r(r)
        means = self.means.to(r.dtype)
        betas = self.betas.to(r.dtype)
        x = torch.exp(self.alpha * (self.cutoff_lower - r.unsqueeze(-1)))
        out = torch.exp(-betas * (x - means) ** 2)
        if self.cutoff_fn is not None:
            out = out * self.cutoff_fn(r).unsqueeze(-1)
        return out

    def extra_repr(self) -> str:
        return (f"num_rbf={self.num_rbf}, cutoff_upper={self.cutoff_upper}, "
                f"cutoff_lower={self.cutoff_lower}, trainable={self.trainable}")


def _sin_over_x(x: torch.Tensor) -> torch.Tensor:
    """sin(x) / x with correct value and derivatives (any order) at and near x = 0.

    Near 0 the quotient loses digits and autograd's derivative of it is 0/0, so a Taylor
    polynomial is used for |x| < 0.25 (truncation error < 1e-17). ``torch.sinc`` is not enough:
    its second derivative at 0 is NaN. The double ``where`` keeps NaN out of the unused branch's
    gradient.
    """
    small = x.abs() < 0.25
    x_safe = torch.where(small, torch.ones_like(x), x)
    x2 = x * x
    # 1 - x²/3! + x⁴/5! - x⁶/7! + x⁸/9! - x¹⁰/11!  (Horner in x²)
    taylor = 1.0 + x2 * (-1.0 / 6.0 + x2 * (1.0 / 120.0 + x2 * (
        -1.0 / 5040.0 + x2 * (1.0 / 362880.0 - x2 / 39916800.0))))
    return torch.where(small, taylor, torch.sin(x_safe) / x_safe)


class BesselRBF(nn.Module):
    r"""Spherical Bessel functions of order 0 (DimeNet, eq. 7; NequIP's ``BesselBasis``).

    .. math::
        \phi_n(r) = \sqrt{\frac{2}{r_c}} \, \frac{\sin(w_n r)}{r}, \qquad w_n = \frac{n \pi}{r_c}

    for :math:`n = 1, \ldots, \text{num\_rbf}`. Finite at :math:`r = 0`
    (:math:`\phi_n(0) = \sqrt{2/r_c}\, w_n`) with finite derivatives of every order; each function
    is 0 at :math:`r = r_c`.

    Parameters
    ----------
    num_rbf : int
        Number of basis functions, >= 1.
    cutoff : float
        :math:`r_c`, Å, > 0.
    trainable : bool
        Learn the frequencies ``frequencies`` (:math:`w_n`), as NequIP's ``trainable=True``.
    dtype : torch.dtype, optional
        Dtype of the stored parameters.

    Shapes
    ------
    ``r`` (...) float, Å → (..., num_rbf), dtype of ``r``, in Å^-1/2 · Å^-1.
    """

    def __init__(self, num_rbf: int, cutoff: float, trainable: bool = False, *,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.num_rbf = check_int_ge(num_rbf, "num_rbf", 1)
        self.cutoff = check_positive(cutoff, "cutoff")
        self.trainable = bool(trainable)
        self.prefactor = math.sqrt(2.0 / self.cutoff)
        freqs = torch.arange(1, self.num_rbf + 1, dtype=torch.float64) * math.pi / self.cutoff
        _store(self, "frequencies", freqs.to(dtype or torch.get_default_dtype()), self.trainable)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        _check_r(r)
        w = self.frequencies.to(r.dtype)
        # sin(w r) / r = w · sin(w r) / (w r): finite at r = 0.
        return self.prefactor * w * _sin_over_x(w * r.unsqueeze(-1))

    def extra_repr(self) -> str:
        return f"num_rbf={self.num_rbf}, cutoff={self.cutoff}, trainable={self.trainable}"
