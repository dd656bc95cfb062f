"""Molecular dynamics with tensormol models in OpenMM: systems (pure ML, ML/MM), runner,
reporters, checkpoints. The engine of ``tensormol md``.

>>> from tensormol.md import load_md_config, run_md
>>> cfg = load_md_config(structure="ethanol.xyz", model="ethanol.tmol")  # doctest: +SKIP
>>> result = run_md(cfg)  # doctest: +SKIP
"""

from tensormol.md._config import MDConfig, load_md_config
from tensormol.md._inputs import Structure, load_structure, select_atoms
from tensormol.md._reporters import (
    CSV_COLUMNS,
    CheckpointWriter,
    DCDWriter,
    EnergyCSVReporter,
    ProgressReporter,
    degrees_of_freedom,
    restore_outputs,
)
from tensormol.md._runner import MDResult, build_simulation, run_md
from tensormol.md._systems import (
    create_ml_system,
    create_mlmm_system,
    create_mm_system,
    ml_potential,
)

__all__ = [
    "MDConfig",
    "load_md_config",
    "Structure",
    "load_structure",
    "select_atoms",
    "create_ml_system",
    "create_mm_system",
    "create_mlmm_system",
    "ml_potential",
    "build_simulation",
    "run_md",
    "MDResult",
    "ProgressReporter",
    "EnergyCSVReporter",
    "DCDWriter",
    "CheckpointWriter",
    "restore_outputs",
    "degrees_of_freedom",
    "CSV_COLUMNS",
]
