"""Exponential moving average of a model's weights: the weights that are evaluated and exported."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["ExponentialMovingAverage"]


class ExponentialMovingAverage(nn.Module):
    """Keep ``θ_ema ← d·θ_ema + (1 − d)·θ`` after every optimiser step.

    The averaged weights live in a full copy of the model (``self.module``), so evaluating them is
    a plain forward call and they travel in the ``state_dict`` (checkpoints restore them). Buffers
    (reference energies, scales) are copied, not averaged.

    Parameters
    ----------
    model : nn.Module
        The trained model; its current weights initialise the average.
    decay : float
        Target decay ``d`` in ``[0, 1)``. Early on the effective decay is
        ``min(d, (1 + n) / (10 + n))`` after ``n`` updates, so the random initial weights are
        forgotten quickly.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.int64))

    def effective_decay(self) -> float:
        n = int(self.num_updates)
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights."""
        d = self.effective_decay()
        for p_avg, p in zip(self.module.parameters(), model.parameters(), strict=True):
            p_avg.lerp_(p.detach().to(p_avg.dtype), 1.0 - d)
        for b_avg, b in zip(self.module.buffers(), model.buffers(), strict=True):
            b_avg.copy_(b)
        self.num_updates += 1

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
