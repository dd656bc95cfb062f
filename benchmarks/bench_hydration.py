"""Hydration free energies of the FreeSolv subset in ``data/freesolv/subset.csv``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_hydration.py \\
        [--preset standard] [--iterations N] [--threads 2] [--only mobley_1636752 ...] \\
        [--potential model.tmol] [--out runs/freesolv_standard]

One molecule at a time (each a ``tensormol.fe.run_hydration`` run directory under ``--out``;
a rerun resumes unfinished ones and skips finished ones). Writes ``--out/summary.json`` and
prints ΔG ± σ per compound against experiment and FreeSolv's GAFF values (v0.52), with MUE and
RMSE, and the wall time of each molecule.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUBSET = HERE.parent / "data" / "freesolv" / "subset.csv"


def _stats(pairs: list[tuple[float, float]]) -> dict[str, float]:
    if not pairs:
        return {"n": 0, "mue": math.nan, "rmse": math.nan}
    d = [a - b for a, b in pairs]
    return {"n": len(d), "mue": sum(abs(x) for x in d) / len(d),
            "rmse": math.sqrt(sum(x * x for x in d) / len(d))}


def _cpu_seconds() -> float:
    """CPU time (user + system, all threads) of this process: on a shared machine a measure
    of the work that does not depend on what else runs."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="standard")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--platform", default="CPU")
    ap.add_argument("--only", nargs="*", default=None, help="compound ids")
    ap.add_argument("--potential", default=None, help="tensormol bundle (ML/MM)")
    ap.add_argument("--out", default="runs/freesolv")
    ap.add_argument("--iterations", type=int, default=None,
                    help="override the preset's solvent-leg iterations (recorded in the summary)")
    args = ap.parse_args()

    import dataclasses

    from tensormol.fe._hydration import PRESETS, run_hydration

    preset = PRESETS[args.preset]
    if args.iterations is not None:
        preset = dataclasses.replace(preset, n_iterations=args.iterations)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    rows = list(csv.DictReader(SUBSET.open()))
    if args.only:
        rows = [r for r in rows if r["compound_id"] in args.only]
    for r in rows:
        cid = r["compound_id"]
        if cid in summary and summary[cid].get("status") == "done":
            continue
        run_dir = out / cid
        t0 = time.perf_counter()
        c0 = _cpu_seconds()
        try:
            res = run_hydration(r["smiles"], run_dir, preset=preset, potential=args.potential,
                                resume=(run_dir / "inputs.json").is_file(),
                                threads=args.threads, platform=args.platform, name=cid,
                                cache_dir=out / "ligand_cache", progress=False,
                                experimental_kcal=float(r["exp_kcal"]))
        except Exception as err:  # noqa: BLE001 - one failed molecule must not stop the set
            print(f"{cid}: failed: {err}", flush=True)
            summary[cid] = {"name": r["iupac"], "smiles": r["smiles"], "status": "failed",
                            "error": str(err)}
            continue
        wall = time.perf_counter() - t0
        cpu = _cpu_seconds() - c0
        summary[cid] = {
            "name": r["iupac"], "smiles": r["smiles"], "status": "done",
            "dg_kcal": res.dg_kcal, "ddg_kcal": res.ddg_kcal,
            "exp_kcal": float(r["exp_kcal"]), "gaff_freesolv_kcal": float(r["gaff_calc_kcal"]),
            "wall_s": wall, "cpu_s": cpu, "preset": args.preset, "iterations": preset.n_iterations,
            "threads": args.threads,
            "potential": args.potential,
            "legs": {k: {"dg_kT": v["dg_kT"], "ddg_kT": v["ddg_kT"],
                         "dispersion_tail_kJ": v["dispersion_tail_kJ"],
                         "min_neighbor_overlap": v["min_neighbor_overlap"],
                         "wall_s": v["wall_s_this_call"]} for k, v in res.legs.items()},
        }
        tmp = summary_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary, indent=1))
        tmp.replace(summary_path)
        print(f"{cid} {r['iupac']}: {res.dg_kcal:+.2f} ± {res.ddg_kcal:.2f} kcal/mol "
              f"(exp {float(r['exp_kcal']):+.2f}, FreeSolv GAFF {float(r['gaff_calc_kcal']):+.2f})"
              f" in {wall / 60:.1f} min wall, {cpu / 60:.1f} min CPU", flush=True)
    done = [v for v in summary.values() if v.get("status") == "done"]
    print(f"\n{'compound':16s} {'name':12s} {'dG':>7s} {'sigma':>6s} {'exp':>6s} {'GAFF':>6s} "
          f"{'min':>5s}")
    for cid, v in summary.items():
        if v.get("status") != "done":
            continue
        print(f"{cid:16s} {v['name'][:12]:12s} {v['dg_kcal']:+7.2f} {v['ddg_kcal']:6.2f} "
              f"{v['exp_kcal']:+6.2f} {v['gaff_freesolv_kcal']:+6.2f} {v['wall_s'] / 60:5.1f}")
    vs_exp = _stats([(v["dg_kcal"], v["exp_kcal"]) for v in done])
    vs_gaff = _stats([(v["dg_kcal"], v["gaff_freesolv_kcal"]) for v in done])
    print(f"vs experiment: MUE {vs_exp['mue']:.2f}, RMSE {vs_exp['rmse']:.2f} kcal/mol "
          f"(n={vs_exp['n']}); vs FreeSolv GAFF: MUE {vs_gaff['mue']:.2f}, RMSE "
          f"{vs_gaff['rmse']:.2f} kcal/mol")
    (out / "stats.json").write_text(json.dumps({"vs_experiment": vs_exp, "vs_freesolv_gaff":
                                                vs_gaff}, indent=1))


if __name__ == "__main__":
    main()
