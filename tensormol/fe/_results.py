"""Results of a free-energy run: results.json, results.csv, plots, and a text report.

``write_results`` records what a protocol computed (rows of ΔG/ΔΔG, per-leg MBAR estimates, the
network estimate of per-ligand ΔG when edges are relative); ``report`` reads a run directory,
finished or not: it analyses every leg that has samples (labelled done, partial or failed)
and prints the rows of ``results.json`` when there is one. Plots use Matplotlib's Agg canvas on
their own Figure objects (no pyplot, no rcParams changes).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tensormol.fe._analysis import LegEstimate, analyze_leg, kT_to
from tensormol.fe._network import NetworkEstimate, network_estimate
from tensormol.fe._sampler import SamplingResult, atomic_write_bytes
from tensormol.units import KCAL_TO_KJ

__all__ = ["write_results", "report", "collect_legs", "ROW_KEYS", "RESULTS_SCHEMA"]

RESULTS_SCHEMA = 1
#: Keys of a result row (``ligand``, ``ligand_a``, ``ligand_b`` are optional extras).
ROW_KEYS = ("name", "kind", "dg_kcal", "ddg_kcal", "dg_kJ", "ddg_kJ", "status", "error", "legs")
_KINDS = ("hydration", "absolute", "relative")
_STATUSES = ("done", "partial", "failed")
CSV_COLUMNS = ("name", "kind", "ligand_a", "ligand_b", "dg_kcal", "ddg_kcal", "dg_kJ", "ddg_kJ",
               "exp_kcal", "status", "error", "legs")


# ------------------------------------------------------------------------------------- rows
def _num(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _normalise_row(i: int, row: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(row, Mapping):
        raise TypeError(f"rows[{i}] must be a dict with keys {', '.join(ROW_KEYS)}, "
                        f"got {type(row).__name__}")
    missing = [k for k in ("name", "kind", "status") if k not in row]
    if missing:
        raise ValueError(f"rows[{i}] lacks the key(s) {', '.join(missing)}; a row needs "
                         f"{', '.join(ROW_KEYS)}")
    out = dict(row)
    if out["kind"] not in _KINDS:
        raise ValueError(f"rows[{i}]['kind'] must be one of {', '.join(_KINDS)}, "
                         f"got {out['kind']!r}")
    if out["status"] not in _STATUSES:
        raise ValueError(f"rows[{i}]['status'] must be one of {', '.join(_STATUSES)}, "
                         f"got {out['status']!r}")
    # One unit given is enough; the other follows from units.KCAL_TO_KJ.
    for a, b in (("dg_kcal", "dg_kJ"), ("ddg_kcal", "ddg_kJ")):
        va, vb = _num(out.get(a)), _num(out.get(b))
        if va is None and vb is not None:
            va = vb / KCAL_TO_KJ
        if vb is None and va is not None:
            vb = va * KCAL_TO_KJ
        if va is not None and vb is not None and not math.isclose(va * KCAL_TO_KJ, vb,
                                                                  rel_tol=1e-6, abs_tol=1e-9):
            raise ValueError(f"rows[{i}] ({out['name']}): {a}={va} and {b}={vb} disagree "
                             f"(1 kcal = {KCAL_TO_KJ} kJ)")
        out[a], out[b] = va, vb
    out["error"] = None if out.get("error") in (None, "") else str(out["error"])
    out["legs"] = [str(x) for x in (out.get("legs") or [])]
    if out["kind"] == "relative":
        a, b = _edge_ligands(out)
        out["ligand_a"], out["ligand_b"] = a, b
    else:
        out.setdefault("ligand", out["name"])
    return out


def _edge_ligands(row: Mapping[str, Any]) -> tuple[str, str]:
    a, b = row.get("ligand_a"), row.get("ligand_b")
    if a is not None and b is not None:
        return str(a), str(b)
    name = str(row["name"])
    for sep in ("->", "→", "~"):
        if sep in name:
            x, y = name.split(sep, 1)
            return x.strip(), y.strip()
    raise ValueError(f"relative row {name!r} names no ligands: give ligand_a and ligand_b, or a "
                     f"name 'A->B'")


def _network_from_rows(rows: Sequence[Mapping[str, Any]],
                       experimental: Mapping[str, float] | None) -> NetworkEstimate | None:
    rel = [r for r in rows if r["kind"] == "relative"]
    if not rel:
        return None
    edges = []
    for r in rel:
        ok = r["status"] != "failed" and r["dg_kcal"] is not None and r["ddg_kcal"] is not None
        edges.append({"a": r["ligand_a"], "b": r["ligand_b"], "ddg": r["dg_kcal"],
                      "sigma": max(r["ddg_kcal"] or 0.0, 1e-3) if ok else None,
                      "error": None if ok else (r["error"] or "no result")})
    anchors = {r["ligand"]: (r["dg_kcal"], max(r["ddg_kcal"], 1e-3)) for r in rows
               if r["kind"] == "absolute" and r["status"] != "failed"
               and r["dg_kcal"] is not None and r["ddg_kcal"] is not None}
    return network_estimate(edges, anchors or None, shift_to=experimental, unit="kcal/mol")


def _stats(pairs: Sequence[tuple[float, float]]) -> dict[str, float] | None:
    if not pairs:
        return None
    d = np.array([c - e for c, e in pairs])
    return {"n": len(pairs), "mue": float(np.abs(d).mean()), "rmse": float(np.sqrt((d**2).mean())),
            "mse": float(d.mean())}


def _comparison(rows: Sequence[Mapping[str, Any]], network: NetworkEstimate | None,
                experimental: Mapping[str, float] | None) -> dict[str, Any]:
    if not experimental:
        return {}
    exp = {str(k): float(v) for k, v in experimental.items()}
    out: dict[str, Any] = {}
    absolute = [(r["dg_kcal"], exp[r["ligand"]]) for r in rows
                if r["kind"] in ("absolute", "hydration") and r["dg_kcal"] is not None
                and r["status"] != "failed" and r.get("ligand") in exp]
    edges = [(r["dg_kcal"], exp[r["ligand_b"]] - exp[r["ligand_a"]]) for r in rows
             if r["kind"] == "relative" and r["dg_kcal"] is not None and r["status"] != "failed"
             and r["ligand_a"] in exp and r["ligand_b"] in exp]
    for key, pairs in (("absolute", absolute), ("edges", edges)):
        s = _stats(pairs)
        if s:
            out[key] = s
    if network is not None:
        s = _stats([(network.dg[x], exp[x]) for x in network.ligands
                    if x in exp and math.isfinite(network.dg[x])])
        if s:
            out["network_ligands"] = s
    return out


# ------------------------------------------------------------------------------------ plots
def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name.replace("/", "__"))


def _figure(w: float = 5.0, h: float = 4.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def plot_overlap(est: LegEstimate, path: Path, title: str = "") -> None:
    """Heat map of the MBAR overlap matrix (numbers shown up to 16 states)."""
    o = np.asarray(est.overlap)
    k = o.shape[0]
    fig = _figure(0.35 * k + 2.5, 0.35 * k + 2.0)
    ax = fig.add_subplot()
    im = ax.imshow(o, cmap="Blues", vmin=0.0, vmax=max(float(o.max()), 1e-12))
    fig.colorbar(im, ax=ax, fraction=0.046)
    if k <= 16:
        for i in range(k):
            for j in range(k):
                if o[i, j] >= 0.005:
                    ax.text(j, i, f"{o[i, j]:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if o[i, j] > 0.5 * o.max() else "black")
    ticks = list(range(0, k, max(1, k // 12)))
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xlabel("state")
    ax.set_ylabel("state")
    ax.set_title(f"overlap {title} (min neighbour {est.min_neighbor_overlap():.3f})", fontsize=9)
    _save(fig, path)


def plot_convergence(est: LegEstimate, path: Path, title: str = "") -> None:
    """Forward and reverse time-sliced ΔG (kcal/mol) with 1σ bars."""
    fig = _figure()
    ax = fig.add_subplot()
    t = est.temperature_K
    for series, label, marker in ((est.forward, "forward", "o"), (est.reverse, "reverse", "s")):
        if not series:
            continue
        f = [r[0] for r in series]
        y = [kT_to(r[1], "kcal/mol", t) for r in series]
        e = [kT_to(r[2], "kcal/mol", t) for r in series]
        ax.errorbar(f, y, yerr=e, marker=marker, capsize=3, label=label)
    dg, ddg = est.dg("kcal/mol")
    ax.axhspan(dg - ddg, dg + ddg, color="0.85", zorder=0)
    ax.set_xlabel("fraction of production samples")
    ax.set_ylabel("ΔG (kcal/mol)")
    ax.set_title(f"convergence {title}", fontsize=9)
    if ax.get_legend_handles_labels()[0]:  # a leg too short for time slices has no series
        ax.legend(fontsize=8)
    _save(fig, path)


def plot_mixing(replica_states: np.ndarray, path: Path, title: str = "") -> None:
    """State of each replica over the iterations (one row per replica, colour = state)."""
    rs = np.asarray(replica_states)
    fig = _figure(6.0, 0.25 * rs.shape[1] + 1.5)
    ax = fig.add_subplot()
    im = ax.imshow(rs.T, aspect="auto", interpolation="nearest", cmap="viridis")
    fig.colorbar(im, ax=ax, label="state")
    ax.set_xlabel("iteration")
    ax.set_ylabel("replica")
    ax.set_title(f"replica mixing {title}", fontsize=9)
    _save(fig, path)


def plot_vs_experiment(points: Sequence[tuple[str, float, float, float]], path: Path,
                       label: str) -> None:
    """Calculated vs experimental values (kcal/mol): y = x and ±1 kcal/mol band."""
    fig = _figure(4.5, 4.5)
    ax = fig.add_subplot()
    calc = np.array([p[1] for p in points])
    err = np.array([p[2] for p in points])
    exp = np.array([p[3] for p in points])
    lo = float(min(calc.min(), exp.min()) - 1.0)
    hi = float(max(calc.max(), exp.max()) + 1.0)
    ax.fill_between([lo, hi], [lo - 1, hi - 1], [lo + 1, hi + 1], color="0.9", zorder=0)
    ax.plot([lo, hi], [lo, hi], color="0.4", lw=1)
    ax.errorbar(exp, calc, yerr=err, fmt="o", capsize=3)
    for name, c, _, e in points:
        ax.annotate(name, (e, c), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(f"experimental {label} (kcal/mol)")
    ax.set_ylabel(f"calculated {label} (kcal/mol)")
    _save(fig, path)


# ----------------------------------------------------------------------------------- writer
def write_results(run_dir: str | os.PathLike, rows: Sequence[Mapping[str, Any]],
                  legs: Mapping[str, LegEstimate],
                  experimental: Mapping[str, float] | None = None, *,
                  replica_states: Mapping[str, np.ndarray] | None = None,
                  plots: bool = True) -> dict[str, Any]:
    """Write results.json, results.csv and plots of a run.

    Parameters
    ----------
    run_dir : path
        The run directory.
    rows : sequence of dict
        Result rows: ``name``, ``kind`` ("hydration" | "absolute" | "relative"), ``dg_kcal``,
        ``ddg_kcal`` (or ``dg_kJ``/``ddg_kJ``; the other unit is filled in), ``status``
        ("done" | "partial" | "failed"), ``error`` (str or None), ``legs`` (leg names).
        Relative rows name their ligands with ``ligand_a``/``ligand_b`` (ΔΔG = G_b − G_a) or a
        name ``"A->B"``; other rows may give ``ligand`` (default: ``name``).
    legs : mapping str -> LegEstimate
        Per-leg estimates, keyed by leg name: the leg's directory relative to ``run_dir``, or
        a directory holding exactly one sampler directory (also under ``run_dir/legs``), which
        finds the samples for its replica-mixing plot.
    experimental : mapping str -> float, optional
        Experimental ΔG per ligand (kcal/mol): statistics and calculated-vs-experiment plots.
    replica_states : mapping str -> (N, R) int array, optional
        Replica state histories by leg name, for legs not found under ``run_dir``.
    plots : bool
        Draw the PNG plots into ``run_dir/plots``.

    Returns
    -------
    dict
        The content written to results.json.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    norm = [_normalise_row(i, r) for i, r in enumerate(rows)]
    for name, est in legs.items():
        if not isinstance(est, LegEstimate):
            raise TypeError(f"legs[{name!r}] must be a LegEstimate, got {type(est).__name__}")
    exp = {str(k): float(v) for k, v in (experimental or {}).items()}
    network = _network_from_rows(norm, exp or None)
    content: dict[str, Any] = {
        "schema": RESULTS_SCHEMA,
        "units": {"dg_kcal": "kcal/mol", "dg_kJ": "kJ/mol", "legs": "kT",
                  "kcal_to_kJ": KCAL_TO_KJ},
        "rows": norm,
        "network": network.to_dict() if network is not None else None,
        "legs": {name: {**est.to_dict(), "dg_kcal": est.dg("kcal/mol")[0],
                        "ddg_kcal": est.dg("kcal/mol")[1],
                        "min_neighbor_overlap": est.min_neighbor_overlap()}
                 for name, est in legs.items()},
        "experimental": exp or None,
        "comparison": _comparison(norm, network, exp),
    }
    atomic_write_bytes(run_dir / "results.json",
                       json.dumps(content, indent=1, default=_json_default).encode())
    atomic_write_bytes(run_dir / "results.csv", _csv_text(norm, network, exp).encode())
    if plots:
        _write_plots(run_dir, norm, legs, network, exp, replica_states or {})
    return content


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def _csv_text(rows: Sequence[Mapping[str, Any]], network: NetworkEstimate | None,
              exp: Mapping[str, float]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        e = None
        if r["kind"] == "relative" and r["ligand_a"] in exp and r["ligand_b"] in exp:
            e = exp[r["ligand_b"]] - exp[r["ligand_a"]]
        elif r["kind"] != "relative":
            e = exp.get(r["ligand"])
        w.writerow({**r, "ligand_a": r.get("ligand_a") or r.get("ligand"),
                    "ligand_b": r.get("ligand_b"), "exp_kcal": e,
                    "legs": ";".join(r["legs"]), "error": r["error"] or ""})
    if network is not None:
        # The per-ligand maximum-likelihood estimates, in the same table.
        for x in network.ligands:
            g, s = network.dg[x], network.sigma[x]
            if not (math.isfinite(g) and math.isfinite(s)):
                g = s = None  # type: ignore[assignment]
            w.writerow({"name": x, "kind": "ligand_mle" if network.anchored[x]
                        else "ligand_mle_relative", "ligand_a": x, "dg_kcal": g,
                        "ddg_kcal": s, "dg_kJ": None if g is None else g * KCAL_TO_KJ,
                        "ddg_kJ": None if s is None else s * KCAL_TO_KJ,
                        "exp_kcal": exp.get(x), "status": "done", "error": "", "legs": ""})
    return buf.getvalue()


def _find_leg_dir(run_dir: Path, name: str) -> Path | None:
    """The sampler directory of leg ``name``: ``run_dir/name``, or the one sampler directory
    directly inside ``run_dir/name`` or ``run_dir/legs/name``."""
    if (run_dir / name / "samples.json").is_file():
        return run_dir / name
    for base in (run_dir / name, run_dir / "legs" / name):
        if base.is_dir():
            hits = sorted(base.glob("*/samples.json"))
            if len(hits) == 1:
                return hits[0].parent
    return None


def _write_plots(run_dir: Path, rows: Sequence[Mapping[str, Any]],
                 legs: Mapping[str, LegEstimate], network: NetworkEstimate | None,
                 exp: Mapping[str, float], replica_states: Mapping[str, np.ndarray]) -> None:
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    for name, est in legs.items():
        stem = _safe(name)
        plot_overlap(est, out / f"{stem}_overlap.png", name)
        plot_convergence(est, out / f"{stem}_convergence.png", name)
        rs = replica_states.get(name)
        leg_dir = _find_leg_dir(run_dir, name) if rs is None else None
        if leg_dir is not None:
            rs = SamplingResult.load(leg_dir.parent, leg_dir.name).replica_states
        if rs is not None and len(rs):
            plot_mixing(rs, out / f"{stem}_mixing.png", name)
    if not exp:
        return
    rel = [(f"{r['ligand_a']}→{r['ligand_b']}", r["dg_kcal"], r["ddg_kcal"] or 0.0,
            exp[r["ligand_b"]] - exp[r["ligand_a"]]) for r in rows
           if r["kind"] == "relative" and r["dg_kcal"] is not None and r["status"] != "failed"
           and r["ligand_a"] in exp and r["ligand_b"] in exp]
    if rel:
        plot_vs_experiment(rel, out / "ddg_vs_experiment.png", "ΔΔG")
    absolute = [(r["ligand"], r["dg_kcal"], r["ddg_kcal"] or 0.0, exp[r["ligand"]])
                for r in rows if r["kind"] != "relative" and r["dg_kcal"] is not None
                and r["status"] != "failed" and r["ligand"] in exp]
    if network is not None:
        absolute += [(x, network.dg[x], network.sigma[x], exp[x]) for x in network.ligands
                     if x in exp and math.isfinite(network.dg[x])
                     and not any(p[0] == x for p in absolute)]
    if absolute:
        plot_vs_experiment(absolute, out / "dg_vs_experiment.png", "ΔG")


# ----------------------------------------------------------------------------------- report
def collect_legs(run_dir: str | os.PathLike, *, n_slices: int = 10
                 ) -> dict[str, dict[str, Any]]:
    """Every leg with samples under ``run_dir``: its status and, where possible, its estimate.

    Returns ``{leg name: {"status", "n_iterations", "n_iterations_target", "estimate"
    (LegEstimate or None), "error" (str or None)}}``; the name is the leg directory relative to
    ``run_dir``.
    """
    run_dir = Path(run_dir)
    out: dict[str, dict[str, Any]] = {}
    for layout in sorted(run_dir.rglob("samples.json")):
        leg_dir = layout.parent
        name = leg_dir.relative_to(run_dir).as_posix()
        entry: dict[str, Any] = {"status": "partial", "n_iterations": 0,
                                 "n_iterations_target": None, "estimate": None, "error": None}
        try:
            res = SamplingResult.load(leg_dir.parent, leg_dir.name)
        except (OSError, ValueError, KeyError) as err:
            entry.update(status="failed", error=f"samples unreadable: {err}")
            out[name] = entry
            continue
        entry.update(status=res.status, n_iterations=res.n_iterations,
                     n_iterations_target=res.n_iterations_target)
        if res.failure:
            entry["error"] = res.failure.get("error")
        if res.n_iterations >= 2:
            try:
                entry["estimate"] = analyze_leg(res.u_kln, res.temperature_K, n_slices=n_slices)
            except (ValueError, ArithmeticError, np.linalg.LinAlgError) as err:
                entry["analysis_error"] = str(err)
        out[name] = entry
    return out


def _fmt(v: float | None, s: float | None = None, w: int = 8) -> str:
    if v is None:
        return "-".rjust(w)
    txt = f"{v:.2f}" if s is None else f"{v:.2f} ± {s:.2f}"
    return txt.rjust(w)


def report(run_dir: str | os.PathLike) -> str:
    """The results of a run directory as text, for finished and partial runs.

    Lists the rows of ``results.json`` (when written), the per-ligand network estimate with
    cycle closures, failed rows with their errors, and every leg found with samples: status
    (done / partial / failed), iterations, ΔG, the smallest neighbour overlap and the forward /
    reverse halves.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    lines: list[str] = [f"free-energy run {run_dir}"]
    results_path = run_dir / "results.json"
    content = None
    if results_path.is_file():
        try:
            content = json.loads(results_path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{results_path} is not valid JSON ({err})") from err
    legs = collect_legs(run_dir)
    if content is None and not legs:
        raise FileNotFoundError(f"{run_dir} has neither results.json nor legs with samples; "
                                f"is it a free-energy run directory?")
    if content is not None:
        rows = content.get("rows", [])
        lines += ["", "results (kcal/mol | kJ/mol):",
                  f"  {'name':<28} {'kind':<10} {'ΔG kcal/mol':>16} {'ΔG kJ/mol':>18} status"]
        for r in rows:
            lines.append(f"  {str(r['name']):<28} {r['kind']:<10} "
                         f"{_fmt(r.get('dg_kcal'), r.get('ddg_kcal'), 16)} "
                         f"{_fmt(r.get('dg_kJ'), r.get('ddg_kJ'), 18)} {r['status']}")
        failed = [r for r in rows if r["status"] == "failed"]
        if failed:
            lines += ["", "failed:"]
            lines += [f"  {r['name']}: {r.get('error') or 'no error recorded'}" for r in failed]
        net = content.get("network")
        if net:
            lines += ["", "per-ligand ΔG by maximum likelihood (kcal/mol):"]
            for lig in net["ligands"]:
                tag = "" if lig["absolute"] else "  (relative: component mean set)"
                lines.append(f"  {lig['name']:<28} {_fmt(lig['dg'], lig['sigma'], 16)}{tag}")
            if len(net["components"]) > 1:
                lines.append("  disconnected components: " + " | ".join(
                    ", ".join(c) for c in net["components"]))
            for cyc in net["cycles"]:
                lines.append(f"  cycle {' → '.join(cyc['ligands'])}: closure "
                             f"{cyc['closure']:.2f} ± {cyc['sigma']:.2f}")
            for fe in net["failed_edges"]:
                lines.append(f"  failed edge {fe['a']} → {fe['b']}: {fe['error']}")
        for key, s in (content.get("comparison") or {}).items():
            lines.append(f"  vs experiment ({key}, n={s['n']}): MUE {s['mue']:.2f}, "
                         f"RMSE {s['rmse']:.2f} kcal/mol")
    else:
        lines += ["", "no results.json yet (unfinished run): per-leg estimates from the samples "
                  "so far"]
    if legs:
        lines += ["", "legs (ΔG = f_last − f_first):",
                  f"  {'leg':<34} {'status':<8} {'iter':>11} {'ΔG kT':>14} "
                  f"{'ΔG kcal/mol':>14} {'overlap':>8} {'fwd/rev half (kT)':>20}"]
        for name, e in legs.items():
            est = e["estimate"]
            it = f"{e['n_iterations']}/{e['n_iterations_target'] or '?'}"
            if est is None:
                lines.append(f"  {name:<34} {e['status']:<8} {it:>11} "
                             f"{'(too few samples)' if not e.get('analysis_error') else '-':>14}")
            else:
                kcal = est.dg("kcal/mol")
                half = ""
                f = [r for r in est.forward if r[0] == 0.5]
                r = [r for r in est.reverse if r[0] == 0.5]
                if f and r:
                    half = f"{f[0][1]:.2f}/{r[0][1]:.2f}"
                lines.append(f"  {name:<34} {e['status']:<8} {it:>11} "
                             f"{_fmt(est.dg_kT, est.ddg_kT, 14)} {_fmt(*kcal, 14)} "
                             f"{est.min_neighbor_overlap():8.3f} {half:>20}")
            if e.get("error"):
                lines.append(f"    error: {e['error']}")
            if e.get("analysis_error"):
                lines.append(f"    analysis failed: {e['analysis_error']}")
    return "\n".join(lines) + "\n"
