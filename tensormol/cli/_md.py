"""``tensormol md``: MD with a model bundle in OpenMM (pure ML or ML/MM), from flags or YAML."""

from __future__ import annotations

import argparse

__all__ = ["add_md_subcommand"]

# Flags that map one-to-one onto MDConfig fields (flag name with dashes -> field name).
_FIELDS = ("coordinates", "ml", "forcefield", "solvent", "constraints", "ensemble",
           "temperature", "timestep", "friction", "pressure", "barostat_interval", "steps",
           "minimize_tolerance", "minimize_max_iterations", "report_interval",
           "trajectory_interval", "checkpoint_interval", "output", "seed", "platform", "threads",
           "torch_threads", "compiled_ops", "device", "backend")


def _run(args: argparse.Namespace) -> int:
    from tensormol.md import load_md_config, run_md

    overrides = {name: getattr(args, name) for name in _FIELDS}
    overrides["structure"] = args.structure
    overrides["model"] = args.model
    if args.no_minimize:
        overrides["minimize"] = False
    if args.extra_forcefield:
        overrides["extra_forcefield"] = tuple(args.extra_forcefield)
    cfg = load_md_config(args.config, **overrides)
    result = run_md(cfg, resume=args.resume)
    if result.ml_atoms is not None:
        print(f"ML region: {len(result.ml_atoms)} atoms")
    for name, path in result.files.items():
        print(f"{name}: {path}")
    return 0


def add_md_subcommand(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "md", help="molecular dynamics with a model bundle in OpenMM (pure ML or ML/MM)",
        description="Run minimization and MD (Langevin NVT, Verlet NVE, NPT) with a tensormol "
                    "bundle through openmm-ml. Values come from --config YAML, then flags. "
                    "Units: K, fs, 1/ps, bar.",
    )
    p.add_argument("structure", nargs="?", help="PDB, Amber prmtop (+inpcrd), XYZ or SDF")
    p.add_argument("model", nargs="?", help="model bundle (.tmol)")
    p.add_argument("-c", "--config", help="YAML with the keys of tensormol.md.MDConfig")
    p.add_argument("--coordinates", help="inpcrd/rst7 of a prmtop")
    p.add_argument("--ml", help="ML region: residue names ('LIG') or indices ('0-17,20'); "
                                "omitted = pure ML")
    p.add_argument("--forcefield", choices=("amber14", "amber"),
                   help="MM force field of ML/MM: amber14 or the Amber files' own")
    p.add_argument("--solvent", choices=("vacuum", "obc2", "gbn2", "tip3p"))
    p.add_argument("--extra-forcefield", action="append", metavar="XML",
                   help="extra OpenMM force-field XML (repeatable)")
    p.add_argument("--constraints", choices=("none", "hbonds"))
    p.add_argument("--ensemble", choices=("nvt", "nve", "npt", "minimize"))
    p.add_argument("--temperature", type=float, help="K")
    p.add_argument("--timestep", type=float, help="fs")
    p.add_argument("--friction", type=float, help="1/ps")
    p.add_argument("--pressure", type=float, help="bar (NPT)")
    p.add_argument("--barostat-interval", type=int)
    p.add_argument("--steps", type=int, help="total MD steps")
    p.add_argument("--no-minimize", action="store_true", help="skip the initial minimization")
    p.add_argument("--minimize-tolerance", type=float, help="kJ/mol/nm")
    p.add_argument("--minimize-max-iterations", type=int)
    p.add_argument("--report-interval", type=int, help="steps between progress/CSV rows")
    p.add_argument("--trajectory-interval", type=int, help="steps between DCD frames (0 = none)")
    p.add_argument("--checkpoint-interval", type=int, help="steps between checkpoints (0 = none)")
    p.add_argument("-o", "--output", help="output folder")
    p.add_argument("--seed", type=int)
    p.add_argument("--platform", choices=("CPU", "Reference", "CUDA", "OpenCL"))
    p.add_argument("--threads", type=int, help="CPU platform threads")
    p.add_argument("--torch-threads", type=int,
                   help="PyTorch threads of the model (1 is fastest for small ML regions)")
    p.add_argument("--compiled-ops", action="store_const", const=True, default=None,
                   help="build/load the compiled extension first (GauntNet's fused kernel)")
    p.add_argument("--device", help="torch device of the model (cpu, cuda)")
    p.add_argument("--backend", choices=("auto", "python", "torch"))
    p.add_argument("--resume", action="store_true",
                   help="continue from the last checkpoint in the output folder")
    p.set_defaults(func=_run)
