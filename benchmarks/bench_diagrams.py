"""Time the fast (diagram-wise) EquivariantLinear against its dense twin, k = l = 2.

For S_n (15 partition diagrams) and O(n) (3 Brauer diagrams), n = 10 … 50: forward, and forward
+ backward (random cotangent), of ``EquivariantLinear(group, n, 2, 2, c, c)`` on a batch of
``--batch`` inputs, float32. The dense backend builds ``W = Σ_d W_d ⊗ M_d`` (``c n² × c n²``) from
the stored spanning set at every call, as training must; the column "dense matvec" times only the
final product with a prebuilt ``W``, a lower bound for any dense method. Each entry is the best
of ``--repeats`` calls after warm-up, backends interleaved call by call so that background load
hits them alike. Outputs of both backends are compared on every row.

Usage::

    .venv/bin/python benchmarks/bench_diagrams.py [--repeats 10] [--threads 2] [--device cpu]
        [--clock wall|process]   # process: CPU time, for a machine shared with other jobs
    .venv/bin/python benchmarks/bench_diagrams.py --ranks   # the rank table (n <= 4, k+l <= 6)

Writes ``benchmarks/results/diagrams.md`` (or ``diagram_ranks.md`` with ``--ranks``).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import platform
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
# "process": CPU time of this process, robust to other jobs sharing the cores (use with
# --threads 1: with several threads it sums their time); "wall": perf_counter.
CLOCKS = {"wall": time.perf_counter, "process": time.process_time}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _best_times(fns: dict, repeats: int, device: str, clock) -> dict:
    for f in fns.values():
        f()
        f()
    _sync(device)
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            _sync(device)
            t0 = clock()
            f()
            _sync(device)
            best[k] = min(best[k], clock() - t0)
    return best


def _ratio(a: float, b: float) -> str:
    r = a / b
    return f"{r:.0f}×" if r >= 10 else f"{r:.1f}×"


def _row(group: str, n: int, args, gen: torch.Generator) -> tuple:
    """Time one (group, n): fast and dense forward, dense matvec, fast and dense fwd+bwd."""
    from tensormol.groups import EquivariantLinear

    device, c = args.device, args.channels
    torch.manual_seed(0)
    fast = EquivariantLinear(group, n, 2, 2, c, c, device=device)
    dense = EquivariantLinear(group, n, 2, 2, c, c, backend="dense", device=device)
    dense.load_state_dict(fast.state_dict())
    x = torch.randn(args.batch, n, n, c, generator=gen).to(device)
    xg = x.clone().requires_grad_(True)
    cot = torch.randn(args.batch, n, n, c, generator=gen).to(device)
    with torch.no_grad():
        w = dense.weight * dense.scales[:, None, None]
        wmat = torch.einsum("doc,dij->iojc", w, dense.product.basis).reshape(n * n * c, -1)
        ref = dense(x)
        err = float((fast(x) - ref).abs().max() / ref.abs().max())
    xf = x.reshape(args.batch, -1)

    def fwd(layer):
        def f():
            with torch.no_grad():
                layer(x)
        return f

    def fwdbwd(layer):
        def f():
            torch.autograd.grad(layer(xg), [xg, layer.weight], cot)
        return f

    def matvec():
        with torch.no_grad():
            xf @ wmat.T

    t = _best_times({"fast": fwd(fast), "dense": fwd(dense), "matvec": matvec,
                     "fast_b": fwdbwd(fast), "dense_b": fwdbwd(dense)},
                    args.repeats, device, CLOCKS[args.clock])
    return group, n, fast.num_weights, t, err


def bench_speed(args) -> str:
    gen = torch.Generator().manual_seed(0)
    rows = []
    for group in ("S_n", "O(n)"):
        for n in args.n:
            row = _row(group, n, args, gen)
            rows.append(row)
            t, err = row[3], row[4]
            print(f"{group:5s} n={n:3d}  fast {t['fast']*1e3:8.3f} ms  dense {t['dense']*1e3:9.3f}"
                  f" ms  matvec {t['matvec']*1e3:8.3f} ms  fwd+bwd fast {t['fast_b']*1e3:8.3f}"
                  f" dense {t['dense_b']*1e3:9.3f} ms  rel.diff {err:.1e}", flush=True)
    device = args.device
    dev = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() \
        or platform.machine()
    lines = [
        "# Diagram-wise (fast) vs dense EquivariantLinear, k = l = 2",
        "",
        f"{datetime.date.today()}, torch {torch.__version__}, device {device} ({dev}), "
        f"threads {torch.get_num_threads()}, {args.clock} clock, float32, batch {args.batch}, "
        f"c_in = c_out = {args.channels}; best of {args.repeats}.",
        "",
        "Dense = build W = Σ_d W_d ⊗ M_d from the stored spanning set, then W x (what a training "
        "step needs); dense matvec = W x alone with W prebuilt. Speed-up = dense / fast.",
        "",
        "| group | n | diagrams | fast fwd (ms) | dense fwd (ms) | dense matvec (ms) "
        "| speed-up fwd | fast fwd+bwd (ms) | dense fwd+bwd (ms) | speed-up fwd+bwd "
        "| max rel. diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for group, n, nd, t, err in rows:
        lines.append(
            f"| {group} | {n} | {nd} | {t['fast']*1e3:.3f} | {t['dense']*1e3:.2f} | "
            f"{t['matvec']*1e3:.2f} | {_ratio(t['dense'], t['fast'])} | {t['fast_b']*1e3:.3f} | "
            f"{t['dense_b']*1e3:.2f} | {_ratio(t['dense_b'], t['fast_b'])} | {err:.1e} |"
        )
    return "\n".join(lines) + "\n"


def _reference():
    spec = importlib.util.spec_from_file_location(
        "groups_reference", HERE.parent / "tests" / "groups" / "groups_reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def bench_ranks(args) -> str:
    """Spanning-set size, rank and the independently computed dimension, k = ⌊m/2⌋, l = m - k."""
    import networkx as nx

    from tensormol.groups import AutomorphismGroup, spanning_set

    ref = _reference()
    cases = [("S_n", n) for n in (1, 2, 3, 4)] + [("O(n)", n) for n in (1, 2, 3, 4)]
    cases += [("SO(n)", n) for n in (1, 2, 3, 4)] + [("Sp(n)", 2), ("Sp(n)", 4)]
    graphs = {"path P4": nx.path_graph(4), "cycle C5": nx.cycle_graph(5),
              "star K1,3": nx.star_graph(3), "complete K4": nx.complete_graph(4),
              "Petersen": nx.petersen_graph()}
    header = "| group | n | " + " | ".join(f"k+l={m}" for m in range(7)) + " |"
    lines = ["# Spanning sets: size / rank / dimension of Hom_G, k = ⌊(k+l)/2⌋", "",
             "Dimension computed independently of the spanning sets: Burnside's lemma for S_n and "
             "Aut(G), the Lie-algebra null space (weight-space reduced; plus a reflection for "
             "O(n)) for O(n), SO(n), Sp(n). Entry: size / rank / dim.", "", header,
             "|---|---:|" + "---:|" * 7]
    for kind, n in cases:
        cells = []
        for m in range(7):
            k, l = m // 2, m - m // 2
            s = spanning_set(kind, n, k, l)
            r = int(torch.linalg.matrix_rank(s.reshape(s.shape[0], -1))) if s.shape[0] else 0
            dim = (ref.burnside(ref.symmetric_group(n), m) if kind == "S_n"
                   else ref.lie_dimension(kind, n, k, l))
            assert r == dim
            cells.append(f"{s.shape[0]} / {r} / {dim}")
        lines.append(f"| {kind} | {n} | " + " | ".join(cells) + " |")
    for name, g in graphs.items():
        aut = AutomorphismGroup(g)
        cells = []
        for m in range(7):
            if aut.n ** m > 10**5:
                cells.append("–")
                continue
            num = aut.orbit_labels(m)[1]
            dim = ref.burnside(aut.elements, m)
            assert num == dim
            cells.append(f"{num} / {num} / {dim}")
        lines.append(f"| Aut({name}), order {aut.order} | {aut.n} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Aut(G) orbit matrices have disjoint supports, so size = rank.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--n", type=int, nargs="*", default=[10, 20, 30, 40, 50])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--ranks", action="store_true", help="write the rank table instead")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.ranks:
        text = bench_ranks(args)
        out = args.out or HERE / "results" / "diagram_ranks.md"
    else:
        text = bench_speed(args)
        out = args.out or HERE / "results" / "diagrams.md"
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
