"""``tensormol md``: MD with a model bundle in OpenMM (pure ML or ML/MM), from flags or YAML.

The flags are generated from :class:`tensormol.md.MDConfig`'s fields (types, bounds, choices,
descriptions and defaults live there once).
"""

from __future__ import annotations

import argparse

from tensormol.cli._options import add_section_flags, section_overrides

__all__ = ["add_md_subcommand"]

# Fields given as positional arguments instead of flags.
_POSITIONAL = ("structure", "model")


def _run(args: argparse.Namespace) -> int:
    from tensormol.md import load_md_config, run_md

    overrides = section_overrides(args, args.md_fields)
    overrides["structure"] = args.structure
    overrides["model"] = args.model
    cfg = load_md_config(args.config, **overrides)
    result = run_md(cfg, resume=args.resume, overwrite=args.overwrite)
    if result.ml_atoms is not None:
        print(f"ML region: {len(result.ml_atoms)} atoms")
    for name, path in result.files.items():
        print(f"{name}: {path}")
    return 0


def add_md_subcommand(subparsers: argparse._SubParsersAction) -> None:
    from tensormol.md._config import MDConfig

    p = subparsers.add_parser(
        "md", help="molecular dynamics with a model bundle in OpenMM (pure ML or ML/MM)",
        description="Run minimization and MD (Langevin NVT, Verlet NVE, NPT) with a tensormol "
                    "bundle through openmm-ml. Values come from --config YAML, then flags. "
                    "Units: K, fs, 1/ps, bar, kJ/mol/nm. Input paths in a YAML resolve "
                    "against its folder; the output folder against the current directory. "
                    "Ctrl-C stops at a step boundary with a checkpoint (continue with --resume).",
    )
    p.add_argument("structure", nargs="?",
                   help="PDB, Amber prmtop (+inpcrd), XYZ/extXYZ (.gz too; its last frame) or SDF")
    p.add_argument("model", nargs="?", help="model bundle (.tmol) from `tensormol export`")
    p.add_argument("-c", "--config", help="YAML with the keys of tensormol.md.MDConfig "
                                          "(top level or under 'md:')")
    run = p.add_mutually_exclusive_group()
    run.add_argument("--resume", action="store_true",
                     help="continue the run in the output folder from its last checkpoint "
                          "(settings must match; --steps may grow)")
    run.add_argument("--overwrite", action="store_true",
                     help="discard an earlier run in the output folder")
    opts = p.add_argument_group("simulation options (defaults: MDConfig's)")
    names = add_section_flags(opts, MDConfig, exclude=_POSITIONAL, short={"output": "-o"})
    p.set_defaults(func=_run, md_fields=names)
