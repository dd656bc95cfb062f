"""Run prepared ATM legs on a GPU: Hamiltonian replica exchange, then MBAR.

    python run_atm.py LEG_DIR [LEG_DIR ...] --minutes 3.5 [--steps 250] [--platform CUDA]
                      [--out RESULTS_DIR]

Self-contained: needs openmm and numpy only (pymbar when installed, for the estimate; without it
the reduced potentials are written for analysis elsewhere). A leg directory comes from
``prepare.py`` (``system.xml.gz``, ``state.npz``, ``leg.json``).

What it samples, per leg: ``--anneal-ps`` of MD walking λ from 0 to 1/2 (forward direction),
then K replicas (22 ATM states: λ from bound to the symmetric intermediate
in the forward direction, then back to unbound in the reverse one), each ``--steps`` Langevin
steps (4 fs, HMR) between exchange attempts (all-pairs Metropolis swaps, R³ per iteration), for
as many iterations as fit in ``--minutes`` of wall time. The reduced potentials of each sample at
every state come from the ATMForce's u0, u1 (one energy evaluation per replica and iteration).
Writes ``RESULTS_DIR/<leg>.npz`` (u_kln, replica states, acceptance) after every iteration and
``RESULTS_DIR/<leg>.json`` (ΔG with MBAR) at the end.

Sign conventions: MBAR gives Δf = f(state K−1) − f(state 0) in kT. Absolute leg:
ΔG°_bind = −Δf·kT + kT·(−ln C°V_site) (the standard-state term is in leg.json). Relative leg
A → B: ΔΔG_bind = Δf·kT.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

KB_KJ_PER_MOL_K = 0.00831446261815324  # molar gas constant, kJ/(mol K)
KJ_PER_KCAL = 4.184


def atm_energy(u0: float, u1: float, st: dict) -> float:
    """OpenMM's default ATMForce energy expression (kJ/mol)."""
    forward = st["Direction"] >= 0
    u = (u1 - u0) if forward else (u0 - u1)
    usc = u
    if st["Acore"] != 0 and u >= st["Ubcore"]:
        y = (u - st["Ubcore"]) / (st["Umax"] - st["Ubcore"])
        a = st["Acore"]
        z = 1.0 + 2.0 * (y / a) + 2.0 * (y / a) ** 2
        try:
            za = z**a
            fsc = (za - 1.0) / (za + 1.0)
        except OverflowError:
            fsc = 1.0
        usc = (st["Umax"] - st["Ubcore"]) * fsc + st["Ubcore"]
    e = (u0 if forward else u1) + st["Lambda2"] * usc + st["W0"]
    if st["Lambda2"] != st["Lambda1"]:
        e += ((st["Lambda2"] - st["Lambda1"]) / st["Alpha"]) * float(
            np.logaddexp(0.0, -st["Alpha"] * (usc - st["Uh"])))
    return e


def run_leg(leg_dir: Path, out_dir: Path, minutes: float, steps: int, platform_name: str,
            seed: int, anneal_ps: float = 40.0) -> dict:
    import openmm
    from openmm import unit

    leg = json.loads((leg_dir / "leg.json").read_text())
    with gzip.open(leg_dir / "system.xml.gz", "rt") as fh:
        system = openmm.XmlSerializer.deserialize(fh.read())
    init = np.load(leg_dir / "state.npz")
    pos0, box = init["positions_nm"], init["box_nm"]
    states = leg["states"]
    k_states = len(states)
    t_k = leg["temperature_K"]
    kt = KB_KJ_PER_MOL_K * t_k
    integ = openmm.LangevinMiddleIntegrator(t_k * unit.kelvin,
                                            leg["friction_per_ps"] / unit.picosecond,
                                            leg["timestep_fs"] * unit.femtosecond)
    integ.setRandomNumberSeed(seed + 1)
    platform = openmm.Platform.getPlatformByName(platform_name)
    props = {"Precision": "mixed"} if platform_name in ("CUDA", "OpenCL", "HIP") else {}
    ctx = openmm.Context(system, integ, platform, props)
    atm = system.getForce(leg["atm_force_index"])
    periodic = bool(np.any(box))
    if periodic:
        ctx.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box])
    ctx.setPositions(pos0)
    rng = np.random.default_rng(seed)
    # Forward annealing λ 0 → 1/2 first: the displaced ligand of an absolute leg starts on top
    # of water molecules (u1 huge); along the soft-cored forward direction the water makes room.
    ctx.setVelocitiesToTemperature(t_k * unit.kelvin, seed + 7)
    t0 = time.perf_counter()
    n_anneal = max(1, int(anneal_ps * 1000.0 / leg["timestep_fs"] / (k_states // 2)))
    for k in range(k_states // 2):
        for name, v in states[k].items():
            ctx.setParameter(name, v)
        integ.step(n_anneal)
    st = ctx.getState(getPositions=True)
    pos0 = st.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    if periodic:
        box = st.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
    print(f"[{leg['name']}] annealed {anneal_ps} ps in {time.perf_counter() - t0:.0f} s",
          flush=True)
    reps_pos = [np.array(pos0) for _ in range(k_states)]
    reps_vel = []
    for r in range(k_states):
        ctx.setVelocitiesToTemperature(t_k * unit.kelvin, seed + 100 + r)
        reps_vel.append(ctx.getState(getVelocities=True).getVelocities(asNumpy=True)
                        .value_in_unit(unit.nanometer / unit.picosecond))
    reps_box = [np.array(box) for _ in range(k_states)]
    rstate = np.arange(k_states)  # state of each replica
    u_kln_list, rs_list = [], []
    acc = np.zeros((k_states, k_states))
    att = np.zeros((k_states, k_states))
    kj = unit.kilojoule_per_mole
    t_start = time.perf_counter()
    it = 0
    print(f"[{leg['name']}] {system.getNumParticles()} particles, {k_states} states, "
          f"{steps} steps x {leg['timestep_fs']} fs per iteration, {minutes} min", flush=True)
    while time.perf_counter() - t_start < minutes * 60.0:
        u = np.zeros((k_states, k_states))  # u[replica, state]
        for r in range(k_states):
            for name, v in states[rstate[r]].items():
                ctx.setParameter(name, v)
            if periodic:
                ctx.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in reps_box[r]])
            ctx.setPositions(reps_pos[r])
            ctx.setVelocities(reps_vel[r])
            integ.step(steps)
            st = ctx.getState(getPositions=True, getVelocities=True, getEnergy=True)
            e_tot = st.getPotentialEnergy().value_in_unit(kj)
            u1, u0, w = (q.value_in_unit(kj) for q in atm.getPerturbationEnergy(ctx))
            if not all(math.isfinite(x) for x in (e_tot, u0, u1)):
                raise FloatingPointError(f"leg {leg['name']}: replica {r} at state {rstate[r]} "
                                         f"gave a non-finite energy at iteration {it}")
            reps_pos[r] = st.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
            reps_vel[r] = st.getVelocities(asNumpy=True).value_in_unit(
                unit.nanometer / unit.picosecond)
            if periodic:
                reps_box[r] = st.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
            rest = e_tot - w
            u[r] = [(rest + atm_energy(u0, u1, s)) / kt for s in states]
        sampled_at = rstate.copy()  # the state each replica's configuration was sampled at
        for _ in range(k_states**3):  # all-pairs swaps (towards the Gibbs limit)
            i, j = rng.integers(k_states, size=2)
            if i == j:
                continue
            si, sj = rstate[i], rstate[j]
            log_p = -(u[i, sj] + u[j, si] - u[i, si] - u[j, sj])
            att[si, sj] += 1
            if log_p >= 0 or rng.random() < math.exp(log_p):
                rstate[i], rstate[j] = sj, si
                acc[si, sj] += 1
        # sample n of state k: the configuration sampled at k, evaluated at every state l
        ukl = np.zeros((k_states, k_states))
        ukl[sampled_at] = u
        u_kln_list.append(ukl)
        rs_list.append(sampled_at)
        it += 1
        u_kln = np.stack(u_kln_list, axis=-1)
        tmp = out_dir / f".{leg['name']}.npz"
        with open(tmp, "wb") as fh:
            np.savez(fh, u_kln=u_kln, replica_states=np.array(rs_list), accepted=acc,
                     attempted=att, temperature_K=t_k)
        os.replace(tmp, out_dir / f"{leg['name']}.npz")
        el = time.perf_counter() - t_start
        print(f"[{leg['name']}] iteration {it}  {el:.0f} s  "
              f"{it * steps * leg['timestep_fs'] / 1000:.1f} ps per replica", flush=True)
    wall = time.perf_counter() - t_start
    result = {"leg": leg["name"], "kind": leg["kind"], "ligands": leg["ligands"],
              "n_iterations": it, "wall_s": wall, "steps_per_iteration": steps,
              "ns_per_replica": it * steps * leg["timestep_fs"] * 1e-6,
              "n_particles": system.getNumParticles()}
    result.update(_mbar(np.stack(u_kln_list, axis=-1), leg, kt))
    (out_dir / f"{leg['name']}.json").write_text(json.dumps(result, indent=1))
    return result


def _mbar(u_kln: np.ndarray, leg: dict, kt: float) -> dict:
    try:
        from pymbar import MBAR
    except ImportError:
        return {"note": "pymbar not installed: analyse the saved u_kln elsewhere"}
    k, _, n = u_kln.shape
    start = n // 5  # discard the first 20 % as equilibration
    prod = u_kln[:, :, start:]
    m = prod.shape[2]
    u_kn = np.concatenate([prod[i] for i in range(k)], axis=1)  # (K, K*m): sample order by state
    u_kn = u_kn - u_kn.min(axis=0, keepdims=True)  # per-sample shift: MBAR-invariant, better scaled
    mbar = MBAR(u_kn, np.full(k, m), solver_protocol="robust")
    res = mbar.compute_free_energy_differences()
    df = float(res["Delta_f"][0, -1])
    ddf = float(res["dDelta_f"][0, -1])
    kcal = kt / KJ_PER_KCAL
    if leg["kind"] == "absolute":
        dg = (-df + leg["standard_state_kT"]) * kcal
        label = "dG_bind_kcal"
    else:
        dg = df * kcal
        label = "ddG_bind_kcal"
    return {"delta_f_kT": df, "sigma_kT": ddf, label: dg, "sigma_kcal": ddf * kcal,
            "production_iterations": m}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("legs", nargs="+", help="leg directories from prepare.py")
    ap.add_argument("--minutes", type=float, default=3.5, help="wall time per leg")
    ap.add_argument("--steps", type=int, default=250, help="MD steps per iteration")
    ap.add_argument("--platform", default="CUDA")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--anneal-ps", type=float, default=40.0,
                    help="forward annealing before replica exchange (ps)")
    ap.add_argument("--out", default="fe_gpu_results")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = []
    for leg_dir in args.legs:
        res = run_leg(Path(leg_dir), out, args.minutes, args.steps, args.platform, args.seed,
                      args.anneal_ps)
        summary.append(res)
        print(json.dumps(res), flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
