"""``tensormol export``: a training checkpoint -> a model bundle; ``tensormol info model.tmol``."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_export_subcommand", "describe_bundle"]


def describe_bundle(path: str) -> int:
    """Print what a bundle holds (``tensormol info model.tmol``); returns the exit status."""
    from tensormol.export import load_bundle

    print(load_bundle(path).describe())
    return 0


def _run(args: argparse.Namespace) -> int:
    from tensormol.export import export_checkpoint

    out = Path(args.output) if args.output else Path(args.checkpoint).with_suffix(".tmol")
    bundle = export_checkpoint(args.checkpoint, out, use_ema=not args.raw_weights)
    print(bundle.describe())
    print(f"wrote {out}")
    return 0


def add_export_subcommand(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="write a model bundle (.tmol) from a training checkpoint",
        description="Write the (EMA) weights, registry name, resolved config and metadata of a "
                    "`tensormol train` checkpoint to one bundle file, for `tensormol md`, the ASE "
                    "calculator and MLPotential('tensormol', bundle=...).",
    )
    p.add_argument("checkpoint", help="checkpoint written by `tensormol train` (e.g. best.ckpt)")
    p.add_argument("-o", "--output", help="bundle to write (default: CHECKPOINT with .tmol)")
    p.add_argument("--raw-weights", action="store_true",
                   help="export the raw optimiser weights instead of the EMA weights")
    p.set_defaults(func=_run)
