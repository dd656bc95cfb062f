"""Seeded train/validation/test splits by count or fraction."""

from __future__ import annotations

import math

import torch

from ._dataset import AtomicDataset

__all__ = ["split_dataset", "split_indices"]


def _resolve(value: int | float | None, name: str, n: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a count (int), a fraction (float) or None, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{name} must be a count >= 0, got {value}")
        return value
    if isinstance(value, float):
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"{name} as a fraction must lie in [0, 1], got {value}")
        return int(round(value * n))
    raise TypeError(f"{name} must be a count (int), a fraction (float) or None, got "
                    f"{type(value).__name__}")


def split_indices(n: int, train: int | float | None = 0.8, val: int | float | None = 0.1,
                  test: int | float | None = None, seed: int = 0
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Disjoint sorted index sets (int64) for a data set of ``n`` structures.

    Each of ``train``, ``val``, ``test`` is a count (int), a fraction of ``n`` (float, rounded
    to the nearest count) or ``None`` for "all the structures the others leave" (at most one
    ``None``). Structures left over when all three are given are not used. The permutation is
    ``torch.randperm(n)`` under a generator seeded with ``seed``: the same arguments always give
    the same split.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    sizes = {k: _resolve(v, k, n) for k, v in (("train", train), ("val", val), ("test", test))}
    unknown = [k for k, v in sizes.items() if v is None]
    if len(unknown) > 1:
        raise ValueError(f"at most one of train, val, test may be None (the remainder); "
                         f"got None for {', '.join(unknown)}")
    fixed = sum(v for v in sizes.values() if v is not None)
    if fixed > n:
        desc = ", ".join(f"{k}={v}" for k, v in sizes.items() if v is not None)
        raise ValueError(f"the split asks for {fixed} structures ({desc}) but the data set has "
                         f"only {n}")
    if unknown:
        sizes[unknown[0]] = n - fixed
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    out, start = [], 0
    for k in ("train", "val", "test"):
        out.append(torch.sort(perm[start:start + sizes[k]]).values)
        start += sizes[k]
    return out[0], out[1], out[2]


def split_dataset(dataset: AtomicDataset, train: int | float | None = 0.8,
                  val: int | float | None = 0.1, test: int | float | None = None,
                  seed: int = 0) -> tuple[AtomicDataset, AtomicDataset, AtomicDataset]:
    """Split a data set into (train, val, test) data sets, seeded; see :func:`split_indices`.

    Each part's ``metadata["source_indices"]`` lists its structures' indices in ``dataset``
    (write them next to a run to make the split reproducible from the file alone).

    Examples
    --------
    >>> train, val, test = split_dataset(ds, train=1000, val=100, test=None, seed=0)
    >>> train, val, test = split_dataset(ds, train=0.8, val=0.1, test=0.1, seed=0)
    """
    if not isinstance(dataset, AtomicDataset):
        raise TypeError(f"dataset must be an AtomicDataset, got {type(dataset).__name__}")
    idx = split_indices(len(dataset), train, val, test, seed)
    return tuple(dataset.index_select(i) for i in idx)  # type: ignore[return-value]
