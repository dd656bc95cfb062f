"""AtomicDataset, collate and make_dataloader: the batch contract other code is written against."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tensormol import keys as K
from tensormol.data import AtomicDataset, collate, make_dataloader


def _toy(n_frames: int = 5, seed: int = 0, periodic: bool = False) -> AtomicDataset:
    """Frames with 2..4 atoms each and labels that encode the frame index."""
    rng = np.random.default_rng(seed)
    counts = np.array([2 + (i % 3) for i in range(n_frames)], dtype=np.int64)
    ntot = int(counts.sum())
    cell = np.stack([np.eye(3) * (5.0 + i) for i in range(n_frames)]) if periodic else None
    pbc = np.ones((n_frames, 3), bool) if periodic else None
    return AtomicDataset(
        rng.normal(size=(ntot, 3)), rng.choice([1, 6, 8], size=ntot), counts, cell=cell, pbc=pbc,
        energy=-np.arange(n_frames, dtype=float), forces=rng.normal(size=(ntot, 3)),
        stress=rng.normal(size=(n_frames, 3, 3)), dipole=rng.normal(size=(n_frames, 3)),
        metadata={"source": "toy"})


def test_item_is_a_batch_of_one_with_contract_dtypes():
    ds = _toy(periodic=True)
    s = ds[1]
    n = int(ds.num_atoms[1])
    assert s[K.POSITIONS].shape == (n, 3) and s[K.POSITIONS].dtype == torch.float64
    assert s[K.ATOMIC_NUMBERS].shape == (n,) and s[K.ATOMIC_NUMBERS].dtype == torch.int64
    assert s[K.BATCH].tolist() == [0] * n and s[K.BATCH].dtype == torch.int64
    assert s[K.CELL].shape == (1, 3, 3) and s[K.CELL].dtype == torch.float64
    assert s[K.PBC].shape == (1, 3) and s[K.PBC].dtype == torch.bool
    assert s[K.NUM_ATOMS].tolist() == [n]
    assert s[K.ENERGY].tolist() == [-1.0] and s[K.ENERGY].dtype == torch.float64
    assert s[K.FORCES].shape == (n, 3)
    assert s[K.STRESS].shape == (1, 3, 3) and s[K.DIPOLE].shape == (1, 3)
    assert torch.equal(s[K.CELL][0], torch.eye(3, dtype=torch.float64) * 6.0)
    # copies: editing an item leaves the data set alone
    s[K.POSITIONS] += 1.0
    assert not torch.equal(ds[1][K.POSITIONS], s[K.POSITIONS])
    assert torch.equal(ds[-1][K.ENERGY], ds[len(ds) - 1][K.ENERGY])
    with pytest.raises(IndexError, match="out of range"):
        ds[len(ds)]


def test_non_periodic_defaults_zero_cell_and_false_pbc():
    ds = AtomicDataset(np.zeros((3, 3)) + np.arange(3)[:, None], [1, 1, 8], [3])
    s = ds[0]
    assert torch.count_nonzero(s[K.CELL]) == 0 and not bool(s[K.PBC].any())
    assert ds.label_keys == ()


def test_collate_offsets_batch_and_concatenates():
    ds = _toy(6)
    items = [ds[i] for i in (4, 0, 2)]
    b = collate(items)
    counts = [int(ds.num_atoms[i]) for i in (4, 0, 2)]
    assert b[K.NUM_ATOMS].tolist() == counts
    assert b[K.BATCH].tolist() == sum(([k] * c for k, c in enumerate(counts)), [])
    assert b[K.ENERGY].tolist() == [-4.0, 0.0, -2.0]
    assert torch.equal(b[K.POSITIONS], torch.cat([it[K.POSITIONS] for it in items]))
    assert b[K.CELL].shape == (3, 3, 3) and b[K.PBC].shape == (3, 3)
    assert b[K.STRESS].shape == (3, 3, 3) and b[K.DIPOLE].shape == (3, 3)
    # collating batches again keeps structure indices distinct
    bb = collate([b, collate([ds[1]])])
    assert bb[K.BATCH].max().item() == 3 and bb[K.NUM_ATOMS].numel() == 4


def test_collate_errors():
    ds = _toy(3)
    with pytest.raises(ValueError, match="at least one"):
        collate([])
    a, b = ds[0], ds[1]
    del b[K.DIPOLE]
    with pytest.raises(ValueError, match="structure 1 has keys"):
        collate([a, b])
    a[K.EDGE_INDEX] = torch.zeros(2, 0, dtype=torch.int64)
    with pytest.raises(ValueError, match="neighbour lists"):
        collate([a])


def test_dataloader_is_seeded_and_covers_everything():
    ds = _toy(11)

    def order(seed: int) -> list[float]:
        return [e for b in make_dataloader(ds, 4, shuffle=True, seed=seed)
                for e in b[K.ENERGY].tolist()]

    o1, o2, o3 = order(7), order(7), order(8)
    assert o1 == o2 and o1 != o3
    assert sorted(o1) == sorted(float(-i) for i in range(11))
    plain = [b[K.NUM_ATOMS].numel() for b in make_dataloader(ds, 4)]
    assert plain == [4, 4, 3]
    with pytest.raises(ValueError, match="batch_size"):
        make_dataloader(ds, 0)


def test_index_select_and_from_structures():
    ds = _toy(6, periodic=True)
    sub = ds.index_select([5, 1, 3])
    assert sub[0][K.ENERGY].item() == -5.0 and sub[2][K.ENERGY].item() == -3.0
    assert torch.equal(sub[1][K.FORCES], ds[1][K.FORCES])
    assert sub.metadata["source_indices"] == [5, 1, 3]
    assert sub.index_select([2]).metadata["source_indices"] == [3]
    again = AtomicDataset.from_structures([ds[i] for i in range(len(ds))])
    for i in range(len(ds)):
        for k, v in ds[i].items():
            assert torch.equal(again[i][k], v), k
    with pytest.raises(IndexError):
        ds.index_select([6])
    empty = ds.index_select([])
    assert len(empty) == 0


def test_bad_input_is_reported_with_the_frame():
    counts = np.array([2, 3, 2])
    pos = np.zeros((7, 3)) + np.arange(7)[:, None]
    z = np.array([1, 1, 6, 1, 1, 8, 1])
    with pytest.raises(ValueError, match=r"positions must have shape \(7, 3\)"):
        AtomicDataset(pos[:6], z, counts)
    with pytest.raises(ValueError, match=r"atomic_numbers must have shape \(7,\)"):
        AtomicDataset(pos, z[:6], counts)
    with pytest.raises(ValueError, match=r"energy must have shape \(3,\)"):
        AtomicDataset(pos, z, counts, energy=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"forces must have shape \(7, 3\)"):
        AtomicDataset(pos, z, counts, forces=np.zeros((6, 3)))
    e = np.array([1.0, np.nan, 3.0])
    with pytest.raises(ValueError, match=r"energy contains NaN or infinite values in frame 1 "
                                         r"in toy.xyz"):
        AtomicDataset(pos, z, counts, energy=e, metadata={"source": "toy.xyz"})
    f = np.zeros((7, 3))
    f[5, 2] = np.inf  # atom 0 of frame 2
    with pytest.raises(ValueError, match=r"forces contain NaN .* frame 2 \(atom 0 of that"):
        AtomicDataset(pos, z, counts, forces=f)
    bad_z = z.copy()
    bad_z[3] = 119
    with pytest.raises(ValueError, match=r"unknown atomic number 119 in frame 1 \(atom 1"):
        AtomicDataset(pos, bad_z, counts)
    bad_z[3] = 0
    with pytest.raises(ValueError, match="unknown atomic number 0"):
        AtomicDataset(pos, bad_z, counts)
    with pytest.raises(ValueError, match="num_atoms must be >= 1"):
        AtomicDataset(pos, z, [2, 5, 0])
    with pytest.raises(ValueError, match="cell vector is zero"):
        AtomicDataset(pos, z, counts, cell=np.diag([5.0, 5.0, 0.0]), pbc=[True, True, True])
    with pytest.raises(ValueError, match="structure 1 has labels"):
        AtomicDataset.from_structures([
            {K.POSITIONS: np.zeros((1, 3)), K.ATOMIC_NUMBERS: [1], K.ENERGY: 1.0},
            {K.POSITIONS: np.zeros((1, 3)), K.ATOMIC_NUMBERS: [1]},
        ])


def test_concatenate_keeps_order_and_labels():
    a, b = _toy(3, seed=1), _toy(4, seed=2, periodic=True)
    both = AtomicDataset.concatenate([a, b])
    assert len(both) == 7 and both.metadata["offsets"] == [0, 3]
    for i in range(7):
        src = a[i] if i < 3 else b[i - 3]
        for k, v in src.items():
            assert torch.equal(both[i][k], v), k
    no_dipole = AtomicDataset(np.zeros((1, 3)), [1], [1], energy=[0.0])
    with pytest.raises(ValueError, match=r"datasets\[1\] has labels"):
        AtomicDataset.concatenate([a, no_dipole])
