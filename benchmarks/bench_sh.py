"""Time tensormol's spherical harmonics against e3nn's, on CPU, same thread count.

For lmax = 2..10 on 10,000 random points, float32 and float64: forward, and forward + backward
(with a random cotangent). Each entry is the best of ``--repeats`` timed calls after warm-up;
the implementations are interleaved call by call so a background load hits them alike. e3nn is
timed in its default eager mode and with its TorchScript-compiled kernel (``jit_mode="script"``).

Two clocks: ``wall`` (``time.perf_counter``) and ``cpu`` (``time.process_time``: CPU seconds of
this process, which on a machine shared with other jobs is far less sensitive to being
descheduled; use it with one thread, since idle OpenMP threads spin and count as CPU time).
By default both configurations run: 2 threads / wall clock, and 1 thread / CPU clock.

Usage::

    .venv/bin/python benchmarks/bench_sh.py [--repeats 25] [--points 10000] \
        [--configs 2:wall 1:cpu] [--lmax 2 3 ... 10]

Prints markdown tables and writes them to ``benchmarks/results/sh.md``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

import torch

_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _best_times(fns: dict, repeats: int, clock) -> dict:
    for f in fns.values():  # warm-up (compilation, caches, allocator)
        f()
        f()
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = clock()
            f()
            best[k] = min(best[k], clock() - t0)
    return best


def _run(threads: int, clock_name: str, args) -> list[str]:
    import e3nn
    from e3nn import o3

    from tensormol.so3 import SphericalHarmonics

    torch.set_num_threads(threads)
    clock = _CLOCKS[clock_name]
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    gen = torch.Generator().manual_seed(0)
    rows = []
    for dtype in (torch.float32, torch.float64):
        x0 = torch.randn(args.points, 3, generator=gen, dtype=dtype)
        for lmax in args.lmax:
            ls = list(range(lmax + 1))
            ours = SphericalHarmonics(ls, normalize=True, normalization="integral")
            e3nn.set_optimization_defaults(jit_mode="eager")
            theirs = o3.SphericalHarmonics(ls, True, normalization="integral")
            e3nn.set_optimization_defaults(jit_mode="script")
            theirs_js = o3.SphericalHarmonics(ls, True, normalization="integral")
            e3nn.set_optimization_defaults(jit_mode="eager")
            err = (ours(x0).double() - theirs(x0).double()).abs().max().item()
            cot = torch.randn(args.points, (lmax + 1) ** 2, generator=gen, dtype=dtype)
            xg = x0.clone().requires_grad_(True)

            def fwd(m, x=x0):
                def f():
                    with torch.no_grad():
                        m(x)
                return f

            def fwdbwd(m, x=xg, c=cot):
                def f():
                    x.grad = None
                    m(x).backward(c)
                return f

            mods = {"tm": ours, "e3nn": theirs, "e3nn_js": theirs_js}
            tf = _best_times({k: fwd(m) for k, m in mods.items()}, args.repeats, clock)
            tb = _best_times({k: fwdbwd(m) for k, m in mods.items()}, args.repeats, clock)
            rows.append((str(dtype).replace("torch.", ""), lmax, tf, tb, err))
            print(f"[{threads} thr, {clock_name}] {rows[-1][0]} lmax={lmax}: fwd tm "
                  f"{tf['tm']*1e3:.3f} ms, e3nn {tf['e3nn']*1e3:.3f}, TS {tf['e3nn_js']*1e3:.3f} "
                  f"| f+b tm {tb['tm']*1e3:.3f}, e3nn {tb['e3nn']*1e3:.3f}, TS "
                  f"{tb['e3nn_js']*1e3:.3f} | max |diff| {err:.1e}", flush=True)

    def ms(t: float) -> str:
        return f"{t * 1e3:.3f}"

    lines = [
        f"## {threads} thread{'s' if threads > 1 else ''}, {clock_name} clock",
        "",
        f"Load average at the start: {load} (on {os.cpu_count()} cores).",
        "",
        "| dtype | lmax | fwd tm | fwd e3nn | fwd e3nn TS | fwd ratio | f+b tm | f+b e3nn | "
        "f+b e3nn TS | f+b ratio | max abs diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dt, lmax, tf, tb, err in rows:
        rf = min(tf["e3nn"], tf["e3nn_js"]) / tf["tm"]
        rb = min(tb["e3nn"], tb["e3nn_js"]) / tb["tm"]
        lines.append(
            f"| {dt} | {lmax} | {ms(tf['tm'])} | {ms(tf['e3nn'])} | {ms(tf['e3nn_js'])} | "
            f"{rf:.2f} | {ms(tb['tm'])} | {ms(tb['e3nn'])} | {ms(tb['e3nn_js'])} | {rb:.2f} | "
            f"{err:.1e} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--configs", nargs="*", default=["2:wall", "1:cpu"],
                        help="threads:clock pairs, clock in {wall, cpu}")
    parser.add_argument("--lmax", type=int, nargs="*", default=list(range(2, 11)))
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent / "results" / "sh.md")
    args = parser.parse_args()

    import e3nn

    header = [
        "# Spherical harmonics: tensormol vs e3nn",
        "",
        f"{args.points} random points, normalize=True, normalization='integral', best of "
        f"{args.repeats} calls after warm-up, implementations interleaved call by call (ms). "
        "`e3nn` is e3nn's default eager mode, `e3nn TS` its TorchScript-compiled kernel. "
        "Ratio = time of the faster e3nn mode / tensormol time (> 1: tensormol is faster). "
        "`cpu` clock = CPU seconds of the process (robust to being descheduled on a shared "
        "machine); `wall` = elapsed time.",
        "",
        f"torch {torch.__version__}, e3nn {e3nn.__version__}, "
        f"{platform.processor() or platform.machine()}, {datetime.date.today().isoformat()}. "
        "Measured on a machine shared with other jobs: treat differences under ~30 % as noise.",
        "",
    ]
    sections = []
    for cfg in args.configs:
        threads, clock_name = cfg.split(":")
        if clock_name not in _CLOCKS:
            raise SystemExit(f"unknown clock {clock_name!r} in {cfg!r}: use wall or cpu")
        sections += _run(int(threads), clock_name, args) + [""]
    table = "\n".join(header + sections)
    print()
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
