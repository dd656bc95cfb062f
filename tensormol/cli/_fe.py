"""``tensormol fe``: free energies (hydration, binding) and the report of a run directory.

The protocol commands register themselves from their own modules (``fe hydration``,
``fe binding``); ``fe report`` lives here.
"""

from __future__ import annotations

import argparse
import importlib
import json

__all__ = ["add_fe_subcommand"]

#: Modules that add ``fe`` sub-subcommands through ``add_subcommand(fe_subparsers)``.
_PROTOCOLS = ("tensormol.cli._fe_hydration", "tensormol.cli._fe_binding")


def _report(args: argparse.Namespace) -> int:
    from tensormol.fe import collect_legs, report

    if args.json:
        legs = collect_legs(args.run_dir)
        out = {name: {**{k: v for k, v in e.items() if k != "estimate"},
                      "estimate": e["estimate"].to_dict() if e["estimate"] else None}
               for name, e in legs.items()}
        print(json.dumps(out, indent=1))
        return 0
    print(report(args.run_dir), end="")
    return 0


def add_fe_subcommand(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fe", help="free energies: hydration, binding, report of a run",
        description="Alchemical free energies in OpenMM with Hamiltonian replica exchange and "
                    "MBAR. Every run writes one directory (inputs, checkpoints, results.json, "
                    "results.csv, plots); `tensormol fe report RUN_DIR` prints its results, "
                    "finished or not.",
    )
    fe_sub = p.add_subparsers(dest="fe_command", metavar="FE_COMMAND")
    for module_name in _PROTOCOLS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:  # that protocol is not part of this build
                continue
            raise
        module.add_subcommand(fe_sub)
    r = fe_sub.add_parser(
        "report", help="results of a finished or partial run directory",
        description="Print the results table of a free-energy run: rows of results.json "
                    "(ΔG/ΔΔG ± σ in kcal/mol and kJ/mol), per-ligand ΔG by maximum likelihood "
                    "with cycle closures, failed legs with their errors, and every leg with "
                    "samples (done, partial or failed) analysed with MBAR: ΔG, overlap, "
                    "forward/reverse halves.",
    )
    r.add_argument("run_dir", help="the run directory")
    r.add_argument("--json", action="store_true",
                   help="print the per-leg analysis as JSON instead of the text report")
    r.set_defaults(func=_report)

    def _help(args: argparse.Namespace) -> int:
        p.print_help()
        return 1

    p.set_defaults(func=_help)
