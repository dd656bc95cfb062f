"""The ``tensormol fe binding`` YAML schema: receptor, ligands, edges, ATM, sampling, presets.

Built on :mod:`tensormol.config`'s machinery: every section is a frozen dataclass, unknown keys
raise :class:`~tensormol.config.ConfigError` listing the valid keys and suggesting the closest,
values are type- and bound-checked, and paths are resolved relative to the config file.

Presets fill what the config leaves unset (``null``):

============  =========  ============  =======  ===========  ===========  =========
preset        solvent    H mass (amu)  dt (fs)  steps/iter   iterations   platform
============  =========  ============  =======  ===========  ===========  =========
quick         obc2       3.0           4        125 (0.5 ps) 100          CPU
standard      tip3p      3.0           4        250 (1 ps)   1000         CUDA
production    tip3p      3.0           4        500 (2 ps)   2000         CUDA
============  =========  ============  =======  ===========  ===========  =========
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tensormol.config import ConfigError, FrozenDict, apply_overrides, load_yaml
from tensormol.config._schema import Section, option

__all__ = [
    "ReceptorConfig",
    "LigandConfig",
    "ATMConfig",
    "RestraintConfig",
    "SystemConfig",
    "SamplingConfig",
    "ScaleoutConfig",
    "BindingConfig",
    "PRESETS",
    "load_binding_config",
]

#: Defaults each preset gives to the entries a config leaves ``null``.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"solvent": "obc2", "hydrogen_mass_amu": 3.0, "timestep_fs": 4.0,
              "steps_per_iteration": 125, "n_iterations": 100, "platform": "CPU"},
    "standard": {"solvent": "tip3p", "hydrogen_mass_amu": 3.0, "timestep_fs": 4.0,
                 "steps_per_iteration": 250, "n_iterations": 1000, "platform": "CUDA"},
    "production": {"solvent": "tip3p", "hydrogen_mass_amu": 3.0, "timestep_fs": 4.0,
                   "steps_per_iteration": 500, "n_iterations": 2000, "platform": "CUDA"},
}


@dataclass(frozen=True)
class ReceptorConfig(Section):
    """The receptor: a PDB (Amber ff14SB) or Amber prmtop + inpcrd (parameters as given)."""

    pdb: str | None = option(None, doc="PDB file of the receptor (amber14/ff14SB templates)")
    prmtop: str | None = option(None, doc="Amber prmtop of the receptor (its own parameters)")
    inpcrd: str | None = option(None, doc="coordinates for prmtop (inpcrd/rst7 or PDB)")
    site_atoms: tuple[int, ...] | None = option(
        None, doc="receptor atoms (0-based) whose centroid is the site centre; null: automatic "
                  "(CA atoms of residues near the reference ligand, or every heavy atom of a "
                  "host without amino acids)")
    site_cutoff_A: float = option(6.0, doc="residues within this distance (Å) of the reference "
                                           "ligand define the automatic site", gt=0)
    contact_A: float = option(4.5, doc="a ligand is in the site when one of its heavy atoms is "
                                       "within this distance (Å) of a receptor heavy atom", gt=0)
    restrain: str = option("backbone", doc="receptor atoms held by flat-bottom positional "
                                           "restraints", choices=("backbone", "heavy", "none"))

    def __post_init__(self) -> None:
        if (self.pdb is None) == (self.prmtop is None):
            raise ConfigError("receptor needs exactly one of 'pdb' or 'prmtop' (with 'inpcrd')")
        if self.prmtop is not None and self.inpcrd is None:
            raise ConfigError("receptor.prmtop needs receptor.inpcrd (its coordinates)")


@dataclass(frozen=True)
class LigandConfig(Section):
    """A ligand: an SDF/MOL2 with its pose in the site, or a SMILES posed on the reference."""

    name: str = option(doc="unique name of the ligand (used in edges and results)")
    sdf: str | None = option(None, doc="SDF/MOL file with the 3D pose in the site")
    mol2: str | None = option(None, doc="MOL2 file with the 3D pose in the site")
    smiles: str | None = option(None, doc="SMILES; posed by alignment to the reference ligand")
    net_charge: int | None = option(None, doc="checked against the formal charges (e)")

    def __post_init__(self) -> None:
        given = [k for k in ("sdf", "mol2", "smiles") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ConfigError(f"ligand {self.name!r} needs exactly one of sdf, mol2 or smiles; "
                              f"got {', '.join(given) or 'none'}")

    @property
    def source(self) -> str:
        return self.sdf or self.mol2 or self.smiles or ""


@dataclass(frozen=True)
class ATMConfig(Section):
    """The ATM schedule and soft-core (Azimi et al. 2022), in kcal/mol."""

    n_states: int = option(22, doc="alchemical states (even: half per direction)", ge=4)
    schedule: str = option("softplus", doc="λ schedule", choices=("softplus", "linear"))
    alpha_per_kcal: float = option(0.1, doc="softplus α ((kcal/mol)⁻¹)", gt=0)
    uh_kcal: float = option(110.0, doc="softplus u_h (kcal/mol)")
    w0_kcal: float = option(0.0, doc="w0 at the intermediate states (kcal/mol)")
    umax_kcal: float = option(200.0, doc="soft-core Umax (kcal/mol)", gt=0)
    ubcore_kcal: float = option(100.0, doc="soft-core Ubcore (kcal/mol)", gt=0)
    acore: float = option(0.0625, doc="soft-core Acore (0: off)", ge=0)
    displacement_A: tuple[float, ...] | None = option(
        None, doc="displacement vector site → solvent (Å); null: along (1,1,1), long enough to "
                  "clear the receptor by 10 Å (implicit) or the cutoff + 3 Å (explicit)")

    def __post_init__(self) -> None:
        if self.n_states % 2:
            raise ConfigError(f"atm.n_states must be even, got {self.n_states}")
        if self.displacement_A is not None and len(self.displacement_A) != 3:
            raise ConfigError(f"atm.displacement_A must have 3 components, got "
                              f"{list(self.displacement_A)}")


@dataclass(frozen=True)
class RestraintConfig(Section):
    """Restraints (AToM-OpenMM defaults), kcal/mol and Å."""

    site_k_kcal_A2: float = option(25.0, doc="site restraint force constant", gt=0)
    site_tolerance_A: float = option(5.0, doc="site restraint flat-bottom radius", gt=0)
    align_k_dist_kcal_A2: float = option(2.5, doc="alignment: distance force constant", ge=0)
    align_k_theta_kcal: float = option(25.0, doc="alignment: θ force constant", ge=0)
    align_k_psi_kcal: float = option(25.0, doc="alignment: ψ force constant", ge=0)
    posre_k_kcal_A2: float = option(25.0, doc="receptor positional restraints", ge=0)
    posre_tolerance_A: float = option(1.5, doc="receptor positional restraint tolerance", ge=0)


@dataclass(frozen=True)
class SystemConfig(Section):
    """Solvent and box (``null``: the preset's value)."""

    solvent: str | None = option(None, doc="implicit or explicit solvent",
                                 choices=("obc2", "gbn2", "tip3p"))
    padding_A: float = option(10.0, doc="solute–box face distance of the water box (Å)", gt=0)
    cutoff_A: float = option(9.0, doc="nonbonded cutoff of periodic systems (Å)", gt=0)
    box_A: float | None = option(None, doc="fixed cubic box edge (Å); must be ≥ 2 cutoffs", gt=0)
    hydrogen_mass_amu: float | None = option(None, doc="hydrogen mass repartitioning (amu)")
    ionic_strength_molar: float = option(0.15, doc="NaCl beyond neutralisation (mol/L)", ge=0)


@dataclass(frozen=True)
class SamplingConfig(Section):
    """Replica exchange (``null``: the preset's value)."""

    n_iterations: int | None = option(None, doc="iterations per leg", ge=1)
    steps_per_iteration: int | None = option(None, doc="MD steps between exchanges", ge=1)
    timestep_fs: float | None = option(None, doc="time step (fs)", gt=0)
    temperature_K: float = option(298.15, doc="temperature (K)", gt=0)
    friction_per_ps: float = option(1.0, doc="Langevin friction (1/ps)", gt=0)
    checkpoint_every: int = option(10, doc="iterations between checkpoints", ge=1)
    platform: str | None = option(None, doc="OpenMM platform",
                                  choices=("CPU", "Reference", "CUDA", "OpenCL", "HIP"))
    threads: int | None = option(None, doc="CPU platform threads", ge=1)
    seed: int = option(0, doc="random seed", ge=0)
    anneal_ps: float | None = option(
        None, ge=0,
        doc="MD walking λ from 0 to ½ (forward direction) before replica exchange, in ps; "
            "null: 40 ps for relative legs and explicit solvent (the swapped ligand must find "
            "room in the site, water must leave the displaced one's spot), 0 otherwise")


@dataclass(frozen=True)
class ScaleoutConfig(Section):
    """Independent legs in parallel through Dask."""

    n_workers: int = option(1, doc="local worker processes (1: serial)", ge=1)
    scheduler: str | None = option(None, doc="address of a Dask scheduler (a real cluster)")


@dataclass(frozen=True, kw_only=True)
class BindingConfig(Section):
    """A binding free-energy run (``tensormol fe binding -c FILE``)."""

    name: str = option("binding", doc="name of the run")
    output: str = option("runs/binding", doc="run directory (relative to the working directory)")
    preset: str = option("quick", doc="defaults for solvent, step and length",
                         choices=tuple(PRESETS))
    receptor: ReceptorConfig = option(doc="the receptor")
    ligands: tuple[LigandConfig, ...] = option(doc="the ligands")
    reference: str | None = option(None, doc="ligand with a 3D pose on which SMILES ligands are "
                                             "posed (default: the first posed one)")
    edges: tuple[tuple[str, ...], ...] = option((), doc="relative legs [A, B]: ΔΔG(A → B)")
    star: str | None = option(None, doc="hub ligand: an edge hub → each other ligand")
    absolute: tuple[str, ...] = option((), doc="ligands with an absolute ΔG leg")
    atm: ATMConfig = option(default_factory=ATMConfig, doc="ATM schedule")
    restraints: RestraintConfig = option(default_factory=RestraintConfig, doc="restraints")
    system: SystemConfig = option(default_factory=SystemConfig, doc="solvent and box")
    sampling: SamplingConfig = option(default_factory=SamplingConfig, doc="replica exchange")
    scaleout: ScaleoutConfig = option(default_factory=ScaleoutConfig, doc="parallel legs")
    charge_method: str = option("bcc", doc="ligand charges (antechamber -c)",
                                choices=("bcc", "gas"))
    potential: str | None = option(None, doc="tensormol bundle for the ligands (ML/MM)")
    experimental_kcal: FrozenDict = option(default_factory=FrozenDict,
                                           doc="experimental ΔG per ligand (kcal/mol)")

    def __post_init__(self) -> None:
        names = [lig.name for lig in self.ligands]
        if not names:
            raise ConfigError("ligands must list at least one ligand")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"ligand names must be unique; repeated: {', '.join(dup)}")
        from tensormol.registry import suggest

        def check(name: str, where: str) -> None:
            if name not in names:
                raise ConfigError(f"{where}: unknown ligand {name!r}{suggest(name, names)}; "
                                  f"ligands are: {', '.join(names)}")

        for i, edge in enumerate(self.edges):
            if len(edge) != 2 or edge[0] == edge[1]:
                raise ConfigError(f"edges[{i}] must name two different ligands, got {list(edge)}")
            for n in edge:
                check(n, f"edges[{i}]")
        if self.star is not None:
            check(self.star, "star")
        for n in self.absolute:
            check(n, "absolute")
        for n in self.experimental_kcal:
            check(str(n), "experimental_kcal")
        if self.reference is not None:
            check(self.reference, "reference")
        if not (self.edges or self.star or self.absolute):
            raise ConfigError("nothing to compute: give edges, star or absolute")

    # ------------------------------------------------------------------ derived values
    def preset_value(self, section: Any, name: str) -> Any:
        value = getattr(section, name)
        return PRESETS[self.preset][name] if value is None else value

    def edge_list(self) -> list[tuple[str, str]]:
        """Relative legs: the explicit edges, then the star's (hub → ligand), no repeats."""
        out = [(a, b) for a, b in self.edges]
        if self.star is not None:
            out += [(self.star, lig.name) for lig in self.ligands if lig.name != self.star]
        seen, unique = set(), []
        for e in out:
            if e not in seen:
                seen.add(e)
                unique.append(e)
        return unique

    def ligand(self, name: str) -> LigandConfig:
        return next(lig for lig in self.ligands if lig.name == name)


_PATH_FIELDS = {"receptor": ("pdb", "prmtop", "inpcrd"), "ligand": ("sdf", "mol2")}


#: Prefix of a path inside the data files openmmtools ships (``openmmtools:cb7-b2/ligand.pdb``).
DATA_PREFIX = "openmmtools:"


def _resolve(path: str | None, base: Path) -> str | None:
    if path is None:
        return None
    if path.startswith(DATA_PREFIX):
        import importlib.util

        spec = importlib.util.find_spec("openmmtools")
        if spec is None or spec.origin is None:
            raise FileNotFoundError(f"{path!r} names a data file of openmmtools, which is not "
                                    "installed (pip install openmmtools)")
        return str(Path(spec.origin).parent / "data" / path[len(DATA_PREFIX):])
    p = Path(os.path.expanduser(path))
    return str(p if p.is_absolute() else (base / p))


def load_binding_config(path: str | os.PathLike, overrides: Sequence[str] = (), *,
                        check_files: bool = True) -> BindingConfig:
    """Read, validate and resolve a binding config.

    Parameters
    ----------
    path : path-like
        The YAML file. File paths inside it are relative to its directory.
    overrides : sequence of str
        ``section.key=value`` overrides (YAML values).
    check_files : bool
        Raise ``FileNotFoundError`` for a receptor or ligand file that does not exist.

    Raises
    ------
    ConfigError
        Unknown key (with the closest valid one), wrong type or value, inconsistent entries.
    FileNotFoundError
        The config or a file it names does not exist.
    """
    raw = apply_overrides(load_yaml(path), list(overrides)) if overrides else load_yaml(path)
    cfg = BindingConfig.from_dict(raw, "")
    base = Path(path).resolve().parent
    rec = dataclasses.replace(cfg.receptor, **{k: _resolve(getattr(cfg.receptor, k), base)
                                               for k in _PATH_FIELDS["receptor"]})
    ligs = tuple(dataclasses.replace(lig, **{k: _resolve(getattr(lig, k), base)
                                             for k in _PATH_FIELDS["ligand"]})
                 for lig in cfg.ligands)
    potential = _resolve(cfg.potential, base)
    cfg = dataclasses.replace(cfg, receptor=rec, ligands=ligs, potential=potential)
    if check_files:
        for what, p in [(f"receptor.{k}", getattr(rec, k)) for k in _PATH_FIELDS["receptor"]] + [
                (f"ligand {lig.name!r} {k}", getattr(lig, k)) for lig in ligs
                for k in _PATH_FIELDS["ligand"]] + [("potential", potential)]:
            if p is not None and not Path(p).is_file():
                raise FileNotFoundError(f"{what}: file {p!r} does not exist")
    return cfg

