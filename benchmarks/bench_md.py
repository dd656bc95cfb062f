"""MD benchmarks of tensormol's OpenMM coupling; figures to benchmarks/results/md.md.

Sections (run one or all; each writes benchmarks/results/md_<section>.json, then md.md is rendered
from every JSON present):

  nve        NVE (velocity Verlet) of ethanol with the trained fixture bundle, 0.5 fs: drift of
             the total energy (kJ/mol/ns per atom, linear fit) and its fluctuation
  ethanol    ns/day of pure-ML ethanol (Langevin, 0.5 fs), CPU platform
  t4_1ps     1 ps of configs/md_t4_l99a_mlmm.yaml (ML/MM stability)
  t4         ns/day of T4 lysozyme L99A with p-xylene in ML, the rest Amber (its prmtop) + OBC2
  overhead   per-step cost: bare model call vs PythonForce callback vs a whole OpenMM step
  torchmdnet ns/day of openmm-ml's own TorchMD-Net route (MLPotential("torchmdnet")) for
             TensorNet with the same hyperparameters, next to tensormol's, same system
  loaded     `tensormol md` on ethanol (fixture bundle, its default thread policy) alone and
             beside one busy process (`python -c 'while True: pass'`), alternating rounds;
             `--old-tree DIR` adds the same runs of another checkout (e.g. a `git worktree` of
             an older commit) through PYTHONPATH

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_md.py [section ...] [--threads 2]

TorchMD-Net is imported from /tmp/tmdnet-venv (appended to sys.path; same torch 2.13).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FIXTURE = ROOT / "tests" / "md" / "fixtures" / "ethanol_xylene.tmol"
TMDNET_SITE = "/tmp/tmdnet-venv/lib/python3.11/site-packages"
#: Hyperparameters of the speed comparison (TorchMD-Net's names on the right).
SPEED_PARAMS = dict(hidden_channels=64, num_layers=2, num_rbf=32, rbf_type="expnorm",
                    activation="silu", cutoff_lower=0.0, cutoff_upper=5.0, max_z=128,
                    equivariance_invariance_group="O(3)", dtype="float32")


def _t4_dir() -> Path:
    import importlib.util

    return Path(importlib.util.find_spec("openmmtools").origin).parent / "data" / \
        "T4-lysozyme-L99A-implicit"


def _ethanol_xyz(folder: Path) -> Path:
    import ase.io
    from ase.build import molecule

    path = folder / "ethanol.xyz"
    ase.io.write(path, molecule("CH3CH2OH"))
    return path


def _speed_bundle(folder: Path) -> Path:
    import torch

    from tensormol.export import save_bundle
    from tensormol.registry import MODELS

    torch.manual_seed(0)
    model = MODELS.get("tensornet")(atomic_numbers=[1, 6, 8], **SPEED_PARAMS)
    model.set_energy_statistics({1: -13.6, 6: -1029.0, 8: -2041.0}, scale=0.5)
    path = folder / "speed.tmol"
    save_bundle(model, path, name="tensornet")
    return path


def _ns_per_day(sim, steps: int, dt_fs: float, warm: int = 10) -> float:
    sim.step(warm)
    t0 = time.perf_counter()
    sim.step(steps)
    wall = time.perf_counter() - t0
    return dt_fs * 1e-6 * steps / wall * 86400.0


def _simulation(system, topology, positions, threads: int, dt_fs: float = 0.5):
    import openmm
    import openmm.app as app
    from openmm import unit

    integ = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond,
                                            dt_fs * unit.femtosecond)
    integ.setRandomNumberSeed(1)
    sim = app.Simulation(topology, system, integ, openmm.Platform.getPlatformByName("CPU"),
                         {"Threads": str(threads)})
    sim.context.setPositions(positions)
    sim.context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    return sim


# --------------------------------------------------------------------------------- sections
def bench_nve(args, tmp: Path) -> dict:
    from tensormol.md import load_md_config, run_md

    steps = int(round(args.nve_ps * 1000 / 0.5))
    cfg = load_md_config(structure=str(_ethanol_xyz(tmp)), model=str(FIXTURE), ensemble="nve",
                         timestep=0.5, temperature=300.0, steps=steps, report_interval=20,
                         trajectory_interval=0, checkpoint_interval=0, threads=args.threads,
                         minimize_max_iterations=200, output=str(tmp / "nve"))
    res = run_md(cfg, out=io.StringIO())
    rows = np.genfromtxt(tmp / "nve" / "energies.csv", delimiter=",", names=True)
    t_ns = rows["time_ps"] * 1e-3
    e = rows["total_kJ_mol"]
    slope = float(np.polyfit(t_ns, e, 1)[0])
    return {"system": "ethanol (9 atoms), vacuum", "model": "fixture bundle (GFN2-xTB)",
            "timestep_fs": 0.5, "steps": steps, "simulated_ps": steps * 0.5e-3,
            "drift_kJ_mol_per_ns_per_atom": slope / 9, "drift_kJ_mol_per_ns": slope,
            "total_energy_std_kJ_mol": float(e.std()),
            "total_energy_max_dev_kJ_mol": float(np.abs(e - e[0]).max()),
            "mean_temperature_K": float(rows["temperature_K"].mean()),
            "ns_per_day": res.ns_per_day}


def bench_ethanol(args, tmp: Path) -> dict:
    from tensormol.md import create_ml_system, load_structure

    s = load_structure(_ethanol_xyz(tmp))
    out = {"system": "ethanol (9 atoms), vacuum, Langevin 0.5 fs, CPU platform"}
    for label, bundle in (("fixture (16 ch, 1 layer)", FIXTURE),
                          ("speed (64 ch, 2 layers, 5 Å)", _speed_bundle(tmp))):
        sim = _simulation(create_ml_system(s, bundle), s.topology, s.positions, args.threads)
        out[f"ns_per_day[{label}]"] = _ns_per_day(sim, args.steps, 0.5)
    return out


def bench_t4(args, tmp: Path) -> dict:
    from tensormol.md import create_mlmm_system, load_structure, select_atoms

    d = _t4_dir()
    s = load_structure(d / "complex.prmtop", d / "complex.crd")
    lig = select_atoms(s.topology, "TMP")
    system = create_mlmm_system(s, FIXTURE, lig, forcefield="amber", solvent="obc2")
    sim = _simulation(system, s.topology, s.positions, args.threads, dt_fs=1.0)
    speed = _ns_per_day(sim, max(args.steps // 4, 20), 1.0, warm=3)
    from tensormol.md import create_mm_system

    mm_sys = create_mm_system(s, forcefield="amber", solvent="obc2")
    sim_mm = _simulation(mm_sys, s.topology, s.positions, args.threads, dt_fs=1.0)
    speed_mm = _ns_per_day(sim_mm, max(args.steps // 4, 20), 1.0, warm=3)
    return {"system": f"T4 L99A + p-xylene: {s.num_atoms} atoms, {len(lig)} ML (TMP), Amber "
                      "prmtop + OBC2, NoCutoff, Langevin 1 fs, CPU platform",
            "ns_per_day_mlmm": speed, "ns_per_day_mm_only": speed_mm}


def bench_overhead(args, tmp: Path) -> dict:
    import openmm
    import torch
    from ase.build import molecule

    from tensormol import keys as K
    from tensormol.export import load_bundle
    from tensormol.export._openmm_plugin import TensorMolForceCallback
    from tensormol.md import create_ml_system, load_structure

    a = molecule("CH3CH2OH")
    out = {"system": "ethanol (9 atoms), vacuum; per call / per step, ms"}
    for label, path in (("fixture", FIXTURE), ("speed", _speed_bundle(tmp))):
        bundle = load_bundle(path)
        model = bundle.build_model()
        batch = {K.POSITIONS: torch.tensor(a.get_positions()),
                 K.ATOMIC_NUMBERS: torch.tensor(a.get_atomic_numbers())}
        cb = TensorMolForceCallback(bundle, a.get_atomic_numbers(), False)
        pos_nm = a.get_positions() * 0.1
        s = load_structure(_ethanol_xyz(tmp))
        system = create_ml_system(s, bundle, remove_cm_motion=False)
        ctx = openmm.Context(system, openmm.VerletIntegrator(0.0005),
                             openmm.Platform.getPlatformByName("CPU"),
                             {"Threads": str(args.threads)})
        ctx.setPositions(s.positions)
        integ = ctx.getIntegrator()

        traced = TensorMolForceCallback(bundle, a.get_atomic_numbers(), False, graph="traced")
        traced.evaluate(pos_nm, None)  # trace once
        xt = torch.tensor(pos_nm, requires_grad=True)

        def bare_traced(t=traced._traced, x=xt):
            with torch.jit.optimized_execution(False):
                return torch.autograd.grad(t(x), x)

        # The callback runs the traced graph for small molecules (graph="auto"): the coupling
        # overhead is the OpenMM step minus the bare call of the graph it runs.
        fns = {"bare_model_ms": lambda m=model, b=batch: m(b, compute_forces=True),
               "bare_traced_graph_ms": bare_traced,
               "callback_ms": lambda c=cb, p=pos_nm: c.evaluate(p, None),
               "openmm_step_ms": lambda i=integ: i.step(1)}
        # Round robin, medians: the machine is shared, so the three are timed under the same
        # (changing) load and outliers do not bias the comparison.
        times = {k: [] for k in fns}
        for _ in range(3):
            for fn in fns.values():
                fn()
        for _ in range(args.steps):
            for k, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                times[k].append((time.perf_counter() - t0) * 1e3)
        res = {k: float(np.median(v)) for k, v in times.items()}
        res["callback_graph"] = "traced" if cb.uses_traced_graph else "eager"
        bare = res["bare_traced_graph_ms" if cb.uses_traced_graph else "bare_model_ms"]
        res["overhead_ms"] = res["openmm_step_ms"] - bare
        res["overhead_percent"] = 100.0 * res["overhead_ms"] / bare
        out[label] = res
        del ctx
    return out


def _torchmdnet_ckpt(folder: Path, params: dict) -> Path:
    import torch

    if TMDNET_SITE not in sys.path:
        sys.path.append(TMDNET_SITE)
    from torchmdnet.models.model import create_model

    hp = {"model": "tensornet", "precision": 32 if params["dtype"] == "float32" else 64,
          "embedding_dimension": params["hidden_channels"], "num_layers": params["num_layers"],
          "num_rbf": params["num_rbf"], "rbf_type": params["rbf_type"],
          "trainable_rbf": False, "activation": params["activation"],
          "cutoff_lower": params["cutoff_lower"], "cutoff_upper": params["cutoff_upper"],
          "max_z": params["max_z"], "max_num_neighbors": 64,
          "equivariance_invariance_group": params["equivariance_invariance_group"],
          "derivative": False, "atom_filter": -1, "prior_model": None, "output_model": "Scalar",
          "reduce_op": "sum", "static_shapes": True, "remove_ref_energy": False}
    torch.manual_seed(0)
    model = create_model(dict(hp))
    path = folder / "tmdnet_tensornet.ckpt"
    torch.save({"hyper_parameters": hp,
                "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, path)
    return path


def _water_xyz(folder: Path, n_water: int = 216) -> Path:
    """A periodic box of ``n_water`` waters at 1.0 g/cm³ (tensormol's data-generator builder)."""
    import ase
    import ase.io

    from tensormol.data._generate import build_box, prepare_structure

    box = build_box(prepare_structure(smiles="O", seed=0), n_water, density=1.0, seed=0)
    atoms = ase.Atoms(numbers=box.numbers, positions=box.positions, cell=box.cell, pbc=True)
    path = folder / f"water{n_water}.extxyz"
    ase.io.write(path, atoms, format="extxyz")
    return path


def bench_torchmdnet(args, tmp: Path) -> dict:
    """ns/day of tensormol's plugin and openmm-ml's TorchMD-Net route, same TensorNet size, on a
    molecule and a periodic box; the two alternate for ``--rounds`` rounds and the best of each
    is kept (the machine is shared)."""
    from openmmml import MLPotential

    from tensormol.md import create_ml_system, load_structure

    out = {"hyperparameters": SPEED_PARAMS, "threads": args.threads, "rounds": args.rounds,
           "systems": {}}
    ckpt = _torchmdnet_ckpt(tmp, SPEED_PARAMS)
    bundle = _speed_bundle(tmp)
    systems = {
        "ethanol (9 atoms), vacuum": (_ethanol_xyz(tmp), args.steps),
        "water box (216 H2O, 648 atoms, 18.6 Å, periodic)": (_water_xyz(tmp),
                                                             max(args.steps // 10, 10)),
    }
    for label, (path, steps) in systems.items():
        s = load_structure(path)
        res: dict = {"steps": steps}
        try:
            sims = {
                "tensormol": _simulation(create_ml_system(s, bundle), s.topology, s.positions,
                                         args.threads),
                "torchmdnet": _simulation(
                    MLPotential("torchmdnet", modelPath=str(ckpt)).createSystem(s.topology),
                    s.topology, s.positions, args.threads),
            }
            t0 = time.perf_counter()
            sims["torchmdnet"].step(3)  # first calls compile
            res["torchmdnet_first_steps_s"] = time.perf_counter() - t0
            for name in sims:
                res[f"ns_per_day_{name}"] = []
            for r in range(args.rounds):
                for name in (("tensormol", "torchmdnet") if r % 2 == 0
                             else ("torchmdnet", "tensormol")):
                    res[f"ns_per_day_{name}"].append(_ns_per_day(sims[name], steps, 0.5))
            res["speedup_best"] = (max(res["ns_per_day_tensormol"])
                                   / max(res["ns_per_day_torchmdnet"]))
            res["speedup_median"] = (float(np.median(res["ns_per_day_tensormol"]))
                                     / float(np.median(res["ns_per_day_torchmdnet"])))
        except Exception as err:  # report exactly why the reference route cannot run
            res["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
        out["systems"][label] = res
        print(label, json.dumps(res), flush=True)
    return out


def summarize_t4_run(folder: Path, ns_per_day: float | None = None) -> dict:
    """Stability figures of a finished ``configs/md_t4_l99a_mlmm.yaml`` run in ``folder``."""
    import openmm.app as app
    from openmm import unit

    rows = np.genfromtxt(folder / "energies.csv", delimiter=",", names=True)
    final = app.PDBFile(str(folder / "final.pdb"))
    lig = [a.index for a in final.topology.atoms() if a.residue.name == "TMP"]
    x = np.asarray(final.getPositions(asNumpy=True).value_in_unit(unit.angstrom))[lig]
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    return {"config": "configs/md_t4_l99a_mlmm.yaml (Langevin 300 K, 1 fs, OBC2, Amber prmtop; "
                      "p-xylene in ML with the fixture bundle)",
            "steps": int(rows["step"][-1]), "simulated_ps": float(rows["time_ps"][-1]),
            "potential_kJ_mol_first_last": [float(rows["potential_kJ_mol"][0]),
                                            float(rows["potential_kJ_mol"][-1])],
            "temperature_K_mean_last_half": float(rows["temperature_K"][len(rows) // 2:].mean()),
            "ligand_min_interatomic_A": float(d[np.triu_indices(len(lig), 1)].min()),
            "ligand_max_nearest_carbon_neighbour_A": float(np.sort(d[:8, :8], axis=1)[:, 1].max()),
            "ns_per_day": ns_per_day}


def bench_t4_1ps(args, tmp: Path) -> dict:
    from tensormol.md import load_md_config, run_md

    cfg = load_md_config(ROOT / "configs" / "md_t4_l99a_mlmm.yaml", output=str(tmp / "t4"),
                         threads=args.threads, checkpoint_interval=0)
    res = run_md(cfg, out=io.StringIO())
    return summarize_t4_run(tmp / "t4", res.ns_per_day)


SECTIONS = {"nve": bench_nve, "t4_1ps": bench_t4_1ps, "ethanol": bench_ethanol, "t4": bench_t4,
            "overhead": bench_overhead, "torchmdnet": bench_torchmdnet}


def _md_command_ns_per_day(tree: Path | None, steps: int, folder: Path) -> float:
    """ns/day printed by one `tensormol md` run of ethanol (no minimization, no DCD)."""
    import re
    import subprocess

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for var in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "TENSORMOL_NUM_THREADS"):
        env.pop(var, None)  # each tree's own thread behaviour, as a user runs it
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    cmd = [sys.executable, "-c", "import sys; from tensormol.cli.main import main; "
           "sys.exit(main())", "md", str(_ethanol_xyz(folder)), str(FIXTURE), "--steps",
           str(steps), "--report-interval", "10", "--trajectory-interval", "0",
           "--checkpoint-interval", "0", "--no-minimize", "-o", str(folder / "run")]
    import shutil

    shutil.rmtree(folder / "run", ignore_errors=True)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    found = re.search(r"\(([\d.]+) ns/day\); step", out.stdout)
    if not found:
        raise RuntimeError(f"no ns/day in the output of {' '.join(cmd)}:\n{out.stderr[-2000:]}")
    return float(found.group(1))


def bench_loaded(args, tmp: Path) -> dict:
    import subprocess

    trees = {"current": None}
    if args.old_tree:
        trees["old"] = Path(args.old_tree)
    runs: dict[str, dict[str, list[float]]] = {k: {"alone": [], "busy": []} for k in trees}
    loads = []
    for _ in range(args.rounds):
        for name, tree in trees.items():
            steps = args.steps if tree is None else max(20, args.steps // 8)
            for load in ("alone", "busy"):
                busy = (subprocess.Popen([sys.executable, "-c", "while True: pass"])
                        if load == "busy" else None)
                try:
                    loads.append(os.getloadavg()[0])
                    runs[name][load].append(_md_command_ns_per_day(tree, steps, tmp))
                finally:
                    if busy is not None:
                        busy.kill()
                        busy.wait()
    out = {"system": "ethanol (9 atoms), vacuum, Langevin 0.5 fs, fixture bundle, `tensormol md`",
           "load_average_during": [min(loads), max(loads)], "runs": runs}
    for name, r in runs.items():
        out[f"busy_over_alone_median[{name}]"] = (float(np.median(r["busy"]))
                                                  / float(np.median(r["alone"])))
    return out


SECTIONS["loaded"] = bench_loaded


def _load(name: str) -> dict | None:
    path = RESULTS / f"md_{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def render() -> str:
    lines = ["# MD benchmarks (tensormol <-> OpenMM)", "",
             "Written by `benchmarks/bench_md.py` (section JSONs next to this file). Machine: the "
             "shared 2-core development VM (each section's JSON records the load average when it "
             "ran; the NVE and T4-1ps sections ran at load 10-14, so their absolute timings are "
             "pessimistic); ratios were measured back to back or round robin.", "",
             "| figure | value |", "|---|---|"]
    commands = [f"- {name}: `{d['command']}`" for name in SECTIONS
                if (d := _load(name)) and "command" in d]
    nve = _load("nve")
    if nve:
        lines.append(f"| NVE ethanol, {nve['simulated_ps']:g} ps at 0.5 fs: drift | "
                     f"{nve['drift_kJ_mol_per_ns_per_atom']:+.3f} kJ/mol/ns per atom |")
        lines.append(f"| NVE total-energy std / max deviation | "
                     f"{nve['total_energy_std_kJ_mol']:.3f} / "
                     f"{nve['total_energy_max_dev_kJ_mol']:.3f} kJ/mol |")
    eth = _load("ethanol")
    if eth:
        for key, value in eth.items():
            if key.startswith("ns_per_day["):
                lines.append(f"| ethanol (9 atoms) pure ML, {eth['threads']} threads, "
                             f"{key[len('ns_per_day['):-1]} model: ns/day | {value:.2f} |")
    t4 = _load("t4")
    if t4:
        lines.append(f"| T4 L99A + p-xylene ML/MM (OBC2), {t4['threads']} threads: ns/day, ML/MM "
                     f"vs the same system all MM | {t4['ns_per_day_mlmm']:.3f} vs "
                     f"{t4['ns_per_day_mm_only']:.3f} |")
    tm = _load("torchmdnet")
    for label, r in (tm or {}).get("systems", {}).items():
        if "speedup_best" in r:
            lines.append(
                f"| {label}: ns/day, tensormol vs openmm-ml torchmdnet (same TensorNet "
                f"hyperparameters), best of {len(r['ns_per_day_tensormol'])} alternating rounds "
                f"| {max(r['ns_per_day_tensormol']):.3f} vs {max(r['ns_per_day_torchmdnet']):.3f} "
                f"({r['speedup_best']:.2f}x; median ratio {r['speedup_median']:.2f}x) |")
        elif "error" in r:
            lines.append(f"| {label}: openmm-ml torchmdnet route | failed: {r['error']} |")
    ov = _load("overhead")
    if ov:
        for label in ("fixture", "speed"):
            if label in ov:
                o = ov[label]
                graph = o.get("callback_graph", "eager")
                bare = o["bare_traced_graph_ms" if graph == "traced" else "bare_model_ms"]
                lines.append(f"| coupling overhead per step ({label} model, {graph} graph; "
                             f"eager model call {o['bare_model_ms']:.1f} ms) | "
                             f"{o['overhead_ms']:.1f} ms on {bare:.1f} ms "
                             f"({o['overhead_percent']:.0f} %) |")
    ld = _load("loaded")
    for name, r in (ld or {}).get("runs", {}).items():
        lines.append(f"| `tensormol md` ethanol ns/day ({name} tree), alone vs beside one busy "
                     f"core, median of {len(r['alone'])} | {np.median(r['alone']):.3f} vs "
                     f"{np.median(r['busy']):.3f} "
                     f"({ld[f'busy_over_alone_median[{name}]']:.0%}) |")
    t4 = _load("t4_1ps")
    if t4:
        lines.append(f"| T4 L99A ML/MM, {t4['simulated_ps']:g} ps: ligand min distance / "
                     f"T(last half) | {t4['ligand_min_interatomic_A']:.2f} Å / "
                     f"{t4['temperature_K_mean_last_half']:.0f} K |")
        if t4.get("ns_per_day"):
            lines.append(f"| T4 L99A ML/MM ns/day of that 1 ps run ({t4.get('host', '?')}, "
                         f"{t4.get('threads', '?')} threads) | {t4['ns_per_day']:.3f} |")
    if commands:
        lines += ["", "Commands (sections without one ran with the script's defaults and the "
                      "threads shown in their JSON):", "", *commands]
    for name in SECTIONS:
        data = _load(name)
        if data is None:
            continue
        lines += ["", f"## {name}", "", "```json", json.dumps(data, indent=1), "```"]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sections", nargs="*", help=f"any of {', '.join(SECTIONS)} (default all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=200, help="timed MD steps per speed figure")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (torchmdnet)")
    ap.add_argument("--nve-ps", type=float, default=10.0, help="length of the NVE run (ps)")
    ap.add_argument("--old-tree", default=None,
                    help="loaded: also run this checkout (PYTHONPATH), e.g. a git worktree")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.sections == ["render"]:
        (RESULTS / "md.md").write_text(render())
        return
    for name in args.sections or list(SECTIONS):
        if name not in SECTIONS:
            raise SystemExit(f"unknown section {name!r}; choose from {', '.join(SECTIONS)}")
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            data = SECTIONS[name](args, Path(tmp))
        data["wall_s"] = time.perf_counter() - t0
        data["threads"] = args.threads
        data["host"] = f"{platform.node()} load={os.getloadavg()[0]:.1f}"
        data["command"] = " ".join(["python benchmarks/bench_md.py", name,
                                    *(a for a in sys.argv[1:] if a not in SECTIONS)])
        (RESULTS / f"md_{name}.json").write_text(json.dumps(data, indent=1))
        print(name, json.dumps(data, indent=1), flush=True)
    (RESULTS / "md.md").write_text(render())


if __name__ == "__main__":
    main()
