"""A CSV metrics logger that appends across resumed runs (Lightning's CSVLogger truncates)."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

__all__ = ["AppendingCSVLogger", "read_metrics_csv"]


class AppendingCSVLogger(Logger):
    """Write every logged metric to ``<log_dir>/metrics.csv``, one row per (step, logging call).

    On a resumed run (``resume_step`` given) rows logged after that step by the killed run are
    dropped first, so the file reads as one uninterrupted run. Columns grow as new metrics appear.

    Parameters
    ----------
    log_dir : path-like
        Folder of the run.
    resume_step : int, optional
        Global step of the checkpoint the run resumes from.
    """

    def __init__(self, log_dir: str | os.PathLike, resume_step: int | None = None) -> None:
        super().__init__()
        self._dir = Path(log_dir)
        self._path = self._dir / "metrics.csv"
        self._rows: list[dict[str, Any]] = []
        self._resume_step = resume_step
        self._prepared = False

    @property
    def name(self) -> str:
        return "csv"

    @property
    def version(self) -> str:
        return ""

    @property
    def log_dir(self) -> str:
        return str(self._dir)

    @property
    def save_dir(self) -> str:
        return str(self._dir)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass  # the resolved config is written as config.yaml next to the run

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        row = {k: (v.item() if hasattr(v, "item") else v) for k, v in metrics.items()}
        row["step"] = step
        self._rows.append(row)

    def _prepare(self) -> None:
        # Drop what a killed run logged after its last checkpoint, once, before the first write.
        self._prepared = True
        if self._resume_step is None or not self._path.is_file():
            return
        old = read_metrics_csv(self._path)
        kept = [r for r in old if r.get("step") is None or r["step"] <= self._resume_step]
        if len(kept) != len(old):
            self._write_all(kept, self._columns(kept))

    @staticmethod
    def _columns(rows: list[dict[str, Any]]) -> list[str]:
        names = sorted({k for r in rows for k in r if k not in ("step", "epoch")})
        return ["step", "epoch", *names]

    def _write_all(self, rows: list[dict[str, Any]], columns: list[str]) -> None:
        tmp = self._path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self._path)

    @rank_zero_only
    def save(self) -> None:
        if not self._prepared:
            self._prepare()
        if not self._rows:
            return
        self._dir.mkdir(parents=True, exist_ok=True)
        new = self._rows
        self._rows = []
        if self._path.is_file():
            with self._path.open(newline="") as fh:
                columns = next(csv.reader(fh), [])
            if set(self._columns(new)) <= set(columns):
                with self._path.open("a", newline="") as fh:
                    csv.DictWriter(fh, fieldnames=columns, restval="").writerows(new)
                return
            rows = read_metrics_csv(self._path) + new
        else:
            rows = new
        self._write_all(rows, self._columns(rows))

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()


def read_metrics_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a ``metrics.csv`` as dicts of floats (empty cells omitted; step/epoch as int)."""
    rows = []
    with Path(path).open(newline="") as fh:
        for raw in csv.DictReader(fh):
            row: dict[str, Any] = {}
            for k, v in raw.items():
                if v in ("", None):
                    continue
                row[k] = int(float(v)) if k in ("step", "epoch") else float(v)
            rows.append(row)
    return rows
