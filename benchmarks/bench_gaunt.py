"""Gaunt tensor product against e3nn, same inputs, dtype and threads.

tensormol runs ``gaunt_product`` with its default ``backend="auto"``, in two set-ups:
* compiled: the extension loaded (``tensormol info --build-ext`` / ``load_extension()``), so
  "auto" runs the fused sphere-grid kernel (dense contraction for a shared pair operand, L ≤ 3);
* torch only: no extension, "auto" runs the dense contraction for small degrees and the torus
  Fourier route above (tensor ops).

1. Full product of two irreps vectors with degrees 0..L (parity (-1)^l), L = 2..10, batch
   256 × 32 channels: tensormol ``gaunt_product`` vs e3nn ``FullTensorProduct`` restricted to the
   same (even-parity) paths and output degrees ≤ L. Forward time, forward+backward time (sum of
   squares of the output), peak extra memory, fitted exponents.
2. Many-body product ν = 3 of one feature with itself: one Gaunt pass vs the equivalent chain of
   two channel-wise e3nn ``TensorProduct`` calls (intermediate degrees ≤ 2L, then ≤ L).

Each case runs in a fresh subprocess so that peak-RSS is that case's own.

Usage: python benchmarks/bench_gaunt.py [--lmax 2 3 4 6 8 10] [--threads 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

WORKER = r"""
import json, sys, time
import torch
torch.set_num_threads(int(sys.argv[4]))
kind, L, method, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[5]
Z, C = 256, 32
dtype = torch.float32
g = torch.Generator().manual_seed(0)
def inputs(rows):
    a = torch.randn(rows, C, (L + 1) ** 2, generator=g, dtype=dtype, requires_grad=mode == "train")
    b = torch.randn(rows, C, (L + 1) ** 2, generator=g, dtype=dtype, requires_grad=mode == "train")
    return a, b
x, y = inputs(1)  # warm-up on one row: imports, cached tables and e3nn's codegen
if method.startswith("tensormol"):
    from tensormol.ops import gaunt_product
    if method == "tensormol":
        from tensormol._ext import load_extension
        assert load_extension().loaded
    if kind == "pair":
        f = lambda: gaunt_product(x, y, lmax_out=L)
    else:
        f = lambda: gaunt_product(x, x, x, lmax_out=L)
else:
    import e3nn.o3 as o3
    irr = lambda lmax, mul=1: o3.Irreps([(mul, (l, (-1) ** l)) for l in range(lmax + 1)])
    if kind == "pair":
        tp = o3.FullTensorProduct(irr(L), irr(L),
                                  filter_ir_out=[o3.Irrep(l, (-1) ** l) for l in range(L + 1)])
        f = lambda: tp(x, y)
    else:
        def channelwise(a, b, out):
            ia, ib, io = irr(a, C), irr(b, C), irr(out, C)
            ins = [(i1, i2, i3, "uuu", False)
                   for i1, (_, r1) in enumerate(ia) for i2, (_, r2) in enumerate(ib)
                   for i3, (_, r3) in enumerate(io)
                   if r3 in r1 * r2 and (r1.l + r2.l + r3.l) % 2 == 0]
            return o3.TensorProduct(ia, ib, io, ins)
        tp1, tp2 = channelwise(L, L, 2 * L), channelwise(2 * L, L, L)
        # e3nn's channel-wise layout is (batch, irreps with multiplicity C): mul-major blocks.
        xe_of = lambda a: torch.cat([a[:, :, l * l:(l + 1) ** 2].reshape(a.shape[0], -1)
                                     for l in range(L + 1)], 1)
        xe = xe_of(x)
        f = lambda: tp2(tp1(xe, xe), xe)
if mode == "train":
    inner = f
    f = lambda: inner().square().sum().backward()
sys.path.insert(0, sys.argv[6])
from _rss import reset_peak_rss, rss_mib
f()
x, y = inputs(Z)  # the measured inputs (the lambdas read these globals at call time)
if kind != "pair" and method == "e3nn":
    xe = xe_of(x)
base = rss_mib("VmRSS")
reset_peak_rss()
times = []
budget = time.perf_counter() + 20.0
for _ in range(5):
    t = time.perf_counter(); f(); times.append(time.perf_counter() - t)
    if time.perf_counter() > budget:
        break
print(json.dumps({"time": min(times), "mem_mb": rss_mib("VmHWM") - base}))
"""


def run_case(kind: str, L: int, method: str, threads: int, timeout: float,
             env: dict[str, str] | None = None, mode: str = "forward") -> dict | None:
    try:
        out = subprocess.run([sys.executable, "-c", WORKER, kind, str(L), method, str(threads),
                              mode, str(Path(__file__).parent)],
                             capture_output=True, text=True, timeout=timeout, check=True,
                             env=None if env is None else {**os.environ, **env})
    except subprocess.TimeoutExpired:
        return None
    except subprocess.CalledProcessError as err:
        print(err.stderr[-2000:], file=sys.stderr)
        raise
    return json.loads(out.stdout.strip().splitlines()[-1])


def _route(L: int, inputs: int = 2, compiled: bool = True) -> str:
    """The route "auto" takes (the kernel registry's rule; this process never loads the
    extension, so without ``compiled`` it is the torch-only choice)."""
    from tensormol.ops import resolve_gaunt_backend

    if compiled:
        return "grid kernel"
    return resolve_gaunt_backend((L,) * inputs, L).backend


def fit_exponent(ls: list[int], ts: list[float]) -> float:
    """Least-squares slope of log t against log L."""
    xs = [math.log(v) for v in ls]
    ys = [math.log(v) for v in ts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    num = sum((a - mx) * (b - my) for a, b in zip(xs, ys))
    den = sum((a - mx) ** 2 for a in xs)
    return num / den


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lmax", type=int, nargs="+", default=[2, 3, 4, 6, 8, 10])
    ap.add_argument("--manybody-lmax", type=int, nargs="+", default=[2, 3, 4, 6])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--env", nargs="*", default=[], metavar="KEY=VALUE",
                    help="environment of the timed processes, e.g. GLIBC_TUNABLES=... (see "
                         "RESULTS: on VMs where page faults are expensive, glibc returning "
                         "freed blocks to the OS dominates the wall time of large tensors)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "gaunt.md"))
    args = ap.parse_args()
    env = dict(e.split("=", 1) for e in args.env) or None
    lines = [f"Batch 256 × 32 channels, float32, {args.threads} threads, best of ≤5 runs; "
             "memory = peak RSS of the timed calls above the RSS after a one-row warm-up call "
             "(inputs excluded; outputs, gradients and temporaries), each case in its own "
             "process. \"compiled\": tensormol with "
             "its extension loaded (route: fused sphere-grid kernel); \"torch only\": without "
             "it (dense contraction up to L = 4, torus Fourier route above).", "",
             "### Two-input product, degrees 0..L → 0..L (even paths)", "",
             "| L | tensormol compiled (ms) | tensormol torch only (ms) | e3nn FullTensorProduct "
             "(ms) | speed-up compiled | speed-up torch only | fwd+bwd: compiled / e3nn (ms) "
             "| fwd+bwd speed-up | MB compiled / torch only / e3nn |",
             "|---|---|---|---|---|---|---|---|---|"]
    fits: dict[str, tuple[list[int], list[float]]] = {
        "tensormol compiled": ([], []), "tensormol torch only": ([], []), "e3nn": ([], [])}

    def ms(r: dict | None) -> str:
        return f"{r['time'] * 1e3:.1f}" if r else "timeout"

    def ratio(a: dict | None, b: dict | None) -> str:
        return f"{b['time'] / a['time']:.1f}×" if a and b else "n/a"

    def mb(r: dict | None) -> str:
        return f"{r['mem_mb']:.0f}" if r else "-"

    for L in args.lmax:
        r_c = run_case("pair", L, "tensormol", args.threads, args.timeout, env)
        r_t = run_case("pair", L, "tensormol-torch", args.threads, args.timeout, env)
        r_e = run_case("pair", L, "e3nn", args.threads, args.timeout, env)
        b_c = run_case("pair", L, "tensormol", args.threads, args.timeout, env, mode="train")
        b_e = run_case("pair", L, "e3nn", args.threads, args.timeout, env, mode="train")
        for name, r in (("tensormol compiled", r_c), ("tensormol torch only", r_t),
                        ("e3nn", r_e)):
            if r:
                fits[name][0].append(L)
                fits[name][1].append(r["time"])
        row = (f"| {L} | {ms(r_c)} | {ms(r_t)} ({_route(L, 2, False)}) | {ms(r_e)} | "
               f"{ratio(r_c, r_e)} | {ratio(r_t, r_e)} | {ms(b_c)} / {ms(b_e)} | "
               f"{ratio(b_c, b_e)} | {mb(r_c)} / {mb(r_t)} / {mb(r_e)} |")
        lines.append(row)
        print(row, flush=True)
    lines.append("")
    for name, (ls, ts) in fits.items():
        if len(ls) >= 3:
            lines.append(f"Fitted time ∝ L^p over L = {ls[0]}..{ls[-1]}: {name} p = "
                         f"{fit_exponent(ls, ts):.2f}")
    lines += ["", "### Many-body product ν = 3 (x ⊗ x ⊗ x), degrees 0..L → 0..L", "",
              "| L | tensormol compiled, one call (ms) | tensormol torch only (ms) "
              "| e3nn chain of 2 channel-wise TPs (ms) | speed-up compiled "
              "| speed-up torch only |", "|---|---|---|---|---|---|"]
    for L in args.manybody_lmax:
        r_c = run_case("triple", L, "tensormol", args.threads, args.timeout, env)
        r_t = run_case("triple", L, "tensormol-torch", args.threads, args.timeout, env)
        r_e = run_case("triple", L, "e3nn", args.threads, args.timeout, env)
        row = (f"| {L} | {ms(r_c)} | {ms(r_t)} ({_route(L, 3, False)}) | {ms(r_e)} | "
               f"{ratio(r_c, r_e)} | {ratio(r_t, r_e)} |")
        lines.append(row)
        print(row, flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python benchmarks/bench_gaunt.py", *sys.argv[1:]])
    Path(args.out).write_text(f"Command: `{command}` ({time.strftime('%Y-%m-%d')})\n\n" + text)


if __name__ == "__main__":
    main()
