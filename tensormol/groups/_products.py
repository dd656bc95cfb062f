"""Products ``x ↦ Σ_d (W_d ⊗ M_d) x`` of a weighted spanning set with a tensor, three ways.

- :class:`DiagramProduct` (fast): each diagram is applied as a small tensor network, never as an
  ``n^l × n^k`` matrix. This is the diagram-wise multiplication of Pearce-Crump and Godfrey et
  al.: *permute and contract* the input legs (one ``einsum`` that takes generalised diagonals,
  sums the bottom-only blocks and contracts ``J`` / ``ε`` factors), mix channels with the
  diagram's weight while permuting the surviving legs into output order, then *copy* the result
  onto the output (broadcast along top-only blocks, write onto generalised diagonals).
  Diagrams that share the bottom half reuse one contraction; diagrams that share the top half
  share one copy.
- :class:`DenseProduct` (the slow, obviously correct twin): builds
  ``W = Σ_d W_d ⊗ M_d`` from the stored matrices and multiplies.
- :class:`OrbitProduct` (Aut(G)): the orbit basis has no diagram structure; the weight matrix is
  gathered from the orbit labels (no ``num_orbits × n^{l+k}`` stack), then multiplied.

All three take ``x`` of shape ``(B, n, …, n, C)`` (``k`` legs) and per-basis-element weights
``(D, O, C)`` and return ``(B, n**l, O)``.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ._diagrams import Diagram
from ._matrices import levi_civita_tensor, symplectic_form

__all__ = [
    "DiagramProduct", "DenseProduct", "OrbitProduct", "diagram_scale", "orbit_scales",
    "transpose_diagram",
]

_Z, _C, _O = "Z", "C", "O"  # batch, input channel, output channel
_LETTERS = [c for c in string.ascii_letters if c not in (_Z, _C, _O)]


@dataclass(frozen=True)
class _Program:
    key1: tuple  # identifies the bottom contraction (shared across diagrams)
    eq1: str
    ops1: tuple[str, ...]
    eq3: str
    ops3: tuple[str, ...]
    top_key: tuple  # (class of each top vertex, whether each class is produced)
    eqw: str  # <gy, M_d x> as one contraction: gy, x, factors -> OC
    opsw: tuple[str, ...]


class _UnionFind:
    def __init__(self, m: int) -> None:
        self.p = list(range(m))

    def find(self, a: int) -> int:
        while self.p[a] != a:
            self.p[a] = self.p[self.p[a]]
            a = self.p[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.p[max(ra, rb)] = min(ra, rb)


def _structure(d: Diagram, form: str):
    """δ-classes (union-find) and the J / ε factors of a diagram."""
    uf = _UnionFind(d.num_vertices)
    factors: list[tuple[str, tuple[int, ...]]] = []
    for b in d.blocks:
        if form == "symplectic" and len(b) == 2 and d.is_top(b[0]) == d.is_top(b[1]):
            factors.append(("J", b))
        else:
            for v in b[1:]:
                uf.union(b[0], v)
    if d.free:
        factors.append(("eps", d.free))
    return uf, factors


def diagram_scale(d: Diagram, n: int, form: str) -> float:
    """``sqrt(R / F)``: ``R`` non-zero rows and ``F`` squared Frobenius norm of the diagram matrix.

    With this factor a diagram maps unit-variance i.i.d. inputs to unit-variance outputs on its
    support, so that weights of order one give outputs of order one whatever ``n``.
    """
    uf, factors = _structure(d, form)
    attached = {v for _, vs in factors for v in vs}
    classes: dict[int, list[int]] = {}
    for v in range(d.num_vertices):
        classes.setdefault(uf.find(v), []).append(v)
    # Each bottom-only δ-class and each bottom J pair sums over n values: F gains n, R does not.
    exponent = sum(
        1 for vs in classes.values()
        if all(not d.is_top(v) for v in vs) and not attached.intersection(vs)
    )
    exponent += sum(1 for name, vs in factors if name == "J" and not d.is_top(vs[0]))
    ratio = float(n) ** (-exponent)
    if d.free:
        ratio /= math.factorial(sum(1 for v in d.free if not d.is_top(v)))
    return math.sqrt(ratio)


def orbit_scales(labels: np.ndarray, num: int) -> np.ndarray:
    """``sqrt(R / F)`` for each orbit matrix given the ``(n**l, n**k)`` orbit labels."""
    f = np.bincount(labels.reshape(-1), minlength=num).astype(np.float64)
    rows = np.repeat(np.arange(labels.shape[0]), labels.shape[1])
    pairs = np.unique(rows * num + labels.reshape(-1))
    r = np.bincount(pairs % num, minlength=num).astype(np.float64)
    return np.sqrt(r / np.maximum(f, 1.0))


def _compile(d: Diagram, form: str) -> _Program:
    l, m = d.l, d.num_vertices
    uf, factors = _structure(d, form)
    node = [uf.find(v) for v in range(m)]
    bottom = list(range(l, m))
    f1 = [f for f in factors if any(v >= l for v in f[1])]
    f3 = [f for f in factors if all(v < l for v in f[1])]
    # Stage 1 (contract): canonical letters in order of first appearance, so identical bottom
    # halves of different diagrams give the same equation and share one einsum.
    canon: dict[int, int] = {}
    for nd in [node[v] for v in bottom] + [node[v] for _, vs in f1 for v in vs]:
        canon.setdefault(nd, len(canon))
    top_nodes = [node[v] for v in range(l)]
    out1 = sorted((nd for nd in canon if nd in set(top_nodes)), key=canon.__getitem__)

    def s1(nds) -> str:
        return "".join(_LETTERS[canon[nd]] for nd in nds)

    eq1 = ",".join([_Z + s1(node[v] for v in bottom) + _C]
                   + [s1(node[v] for v in vs) for _, vs in f1]) + "->" + _Z + s1(out1) + _C
    ops1 = tuple(name for name, _ in f1)
    # Stage 3 (mix channels, permute, apply top-only factors).
    classes: list[int] = []
    for nd in top_nodes:
        if nd not in classes:
            classes.append(nd)
    f3_nodes = {node[v] for _, vs in f3 for v in vs}
    present = tuple(nd in set(out1) or nd in f3_nodes for nd in classes)
    letter3: dict[int, str] = {}
    for nd in out1 + [node[v] for _, vs in f3 for v in vs] + classes:
        letter3.setdefault(nd, _LETTERS[len(letter3)])

    def s3(nds) -> str:
        return "".join(letter3[nd] for nd in nds)

    eq3 = ",".join([_Z + s3(out1) + _C, _O + _C] + [s3(node[v] for v in vs) for _, vs in f3])
    eq3 += "->" + _Z + s3(nd for nd, p in zip(classes, present) if p) + _O
    top_key = (tuple(classes.index(nd) for nd in top_nodes), present)
    # Weight gradient: the whole tensor network closed by the output cotangent.
    letterw: dict[int, str] = {}
    for nd in node:
        letterw.setdefault(nd, _LETTERS[len(letterw)])
    eqw = ",".join([_Z + "".join(letterw[node[v]] for v in range(l)) + _O,
                    _Z + "".join(letterw[node[v]] for v in bottom) + _C]
                   + ["".join(letterw[node[v]] for v in vs) for _, vs in factors]) + "->" + _O + _C
    return _Program((eq1, ops1), eq1, ops1, eq3, tuple(name for name, _ in f3), top_key, eqw,
                    tuple(name for name, _ in factors))


def transpose_diagram(d: Diagram) -> tuple[Diagram, int]:
    """The diagram of ``M_dᵀ`` (rows swapped) and the sign ``s`` with ``M_dᵀ = s M_{dᵀ}``.

    Same-row pairs keep their left-to-right order, so ``δ`` and ``J`` factors are unchanged; the
    free vertices of ε are re-ordered bottom-first, a permutation of sign ``(-1)^{t b}``.
    """
    k, l = d.k, d.l

    def move(v: int) -> int:
        return v - l if v >= l else k + v

    blocks = tuple(tuple(move(v) for v in b) for b in d.blocks)
    free = tuple(move(v) for v in d.free)
    t = sum(1 for v in d.free if v < l)
    sign = -1 if (t * (len(d.free) - t)) % 2 else 1
    return Diagram(l, k, blocks, free=free), sign


def _placement_index(top_key: tuple, n: int, l: int) -> np.ndarray | None:
    """Flat output positions of the generalised diagonal, or None when it is the identity."""
    cls, present = top_key
    r = len(present)
    if r == l and all(present) and cls == tuple(range(l)):
        return None
    idx = np.zeros(1, dtype=np.int64)
    for c in range(r):
        stride = sum(n ** (l - 1 - v) for v in range(l) if cls[v] == c)
        idx = (idx[:, None] + np.arange(n, dtype=np.int64)[None, :] * stride).reshape(-1)
    return idx


class DiagramProduct(nn.Module):
    """Fast product with the matrices of ``diagrams`` (set-partition, Brauer, Levi-Civita).

    Parameters
    ----------
    diagrams : sequence of Diagram
        All with the same ``k`` and ``l``.
    n : int
        Dimension of ``R^n``.
    k, l : int
        Input and output orders.
    form : {"orthogonal", "symplectic"}
    dtype : torch.dtype
        Dtype of the stored ``J`` / ``ε`` factors (cast to the input's dtype when they differ).
    """

    def __init__(self, diagrams, n: int, k: int, l: int, form: str = "orthogonal",
                 dtype: torch.dtype = torch.float32, _with_transpose: bool = True) -> None:
        super().__init__()
        diagrams = list(diagrams)
        self.n, self.k, self.l, self.form = n, k, l, form
        for d in diagrams:
            if d.k != k or d.l != l:
                raise ValueError(f"diagram {d} does not map order {k} to order {l}")
        self.programs = [_compile(d, form) for d in diagrams]
        names = {name for p in self.programs for name in p.ops1 + p.ops3}
        if "J" in names:
            self.register_buffer("J", symplectic_form(n, dtype), persistent=False)
        if "eps" in names:
            self.register_buffer("eps", levi_civita_tensor(n, dtype), persistent=False)
        self.top_keys: list[tuple] = []
        for p in self.programs:
            if p.top_key not in self.top_keys:
                self.top_keys.append(p.top_key)
        self._key_slot = {key: i for i, key in enumerate(self.top_keys)}
        for i, key in enumerate(self.top_keys):
            idx = _placement_index(key, n, l)
            self.register_buffer(f"place_{i}", None if idx is None else torch.from_numpy(idx),
                                 persistent=False)
        if _with_transpose:
            pairs = [transpose_diagram(d) for d in diagrams]
            self.transposed = DiagramProduct([t for t, _ in pairs], n, l, k, form, dtype,
                                             _with_transpose=False)
            self.register_buffer("signs", torch.tensor([float(sg) for _, sg in pairs],
                                                       dtype=dtype), persistent=False)

    def _factor(self, name: str, x: torch.Tensor) -> torch.Tensor:
        t = getattr(self, name)
        return t if t.dtype == x.dtype else t.to(x.dtype)

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, n, …, n, C)``; ``weight``: ``(D, O, C)`` → ``(B, n**l, O)``."""
        if not hasattr(self, "transposed"):
            return self.apply_diagrams(x, weight)
        return _FastProduct.apply(x, weight, self, self.transposed, self.signs)

    def weight_grad(self, x: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
        """``∂/∂W_d <gy, Σ_d (W_d ⊗ M_d) x>``: ``(D, O, C)`` from ``x`` and ``gy (B, n**l, O)``."""
        gyl = gy.reshape((gy.shape[0],) + (self.n,) * self.l + (gy.shape[-1],))
        return torch.stack([
            torch.einsum(p.eqw, gyl, x, *[self._factor(f, x) for f in p.opsw])
            for p in self.programs
        ])

    def apply_diagrams(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The diagram-wise product itself (plain autograd through it)."""
        b, o, n, l = x.shape[0], weight.shape[1], self.n, self.l
        contracted: dict[tuple, torch.Tensor] = {}
        acc: dict[tuple, torch.Tensor] = {}
        for prog, w in zip(self.programs, weight):
            t1 = contracted.get(prog.key1)
            if t1 is None:
                t1 = torch.einsum(prog.eq1, x, *[self._factor(f, x) for f in prog.ops1])
                contracted[prog.key1] = t1
            t3 = torch.einsum(prog.eq3, t1, w, *[self._factor(f, x) for f in prog.ops3])
            prev = acc.get(prog.top_key)
            acc[prog.top_key] = t3 if prev is None else prev + t3
        out = x.new_zeros(b, n**l, o)
        for key, t in acc.items():
            cls, present = key
            r = len(present)
            t = t.reshape(b, *[n if p else 1 for p in present], o)
            t = t.expand(b, *[n] * r, o).reshape(b, n**r, o)
            idx = getattr(self, f"place_{self._key_slot[key]}")
            # In place on a fresh buffer: no copy of the whole output per top pattern.
            if idx is None:
                out += t
            else:
                out.index_add_(1, idx, t)
        return out


class _FastProduct(torch.autograd.Function):
    """Diagram-wise product whose backward is the diagram-wise product with the transposed
    diagrams (into one gradient buffer), instead of autograd through every diagonal view.

    The backward is built from differentiable operations (the transposed product is this same
    Function), so double backward works too.
    """

    @staticmethod
    def forward(ctx, x, weight, prod, prod_t, signs):
        ctx.save_for_backward(x, weight, signs)
        ctx.prods = (prod, prod_t)
        return prod.apply_diagrams(x, weight)

    @staticmethod
    def backward(ctx, gy):
        x, weight, signs = ctx.saved_tensors
        prod, prod_t = ctx.prods
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gyl = gy.reshape((gy.shape[0],) + (prod.n,) * prod.l + (gy.shape[-1],))
            wt = (weight * signs.to(weight.dtype)[:, None, None]).transpose(1, 2)
            gx = _FastProduct.apply(gyl, wt, prod_t, prod, signs).reshape(x.shape)
        if ctx.needs_input_grad[1]:
            gw = prod.weight_grad(x, gy)
        return gx, gw, None, None, None


class DenseProduct(nn.Module):
    """Dense twin: ``W = Σ_d W_d ⊗ M_d`` from stored ``(D, n**l, n**k)`` matrices, then ``W x``."""

    def __init__(self, basis: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("basis", basis, persistent=False)

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        d, nl, nk = self.basis.shape
        o, c = weight.shape[1], weight.shape[2]
        basis = self.basis if self.basis.dtype == x.dtype else self.basis.to(x.dtype)
        w = torch.einsum("doc,dij->iojc", weight, basis).reshape(nl * o, nk * c)
        return (x.reshape(b, nk * c) @ w.T).reshape(b, nl, o)


class OrbitProduct(nn.Module):
    """Aut(G) product: gather ``W[i, j] = weight[label(i, j)]`` from orbit labels, then ``W x``."""

    def __init__(self, labels: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("labels", labels, persistent=False)

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        nl, nk = self.labels.shape
        o, c = weight.shape[1], weight.shape[2]
        w = weight[self.labels]  # (n**l, n**k, O, C)
        w = w.permute(0, 2, 1, 3).reshape(nl * o, nk * c)
        return (x.reshape(b, nk * c) @ w.T).reshape(b, nl, o)
