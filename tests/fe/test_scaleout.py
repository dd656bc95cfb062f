"""Independent legs on two local Dask workers give exactly the serial results."""

from __future__ import annotations

import os

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
pytest.importorskip("distributed")

from tensormol.fe import run_leg_files, run_tasks, save_leg_files  # noqa: E402

pytestmark = pytest.mark.openmm
THREADS = int(os.environ.get("TENSORMOL_TEST_THREADS", "1"))


def lj_leg(n: int = 12, box: float = 1.4):
    """A small periodic Lennard-Jones fluid whose interactions are scaled by ``lam``."""
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(openmm.Vec3(box, 0, 0), openmm.Vec3(0, box, 0),
                                        openmm.Vec3(0, 0, box))
    force = openmm.CustomNonbondedForce("4*0.5*lam*((0.3/r)^12-(0.3/r)^6)")
    force.addGlobalParameter("lam", 1.0)
    force.setNonbondedMethod(force.CutoffPeriodic)
    force.setCutoffDistance(0.6)
    for _ in range(n):
        system.addParticle(20.0)
        force.addParticle([])
    system.addForce(force)
    grid = np.stack(np.meshgrid(*[np.arange(3)] * 3), -1).reshape(-1, 3)[:n] * box / 3
    return system, grid.astype(np.float64)


def harmonic_leg():
    system = openmm.System()
    force = openmm.CustomExternalForce("0.5*k_spring*(x^2+y^2+z^2)")
    force.addGlobalParameter("k_spring", 100.0)
    for i in range(3):
        system.addParticle(1.0)
        force.addParticle(i, [])
    system.addForce(force)
    return system, np.full((3, 3), 0.01)


def _tasks(tmp_path, out_name):
    tasks = []
    for name, (system, x), states in (
        ("lj", lj_leg(), [{"lam": v} for v in (0.0, 0.5, 1.0)]),
        ("wells", harmonic_leg(), [{"k_spring": k} for k in (100.0, 200.0, 400.0)]),
    ):
        files = save_leg_files(tmp_path / "inputs" / name, system, x)
        settings = {"n_iterations": 25, "steps_per_iteration": 20, "threads": THREADS,
                    "checkpoint_every": 5, "friction_per_ps": 10.0}
        tasks.append((run_leg_files, (files["system_xml"], files["positions_npy"], states,
                                      settings, str(tmp_path / out_name), name),
                      {"n_slices": 2}))
    return tasks


def test_two_local_workers_equal_serial(tmp_path):
    serial = run_tasks(_tasks(tmp_path, "serial"), n_workers=1, progress=False)
    parallel = run_tasks(_tasks(tmp_path, "dask"), n_workers=2, progress=False)
    assert [r["name"] for r in parallel] == ["lj", "wells"]
    for s, p in zip(serial, parallel):
        assert not isinstance(p, BaseException), p
        assert s["estimate"] == p["estimate"]  # bit for bit, the dicts of floats
        assert np.isfinite(s["estimate"]["dg_kT"])
    for name in ("lj", "wells"):
        a = np.fromfile(tmp_path / "serial" / name / "samples.bin", dtype=np.uint8)
        b = np.fromfile(tmp_path / "dask" / name / "samples.bin", dtype=np.uint8)
        assert a.size > 0 and np.array_equal(a, b)


def _fails(x):
    raise ValueError(f"leg {x} blew up")


def test_failures_are_collected_not_raised():
    results = run_tasks([(_fails, ("a",)), (divmod, (7, 2)), lambda: 3], progress=False)
    assert isinstance(results[0], ValueError) and "leg a blew up" in str(results[0])
    assert "task traceback" in results[0].__notes__[0]
    assert results[1:] == [(3, 1), 3]
    with pytest.raises(TypeError, match=r"tasks\[0\]"):
        run_tasks([42])
    with pytest.raises(ValueError, match="n_workers"):
        run_tasks([], n_workers=0)
