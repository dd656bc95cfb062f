"""Data for training: read once, split, statistics from the training split, sharded loaders."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset

from tensormol import keys as K
from tensormol.config import ConfigError, DataConfig
from tensormol.train._sampler import ShardedSampler

__all__ = [
    "PreparedData",
    "prepare_data",
    "PotentialDataModule",
    "read_configured_dataset",
    "split_configured_dataset",
]


@dataclass
class PreparedData:
    """The three splits and the species seen in training; ``statistics`` of the training split
    are added by :meth:`compute_statistics` once the model (and so its cutoff) exists."""

    train: Dataset
    val: Dataset
    test: Dataset
    species: list[int]
    split_indices: dict[str, list[int]] = field(default_factory=dict)
    statistics: dict[str, Any] = field(default_factory=dict)

    def compute_statistics(self, cutoff: float) -> dict[str, Any]:
        """Statistics of the training split (:func:`tensormol.data.compute_statistics`) with the
        mean neighbour count within ``cutoff`` (Å, the model's); stored and returned."""
        from tensormol.data import compute_statistics

        self.statistics = dict(compute_statistics(self.train, cutoff=float(cutoff)))
        return self.statistics


#: Reader arguments the data section sets itself (not allowed under ``data.reader``).
_OWN_READER_ARGS = ("path", "format", "energy_unit", "length_unit")


def _check_reader_args(data: DataConfig) -> dict[str, Any]:
    import inspect

    from tensormol.config import check_unknown_keys
    from tensormol.data import read_dataset

    sig = inspect.signature(read_dataset)
    valid = [name for name, p in sig.parameters.items()
             if p.kind is p.KEYWORD_ONLY and name not in _OWN_READER_ARGS]
    kwargs = data.reader.to_dict()
    check_unknown_keys(kwargs, valid, "data.reader")
    return kwargs


def read_configured_dataset(data: DataConfig) -> Dataset:
    """Read the data file of a data section, in its declared units; clear error if it is missing.

    ``data.max_frames`` keeps the first frames of the file.
    """
    from tensormol.data import FORMATS, read_dataset

    path = Path(data.path)
    if not path.is_file():
        raise FileNotFoundError(
            f"data.path: data file {str(path)!r} does not exist (working directory "
            f"{os.getcwd()!r}; relative paths in a YAML file resolve against the file's folder)"
        )
    if data.format is not None and data.format not in FORMATS:
        from tensormol.registry import suggest

        raise ConfigError(f"data.format must be one of {', '.join(FORMATS)} or null, got "
                          f"{data.format!r}{suggest(data.format, list(FORMATS))}")
    kwargs = _check_reader_args(data)
    dataset = read_dataset(str(path), format=data.format, energy_unit=data.energy_unit,
                           length_unit=data.length_unit, **kwargs)
    if data.max_frames is not None and data.max_frames < len(dataset):
        dataset = dataset.index_select(range(data.max_frames))
    return dataset


def _split_sizes(data: DataConfig, n: int) -> tuple[int, int, int]:
    s = data.split
    if all(isinstance(v, int) for v in (s.train, s.val, s.test)):
        sizes = (int(s.train), int(s.val), int(s.test))
    else:
        sizes = tuple(int(round(float(v) * n)) for v in (s.train, s.val, s.test))
    if sum(sizes) > n:
        raise ConfigError(
            f"data.split asks for {sizes[0]} + {sizes[1]} + {sizes[2]} = {sum(sizes)} frames but "
            f"{data.path!r} holds {n}" + (" (data.max_frames)" if data.max_frames else "")
        )
    if sizes[0] < 1 or sizes[1] < 1:
        raise ConfigError(f"data.split gives {sizes[0]} training and {sizes[1]} validation frames "
                          f"of {n}; both must be >= 1")
    return sizes  # type: ignore[return-value]


def split_configured_dataset(data: DataConfig, dataset: Dataset, seed: int
                             ) -> tuple[Dataset, Dataset, Dataset]:
    """Split as the data section says (seed ``data.split_seed``, else the run seed)."""
    from tensormol.data import split_dataset

    n_train, n_val, n_test = _split_sizes(data, len(dataset))
    split_seed = data.split_seed if data.split_seed is not None else seed
    return split_dataset(dataset, train=n_train, val=n_val, test=n_test, seed=split_seed)


def prepare_data(data: DataConfig, seed: int) -> PreparedData:
    """Read and split (seeded); the species are those of the training split.

    Parameters
    ----------
    data : DataConfig
        The data section.
    seed : int
        Run seed; the split uses ``data.split_seed`` when set.

    Notes
    -----
    Statistics need the model's cutoff (the one source of truth), so they come after the model
    is built: :meth:`PreparedData.compute_statistics`.
    """
    from tensormol.elements import element_symbol

    dataset = read_configured_dataset(data)
    if K.ENERGY not in dataset.labels and K.FORCES not in dataset.labels:
        raise ValueError(f"data file {data.path!r} has neither energies nor forces to train on")
    train, val, test = split_configured_dataset(data, dataset, seed)
    species = list(train.species)
    for name, part in (("validation", val), ("test", test)):
        extra = sorted(set(part.species) - set(species)) if len(part) else []
        if extra:
            raise ConfigError(
                f"the {name} split holds {', '.join(element_symbol(z) for z in extra)}, which "
                f"the training split lacks; enlarge data.split.train or change data.split_seed"
            )
    indices = {name: [int(i) for i in part.metadata.get("source_indices", [])]
               for name, part in (("train", train), ("val", val), ("test", test))}
    return PreparedData(train, val, test, species, indices)


class PotentialDataModule(L.LightningDataModule):
    """Loaders over prepared splits; each process reads its shard of one seeded permutation.

    ``batch_size`` is per process: ``world_size`` processes with ``batch_size = B / world_size``
    take the same optimiser steps as one process with ``B`` (see :class:`ShardedSampler`). Build
    the Trainer with ``use_distributed_sampler=False`` so Lightning keeps these samplers.
    """

    @classmethod
    def from_config(cls, prepared: PreparedData, data: DataConfig,
                    seed: int) -> PotentialDataModule:
        """Loaders as the data section says (batch sizes, workers)."""
        return cls(prepared, data.batch_size, data.eval_batch_size, data.num_workers, seed=seed)

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
        trainer = self.trainer
        epoch_fn = skip_fn = None
        if trainer is not None:
            def epoch_fn() -> int:
                return trainer.current_epoch

            if train:
                def skip_fn() -> int:
                    # A run resumed from a mid-epoch checkpoint (logging.checkpoint_every_n_steps)
                    # continues its epoch after the batches it had consumed, not from the start.
                    loop = trainer.fit_loop.epoch_loop
                    return loop.batch_progress.current.ready * batch_size if loop.restarting else 0
        sampler = ShardedSampler(len(dataset), shuffle=train, seed=self.seed, rank=rank,
                                 world_size=world, drop_last=train, epoch_fn=epoch_fn,
                                 skip_fn=skip_fn)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                          num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.prepared.train, self.batch_size, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.prepared.val, self.eval_batch_size, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.prepared.test, self.eval_batch_size, train=False)
