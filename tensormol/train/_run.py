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

from tensormol.config import (
    ConfigError,
    ModelConfig,
    TrainConfig,
    config_to_dict,
    dump_config,
    load_yaml,
)
from tensormol.train._data import PotentialDataModule, PreparedData, prepare_data
from tensormol.train._module import PotentialModule
from tensormol.units import MODEL_UNITS

__all__ = [
    "TrainResult",
    "train",
    "run_dir_of",
    "build_model",
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


def build_model(model_cfg: ModelConfig | TrainConfig, species: list[int],
                statistics: dict[str, Any] | None = None) -> nn.Module:
    """Build the configured model from the registry for ``species``.

    ``model_cfg`` is the ``model`` section (or a whole :class:`TrainConfig`). With
    ``statistics`` (:meth:`PreparedData.compute_statistics` of the training split),
    ``model.set_statistics`` takes what the model uses from them (reference energies, energy
    scale, mean neighbour count).
    """
    from tensormol.registry import MODELS

    section = model_cfg.model if isinstance(model_cfg, TrainConfig) else model_cfg
    builder = MODELS.get(section.name)
    try:
        model = builder(section.params.to_dict(), atomic_numbers=list(species))
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model ({section.name}): {err}") from None
    if statistics is not None:
        model.set_statistics(statistics)
    return model


def build_module(cfg: TrainConfig, model: nn.Module,
                 metadata: dict[str, Any] | None = None) -> PotentialModule:
    """Wrap ``model`` in the :class:`PotentialModule` configured by ``cfg.training``."""
    return PotentialModule.from_config(model, cfg.training, metadata)


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
    from tensormol.train._progress import progress_callbacks

    tr, lg, t = cfg.trainer, cfg.logging, cfg.training
    ckpt_dir = run_dir / "checkpoints"
    cbs = list(callbacks or [])
    # A bar on a terminal; plain lines now and then in a file or pipe (a bar floods those).
    progress_bar, progress = progress_callbacks(tr.enable_progress_bar)
    cbs.extend(progress)
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
        deterministic=tr.deterministic, enable_progress_bar=progress_bar,
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
        "units": dict(MODEL_UNITS),
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


#: What a run folder holds before its first checkpoint (a run killed that early left only these).
_RUN_FILES = ("config.yaml", "metrics.csv", "tensorboard", "checkpoints")


def _checkpoints_in(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "checkpoints").glob("*.ckpt"))


def _never_checkpointed(run_dir: Path) -> bool:
    """True for a run folder written by :func:`train` that holds no checkpoint yet (a run killed
    before its first one): nothing in it is worth keeping."""
    if not (run_dir / "config.yaml").is_file() or _checkpoints_in(run_dir):
        return False
    return all(p.name in _RUN_FILES or p.name.startswith("config.resumed_at_step_")
               for p in run_dir.iterdir())


def _processes_per_node(cfg: TrainConfig) -> int:
    """Training processes this node runs (CPU data parallelism shares the cores)."""
    devices = cfg.trainer.devices
    if cfg.trainer.accelerator != "cpu" or "ddp" not in str(cfg.trainer.strategy):
        return 1
    if isinstance(devices, int):
        return max(1, devices)
    if isinstance(devices, (list, tuple)):
        return max(1, len(devices))
    return 1


def _say(text: str) -> None:
    """A line of the run's log (standard output of the primary process)."""
    if _is_primary_process():
        print(text, flush=True)


def train(cfg: TrainConfig, *, resume: bool | str | os.PathLike = False,
          overwrite: bool = False, test: bool = True, callbacks: list | None = None,
          trainer_overrides: dict[str, Any] | None = None,
          threads: int | None = None) -> TrainResult:
    """Train the configured model; write config, checkpoints and metrics into the run folder.

    The steps, in order: read and split the data; build the model for the training species;
    compute the training-split statistics with the model's cutoff; ``model.set_statistics``
    (reference energies, energy scale, mean neighbour count); fit; test.

    Parameters
    ----------
    cfg : TrainConfig
        A validated config (:func:`tensormol.config.load_config`). The run folder
        ``logging.root/logging.name`` resolves against the current working directory.
    resume : bool or path
        ``True`` continues from ``<run>/checkpoints/last.ckpt``; a path names the checkpoint.
        Global step, optimiser, schedules, EMA, early-stopping state and the running epoch's
        training-error sums are restored. A run killed before its first checkpoint has nothing
        to resume: it starts from step 0 in its folder.
    overwrite : bool
        Delete an existing run folder of the same name first (ignored when resuming).
    test : bool
        Evaluate the best checkpoint on the test split after training.
    callbacks : list, optional
        Extra Lightning callbacks.
    trainer_overrides : dict, optional
        Extra ``lightning.Trainer`` arguments (tests).
    threads : int, optional
        Torch intra-op threads per process; default: the thread policy of
        :func:`tensormol._threads.choose_threads` for training (the available cores, shared by
        the processes of CPU data parallelism; ``TENSORMOL_NUM_THREADS`` overrides). Set for the
        run only and reported in its log.

    Returns
    -------
    TrainResult
        Run folder, checkpoints, final global step, last metrics per split (eV, eV/Å).

    Raises
    ------
    ConfigError, FileNotFoundError
        Before anything is written: bad config, missing data file, split larger than the data,
        bad model arguments, an existing run without ``resume``/``overwrite``, or ``resume``
        of a checkpoint that does not exist.
    """
    import lightning as L

    from tensormol._threads import ThreadPolicy, choose_threads, thread_scope

    run_dir = run_dir_of(cfg)
    primary = _is_primary_process()
    ckpt_path: Path | None = None
    fresh_start = False  # the folder holds a run killed before its first checkpoint
    if resume:
        ckpt_path = (run_dir / "checkpoints" / "last.ckpt" if resume is True
                     else Path(resume).resolve())
        if not ckpt_path.is_file():
            if resume is True and run_dir.is_dir() and _never_checkpointed(run_dir):
                ckpt_path, fresh_start = None, True
            else:
                raise FileNotFoundError(
                    f"cannot resume: checkpoint {str(ckpt_path)!r} does not exist; start the "
                    f"run afresh with --overwrite (deletes {str(run_dir)!r}) or name an "
                    "existing checkpoint with --resume CHECKPOINT")
    elif primary and run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        if _never_checkpointed(run_dir):
            fresh_start = True
        else:
            raise ConfigError(
                f"run folder {str(run_dir)!r} already exists; resume it (--resume), overwrite "
                f"it (--overwrite) or choose another logging.name"
            )

    # Everything that reads user input happens before the run folder is touched.
    if cfg.training.compiled_ops:
        from tensormol._ext import require_extension

        require_extension("training.compiled_ops")
    policy = choose_threads("train", torch_threads=threads)
    per_proc = _processes_per_node(cfg)
    if policy.torch_threads is not None and per_proc > 1 and threads is None:
        policy = ThreadPolicy("train", max(1, policy.torch_threads // per_proc), None,
                              f"{policy.reason}, shared by {per_proc} processes")

    with thread_scope(policy):
        # 1. data and split; 2. the model for the training species; 3. statistics with the
        # model's cutoff (the one source of truth); 4. the model takes what it uses from them.
        prepared = prepare_data(cfg.data, cfg.seed)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        model = build_model(cfg.model, prepared.species)
        model.set_statistics(prepared.compute_statistics(model.cutoff))
        metadata = _checkpoint_metadata(cfg, prepared, float(model.cutoff))
        module = PotentialModule.from_config(model, cfg.training, metadata)
        datamodule = PotentialDataModule.from_config(prepared, cfg.data, cfg.seed)
        resume_step = None
        if ckpt_path is not None:
            resume_step = _check_resumable(ckpt_path, cfg)
        trainer = build_trainer(cfg, run_dir, resume_step=resume_step, callbacks=callbacks,
                                **(trainer_overrides or {}))

        if primary:
            if run_dir.exists() and not resume_step and (overwrite or fresh_start):
                shutil.rmtree(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            if resume_step is None or not (run_dir / "config.yaml").is_file():
                dump_config(cfg, run_dir / "config.yaml")
            elif load_yaml(run_dir / "config.yaml") != config_to_dict(cfg):
                # Keep the original; record what the resumed part ran with (e.g. more epochs).
                dump_config(cfg, run_dir / f"config.resumed_at_step_{resume_step}.yaml")
        if fresh_start:
            _say(f"run folder {run_dir} holds no checkpoint (a run stopped before its first "
                 "one): starting it from step 0")
        _say(policy.describe())

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
