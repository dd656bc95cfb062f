"""The configuration of ``tensormol md``: one frozen section, from flags or a YAML file."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tensormol.config import ConfigError, build_section, option

__all__ = ["MDConfig", "load_md_config"]


@dataclass(frozen=True)
class MDConfig:
    """Everything a ``tensormol md`` run needs. Units: K, fs, 1/ps, bar, kJ/mol/nm."""

    structure: str = option(doc="PDB, Amber prmtop, or XYZ/SDF of a small molecule")
    model: str = option(doc="model bundle (.tmol) from `tensormol export`")
    coordinates: str | None = option(
        None, doc="Amber inpcrd/rst7 for a prmtop (default: the prmtop name with .inpcrd)"
    )
    ml: str | None = option(
        None, doc="ML region for ML/MM: residue names ('LIG' or 'resname:LIG,MOL') or 0-based atom "
                  "indices ('0-17,20'); null = everything is ML"
    )
    forcefield: str = option(
        "amber14", doc="MM force field of an ML/MM run: amber14 (OpenMM's amber14-all) or amber "
                       "(the prmtop's own parameters)", choices=("amber14", "amber"),
    )
    solvent: str = option(
        "vacuum", doc="MM solvent: vacuum, obc2 or gbn2 (implicit), tip3p (explicit water in the "
                      "input; PME)", choices=("vacuum", "obc2", "gbn2", "tip3p"),
    )
    extra_forcefield: tuple[str, ...] = option(
        (), doc="extra OpenMM force-field XML files (e.g. templates of a ligand for amber14)"
    )
    constraints: str = option(
        "none", doc="MM constraints (ML atoms are never constrained)",
        choices=("none", "hbonds"),
    )
    ensemble: str = option(
        "nvt", doc="nvt (Langevin), nve (velocity Verlet), npt (Langevin + Monte Carlo barostat), "
                   "or minimize (minimization only)", choices=("nvt", "nve", "npt", "minimize"),
    )
    temperature: float = option(300.0, doc="temperature (K); NVE starts from it", gt=0)
    timestep: float = option(0.5, doc="time step (fs)", gt=0)
    friction: float = option(1.0, doc="Langevin friction (1/ps)", gt=0)
    pressure: float = option(1.0, doc="NPT pressure (bar)", gt=0)
    barostat_interval: int = option(25, doc="steps between barostat moves", ge=1)
    steps: int = option(1000, doc="MD steps in total (a resumed run continues to this)", ge=0)
    minimize: bool = option(True, doc="minimize before MD (not on resume)")
    minimize_tolerance: float = option(10.0, doc="minimizer force tolerance (kJ/mol/nm)", gt=0)
    minimize_max_iterations: int = option(500, doc="minimizer iterations (0 = to convergence)",
                                          ge=0)
    report_interval: int = option(100, doc="steps between progress lines and CSV rows", ge=1)
    trajectory_interval: int = option(100, doc="steps between DCD frames (0 = no DCD)", ge=0)
    checkpoint_interval: int = option(1000, doc="steps between checkpoints (0 = none)", ge=0)
    output: str = option("md_out", doc="output folder (relative to the current directory)")
    seed: int = option(1, doc="seed of velocities and the Langevin noise", ge=0)
    platform: str = option("CPU", doc="OpenMM platform", choices=("CPU", "Reference", "CUDA",
                                                                  "OpenCL"))
    threads: int | None = option(
        None, doc="OpenMM CPU platform threads (null = tensormol's thread policy: 1 for a pure-ML "
                  "run of a small molecule, else OpenMM's default, all cores)", ge=1)
    torch_threads: int | None = option(
        None, doc="PyTorch threads of the ML model during the run (null = tensormol's thread "
                  "policy: 1 for ML regions up to 256 atoms, whose ops are too small to split, "
                  "else all available cores)", ge=1)
    compiled_ops: bool = option(
        False, doc="build/load tensormol's compiled CPU extension first (GauntNet: fused Gaunt "
                   "kernel, ethanol 17.7 vs 26.0 ms per call); about a minute the first time")
    device: str = option("cpu", doc="torch device of the model")
    backend: str = option("auto", doc="ML force backend", choices=("auto", "python", "torch"))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def with_overrides(self, **kwargs: Any) -> MDConfig:
        """A copy with ``kwargs`` replaced (``None`` values are ignored), validated again."""
        raw = self.to_dict()
        raw.update({k: v for k, v in kwargs.items() if v is not None})
        return build_section(MDConfig, raw, "md")

    def __post_init__(self) -> None:
        if self.ensemble == "npt" and self.solvent not in ("tip3p",) and self.ml is not None:
            raise ConfigError(
                f"md.ensemble 'npt' needs a periodic system; the ML/MM solvent {self.solvent!r} "
                "is not periodic (use solvent: tip3p with a solvated box)"
            )


def load_md_config(path: str | os.PathLike | None = None, **overrides: Any) -> MDConfig:
    """Read an MD config from YAML, then apply ``overrides`` (flag values; ``None`` means "not
    given").

    Paths follow the rule of every tensormol command: input files named in a YAML
    (``structure``, ``model``, ``coordinates``, ``extra_forcefield``) resolve against the YAML's
    folder, so a config travels with its inputs; run folders (``output``) resolve against the
    current directory, where the command runs, as ``tensormol train``'s do.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        from tensormol.config import load_yaml

        p = Path(path)
        loaded = load_yaml(p)
        raw = dict(loaded.get("md", loaded)) if isinstance(loaded, dict) else {}
        for key in ("structure", "model", "coordinates"):
            val = raw.get(key)
            if isinstance(val, str) and not os.path.isabs(val):
                raw[key] = str(p.parent / val)
        if isinstance(raw.get("extra_forcefield"), list):
            raw["extra_forcefield"] = [
                v if os.path.isabs(v) or not (p.parent / v).exists() else str(p.parent / v)
                for v in raw["extra_forcefield"]
            ]
    raw.update({k: v for k, v in overrides.items() if v is not None})
    missing = [k for k in ("structure", "model") if k not in raw]
    if missing:
        raise ConfigError(
            f"md: {' and '.join(missing)} must be given (flags or YAML keys)"
        )
    return build_section(MDConfig, raw, "md")


