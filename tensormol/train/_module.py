"""The LightningModule that trains any tensormol energy model on energies, forces and stress."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from tensormol import keys as K
from tensormol.train._ema import ExponentialMovingAverage
from tensormol.train._loss import ErrorSums, PotentialLoss

__all__ = ["PotentialModule"]

_SPLITS = ("train", "val", "test")


def _batch_size(batch: dict[str, Tensor]) -> int:
    return int(batch[K.NUM_ATOMS].shape[0])


class PotentialModule(L.LightningModule):
    """Train an energy model ``model(batch, compute_forces, compute_stress) -> dict``.

    Parameters
    ----------
    model : nn.Module
        A tensormol energy model (see ``tensormol.models``).
    loss : PotentialLoss
        Weighted energy/force/stress loss.
    optimizer : {"adam", "adamw"}
    lr, weight_decay : float
        Peak learning rate and weight decay.
    amsgrad : bool
    warmup_steps : int
        Optimiser steps of linear warm-up from 0 to ``lr``.
    plateau : dict or None
        ``factor``, ``patience``, ``min_lr``, ``threshold`` of ``ReduceLROnPlateau`` stepped after
        every validation on ``monitor``; ``None`` keeps the learning rate constant.
    ema_decay : float or None
        Decay of the weight average; the averaged weights are used for validation, test and export.
    monitor : str
        Logged metric that drives the plateau schedule (and, outside, checkpoints/early stopping).
    metadata : dict, optional
        Stored in every checkpoint under ``"tensormol"`` (config, statistics, species...), so the
        model can be rebuilt from the checkpoint alone.

    Notes
    -----
    Forces are ``-dE/dr`` by autograd, so validation and test enable gradients locally; the
    Trainer must be built with ``inference_mode=False``. Metrics are exact over a split: error
    sums are all-reduced once per epoch (see :class:`ErrorSums`), logged as ``{split}/{metric}``.
    """

    def __init__(self, model: nn.Module, loss: PotentialLoss, *, optimizer: str = "adamw",
                 lr: float = 1e-3, weight_decay: float = 0.0, amsgrad: bool = False,
                 warmup_steps: int = 0, plateau: dict[str, float] | None = None,
                 ema_decay: float | None = 0.99, monitor: str = "val/loss",
                 metadata: dict[str, Any] | None = None) -> None:
        super().__init__()
        if optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be 'adam' or 'adamw', got {optimizer!r}")
        self.model = model
        self.loss_fn = loss
        self.optimizer_name = optimizer
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.amsgrad = bool(amsgrad)
        self.warmup_steps = int(warmup_steps)
        self.plateau = dict(plateau) if plateau is not None else None
        self.monitor = monitor
        self.ema = ExponentialMovingAverage(model, ema_decay) if ema_decay is not None else None
        self.metadata = dict(metadata or {})
        self._sums = {split: ErrorSums() for split in _SPLITS}
        #: The last computed metrics per split (plain floats), for callers after ``fit``/``test``.
        self.last_metrics: dict[str, dict[str, float]] = {}

    @classmethod
    def from_config(cls, model: nn.Module, training,
                    metadata: dict[str, Any] | None = None) -> PotentialModule:
        """The module a ``training`` section (:class:`tensormol.config.TrainingConfig`) says."""
        plateau = training.plateau.to_dict() if training.plateau is not None else None
        return cls(model, PotentialLoss.from_config(training.loss), optimizer=training.optimizer,
                   lr=training.lr, weight_decay=training.weight_decay, amsgrad=training.amsgrad,
                   warmup_steps=training.warmup_steps, plateau=plateau,
                   ema_decay=training.ema_decay, monitor=training.monitor, metadata=metadata)

    # ----------------------------------------------------------------------------------- model
    @property
    def eval_model(self) -> nn.Module:
        """The weights that are evaluated and exported: the EMA average when enabled."""
        return self.ema.module if self.ema is not None else self.model

    def _predict(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return model(batch, compute_forces=self.loss_fn.needs_forces or K.FORCES in batch,
                     compute_stress=self.loss_fn.needs_stress)

    # -------------------------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        pred = self.model(batch, compute_forces=self.loss_fn.needs_forces,
                          compute_stress=self.loss_fn.needs_stress)
        sums = self.loss_fn.term_sums(pred, batch)
        loss = self.loss_fn.combine(sums)
        self._sums["train"].update(pred, batch, sums)
        self.log("train/loss_step", loss.detach(), batch_size=_batch_size(batch), prog_bar=True,
                 on_step=True, on_epoch=False)
        return loss

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        # Linear warm-up as a function of the global step: identical after a resume, and its last
        # step runs at exactly ``lr``, where the plateau schedule takes over (a plateau reduction
        # during the warm-up itself would be overridden; keep warm-up shorter than its patience).
        if self.warmup_steps > 0 and self.trainer.global_step < self.warmup_steps:
            scale = (self.trainer.global_step + 1) / self.warmup_steps
            for group in optimizer.param_groups:
                group["lr"] = self.lr * scale
        optimizer.step(closure=optimizer_closure)
        if self.ema is not None:
            self.ema.update(self.model)

    def on_train_epoch_start(self) -> None:
        self._sums["train"].reset(self.device)

    def on_train_epoch_end(self) -> None:
        self._log_split("train")
        lr = self.trainer.optimizers[0].param_groups[0]["lr"] if self.trainer.optimizers else None
        if lr is not None:
            self.log("lr", torch.tensor(lr, dtype=torch.float64), on_step=False, on_epoch=True)

    # ------------------------------------------------------------------------ validation, test
    def _eval_step(self, split: str, batch: dict[str, Tensor]) -> None:
        # Lightning runs evaluation under no_grad; forces need the graph of E w.r.t. positions.
        with torch.enable_grad():
            pred = self._predict(self.eval_model, batch)
        sums = self.loss_fn.term_sums(pred, batch)
        self._sums[split].update(pred, batch, sums)

    def on_validation_epoch_start(self) -> None:
        self._sums["val"].reset(self.device)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._log_split("val", prog_bar=True)
        if not self.trainer.sanity_checking:
            self._step_plateau()

    def _step_plateau(self) -> None:
        # The plateau schedule steps here, right after the validation metrics exist and before
        # ModelCheckpoint saves: the saved scheduler state is then always post-step, so a resumed
        # run continues exactly (Lightning's own epoch-end stepping is skipped on restart).
        if self.plateau is None:
            return
        metrics = self.last_metrics.get("val", {})
        name = self.monitor.split("/", 1)[1]
        if name not in metrics:
            raise ValueError(
                f"training.monitor is {self.monitor!r} but validation produced no {name!r}; "
                f"available: {', '.join('val/' + k for k in metrics)}"
            )
        sched = self.lr_schedulers()
        sched.step(metrics[name])

    def lr_scheduler_step(self, scheduler, metric) -> None:
        """Lightning's own stepping is disabled: see :meth:`_step_plateau`."""

    def on_test_epoch_start(self) -> None:
        self._sums["test"].reset(self.device)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step("test", batch)

    def on_test_epoch_end(self) -> None:
        self._log_split("test")

    def _log_split(self, split: str, prog_bar: bool = False) -> None:
        sums = self._sums[split]
        values = sums.values
        if self.trainer is not None and self.trainer.world_size > 1:
            # One all-reduce of the error sums: exact split metrics whatever the sharding.
            values = self.trainer.strategy.reduce(values.clone(), reduce_op="sum")
        total = ErrorSums(values.device)
        total.values = values
        metrics = total.compute(self.loss_fn)
        self.last_metrics[split] = metrics
        for name, value in metrics.items():
            show = prog_bar and name in ("loss", "forces_mae", "energy_per_atom_mae")
            # float64 tensors: Lightning would round plain floats to float32 in the CSV.
            self.log(f"{split}/{name}", torch.tensor(value, dtype=torch.float64), on_step=False,
                     on_epoch=True, prog_bar=show,
                     sync_dist=False, rank_zero_only=False)

    # ------------------------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> Any:
        cls = torch.optim.AdamW if self.optimizer_name == "adamw" else torch.optim.Adam
        start_lr = self.lr / self.warmup_steps if self.warmup_steps > 0 else self.lr
        opt = cls(self.model.parameters(), lr=start_lr, weight_decay=self.weight_decay,
                  amsgrad=self.amsgrad)
        if self.plateau is None:
            return opt
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=self.plateau["factor"], patience=self.plateau["patience"],
            min_lr=self.plateau["min_lr"], threshold=self.plateau["threshold"],
        )
        # Registered with Lightning only so that it is saved and restored with checkpoints.
        return {"optimizer": opt, "lr_scheduler": {
            "scheduler": sched, "monitor": self.monitor, "interval": "epoch", "frequency": 1,
            "strict": False,
        }}

    # ----------------------------------------------------------------------------- checkpoint
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["tensormol"] = self.metadata
        # The running error sums of the current training epoch: a run resumed from a mid-epoch
        # checkpoint adds to them, so its epoch metrics equal an uninterrupted run's.
        checkpoint["tensormol_train_sums"] = {
            "epoch": int(self.trainer.current_epoch) if self._trainer is not None else 0,
            "values": self._sums["train"].values.detach().cpu().clone(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "tensormol" in checkpoint and not self.metadata:
            self.metadata = checkpoint["tensormol"]
        sums = checkpoint.get("tensormol_train_sums")
        if sums is not None and (self._trainer is None or self.trainer.global_rank == 0):
            # A run resumed mid-epoch continues that epoch without a new epoch start, so its
            # epoch metrics cover the batches before the kill too (the next epoch start resets
            # them). Exact in one process; the checkpoint holds the sums of process 0 only, so
            # under data parallelism the other processes' batches before the kill are missing.
            self._sums["train"].values = sums["values"].to(torch.float64)
