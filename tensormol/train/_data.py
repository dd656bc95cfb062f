"""Data for training: read once, split, statistics from the training split, sharded loaders."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset

from tensormol.config import ConfigError, DataConfig
from tensormol.train._sampler import ShardedSampler

__all__ = ["PreparedData", "prepare_data", "PotentialDataModule", "read_configured_dataset"]


@dataclass
class PreparedData:
    """The three splits, the training-split statistics and the species seen in training."""

    train: Dataset
    val: Dataset
    test: Dataset
    statistics: dict[str, Any]
    species: list[int]
    split_indices: dict[str, list[int]] = field(default_factory=dict)


def read_configured_dataset(data: DataConfig) -> Dataset:
    """Read the data file of a data section, in its declared units; clear error if it is missing."""
    from tensormol.data import read_dataset

    path = Path(data.path)
    if not path.exists():
        raise FileNotFoundError(
            f"data.path: data file {str(path)!r} does not exist (working directory "
            f"{os.getcwd()!r}; relative paths in a YAML file resolve against the file's folder)"
        )
    kwargs = dict(data.reader.to_dict())
    if data.max_frames is not None:
        kwargs["max_frames"] = data.max_frames
    return read_dataset(str(path), format=data.format, energy_unit=data.energy_unit,
                        length_unit=data.length_unit, **kwargs)


def _split_sizes(data: DataConfig, n: int) -> tuple[int, int, int]:
    s = data.split
    if all(isinstance(v, int) for v in (s.train, s.val, s.test)):
        sizes = (int(s.train), int(s.val), int(s.test))
    else:
        sizes = tuple(int(round(float(v) * n)) for v in (s.train, s.val, s.test))
    if sum(sizes) > n:
        raise ConfigError(
            f"data.split asks for {sizes[0]} + {sizes[1]} + {sizes[2]} = {sum(sizes)} frames but "
            f"{data.path!r} holds {n}"
        )
    if sizes[0] < 1 or sizes[1] < 1:
        raise ConfigError(f"data.split gives {sizes[0]} training and {sizes[1]} validation frames "
                          f"of {n}; both must be >= 1")
    return sizes  # type: ignore[return-value]


def prepare_data(data: DataConfig, seed: int, cutoff: float) -> PreparedData:
    """Read, split (seeded) and compute statistics on the training split.

    Parameters
    ----------
    data : DataConfig
        The data section.
    seed : int
        Run seed; the split uses ``data.split_seed`` when set.
    cutoff : float
        The model's cutoff (Å), for the mean neighbour count.
    """
    from tensormol.data import compute_statistics, split_dataset

    dataset = read_configured_dataset(data)
    n_train, n_val, n_test = _split_sizes(data, len(dataset))
    split_seed = data.split_seed if data.split_seed is not None else seed
    train, val, test = split_dataset(dataset, train=n_train, val=n_val, test=n_test,
                                     seed=split_seed)
    statistics = dict(compute_statistics(train, cutoff=cutoff))
    species = sorted(int(z) for z in _species(train))
    indices = {name: [int(i) for i in getattr(ds, "indices", [])]
               for name, ds in (("train", train), ("val", val), ("test", test))}
    return PreparedData(train, val, test, statistics, species, indices)


def _species(dataset: Dataset) -> set[int]:
    from tensormol import keys as K

    found = getattr(dataset, "species", None)
    if found is not None:
        return {int(z) for z in found}
    zs: set[int] = set()
    for i in range(len(dataset)):
        zs.update(int(z) for z in dataset[i][K.ATOMIC_NUMBERS].tolist())
    return zs


class PotentialDataModule(L.LightningDataModule):
    """Loaders over prepared splits; each process reads its shard of one seeded permutation.

    ``batch_size`` is per process: ``world_size`` processes with ``batch_size = B / world_size``
    take the same optimiser steps as one process with ``B`` (see :class:`ShardedSampler`). Build
    the Trainer with ``use_distributed_sampler=False`` so Lightning keeps these samplers.
    """

    def __init__(self, prepared: PreparedData, batch_size: int, eval_batch_size: int | None = None,
                 num_workers: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.prepared = prepared
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)

    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def _loader(self, dataset: Dataset, batch_size: int, train: bool) -> DataLoader:
        from tensormol.data import collate

        rank, world = self._rank_world()
        sampler = ShardedSampler(len(dataset), shuffle=train, seed=self.seed, rank=rank,
                                 world_size=world, drop_last=train)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                          num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.prepared.train, self.batch_size, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.prepared.val, self.eval_batch_size, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.prepared.test, self.eval_batch_size, train=False)
