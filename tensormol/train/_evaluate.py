"""Evaluate a training checkpoint on a split: errors, parity plot, learning curve."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tensormol import keys as K

__all__ = ["EvalResult", "evaluate", "run_dir_of_checkpoint"]


@dataclass
class EvalResult:
    """Errors of a checkpoint's (EMA) model on one split and the plots written."""

    split: str
    num_structures: int
    metrics: dict[str, float]
    parity_plot: Path | None = None
    learning_curve: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def format(self) -> str:
        """A human-readable table of the errors (meV and meV/Å)."""
        m = self.metrics
        if self.split == "all":
            where = Path(str(self.extra.get("data", "the data file"))).name
            lines = [f"{where} (whole file): {self.num_structures} structures"]
        else:
            lines = [f"{self.split} split: {self.num_structures} structures"]
        rows = [("energy", "energy_mae", "energy_rmse", "meV"),
                ("energy per atom", "energy_per_atom_mae", "energy_per_atom_rmse", "meV/atom"),
                ("forces (components)", "forces_mae", "forces_rmse", "meV/Å"),
                ("stress (components)", "stress_mae", "stress_rmse", "meV/Å³")]
        for label, mae, rmse, unit in rows:
            if mae in m:
                lines.append(f"  {label:<20s} MAE {1e3 * m[mae]:10.3f}   RMSE "
                             f"{1e3 * m[rmse]:10.3f}  {unit}")
        return "\n".join(lines)


def run_dir_of_checkpoint(checkpoint: str | os.PathLike) -> Path:
    """The run folder of a checkpoint (``<run>/checkpoints/x.ckpt`` → ``<run>``)."""
    p = Path(checkpoint).resolve()
    return p.parent.parent if p.parent.name == "checkpoints" else p.parent


_SPLITS = ("train", "val", "test", "all")


def evaluate(checkpoint: str | os.PathLike, *, split: str | None = None,
             output_dir: str | os.PathLike | None = None, batch_size: int | None = None,
             data_path: str | os.PathLike | None = None, plots: bool = True,
             ema: bool = True, threads: int | None = None) -> EvalResult:
    """Errors of a checkpoint's model on a data set, with a parity plot and learning curve.

    Parameters
    ----------
    checkpoint : path-like
        A checkpoint written by :func:`tensormol.train.train`.
    split : {"test", "val", "train", "all"}, optional
        A split of the training data, re-created from the indices stored in the checkpoint, or
        ``"all"`` for every frame of the file. Default: ``"test"`` for the training data,
        ``"all"`` for another file (``data_path``): an external test set is evaluated whole.
    output_dir : path-like, optional
        Folder for ``parity_<split>.png`` and ``learning_curve.png``; default ``<run>/eval``.
    batch_size : int, optional
        Structures per batch; default the config's evaluation batch size.
    data_path : path-like, optional
        Evaluate this file (read with the training config's reader settings and units) instead
        of the training data. With ``split`` set to a split name it must be the training data
        (e.g. moved), since the stored split indices refer to it.
    plots : bool
        Write the PNG files.
    ema : bool
        Evaluate the EMA weights (default; the ones validated and exported).
    threads : int, optional
        Torch intra-op threads; default: the thread policy for evaluation
        (:func:`tensormol._threads.choose_threads`), set for this call only.

    Returns
    -------
    EvalResult
        MAE/RMSE of energy (eV), energy per atom (eV/atom), forces (eV/Å), stress (eV/Å³);
        ``extra["threads"]`` holds the thread-policy line.
    """
    from tensormol._threads import choose_threads, thread_scope

    policy = choose_threads("eval", torch_threads=threads)
    with thread_scope(policy):
        result = _evaluate(checkpoint, split, output_dir, batch_size, data_path, plots, ema)
    result.extra["threads"] = policy.describe()
    return result


def _evaluate(checkpoint, split, output_dir, batch_size, data_path, plots, ema) -> EvalResult:
    import dataclasses

    from torch.utils.data import DataLoader, Subset

    from tensormol.config import config_from_dict
    from tensormol.data import collate
    from tensormol.train._csv import read_metrics_csv
    from tensormol.train._data import read_configured_dataset
    from tensormol.train._loss import ErrorSums
    from tensormol.train._plots import learning_curve_plot, parity_plot
    from tensormol.train._run import load_checkpoint

    if split is None:
        split = "all" if data_path is not None else "test"
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, _SPLITS))}, got {split!r}")
    model, meta = load_checkpoint(checkpoint, ema=ema)
    cfg = config_from_dict(meta["config"])
    data_cfg = cfg.data
    if data_path is not None:
        # The whole file: the training run's max_frames does not apply to another file.
        data_cfg = dataclasses.replace(data_cfg, path=str(Path(data_path).resolve()),
                                       max_frames=None if split == "all" else data_cfg.max_frames)
    dataset = read_configured_dataset(data_cfg)
    if split == "all":
        indices = list(range(len(dataset)))
    else:
        indices = meta.get("split_indices", {}).get(split)
        if not indices:
            raise ValueError(f"checkpoint {str(checkpoint)!r} records no {split!r} split "
                             "(was the split empty?)")
        if max(indices) >= len(dataset):
            raise ValueError(
                f"the data file {data_cfg.path!r} holds {len(dataset)} frames, fewer than the "
                f"checkpoint's {split!r} split expects; evaluate another file whole with "
                "split='all' (tensormol eval --split all)")
    if not indices:
        raise ValueError(f"the data file {data_cfg.path!r} holds no frames")
    subset = Subset(dataset, indices)
    loader = DataLoader(subset, batch_size=batch_size or cfg.data.eval_batch_size
                        or cfg.data.batch_size, shuffle=False, collate_fn=collate)
    compute_stress = cfg.training.loss.stress_weight > 0
    sums = ErrorSums()
    e_ref, e_pred, f_ref, f_pred = [], [], [], []
    for batch in loader:
        pred = model(batch, compute_forces=True, compute_stress=compute_stress)
        sums.update(pred, batch)
        n = batch[K.NUM_ATOMS].to(torch.float64)
        e_ref.append((batch[K.ENERGY].to(torch.float64) / n).numpy())
        e_pred.append((pred[K.ENERGY].detach() / n).numpy())
        if K.FORCES in batch:
            f_ref.append(batch[K.FORCES].to(torch.float64).numpy())
            f_pred.append(pred[K.FORCES].detach().numpy())
    metrics = sums.compute()
    result = EvalResult(split=split, num_structures=len(subset), metrics=metrics,
                        extra={"data": str(data_cfg.path)})
    if plots:
        run_dir = run_dir_of_checkpoint(checkpoint)
        out = Path(output_dir) if output_dir is not None else run_dir / "eval"
        out.mkdir(parents=True, exist_ok=True)
        name = Path(checkpoint).stem
        result.parity_plot = parity_plot(
            out / f"parity_{split}.png", np.concatenate(e_ref), np.concatenate(e_pred),
            np.concatenate(f_ref) if f_ref else None, np.concatenate(f_pred) if f_pred else None,
            title=f"{cfg.model.name} on {Path(data_cfg.path).name} ({split}, {name})",
        )
        csv_path = run_dir / "metrics.csv"
        if csv_path.is_file():
            result.learning_curve = learning_curve_plot(
                out / "learning_curve.png", read_metrics_csv(csv_path),
                title=f"{cfg.model.name}: {cfg.logging.name}",
            )
    return result
