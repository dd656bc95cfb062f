"""A sampler that shards one seeded permutation across processes.

Every process draws the same permutation (``seed + epoch``) and takes every ``world_size``-th
index starting at its rank. With a local batch of ``B / world_size``, optimiser step ``k`` then
sees, summed over processes, exactly the structures that one process with batch ``B`` sees at
step ``k`` — so data-parallel training reproduces single-process training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["ShardedSampler"]


class ShardedSampler(Sampler[int]):
    """Indices ``perm[rank::world_size]`` of a per-epoch permutation (or of ``range(n)``).

    Parameters
    ----------
    n : int
        Dataset length.
    shuffle : bool
        Permute with ``torch.randperm`` seeded by ``seed + epoch``; ``False`` keeps the order.
    seed : int
        Base seed of the permutation.
    rank, world_size : int
        This process and the number of processes.
    drop_last : bool
        Drop the tail so every process gets ``n // world_size`` indices (training); ``False``
        gives ranks below ``n % world_size`` one more index and never repeats one (evaluation:
        errors then add up exactly across processes).
    epoch_fn : callable, optional
        Returns the epoch when iteration starts (e.g. ``lambda: trainer.current_epoch``); it takes
        precedence over :meth:`set_epoch`. Lightning's ``set_epoch`` calls are off by one after a
        resume at an epoch boundary, which would change the data order of a resumed run.
    skip_fn : callable, optional
        Returns how many of this process's indices to skip when iteration starts: the samples a
        run killed mid-epoch had consumed, so its resumed epoch continues where it stopped.
    """

    def __init__(self, n: int, *, shuffle: bool, seed: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False,
                 epoch_fn: Callable[[], int] | None = None,
                 skip_fn: Callable[[], int] | None = None) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, "
                             f"world_size={world_size}")
        self.n = int(n)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.drop_last = bool(drop_last)
        self.epoch_fn = epoch_fn
        self.skip_fn = skip_fn
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = int(epoch)

    def _order(self) -> list[int]:
        if self.epoch_fn is not None:
            self.epoch = int(self.epoch_fn())
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        if self.drop_last:
            order = order[: self.n - self.n % self.world_size]
        order = order[self.rank:: self.world_size]
        if self.skip_fn is not None:
            order = order[int(self.skip_fn()):]
        return order

    def __iter__(self) -> Iterator[int]:
        return iter(self._order())

    def __len__(self) -> int:
        if self.drop_last:
            return self.n // self.world_size
        return len(range(self.rank, self.n, self.world_size))
