"""Fixtures of the model tests: a slow reference TensorNet.

The reference is an obviously correct TensorNet: full 3x3 matrices, one message per directed edge,
self-loops as real (i, i) edges of length 0, straight from the equations. It reads the weights of a
:class:`tensormol.models.TensorNet` and is itself an :class:`EnergyModel` (the base class builds
its graph, as for any model), so the fast model is compared with it number for number through the
public ``forward``: energies, forces and the gradients of a force loss.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from tensormol.models import AtomicGraph, EnergyModel, TensorNet


def _skew(u: Tensor) -> Tensor:
    """[u]x, (E, 3) -> (E, 3, 3): [u]x w = u x w."""
    z = torch.zeros_like(u[:, 0])
    ux, uy, uz = u.unbind(-1)
    return torch.stack([z, -uz, uy, uz, z, -ux, -uy, ux, z], -1).view(-1, 3, 3)


def _decompose(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(..., 3, 3) -> I, A, S as full matrices."""
    eye = torch.eye(3, dtype=x.dtype)
    i = x.diagonal(dim1=-2, dim2=-1).mean(-1)[..., None, None] * eye
    a = 0.5 * (x - x.transpose(-1, -2))
    s = 0.5 * (x + x.transpose(-1, -2)) - i
    return i, a, s


def _norm2(x: Tensor) -> Tensor:
    return (x * x).sum((-1, -2))


def _mix(w: Tensor, x: Tensor) -> Tensor:
    """Channel mixing of (N, H, 3, 3) by a (H_out, H_in) matrix."""
    return torch.einsum("gh,nhab->ngab", w, x)


def reference_atomic_energies(model: TensorNet, graph: AtomicGraph) -> Tensor:
    """Per-node outputs (M,) of ``model`` on ``graph``, computed the slow way."""
    cfg = model.config
    h = cfg.hidden_channels
    dt = model.out_norm.weight.dtype
    n = graph.num_nodes
    i, j = graph.edge_index
    vec = graph.edge_vectors
    r = graph.edge_lengths
    if cfg.self_loops:
        loops = torch.arange(n)
        i, j = torch.cat([i, loops]), torch.cat([j, loops])
        vec = torch.cat([vec, vec.new_zeros(n, 3)])
        r = torch.cat([r, r.new_zeros(n)])
    r_safe = torch.where(r > 0, r, torch.ones_like(r))
    u = (vec / r_safe[:, None]).to(dt)
    r = r.to(dt)
    rbf = model._radial_basis(r)
    cut = model.cutoff_fn(r)
    emb = model.tensor_embedding
    act = model.act
    eye = torch.eye(3, dtype=dt)

    # embedding
    z = emb.emb(graph.atomic_numbers)
    zij = emb.emb2(torch.cat([z[i], z[j]], dim=-1))  # (E, H)
    cz = (cut[:, None] * zij)[:, :, None, None]
    f_i, f_a, f_s = (p(rbf)[:, :, None, None] for p in emb.distance_proj)
    outer = u[:, :, None] * u[:, None, :] - (u * u).sum(-1)[:, None, None] / 3.0 * eye
    edge = cz * (f_i * eye + f_a * _skew(u)[:, None] + f_s * outer[:, None])  # (E, H, 3, 3)
    x = torch.zeros(n, h, 3, 3, dtype=dt).index_add(0, i, edge)
    s = emb.init_norm(_norm2(x))
    for lin in emb.linears_scalar:
        s = act(lin(s))
    s = s.view(n, 3, h)
    xi, xa, xs = _decompose(x)
    lt = emb.linears_tensor
    x = (s[:, 0, :, None, None] * _mix(lt[0].weight, xi)
         + s[:, 1, :, None, None] * _mix(lt[1].weight, xa)
         + s[:, 2, :, None, None] * _mix(lt[2].weight, xs))

    # interactions
    for layer in model.layers:
        f = rbf
        for lin in layer.linears_scalar:
            f = act(lin(f))
        f = (f * cut[:, None]).view(-1, 3, h)
        x = x / (_norm2(x) + 1.0)[..., None, None]
        xi, xa, xs = _decompose(x)
        lt = layer.linears_tensor
        yi, ya, ys = _mix(lt[0].weight, xi), _mix(lt[1].weight, xa), _mix(lt[2].weight, xs)
        y = yi + ya + ys
        msg_e = (f[:, 0, :, None, None] * yi[j] + f[:, 1, :, None, None] * ya[j]
                 + f[:, 2, :, None, None] * ys[j])
        m = torch.zeros_like(x).index_add(0, i, msg_e)
        if cfg.equivariance_invariance_group == "O(3)":
            p = m @ y + y @ m
        else:
            p = 2.0 * (y @ m)
        pi, pa, ps = _decompose(p)
        norm = (_norm2(p) + 1.0)[..., None, None]
        dx = (_mix(lt[3].weight, pi / norm) + _mix(lt[4].weight, pa / norm)
              + _mix(lt[5].weight, ps / norm))
        x = x + dx + dx @ dx

    xi, xa, xs = _decompose(x)
    feats = torch.cat([_norm2(xi), _norm2(xa), _norm2(xs)], dim=-1)
    out = act(model.linear(model.out_norm(feats)))
    return model.output_network(out).squeeze(-1)


class ReferenceTensorNet(EnergyModel):
    """The slow twin of ``fast`` as a model: same elements, cutoff, statistics and weights (the
    fast model is a submodule, so its parameters are shared, not copied)."""

    def __init__(self, fast: TensorNet) -> None:
        super().__init__(cutoff=fast.cutoff, atomic_numbers=fast.atomic_numbers)
        self.fast = fast
        self.set_energy_statistics(fast.reference_energies, scale=float(fast.energy_scale))

    def atomic_energies(self, graph: AtomicGraph) -> Tensor:
        return reference_atomic_energies(self.fast, graph)


@pytest.fixture
def reference_tensornet() -> Callable[[TensorNet], EnergyModel]:
    return ReferenceTensorNet
