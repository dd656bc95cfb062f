"""neighbor_list: vesin vs the brute-force twin (exact), vs ASE (independent), and invariances."""

from __future__ import annotations

import itertools
import logging
import math

import numpy as np
import pytest
import torch
from ase.neighborlist import primitive_neighbor_list

from tensormol.ops import edge_vectors, neighbor_list, neighbor_list_backends

F64 = torch.float64


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-7,
                 atol: float = 1e-12) -> None:
    """Cheap stand-in for torch.testing.assert_close (whose first call imports for seconds)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    err = (actual - expected).abs()
    bound = atol + rtol * expected.abs()
    assert bool((err <= bound).all()), f"max abs error {float(err.max()):.3g}"


def edge_set(edge_index: torch.Tensor, shifts: torch.Tensor) -> set[tuple[int, ...]]:
    return {(int(a), int(b), *map(int, s)) for a, b, s in zip(edge_index[0], edge_index[1], shifts)}


def ase_set(positions, cutoff, cell=None, pbc=(False, False, False)) -> set[tuple[int, ...]]:
    cell_np = np.zeros((3, 3)) if cell is None else cell.numpy()
    i, j, s = primitive_neighbor_list(
        "ijS", list(pbc), cell_np, positions.numpy(), cutoff, self_interaction=False
    )
    return {(int(a), int(b), *map(int, t)) for a, b, t in zip(i, j, s)}


def random_structure(gen: torch.Generator, n: int, lengths, skew: float, spread=(0.0, 1.0)):
    """Triclinic cell (rows) and positions with fractional coordinates in ``spread``."""
    cell = torch.diag(torch.tensor(lengths, dtype=F64))
    cell = cell + skew * (torch.rand(3, 3, generator=gen, dtype=F64) - 0.5) * min(lengths)
    lo, hi = spread
    frac = lo + (hi - lo) * torch.rand(n, 3, generator=gen, dtype=F64)
    return frac @ cell, cell


# (n atoms, cell lengths, skew, cutoff, fractional spread): cells larger and smaller than 2 rc,
# strongly skewed, with atoms outside the home cell.
CASES = {
    "large_triclinic": (40, (8.0, 7.5, 9.0), 0.3, 3.0, (0.0, 1.0)),
    "smaller_than_2rc": (6, (3.0, 2.6, 3.4), 0.4, 4.0, (0.0, 1.0)),
    "tiny_cell_many_images": (2, (1.3, 1.1, 1.6), 0.5, 3.2, (0.0, 1.0)),
    "strong_skew_unwrapped": (10, (4.0, 3.5, 4.5), 1.4, 3.0, (-1.5, 2.5)),
    "flat_cell": (8, (6.0, 6.0, 1.2), 0.2, 2.5, (0.0, 1.0)),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("pbc", [(True, True, True), (True, False, True), (False, False, False)])
def test_vesin_equals_brute_force_and_ase(name, pbc, generator):
    n, lengths, skew, cutoff, spread = CASES[name]
    pos, cell = random_structure(generator, n, lengths, skew, spread)
    ei_v, s_v = neighbor_list(pos, cutoff, cell, torch.tensor(pbc), backend="vesin")
    ei_t, s_t = neighbor_list(pos, cutoff, cell, torch.tensor(pbc), backend="torch")
    assert ei_v.dtype == torch.int64 and s_v.dtype == torch.int64
    assert ei_v.shape[1] > 0
    assert torch.equal(ei_v, ei_t) and torch.equal(s_v, s_t)
    assert edge_set(ei_v, s_v) == ase_set(pos, cutoff, cell, pbc)
    # every returned pair is within the cutoff, and shifts vanish along non-periodic directions
    d = edge_vectors(pos, ei_v, s_v, cell).norm(dim=1)
    assert float(d.max()) < cutoff
    for k in range(3):
        if not pbc[k]:
            assert not bool(s_v[:, k].any())


def test_counts_match_lattice_sums_for_one_atom_in_tiny_cell():
    # One atom in a skewed cell much smaller than the cutoff: its neighbours are exactly the
    # lattice points 0 < |n @ cell| < cutoff (periodic self-images), found by direct enumeration.
    cell = torch.tensor([[1.0, 0.0, 0.0], [0.4, 0.9, 0.0], [0.3, -0.2, 1.1]], dtype=F64)
    pos = torch.tensor([[0.3, 0.2, 0.1]], dtype=F64)
    cutoff = 2.7
    expected = set()
    for t in itertools.product(range(-12, 13), repeat=3):
        d = float(torch.linalg.norm(torch.tensor(t, dtype=F64) @ cell))
        if 0.0 < d < cutoff:
            expected.add((0, 0, *t))
    assert len(expected) > 50
    for backend in ("vesin", "torch"):
        ei, s = neighbor_list(pos, cutoff, cell, backend=backend)
        assert edge_set(ei, s) == expected


def test_sorted_by_i_then_j_then_shift(generator):
    pos, cell = random_structure(generator, 12, (3.0, 3.2, 2.8), 0.3)
    ei, s = neighbor_list(pos, 3.5, cell)
    rows = [(int(a), int(b), *map(int, t)) for a, b, t in zip(ei[0], ei[1], s)]
    assert rows == sorted(rows)
    assert len(set(rows)) == len(rows)


def test_slab_with_zero_third_vector(generator):
    pos, cell = random_structure(generator, 15, (5.0, 4.0, 6.0), 0.3)
    pos[:, 2] *= 2.0  # atoms spread well beyond the (irrelevant) third vector
    slab_cell = cell.clone()
    slab_cell[2] = 0.0
    pbc = (True, True, False)
    ei_v, s_v = neighbor_list(pos, 3.0, slab_cell, pbc)
    ei_t, s_t = neighbor_list(pos, 3.0, slab_cell, pbc, backend="torch")
    assert torch.equal(ei_v, ei_t) and torch.equal(s_v, s_t)
    assert edge_set(ei_v, s_v) == ase_set(pos, 3.0, cell, pbc)
    assert not bool(s_v[:, 2].any()) and bool(s_v[:, :2].any())


def test_batch_of_mixed_structures_matches_separate_calls(generator):
    p0, c0 = random_structure(generator, 9, (4.0, 4.5, 3.8), 0.4)  # periodic, small cell
    p1 = 3.0 * torch.rand(7, 3, generator=generator, dtype=F64)  # molecule, overlaps p0 in space
    p2, c2 = random_structure(generator, 8, (5.0, 4.0, 5.0), 0.3)  # slab
    p3 = torch.rand(1, 3, generator=generator, dtype=F64)  # a lone atom: no edges
    pos = torch.cat([p0, p1, p2, p3])
    batch = torch.tensor([0] * 9 + [1] * 7 + [2] * 8 + [3], dtype=torch.int64)
    cells = torch.stack([c0, torch.zeros(3, 3, dtype=F64), c2, torch.zeros(3, 3, dtype=F64)])
    pbc = torch.tensor([[True] * 3, [False] * 3, [True, True, False], [False] * 3])
    cutoff = 3.3
    for backend in ("vesin", "torch"):
        ei, s = neighbor_list(pos, cutoff, cells, pbc, batch, backend=backend)
        assert torch.equal(batch[ei[0]], batch[ei[1]]), "structures must never connect"
        expected = set()
        offset = 0
        for p, c, pb in zip((p0, p1, p2, p3), cells, pbc):
            e, sh = neighbor_list(p, cutoff, c, pb, backend=backend)
            expected |= {(a + offset, b + offset, *t) for a, b, *t in edge_set(e, sh)}
            assert edge_set(e, sh) == ase_set(p, cutoff, c, tuple(pb.tolist()))
            offset += p.shape[0]
        assert edge_set(ei, s) == expected
        rows = [(int(a), int(b), *map(int, t)) for a, b, t in zip(ei[0], ei[1], s)]
        assert rows == sorted(rows)


def test_batch_with_shared_cell_and_empty_structure(generator):
    pos, cell = random_structure(generator, 10, (4.0, 4.0, 4.0), 0.2)
    batch = torch.tensor([0] * 4 + [2] * 6)  # structure 1 is empty
    ei, s = neighbor_list(pos, 3.0, cell, True, batch)
    assert torch.equal(batch[ei[0]], batch[ei[1]])
    e0, s0 = neighbor_list(pos[:4], 3.0, cell)
    e2, s2 = neighbor_list(pos[4:], 3.0, cell)
    assert ei.shape[1] == e0.shape[1] + e2.shape[1]


def test_non_periodic_equals_all_pairs(generator):
    pos = 6.0 * torch.rand(50, 3, generator=generator, dtype=F64)
    ei, s = neighbor_list(pos, 2.5)
    d = torch.cdist(pos, pos)
    mask = (d < 2.5) & ~torch.eye(50, dtype=torch.bool)
    assert torch.equal(ei, mask.nonzero().T)
    assert not bool(s.any())


def test_strict_cutoff_and_self_interaction():
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [0.0, 1.25, 0.0]], dtype=F64)
    for backend in ("vesin", "torch"):
        ei, _ = neighbor_list(pos, 1.5, backend=backend)  # 0-1 at exactly the cutoff: excluded
        assert ei.tolist() == [[0, 2], [2, 0]]
        ei, s = neighbor_list(pos, 1.5, self_interaction=True, backend=backend)
        assert ei.tolist() == [[0, 0, 1, 2, 2], [0, 2, 1, 0, 2]]
        assert not bool(s.any())


def test_translation_invariance(generator):
    pos, cell = random_structure(generator, 20, (4.0, 5.0, 4.5), 0.4)
    ei, s = neighbor_list(pos, 3.6, cell)
    moved = pos + torch.tensor([13.7, -4.2, 8.9], dtype=F64)
    ei2, s2 = neighbor_list(moved, 3.6, cell)
    assert torch.equal(ei, ei2) and torch.equal(s, s2)
    # Moving one atom by a lattice vector only relabels its shifts.
    n = torch.tensor([2, -1, 3])
    jumped = pos.clone()
    jumped[5] += n.to(F64) @ cell
    ei3, s3 = neighbor_list(jumped, 3.6, cell)
    assert torch.equal(ei, ei3)
    expect = s.clone()
    expect[ei[1] == 5] -= n
    expect[ei[0] == 5] += n  # (5, 5) self-images: both corrections cancel
    assert torch.equal(s3, expect)
    d1 = edge_vectors(pos, ei, s, cell).norm(dim=1)
    d3 = edge_vectors(jumped, ei3, s3, cell).norm(dim=1)
    assert_close(d1, d3, rtol=0, atol=1e-12)


def test_supercell_gives_same_neighbour_counts(generator):
    pos, cell = random_structure(generator, 5, (3.1, 2.9, 3.3), 0.3)
    cutoff = 4.2
    ei, s = neighbor_list(pos, cutoff, cell)
    counts = torch.bincount(ei[0], minlength=5)
    reps = (2, 3, 1)
    offsets = [torch.tensor(t, dtype=F64) @ cell for t in itertools.product(*map(range, reps))]
    big = torch.cat([pos + o for o in offsets])
    big_cell = cell * torch.tensor(reps, dtype=F64)[:, None]
    ei_b, s_b = neighbor_list(big, cutoff, big_cell)
    counts_b = torch.bincount(ei_b[0], minlength=big.shape[0])
    assert torch.equal(counts_b, counts.repeat(len(offsets)))
    assert ei_b.shape[1] == ei.shape[1] * math.prod(reps)
    d = edge_vectors(pos, ei, s, cell).norm(dim=1).sort().values
    d_b = edge_vectors(big, ei_b, s_b, big_cell).norm(dim=1).sort().values
    assert_close(d_b, d.repeat_interleave(math.prod(reps)), rtol=0, atol=1e-10)


def test_float32_positions_and_empty_input(generator):
    pos, cell = random_structure(generator, 12, (4.0, 4.0, 4.0), 0.3)
    ei, s = neighbor_list(pos.float(), 3.0, cell.float())
    ref_e, ref_s = neighbor_list(pos.float().double(), 3.0, cell.float().double())
    assert torch.equal(ei, ref_e) and torch.equal(s, ref_s)
    for backend in ("vesin", "torch"):
        e, sh = neighbor_list(torch.zeros(0, 3), 3.0, backend=backend)
        assert e.shape == (2, 0) and sh.shape == (0, 3) and e.dtype == torch.int64
    from tensormol.ops._neighbors_torch import brute_force_pairs

    i, j, s, d = brute_force_pairs(torch.zeros(0, 3, dtype=F64), 3 * torch.eye(3, dtype=F64),
                                   torch.ones(3, dtype=torch.bool), 2.0)
    assert i.shape == (0,) and s.shape == (0, 3) and d.dtype == F64


def test_overlap_check():
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 1e-10]], dtype=F64)
    for backend in ("vesin", "torch"):
        with pytest.raises(ValueError, match=r"atoms 1 and 2 overlap"):
            neighbor_list(pos, 2.0, backend=backend)
        ei, _ = neighbor_list(pos, 2.0, backend=backend, check_overlap=False)
        assert ei.shape[1] == 6
    # an atom sitting on the periodic image of another also overlaps
    cell = 3.0 * torch.eye(3, dtype=F64)
    pos = torch.tensor([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]], dtype=F64)
    with pytest.raises(ValueError, match=r"overlap"):
        neighbor_list(pos, 2.0, cell)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"cutoff": 0.0}, ValueError, "cutoff"),
        ({"cutoff": -1.0}, ValueError, "cutoff"),
        ({"cutoff": float("nan")}, ValueError, "cutoff"),
        ({"positions": torch.zeros(4, 2, dtype=F64)}, ValueError, "positions"),
        ({"positions": torch.zeros(4, 3, dtype=torch.int64)}, TypeError, "positions"),
        ({"positions": torch.tensor([[0.0, 0, 0], [float("nan"), 0, 0]])}, ValueError,
         "positions contains NaN"),
        ({"positions": torch.tensor([[0.0, 0, 0], [float("inf"), 0, 0]])}, ValueError,
         "positions"),
        ({"cell": torch.zeros(2, 3, dtype=F64)}, ValueError, "cell"),
        ({"cell": torch.tensor([[1.0, 0, 0], [2.0, 0, 0], [0, 0, 1.0]], dtype=F64)}, ValueError,
         "cell is singular"),
        ({"cell": torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, float("nan")]])}, ValueError,
         "cell contains NaN"),
        ({"cell": 1e-4 * torch.eye(3, dtype=F64)}, ValueError, "far too small"),
        ({"pbc": torch.tensor([True, False])}, ValueError, "pbc"),
        ({"pbc": torch.tensor([1, 0, 1])}, TypeError, "pbc"),
        ({"pbc": True, "cell": None}, ValueError, "cell is None"),
        ({"batch": torch.tensor([0, 0, 1])}, ValueError, "batch"),
        ({"batch": torch.tensor([0, 1, 0, 1])}, ValueError, "batch must be sorted"),
        ({"batch": torch.tensor([0.0, 0, 1, 1])}, TypeError, "batch"),
        ({"batch": torch.tensor([-1, 0, 0, 0])}, ValueError, "batch"),
        ({"cell": 4 * torch.eye(3).repeat(3, 1, 1), "pbc": torch.ones(2, 3, dtype=torch.bool),
          "batch": torch.tensor([0, 0, 1, 1])}, ValueError, "cell has 3 structures but pbc has 2"),
        ({"cell": torch.eye(3, dtype=F64).repeat(2, 1, 1) * 4}, ValueError, "batch is None"),
        ({"batch": torch.tensor([0, 1, 2, 3]), "cell": 4 * torch.eye(3).repeat(2, 1, 1)},
         ValueError, "batch refers to structure 3"),
        ({"backend": "cuda"}, ValueError, "backend must be one of"),
        ({"cell": torch.tensor([[0.0, 0, 0], [0, 4.0, 0], [0, 0, 0]], dtype=F64),
          "pbc": (True, True, False)}, ValueError, r"cell is singular.*pbc=\[True, True, False\]"),
        ({"cell": torch.stack([4 * torch.eye(3), torch.ones(3, 3)]),
          "batch": torch.tensor([0, 0, 1, 1])}, ValueError, r"cell\[1\] is singular"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, error, match):
    positions = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]], dtype=F64)
    args = {"positions": positions, "cutoff": 1.5, "cell": 4.0 * torch.eye(3, dtype=F64)}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        neighbor_list(args.pop("positions"), args.pop("cutoff"), **args)


def test_backends_registered_and_choice_logged(caplog):
    from tensormol._ext import kernels

    names = neighbor_list_backends()
    assert names == ("vesin", "torch")
    kernel = kernels()["neighbor_list"]
    assert kernel.usable() == names
    kernel.clear_cache()
    pos = torch.rand(4, 3, dtype=F64)
    with caplog.at_level(logging.INFO, logger="tensormol.kernels"):
        neighbor_list(pos, 2.0)
        neighbor_list(pos, 2.0)
    msgs = [r.getMessage() for r in caplog.records if "neighbor_list" in r.getMessage()]
    # One line per distinct resolution, naming the op, the backend and why.
    assert len(msgs) == 1
    assert msgs[0].startswith("neighbor_list -> 'vesin' (requested 'auto'): first usable backend")


def test_sort_fallback_for_huge_index_ranges(generator):
    # The packed int64 key would overflow for ~1e9 atoms; the lexsort path must give the same order.
    from tensormol.ops._neighbors import _sort_order

    i = torch.randint(0, 5, (200,), generator=generator)
    j = torch.randint(0, 5, (200,), generator=generator)
    s = torch.randint(-3, 4, (200, 3), generator=generator)
    fast = _sort_order(i, j, s, 5)
    slow = _sort_order(i, j, s, 2**31)
    rows = lambda o: [(int(i[k]), int(j[k]), *map(int, s[k])) for k in o]  # noqa: E731
    assert rows(fast) == rows(slow) == sorted(rows(range(200)))
