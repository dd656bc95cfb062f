"""``tensormol train`` and ``tensormol eval``: thin shells over :mod:`tensormol.train`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["add_train_subcommands", "run_train", "run_eval", "main"]


def add_train_subcommands(subparsers) -> None:
    """Register ``train`` and ``eval`` on the ``tensormol`` command's subparsers."""
    p = subparsers.add_parser(
        "train", help="train a potential from a YAML config",
        description="Train a potential from a YAML config. The run folder "
                    "(logging.root/logging.name) receives config.yaml, checkpoints/ (last.ckpt, "
                    "best.ckpt), metrics.csv and tensorboard/.",
    )
    p.add_argument("-c", "--config", required=True, help="YAML config file")
    p.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", nargs="+",
                   default=[], help="override a config entry, e.g. --set training.lr=5e-4 "
                                    "trainer.max_epochs=20 (values are read as YAML)")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                   help="continue a killed run from its last.ckpt (or from CHECKPOINT)")
    p.add_argument("--overwrite", action="store_true",
                   help="delete an existing run folder of the same name first")
    p.add_argument("--no-test", dest="test", action="store_false",
                   help="skip the test-split evaluation after training")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads per process (default: the thread policy, "
                        "all available cores shared by the processes)")
    p.set_defaults(func=run_train)

    e = subparsers.add_parser(
        "eval", help="test errors, parity plot and learning curve of a checkpoint",
        description="Evaluate a training checkpoint (its EMA weights) on a split of its data; "
                    "print MAE/RMSE and write parity_<split>.png and learning_curve.png.",
    )
    e.add_argument("checkpoint", help="checkpoint written by 'tensormol train'")
    e.add_argument("--split", choices=("test", "val", "train", "all"), default=None,
                   help="split of the training data, or 'all' frames of the file (default: "
                        "test; with --data: all)")
    e.add_argument("-o", "--output-dir", default=None,
                   help="folder for the plots (default: <run>/eval)")
    e.add_argument("--batch-size", type=int, default=None)
    e.add_argument("--data", default=None,
                   help="evaluate this file (whole, unless --split names a split of the "
                        "training data) instead of the one recorded in the checkpoint")
    e.add_argument("--no-ema", dest="ema", action="store_false",
                   help="evaluate the raw weights instead of the EMA average")
    e.add_argument("--threads", type=int, default=None)
    e.set_defaults(func=run_eval)


def _check_threads(n: int | None) -> None:
    # Applied by train()/evaluate() for the run only (thread policy otherwise).
    if n is not None and n < 1:
        raise ValueError(f"--threads must be >= 1, got {n}")


def run_train(args: argparse.Namespace) -> int:
    """Run ``tensormol train``; returns the exit status."""
    from tensormol.config import load_config
    from tensormol.train import train

    _check_threads(args.threads)
    overrides = [item for group in args.overrides for item in group]
    cfg = load_config(args.config, overrides)
    result = train(cfg, resume=args.resume, overwrite=args.overwrite, test=args.test,
                   threads=args.threads)
    from tensormol.train._run import _is_primary_process

    if _is_primary_process():
        print(f"run folder:      {result.run_dir}")
        print(f"last checkpoint: {result.last_checkpoint}")
        if result.best_checkpoint is not None:
            print(f"best checkpoint: {result.best_checkpoint}")
        print(f"optimiser steps: {result.global_step}")
        for split in ("val", "test"):
            m = result.metrics.get(split)
            if m and "forces_mae" in m:
                print(f"{split:<5s} MAE: energy/atom {1e3 * m['energy_per_atom_mae']:.2f} meV/atom,"
                      f" forces {1e3 * m['forces_mae']:.1f} meV/Å")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Run ``tensormol eval``; returns the exit status."""
    from tensormol.train import evaluate

    _check_threads(args.threads)
    result = evaluate(args.checkpoint, split=args.split, output_dir=args.output_dir,
                      batch_size=args.batch_size, data_path=args.data, ema=args.ema,
                      threads=args.threads)
    print(result.extra["threads"])
    print(result.format())
    if result.parity_plot is not None:
        print(f"parity plot:    {result.parity_plot}")
    if result.learning_curve is not None:
        print(f"learning curve: {result.learning_curve}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (``python -m tensormol.cli._train train ...``) for these subcommands."""
    parser = argparse.ArgumentParser(prog="tensormol")
    add_train_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
