"""Fast paths of TensorNet against their slow twins: block-fused edge operations (forward,
backward, double backward, several blocks), irreducible-component maps, edge pairing."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import tensormol.models._irreducible as irr
import tensormol.models._tensornet_ops as ops
from tensormol.models._pairs import undirected_pairs, undirected_pairs_reference
from tensormol.ops import neighbor_list
from tensormol.testing._contract import random_periodic

F64 = torch.float64


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 4 edges (with H = 2, float64): several blocks and a shorter last one."""
    monkeypatch.setattr(ops, "_BLOCK_BYTES", 9 * 2 * 8 * 4)


def _graph(gen):
    m, e, p, h = 4, 10, 6, 2
    i = torch.randint(m, (e,), generator=gen)
    j = torch.randint(m, (e,), generator=gen)
    pair = torch.randint(p, (e,), generator=gen)
    pair[:p] = torch.arange(p)
    return m, e, p, h, i, j, pair


def _cases(gen):
    m, e, p, h, i, j, pair = _graph(gen)

    def rnd(*shape):
        return torch.randn(*shape, generator=gen, dtype=F64).requires_grad_(True)

    f, y, a = rnd(3, p, h), rnd(9, m, h), rnd(9, m, h)
    c, b = rnd(3, e, h), rnd(e, 9)
    return [
        ("message_passing", ops.message_passing, ops.message_passing_reference,
         (f, y, i, j, pair, m)),
        ("pair_contract", ops.pair_contract, ops.pair_contract_reference, (a, y, i, j, pair, p)),
        ("scatter_outer", ops.scatter_outer, ops.scatter_outer_reference, (c, b, i, m)),
        ("gather_contract", ops.gather_contract, ops.gather_contract_reference, (a, b, i)),
        ("gather_dot", ops.gather_dot, ops.gather_dot_reference, (a, c, i)),
    ]


@pytest.mark.parametrize("index", range(5))
def test_fused_edge_ops_match_reference(index, small_blocks, generator) -> None:
    name, fast, ref, args = _cases(generator)[index]
    out_fast, out_ref = fast(*args), ref(*args)
    assert out_fast.shape == out_ref.shape
    assert torch.allclose(out_fast, out_ref, atol=1e-13, rtol=0), name
    tensors = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    weight = torch.randn(out_ref.shape, generator=generator, dtype=F64)
    g_fast = torch.autograd.grad((out_fast * weight).sum(), tensors, create_graph=True)
    g_ref = torch.autograd.grad((out_ref * weight).sum(), tensors, create_graph=True)
    for a, b in zip(g_fast, g_ref):
        assert torch.allclose(a, b, atol=1e-13, rtol=0), name
    # second derivatives through the composed backward
    s_fast = torch.autograd.grad(sum((g * g).sum() for g in g_fast), tensors)
    s_ref = torch.autograd.grad(sum((g * g).sum() for g in g_ref), tensors)
    for a, b in zip(s_fast, s_ref):
        assert torch.allclose(a, b, atol=1e-12, rtol=0), name
    assert gradcheck(fast, args)
    assert gradgradcheck(fast, args)


def test_fused_backward_equals_composed_backward(small_blocks, generator) -> None:
    """The one-pass backward of message_passing (used for forces) equals the composed one
    (used when create_graph is set)."""
    m, e, p, h, i, j, pair = _graph(generator)
    f = torch.randn(3, p, h, generator=generator, dtype=F64)
    y = torch.randn(9, m, h, generator=generator, dtype=F64)
    gm = torch.randn(9, m, h, generator=generator, dtype=F64)
    gf, gy = ops._mp_backward_fused(gm, f, y, i, j, pair, True, True)
    assert torch.allclose(gf, ops.pair_contract_reference(gm, y, i, j, pair, p), atol=1e-13)
    assert torch.allclose(gy, ops.message_passing_reference(f, gm, j, i, pair, m), atol=1e-13)


def test_component_maps_match_definitions(generator) -> None:
    x = torch.randn(3, 3, 4, 5, generator=generator, dtype=F64)
    c = irr.from_matrix(x)
    assert torch.allclose(c, irr.from_matrix_reference(x), atol=1e-14)
    assert torch.allclose(irr.to_matrix(c), x, atol=1e-14)
    assert torch.allclose(irr.to_matrix_reference(c), x, atol=1e-14)
    assert torch.allclose(irr.decomposition_matrix() @ irr.assembly_matrix(),
                          torch.eye(9, dtype=F64), atol=1e-15)
    frob = (x * x).sum((0, 1))
    assert torch.allclose(irr.norm2(c), frob, atol=1e-12)
    tr = x.diagonal(dim1=0, dim2=1).sum(-1)
    anti = 0.5 * (x - x.transpose(0, 1))
    parts = irr.group_norms2(c)
    assert torch.allclose(parts[0], tr * tr / 3.0, atol=1e-12)
    assert torch.allclose(parts[1], (anti * anti).sum((0, 1)), atol=1e-12)
    assert torch.allclose(parts.sum(0), frob, atol=1e-12)


def test_products_match_matmul(generator) -> None:
    x = torch.randn(3, 3, 4, 5, generator=generator, dtype=F64)
    y = torch.randn(3, 3, 4, 5, generator=generator, dtype=F64)
    xm, ym = x.permute(2, 3, 0, 1), y.permute(2, 3, 0, 1)
    assert torch.allclose(irr.matmul3(x, y).permute(2, 3, 0, 1), xm @ ym, atol=1e-13)
    assert torch.allclose(irr.anticommutator(x, y).permute(2, 3, 0, 1), xm @ ym + ym @ xm,
                          atol=1e-13)
    base = torch.randn(9, 4, 5, generator=generator, dtype=F64)
    assert torch.allclose(irr.from_matrix_add(base, x), base + irr.from_matrix(x), atol=1e-14)


def test_edge_basis_and_mixing(generator) -> None:
    u = torch.randn(6, 3, generator=generator, dtype=F64)
    u = u / u.norm(dim=1, keepdim=True)
    skew = torch.zeros(6, 3, 3, dtype=F64)
    skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = -u[:, 2], u[:, 1], -u[:, 0]
    skew = skew - skew.transpose(1, 2)
    eye = torch.eye(3, dtype=F64)
    want = eye + skew + u[:, :, None] * u[:, None, :] - eye / 3
    got = irr.to_matrix(irr.edge_basis(u).t())  # (3, 3, E)
    assert torch.allclose(got.permute(2, 0, 1), want, atol=1e-14)
    # [u]x w = u x w
    w = torch.randn(6, 3, generator=generator, dtype=F64)
    assert torch.allclose(torch.einsum("eab,eb->ea", skew, w), torch.cross(u, w, dim=1))
    c = torch.randn(9, 4, 5, generator=generator, dtype=F64)
    wi, wa, ws = (torch.randn(2, 5, generator=generator, dtype=F64) for _ in range(3))
    mixed = irr.mix_channels(c, wi, wa, ws)
    assert torch.allclose(mixed[0], c[0] @ wi.T)
    assert torch.allclose(mixed[1:4], c[1:4] @ wa.T)
    assert torch.allclose(mixed[4:9], c[4:9] @ ws.T)
    f = torch.randn(3, 4, 5, generator=generator, dtype=F64)
    assert torch.equal(irr.expand_groups(f)[5], f[2])


def _same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(((a[:, None] == a[None, :]) == (b[:, None] == b[None, :])).all())


def test_undirected_pairs_match_reference(generator) -> None:
    s = random_periodic([1, 6, 8], 5, generator, lengths=(3.0, 3.2, 3.4))
    ei, shifts = neighbor_list(s.positions, 4.0, cell=s.cell, pbc=s.pbc)
    pair, rep = undirected_pairs(ei, shifts, 5)
    pair_ref, rep_ref = undirected_pairs_reference(ei, shifts)
    assert _same_partition(pair, pair_ref)
    assert rep.shape == rep_ref.shape
    # a full list: every pair holds an edge and its reverse, with equal lengths
    assert bool((torch.bincount(pair) == 2).all())
    assert bool((pair[rep] == torch.arange(rep.shape[0])).all())
    # periodic self-images (i, i, s) and (i, i, -s) share a pair
    self_img = (ei[0] == ei[1]).nonzero().flatten()
    assert self_img.numel() > 0
    assert bool((torch.bincount(pair[self_img]) % 2 == 0).all())
    # a half list (one direction only) gives each edge its own pair
    half = ei[0] < ei[1]
    pair_h, rep_h = undirected_pairs(ei[:, half], shifts[half], 5)
    assert rep_h.shape[0] == int(half.sum())
    assert math.isclose(float(pair_h.unique().numel()), float(half.sum()))


@pytest.mark.parametrize("name", ["matmul3", "anticommutator", "normalize", "traceable"])
def test_node_functions_match_reference_to_second_order(name, generator) -> None:
    """Custom-backward node functions: values, gradients and second derivatives."""
    x = torch.randn(3, 3, 2, 3, generator=generator, dtype=F64, requires_grad=True)
    y = torch.randn(3, 3, 2, 3, generator=generator, dtype=F64, requires_grad=True)
    c = torch.randn(9, 2, 3, generator=generator, dtype=F64, requires_grad=True)
    fast, ref, args = {
        "matmul3": (irr.matmul3, irr.matmul3_reference, (x, y)),
        "anticommutator": (irr.anticommutator,
                           lambda a, b: irr.matmul3_reference(a, b) + irr.matmul3_reference(b, a),
                           (x, y)),
        "normalize": (irr.normalize, irr.normalize_reference, (c,)),
        # the form the traced graph (TorchScript / openmm-torch) runs
        "traceable": (irr._matmul3_traceable, irr.matmul3_reference, (x, y)),
    }[name]
    assert torch.allclose(fast(*args), ref(*args), atol=1e-14)
    w = torch.randn(fast(*args).shape, generator=generator, dtype=F64)
    g_fast = torch.autograd.grad((fast(*args) * w).sum(), args, create_graph=True)
    g_ref = torch.autograd.grad((ref(*args) * w).sum(), args, create_graph=True)
    for a, b in zip(g_fast, g_ref):
        assert torch.allclose(a, b, atol=1e-13)
    h_fast = torch.autograd.grad(sum((g ** 2).sum() for g in g_fast), args)
    h_ref = torch.autograd.grad(sum((g ** 2).sum() for g in g_ref), args)
    for a, b in zip(h_fast, h_ref):
        assert torch.allclose(a, b, atol=1e-12)
    assert gradcheck(fast, args) and gradgradcheck(fast, args)
