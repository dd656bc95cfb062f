"""Molecular dynamics with tensormol models in OpenMM: systems (pure ML, ML/MM), runner,
reporters, checkpoints. The engine of ``tensormol md``.

>>> from tensormol.md import load_md_config, run_md
>>> cfg = load_md_config(structure="ethanol.xyz", model="ethanol.tmol")  # doctest: +SKIP
>>> result = run_md(cfg)  # doctest: +SKIP

Names are imported on first use, so ``tensormol md --help`` and the config schema do not load
OpenMM and torch.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> private module that defines it
_EXPORTS = {
    "MDConfig": "_config",
    "load_md_config": "_config",
    "OpenMMStructure": "_inputs",
    "load_structure": "_inputs",
    "select_atoms": "_inputs",
    "create_ml_system": "_systems",
    "create_mm_system": "_systems",
    "create_mlmm_system": "_systems",
    "ml_potential": "_systems",
    "build_simulation": "_runner",
    "run_md": "_runner",
    "thread_policy": "_runner",
    "MDResult": "_runner",
    "MDInterrupted": "_runner",
    "OUTPUT_FILES": "_runner",
    "RESUMABLE_KEYS": "_runner",
    "EnergyDrift": "_drift",
    "energy_drift": "_drift",
    "ProgressReporter": "_reporters",
    "EnergyCSVReporter": "_reporters",
    "DCDWriter": "_reporters",
    "CheckpointWriter": "_reporters",
    "restore_outputs": "_reporters",
    "degrees_of_freedom": "_reporters",
    "CSV_COLUMNS": "_reporters",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tensormol.md' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tensormol.md.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
