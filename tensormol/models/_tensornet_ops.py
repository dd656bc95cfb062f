"""Edge operations of TensorNet, fused over blocks of edges so no (9, E, H) tensor is ever stored.

Tensor features live on atoms as ``(9, M, H)`` (the 1 + 3 + 5 irreducible components of
:mod:`tensormol.models._irreducible`). Per edge ``e = (i, j)`` TensorNet forms a 9 x H product and
sums it onto atom ``i``. Written plainly, each such step allocates an (9, E, H) tensor, keeps it for
the backward pass and streams it through memory several times: for a 1,500-atom water box that is
~370 MB per tensor, and memory traffic (and page faults on fresh allocations), not arithmetic,
sets the speed.

The five operations below run block by block (a few hundred edges at a time) through reused
buffers, so per-edge products stay in cache and only node tensors, per-pair filters and small
per-edge tensors are stored. They form a family closed under differentiation (each backward is
made of members of the family), so forces (first derivatives) and training on forces (second
derivatives) go through the same fused code, to any order. Without ``create_graph`` the backward
of :func:`message_passing` gathers the incoming gradient once for both of its input gradients.

``G(k)`` is the irreducible part (0 = I, 1 = A, 2 = S) of component ``k``.

* :func:`message_passing` ``m[k, i_e] += f[G(k), p_e] * y[k, j_e]``          (interaction)
* :func:`pair_contract`   ``g[G(k), p_e] += a[k, i_e] * y[k, j_e]``          (its f-gradient)
* :func:`scatter_outer`   ``x[k, i_e] += c[G(k), e] * b[e, k]``               (embedding)
* :func:`gather_contract` ``r[G(k), e] += a[k, i_e] * b[e, k]``
* :func:`gather_dot`      ``s[e, k] = sum_h a[k, i_e, h] * c[G(k), e, h]``

Per-part filters are stored part-major, ``(3, P, H)``, like the node features.

Each has a slow, obviously correct twin (``*_reference``) that the tests compare against. Both are
registered backends of the op's kernel (``tensormol._ext.Kernel``): "fused" runs, "reference"
runs while ``torch.jit.trace`` records (a traced graph cannot hold custom autograd Functions).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.autograd import Function

from tensormol._ext import Kernel

__all__ = [
    "message_passing",
    "pair_contract",
    "scatter_outer",
    "gather_contract",
    "gather_dot",
    "message_passing_reference",
    "pair_contract_reference",
    "scatter_outer_reference",
    "gather_contract_reference",
    "gather_dot_reference",
    "edge_block_size",
]

_GROUP = (0, 1, 1, 1, 2, 2, 2, 2, 2)
#: Bytes of one block's (9, block, H) product: small enough to stay in cache.
_BLOCK_BYTES = 2 << 20


def edge_block_size(hidden: int, itemsize: int) -> int:
    """Edges per block for features of ``hidden`` channels of ``itemsize`` bytes."""
    return max(1, _BLOCK_BYTES // (9 * hidden * itemsize))


def _group_index(device: torch.device) -> Tensor:
    return torch.tensor(_GROUP, dtype=torch.int64, device=device)


class _Buffer:
    """A (9, block, H) scratch tensor reused across blocks (fresh allocations page-fault)."""

    def __init__(self, like: Tensor, rows: int, block: int) -> None:
        self.full = like.new_empty(rows, block, like.shape[-1])

    def take(self, n: int) -> Tensor:
        if n == self.full.shape[1]:
            return self.full
        return self.full.new_empty(self.full.shape[0], n, self.full.shape[2])


def _blocks(n_edges: int, hidden: int, itemsize: int) -> Iterator[slice]:
    size = edge_block_size(hidden, itemsize)
    for s in range(0, n_edges, size):
        yield slice(s, min(s + size, n_edges))


def _block_len(n_edges: int, hidden: int, itemsize: int) -> int:
    return min(n_edges, edge_block_size(hidden, itemsize)) or 1


def _scale_(x: Tensor, f: Tensor) -> Tensor:
    """In place ``x[k] *= f[G(k)]`` for x (9, B, H), f (3, B, H)."""
    x[0].mul_(f[0])
    x[1:4].mul_(f[1])
    x[4:9].mul_(f[2])
    return x


def _group_sums(x: Tensor, out: Tensor) -> Tensor:
    """(9, B, ...) -> ``out`` (3, B, ...): sum of the components of each irreducible part."""
    out[0].copy_(x[0])
    torch.add(x[1], x[2], out=out[1]).add_(x[3])
    torch.add(x[4], x[5], out=out[2]).add_(x[6]).add_(x[7]).add_(x[8])
    return out


# ------------------------------------------------------------------------- message passing
def _mp_forward(f: Tensor, y: Tensor, i: Tensor, j: Tensor, pair: Tensor, num_out: int) -> Tensor:
    h, isz = y.shape[-1], y.element_size()
    m = y.new_zeros(9, num_out, h)
    buf = _Buffer(y, 9, _block_len(i.shape[0], h, isz))
    for s in _blocks(i.shape[0], h, isz):
        yb = buf.take(s.stop - s.start)
        torch.index_select(y, 1, j[s], out=yb)
        _scale_(yb, f.index_select(1, pair[s]))
        m.index_add_(1, i[s], yb)
    return m


def _mp_backward_fused(gm: Tensor, f: Tensor, y: Tensor, i: Tensor, j: Tensor, pair: Tensor,
                       need_f: bool, need_y: bool) -> tuple[Tensor | None, Tensor | None]:
    """Both input gradients of :func:`message_passing` in one pass over the edges."""
    h, isz = y.shape[-1], y.element_size()
    gf = f.new_zeros(f.shape) if need_f else None
    gy = y.new_zeros(y.shape) if need_y else None
    n = _block_len(i.shape[0], h, isz)
    gbuf, ybuf = _Buffer(y, 9, n), _Buffer(y, 9, n)
    sums = _Buffer(y, 3, n)
    for s in _blocks(i.shape[0], h, isz):
        b = s.stop - s.start
        gmb = gbuf.take(b)
        torch.index_select(gm, 1, i[s], out=gmb)
        if gf is not None:
            yb = ybuf.take(b)
            torch.index_select(y, 1, j[s], out=yb)
            gf.index_add_(1, pair[s], _group_sums(yb.mul_(gmb), sums.take(b)))
        if gy is not None:
            gy.index_add_(1, j[s], _scale_(gmb, f.index_select(1, pair[s])))
    return gf, gy


class _MessagePassing(Function):
    @staticmethod
    def forward(ctx, f: Tensor, y: Tensor, i: Tensor, j: Tensor, pair: Tensor,
                num_out: int) -> Tensor:
        ctx.save_for_backward(f, y, i, j, pair)
        return _mp_forward(f, y, i, j, pair, num_out)

    @staticmethod
    def backward(ctx, gm: Tensor):
        f, y, i, j, pair = ctx.saved_tensors
        need_f, need_y = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if torch.is_grad_enabled():  # create_graph: build the backward from differentiable ops
            gf = pair_contract(gm, y, i, j, pair, f.shape[1]) if need_f else None
            gy = message_passing(f, gm, j, i, pair, y.shape[1]) if need_y else None
        else:
            gf, gy = _mp_backward_fused(gm, f, y, i, j, pair, need_f, need_y)
        return gf, gy, None, None, None, None


def message_passing(f: Tensor, y: Tensor, i: Tensor, j: Tensor, pair: Tensor,
                    num_out: int) -> Tensor:
    """``m[k, i_e] = sum_e f[G(k), pair_e] * y[k, j_e]``.

    Parameters
    ----------
    f : Tensor
        (3, P, H) per-pair filters of the I, A, S parts.
    y : Tensor
        (9, M, H) node features.
    i, j : Tensor
        (E,) int64, receiving and sending node of each edge.
    pair : Tensor
        (E,) int64, row of ``f`` used by each edge.
    num_out : int
        Number of receiving nodes.

    Returns
    -------
    Tensor
        (9, num_out, H).
    """
    return MESSAGE_PASSING(f, y, i, j, pair, num_out)


def message_passing_reference(f, y, i, j, pair, num_out):
    """Slow twin of :func:`message_passing` (stores the (9, E, H) messages)."""
    g = _group_index(y.device)
    fe = f.index_select(1, pair).index_select(0, g)  # (9, E, H)
    return y.new_zeros(9, num_out, y.shape[-1]).index_add(1, i, y.index_select(1, j) * fe)


class _PairContract(Function):
    @staticmethod
    def forward(ctx, a: Tensor, y: Tensor, i: Tensor, j: Tensor, pair: Tensor,
                num_pairs: int) -> Tensor:
        h, isz = a.shape[-1], a.element_size()
        g = a.new_zeros(3, num_pairs, h)
        n = _block_len(i.shape[0], h, isz)
        abuf, ybuf, sums = _Buffer(a, 9, n), _Buffer(a, 9, n), _Buffer(a, 3, n)
        for s in _blocks(i.shape[0], h, isz):
            b = s.stop - s.start
            ab, yb = abuf.take(b), ybuf.take(b)
            torch.index_select(a, 1, i[s], out=ab)
            torch.index_select(y, 1, j[s], out=yb)
            g.index_add_(1, pair[s], _group_sums(ab.mul_(yb), sums.take(b)))
        ctx.save_for_backward(a, y, i, j, pair)
        return g

    @staticmethod
    def backward(ctx, gg: Tensor):
        a, y, i, j, pair = ctx.saved_tensors
        ga = gy = None
        if ctx.needs_input_grad[0]:
            ga = message_passing(gg, y, i, j, pair, a.shape[1])
        if ctx.needs_input_grad[1]:
            gy = message_passing(gg, a, j, i, pair, y.shape[1])
        return ga, gy, None, None, None, None


def pair_contract(a: Tensor, y: Tensor, i: Tensor, j: Tensor, pair: Tensor,
                  num_pairs: int) -> Tensor:
    """``g[G(k), pair_e] += a[k, i_e] * y[k, j_e]``, summed over edges and over k in each part.

    ``a`` (9, M_a, H), ``y`` (9, M_y, H) -> (3, num_pairs, H): the filter gradient of
    :func:`message_passing`.
    """
    return PAIR_CONTRACT(a, y, i, j, pair, num_pairs)


def pair_contract_reference(a, y, i, j, pair, num_pairs):
    """Slow twin of :func:`pair_contract`."""
    prod = a.index_select(1, i) * y.index_select(1, j)  # (9, E, H)
    per_edge = torch.stack([prod[0], prod[1:4].sum(0), prod[4:9].sum(0)])  # (3, E, H)
    return a.new_zeros(3, num_pairs, a.shape[-1]).index_add(1, pair, per_edge)


# ------------------------------------------------------------------------- embedding
class _ScatterOuter(Function):
    @staticmethod
    def forward(ctx, c: Tensor, b: Tensor, i: Tensor, num_out: int) -> Tensor:
        h, isz = c.shape[-1], c.element_size()
        x = c.new_zeros(9, num_out, h)
        g = _group_index(c.device)
        buf = _Buffer(c, 9, _block_len(i.shape[0], h, isz))
        for s in _blocks(i.shape[0], h, isz):
            prod = buf.take(s.stop - s.start)
            torch.index_select(c[:, s], 0, g, out=prod)  # (9, B, H)
            prod.mul_(b[s].t().unsqueeze(-1))
            x.index_add_(1, i[s], prod)
        ctx.save_for_backward(c, b, i)
        return x

    @staticmethod
    def backward(ctx, gx: Tensor):
        c, b, i = ctx.saved_tensors
        gc = gb = None
        if ctx.needs_input_grad[0]:
            gc = gather_contract(gx, b, i)
        if ctx.needs_input_grad[1]:
            gb = gather_dot(gx, c, i)
        return gc, gb, None, None


def scatter_outer(c: Tensor, b: Tensor, i: Tensor, num_out: int) -> Tensor:
    """``x[k, i_e] += c[G(k), e] * b[e, k]``: per-edge (3, H) coefficients times a per-edge (9,)
    basis, summed onto the receiving nodes. ``c`` (3, E, H), ``b`` (E, 9) -> (9, num_out, H)."""
    return SCATTER_OUTER(c, b, i, num_out)


def scatter_outer_reference(c, b, i, num_out):
    """Slow twin of :func:`scatter_outer`."""
    g = _group_index(c.device)
    prod = c.index_select(0, g) * b.t().unsqueeze(-1)  # (9, E, H)
    return c.new_zeros(9, num_out, c.shape[-1]).index_add(1, i, prod)


class _GatherContract(Function):
    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, i: Tensor) -> Tensor:
        h, isz = a.shape[-1], a.element_size()
        r = a.new_empty(3, i.shape[0], h)
        buf = _Buffer(a, 9, _block_len(i.shape[0], h, isz))
        for s in _blocks(i.shape[0], h, isz):
            ab = buf.take(s.stop - s.start)
            torch.index_select(a, 1, i[s], out=ab)
            _group_sums(ab.mul_(b[s].t().unsqueeze(-1)), r[:, s])
        ctx.save_for_backward(a, b, i)
        return r

    @staticmethod
    def backward(ctx, gr: Tensor):
        a, b, i = ctx.saved_tensors
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = scatter_outer(gr, b, i, a.shape[1])
        if ctx.needs_input_grad[1]:
            gb = gather_dot(a, gr, i)
        return ga, gb, None


def gather_contract(a: Tensor, b: Tensor, i: Tensor) -> Tensor:
    """``r[G(k), e] += a[k, i_e] * b[e, k]``: ``a`` (9, M, H), ``b`` (E, 9) -> (3, E, H)."""
    return GATHER_CONTRACT(a, b, i)


def gather_contract_reference(a, b, i):
    """Slow twin of :func:`gather_contract`."""
    prod = a.index_select(1, i) * b.t().unsqueeze(-1)  # (9, E, H)
    return torch.stack([prod[0], prod[1:4].sum(0), prod[4:9].sum(0)])


class _GatherDot(Function):
    @staticmethod
    def forward(ctx, a: Tensor, c: Tensor, i: Tensor) -> Tensor:
        h, isz = a.shape[-1], a.element_size()
        out = a.new_empty(9, i.shape[0])
        buf = _Buffer(a, 9, _block_len(i.shape[0], h, isz))
        for s in _blocks(i.shape[0], h, isz):
            ab = buf.take(s.stop - s.start)
            torch.index_select(a, 1, i[s], out=ab)
            torch.sum(_scale_(ab, c[:, s]), -1, out=out[:, s])
        ctx.save_for_backward(a, c, i)
        return out.t()

    @staticmethod
    def backward(ctx, gs: Tensor):
        a, c, i = ctx.saved_tensors
        ga = gc = None
        if ctx.needs_input_grad[0]:
            ga = scatter_outer(c, gs, i, a.shape[1])
        if ctx.needs_input_grad[1]:
            gc = gather_contract(a, gs, i)
        return ga, gc, None


def gather_dot(a: Tensor, c: Tensor, i: Tensor) -> Tensor:
    """``s[e, k] = sum_h a[k, i_e, h] * c[G(k), e, h]``: ``a`` (9, M, H), ``c`` (3, E, H) ->
    (E, 9)."""
    return GATHER_DOT(a, c, i)


def gather_dot_reference(a, c, i):
    """Slow twin of :func:`gather_dot`."""
    g = _group_index(a.device)
    return (a.index_select(1, i) * c.index_select(0, g)).sum(-1).t()


# ------------------------------------------------------------------------- kernels
def _kernel(op: str, fused, reference) -> Kernel:
    kernel = Kernel(op, traced="reference")
    kernel.register("fused", fused, doc="block-fused autograd Function")
    kernel.register("reference", reference, traceable=True,
                    doc="slow twin in plain ops (stores the per-edge products)")
    return kernel


MESSAGE_PASSING = _kernel("tensornet.message_passing", _MessagePassing.apply,
                          message_passing_reference)
PAIR_CONTRACT = _kernel("tensornet.pair_contract", _PairContract.apply, pair_contract_reference)
SCATTER_OUTER = _kernel("tensornet.scatter_outer", _ScatterOuter.apply, scatter_outer_reference)
GATHER_CONTRACT = _kernel("tensornet.gather_contract", _GatherContract.apply,
                          gather_contract_reference)
GATHER_DOT = _kernel("tensornet.gather_dot", _GatherDot.apply, gather_dot_reference)
