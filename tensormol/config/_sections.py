"""The sections of a training configuration, one frozen dataclass each.

Shared values are not repeated here: the neighbour-list cutoff is the model's (``model.cutoff``),
the species are those of the training split, and the statistics (reference energies, force scale,
mean neighbour count) are computed from the training split in code.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from tensormol.config._schema import ConfigError, FrozenDict, Section, option
from tensormol.units import ENERGY_UNITS, LENGTH_UNITS, energy_factor, length_factor

__all__ = [
    "SplitConfig",
    "DataConfig",
    "ModelConfig",
    "LossConfig",
    "PlateauConfig",
    "EarlyStoppingConfig",
    "TrainingConfig",
    "TrainerConfig",
    "LoggingConfig",
    "TrainConfig",
    "METRIC_NAMES",
]

#: Metrics the training module logs per split (``val/forces_mae`` etc.); the monitor must be one.
METRIC_NAMES: tuple[str, ...] = (
    "loss",
    "energy_mae",
    "energy_rmse",
    "energy_per_atom_mae",
    "energy_per_atom_rmse",
    "forces_mae",
    "forces_rmse",
    "stress_mae",
    "stress_rmse",
)


@dataclass(frozen=True)
class SplitConfig(Section):
    """Sizes of the train/val/test splits: all counts (int) or all fractions (float in (0, 1])."""

    train: int | float = option(0.8, doc="training frames (count or fraction)", gt=0)
    val: int | float = option(0.1, doc="validation frames (count or fraction)", gt=0)
    test: int | float = option(0.1, doc="test frames (count or fraction)", ge=0)

    def __post_init__(self) -> None:
        values = (self.train, self.val, self.test)
        if all(isinstance(v, int) for v in values):
            return
        fractions = [float(v) for v in values]
        if any(isinstance(v, int) and v > 1 for v in values):
            raise ConfigError(
                f"data.split mixes counts and fractions ({self.train}, {self.val}, {self.test}); "
                "give all three as counts (integers) or all three as fractions (0 < f <= 1)"
            )
        if sum(fractions) > 1.0 + 1e-9:
            raise ConfigError(
                f"data.split fractions must sum to <= 1, got {self.train} + {self.val} + "
                f"{self.test} = {sum(fractions):g}"
            )


@dataclass(frozen=True)
class DataConfig(Section):
    """Where the data is, in which units, how it is split and batched."""

    path: str = option(doc="data file (relative paths resolve against the YAML file's folder)")
    format: str | None = option(None, doc="file format; null = from the file extension")
    energy_unit: str = option("eV", doc=f"energy unit of the file: {', '.join(ENERGY_UNITS)}")
    length_unit: str = option(
        "Angstrom", doc=f"length unit of the file: {', '.join(LENGTH_UNITS)}"
    )
    max_frames: int | None = option(
        None, doc="read at most this many frames (first N); null = all", gt=0
    )
    reader: FrozenDict = option(
        default_factory=FrozenDict, doc="extra keyword arguments of the reader (e.g. energy_key)"
    )
    split: SplitConfig = option(default_factory=SplitConfig, doc="split sizes")
    split_seed: int | None = option(None, doc="seed of the random split; null = the run seed")
    batch_size: int = option(16, doc="structures per batch per process", ge=1)
    eval_batch_size: int | None = option(
        None, doc="structures per validation/test batch; null = batch_size", ge=1
    )
    num_workers: int = option(0, doc="DataLoader worker processes", ge=0)

    def __post_init__(self) -> None:
        try:
            energy_factor(self.energy_unit)
            length_factor(self.length_unit)
        except ValueError as err:
            raise ConfigError(f"data: {err}") from None


@dataclass(frozen=True)
class ModelConfig(Section):
    """A model from the registry by name, with its own keyword arguments.

    In YAML the keys other than ``name`` are the model's arguments:
    ``model: {name: tensornet, hidden_channels: 32}``. The model builder validates them.
    """

    name: str = option(doc="registered model name")
    params: FrozenDict = option(default_factory=FrozenDict, doc="arguments of the model builder")


@dataclass(frozen=True)
class LossConfig(Section):
    """A weighted sum of energy, force and stress errors."""

    energy_weight: float = option(1.0, doc="weight of the energy term", ge=0)
    forces_weight: float = option(10.0, doc="weight of the force term", ge=0)
    stress_weight: float = option(0.0, doc="weight of the stress term (periodic data)", ge=0)
    energy_per_atom: bool = option(
        True, doc="compare energies per atom, so structures of different size weigh alike"
    )
    kind: str = option("mse", doc="elementwise loss", choices=("mse", "huber"))
    huber_delta: float = option(0.01, doc="Huber transition (eV, eV/Å, eV/Å³)", gt=0)

    def __post_init__(self) -> None:
        if self.energy_weight == self.forces_weight == self.stress_weight == 0:
            raise ConfigError(
                "training.loss: at least one of energy_weight, forces_weight, stress_weight "
                "must be > 0"
            )


@dataclass(frozen=True)
class PlateauConfig(Section):
    """Reduce the learning rate when the monitored metric stops improving."""

    factor: float = option(0.5, doc="multiply the learning rate by this", gt=0, lt=1)
    patience: int = option(5, doc="validations without improvement before reducing", ge=0)
    min_lr: float = option(1e-6, doc="lower bound of the learning rate", ge=0)
    threshold: float = option(1e-4, doc="relative improvement that counts", ge=0)


@dataclass(frozen=True)
class EarlyStoppingConfig(Section):
    """Stop when the monitored metric has not improved for ``patience`` validations."""

    patience: int = option(30, doc="validations without improvement before stopping", ge=1)
    min_delta: float = option(0.0, doc="absolute improvement that counts", ge=0)


@dataclass(frozen=True)
class TrainingConfig(Section):
    """Loss, optimiser, schedules, EMA, clipping, early stopping."""

    loss: LossConfig = option(default_factory=LossConfig, doc="loss weights")
    optimizer: str = option("adamw", doc="optimiser", choices=("adam", "adamw"))
    lr: float = option(1e-3, doc="peak learning rate", gt=0)
    weight_decay: float = option(0.0, doc="decoupled weight decay (adamw) or L2 (adam)", ge=0)
    amsgrad: bool = option(False, doc="AMSGrad variant of Adam")
    warmup_steps: int = option(
        0, doc="optimiser steps of linear learning-rate warm-up from 0", ge=0
    )
    plateau: PlateauConfig | None = option(
        default_factory=PlateauConfig, doc="reduce-on-plateau schedule; null = constant lr"
    )
    ema_decay: float | None = option(
        0.99, doc="decay of the exponential moving average of the weights; null = no EMA",
        ge=0, lt=1,
    )
    grad_clip: float | None = option(
        10.0, doc="clip the gradient norm to this; null = no clipping", gt=0
    )
    early_stopping: EarlyStoppingConfig | None = option(
        default_factory=EarlyStoppingConfig, doc="early stopping; null = off"
    )
    monitor: str = option(
        "val/loss",
        doc="metric for checkpoints, plateau and early stopping",
        choices=tuple(f"val/{m}" for m in METRIC_NAMES),
    )
    compiled_ops: bool = option(
        False,
        doc="build/load tensormol's compiled CPU extension first (fused Gaunt sphere-grid "
            "kernel, segment sums): about a minute the first time, cached afterwards",
    )


_MAX_TIME = re.compile(r"^\d+:\d{1,2}:\d{1,2}:\d{1,2}$")


@dataclass(frozen=True)
class TrainerConfig(Section):
    """Arguments of ``lightning.Trainer``: hardware, strategy, duration, validation cadence.

    Scale out with Lightning's strategies, e.g. ``{strategy: ddp, devices: 4, num_nodes: 2}``.
    """

    accelerator: str = option("auto", doc="cpu, gpu, cuda, mps, auto")
    devices: int | str | list[int] = option("auto", doc="devices per node: count, list or 'auto'")
    num_nodes: int = option(1, doc="number of nodes", ge=1)
    strategy: str = option("auto", doc="Lightning strategy: auto, ddp, ddp_spawn, ...")
    max_epochs: int | None = option(100, doc="epoch limit; null = no limit", ge=1)
    max_steps: int = option(-1, doc="optimiser-step limit; -1 = no limit", ge=-1)
    max_time: str | None = option(None, doc="wall-time limit 'DD:HH:MM:SS'; null = none")
    check_val_every_n_epoch: int = option(1, doc="validate every n epochs", ge=1)
    val_check_interval: int | float | None = option(
        None, doc="validate every n batches (int) or fraction of an epoch (float)", gt=0
    )
    log_every_n_steps: int = option(10, doc="training-step logging cadence", ge=1)
    accumulate_grad_batches: int = option(1, doc="batches per optimiser step", ge=1)
    num_sanity_val_steps: int = option(
        0, doc="validation batches run before training; -1 = all", ge=-1
    )
    limit_train_batches: int | float | None = option(
        None, doc="batches per epoch (int) or fraction; null = all", gt=0
    )
    limit_val_batches: int | float | None = option(
        None, doc="validation batches (int) or fraction; null = all", gt=0
    )
    deterministic: bool = option(False, doc="ask torch for deterministic algorithms")
    enable_progress_bar: bool = option(True, doc="Lightning's progress bar")

    def __post_init__(self) -> None:
        if self.max_time is not None and not _MAX_TIME.match(self.max_time):
            raise ConfigError(
                f"trainer.max_time must look like 'DD:HH:MM:SS' (e.g. '00:00:03:00'), "
                f"got {self.max_time!r}"
            )
        if isinstance(self.devices, str) and self.devices != "auto":
            if not re.fullmatch(r"-1|\d+(,\d+)*,?", self.devices):
                raise ConfigError(
                    f"trainer.devices must be a count, a list of indices or 'auto', "
                    f"got {self.devices!r}"
                )
        if self.max_epochs is None and self.max_steps == -1 and self.max_time is None:
            raise ConfigError(
                "trainer: set at least one of max_epochs, max_steps, max_time; "
                "otherwise training never ends"
            )


@dataclass(frozen=True)
class LoggingConfig(Section):
    """Where the run is written and what is logged there."""

    root: str = option("runs", doc="parent folder of runs (relative to the working directory)")
    name: str = option("run", doc="run folder name under root")
    csv: bool = option(True, doc="write metrics.csv")
    tensorboard: bool = option(True, doc="write TensorBoard event files")
    save_top_k: int = option(1, doc="best checkpoints kept (by the monitor)", ge=0)
    checkpoint_every_n_steps: int | None = option(
        None, doc="also refresh last.ckpt every n optimiser steps; null = per validation", ge=1
    )

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name in (".", ".."):
            raise ConfigError(f"logging.name must be a plain folder name, got {self.name!r}")


@dataclass(frozen=True)
class TrainConfig(Section):
    """A whole training run."""

    data: DataConfig = option(doc="data section")
    model: ModelConfig = option(doc="model section")
    training: TrainingConfig = option(default_factory=TrainingConfig, doc="training section")
    trainer: TrainerConfig = option(default_factory=TrainerConfig, doc="trainer section")
    logging: LoggingConfig = option(default_factory=LoggingConfig, doc="logging section")
    seed: int = option(0, doc="seed of weights, shuffling and (by default) the split", ge=0)

    def replace(self, **changes) -> TrainConfig:
        """A copy with top-level sections replaced (configs are frozen)."""
        return dataclasses.replace(self, **changes)
