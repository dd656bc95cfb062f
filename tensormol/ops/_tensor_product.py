"""Learnable tensor-product layers: the Gaunt product with degree-wise weights, and a
Clebsch–Gordan product for the odd-parity paths the Gaunt product cannot form."""

from __future__ import annotations

import torch
from torch import nn

from tensormol._validate import check_int_ge
from tensormol.so3 import degree_index

from ._gaunt import gaunt_product, resolve_gaunt_backend
from ._gaunt_basis import SH_NORMALIZATIONS

__all__ = ["GauntTensorProduct", "cg_tensor_product"]


class GauntTensorProduct(nn.Module):
    """Channel-wise Gaunt tensor product with weights factorized by degree (Luo et al. 2024).

    ``z_c = w3_c ⊙_l Gaunt(w1_c ⊙_l x_c, w2_c ⊙_l y_c)``, where ``⊙_l`` scales every coefficient
    of degree l by the weight of that degree. This factorization is what keeps the product
    O(L³): a weight per (l1, l2, l3) path would need the O(L⁶) dense contraction.

    Parameters
    ----------
    lmax_in1, lmax_in2, lmax_out : int
        Degrees of the two inputs and of the output.
    channels : int
        Number of channels C (weights are per channel and degree).
    normalization : str
        SH normalization of the coefficients: "integral", "component" or "norm".
    backend : str
        "auto" (default: the fastest route for the degrees, see
        :func:`~tensormol.ops.gaunt_product`), "grid", "cpp" or "fourier" (O(L³)) or "dense"
        (contraction with the Gaunt coefficients). Resolved once, here: the attribute
        ``backend`` holds the route that runs (logged on ``tensormol.kernels``). The state dict
        is the same for all.
    dtype : torch.dtype, optional
        Dtype of the weights.
    """

    def __init__(self, lmax_in1: int, lmax_in2: int, lmax_out: int, channels: int,
                 normalization: str = "integral", backend: str = "auto",
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        for name, v in (("lmax_in1", lmax_in1), ("lmax_in2", lmax_in2), ("lmax_out", lmax_out)):
            check_int_ge(v, name, 0)
        check_int_ge(channels, "channels", 1)
        if normalization not in SH_NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {SH_NORMALIZATIONS}, "
                             f"got {normalization!r}")
        self.resolution = resolve_gaunt_backend(
            (lmax_in1, lmax_in2), lmax_out, dtype=dtype or torch.get_default_dtype(),
            backend=backend)
        self.backend = self.resolution.backend
        self.lmax_in1, self.lmax_in2, self.lmax_out = lmax_in1, lmax_in2, lmax_out
        self.channels = channels
        self.normalization = normalization
        self.weight1 = nn.Parameter(torch.ones(channels, lmax_in1 + 1, dtype=dtype))
        self.weight2 = nn.Parameter(torch.ones(channels, lmax_in2 + 1, dtype=dtype))
        self.weight_out = nn.Parameter(torch.ones(channels, lmax_out + 1, dtype=dtype))
        self.register_buffer("_deg1", degree_index(lmax_in1), persistent=False)
        self.register_buffer("_deg2", degree_index(lmax_in2), persistent=False)
        self.register_buffer("_deg_out", degree_index(lmax_out), persistent=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Apply the product.

        Parameters
        ----------
        x : torch.Tensor
            (..., C, (lmax_in1+1)²) float, SH coefficients per channel.
        y : torch.Tensor
            (..., C, (lmax_in2+1)²) float.

        Returns
        -------
        torch.Tensor
            (..., C, (lmax_out+1)²), dtype of ``x``.
        """
        d1, d2 = (self.lmax_in1 + 1) ** 2, (self.lmax_in2 + 1) ** 2
        if x.dim() < 2 or x.shape[-2:] != (self.channels, d1):
            raise ValueError(f"x must have shape (..., {self.channels}, {d1}), "
                             f"got {tuple(x.shape)}")
        if y.dim() < 2 or y.shape[-2:] != (self.channels, d2):
            raise ValueError(f"y must have shape (..., {self.channels}, {d2}), "
                             f"got {tuple(y.shape)}")
        x = x * self.weight1[:, self._deg1].to(x.dtype)
        y = y * self.weight2[:, self._deg2].to(y.dtype)
        z = gaunt_product(x, y, lmax_out=self.lmax_out, normalization=self.normalization,
                          backend=self.resolution)
        return z * self.weight_out[:, self._deg_out].to(z.dtype)

    def extra_repr(self) -> str:
        return (f"lmax_in=({self.lmax_in1}, {self.lmax_in2}), lmax_out={self.lmax_out}, "
                f"channels={self.channels}, normalization={self.normalization!r}, "
                f"backend={self.backend!r}")


def cg_tensor_product(x: torch.Tensor, l1: int, y: torch.Tensor, l2: int,
                      l3: int) -> torch.Tensor:
    """One Clebsch–Gordan path ``(x ⊗ y)_{l3}``, for the paths with l1 + l2 + l3 odd (e.g. the
    cross product 1 ⊗ 1 → 1) that the Gaunt product cannot form.

    Parameters
    ----------
    x : torch.Tensor
        (..., 2·l1+1) float, one irrep of degree l1 (e3nn basis).
    y : torch.Tensor
        (..., 2·l2+1) float.
    l1, l2, l3 : int
        Degrees; |l1 - l2| ≤ l3 ≤ l1 + l2.

    Returns
    -------
    torch.Tensor
        (..., 2·l3+1), ``z_k = Σ_ij C_ijk x_i y_j`` with C = ``tensormol.so3.wigner_3j`` (unit
        Frobenius norm). The output parity is the product of the input parities.
    """
    from tensormol.so3 import wigner_3j

    if x.shape[-1] != 2 * l1 + 1 or y.shape[-1] != 2 * l2 + 1:
        raise ValueError(f"x and y must end in dimensions {2 * l1 + 1} and {2 * l2 + 1} for "
                         f"l1={l1}, l2={l2}; got {x.shape[-1]} and {y.shape[-1]}")
    C = wigner_3j(l1, l2, l3, dtype=x.dtype, device=x.device)
    return torch.einsum("...i,...j,ijk->...k", x, y, C)
