"""Train from a config, resume a killed run, load a checkpoint's (EMA) model.

Everything that can fail on user input (config, data file, split sizes, model arguments) is checked
before the run folder is created, so a failed start leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tensormol.config import ConfigError, TrainConfig, config_to_dict, dump_config, load_yaml
from tensormol.train._data import PotentialDataModule, PreparedData, prepare_data
from tensormol.train._loss import PotentialLoss
from tensormol.train._module import PotentialModule

__all__ = [
    "TrainResult",
    "train",
    "run_dir_of",
    "build_model",
    "apply_statistics",
    "build_module",
    "build_trainer",
    "load_checkpoint",
    "CHECKPOINT_FORMAT",
]

#: Version of the ``"tensormol"`` entry of a checkpoint (bumped on incompatible changes).
CHECKPOINT_FORMAT = 1

# Harmless Lightning advice for small CPU runs; silenced so the console shows what matters.
_QUIET = (
    r".*does not have many workers.*",
    r".*smaller than the logging interval.*",
    r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*",
    r".*GPU available but not used.*",
    # Split metrics are all-reduced by the module itself before logging.
    r".*when logging on epoch level in distributed setting.*",
    # Mid-epoch resume is exact: the train sampler skips what the killed run consumed.
    r".*resuming from a checkpoint that ended before the epoch ended.*",
    # A resumed run writes into its own checkpoint folder by design.
    r".*Checkpoint directory .* exists and is not empty.*",
)
_TIP_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in str(record.msg).lower()


@contextlib.contextmanager
def _quiet_lightning():
    """Silence Lightning's advice that does not apply here, for the duration of a run only."""
    flt = _DropAdverts()
    loggers = [logging.getLogger(name) for name in _TIP_LOGGERS]
    for lg in loggers:
        lg.addFilter(flt)
    try:
        with warnings.catch_warnings():
            for pattern in _QUIET:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for lg in loggers:
            lg.removeFilter(flt)


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    run_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    global_step: int
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def run_dir_of(cfg: TrainConfig) -> Path:
    """The run folder ``logging.root / logging.name`` (absolute)."""
    return (Path(cfg.logging.root) / cfg.logging.name).resolve()


def _is_primary_process() -> bool:
    """True unless this is a non-zero rank of a distributed launch (Lightning, torchrun, SLURM).

    Lightning's DDP launcher re-runs the command in child processes with ``LOCAL_RANK`` set; only
    the primary process checks and writes the run folder.
    """
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID"):
        value = os.environ.get(var)
        if value not in (None, "", "0"):
            return False
    return True


def build_model(cfg: TrainConfig, species: list[int],
                statistics: dict[str, Any] | None = None) -> nn.Module:
    """Build the configured model from the registry for ``species``.

    With ``statistics`` (from :func:`tensormol.data.compute_statistics` on the training split),
    the model's per-element reference energies and energy scale are set from them.
    """
    from tensormol import models as _models  # noqa: F401  (registers the builders)
    from tensormol.registry import MODELS

    builder = MODELS.get(cfg.model.name)
    try:
        model = builder(cfg.model.params.to_dict(), atomic_numbers=list(species))
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model ({cfg.model.name}): {err}") from None
    if statistics is not None:
        apply_statistics(model, statistics)
    return model


def apply_statistics(model: nn.Module, statistics: dict[str, Any]) -> None:
    """Set reference energies (least-squares per element) and the energy scale of ``model``.

    The scale is the RMS of the training forces (eV/Å; the network's outputs are then of order
    one in force units), or the per-atom energy residual spread without forces.
    """
    refs = statistics.get("element_energies")
    scale = statistics.get("force_rms")
    if not scale:
        scale = statistics.get("energy_residual_per_atom_std") or None
    model.set_energy_statistics(
        reference_energies={int(z): float(e) for z, e in refs.items()} if refs else None,
        scale=float(scale) if scale else None,
    )


def build_module(cfg: TrainConfig, model: nn.Module,
                 metadata: dict[str, Any] | None = None) -> PotentialModule:
    """Wrap ``model`` in the :class:`PotentialModule` configured by ``cfg.training``."""
    t = cfg.training
    loss = PotentialLoss(t.loss.energy_weight, t.loss.forces_weight, t.loss.stress_weight,
                         t.loss.energy_per_atom, t.loss.kind, t.loss.huber_delta)
    plateau = None
    if t.plateau is not None:
        plateau = {"factor": t.plateau.factor, "patience": t.plateau.patience,
                   "min_lr": t.plateau.min_lr, "threshold": t.plateau.threshold}
    return PotentialModule(model, loss, optimizer=t.optimizer, lr=t.lr,
                           weight_decay=t.weight_decay, amsgrad=t.amsgrad,
                           warmup_steps=t.warmup_steps, plateau=plateau, ema_decay=t.ema_decay,
                           monitor=t.monitor, metadata=metadata)


def build_trainer(cfg: TrainConfig, run_dir: Path, *, resume_step: int | None = None,
                  callbacks: list | None = None, **overrides: Any):
    """A ``lightning.Trainer`` for ``cfg`` writing into ``run_dir``.

    Checkpoints go to ``run_dir/checkpoints`` (``last.ckpt`` after every validation, and every
    ``logging.checkpoint_every_n_steps`` steps when set; ``best.ckpt`` by the monitor), metrics to
    ``run_dir/metrics.csv`` and ``run_dir/tensorboard``.
    """
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    from tensormol.train._csv import AppendingCSVLogger

    tr, lg, t = cfg.trainer, cfg.logging, cfg.training
    ckpt_dir = run_dir / "checkpoints"
    cbs = list(callbacks or [])
    cbs.append(ModelCheckpoint(
        dirpath=ckpt_dir, filename="best" if lg.save_top_k <= 1 else "best-{step:07d}",
        monitor=t.monitor, mode="min", save_top_k=lg.save_top_k, save_last=True,
        auto_insert_metric_name=False, enable_version_counter=False,
    ))
    if lg.checkpoint_every_n_steps is not None:
        cbs.append(ModelCheckpoint(
            dirpath=ckpt_dir, filename="last", every_n_train_steps=lg.checkpoint_every_n_steps,
            save_top_k=1, monitor=None, enable_version_counter=False, save_last=False,
        ))
    if t.early_stopping is not None:
        cbs.append(EarlyStopping(monitor=t.monitor, mode="min",
                                 patience=t.early_stopping.patience,
                                 min_delta=t.early_stopping.min_delta,
                                 check_on_train_epoch_end=False))
    loggers: list = []
    if lg.csv:
        loggers.append(AppendingCSVLogger(run_dir, resume_step=resume_step))
    if lg.tensorboard:
        loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="",
                                         default_hp_metric=False))
    devices = list(tr.devices) if isinstance(tr.devices, tuple) else tr.devices
    kwargs: dict[str, Any] = dict(
        accelerator=tr.accelerator, devices=devices, num_nodes=tr.num_nodes,
        strategy=tr.strategy, max_epochs=tr.max_epochs if tr.max_epochs is not None else -1,
        max_steps=tr.max_steps, max_time=tr.max_time,
        check_val_every_n_epoch=tr.check_val_every_n_epoch,
        val_check_interval=tr.val_check_interval, log_every_n_steps=tr.log_every_n_steps,
        accumulate_grad_batches=tr.accumulate_grad_batches,
        num_sanity_val_steps=tr.num_sanity_val_steps,
        limit_train_batches=tr.limit_train_batches, limit_val_batches=tr.limit_val_batches,
        deterministic=tr.deterministic, enable_progress_bar=tr.enable_progress_bar,
        gradient_clip_val=t.grad_clip, gradient_clip_algorithm="norm",
        default_root_dir=str(run_dir), callbacks=cbs, logger=loggers or False,
        enable_checkpointing=True, enable_model_summary=False,
        # Forces are -dE/dr by autograd: evaluation needs gradients, so no inference mode.
        inference_mode=False,
        # Our samplers shard one seeded permutation, so DDP reproduces single-process steps.
        use_distributed_sampler=False,
    )
    kwargs.update(overrides)
    try:
        with _quiet_lightning():
            return L.Trainer(**kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"trainer: {err}") from None
    except Exception as err:  # Lightning's MisconfigurationException for a bad strategy etc.
        if type(err).__name__ == "MisconfigurationException":
            raise ConfigError(f"trainer: {err}") from None
        raise


def _checkpoint_metadata(cfg: TrainConfig, prepared: PreparedData, cutoff: float) -> dict:
    import tensormol

    return {
        "format": CHECKPOINT_FORMAT,
        "tensormol_version": tensormol.__version__,
        "torch_version": str(torch.__version__),
        "config": config_to_dict(cfg),
        "model_name": cfg.model.name,
        "model_params": cfg.model.params.to_dict(),
        "statistics": _to_plain(prepared.statistics),
        "species": list(prepared.species),
        "cutoff": float(cutoff),
        "units": {"energy": "eV", "length": "Angstrom", "forces": "eV/Angstrom",
                  "stress": "eV/Angstrom^3"},
        "split_indices": prepared.split_indices,
    }


def _to_plain(value: Any) -> Any:
    """Statistics as plain Python data (tensors → lists) so checkpoints never pickle classes."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, dict):
        return {(int(k) if isinstance(k, torch.Tensor) else k): _to_plain(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def _check_resumable(ckpt_path: Path, cfg: TrainConfig) -> int:
    """Global step of ``ckpt_path``; a clear error if its model differs from ``cfg``'s."""
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    meta = ckpt.get("tensormol") or {}
    old = (meta.get("model_name"), meta.get("model_params"))
    new = (cfg.model.name, cfg.model.params.to_dict())
    if meta and old != new:
        raise ConfigError(
            f"cannot resume from {str(ckpt_path)!r}: it holds model {old[0]!r} with {old[1]}, "
            f"the config asks for {new[0]!r} with {new[1]}; the model section must not change "
            f"when resuming"
        )
    return int(ckpt.get("global_step", 0))


def train(cfg: TrainConfig, *, resume: bool | str | os.PathLike = False,
          overwrite: bool = False, test: bool = True, callbacks: list | None = None,
          trainer_overrides: dict[str, Any] | None = None) -> TrainResult:
    """Train the configured model; write config, checkpoints and metrics into the run folder.

    Parameters
    ----------
    cfg : TrainConfig
        A validated config (:func:`tensormol.config.load_config`).
    resume : bool or path
        ``True`` continues from ``<run>/checkpoints/last.ckpt``; a path names the checkpoint.
        Global step, optimiser, schedules, EMA and early-stopping state are restored.
    overwrite : bool
        Delete an existing run folder of the same name first (ignored when resuming).
    test : bool
        Evaluate the best checkpoint on the test split after training.
    callbacks : list, optional
        Extra Lightning callbacks.
    trainer_overrides : dict, optional
        Extra ``lightning.Trainer`` arguments (tests).

    Returns
    -------
    TrainResult
        Run folder, checkpoints, final global step, last metrics per split (eV, eV/Å).

    Raises
    ------
    ConfigError, FileNotFoundError
        Before anything is written: bad config, missing data file, split larger than the data,
        bad model arguments, an existing run without ``resume``/``overwrite``, or ``resume``
        without a checkpoint.
    """
    import lightning as L

    run_dir = run_dir_of(cfg)
    primary = _is_primary_process()
    ckpt_path: Path | None = None
    if resume:
        ckpt_path = (run_dir / "checkpoints" / "last.ckpt" if resume is True
                     else Path(resume).resolve())
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"cannot resume: checkpoint {str(ckpt_path)!r} does not exist")
    elif primary and run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise ConfigError(
            f"run folder {str(run_dir)!r} already exists; resume it (--resume), overwrite it "
            f"(--overwrite) or choose another logging.name"
        )

    # Everything that reads user input happens before the run folder is touched.
    if cfg.training.compiled_ops:
        from tensormol._ext import load_extension

        status = load_extension()
        if not status.loaded:
            raise ConfigError(f"training.compiled_ops is true but tensormol's compiled extension "
                              f"is unavailable: {status.reason}. Fix that or set it to false "
                              f"(the torch routes compute the same, slower).")
    built: dict[str, nn.Module] = {}

    def cutoff_of(species: list[int]) -> float:
        # The model needs the species of the training split; the statistics need its cutoff.
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        built["model"] = build_model(cfg, species)
        return float(built["model"].cutoff)

    prepared = prepare_data(cfg.data, cfg.seed, cutoff_of)
    model = built["model"]
    apply_statistics(model, prepared.statistics)
    cutoff = float(model.cutoff)
    metadata = _checkpoint_metadata(cfg, prepared, cutoff)
    module = build_module(cfg, model, metadata)
    datamodule = PotentialDataModule(prepared, cfg.data.batch_size, cfg.data.eval_batch_size,
                                     cfg.data.num_workers, seed=cfg.seed)
    resume_step = None
    if ckpt_path is not None:
        resume_step = _check_resumable(ckpt_path, cfg)
    trainer = build_trainer(cfg, run_dir, resume_step=resume_step, callbacks=callbacks,
                            **(trainer_overrides or {}))

    if primary:
        if run_dir.exists() and overwrite and not resume:
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is None or not (run_dir / "config.yaml").is_file():
            dump_config(cfg, run_dir / "config.yaml")
        elif load_yaml(run_dir / "config.yaml") != config_to_dict(cfg):
            # Keep the original; record what the resumed part ran with (e.g. more epochs).
            dump_config(cfg, run_dir / f"config.resumed_at_step_{resume_step}.yaml")

    with _quiet_lightning():
        trainer.fit(module, datamodule=datamodule,
                    ckpt_path=str(ckpt_path) if ckpt_path is not None else None)
        ckpt_cb = trainer.checkpoint_callback
        best = Path(ckpt_cb.best_model_path) if ckpt_cb and ckpt_cb.best_model_path else None
        if test and len(prepared.test) > 0:
            trainer.test(module, datamodule=datamodule,
                         ckpt_path=str(best) if best is not None else None, verbose=False)
    return TrainResult(run_dir=run_dir, last_checkpoint=run_dir / "checkpoints" / "last.ckpt",
                       best_checkpoint=best, global_step=int(trainer.global_step),
                       metrics=dict(module.last_metrics))


def load_checkpoint(path: str | os.PathLike, *, ema: bool = True,
                    map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the trained model from a checkpoint alone.

    Parameters
    ----------
    path : path-like
        A checkpoint written by :func:`train`.
    ema : bool
        Load the exponential-moving-average weights (the ones validated; default) rather than the
        raw optimiser weights. Falls back to the raw weights when the run had no EMA.

    Returns
    -------
    model : nn.Module
        In eval mode, on ``map_location``.
    metadata : dict
        ``config`` (resolved, plain), ``model_name``, ``model_params``, ``statistics``,
        ``species``, ``cutoff`` (Å), ``units``, ``split_indices``, versions.
    """
    from tensormol.config import config_from_dict

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    meta = ckpt.get("tensormol")
    if not isinstance(meta, dict):
        raise ValueError(f"{str(path)!r} is not a tensormol training checkpoint "
                         "(no 'tensormol' entry)")
    if meta.get("format", 0) > CHECKPOINT_FORMAT:
        raise ValueError(f"{str(path)!r} has checkpoint format {meta['format']}; this tensormol "
                         f"reads up to {CHECKPOINT_FORMAT}")
    cfg = config_from_dict(meta["config"])
    model = build_model(cfg, meta["species"])  # reference energies and scale: in the state dict
    state = ckpt["state_dict"]
    prefix = "ema.module." if ema and any(k.startswith("ema.module.") for k in state) else "model."
    sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    model.load_state_dict(sub)
    model.to(map_location)
    model.eval()
    return model, meta
