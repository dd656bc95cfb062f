"""Training of tensormol potentials with Lightning.

One :class:`PotentialModule` (energy + force (+ stress) loss, EMA weights, warm-up and
reduce-on-plateau schedules), data sharded so that data parallelism reproduces single-process
steps, and the functions behind ``tensormol train`` / ``tensormol eval``:

>>> from tensormol.config import load_config
>>> from tensormol.train import train, evaluate
>>> result = train(load_config("configs/tensornet_ethanol.yaml"))  # doctest: +SKIP
>>> print(evaluate(result.best_checkpoint).format())  # doctest: +SKIP

Importing this package imports Lightning; ``tensormol`` itself does not.
"""

from tensormol.train._csv import AppendingCSVLogger, read_metrics_csv
from tensormol.train._data import PotentialDataModule, PreparedData, prepare_data
from tensormol.train._ema import ExponentialMovingAverage
from tensormol.train._evaluate import EvalResult, evaluate, run_dir_of_checkpoint
from tensormol.train._loss import ErrorSums, PotentialLoss
from tensormol.train._module import PotentialModule
from tensormol.train._plots import learning_curve_plot, parity_plot
from tensormol.train._progress import LineProgress
from tensormol.train._run import (
    CHECKPOINT_FORMAT,
    TrainResult,
    build_model,
    build_module,
    build_trainer,
    load_checkpoint,
    run_dir_of,
    train,
)
from tensormol.train._sampler import ShardedSampler

__all__ = [
    "train",
    "evaluate",
    "load_checkpoint",
    "TrainResult",
    "EvalResult",
    "PotentialModule",
    "PotentialLoss",
    "ErrorSums",
    "ExponentialMovingAverage",
    "ShardedSampler",
    "PotentialDataModule",
    "PreparedData",
    "prepare_data",
    "AppendingCSVLogger",
    "LineProgress",
    "read_metrics_csv",
    "parity_plot",
    "learning_curve_plot",
    "build_model",
    "build_module",
    "build_trainer",
    "run_dir_of",
    "run_dir_of_checkpoint",
    "CHECKPOINT_FORMAT",
]
