"""``tensormol data generate|info``: thin shells over :mod:`tensormol.data`.

The lead's CLI calls :func:`add_data_subcommand` on its subparsers and dispatches to
:func:`run_data`. ``python -m tensormol.cli._data generate ...`` runs the same code stand-alone.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

__all__ = ["add_data_subcommand", "run_data"]


def add_data_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``data`` (with ``generate`` and ``info``) to an ``argparse`` subparsers object."""
    data = subparsers.add_parser(
        "data", help="generate reference data with GFN2-xTB, or summarise a data file",
        description="Generate reference data by Langevin MD with tblite, or summarise a file.")
    sub = data.add_subparsers(dest="data_command", metavar="{generate,info}")
    sub.required = True
    data.set_defaults(func=run_data)

    g = sub.add_parser(
        "generate", help="sample and label configurations (extended XYZ, resumable)",
        description="Sample configurations by BAOAB Langevin MD with tblite (GFN2-xTB by "
                    "default), label energy, forces and dipole (molecules) or stress (periodic), "
                    "and write extended XYZ (.xyz, .xyz.gz, ...). Rerunning the same command "
                    "after an interruption resumes from the last checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--smiles", help="molecule as SMILES (3D by RDKit ETKDG + MMFF)")
    src.add_argument("--xyz", help="starting structure from an (extended) XYZ file, Å")
    src.add_argument("--sdf", help="starting structure from an SDF/MOL file with 3D coordinates")
    g.add_argument("-o", "--output", required=True, help="output file (.xyz, .xyz.gz, ...)")
    g.add_argument("-n", "--frames", type=int, required=True, help="frames to write")
    g.add_argument("--temperature", type=float, default=500.0, help="thermostat temperature, K")
    g.add_argument("--timestep", type=float, default=0.5, help="MD time step, fs")
    g.add_argument("--friction", type=float, default=10.0,
                   help="Langevin friction, 1/ps (OpenMM's convention, as in `tensormol md`)")
    g.add_argument("--save-every", type=int, default=20, help="MD steps between frames")
    g.add_argument("--equilibration", type=int, default=1000,
                   help="MD steps before the first frame")
    g.add_argument("--relax-steps", type=int, default=0,
                   help="FIRE steps (at most) on the start structure before MD")
    g.add_argument("--hydrogen-mass", type=float, default=None,
                   help="H mass in amu for the dynamics (sampled ensemble unchanged)")
    g.add_argument("--method", default="GFN2-xTB", help="tblite method")
    g.add_argument("--charge", type=int, default=0, help="total charge, e")
    g.add_argument("--multiplicity", type=int, default=1, help="spin multiplicity")
    g.add_argument("--electronic-temperature", type=float, default=300.0,
                   help="SCF Fermi smearing temperature, K")
    g.add_argument("--copies", type=int, default=1,
                   help="molecules in a cubic periodic box (needs --density or --box-length)")
    g.add_argument("--density", type=float, default=None, help="box density, g/cm^3")
    g.add_argument("--box-length", type=float, default=None, help="cubic box edge, Angstrom")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of the 3D embedding, box, velocities and noise")
    g.add_argument("--chunk", type=int, default=50, help="frames per checkpoint")
    g.add_argument("--decimals", type=int, default=6,
                   help="digits after the point for positions and forces")
    g.add_argument("--max-new-frames", type=int, default=None,
                   help="stop (resumable) after this many new frames")
    g.add_argument("--overwrite", action="store_true",
                   help="discard an existing output instead of resuming")
    g.add_argument("--no-progress", action="store_true",
                   help="no progress bar (there is none when stderr is not a terminal)")

    i = sub.add_parser("info", help="summarise a data file (frames, species, labels, ranges)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    i.add_argument("file", help="extended XYZ (.xyz/.extxyz[.gz]), ASE .db, .npz or .h5")
    i.add_argument("--format", default=None, help="extxyz, ase, npz or hdf5 (default: suffix)")
    i.add_argument("--energy-unit", default=None,
                   help="energy unit of the file (default: its header, else eV)")
    i.add_argument("--length-unit", default=None,
                   help="length unit of the file (default: its header, else Angstrom)")
    i.add_argument("--cutoff", type=float, default=None,
                   help="also report the mean neighbour count within this cutoff, Å")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    return data


#: Below this (1/ps) a friction was probably meant in 1/fs, the unit of earlier versions.
_WEAK_FRICTION = 0.1


def _generate(args: argparse.Namespace) -> int:
    from ..data import SamplingSettings, generate, prepare_structure

    if args.friction < _WEAK_FRICTION:
        print(f"note: --friction is in 1/ps; {args.friction:g}/ps couples the thermostat very "
              f"weakly (earlier versions took 1/fs: {args.friction:g}/fs is "
              f"{args.friction * 1000:g}/ps)", file=sys.stderr, flush=True)

    settings = SamplingSettings(
        n_frames=args.frames, temperature=args.temperature, timestep=args.timestep,
        friction=args.friction, save_every=args.save_every,
        equilibration_steps=args.equilibration, relax_steps=args.relax_steps,
        hydrogen_mass=args.hydrogen_mass, method=args.method, charge=args.charge,
        multiplicity=args.multiplicity, electronic_temperature=args.electronic_temperature,
        seed=args.seed, chunk_frames=args.chunk, decimals=args.decimals)
    structure = prepare_structure(
        smiles=args.smiles, structure_file=args.xyz or args.sdf, copies=args.copies,
        density=args.density, box_length=args.box_length, seed=args.seed)
    print(f"{structure.formula}: {len(structure.numbers)} atoms from {structure.description}"
          + (f", cubic box {structure.cell[0, 0]:.4f} Å" if structure.pbc.any() else ""),
          file=sys.stderr, flush=True)
    # A bar redrawn into a redirected log file only fills it: bars on terminals only.
    progress = not args.no_progress and sys.stderr.isatty()
    if not args.no_progress and not progress:
        print(f"(no progress bar: stderr is not a terminal; {args.output}.state.json records "
              "the progress)", file=sys.stderr, flush=True)
    result = generate(args.output, structure, settings, overwrite=args.overwrite,
                      max_new_frames=args.max_new_frames, progress=progress)
    print(json.dumps(result), flush=True)
    return 0


def _fmt_range(lo: float, hi: float) -> str:
    return f"[{lo:.6g}, {hi:.6g}]"


def _info(args: argparse.Namespace) -> int:
    from ..data import dataset_summary, read_dataset

    kw: dict[str, Any] = {}
    if args.energy_unit is not None:
        kw["energy_unit"] = args.energy_unit
    if args.length_unit is not None:
        kw["length_unit"] = args.length_unit
    ds = read_dataset(args.file, format=args.format, **kw)
    summary = dataset_summary(ds, cutoff=args.cutoff)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{args.file}")
    for key, value in summary.items():
        if isinstance(value, dict) and {"min", "max"} <= set(value):
            extra = "".join(f", {k} {v:.6g}" for k, v in value.items()
                            if k not in ("min", "max") and isinstance(v, float)
                            and math.isfinite(v))
            print(f"  {key:<26} {_fmt_range(value['min'], value['max'])}{extra}")
        else:
            print(f"  {key:<26} {value}")
    return 0


def run_data(args: argparse.Namespace) -> int:
    """Run ``tensormol data <generate|info>``; returns the process exit code."""
    if args.data_command == "generate":
        return _generate(args)
    if args.data_command == "info":
        return _info(args)
    raise ValueError(f"unknown data command {args.data_command!r}; valid: generate, info")


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tensormol.cli._data")
    sub = parser.add_subparsers(dest="command")
    add_data_subcommand(sub)
    args = parser.parse_args(["data", *(sys.argv[1:] if argv is None else argv)])
    return run_data(args)


if __name__ == "__main__":
    sys.exit(_main())
