"""Replica exchange on real OpenMM systems: exact ΔG, bit-identical resume, checkpoints, NaN."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")

from tensormol.fe import ReplicaExchange, SamplerSettings, SamplingError, SamplingResult  # noqa: E402

pytestmark = pytest.mark.openmm

THREADS = int(os.environ.get("TENSORMOL_TEST_THREADS", "1"))


def harmonic_system(n: int = 4, mass: float = 12.0, expression: str | None = None):
    """``n`` free particles in an isotropic well whose spring constant is ``k_spring``."""
    system = openmm.System()
    force = openmm.CustomExternalForce(expression or "0.5*k_spring*(x^2+y^2+z^2)")
    force.addGlobalParameter("k_spring", 100.0)
    for i in range(n):
        system.addParticle(mass)
        force.addParticle(i, [])
    system.addForce(force)
    return system


def lj_fluid(n: int = 20, box: float = 1.6):
    """A periodic Lennard-Jones fluid whose interactions are scaled by ``lam``."""
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(openmm.Vec3(box, 0, 0), openmm.Vec3(0, box, 0),
                                        openmm.Vec3(0, 0, box))
    force = openmm.CustomNonbondedForce("4*0.5*lam*((0.3/r)^12-(0.3/r)^6)")
    force.addGlobalParameter("lam", 1.0)
    force.setNonbondedMethod(force.CutoffPeriodic)
    force.setCutoffDistance(0.7)
    for _ in range(n):
        system.addParticle(20.0)
        force.addParticle([])
    system.addForce(force)
    grid = np.stack(np.meshgrid(*[np.arange(3)] * 3), -1).reshape(-1, 3)[:n] * box / 3
    return system, grid.astype(np.float64)


LJ_STATES = [{"lam": v} for v in (0.0, 0.3, 0.6, 1.0)]


def lj_sampler(directory, n_iterations=30, checkpoint_every=7, platform="CPU"):
    system, x = lj_fluid()
    settings = SamplerSettings(n_iterations=n_iterations, steps_per_iteration=20,
                               checkpoint_every=checkpoint_every, platform=platform,
                               threads=THREADS)
    return ReplicaExchange(system, x, LJ_STATES, settings, directory, name="lj", progress=False)


def test_resume_with_a_fresh_object_is_bit_identical(tmp_path):
    ref = lj_sampler(tmp_path / "a").run()
    lj_sampler(tmp_path / "b").run(12)  # stops after 12 iterations (checkpoint at 12)
    partial = SamplingResult.load(tmp_path / "b", "lj")
    assert partial.u_kln.shape == (4, 4, 12)
    resumed = lj_sampler(tmp_path / "b").run()
    assert resumed.u_kln.shape == (4, 4, 30)
    assert np.array_equal(ref.u_kln, resumed.u_kln)
    assert np.array_equal(ref.replica_states, resumed.replica_states)
    assert np.array_equal(ref.acceptance, resumed.acceptance)
    # Replicas did mix: some swaps accepted between neighbours.
    assert ref.acceptance[1, 2] > 0.2
    # A finished leg returns its samples without sampling again.
    again = lj_sampler(tmp_path / "b").run()
    assert np.array_equal(again.u_kln, ref.u_kln)


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    """A run killed by SIGKILL at an arbitrary moment and resumed repeats an uninterrupted one."""
    ref = lj_sampler(tmp_path / "ref", n_iterations=40, checkpoint_every=1).run()
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, __file__, str(run_dir), "40"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples = run_dir / "lj" / "samples.bin"
    record = 4 * 4 * 8 + 4 * 8 + 2 * 4 * 4 * 4
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if samples.is_file() and samples.stat().st_size >= 15 * record:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = samples.stat().st_size // record
    assert 15 <= n_before < 40, "the child finished before it could be killed"
    resumed = lj_sampler(run_dir, n_iterations=40, checkpoint_every=1).run()
    assert np.array_equal(ref.u_kln, resumed.u_kln)
    assert np.array_equal(ref.replica_states, resumed.replica_states)


def test_interrupted_checkpoint_write_leaves_last_good_one(tmp_path):
    ref = lj_sampler(tmp_path / "ref", n_iterations=20).run()
    lj_sampler(tmp_path / "run").run(14)  # checkpoint at 14
    leg = tmp_path / "run" / "lj"
    # What a kill during the next checkpoint and sample writes leaves behind: a torn temporary
    # and a torn last sample record.
    (leg / "checkpoint.npz.tmp").write_bytes(b"PK\x03\x04 torn")
    with open(leg / "samples.bin", "ab") as fh:
        fh.write(b"\x00" * 37)
    partial = SamplingResult.load(tmp_path / "run", "lj")
    assert partial.n_iterations == 14  # the torn record is ignored
    resumed = lj_sampler(tmp_path / "run", n_iterations=20).run()
    assert np.array_equal(ref.u_kln, resumed.u_kln)


def test_damaged_checkpoint_gives_a_clear_error(tmp_path):
    lj_sampler(tmp_path, n_iterations=3).run()
    (tmp_path / "lj" / "checkpoint.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot be read.*delete the leg directory"):
        lj_sampler(tmp_path, n_iterations=6).run()


def test_fingerprint_mismatch_names_what_changed(tmp_path):
    lj_sampler(tmp_path, n_iterations=3).run()
    system, x = lj_fluid()
    states = [dict(s) for s in LJ_STATES]
    states[2]["lam"] = 0.5
    settings = SamplerSettings(n_iterations=6, steps_per_iteration=20, timestep_fs=1.0,
                               threads=THREADS)
    rex = ReplicaExchange(system, x, states, settings, tmp_path, name="lj", progress=False)
    with pytest.raises(ValueError) as info:
        rex.run()
    msg = str(info.value)
    assert "state 2: lam 0.6 -> 0.5" in msg
    assert "settings.timestep_fs 2.0 -> 1.0" in msg
    assert "settings.steps_per_iteration" not in msg


def test_harmonic_wells_exact_free_energy(tmp_path):
    """Particles in a well k/2 r²: ΔG(k0 → k) = (3n/2) kT ln(k/k0) exactly."""
    from tensormol.fe import analyze_leg

    ks = [100.0, 170.0, 290.0, 500.0]
    n = 4
    # Light particles and strong friction: decorrelated within a couple of iterations.
    settings = SamplerSettings(n_iterations=300, steps_per_iteration=40, friction_per_ps=20.0,
                               checkpoint_every=100, threads=THREADS, seed=3)
    rex = ReplicaExchange(harmonic_system(n, mass=1.0), np.full((n, 3), 0.01),
                          [{"k_spring": k} for k in ks], settings, tmp_path, name="wells",
                          progress=False)
    res = rex.run()
    est = analyze_leg(res.u_kln, res.temperature_K)
    exact = 1.5 * n * np.log(ks[-1] / ks[0])
    assert 0.05 < est.ddg_kT < 0.5
    assert abs(est.dg_kT - exact) < 3.5 * est.ddg_kT, (est.dg_kT, exact, est.ddg_kT)
    np.testing.assert_allclose(est.overlap.sum(axis=1), 1.0, atol=1e-10)
    # Equipartition at every state: <u_kk> = 3n/2.
    np.testing.assert_allclose(res.u_kln[np.arange(4), np.arange(4)].mean(axis=1), 1.5 * n,
                               atol=0.6)


def test_nan_error_names_leg_state_replica_iteration_and_saves_frame(tmp_path):
    from openmm import app

    # The energy is NaN beyond x = 0.5 nm, and its force pushes there; at the weak state the
    # particle soon arrives.
    system = harmonic_system(1, expression="0.5*k_spring*(x^2+y^2+z^2) + sqrt(0.5 - x)")
    top = app.Topology()
    residue = top.addResidue("AR", top.addChain())
    top.addAtom("AR", app.Element.getBySymbol("Ar"), residue)
    settings = SamplerSettings(n_iterations=200, steps_per_iteration=50, threads=THREADS,
                               minimize=False)
    rex = ReplicaExchange(system, np.zeros((1, 3)), [{"k_spring": 1000.0}, {"k_spring": 0.1}],
                          settings, tmp_path, name="nanleg", topology=top, progress=False)
    with pytest.raises(SamplingError) as info:
        rex.run()
    err = info.value
    msg = str(err)
    assert "leg 'nanleg'" in msg and f"replica {err.replica}" in msg
    assert "state 1 (k_spring=0.1)" in msg and f"iteration {err.iteration}" in msg
    assert "smaller timestep" in msg and "hydrogen mass" in msg
    assert err.state_index == 1 and isinstance(err, ValueError)
    assert err.frame.is_file() and str(err.frame) in msg
    assert err.pdb.is_file() and str(err.pdb) in msg
    with np.load(err.frame) as z:
        assert np.isfinite(z["start_positions"]).all()
        assert int(z["state_index"]) == 1
    # Samples of the iterations before the failure are kept and load.
    assert SamplingResult.load(tmp_path, "nanleg").n_iterations <= err.iteration


def test_bad_input_errors(tmp_path):
    system, x = lj_fluid()
    settings = SamplerSettings(n_iterations=2, steps_per_iteration=2, threads=THREADS)
    with pytest.raises(ValueError, match="does not define: lambda_sterics"):
        ReplicaExchange(system, x, [{"lambda_sterics": 1.0}], settings, tmp_path).run()
    with pytest.raises(ValueError, match=r"positions must have shape \(20, 3\)"):
        ReplicaExchange(system, x[:5], LJ_STATES, settings, tmp_path)
    with pytest.raises(ValueError, match="every state must set the same parameters"):
        ReplicaExchange(system, x, [{"lam": 1.0}, {"eps": 1.0}], settings, tmp_path)
    with pytest.raises(ValueError, match="steps_per_iteration"):
        SamplerSettings(n_iterations=2, steps_per_iteration=0)


if __name__ == "__main__":  # the child of the SIGKILL test
    lj_sampler(Path(sys.argv[1]), n_iterations=int(sys.argv[2]), checkpoint_every=1).run()


def test_analytic_reduced_potentials_and_neighbor_swaps(tmp_path):
    """A protocol's analytic reduced potentials give the default path's samples; the
    neighbour scheme only swaps adjacent states."""
    from openmm import unit

    ks = np.array([100.0, 200.0, 400.0])
    states = [{"k_spring": k} for k in ks]
    kT = 298.15 * 0.0083144626181532  # kJ/mol

    def analytic(context, k):
        x = context.getState(getPositions=True).getPositions(asNumpy=True)
        r2 = float((x.value_in_unit(unit.nanometer) ** 2).sum())
        return 0.5 * ks * r2 / kT

    out = []
    for name, fn in (("default", None), ("analytic", analytic)):
        settings = SamplerSettings(n_iterations=15, steps_per_iteration=20, threads=THREADS,
                                   swap_scheme="neighbors")
        rex = ReplicaExchange(harmonic_system(2, mass=1.0), np.full((2, 3), 0.01), states,
                              settings, tmp_path, name=name, reduced_potentials=fn,
                              progress=False)
        out.append(rex.run())
    np.testing.assert_allclose(out[0].u_kln, out[1].u_kln, rtol=1e-6)
    assert np.array_equal(out[0].replica_states, out[1].replica_states)
    assert out[0].n_attempted[0, 2] == 0 and out[0].n_attempted[0, 1] > 0
    assert sorted(out[0].replica_states[-1]) == [0, 1, 2]


def _python_well(state):
    """A λ-independent energy computed in Python (as an ML potential is): 25 kJ/mol/nm² r²."""
    from openmm import unit

    x = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    return 25.0 * float((x**2).sum()), -50.0 * x


def test_parameter_free_forces_are_evaluated_once_per_replica(tmp_path):
    """With the state-dependent and -independent forces in separate groups, the independent
    ones (here a Python callback, like the ML potential of an ML/MM leg) are evaluated once per
    replica; the reduced potentials equal those of whole-energy evaluations."""
    out = []
    for name, python_group in (("split", 0), ("whole", 1)):
        system = harmonic_system(2, mass=1.0)
        system.getForce(0).setForceGroup(1)
        extra = openmm.PythonForce(_python_well)
        extra.setForceGroup(python_group)
        system.addForce(extra)
        settings = SamplerSettings(n_iterations=12, steps_per_iteration=20, threads=THREADS)
        rex = ReplicaExchange(system, np.full((2, 3), 0.01),
                              [{"k_spring": k} for k in (100.0, 200.0, 400.0)], settings,
                              tmp_path, name=name, progress=False)
        out.append(rex.run())
        assert (rex._split is not None) == (name == "split")
    np.testing.assert_allclose(out[0].u_kln, out[1].u_kln, rtol=1e-10)
    assert np.array_equal(out[0].replica_states, out[1].replica_states)
