"""Parity plot and learning curve (PNG, matplotlib's Agg backend; no display needed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["parity_plot", "learning_curve_plot"]


def _pyplot():
    import matplotlib

    # Agg renders to files without a display; use_backend is scoped to this figure's canvas.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    return matplotlib, Figure, FigureCanvasAgg


def _parity_panel(ax, ref: np.ndarray, pred: np.ndarray, label: str, unit: str) -> None:
    mae = float(np.mean(np.abs(pred - ref))) if ref.size else float("nan")
    rmse = float(np.sqrt(np.mean((pred - ref) ** 2))) if ref.size else float("nan")
    lo = float(min(ref.min(), pred.min())) if ref.size else 0.0
    hi = float(max(ref.max(), pred.max())) if ref.size else 1.0
    pad = 0.03 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.6", lw=1, zorder=0)
    ax.scatter(ref, pred, s=4, alpha=0.5, edgecolors="none")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal")
    ax.set_xlabel(f"reference {label} ({unit})")
    ax.set_ylabel(f"predicted {label} ({unit})")
    ax.set_title(f"{label}: MAE {mae:.4g}, RMSE {rmse:.4g} {unit}", fontsize=9)


def parity_plot(path: str | os.PathLike, energy_ref: np.ndarray, energy_pred: np.ndarray,
                forces_ref: np.ndarray | None = None, forces_pred: np.ndarray | None = None,
                title: str = "") -> Path:
    """Predicted vs reference energy per atom (eV/atom) and force components (eV/Å).

    Parameters
    ----------
    path : path-like
        PNG file to write.
    energy_ref, energy_pred : ndarray
        (B,) float, energy per atom, eV/atom.
    forces_ref, forces_pred : ndarray, optional
        (N, 3) float, eV/Å; the second panel is drawn when given.
    """
    _, Figure, Canvas = _pyplot()
    panels = 2 if forces_ref is not None and forces_pred is not None else 1
    fig = Figure(figsize=(4.6 * panels, 4.4), dpi=120)
    Canvas(fig)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    # Energies are shown relative to the mean reference so the axes stay readable.
    e0 = float(np.mean(energy_ref)) if np.size(energy_ref) else 0.0
    _parity_panel(axes[0], np.asarray(energy_ref) - e0, np.asarray(energy_pred) - e0,
                  "energy/atom − mean", "eV/atom")
    if panels == 2:
        _parity_panel(axes[1], np.asarray(forces_ref).ravel(), np.asarray(forces_pred).ravel(),
                      "force component", "eV/Å")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


def learning_curve_plot(path: str | os.PathLike, rows: list[dict[str, float]],
                        title: str = "") -> Path:
    """Validation force and energy-per-atom MAE and training loss against the optimiser step.

    Parameters
    ----------
    path : path-like
        PNG file to write.
    rows : list of dict
        Rows of ``metrics.csv`` (see :func:`tensormol.train.read_metrics_csv`).
    """
    _, Figure, Canvas = _pyplot()
    fig = Figure(figsize=(9.2, 4.0), dpi=120)
    Canvas(fig)
    ax_err, ax_loss = fig.subplots(1, 2)

    def series(name: str) -> tuple[np.ndarray, np.ndarray]:
        pts = [(r["step"], r[name]) for r in rows if name in r and "step" in r]
        if not pts:
            return np.zeros(0), np.zeros(0)
        a = np.asarray(pts, dtype=float)
        return a[:, 0], a[:, 1]

    drawn = False
    for name, label in (("val/forces_mae", "val force MAE (eV/Å)"),
                        ("train/forces_mae", "train force MAE (eV/Å)"),
                        ("val/energy_per_atom_mae", "val energy MAE (eV/atom)"),
                        ("train/energy_per_atom_mae", "train energy MAE (eV/atom)")):
        x, y = series(name)
        if x.size:
            style = "-" if name.startswith("val") else "--"
            ax_err.plot(x, y, style, marker="o" if x.size < 30 else None, ms=3, label=label)
            drawn = True
    ax_err.set_xlabel("optimiser step")
    ax_err.set_ylabel("MAE")
    if drawn:
        ax_err.set_yscale("log")
        ax_err.legend(fontsize=7)
    ax_err.set_title("errors", fontsize=9)
    for name, label in (("train/loss_step", "train loss (step)"), ("train/loss", "train loss"),
                        ("val/loss", "val loss")):
        x, y = series(name)
        if x.size:
            ax_loss.plot(x, y, lw=1 if name.endswith("step") else 1.6, label=label,
                         alpha=0.6 if name.endswith("step") else 1.0)
    ax_loss.set_xlabel("optimiser step")
    ax_loss.set_ylabel("loss")
    if ax_loss.lines:
        ax_loss.set_yscale("log")
        ax_loss.legend(fontsize=7)
    ax_loss.set_title("loss", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path
