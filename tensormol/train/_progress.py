"""Training progress for logs that are not terminals: one line now and then, never a bar.

Lightning's progress bar redraws itself with carriage returns many times a second; written to a
file or a pipe it becomes hundreds of kB of partial lines. When standard output is not a
terminal, :func:`progress_callbacks` replaces it with :class:`LineProgress`: one line at most
every ``interval`` seconds (step, epoch, loss, rate, time left when the run has a step or epoch
limit) and one line per validation with its errors.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import lightning as L

__all__ = ["LineProgress", "progress_callbacks", "is_terminal"]


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default: standard output) is an interactive terminal."""
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _duration(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


class LineProgress(L.Callback):
    """Plain progress lines (see the module docstring).

    Parameters
    ----------
    interval : float
        Seconds between step lines (validation lines are always written).
    stream : file, optional
        Where to write (default: standard output at the time of writing).
    """

    def __init__(self, interval: float = 30.0, stream: TextIO | None = None) -> None:
        self.interval = float(interval)
        self.stream = stream
        self._t0 = 0.0
        self._last = 0.0
        self._step0 = 0

    def _write(self, trainer: L.Trainer, text: str) -> None:
        if trainer.is_global_zero:
            out = self.stream if self.stream is not None else sys.stdout
            print(text, file=out, flush=True)

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._t0 = self._last = time.monotonic()
        self._step0 = int(trainer.global_step)

    def _eta(self, trainer: L.Trainer, rate: float) -> str:
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        if total is None and trainer.max_epochs not in (None, -1):
            per_epoch = trainer.num_training_batches
            if isinstance(per_epoch, int) and per_epoch > 0:
                accum = max(1, int(trainer.accumulate_grad_batches))
                total = trainer.max_epochs * max(1, per_epoch // accum)
        if total is None or rate <= 0:
            return ""
        return f", about {_duration((total - trainer.global_step) / rate)} left"

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        steps = trainer.global_step - self._step0
        rate = steps / max(now - self._t0, 1e-9)
        loss = trainer.callback_metrics.get("train/loss_step")
        loss_text = f", loss {float(loss):.4g}" if loss is not None else ""
        self._write(trainer, f"step {trainer.global_step} (epoch {trainer.current_epoch})"
                             f"{loss_text}, {rate:.2f} steps/s{self._eta(trainer, rate)}")

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        m = getattr(pl_module, "last_metrics", {}).get("val", {})
        parts = [f"loss {m['loss']:.4g}"] if "loss" in m else []
        if "energy_per_atom_mae" in m:
            parts.append(f"energy/atom MAE {1e3 * m['energy_per_atom_mae']:.2f} meV")
        if "forces_mae" in m:
            parts.append(f"forces MAE {1e3 * m['forces_mae']:.1f} meV/Å")
        elapsed = _duration(time.monotonic() - self._t0)
        self._write(trainer, f"validation at step {trainer.global_step} (epoch "
                             f"{trainer.current_epoch}, {elapsed} elapsed): " + ", ".join(parts))


def progress_callbacks(enabled: bool, stream: TextIO | None = None
                       ) -> tuple[bool, list[L.Callback]]:
    """``(enable_progress_bar, extra callbacks)`` for a run whose config asks for progress
    (``enabled``): Lightning's bar on a terminal, :class:`LineProgress` otherwise."""
    if not enabled:
        return False, []
    if is_terminal(stream):
        return True, []
    return False, [LineProgress(stream=stream)]
