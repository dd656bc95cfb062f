"""``EquivariantLinear``: learnable G-equivariant maps between tensor power spaces of R^n.

For ``G`` one of S_n, O(n), SO(n), Sp(n), Aut(G) the layer is

    y = Σ_d  (W_d ⊗ s_d M_d) x  +  Σ_b  β_b ⊗ B_b,

``M_d`` the spanning set of :func:`~tensormol.groups.spanning_set` for ``(k → l)``, ``W_d`` a
learnable ``(c_out, c_in)`` matrix per spanning element, ``s_d`` a fixed normalisation
(:func:`~tensormol.groups._products.diagram_scale`), and the bias a learnable combination of the
spanning set for ``(0 → l)``: the equivariant vectors of ``(R^n)^{⊗l}``, times ``R^{c_out}``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._validate import check_int_ge, check_tensor
from ._groups import GroupLike, diagram_form, diagrams, group_kind, spanning_set
from ._products import (
    DenseProduct,
    DiagramProduct,
    OrbitProduct,
    diagram_scale,
    orbit_scales,
)

__all__ = ["EquivariantLinear"]

BACKENDS = ("fast", "dense")


def _product(group: GroupLike, n: int, k: int, l: int, backend: str, dtype: torch.dtype):
    """The product module and the per-element scales for one (k → l) spanning set."""
    kind = group_kind(group, n)
    if kind == "Aut":
        labels, num = group.orbit_labels(k + l)
        lab = labels.reshape(n**l, n**k)
        scales = torch.tensor(orbit_scales(lab, num), dtype=dtype)
        if backend == "dense":
            return DenseProduct(spanning_set(group, n, k, l, dtype=dtype)), scales
        return OrbitProduct(torch.from_numpy(lab)), scales
    ds = diagrams(group, n, k, l)
    form = diagram_form(group)
    scales = torch.tensor([diagram_scale(d, n, form) for d in ds], dtype=dtype)
    if backend == "dense":
        return DenseProduct(spanning_set(group, n, k, l, dtype=dtype)), scales
    return DiagramProduct(ds, n, k, l, form=form, dtype=dtype), scales


class EquivariantLinear(nn.Module):
    """A G-equivariant linear layer ``(R^n)^{⊗k} ⊗ R^{c_in} → (R^n)^{⊗l} ⊗ R^{c_out}``.

    Parameters
    ----------
    group : str or AutomorphismGroup
        ``"S_n"``, ``"O(n)"``, ``"SO(n)"``, ``"Sp(n)"`` (``n`` even; symplectic basis with
        ``J = [[0, I], [-I, 0]]``), or an :class:`~tensormol.groups.AutomorphismGroup`.
    n : int
        Dimension of ``R^n`` (the graph's vertex count for ``Aut(G)``).
    k, l : int
        Input and output tensor orders, ``>= 0``.
    c_in, c_out : int
        Input and output channels, ``>= 1``.
    bias : bool
        Add the equivariant bias ``Σ_b β_b ⊗ B_b`` (none exists for O(n), Sp(n) with odd ``l``).
    backend : {"fast", "dense"}
        ``"fast"``: diagram-wise products (permute, contract, copy) that never build an
        ``n^l × n^k`` matrix; for ``Aut(G)`` the weight matrix is gathered from orbit labels.
        ``"dense"``: the stored spanning set, as a reference. Both have identical parameters
        and ``state_dict``.
    dtype : torch.dtype
        Parameter dtype (float32 by default).
    device : torch.device, optional

    Attributes
    ----------
    weight : torch.nn.Parameter
        ``(num_basis, c_out, c_in)``, one channel-mixing matrix per spanning element.
    bias_weight : torch.nn.Parameter or None
        ``(num_bias_basis, c_out)``.

    Shapes
    ------
    input ``(*batch, n, …, n, c_in)`` with ``k`` legs; output ``(*batch, n, …, n, c_out)`` with
    ``l`` legs, in the input's dtype (which must equal the parameters' dtype).

    Notes
    -----
    Equivariance: ``layer(ρ(g)^{⊗k} x) = ρ(g)^{⊗l} layer(x)`` with ``ρ(g)`` acting on every leg
    (:func:`~tensormol.groups.tensor_power_action`). When ``Hom_G`` is zero (e.g. O(n) with
    ``k + l`` odd) the weight is empty and the layer returns the bias (or zeros).
    """

    def __init__(self, group: GroupLike, n: int, k: int, l: int, c_in: int, c_out: int, *,
                 bias: bool = True, backend: str = "fast", dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        self.kind = group_kind(group, n)
        self.n = check_int_ge(n, "n", 1)
        self.k = check_int_ge(k, "k", 0)
        self.l = check_int_ge(l, "l", 0)
        self.c_in = check_int_ge(c_in, "c_in", 1)
        self.c_out = check_int_ge(c_out, "c_out", 1)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        self.backend = backend
        self.group = group
        self.product, scales = _product(group, n, k, l, backend, dtype)
        self.register_buffer("scales", scales, persistent=False)
        num = int(scales.shape[0])
        std = 1.0 / math.sqrt(max(num * c_in, 1))
        self.weight = nn.Parameter(torch.randn(num, c_out, c_in, dtype=dtype) * std)
        if bias:
            self.bias_product, bscales = _product(group, n, 0, l, backend, dtype)
            self.register_buffer("bias_scales", bscales, persistent=False)
            self.bias_weight = nn.Parameter(torch.zeros(int(bscales.shape[0]), c_out, dtype=dtype))
        else:
            self.bias_product = None
            self.register_parameter("bias_weight", None)
        if device is not None:
            self.to(device)

    @property
    def num_weights(self) -> int:
        """Number of basis elements (``weight.shape[0]``)."""
        return int(self.weight.shape[0])

    def extra_repr(self) -> str:
        g = self.kind if self.kind != "Aut" else repr(self.group)
        return (f"group={g}, n={self.n}, k={self.k}, l={self.l}, c_in={self.c_in}, "
                f"c_out={self.c_out}, num_weights={self.num_weights}, "
                f"bias={self.bias_weight is not None}, backend={self.backend!r}")

    def equivariant_bias(self) -> torch.Tensor:
        """The bias tensor ``Σ_b β_b ⊗ B_b``, shape ``(n, …, n, c_out)`` with ``l`` legs."""
        shape = (self.n,) * self.l + (self.c_out,)
        if self.bias_weight is None or self.bias_weight.shape[0] == 0:
            return self.weight.new_zeros(shape)
        one = self.weight.new_ones(1, 1)
        w = (self.bias_weight * self.bias_scales[:, None]).unsqueeze(-1)  # (Db, O, 1)
        return self.bias_product(one, w).reshape(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, n = self.k, self.n
        x = check_tensor(x, "x", floating=True)
        lead = x.dim() - k - 1
        if lead < 0 or tuple(x.shape[lead:]) != (n,) * k + (self.c_in,):
            want = ", ".join(["*batch"] + [str(n)] * k + [str(self.c_in)])
            raise ValueError(f"x must have shape ({want}), got {tuple(x.shape)}")
        if x.dtype != self.weight.dtype:
            raise TypeError(
                f"x has dtype {x.dtype} but the layer's parameters are {self.weight.dtype}; "
                "convert one of them (e.g. layer.to(x.dtype))"
            )
        batch = x.shape[:lead]
        b = int(math.prod(batch))
        xb = x.reshape((b,) + (n,) * k + (self.c_in,))
        if self.num_weights:
            w = self.weight * self.scales[:, None, None]
            y = self.product(xb, w)
        else:
            y = x.new_zeros(b, n**self.l, self.c_out)
        y = y.reshape(batch + (n,) * self.l + (self.c_out,))
        if self.bias_weight is not None and self.bias_weight.shape[0]:
            y = y + self.equivariant_bias()
        return y
