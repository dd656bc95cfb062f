"""In-memory data set of atomic structures, the batch collation and the data loader.

Storage is concatenated (one ``(N_total, 3)`` positions tensor plus per-structure offsets), not a
list of small tensors, so a 100k-frame data set costs a few large allocations and a subset is
one gather. Every structure returned by ``dataset[i]`` is itself a valid batch of size one, so a
model can be called on it directly; :func:`collate` merges such dicts into a larger batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .. import keys as K
from ..elements import MAX_ATOMIC_NUMBER, check_atomic_numbers

__all__ = ["AtomicDataset", "collate", "make_dataloader", "LABEL_KEYS"]

#: Labels a data set may carry, in the order they are reported.
LABEL_KEYS: tuple[str, ...] = (K.ENERGY, K.FORCES, K.STRESS, K.DIPOLE)
_PER_ATOM_LABELS = (K.FORCES,)


def _np(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _as_float64(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        if x.is_complex() or x.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
        return x.detach().to("cpu", torch.float64).clone()
    try:
        t = torch.from_numpy(np.array(x, dtype=np.float64))  # a copy: never alias caller data
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of numbers: {exc}") from None
    return t.to(torch.float64)


class AtomicDataset(Dataset):
    """A torch ``Dataset`` of atomic structures in canonical units (Å, eV, eV/Å, eV/Å³, e·Å).

    Parameters
    ----------
    positions : array-like, (N_total, 3), float, Å
        Positions of all atoms of all structures, concatenated in structure order.
    atomic_numbers : array-like, (N_total,), int
        Atomic numbers in ``1..118``.
    num_atoms : array-like, (B,), int
        Atoms per structure (each >= 1); ``sum(num_atoms) == N_total``.
    cell : array-like, (B, 3, 3) or (3, 3), float, Å, optional
        Lattice vectors as rows; zeros (the default) for non-periodic structures.
    pbc : array-like, (B, 3) or (3,), bool, optional
        Periodic directions; default ``False``. A periodic direction needs a non-zero cell vector.
    energy : array-like, (B,), float, eV, optional
    forces : array-like, (N_total, 3), float, eV/Å, optional
    stress : array-like, (B, 3, 3), float, eV/Å³, ASE sign (positive = tensile), optional
    dipole : array-like, (B, 3), float, e·Å, optional
    metadata : dict, optional
        Free-form provenance (source file, level of theory, original units...). ``"source"``, if
        given, is named in error messages.

    Raises
    ------
    ValueError
        For mismatched lengths, unknown atomic numbers, or NaN/infinite values (the message names
        the first bad frame index).

    Notes
    -----
    ``dataset[i]`` returns a dict keyed by :mod:`tensormol.keys`: ``POSITIONS`` (n, 3),
    ``ATOMIC_NUMBERS`` (n,), ``BATCH`` (n,) zeros, ``CELL`` (1, 3, 3), ``PBC`` (1, 3),
    ``NUM_ATOMS`` (1,), and whichever labels the data set has: ``ENERGY`` (1,), ``FORCES``
    (n, 3), ``STRESS`` (1, 3, 3), ``DIPOLE`` (1, 3). The tensors are copies. Neighbour lists are
    not stored: the model builds them from its own cutoff.
    """

    def __init__(
        self,
        positions: Any,
        atomic_numbers: Any,
        num_atoms: Any,
        *,
        cell: Any = None,
        pbc: Any = None,
        energy: Any = None,
        forces: Any = None,
        stress: Any = None,
        dipole: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.metadata: dict[str, Any] = dict(metadata or {})
        src = self.metadata.get("source")
        self._where = f" in {src}" if src else ""

        counts = _np(num_atoms)
        if counts.ndim != 1 or not np.issubdtype(counts.dtype, np.integer):
            raise ValueError(f"num_atoms must be a 1-d integer array, got shape {counts.shape} "
                             f"and dtype {counts.dtype}{self._where}")
        if counts.size and counts.min() < 1:
            i = int(np.flatnonzero(counts < 1)[0])
            raise ValueError(f"num_atoms must be >= 1, got {int(counts[i])} for frame {i}"
                             f"{self._where}")
        self.num_atoms = torch.as_tensor(counts.astype(np.int64))
        nframes = int(self.num_atoms.numel())
        self.ptr = torch.zeros(nframes + 1, dtype=torch.int64)
        torch.cumsum(self.num_atoms, 0, out=self.ptr[1:])
        ntot = int(self.ptr[-1])

        self.positions = _as_float64(positions, "positions")
        self._check_shape(self.positions, "positions", (ntot, 3))
        z = _np(atomic_numbers)
        if z.shape != (ntot,):
            raise ValueError(f"atomic_numbers must have shape ({ntot},) to match "
                             f"sum(num_atoms), got {z.shape}{self._where}")
        if z.size and np.issubdtype(z.dtype, np.integer):
            bad = np.flatnonzero((z < 1) | (z > MAX_ATOMIC_NUMBER))
            if bad.size:
                frame = self._frame_of_atom(int(bad[0]))
                raise ValueError(
                    f"unknown atomic number {int(z[bad[0]])} in frame {frame} (atom "
                    f"{int(bad[0]) - int(self.ptr[frame])} of that frame); expected "
                    f"1..{MAX_ATOMIC_NUMBER}{self._where}")
        z = check_atomic_numbers(z, self.metadata.get("source", ""))
        self.atomic_numbers = torch.as_tensor(z)

        self.cell = self._per_frame(cell, "cell", (3, 3), nframes, torch.float64)
        self.pbc = self._per_frame(pbc, "pbc", (3,), nframes, torch.bool)
        self._check_finite(self.positions, "positions", per_atom=True)
        self._check_finite(self.cell, "cell", per_atom=False)
        has_vec = self.cell.abs().sum(dim=2) > 0
        bad = (self.pbc & ~has_vec).any(dim=1).nonzero()
        if bad.numel():
            raise ValueError(f"frame {int(bad[0])} is periodic along a direction whose cell "
                             f"vector is zero{self._where}")

        self.labels: dict[str, torch.Tensor] = {}
        shapes = {K.ENERGY: (nframes,), K.FORCES: (ntot, 3), K.STRESS: (nframes, 3, 3),
                  K.DIPOLE: (nframes, 3)}
        for key, value in ((K.ENERGY, energy), (K.FORCES, forces), (K.STRESS, stress),
                           (K.DIPOLE, dipole)):
            if value is None:
                continue
            t = _as_float64(value, key)
            self._check_shape(t, key, shapes[key])
            self._check_finite(t, key, per_atom=key in _PER_ATOM_LABELS)
            self.labels[key] = t

    # -- validation helpers -------------------------------------------------------------------
    def _check_shape(self, t: torch.Tensor, name: str, shape: tuple[int, ...]) -> None:
        if tuple(t.shape) != shape:
            what = "sum(num_atoms)" if name in (K.POSITIONS, K.FORCES, "positions") else "frames"
            raise ValueError(f"{name} must have shape {shape} to match the number of {what}, "
                             f"got {tuple(t.shape)}{self._where}")

    def _frame_of_atom(self, atom: int) -> int:
        return int(torch.searchsorted(self.ptr, torch.tensor(atom), right=True)) - 1

    def _check_finite(self, t: torch.Tensor, name: str, *, per_atom: bool) -> None:
        ok = torch.isfinite(t.reshape(t.shape[0], -1)).all(dim=1) if t.numel() else None
        if ok is None or bool(ok.all()):
            return
        row = int((~ok).nonzero()[0])
        if per_atom:
            frame = self._frame_of_atom(row)
            atom = row - int(self.ptr[frame])
            raise ValueError(f"{name} contain NaN or infinite values in frame {frame} "
                             f"(atom {atom} of that frame){self._where}")
        raise ValueError(f"{name} contains NaN or infinite values in frame {row}{self._where}")

    def _per_frame(self, value: Any, name: str, shape: tuple[int, ...], nframes: int,
                   dtype: torch.dtype) -> torch.Tensor:
        if value is None:
            return torch.zeros((nframes, *shape), dtype=dtype)
        arr = _np(value)
        if arr.shape == shape:
            arr = np.broadcast_to(arr, (nframes, *shape))
        if arr.shape != (nframes, *shape):
            raise ValueError(f"{name} must have shape {shape} or {(nframes, *shape)}, got "
                             f"{arr.shape}{self._where}")
        if dtype == torch.bool:
            return torch.as_tensor(arr.astype(bool).copy())
        return _as_float64(arr, name)

    # -- Dataset protocol ---------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.num_atoms.numel())

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        n = len(self)
        i = int(index)
        if not -n <= i < n:
            raise IndexError(f"structure index {index} out of range for {n} structures")
        i %= n
        a, b = int(self.ptr[i]), int(self.ptr[i + 1])
        out = {
            K.POSITIONS: self.positions[a:b].clone(),
            K.ATOMIC_NUMBERS: self.atomic_numbers[a:b].clone(),
            K.BATCH: torch.zeros(b - a, dtype=torch.int64),
            K.CELL: self.cell[i : i + 1].clone(),
            K.PBC: self.pbc[i : i + 1].clone(),
            K.NUM_ATOMS: self.num_atoms[i : i + 1].clone(),
        }
        for key, t in self.labels.items():
            out[key] = t[a:b].clone() if key in _PER_ATOM_LABELS else t[i : i + 1].clone()
        return out

    # -- conveniences -------------------------------------------------------------------------
    @property
    def label_keys(self) -> tuple[str, ...]:
        """Labels present in this data set (a subset of :data:`LABEL_KEYS`)."""
        return tuple(k for k in LABEL_KEYS if k in self.labels)

    @property
    def species(self) -> list[int]:
        """Sorted distinct atomic numbers."""
        return sorted(int(z) for z in torch.unique(self.atomic_numbers))

    @property
    def is_periodic(self) -> torch.Tensor:
        """(B,) bool: whether each structure is periodic in any direction."""
        return self.pbc.any(dim=1)

    def index_select(self, indices: Sequence[int] | torch.Tensor | np.ndarray) -> AtomicDataset:
        """A new data set holding copies of the structures at ``indices`` (in that order).

        The result's ``metadata["source_indices"]`` records the indices into the original set,
        composed through repeated selections.
        """
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64).reshape(-1))
        n = len(self)
        if idx.numel() and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"indices must lie in [-{n}, {n}), got min {int(idx.min())} and "
                             f"max {int(idx.max())}")
        idx = idx % max(n, 1)
        counts = self.num_atoms[idx]
        starts = self.ptr[idx]
        # Atom gather index: for each selected frame, its contiguous atom range.
        offsets = torch.repeat_interleave(starts - torch.cumsum(counts, 0) + counts, counts)
        atom_idx = torch.arange(int(counts.sum()), dtype=torch.int64) + offsets
        meta = dict(self.metadata)
        prev = meta.get("source_indices")
        meta["source_indices"] = (idx if prev is None else torch.as_tensor(prev)[idx]).tolist()
        kw = {k: (t[atom_idx] if k in _PER_ATOM_LABELS else t[idx]) for k, t in
              self.labels.items()}
        return AtomicDataset(self.positions[atom_idx], self.atomic_numbers[atom_idx].numpy(),
                             counts.numpy(), cell=self.cell[idx], pbc=self.pbc[idx].numpy(),
                             metadata=meta, **kw)

    @classmethod
    def concatenate(cls, datasets: Sequence[AtomicDataset]) -> AtomicDataset:
        """One data set holding the structures of ``datasets`` in order (e.g. several molecules).

        All must carry the same labels. ``metadata["sources"]`` lists each part's ``source``
        and ``metadata["offsets"]`` the index where each part starts.
        """
        parts = list(datasets)
        if not parts:
            raise ValueError("concatenate needs at least one data set")
        for i, d in enumerate(parts):
            if not isinstance(d, AtomicDataset):
                raise TypeError(f"datasets[{i}] must be an AtomicDataset, got {type(d).__name__}")
            if d.label_keys != parts[0].label_keys:
                raise ValueError(f"datasets[{i}] has labels {d.label_keys} but datasets[0] has "
                                 f"{parts[0].label_keys}; every part needs the same labels")
        offsets = np.cumsum([0] + [len(d) for d in parts[:-1]]).tolist()
        meta = {"sources": [d.metadata.get("source") for d in parts], "offsets": offsets}
        kw = {k: torch.cat([d.labels[k] for d in parts]) for k in parts[0].label_keys}
        return cls(torch.cat([d.positions for d in parts]),
                   torch.cat([d.atomic_numbers for d in parts]),
                   torch.cat([d.num_atoms for d in parts]),
                   cell=torch.cat([d.cell for d in parts]), pbc=torch.cat([d.pbc for d in parts]),
                   metadata=meta, **kw)

    @classmethod
    def from_structures(cls, structures: Sequence[Mapping[str, Any]],
                        metadata: Mapping[str, Any] | None = None) -> AtomicDataset:
        """Build a data set from per-structure dicts keyed by :mod:`tensormol.keys`.

        Each dict needs ``POSITIONS`` (n, 3) Å and ``ATOMIC_NUMBERS`` (n,); ``CELL`` (3, 3) or
        (1, 3, 3), ``PBC`` (3,) or (1, 3) and the labels (canonical units) are optional, but a
        label must be present in every structure or in none.
        """
        if len(structures) == 0:
            raise ValueError("cannot build a data set from zero structures")
        pos, z, n, cell, pbc = [], [], [], [], []
        labels: dict[str, list] = {k: [] for k in LABEL_KEYS}
        first = set(k for k in LABEL_KEYS if k in structures[0])
        for i, s in enumerate(structures):
            present = set(k for k in LABEL_KEYS if k in s)
            if present != first:
                diff = sorted(present ^ first)
                raise ValueError(f"structure {i} has labels {sorted(present)} but structure 0 has "
                                 f"{sorted(first)} (differ in {diff}); every structure needs the "
                                 f"same labels")
            p = np.asarray(s[K.POSITIONS], dtype=np.float64).reshape(-1, 3)
            pos.append(p)
            z.append(np.asarray(s[K.ATOMIC_NUMBERS]).reshape(-1))
            n.append(len(p))
            cell.append(np.zeros((3, 3)) if s.get(K.CELL) is None
                        else np.asarray(s[K.CELL], dtype=np.float64).reshape(3, 3))
            pbc.append(np.zeros(3, bool) if s.get(K.PBC) is None
                       else np.asarray(s[K.PBC], dtype=bool).reshape(3))
            for k in present:
                labels[k].append(np.asarray(s[k], dtype=np.float64))
        kw = {}
        for k in first:
            if k == K.FORCES:
                kw[k] = np.concatenate([f.reshape(-1, 3) for f in labels[k]])
            elif k == K.ENERGY:
                kw[k] = np.array([float(e.reshape(-1)[0]) for e in labels[k]])
            elif k == K.STRESS:
                kw[k] = np.stack([s.reshape(3, 3) for s in labels[k]])
            else:
                kw[k] = np.stack([d.reshape(3) for d in labels[k]])
        return cls(np.concatenate(pos), np.concatenate(z), np.asarray(n, dtype=np.int64),
                   cell=np.stack(cell), pbc=np.stack(pbc), metadata=metadata, **kw)

    def __repr__(self) -> str:
        labels = ", ".join(self.label_keys) or "none"
        return (f"AtomicDataset({len(self)} structures, {int(self.ptr[-1])} atoms, species "
                f"{self.species}, labels: {labels}, periodic: {int(self.is_periodic.sum())})")


def collate(structures: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Merge structures (or batches) into one batch dict.

    Parameters
    ----------
    structures : sequence of dict
        Each a batch dict keyed by :mod:`tensormol.keys` (e.g. ``dataset[i]``, whose ``B`` is 1).
        All must have the same keys.

    Returns
    -------
    dict[str, torch.Tensor]
        Every field concatenated along dimension 0; ``BATCH`` offset so that structure indices
        stay distinct (``BATCH`` (N,) int64 in ``0..B-1``).

    Raises
    ------
    ValueError
        For an empty sequence, differing keys, or a neighbour list (``EDGE_INDEX``), which is
        built after collation from the model's cutoff, never merged here.
    """
    if len(structures) == 0:
        raise ValueError("collate needs at least one structure, got an empty sequence")
    keys = list(structures[0].keys())
    if K.EDGE_INDEX in keys:
        raise ValueError("collate does not merge neighbour lists (edge_index); build them after "
                         "collating, from the model's cutoff")
    for i, s in enumerate(structures):
        if set(s.keys()) != set(keys):
            raise ValueError(f"structure {i} has keys {sorted(s.keys())}, structure 0 has "
                             f"{sorted(keys)}; every structure needs the same fields")
    out: dict[str, torch.Tensor] = {}
    for key in keys:
        if key == K.BATCH:
            parts, offset = [], 0
            for s in structures:
                parts.append(s[K.BATCH] + offset)
                offset += int(s[K.NUM_ATOMS].numel())
            out[key] = torch.cat(parts)
        else:
            out[key] = torch.cat([s[key] for s in structures], dim=0)
    return out


def make_dataloader(dataset: Dataset, batch_size: int, shuffle: bool = False, seed: int = 0,
                    *, num_workers: int = 0, drop_last: bool = False) -> DataLoader:
    """A ``DataLoader`` yielding batch dicts (see :func:`collate`), shuffled reproducibly.

    Parameters
    ----------
    dataset : AtomicDataset or any Dataset of structure dicts
    batch_size : int
        Structures per batch (>= 1).
    shuffle : bool
        Reshuffle each epoch, in an order fixed by ``seed``.
    seed : int
        Seed of the loader's own ``torch.Generator`` (the global RNG is not touched).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    gen = torch.Generator().manual_seed(int(seed))
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
                      generator=gen, num_workers=num_workers, drop_last=drop_last)
