"""``tensormol md`` guards and reports: overwrite/resume, Ctrl-C, NVE drift, geometry errors,
threads, path rules, 0-based indices."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from tensormol.md import (
    MDInterrupted,
    energy_drift,
    load_md_config,
    load_structure,
    run_md,
    select_atoms,
)

pytestmark = pytest.mark.openmm


@pytest.fixture(scope="module")
def ethanol_xyz(tmp_path_factory):
    import ase.io
    from ase.build import molecule

    path = tmp_path_factory.mktemp("inputs") / "ethanol.xyz"
    ase.io.write(path, molecule("CH3CH2OH"))
    return path


def _cfg(xyz, bundle, out, **kw):
    base = dict(structure=str(xyz), model=str(bundle), steps=8, report_interval=2,
                trajectory_interval=0, checkpoint_interval=4, minimize=False, threads=1,
                output=str(out))
    base.update(kw)
    return load_md_config(**base)


def test_a_second_run_into_the_same_folder_is_refused(ethanol_xyz, tiny_bundle, tmp_path):
    out = tmp_path / "run"
    run_md(_cfg(ethanol_xyz, tiny_bundle, out, steps=4), out=io.StringIO())
    assert (out / "checkpoint.chk").is_file()
    with pytest.raises(FileExistsError, match=r"--resume.*--overwrite"):
        run_md(_cfg(ethanol_xyz, tiny_bundle, out, steps=4), out=io.StringIO())
    # --overwrite removes the earlier run's files, a stale checkpoint included.
    res = run_md(_cfg(ethanol_xyz, tiny_bundle, out, steps=3, checkpoint_interval=0),
                 overwrite=True, out=io.StringIO())
    assert res.final_step == 3 and not (out / "checkpoint.chk").exists()
    with pytest.raises(ValueError, match="exclude each other"):
        run_md(_cfg(ethanol_xyz, tiny_bundle, out), resume=True, overwrite=True)


def test_resume_refuses_changed_settings_and_names_them(ethanol_xyz, tiny_bundle, tmp_path):
    out = tmp_path / "run"
    run_md(_cfg(ethanol_xyz, tiny_bundle, out, ensemble="nvt"), stop_at_step=5,
           out=io.StringIO())
    with pytest.raises(ValueError) as err:
        run_md(_cfg(ethanol_xyz, tiny_bundle, out, ensemble="nve", timestep=1.0), resume=True)
    msg = str(err.value)
    assert "ensemble: 'nvt' -> 'nve'" in msg and "timestep: 0.5 -> 1.0" in msg
    assert "temperature" not in msg  # only what changed
    # steps (and how the run executes) may change: the run goes on to the new total.
    res = run_md(_cfg(ethanol_xyz, tiny_bundle, out, steps=12, threads=2), resume=True,
                 out=io.StringIO())
    assert res.final_step == 12
    assert json.loads((out / "config.json").read_text())["steps"] == 12


class _SigintAt:
    """A reporter that sends this process SIGINT once the run reaches ``step``."""

    def __init__(self, step):
        self.step = step

    def describeNextReport(self, simulation):  # noqa: N802 (OpenMM API)
        return (max(self.step - simulation.currentStep, 1), False, False, False, False)

    def report(self, simulation, state):
        if simulation.currentStep == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_stops_with_a_checkpoint_and_resumes_exactly(ethanol_xyz, tiny_bundle,
                                                            tmp_path, monkeypatch):
    from tensormol.md import _runner

    kw = dict(steps=60, report_interval=5, checkpoint_interval=0, ensemble="nvt")
    run_md(_cfg(ethanol_xyz, tiny_bundle, tmp_path / "a", **kw), out=io.StringIO())
    original = _runner.build_simulation

    def with_interrupt(cfg, structure=None):
        sim, structure, ml = original(cfg, structure)
        sim.reporters.append(_SigintAt(7))
        return sim, structure, ml

    monkeypatch.setattr(_runner, "build_simulation", with_interrupt)
    with pytest.raises(MDInterrupted) as err:
        run_md(_cfg(ethanol_xyz, tiny_bundle, tmp_path / "b", **kw), out=io.StringIO())
    monkeypatch.setattr(_runner, "build_simulation", original)
    step = err.value.step
    assert 7 <= step < 60 and step % _runner._CHUNK == 0  # the end of the running chunk
    assert f"stopped at step {step}" in str(err.value) and "--resume" in str(err.value)
    assert json.loads((tmp_path / "b" / "checkpoint.json").read_text())["step"] == step
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    run_md(_cfg(ethanol_xyz, tiny_bundle, tmp_path / "b", **kw), resume=True, out=io.StringIO())
    a = (tmp_path / "a" / "energies.csv").read_text()
    assert a == (tmp_path / "b" / "energies.csv").read_text()


def test_ctrl_c_in_the_command_prints_one_line(ethanol_xyz, tiny_bundle, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tensormol", "md", str(ethanol_xyz), str(tiny_bundle),
           "--steps", "1000000", "--report-interval", "10", "--trajectory-interval", "0",
           "--no-minimize", "--threads", "1", "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        for line in proc.stdout:  # wait until MD steps run
            if line.startswith("step "):
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("tensormol md: stopped at step ") and "resume with --resume" in line
    step = int(line.split("stopped at step ")[1].split(";")[0])
    assert json.loads((out / "checkpoint.json").read_text())["step"] == step > 0


def test_nve_run_reports_its_energy_drift(ethanol_xyz, trained_bundle, tmp_path):
    log = io.StringIO()
    res = run_md(_cfg(ethanol_xyz, trained_bundle, tmp_path, ensemble="nve", steps=200,
                      report_interval=4, checkpoint_interval=0), out=log)
    assert res.drift is not None and res.drift.samples == 50
    assert abs(res.drift.drift) < 3 * res.drift.error + 5.0  # kJ/mol/ns/atom over 0.1 ps
    assert "NVE energy drift" in log.getvalue() and "kJ/mol/ns/atom" in log.getvalue()
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["drift"]["drift_kJ_mol_ns_atom"] == pytest.approx(res.drift.drift)
    assert "NVE energy drift" in (tmp_path / "md.log").read_text()


def test_energy_drift_fit_recovers_a_known_slope():
    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 10.0, 1001)  # ps
    e = -100.0 + 0.09 * t + rng.normal(0.0, 0.01, t.size)  # 0.09 kJ/mol/ps over 9 atoms
    d = energy_drift(t, e, n_atoms=9)
    assert d.drift == pytest.approx(10.0, abs=3 * d.error)  # kJ/mol/ns/atom
    assert 0.0 < d.error < 0.2
    with pytest.raises(ValueError, match="at least 3"):
        energy_drift(t[:2], e[:2], 9)


def test_a_molecule_falling_apart_is_reported_with_the_step(ethanol_xyz, tiny_bundle, tmp_path):
    from tensormol.export import GeometryError

    # A random model at 20,000 K and 2 fs: the molecule flies apart within a few dozen steps.
    cfg = _cfg(ethanol_xyz, tiny_bundle, tmp_path, temperature=20000.0, timestep=2.0,
               steps=2000, checkpoint_interval=0, ensemble="nve")
    with pytest.raises(GeometryError) as err:
        run_md(cfg, out=io.StringIO())
    assert err.value.step is not None and err.value.step > 0
    assert f"at step {err.value.step}" in str(err.value) and "0-based" in str(err.value)


def test_thread_policy_is_applied_logged_and_restored(ethanol_xyz, tiny_bundle, tmp_path):
    import torch

    before = torch.get_num_threads()
    res = run_md(_cfg(ethanol_xyz, tiny_bundle, tmp_path, threads=None, steps=2),
                 out=io.StringIO())
    assert "torch 1" in res.threads and "OpenMM CPU 1" in res.threads
    assert "OpenMP wait" in res.threads
    assert (tmp_path / "md.log").read_text().splitlines()[0] == res.threads
    assert torch.get_num_threads() == before


def test_output_resolves_against_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "md.yaml").write_text(
        "md:\n  structure: mol.xyz\n  model: m.tmol\n  output: runs/a\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_md_config("cfg/md.yaml")
    assert cfg.output == "runs/a"  # where the command runs, as for `tensormol train`
    assert cfg.structure == os.path.join("cfg", "mol.xyz")  # inputs travel with the YAML


def test_ml_indices_are_said_to_be_zero_based(ethanol_xyz):
    top = load_structure(ethanol_xyz).topology
    assert select_atoms(top, "0-2,8") == [0, 1, 2, 8]
    with pytest.raises(ValueError, match=r"0-based, valid 0\.\.8"):
        select_atoms(top, "9")


def test_compressed_xyz_gives_its_last_frame(tmp_path):
    import ase.io
    from ase.build import molecule

    a, b = molecule("CH3CH2OH"), molecule("CH3CH2OH")
    b.translate([1.0, 0.0, 0.0])
    ase.io.write(tmp_path / "t.xyz.gz", [a, b])
    s = load_structure(tmp_path / "t.xyz.gz")
    from openmm import unit

    np.testing.assert_allclose(np.asarray(s.positions.value_in_unit(unit.angstrom)),
                               b.get_positions(), atol=1e-12)
