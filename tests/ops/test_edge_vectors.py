"""edge_vectors: values against an explicit loop, and derivatives w.r.t. positions and cell."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from tensormol.ops import edge_vectors, neighbor_list

F64 = torch.float64


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-7,
                 atol: float = 1e-12) -> None:
    """Cheap stand-in for torch.testing.assert_close (whose first call imports for seconds)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    err = (actual - expected).abs()
    bound = atol + rtol * expected.abs()
    assert bool((err <= bound).all()), f"max abs error {float(err.max()):.3g}"


def _periodic_system(generator, n=5, scale=3.0):
    cell = scale * torch.eye(3, dtype=F64) + 0.4 * torch.rand(3, 3, generator=generator, dtype=F64)
    pos = torch.rand(n, 3, generator=generator, dtype=F64) @ cell
    return pos, cell


def test_values_match_explicit_formula(generator):
    pos, cell = _periodic_system(generator, n=6)
    ei, s = neighbor_list(pos, 4.0, cell)
    vec = edge_vectors(pos, ei, s, cell)
    for e in range(0, ei.shape[1], 7):
        i, j = int(ei[0, e]), int(ei[1, e])
        expect = pos[j] - pos[i] + s[e, 0] * cell[0] + s[e, 1] * cell[1] + s[e, 2] * cell[2]
        assert_close(vec[e], expect, rtol=0, atol=1e-13)
    assert float(vec.norm(dim=1).max()) < 4.0
    # no cell and no shifts: plain differences
    ei0, s0 = neighbor_list(pos, 4.0)
    assert_close(edge_vectors(pos, ei0), pos[ei0[1]] - pos[ei0[0]])
    assert_close(edge_vectors(pos, ei0, s0), pos[ei0[1]] - pos[ei0[0]])


def test_batched_cells_use_each_structures_cell(generator):
    p0, c0 = _periodic_system(generator, n=4, scale=3.0)
    p1, c1 = _periodic_system(generator, n=3, scale=4.0)
    pos = torch.cat([p0, p1])
    batch = torch.tensor([0] * 4 + [1] * 3)
    cells = torch.stack([c0, c1])
    ei, s = neighbor_list(pos, 3.5, cells, True, batch)
    vec = edge_vectors(pos, ei, s, cells, batch)
    e0, s0 = neighbor_list(p0, 3.5, c0)
    e1, s1 = neighbor_list(p1, 3.5, c1)
    expect = torch.cat([edge_vectors(p0, e0, s0, c0), edge_vectors(p1, e1, s1, c1)])
    assert_close(vec, expect, rtol=0, atol=1e-14)


def test_gradcheck_positions_and_cell(generator):
    pos, cell = _periodic_system(generator, n=3, scale=2.5)
    ei, s = neighbor_list(pos, 3.0, cell)  # small cell: many images, self-images included
    assert bool((ei[0] == ei[1]).any())
    pos.requires_grad_(True)
    cell.requires_grad_(True)

    def vectors(p, c):
        return edge_vectors(p, ei, s, c)

    assert gradcheck(vectors, (pos, cell))
    assert gradgradcheck(vectors, (pos, cell))

    def energy(p, c):  # a smooth pair energy of distances, as a model would build
        d = edge_vectors(p, ei, s, c).norm(dim=1)
        return (torch.exp(-d) * torch.cos(d)).sum()

    assert gradcheck(energy, (pos, cell))
    assert gradgradcheck(energy, (pos, cell))


def test_gradcheck_batched_cells(generator):
    p0, c0 = _periodic_system(generator, n=3, scale=3.0)
    p1, c1 = _periodic_system(generator, n=2, scale=2.5)
    pos = torch.cat([p0, p1]).requires_grad_(True)
    cells = torch.stack([c0, c1]).requires_grad_(True)
    batch = torch.tensor([0, 0, 0, 1, 1])
    ei, s = neighbor_list(pos.detach(), 2.8, cells.detach(), True, batch)

    def energy(p, c):
        d = edge_vectors(p, ei, s, c, batch).norm(dim=1)
        return (d ** 2 * torch.exp(-d)).sum()

    assert gradcheck(energy, (pos, cells))
    assert gradgradcheck(energy, (pos, cells))


def test_cell_gradient_gives_virial(generator):
    # Virial identity for a pair energy with a homogeneous strain: dE/dε at ε = 0 equals
    # Σ_e g_e ⊗ v_e with g_e = dE/dv_e; and it equals pos^T dE/dpos + cell^T dE/dcell.
    pos, cell = _periodic_system(generator, n=4, scale=3.0)
    ei, s = neighbor_list(pos, 3.2, cell)
    pos.requires_grad_(True)
    cell.requires_grad_(True)
    vec = edge_vectors(pos, ei, s, cell)
    energy = (torch.exp(-vec.norm(dim=1))).sum()
    g_pos, g_cell, g_vec = torch.autograd.grad(energy, (pos, cell, vec))
    virial_edges = vec.detach().T @ g_vec
    virial_autograd = pos.detach().T @ g_pos + cell.detach().T @ g_cell
    assert_close(virial_autograd, virial_edges, rtol=1e-12, atol=1e-12)


def test_errors():
    pos = torch.rand(3, 3, dtype=F64)
    ei = torch.tensor([[0, 1], [1, 0]])
    shifts = torch.tensor([[1, 0, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="cell_shifts has nonzero entries but cell is None"):
        edge_vectors(pos, ei, shifts)
    with pytest.raises(TypeError, match="cell must have the dtype of positions"):
        edge_vectors(pos, ei, shifts, torch.eye(3))
    with pytest.raises(ValueError, match="batch is None"):
        edge_vectors(pos, ei, shifts, torch.eye(3, dtype=F64).repeat(2, 1, 1))
    with pytest.raises(ValueError, match="cell_shifts must have shape"):
        edge_vectors(pos, ei, shifts[:1], torch.eye(3, dtype=F64))
    with pytest.raises(ValueError, match="edge_index must have shape"):
        edge_vectors(pos, ei[0], shifts)
    with pytest.raises(TypeError, match="edge_index must be an integer"):
        edge_vectors(pos, ei.double())


def test_unchecked_variant_agrees(generator):
    from tensormol.ops import edge_vectors_unchecked

    p0, c0 = _periodic_system(generator, n=4, scale=3.0)
    p1, c1 = _periodic_system(generator, n=3, scale=3.5)
    pos = torch.cat([p0, p1])
    batch = torch.tensor([0] * 4 + [1] * 3)
    cells = torch.stack([c0, c1])
    ei, s = neighbor_list(pos, 3.0, cells, True, batch)
    ref = edge_vectors(pos, ei, s, cells, batch)
    assert_close(edge_vectors_unchecked(pos, ei, s, cells, batch), ref, rtol=0, atol=0)
    e0, s0 = neighbor_list(p0, 3.0, c0)
    expect = edge_vectors(p0, e0, s0, c0)
    assert_close(edge_vectors_unchecked(p0, e0, s0, c0, None), expect, rtol=0, atol=0)
    assert_close(edge_vectors_unchecked(p0, e0, s0, c0[None], None), expect, rtol=0, atol=0)
    assert_close(edge_vectors_unchecked(p0, e0), p0[e0[1]] - p0[e0[0]], rtol=0, atol=0)


@pytest.mark.slow
def test_unchecked_variant_exports(generator):
    # torch.export traces it without graph breaks (about 30 s on a loaded 2-core machine).
    from tensormol.ops import edge_vectors_unchecked

    class Vectors(torch.nn.Module):
        def forward(self, pos, edge_index, shifts, cell, batch):
            return edge_vectors_unchecked(pos, edge_index, shifts, cell, batch)

    pos, cell = _periodic_system(generator, n=5, scale=3.0)
    ei, s = neighbor_list(pos, 2.5, cell)
    batch = torch.zeros(5, dtype=torch.int64)
    args = (pos, ei, s, cell[None], batch)
    exported = torch.export.export(Vectors(), args)
    assert_close(exported.module()(*args), edge_vectors(pos, ei, s, cell), rtol=0, atol=0)
