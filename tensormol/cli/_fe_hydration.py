"""``tensormol fe hydration``: hydration free energy of a molecule (MM or ML/MM).

A thin shell over :func:`tensormol.fe._hydration.run_hydration`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_subcommand"]


def _run(args: argparse.Namespace) -> int:
    from tensormol.fe._hydration import PRESETS, run_hydration

    if args.smiles is None and args.ligand is None:
        raise ValueError("give the molecule: --smiles 'Cc1ccccc1' or --ligand FILE.sdf")
    if args.smiles is not None and args.ligand is not None:
        raise ValueError("give either --smiles or --ligand, not both")
    if args.preset not in PRESETS:  # argparse checks choices; kept for programmatic use
        raise ValueError(f"--preset must be one of {sorted(PRESETS)}, got {args.preset!r}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    molecule = args.smiles if args.smiles is not None else Path(args.ligand)
    if args.ligand is not None and not Path(args.ligand).is_file():
        raise FileNotFoundError(f"--ligand {args.ligand!r} does not exist")
    out = args.output or "hydration_run"
    res = run_hydration(molecule, out, preset=args.preset, potential=args.potential,
                        resume=args.resume, threads=args.threads, platform=args.platform,
                        n_workers=args.workers, scheduler=args.scheduler, seed=args.seed,
                        name=args.name, cache_dir=args.cache_dir)
    what = "ML/MM" if args.potential else "MM (GAFF2/AM1-BCC, TIP3P)"
    print(f"{res.name}: ΔG_hydration = {res.dg_kcal:+.2f} ± {res.ddg_kcal:.2f} kcal/mol "
          f"({res.dg_kJ:+.2f} ± {res.ddg_kJ:.2f} kJ/mol), {what}, preset {args.preset}")
    for leg, out_leg in res.legs.items():
        print(f"  {leg} leg: ΔG(decouple) = {out_leg['dg_kT']:+.3f} ± {out_leg['ddg_kT']:.3f} kT, "
              f"smallest neighbour overlap {out_leg['min_neighbor_overlap']:.3f}")
    print(f"results: {Path(out) / 'results.json'}  ({res.wall_s / 60:.1f} min)")
    return 0


def add_subcommand(fe_sub: argparse._SubParsersAction) -> None:
    """Add ``hydration`` to the ``tensormol fe`` subcommands."""
    p = fe_sub.add_parser(
        "hydration", help="hydration free energy by alchemical decoupling (MM or ML/MM)",
        description="Hydration free energy of a small molecule: GAFF2/AM1-BCC parameters "
                    "(AmberTools), decoupling in TIP3P water and in vacuum with Hamiltonian "
                    "replica exchange, MBAR. With --potential the molecule's intramolecular "
                    "energy comes from a tensormol bundle (ML/MM). ΔG = ΔG_vacuum_leg − "
                    "ΔG_solvent_leg; negative means the molecule prefers water.",
    )
    mol = p.add_argument_group("molecule")
    mol.add_argument("--smiles", help="SMILES (protonation and charges as written)")
    mol.add_argument("--ligand", help="SDF/MOL/MOL2 file with the molecule (instead of --smiles)")
    mol.add_argument("--name", help="label of the molecule in the results (default: SMILES)")
    p.add_argument("--potential", help="tensormol bundle (.tmol): ML/MM for the molecule")
    p.add_argument("--preset", default="standard", choices=("quick", "standard"),
                   help="protocol size (default: standard)")
    p.add_argument("-o", "--output", help="run directory (default: hydration_run)")
    p.add_argument("--resume", action="store_true",
                   help="continue a run in the run directory (finished iterations are kept)")
    p.add_argument("--threads", type=int, help="OpenMM CPU threads per leg")
    p.add_argument("--platform", default="CPU",
                   choices=("CPU", "Reference", "CUDA", "OpenCL", "HIP"), help="OpenMM platform")
    p.add_argument("--workers", type=int, default=1,
                   help="Dask worker processes for the legs (default 1: serial)")
    p.add_argument("--scheduler", help="Dask scheduler address (a cluster) instead")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", help="ligand parameter cache (default: inside the run)")
    p.set_defaults(func=_run)
