"""The ``make run`` demo: train a small TensorNet on bundled ethanol data, then evaluate it.

``python -m tensormol.demo`` reads ``configs/demo_ethanol.yaml`` (GFN2-xTB ethanol at 500 K,
1000 training frames), trains for a wall-time budget (default 3 minutes) on CPU, evaluates the EMA
weights of the best checkpoint on 500 held-out frames, and prints the test errors and where the
parity plot and learning curve are. Every run gets its own folder under ``runs/``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

_REPO = Path(__file__).resolve().parents[1]


def _budget(seconds: float) -> str:
    s = max(1, int(round(seconds)))
    return f"00:{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tensormol.demo", description=__doc__)
    parser.add_argument("--config", default=str(_REPO / "configs" / "demo_ethanol.yaml"))
    parser.add_argument("--minutes", type=float, default=3.0, help="training wall-time budget")
    parser.add_argument("--threads", default="auto",
                        help="torch threads, or 'auto': tensormol's thread policy (the cores not "
                             "busy with other processes)")
    parser.add_argument("--root", default="runs", help="parent folder of the run")
    parser.add_argument("--set", dest="overrides", metavar="KEY=VALUE", nargs="+", default=[],
                        help="extra config overrides")
    args = parser.parse_args(argv)

    from tensormol._threads import choose_threads, configure_openmp, thread_scope

    configure_openmp()  # before anything loads torch and its OpenMP runtime
    if args.minutes <= 0:
        parser.error(f"--minutes must be > 0, got {args.minutes}")
    try:
        threads = None if args.threads == "auto" else int(args.threads)
        policy = choose_threads("train", torch_threads=threads)
    except ValueError:
        parser.error(f"--threads must be a positive integer or 'auto', got {args.threads!r}")
    with thread_scope(policy):
        return _run(args, policy.describe())


def _run(args: argparse.Namespace, threads: str) -> int:
    import torch

    from tensormol.config import load_config
    from tensormol.train import evaluate, train

    name = time.strftime("demo_ethanol_%Y%m%d-%H%M%S")
    overrides = [f"trainer.max_time={_budget(60 * args.minutes)}", f"logging.root={args.root}",
                 f"logging.name={name}", *args.overrides]
    cfg = load_config(args.config, overrides)
    limits = [f"max_time {cfg.trainer.max_time}" if cfg.trainer.max_time else "",
              f"max_steps {cfg.trainer.max_steps}" if cfg.trainer.max_steps > 0 else ""]
    print(f"tensormol demo: TensorNet (hidden {cfg.model.params.get('hidden_channels')}, "
          f"{cfg.model.params.get('num_layers')} layers) on {Path(cfg.data.path).name} "
          f"({cfg.data.split.train} training frames), {', '.join(x for x in limits if x)}, "
          f"{torch.get_num_threads()} thread(s)\n{threads}", flush=True)
    t0 = time.perf_counter()
    result = train(cfg, test=False)
    t_train = time.perf_counter() - t0
    checkpoint = result.best_checkpoint or result.last_checkpoint
    t1 = time.perf_counter()
    ev = evaluate(checkpoint, split="test")
    t_eval = time.perf_counter() - t1
    print()
    print(f"trained {result.global_step} optimiser steps in {t_train:.0f} s; "
          f"evaluated in {t_eval:.0f} s")
    print(ev.format())
    print(f"run folder:     {result.run_dir}")
    print(f"checkpoint:     {checkpoint}")
    print(f"parity plot:    {ev.parity_plot}")
    print(f"learning curve: {ev.learning_curve}")
    print(f"TensorBoard:    tensorboard --logdir {result.run_dir / 'tensorboard'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
