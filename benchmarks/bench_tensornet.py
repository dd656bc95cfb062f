"""TensorNet speed, memory and equivalence: tensormol against TorchMD-Net, side by side.

Both run TensorNet at TorchMD-Net's standard size (128 channels, 2 layers, 32 exp-normal radial
functions, 5 Å cutoff, O(3)), in float32, energy + forces, with the same number of threads, on the
same inputs (saved to a temporary file):

* a batch of 64 aspirin molecules (RDKit conformer of CC(=O)OC1=CC=CC=C1C(=O)O with hydrogens,
  each copy perturbed by Gaussian noise of 0.05 Å): molecules per second;
* a periodic box of 500 water molecules (1,500 atoms, 1.0 g/cm³): atom-steps per second.

TorchMD-Net runs in its own virtual environment (it never shares a process with tensormol), through
``benchmarks/_tensornet_reference.py``. Set it up with a pinned torch first, e.g.::

    python3.11 -m venv /tmp/tmdnet-venv
    /tmp/tmdnet-venv/bin/pip install torch==2.13.0
    /tmp/tmdnet-venv/bin/pip install torchmd-net==3.1.0

Each measurement runs in a fresh process per implementation, alternating between the two for
``--rounds`` rounds; the best wall time and the best process CPU time of all repeats are kept (on a
shared machine the best is the least disturbed). Peak memory is the growth of the peak resident set
size over the state after a small warm-up input.

Equivalence: TorchMD-Net's weights are copied into tensormol's TensorNet (same parameter names up
to a fixed map, same count), and forces and energy differences are compared on the aspirin batch
and the water box, for O(3) and SO(3).

Usage::

    python benchmarks/bench_tensornet.py [--reference-python /tmp/tmdnet-venv/bin/python]
        [--threads 2] [--rounds 2] [--repeats 3] [--write benchmarks/results/tensornet_speed.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _rss import reset_peak_rss, rss_mib

HERE = Path(__file__).resolve().parent
REFERENCE_WORKER = HERE / "_tensornet_reference.py"
ASPIRIN_SMILES = "CC(=O)OC1=CC=CC=C1C(=O)O"
CUTOFF = 5.0


# ------------------------------------------------------------------------------------ inputs
def aspirin_batch(n_molecules: int = 64, noise: float = 0.05, seed: int = 0):
    """(z, positions Å, batch) of ``n_molecules`` perturbed copies of an RDKit aspirin conformer."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(ASPIRIN_SMILES))
    if AllChem.EmbedMolecule(mol, randomSeed=42) != 0:
        raise RuntimeError("RDKit could not embed aspirin")
    AllChem.MMFFOptimizeMolecule(mol)
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    pos = mol.GetConformer().GetPositions()
    rng = np.random.default_rng(seed)
    copies = pos[None] + noise * rng.standard_normal((n_molecules, *pos.shape))
    batch = np.repeat(np.arange(n_molecules), len(z))
    return np.tile(z, n_molecules), copies.reshape(-1, 3), batch


def water_box(n_water: int = 500, density: float = 1.0, seed: int = 0):
    """(z, positions Å, cell Å) of ``n_water`` rigid waters on a jittered grid, random
    orientations, in a cubic box of ``density`` g/cm³."""
    from tensormol.units import AVOGADRO

    rng = np.random.default_rng(seed)
    molar_mass = 15.999 + 2 * 1.008
    length = (n_water * molar_mass / AVOGADRO / density * 1e24) ** (1.0 / 3.0)  # Å
    m = int(np.ceil(n_water ** (1.0 / 3.0)))
    grid = (np.stack(np.meshgrid(*[np.arange(m)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5)
    sites = grid[rng.permutation(len(grid))[:n_water]] * (length / m)
    oh, angle = 0.9572, np.deg2rad(104.52)
    local = np.array([[0.0, 0.0, 0.0], [oh, 0.0, 0.0], [oh * np.cos(angle), oh * np.sin(angle), 0]])
    pos = []
    for site in sites:
        q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        pos.append(site + local @ q.T)
    z = np.tile(np.array([8, 1, 1], dtype=np.int64), n_water)
    return z, np.concatenate(pos), np.eye(3) * length


def save_inputs(path: Path, z, pos, batch, box, *, group: str, threads: int, repeats: int,
                warm: int, mode: str = "time", seed: int = 0, warmup: int = 1,
                precision: int = 32) -> None:
    np.savez(
        path, z=z, pos=pos, batch=batch, box=box if box is not None else np.zeros((0,)),
        group=group, seed=seed, threads=threads, repeats=repeats, warmup=warmup, mode=mode,
        cutoff=CUTOFF, warm_z=z[:warm], warm_pos=pos[:warm], warm_batch=batch[:warm],
        precision=precision,
    )


# ------------------------------------------------------------------------------------ tensormol
def build_tensormol(group: str = "O(3)", seed: int = 0, dtype: str = "float32"):
    import torch

    from tensormol.models import TensorNet

    torch.manual_seed(seed)
    return TensorNet(
        atomic_numbers=[1, 6, 8], hidden_channels=128, num_layers=2, num_rbf=32,
        rbf_type="expnorm", activation="silu", cutoff_upper=CUTOFF, max_z=128,
        equivariance_invariance_group=group, dtype=dtype,
    )


def tensormol_batch(z, pos, batch, box):
    import torch

    from tensormol import keys as K

    out = {
        K.POSITIONS: torch.as_tensor(pos, dtype=torch.float64),
        K.ATOMIC_NUMBERS: torch.as_tensor(z, dtype=torch.int64),
        K.BATCH: torch.as_tensor(batch, dtype=torch.int64),
    }
    if box is not None and np.size(box):
        out[K.CELL] = torch.as_tensor(box, dtype=torch.float64).reshape(1, 3, 3)
        out[K.PBC] = torch.ones(1, 3, dtype=torch.bool)
    return out


def worker(inputs: str, out_path: str) -> None:
    """Time tensormol on saved inputs (the counterpart of ``_tensornet_reference.py``)."""
    import torch

    d = np.load(inputs)
    torch.set_num_threads(int(d["threads"]))
    model = build_tensormol(str(d["group"]), int(d["seed"])).eval()
    box = d["box"] if d["box"].size else None
    batch = tensormol_batch(d["z"], d["pos"], d["batch"], box)
    warm = tensormol_batch(d["warm_z"], d["warm_pos"], d["warm_batch"], box)
    model(warm)
    reset_peak_rss()
    base = rss_mib("VmRSS")
    for _ in range(int(d["warmup"])):
        model(batch)
    times, cpu_times = [], []
    for _ in range(int(d["repeats"])):
        t0, c0 = time.perf_counter(), time.process_time()
        model(batch)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    peak = rss_mib("VmHWM")
    result = {
        "torch": torch.__version__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "times": times, "cpu_times": cpu_times,
        "peak_rss_growth_mib": peak - base, "peak_rss_mib": peak,
    }
    Path(out_path).write_text(json.dumps(result))


# ------------------------------------------------------------------------------------ equivalence
_TOP_LEVEL = {
    "representation_model.linear.": "linear.",
    "representation_model.out_norm.": "out_norm.",
    "output_model.output_network.layers.": "output_network.",
    "representation_model.distance_expansion.": "distance_expansion.",
}


def map_torchmdnet_state(state: dict) -> dict:
    """Rename TorchMD-Net TensorNet weights to tensormol's (the architectures match one to one)."""
    out = {}
    for key, value in state.items():
        if key in ("mean", "std") or key.startswith("representation_model.distance."):
            continue
        new = None
        for old, rep in _TOP_LEVEL.items():
            if key.startswith(old):
                new = rep + key[len(old):]
        if new is None and key.startswith("representation_model.tensor_embedding."):
            rest = key[len("representation_model.tensor_embedding."):]
            for k in (1, 2, 3):
                rest = rest.replace(f"distance_proj{k}.", f"distance_proj.{k - 1}.")
            new = "tensor_embedding." + rest
        if new is None and key.startswith("representation_model.layers."):
            new = key[len("representation_model."):]
        if new is None:
            raise KeyError(f"no tensormol counterpart for TorchMD-Net weight {key!r}")
        out[new] = value
    return out


def check_equivalence(ref_python: str, tmp: Path, threads: int) -> list[dict]:
    import torch

    from tensormol import keys as K

    rows = []
    za, pa, ba = aspirin_batch(8)
    zw, pw, cw = water_box()
    cases = [("aspirin x8", za, pa, ba, None), ("water box", zw, pw, np.zeros(len(zw), int), cw)]
    # float64 separates a real difference from rounding: the SO(3) variant's reflection-odd terms
    # are ~1e-6 of the energy at initialisation, below float32 noise.
    for group, precision in (("O(3)", 32), ("SO(3)", 32), ("O(3)", 64), ("SO(3)", 64)):
        for name, z, pos, batch, box in cases:
            if precision == 64 and name == "water box":
                continue
            inp, out = tmp / "eq.npz", tmp / "eq.json"
            save_inputs(inp, z, pos, batch, box, group=group, threads=threads, repeats=1,
                        warm=len(z), mode="weights", precision=precision)
            _run([ref_python, str(REFERENCE_WORKER), str(inp), str(out)])
            ref = torch.load(tmp / "eq.pt", weights_only=False)
            info = json.loads(out.read_text())
            model = build_tensormol(group, dtype=f"float{precision}").eval()
            state = model.state_dict()  # keeps tensormol's own buffers (species, statistics)
            mapped = map_torchmdnet_state(ref["state_dict"])
            unknown = sorted(set(mapped) - set(state))
            untouched = sorted(k for k in state if k not in mapped and "tensor_embedding" in k)
            if unknown or untouched:
                raise RuntimeError(f"weight map mismatch: {unknown} / {untouched}")
            state.update(mapped)
            model.load_state_dict(state, strict=True)
            res = model(tensormol_batch(z, pos, batch, box))
            f_ref, e_ref = ref["forces"].reshape(-1, 3), ref["energy"].reshape(-1)
            df = float((res[K.FORCES] - f_ref).abs().max())
            offset = e_ref - res[K.ENERGY]  # per-composition constant (isolated-atom outputs)
            rows.append({
                "group": group, "input": name, "dtype": f"float{precision}",
                "max_force_diff": df, "max_force": float(f_ref.abs().max()),
                "energy_offset_spread": float(offset.max() - offset.min()) if len(offset) > 1
                else float("nan"),
                "parameters_tensormol": sum(p.numel() for p in model.parameters()),
                "parameters_torchmdnet": info["parameters"],
            })
    return rows


# ------------------------------------------------------------------------------------ timing
def _run(cmd: list[str], env_extra: dict[str, str] | None = None) -> None:
    env = dict(os.environ, PYTHONWARNINGS="ignore", **(env_extra or {}))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"command failed: {shlex.join(cmd)}\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-3000:]}")


def measure(ref_python: str, tmp: Path, threads: int, rounds: int, repeats: int,
            only: str | None, env: dict[str, str]) -> dict:
    za, pa, ba = aspirin_batch(64)
    zw, pw, cw = water_box()
    workloads = {
        "aspirin": (za, pa, ba, None, 21, 64, "molecules/s"),
        "water": (zw, pw, np.zeros(len(zw), dtype=np.int64), cw, 30, len(zw), "atom-steps/s"),
    }
    results = {}
    for name, (z, pos, batch, box, warm, count, unit) in workloads.items():
        if only and name != only:
            continue
        inp = tmp / f"{name}.npz"
        save_inputs(inp, z, pos, batch, box, group="O(3)", threads=threads, repeats=repeats,
                    warm=warm)
        runs: dict[str, list[dict]] = {"torchmdnet": [], "tensormol": []}
        for r in range(rounds):
            for impl in ("torchmdnet", "tensormol") if r % 2 == 0 else ("tensormol", "torchmdnet"):
                out = tmp / f"{name}_{impl}_{r}.json"
                if impl == "torchmdnet":
                    cmd = [ref_python, str(REFERENCE_WORKER), str(inp), str(out)]
                else:
                    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(inp),
                           str(out)]
                _run(cmd, env)
                runs[impl].append(json.loads(out.read_text()))
                print(f"  {name} round {r} {impl}: wall {min(runs[impl][-1]['times']):.3f} s, "
                      f"cpu {min(runs[impl][-1]['cpu_times']):.3f} s", flush=True)
        summary = {}
        for impl, rs in runs.items():
            wall = min(min(x["times"]) for x in rs)
            cpu = min(min(x["cpu_times"]) for x in rs)
            summary[impl] = {
                "wall_s": wall, "cpu_s": cpu, "throughput": count / wall,
                "throughput_cpu": count / cpu,
                "peak_rss_growth_mib": max(x["peak_rss_growth_mib"] for x in rs),
                "parameters": rs[0]["parameters"],
                "extra": {k: rs[0][k] for k in ("torchmdnet", "torchmdnet_optimized_ops", "torch")
                          if k in rs[0]},
            }
        summary["unit"] = unit
        summary["n_atoms"] = len(z)
        results[name] = summary
    return results


# ------------------------------------------------------------------------------------ report
def render(results: dict, equivalence: list[dict], args: argparse.Namespace, load: tuple) -> str:
    lines = [
        "# TensorNet speed: tensormol vs TorchMD-Net",
        "",
        "Produced by:",
        "",
        "```",
        " ".join(["python benchmarks/bench_tensornet.py"] + args.argv),
        "```",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"`torch.set_num_threads({args.threads})` and OMP_WAIT_POLICY={args.omp_wait_policy} in "
        f"both; load average at start/end {load[0]:.1f} / {load[1]:.1f} (the machine is shared "
        "with other jobs).",
    ]
    any_ref = next(iter(results.values()))["torchmdnet"]["extra"] if results else {}
    if any_ref:
        lines.append(
            f"TorchMD-Net {any_ref.get('torchmdnet', '?')} (warp kernels: "
            f"{any_ref.get('torchmdnet_optimized_ops', '?')}), torch {any_ref.get('torch', '?')}, "
            "in its own venv; tensormol in pure PyTorch (no compiled extension)."
        )
    lines += [
        "",
        "TensorNet 128 channels, 2 layers, 32 exp-normal RBF, 5 Å cutoff, O(3), float32, energy + "
        "forces. Throughput from the best wall time (and, in brackets, from the best process CPU "
        "time, which is less sensitive to other load on a shared machine). Peak memory: growth of "
        "the peak RSS over the state after a small warm-up input.",
        "",
        "| workload | unit | TorchMD-Net | tensormol | ratio | ratio (CPU time) "
        "| peak MiB TorchMD-Net | peak MiB tensormol |",
        "|---|---|---|---|---|---|---|---|",
    ]
    labels = {"aspirin": "64 aspirin (1,344 atoms)", "water": "water box, 1,500 atoms, periodic"}
    for name, r in results.items():
        t, m = r["torchmdnet"], r["tensormol"]
        lines.append(
            f"| {labels[name]} | {r['unit']} | {t['throughput']:.1f} ({t['throughput_cpu']:.1f}) "
            f"| {m['throughput']:.1f} ({m['throughput_cpu']:.1f}) "
            f"| {m['throughput'] / t['throughput']:.2f}x "
            f"| {m['throughput_cpu'] / t['throughput_cpu']:.2f}x "
            f"| {t['peak_rss_growth_mib']:.0f} | {m['peak_rss_growth_mib']:.0f} |"
        )
    if results:
        r0 = next(iter(results.values()))
        lines += ["", f"Parameters: TorchMD-Net {r0['torchmdnet']['parameters']:,}, tensormol "
                      f"{r0['tensormol']['parameters']:,}."]
    if equivalence:
        lines += [
            "",
            "## Equivalence (TorchMD-Net weights loaded into tensormol)",
            "",
            "Energies differ by a per-composition constant by design (tensormol subtracts the "
            "network's output for an isolated atom of each element, so an isolated atom has "
            "exactly its reference energy); the spread of that offset over the molecules of a "
            "batch, and the forces, must agree to float32 precision.",
            "",
            "| group | dtype | input | max abs force diff (eV/Å) | max abs force (eV/Å) | energy "
            "offset spread (eV) | parameters (TorchMD-Net / tensormol) |",
            "|---|---|---|---|---|---|---|",
        ]
        for e in equivalence:
            one = e["energy_offset_spread"] != e["energy_offset_spread"]  # NaN: one structure
            spread = "n/a (one structure)" if one else f"{e['energy_offset_spread']:.2e}"
            lines.append(
                f"| {e['group']} | {e['dtype']} | {e['input']} | {e['max_force_diff']:.2e} | "
                f"{e['max_force']:.3g} | {spread} | {e['parameters_torchmdnet']:,} / "
                f"{e['parameters_tensormol']:,} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", nargs=2, metavar=("INPUTS", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--reference-python", default="/tmp/tmdnet-venv/bin/python")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("aspirin", "water"))
    parser.add_argument("--skip-equivalence", action="store_true")
    parser.add_argument("--write", metavar="MARKDOWN", help="write the report there")
    parser.add_argument(
        "--omp-wait-policy", default="PASSIVE", choices=("PASSIVE", "ACTIVE", "default"),
        help="OMP_WAIT_POLICY of both workers (default PASSIVE: on a shared, oversubscribed "
             "machine, spinning OpenMP threads stall every parallel region)")
    args = parser.parse_args()
    args.argv = sys.argv[1:]
    if args.worker:
        worker(*args.worker)
        return
    if not Path(args.reference_python).exists():
        sys.exit(f"TorchMD-Net's python {args.reference_python!r} does not exist; see the module "
                 "docstring for how to set up its venv")
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        equivalence = [] if args.skip_equivalence else check_equivalence(
            args.reference_python, tmp, args.threads)
        for e in equivalence:
            print(json.dumps(e))
        env = {} if args.omp_wait_policy == "default" else {
            "OMP_WAIT_POLICY": args.omp_wait_policy}
        results = measure(args.reference_python, tmp, args.threads, args.rounds, args.repeats,
                          args.only, env)
    report = render(results, equivalence, args, (load0, os.getloadavg()[0]))
    print(report)
    if args.write:
        Path(args.write).write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
