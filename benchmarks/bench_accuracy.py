"""TensorNet accuracy: tensormol against TorchMD-Net, trained the same way on the same splits.

Both implementations are trained by one shared plain-PyTorch loop (``_accuracy_worker.py``; it runs
in TorchMD-Net's own venv for TorchMD-Net, never importing tensormol), so the only difference is the
model code: same data, seeded split (950 train / 50 val / 1,000 test frames), batches, loss
(0.05 MSE(E) + 0.95 MSE(F), TorchMD-Net's rMD17 weights), Adam at 1e-3, ReduceLROnPlateau (factor
0.8, patience 5), epoch budget and float32. Three seeds per molecule; the seed sets the split, the
initial weights and the batch order. The weights of the best validation epoch are tested.

Every run writes its own JSON under ``--work``; a rerun skips finished runs (resume after a kill).

Usage::

    python benchmarks/bench_accuracy.py [--molecules ethanol aspirin] [--seeds 0 1 2]
        [--epochs ethanol=20 aspirin=10] [--hidden 64] [--jobs 1]
        [--impls tensormol torchmdnet gauntnet] [--gaunt-hidden 32 --gaunt-lmax 2]
        [--reference-python /tmp/tmdnet-venv/bin/python]
        [--write benchmarks/results/tensornet_accuracy.md]

Cost on one 2-core machine at the defaults: about two hours (both cores busy with ``--jobs 2``).

TorchMD-Net's venv: see ``bench_tensornet.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKER = HERE / "_accuracy_worker.py"


def export_npz(molecule: str, out: Path) -> Path:
    """Write ``data/<molecule>.xyz.gz`` as the worker's npz (z, R, E, F in eV and Å)."""
    from tensormol.data import read_dataset

    path = out / f"{molecule}.npz"
    if path.exists():
        return path
    ds = read_dataset(ROOT / "data" / f"{molecule}.xyz.gz")
    n, nf = int(ds.num_atoms[0]), len(ds)
    if not bool((ds.num_atoms == n).all()):
        raise ValueError(f"{molecule}: frames of different sizes; the worker needs one molecule")
    np.savez(path, z=ds.atomic_numbers[:n].numpy(), R=ds.positions.reshape(nf, n, 3).numpy(),
             E=ds.labels["energy"].reshape(-1).numpy(),
             F=ds.labels["forces"].reshape(nf, n, 3).numpy())
    return path


def run_one(python: str, data: Path, out: Path, impl: str, seed: int, epochs: int,
            model_args: list[str], log: Path) -> dict:
    if out.exists():
        return json.loads(out.read_text())
    cmd = [python, str(WORKER), str(data), str(out) + ".part", "--impl",
           "tensormol" if impl == "tensormol_paired" else impl, "--seed",
           str(seed), "--epochs", str(epochs), "--threads", "1", *model_args]
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE",
               PYTHONWARNINGS="ignore")
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{impl} seed {seed} on {data.name} failed; see {log}")
    os.replace(str(out) + ".part", out)  # only complete results count as finished
    return json.loads(out.read_text())


def _stats(values: list[float]) -> str:
    v = np.asarray(values) * 1000.0
    spread = f" ± {v.std(ddof=1):.1f}" if len(v) > 1 else ""
    return f"{v.mean():.1f}{spread}"


IMPLS = ("torchmdnet", "tensormol_paired", "tensormol", "gauntnet")


def _label(r: dict) -> str:
    st = r["settings"]
    if r["impl"] == "torchmdnet":
        return f"TorchMD-Net 3.1.0 TensorNet ({st['hidden']} ch)"
    if r["impl"] in ("tensormol", "tensormol_paired") and st.get("init_from_torchmdnet"):
        return f"tensormol TensorNet ({st['hidden']} ch), TorchMD-Net's initial weights"
    if r["impl"] in ("tensormol", "tensormol_paired"):
        return f"tensormol TensorNet ({st['hidden']} ch), own initial weights"
    opts = "".join(f", {o}" for o in st.get("gaunt_option") or [])
    if st.get("compiled"):
        opts += ", compiled kernel"
    return (f"tensormol GauntNet ({st['hidden']} ch, L={st['lmax']}, "
            f"ν={st['correlation']}{opts})")


def _ordered(by_label: dict) -> list[str]:
    """Labels in the order of IMPLS, then by name (e.g. GauntNet widths)."""
    return sorted(by_label, key=lambda lab: (IMPLS.index(by_label[lab][0]["impl"]), lab))


def _without_note(argv: list[str]) -> list[str]:
    """The command line minus ``--note`` and its lines (they are printed separately)."""
    out, skipping = [], False
    for a in argv:
        if a.startswith("--"):
            skipping = a == "--note"
        if not skipping:
            out.append(a)
    return out


def render(results: dict, args: argparse.Namespace) -> str:
    lines = [
        "# TensorNet accuracy: tensormol vs TorchMD-Net",
        "",
        "Produced by:",
        "",
        "```",
        "python benchmarks/bench_accuracy.py " + " ".join(_without_note(sys.argv[1:])),
        *(f"# {line}" for line in args.note),
        "```",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, one thread per training run. "
        "Both models trained by the same loop (`benchmarks/_accuracy_worker.py`): same seeded "
        "split (950 train / 50 val / 1,000 test frames of the bundled GFN2-xTB 500 K sets), "
        "batch 16, loss 0.05 MSE(E) + 0.95 MSE(F), Adam 1e-3, ReduceLROnPlateau (0.8, patience "
        f"5), float32, TensorNet O(3) with {args.hidden} channels, 2 layers, 32 exp-normal RBF, "
        "5 Å cutoff. Test errors of the best-validation weights, in meV and meV/Å, mean ± "
        "standard deviation over the seeds; epoch time is the mean wall time of one training "
        "epoch (both run at the same time on the shared machine, one thread each).",
        "",
        "Two tensormol rows: with its own random initial weights (independent draws, same "
        "distributions as TorchMD-Net's, parameter by parameter) and, paired, starting from "
        "exactly TorchMD-Net's initial weights of the same seed (loaded through the weight map of "
        "bench_tensornet.py): the paired rows isolate the implementation from the luck of the "
        "draw. GauntNet (tensormol's Gaunt-product potential) is trained by the same loop with "
        "its own width, degree and body order (shown in its row).",
        "",
        "| molecule | epochs | seeds | model | parameters | energy MAE | force MAE "
        "| force RMSE | s / epoch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mol, by_label in results.items():
        for label in _ordered(by_label):
            rs = by_label[label]
            lines.append(
                f"| {mol} | {rs[0]['settings']['epochs']} | {len(rs)} | {label} "
                f"| {rs[0]['parameters']:,} | {_stats([r['test']['energy_mae'] for r in rs])} "
                f"| {_stats([r['test']['forces_mae'] for r in rs])} "
                f"| {_stats([r['test']['forces_rmse'] for r in rs])} "
                f"| {np.mean([np.mean(r['epoch_time_s']) for r in rs]):.1f} |"
            )
    lines += ["", "Test force MAE per seed (meV/Å):", ""]
    for mol, by_label in results.items():
        for label in _ordered(by_label):
            per = sorted((r["seed"], r["test"]["forces_mae"] * 1000) for r in by_label[label])
            lines.append(f"- {mol}, {label}: "
                         + "; ".join(f"seed {s}: {v:.1f}" for s, v in per))
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--molecules", nargs="+", default=["ethanol", "aspirin"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", nargs="+", default=["ethanol=20", "aspirin=10"],
                   help="MOLECULE=EPOCHS pairs")
    p.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    p.add_argument("--hidden", type=int, default=64, help="TensorNet channels")
    p.add_argument("--gaunt-hidden", type=int, nargs="+", default=[32],
                   help="GauntNet channels (one run set per value)")
    p.add_argument("--gaunt-lmax", type=int, default=2)
    p.add_argument("--gaunt-correlation", type=int, default=3)
    p.add_argument("--gaunt-options", nargs="*", default=[], metavar="KEY=VALUE",
                   help="further GauntNet config entries, e.g. radial_sh=true")
    p.add_argument("--gaunt-compiled", action="store_true",
                   help="GauntNet runs load the compiled extension (fused Gaunt kernel)")
    p.add_argument("--jobs", type=int, default=1, help="training runs at the same time")
    p.add_argument("--note", nargs="*", default=[],
                   help="lines shown under the command (e.g. the commands of runs made in parts)")
    p.add_argument("--render-only", action="store_true",
                   help="write the table from finished runs, train nothing")
    p.add_argument("--reference-python", default="/tmp/tmdnet-venv/bin/python")
    p.add_argument("--work", default="benchmarks/results/accuracy_runs")
    p.add_argument("--write", default=str(HERE / "results" / "tensornet_accuracy.md"))
    args = p.parse_args()
    epochs = {k: int(v) for k, v in (e.split("=") for e in args.epochs)}
    if not Path(args.reference_python).exists():
        sys.exit(f"TorchMD-Net's python {args.reference_python} not found; see the docstring of "
                 "bench_tensornet.py for how to set up its venv")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    jobs = []
    for mol in args.molecules:
        if mol not in epochs:
            sys.exit(f"no epoch budget for {mol}; pass --epochs {mol}=N")
        data = export_npz(mol, work)
        for seed in args.seeds:
            for impl in args.impls:
                py = args.reference_python if impl == "torchmdnet" else sys.executable
                if impl == "tensormol_paired":
                    init = work / f"init_torchmdnet_h{args.hidden}_s{seed}.pt"
                    if not init.exists():  # TorchMD-Net's initial weights for this seed
                        subprocess.run([args.reference_python, str(WORKER), str(data), "-",
                                        "--impl", "torchmdnet", "--seed", str(seed), "--hidden",
                                        str(args.hidden), "--save-init", str(init),
                                        "--init-only"], check=True, capture_output=True)
                    model_args = ["--hidden", str(args.hidden), "--init-from-torchmdnet",
                                  str(init)]
                    tag = f"{mol}_tensormol-paired_h{args.hidden}_e{epochs[mol]}_s{seed}"
                    jobs.append((mol, impl, py, data, work / f"{tag}.json", seed, epochs[mol],
                                 model_args, work / f"{tag}.log"))
                    continue
                if impl == "gauntnet":
                    for gh in args.gaunt_hidden:
                        model_args = ["--hidden", str(gh), "--lmax", str(args.gaunt_lmax),
                                      "--correlation", str(args.gaunt_correlation)]
                        if args.gaunt_options:
                            model_args += ["--gaunt-option", *args.gaunt_options]
                        if args.gaunt_compiled:
                            model_args.append("--compiled")
                        opts = "".join(f"_{o.replace('=', '-')}" for o in args.gaunt_options)
                        tag = (f"{mol}_{impl}_h{gh}_l{args.gaunt_lmax}"
                               f"_c{args.gaunt_correlation}{opts}_e{epochs[mol]}_s{seed}")
                        jobs.append((mol, impl, py, data, work / f"{tag}.json", seed,
                                     epochs[mol], model_args, work / f"{tag}.log"))
                    continue
                else:
                    model_args = ["--hidden", str(args.hidden)]
                    tag = f"{mol}_{impl}_h{args.hidden}_e{epochs[mol]}_s{seed}"
                jobs.append((mol, impl, py, data, work / f"{tag}.json", seed, epochs[mol],
                             model_args, work / f"{tag}.log"))
    t0 = time.time()
    results: dict = {m: {} for m in args.molecules}

    def go(j):
        mol, impl, py, data, out, seed, ep, model_args, log = j
        r = run_one(py, data, out, impl, seed, ep, model_args, log)
        r["impl"] = impl
        print(f"{mol} {impl} seed {seed}: test F-MAE {r['test']['forces_mae'] * 1000:.1f} meV/Å, "
              f"E-MAE {r['test']['energy_mae'] * 1000:.1f} meV ({time.time() - t0:.0f} s)",
              flush=True)
        return mol, impl, r

    if args.render_only:
        # Every finished run of these molecules (all variants), not only this command's jobs.
        for mol in args.molecules:
            for path in sorted(work.glob(f"{mol}_*.json")):
                r = json.loads(path.read_text())
                if r.get("impl") == "tensormol" and r["settings"].get("init_from_torchmdnet"):
                    r["impl"] = "tensormol_paired"
                results[mol].setdefault(_label(r), []).append(r)
        jobs = []
    with ThreadPoolExecutor(args.jobs) as pool:
        for mol, _impl, r in pool.map(go, jobs):
            results[mol].setdefault(_label(r), []).append(r)
    text = render(results, args)
    print(text)
    if args.write:
        Path(args.write).write_text(text)


if __name__ == "__main__":
    main()
