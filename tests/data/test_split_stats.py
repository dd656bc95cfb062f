"""Seeded splits and training-set statistics (reference energies, force RMS, neighbour counts)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from tensormol import keys as K
from tensormol.data import AtomicDataset, compute_statistics, split_dataset, split_indices


def _ds(n: int = 20) -> AtomicDataset:
    counts = np.ones(n, dtype=np.int64)
    return AtomicDataset(np.zeros((n, 3)), np.ones(n, dtype=np.int64), counts,
                         energy=np.arange(n, dtype=float))


def test_split_by_count_and_fraction_is_seeded_and_disjoint():
    ds = _ds(20)
    tr, va, te = split_dataset(ds, train=12, val=5, test=None, seed=3)
    assert (len(tr), len(va), len(te)) == (12, 5, 3)
    ids = [set(d.labels[K.ENERGY].long().tolist()) for d in (tr, va, te)]
    assert set.union(*ids) == set(range(20)) and sum(len(s) for s in ids) == 20
    assert tr.metadata["source_indices"] == sorted(ids[0])
    tr2, _, _ = split_dataset(ds, train=12, val=5, test=None, seed=3)
    tr3, _, _ = split_dataset(ds, train=12, val=5, test=None, seed=4)
    assert tr2.metadata["source_indices"] == tr.metadata["source_indices"]
    assert tr3.metadata["source_indices"] != tr.metadata["source_indices"]
    a, b, c = split_indices(20, 0.5, 0.25, 0.25, seed=0)
    assert (len(a), len(b), len(c)) == (10, 5, 5)
    a, b, c = split_indices(20, 0.5, 2, None, seed=0)  # fractions and counts mix
    assert (len(a), len(b), len(c)) == (10, 2, 8)
    a, b, c = split_indices(20, 5, 5, 5)  # leftovers unused
    assert len(torch.cat([a, b, c]).unique()) == 15


def test_split_errors():
    with pytest.raises(ValueError, match="asks for 25 structures.*only 20"):
        split_indices(20, 20, 5, None)
    with pytest.raises(ValueError, match="at most one of train, val, test may be None"):
        split_indices(20, 5, None, None)
    with pytest.raises(ValueError, match=r"val as a fraction must lie in \[0, 1\], got 1.5"):
        split_indices(20, 0.1, 1.5, None)
    with pytest.raises(ValueError, match="train must be a count >= 0"):
        split_indices(20, -1, 1, None)
    with pytest.raises(TypeError, match="test must be a count"):
        split_indices(20, 1, 1, True)
    with pytest.raises(TypeError, match="AtomicDataset"):
        split_dataset([1, 2, 3])


def test_reference_energies_by_least_squares():
    # Compositions that determine every element; energies built from known references + noise.
    rng = np.random.default_rng(0)
    ref = {1: -13.6, 6: -1029.0, 8: -2041.0}
    comps = [(2, 1, 0), (4, 1, 0), (2, 0, 1), (6, 2, 1), (4, 2, 2), (8, 3, 0), (2, 2, 0)]
    z, counts, energy = [], [], []
    for nh, nc, no in comps * 3:
        zs = [1] * nh + [6] * nc + [8] * no
        z += zs
        counts.append(len(zs))
        energy.append(sum(ref[a] for a in zs) + rng.normal() * 1e-3)
    ntot = sum(counts)
    forces = rng.normal(size=(ntot, 3))
    ds = AtomicDataset(rng.normal(size=(ntot, 3)) * 3, z, counts, energy=energy, forces=forces)
    st = compute_statistics(ds)
    assert st["species"] == [1, 6, 8] and st["element_energies_rank"] == 3
    for zz, e in ref.items():
        assert st["element_energies"][zz] == pytest.approx(e, abs=5e-3)
    assert st["energy_residual_rms"] < 2e-3
    assert st["force_rms"] == pytest.approx(float(np.sqrt(np.mean(forces**2))), rel=1e-12)
    assert st["num_structures"] == 21 and st["num_atoms"] == ntot
    # one composition: rank 1, the references still reproduce the mean energy
    one = ds.index_select([i for i in range(len(ds)) if i % 7 == 3])
    st1 = compute_statistics(one)
    assert st1["element_energies_rank"] == 1
    e_pred = 6 * st1["element_energies"][1] + 2 * st1["element_energies"][6] + \
        st1["element_energies"][8]
    assert e_pred == pytest.approx(float(one.labels[K.ENERGY].mean()), abs=1e-9)
    with pytest.raises(ValueError, match="empty"):
        compute_statistics(ds.index_select([]))


def _brute_force_neighbors(ds: AtomicDataset, cutoff: float) -> float:
    """Slow twin: explicit loops over atom pairs and enough periodic images."""
    total = 0
    for b in range(len(ds)):
        s = ds[b]
        x = s[K.POSITIONS].numpy()
        cell = s[K.CELL][0].numpy()
        pbc = s[K.PBC][0].numpy()
        full = cell.copy()
        if pbc[0] and pbc[1] and not pbc[2]:  # slab: a unit normal stands in for the third
            full[2] = np.cross(cell[0], cell[1]) / np.linalg.norm(np.cross(cell[0], cell[1]))
        reach = []
        for k in range(3):
            if pbc[k]:
                normal = np.cross(full[(k + 1) % 3], full[(k + 2) % 3])
                height = abs(np.linalg.det(full)) / np.linalg.norm(normal)
                reach.append(range(-int(cutoff // height) - 1, int(cutoff // height) + 2))
            else:
                reach.append(range(0, 1))
        for shift in itertools.product(*reach):
            t = np.asarray(shift, dtype=float) @ cell
            for i in range(len(x)):
                for j in range(len(x)):
                    if i == j and not any(shift):
                        continue
                    if np.linalg.norm(x[j] + t - x[i]) < cutoff:
                        total += 1
    return total / int(ds.ptr[-1])


def test_mean_neighbour_count_matches_brute_force():
    rng = np.random.default_rng(5)
    counts = np.array([5, 7, 4])
    n = int(counts.sum())
    cell = np.zeros((3, 3, 3))
    pbc = np.zeros((3, 3), bool)
    cell[1] = [[4.0, 0.0, 0.0], [1.2, 3.5, 0.0], [0.3, -0.7, 4.5]]  # triclinic, < 2 cutoffs
    pbc[1] = True
    cell[2] = np.diag([3.0, 3.0, 0.0])  # slab: periodic in x, y only
    pbc[2] = [True, True, False]
    pos = rng.uniform(0, 3.5, size=(n, 3))
    ds = AtomicDataset(pos, rng.choice([1, 8], size=n), counts, cell=cell, pbc=pbc)
    for cutoff in (2.5, 5.0):
        st = compute_statistics(ds, cutoff=cutoff)
        assert st["cutoff"] == cutoff
        assert st["mean_num_neighbors"] == pytest.approx(_brute_force_neighbors(ds, cutoff),
                                                         rel=1e-12)
        assert st["mean_num_neighbors"] > 0
