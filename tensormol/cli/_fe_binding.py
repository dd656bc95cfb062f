"""``tensormol fe binding``: binding free energies with the Alchemical Transfer Method.

A thin shell over :func:`tensormol.fe._binding.run_binding`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_subcommand"]


def _run(args: argparse.Namespace) -> int:
    from tensormol.fe._binding import run_binding

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.iterations is not None and args.iterations < 1:
        raise ValueError(f"--iterations must be >= 1, got {args.iterations}")
    overrides = list(args.set or [])
    if args.output is not None:
        overrides.append(f"output={args.output}")
    if args.preset is not None:
        overrides.append(f"preset={args.preset}")
    if args.platform is not None:
        overrides.append(f"sampling.platform={args.platform}")
    if args.threads is not None:
        overrides.append(f"sampling.threads={args.threads}")
    res = run_binding(args.config, resume=args.resume, potential=args.potential,
                      overrides=overrides, n_workers=args.workers, scheduler=args.scheduler,
                      n_iterations=args.iterations)
    for row in res["rows"]:
        what = "ΔG°_bind" if row["kind"] == "absolute" else "ΔΔG_bind"
        if row["status"] == "failed":
            print(f"{row['name']}: FAILED ({row['error']})")
            continue
        print(f"{row['name']}: {what} = {row['dg_kcal']:+.2f} ± {row['ddg_kcal']:.2f} kcal/mol "
              f"({row['dg_kJ']:+.2f} ± {row['ddg_kJ']:.2f} kJ/mol) [{row['status']}]")
    print(f"results: {Path(res['run_dir']) / 'results.json'}")
    return 0 if all(r["status"] != "failed" for r in res["rows"]) else 1


def add_subcommand(fe_sub: argparse._SubParsersAction) -> None:
    """Add ``binding`` to the ``tensormol fe`` subcommands."""
    p = fe_sub.add_parser(
        "binding", help="binding free energies (absolute and relative) with ATM",
        description="Absolute and relative binding free energies with the Alchemical Transfer "
                    "Method (OpenMM's ATMForce): receptor and ligands from a YAML config "
                    "(ligands as posed SDF/MOL2 or SMILES aligned on a reference), GAFF2/AM1-BCC "
                    "ligands, Hamiltonian replica exchange over 22 states, MBAR. With "
                    "--potential the ligands' intramolecular energy comes from a tensormol "
                    "bundle (ML/MM), outside the ATMForce.",
    )
    p.add_argument("-c", "--config", required=True, help="binding YAML (configs/fe_*.yaml)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run directory (prepared legs and checkpoints)")
    p.add_argument("--potential", help="tensormol bundle (.tmol): ML/MM for the ligands")
    p.add_argument("--preset", choices=("quick", "standard", "production"),
                   help="override the config's preset")
    p.add_argument("-o", "--output", help="run directory (overrides the config's output)")
    p.add_argument("--iterations", type=int, help="iterations per leg (overrides the config)")
    p.add_argument("--platform", choices=("CPU", "Reference", "CUDA", "OpenCL", "HIP"),
                   help="OpenMM platform")
    p.add_argument("--threads", type=int, help="CPU platform threads")
    p.add_argument("--workers", type=int, help="Dask local workers for independent legs")
    p.add_argument("--scheduler", help="address of a Dask scheduler")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="config override, e.g. --set atm.n_states=12 (repeatable)")
    p.set_defaults(func=_run)
