"""Group kinds, their representation on R^n, random elements, and the spanning sets.

A *group* argument is one of the strings ``"S_n"``, ``"O(n)"``, ``"SO(n)"``, ``"Sp(n)"`` or an
:class:`AutomorphismGroup`. Group elements are

- ``S_n``, ``Aut(G)``: permutations, int64 tensors ``(..., n)`` with ``σ[i]`` the image of ``i``;
  ``ρ(σ)`` is the permutation matrix with ``ρ(σ) e_i = e_{σ(i)}``;
- ``O(n)``, ``SO(n)``, ``Sp(n)``: the ``(..., n, n)`` matrices themselves (``ρ(g) = g``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Union

import numpy as np
import torch

from .._validate import check_int_ge, check_tensor
from ..registry import suggest
from ._automorphism import AutomorphismGroup
from ._diagrams import Diagram, brauer_diagrams, levi_civita_diagrams, set_partition_diagrams
from ._matrices import diagram_matrix, partition_flat_indices, symplectic_form

__all__ = [
    "GROUP_KINDS",
    "GroupLike",
    "group_kind",
    "diagrams",
    "diagram_form",
    "spanning_set",
    "orbit_basis",
    "representation",
    "random_elements",
    "tensor_power_action",
]

GROUP_KINDS = ("S_n", "O(n)", "SO(n)", "Sp(n)")
GroupLike = Union[str, AutomorphismGroup]  # noqa: UP007 (a runtime alias)


def group_kind(group: GroupLike, n: int | None = None) -> str:
    """Validate ``group`` (and ``n`` against it) and return its kind: one of GROUP_KINDS or "Aut".

    Raises
    ------
    ValueError
        For an unknown name, an odd ``n`` with Sp(n), or ``n`` different from the graph size.
    """
    if isinstance(group, AutomorphismGroup):
        if n is not None and n != group.n:
            raise ValueError(f"n={n} does not match the graph's {group.n} vertices")
        return "Aut"
    if not isinstance(group, str) or group not in GROUP_KINDS:
        hint = suggest(group, GROUP_KINDS) if isinstance(group, str) else ""
        raise ValueError(
            f"group must be one of {', '.join(GROUP_KINDS)} or an AutomorphismGroup, "
            f"got {group!r}{hint}"
        )
    if n is not None:
        check_int_ge(n, "n", 1)
        if group == "Sp(n)" and n % 2:
            raise ValueError(f"Sp(n) needs an even n (the symplectic form J), got n={n}")
    return group


def diagram_form(group: GroupLike) -> str:
    """``"symplectic"`` for Sp(n), ``"orthogonal"`` for the other diagram groups."""
    return "symplectic" if group_kind(group) == "Sp(n)" else "orthogonal"


def diagrams(group: GroupLike, n: int, k: int, l: int) -> tuple[Diagram, ...]:
    """The diagrams whose matrices span ``Hom_G((R^n)^{⊗k}, (R^n)^{⊗l})``.

    - ``S_n``: set partitions of ``k + l`` vertices with at most ``n`` blocks (a basis).
    - ``O(n)``, ``Sp(n)``: Brauer diagrams (a spanning set).
    - ``SO(n)``: Brauer diagrams followed by the ``(l+k)\\n`` Levi-Civita diagrams.

    ``Aut(G)`` has no diagrams: use :func:`orbit_basis`.
    """
    kind = group_kind(group, n)
    check_int_ge(k, "k", 0)
    check_int_ge(l, "l", 0)
    if kind == "Aut":
        raise TypeError("an AutomorphismGroup has an orbit basis, not diagrams; use orbit_basis")
    if kind == "S_n":
        return set_partition_diagrams(k, l, max_blocks=n)
    if kind == "SO(n)":
        return brauer_diagrams(k, l) + levi_civita_diagrams(k, l, n)
    return brauer_diagrams(k, l)


def orbit_basis(group: AutomorphismGroup, k: int, l: int,
                dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Orbit basis of ``Aut(G)`` on ``Hom((R^n)^{⊗k}, (R^n)^{⊗l})``.

    Returns
    -------
    torch.Tensor
        ``(num_orbits, n**l, n**k)`` 0/1 matrices, one per orbit of ``Aut(G)`` on ``[n]^{l+k}``
        (rows: the ``l`` output indices, columns: the ``k`` input indices).
    """
    if not isinstance(group, AutomorphismGroup):
        raise TypeError(f"group must be an AutomorphismGroup, got {type(group).__name__}")
    check_int_ge(k, "k", 0)
    check_int_ge(l, "l", 0)
    labels, num = group.orbit_labels(k + l)
    n = group.n
    out = torch.zeros(num, n ** (k + l), dtype=dtype)
    out[torch.from_numpy(labels), torch.arange(n ** (k + l))] = 1.0
    return out.reshape(num, n**l, n**k)


@lru_cache(maxsize=128)
def _spanning_set_np(kind: str, n: int, k: int, l: int) -> np.ndarray:
    ds = diagrams(kind, n, k, l)
    form = "symplectic" if kind == "Sp(n)" else "orthogonal"
    if kind in ("S_n", "O(n)"):
        out = np.zeros((len(ds), n ** (k + l)))
        for i, d in enumerate(ds):
            out[i, partition_flat_indices(d.blocks, k + l, n)] = 1.0
    else:
        out = np.stack([diagram_matrix(d, n, form=form).reshape(-1).numpy() for d in ds]) if ds \
            else np.zeros((0, n ** (k + l)))
    out = out.reshape(len(ds), n**l, n**k)
    out.setflags(write=False)
    return out


def spanning_set(group: GroupLike, n: int, k: int, l: int,
                 dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A spanning set of the ``G``-equivariant linear maps ``(R^n)^{⊗k} → (R^n)^{⊗l}``.

    Parameters
    ----------
    group : str or AutomorphismGroup
        ``"S_n"``, ``"O(n)"``, ``"SO(n)"``, ``"Sp(n)"`` (``n`` even, symplectic basis), or an
        :class:`AutomorphismGroup` built from a graph with ``n`` vertices.
    n : int
        Dimension of ``R^n``, ``>= 1``.
    k, l : int
        Input and output tensor orders, ``>= 0``.
    dtype : torch.dtype
        Floating dtype of the result.

    Returns
    -------
    torch.Tensor
        ``(num_diagrams, n**l, n**k)``, dimensionless: the matrices of :func:`diagrams` (or of
        the orbit basis for ``Aut(G)``), in the same order. A basis for ``S_n`` and ``Aut(G)``;
        linearly dependent for ``O(n)``, ``SO(n)``, ``Sp(n)`` when ``n`` is small against
        ``k + l``. Empty (first dimension 0) when only the zero map is equivariant.
    """
    kind = group_kind(group, n)
    check_int_ge(k, "k", 0)
    check_int_ge(l, "l", 0)
    if kind == "Aut":
        return orbit_basis(group, k, l, dtype=dtype)
    return torch.tensor(_spanning_set_np(kind, n, k, l), dtype=dtype)


def _as_perm(g: object, n: int, name: str) -> torch.Tensor:
    g = torch.as_tensor(g)
    if g.dtype.is_floating_point or g.dtype == torch.bool or g.dim() < 1 or g.shape[-1] != n:
        raise ValueError(
            f"{name} must be an integer permutation tensor of shape (..., {n}), got "
            f"dtype {g.dtype} and shape {tuple(g.shape)}"
        )
    g = g.long()
    if not torch.equal(g.sort(dim=-1).values, torch.arange(n).expand_as(g)):
        raise ValueError(f"{name} must hold permutations of 0..{n - 1}")
    return g


def representation(group: GroupLike, n: int, g: object) -> torch.Tensor:
    """The matrix ``ρ(g)`` of group element(s) ``g`` acting on ``R^n``.

    Parameters
    ----------
    group : str or AutomorphismGroup
    n : int
    g : torch.Tensor
        Permutations ``(..., n)`` int64 for ``S_n`` and ``Aut(G)`` (checked to be automorphisms
        of the graph); matrices ``(..., n, n)`` for ``O(n)``, ``SO(n)``, ``Sp(n)``, checked to
        belong to the group to ``1e-6`` relative accuracy.

    Returns
    -------
    torch.Tensor
        ``(..., n, n)``; float64 for permutations, ``g``'s dtype for matrices.
    """
    kind = group_kind(group, n)
    if kind in ("S_n", "Aut"):
        perm = _as_perm(g, n, "g")
        if kind == "Aut":
            a = torch.from_numpy(group.adjacency)
            flat = perm.reshape(-1, n)
            for s in flat:
                if not torch.equal(a[s][:, s], a):
                    raise ValueError("g is a permutation but not an automorphism of the graph")
        rho = torch.zeros(*perm.shape, n, dtype=torch.float64)
        # ρ(σ)[σ(i), i] = 1.
        rho.scatter_(-2, perm.unsqueeze(-2), 1.0)
        return rho
    g = check_tensor(g, "g", floating=True)
    if g.dim() < 2 or g.shape[-2:] != (n, n):
        raise ValueError(f"g must have shape (..., {n}, {n}), got {tuple(g.shape)}")
    eye = torch.eye(n, dtype=g.dtype, device=g.device)
    scale = max(1.0, float(g.abs().max())) ** 2
    tol = 1e-6 * scale * (1 if g.dtype == torch.float64 else 1e3)
    if kind in ("O(n)", "SO(n)"):
        err = (g.transpose(-1, -2) @ g - eye).abs().max()
        if err > tol:
            raise ValueError(f"g is not orthogonal (max |gᵀg - I| = {float(err):.2e})")
        if kind == "SO(n)":
            det = torch.linalg.det(g.to(torch.float64))
            if bool((det < 0).any()):
                raise ValueError("g has determinant -1; SO(n) needs determinant +1")
    else:
        j = symplectic_form(n, g.dtype).to(g.device)
        err = (g.transpose(-1, -2) @ j @ g - j).abs().max()
        if err > tol:
            raise ValueError(f"g is not symplectic (max |gᵀJg - J| = {float(err):.2e})")
    return g


def _haar_orthogonal(num: int, n: int, gen: torch.Generator | None, dtype) -> torch.Tensor:
    a = torch.randn(num, n, n, generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    # Fix the QR sign ambiguity so the distribution is Haar (Mezzadri 2007).
    d = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))
    d[d == 0] = 1.0
    return (q * d.unsqueeze(-2)).to(dtype)


def _haar_unitary(num: int, m: int, gen: torch.Generator | None) -> torch.Tensor:
    a = torch.complex(
        torch.randn(num, m, m, generator=gen, dtype=torch.float64),
        torch.randn(num, m, m, generator=gen, dtype=torch.float64),
    )
    q, r = torch.linalg.qr(a)
    d = torch.diagonal(r, dim1=-2, dim2=-1)
    return q * (d / d.abs()).unsqueeze(-2)


def random_elements(group: GroupLike, n: int, num: int, *, generator: torch.Generator | None = None,
                    dtype: torch.dtype = torch.float64, spread: float = 0.5) -> torch.Tensor:
    """Random group elements.

    Parameters
    ----------
    group : str or AutomorphismGroup
    n : int
    num : int
        How many elements.
    generator : torch.Generator, optional
        Source of randomness (CPU generator).
    dtype : torch.dtype
        Dtype of matrix elements (ignored for permutations, which are int64).
    spread : float
        Sp(n) only: scale of the non-compact part. Elements are ``K₁ exp(J S) K₂`` with ``K``
        Haar on ``Sp(n) ∩ O(n) ≅ U(n/2)`` and ``S`` symmetric Gaussian of scale ``spread``, so the
        condition number stays moderate.

    Returns
    -------
    torch.Tensor
        ``(num, n)`` int64 permutations (S_n: uniform; Aut(G): uniform over the group), or
        ``(num, n, n)`` matrices (O(n), SO(n): Haar; Sp(n): as above).
    """
    kind = group_kind(group, n)
    check_int_ge(num, "num", 0)
    if kind == "S_n":
        return torch.stack([torch.randperm(n, generator=generator) for _ in range(num)]) \
            if num else torch.zeros(0, n, dtype=torch.long)
    if kind == "Aut":
        idx = torch.randint(group.order, (num,), generator=generator)
        return torch.from_numpy(group.elements)[idx]
    if kind in ("O(n)", "SO(n)"):
        q = _haar_orthogonal(num, n, generator, torch.float64)
        if kind == "SO(n)":
            flip = torch.linalg.det(q) < 0
            q[flip, :, 0] = -q[flip, :, 0]
        return q.to(dtype)
    m = n // 2

    def compact() -> torch.Tensor:
        u = _haar_unitary(num, m, generator)
        a, b = u.real, u.imag
        return torch.cat([torch.cat([a, -b], -1), torch.cat([b, a], -1)], -2)

    s = torch.randn(num, n, n, generator=generator, dtype=torch.float64) * spread
    s = 0.5 * (s + s.transpose(-1, -2))
    j = symplectic_form(n)
    g = compact() @ torch.linalg.matrix_exp(j @ s) @ compact()
    return g.to(dtype)


def tensor_power_action(rho: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
    """Apply ``ρ^{⊗k}`` to a channels-last tensor: ``x' = ρ^{⊗k} x`` leg by leg.

    Parameters
    ----------
    rho : torch.Tensor
        ``(n, n)`` representation matrix.
    x : torch.Tensor
        ``(*batch, n, …, n, c)`` with ``k`` legs of size ``n`` before the channel axis.
    k : int
        Tensor order.

    Returns
    -------
    torch.Tensor
        Same shape as ``x``: ``x'[..., i_1 … i_k, c] = Σ_j ρ[i_1, j_1] ⋯ ρ[i_k, j_k] x[..., j, c]``.
    """
    check_int_ge(k, "k", 0)
    rho = check_tensor(rho, "rho", ndim=2)
    n = rho.shape[0]
    if x.dim() < k + 1 or any(s != n for s in x.shape[x.dim() - 1 - k : x.dim() - 1]):
        raise ValueError(
            f"x must have shape (*batch, {', '.join([str(n)] * k + ['c'])}), got {tuple(x.shape)}"
        )
    rho = rho.to(dtype=x.dtype, device=x.device)
    for leg in range(k):
        dim = x.dim() - 1 - k + leg
        x = torch.movedim(torch.tensordot(x, rho, dims=([dim], [1])), -1, dim)
    return x
