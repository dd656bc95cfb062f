"""The MD runner: ensembles, reporters, exact resume after a stop, the ``tensormol md`` CLI."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tensormol.md import CSV_COLUMNS, load_md_config, run_md

pytestmark = pytest.mark.openmm


@pytest.fixture(scope="module")
def ethanol_xyz(tmp_path_factory):
    import ase.io
    from ase.build import molecule

    path = tmp_path_factory.mktemp("inputs") / "ethanol.xyz"
    ase.io.write(path, molecule("CH3CH2OH"))
    return path


@pytest.fixture(scope="module")
def ethanol_box(tmp_path_factory):
    """Two ethanols in a periodic 8 Å box (extended XYZ)."""
    import ase.io
    from ase.build import molecule

    a = molecule("CH3CH2OH")
    b = a.copy()
    b.translate([4.0, 4.0, 4.0])
    a += b
    a.translate([2.0, 2.0, 2.0])
    a.set_cell([8.0, 8.0, 8.0])
    a.pbc = True
    path = tmp_path_factory.mktemp("inputs") / "box.extxyz"
    ase.io.write(path, a)
    return path


def _csv(path):
    return np.genfromtxt(path, delimiter=",", names=True)


def test_stop_and_resume_continues_exactly(ethanol_xyz, trained_bundle, tmp_path):
    common = dict(structure=str(ethanol_xyz), model=str(trained_bundle), steps=30,
                  report_interval=5, trajectory_interval=5, checkpoint_interval=10, threads=1,
                  minimize=False, ensemble="nvt")
    straight = load_md_config(**common, output=str(tmp_path / "a"))
    run_md(straight, out=io.StringIO())
    broken = load_md_config(**common, output=str(tmp_path / "b"))
    first = run_md(broken, stop_at_step=17, out=io.StringIO())  # "killed" after step 17
    assert first.final_step == 17 and "final" not in first.files
    log = io.StringIO()
    second = run_md(broken, resume=True, out=log)
    assert "resuming from step 10" in log.getvalue()
    assert second.steps_done == 20 and second.final_step == 30
    a, b = (tmp_path / "a" / "energies.csv").read_text(), (tmp_path / "b" / "energies.csv")
    assert a == b.read_text()  # same rows, bit for bit (Langevin noise state restored)
    assert a.splitlines()[0] == ",".join(CSV_COLUMNS)
    assert len(a.splitlines()) == 1 + 6
    da = (tmp_path / "a" / "trajectory.dcd").read_bytes()
    db = (tmp_path / "b" / "trajectory.dcd").read_bytes()
    assert len(da) == len(db)
    # Identical but for the creation time stamp written into the DCD title (bytes 180..260).
    assert da[:180] == db[:180] and da[260:] == db[260:]


def test_resume_without_checkpoint_is_explained(ethanol_xyz, tiny_bundle, tmp_path):
    cfg = load_md_config(structure=str(ethanol_xyz), model=str(tiny_bundle), steps=5,
                         output=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run_md(cfg, resume=True, out=io.StringIO())


def test_npt_changes_the_box_and_reports_volume(ethanol_box, tiny_bundle, tmp_path):
    cfg = load_md_config(structure=str(ethanol_box), model=str(tiny_bundle), ensemble="npt",
                         steps=40, barostat_interval=2, pressure=5000.0, report_interval=10,
                         trajectory_interval=20, checkpoint_interval=0, minimize=False,
                         threads=1, timestep=0.5, output=str(tmp_path))
    run_md(cfg, out=io.StringIO())
    rows = _csv(tmp_path / "energies.csv")
    assert np.isfinite(rows["volume_nm3"]).all()
    assert len(np.unique(rows["volume_nm3"])) > 1  # the barostat moved the box
    # 40 steps at 5 kbar move the 0.512 nm³ box by at most 2.8 % (seeds 1-3 measured).
    assert np.all(np.abs(rows["volume_nm3"] - 0.512) < 0.06 * 0.512)


def test_cli_minimize_and_progress_line(ethanol_xyz, trained_bundle, tmp_path, capsys):
    from tensormol.cli.main import main

    out = tmp_path / "cli"
    assert main(["md", str(ethanol_xyz), str(trained_bundle), "--ensemble", "nve", "--steps",
                 "20", "--report-interval", "10", "--timestep", "0.25", "--threads", "1",
                 "--checkpoint-interval", "10", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "minimized:" in text
    line = [s for s in text.splitlines() if s.startswith("step ")][-1]
    for field in ("20/20", "ps", "ns/day", "ETA", "Epot", "Etot", "kJ/mol", " K"):
        assert field in line
    assert (out / "trajectory.dcd").is_file() and (out / "checkpoint.chk").is_file()
    assert main(["md", str(ethanol_xyz), str(tmp_path / "none.tmol"), "-o",
                 str(tmp_path / "other")]) == 2


def test_torch_threads_apply_during_the_run_only(ethanol_xyz, tiny_bundle, tmp_path,
                                                 monkeypatch):
    import torch

    from tensormol.md import _runner

    before = torch.get_num_threads()
    seen = []
    cfg = load_md_config(structure=str(ethanol_xyz), model=str(tiny_bundle), steps=4,
                         report_interval=2, trajectory_interval=0, checkpoint_interval=0,
                         minimize=False, torch_threads=1, output=str(tmp_path))

    class Probe:  # a reporter that records the thread count inside the run
        def describeNextReport(self, simulation):
            return (2, False, False, False, False)

        def report(self, simulation, state):
            seen.append(torch.get_num_threads())

    original = _runner.build_simulation

    def with_probe(c, structure=None):
        sim, structure, ml = original(c, structure)
        sim.reporters.append(Probe())
        return sim, structure, ml

    monkeypatch.setattr(_runner, "build_simulation", with_probe)
    run_md(cfg, out=io.StringIO())
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == before


def test_compiled_ops_loads_the_extension(ethanol_xyz, tiny_bundle, tmp_path):
    from tensormol._ext import ext_status

    cfg = load_md_config(structure=str(ethanol_xyz), model=str(tiny_bundle), steps=2,
                         report_interval=1, trajectory_interval=0, checkpoint_interval=0,
                         minimize=False, compiled_ops=True, output=str(tmp_path))
    result = run_md(cfg, out=io.StringIO())
    assert result.final_step == 2 and ext_status().loaded
