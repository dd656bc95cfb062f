"""results.json/csv, plots and the report of finished, partial and failed runs (and the CLI)."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")

from tensormol.fe import (  # noqa: E402
    ReplicaExchange,
    SamplerSettings,
    SamplingError,
    SamplingResult,
    analyze_leg,
    report,
    write_results,
)

pytestmark = pytest.mark.openmm
THREADS = int(os.environ.get("TENSORMOL_TEST_THREADS", "1"))


def well(expression="0.5*k_spring*(x^2+y^2+z^2)", n=2):
    system = openmm.System()
    force = openmm.CustomExternalForce(expression)
    force.addGlobalParameter("k_spring", 100.0)
    for i in range(n):
        system.addParticle(1.0)
        force.addParticle(i, [])
    system.addForce(force)
    return system


def leg(run_dir, name, n_iterations, *, stop_at=None, expression=None, states=None):
    states = states or [{"k_spring": k} for k in (100.0, 200.0, 400.0)]
    settings = SamplerSettings(n_iterations=n_iterations, steps_per_iteration=20,
                               friction_per_ps=20.0, checkpoint_every=5, threads=THREADS,
                               minimize=expression is None)
    rex = ReplicaExchange(well(expression) if expression else well(), np.full((2, 3), 0.01),
                          states, settings, run_dir / name.split("/")[0],
                          name=name.split("/")[1], progress=False)
    return rex.run(stop_at)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    leg(d, "ligA/solvent", 60)
    leg(d, "ligB/solvent", 60, stop_at=25)  # partial: killed or stopped at 25 of 60
    with pytest.raises(SamplingError):
        leg(d, "ligC/solvent", 200,
            expression="0.5*k_spring*(x^2+y^2+z^2) + sqrt(0.5 - x)",
            states=[{"k_spring": 1000.0}, {"k_spring": 0.1}])
    return d


def test_partial_and_failed_legs_are_reported_without_results_json(run_dir):
    text = report(run_dir)
    assert "no results.json yet" in text
    lines = {ln.split()[0]: ln for ln in text.splitlines() if ln.startswith("  lig")}
    assert "done" in lines["ligA/solvent"] and "60/60" in lines["ligA/solvent"]
    assert "partial" in lines["ligB/solvent"] and "25/60" in lines["ligB/solvent"]
    assert "failed" in lines["ligC/solvent"]
    assert "error: leg 'solvent': replica" in text and "Particle coordinate is NaN" in text
    # The partial leg is analysed from its 25 samples: ΔG = 3 kT ln 4 (2 particles, k x4).
    res = SamplingResult.load(run_dir / "ligB", "solvent")
    est = analyze_leg(res.u_kln, res.temperature_K)
    assert res.status == "partial" and res.n_iterations == 25
    assert abs(est.dg_kT - 3.0 * np.log(4.0)) < 4 * est.ddg_kT + 0.1
    assert f"{est.dg_kT:.2f} ± {est.ddg_kT:.2f}" in lines["ligB/solvent"]


def test_write_results_json_csv_plots_and_report(run_dir, tmp_path):
    import matplotlib

    rc_before = dict(matplotlib.rcParams)
    res_a = SamplingResult.load(run_dir / "ligA", "solvent")
    est_a = analyze_leg(res_a.u_kln, res_a.temperature_K)
    rows = [
        {"name": "ligA", "kind": "absolute", "dg_kcal": -5.0, "ddg_kcal": 0.2, "status": "done",
         "error": None, "legs": ["ligA/solvent"]},
        {"name": "ligA->ligB", "kind": "relative", "dg_kcal": -1.0, "ddg_kcal": 0.2,
         "status": "done", "error": None, "legs": []},
        {"name": "e2", "ligand_a": "ligB", "ligand_b": "ligD", "kind": "relative",
         "dg_kJ": 2.0 * 4.184, "ddg_kJ": 0.3 * 4.184, "status": "done", "error": None,
         "legs": []},
        {"name": "ligD->ligA", "kind": "relative", "dg_kcal": -0.7, "ddg_kcal": 0.2,
         "status": "partial", "error": None, "legs": []},
        {"name": "ligA->ligC", "kind": "relative", "dg_kcal": None, "ddg_kcal": None,
         "status": "failed", "error": "leg 'solvent': replica 0 blew up", "legs": []},
    ]
    experimental = {"ligA": -5.2, "ligB": -6.1, "ligD": -4.0}
    out = run_dir  # the run directory holds the legs; results go next to them
    content = write_results(out, rows, {"ligA/solvent": est_a}, experimental)
    data = json.loads((out / "results.json").read_text())
    assert data == json.loads(json.dumps(content))
    e2 = data["rows"][2]
    assert e2["dg_kcal"] == pytest.approx(2.0) and e2["ddg_kcal"] == pytest.approx(0.3)
    net = {x["name"]: x for x in data["network"]["ligands"]}
    # Only ligA's anchor fixes the absolute scale; the cycle's closure (0.3) spreads over edges.
    assert net["ligA"]["absolute"] and net["ligA"]["dg"] == pytest.approx(-5.0)
    assert net["ligC"]["dg"] is None and net["ligC"]["sigma"] is None  # only a failed edge
    (cyc,) = data["network"]["cycles"]
    assert abs(cyc["closure"]) == pytest.approx(0.3)
    assert [(f["a"], f["b"]) for f in data["network"]["failed_edges"]] == [("ligA", "ligC")]
    assert data["comparison"]["edges"]["n"] == 3
    assert data["legs"]["ligA/solvent"]["overlap"] == est_a.overlap.tolist()
    with open(out / "results.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [r["name"] for r in table[:5]] == [r["name"] for r in rows]
    for r in table:
        if r["dg_kcal"]:
            assert float(r["dg_kJ"]) == pytest.approx(4.184 * float(r["dg_kcal"]))
    assert {r["name"] for r in table if r["kind"].startswith("ligand_mle")} == {
        "ligA", "ligB", "ligD", "ligC"}
    for png in ("ligA__solvent_overlap.png", "ligA__solvent_convergence.png",
                "ligA__solvent_mixing.png", "ddg_vs_experiment.png", "dg_vs_experiment.png"):
        assert (out / "plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert dict(matplotlib.rcParams) == rc_before

    text = report(out)
    assert "ligA->ligB" in text and "ligA->ligC" in text
    assert "failed:\n  ligA->ligC: leg 'solvent': replica 0 blew up" in text
    assert "cycle" in text and "closure" in text
    assert "failed edge ligA → ligC" in text
    assert "partial" in text and "vs experiment (edges, n=3)" in text

    # A leg named by the directory that holds its sampler directory finds its samples too.
    write_results(tmp_path, rows[:1], {"ligA": est_a}, replica_states=None)
    assert not (tmp_path / "plots" / "ligA_mixing.png").exists()  # not under tmp_path
    write_results(out, rows[:1], {"ligA": est_a})
    assert (out / "plots" / "ligA_mixing.png").is_file()

    # The same through the command line.
    from tensormol.cli.main import main

    assert main(["fe", "report", str(out)]) == 0
    assert main(["fe", "report", "--json", str(out)]) == 0


def test_cli_report_output_and_errors(run_dir, tmp_path, capsys):
    from tensormol.cli.main import main

    assert main(["fe", "report", str(run_dir)]) == 0
    assert capsys.readouterr().out == report(run_dir)
    assert main(["fe", "report", "--json", str(run_dir)]) == 0
    legs = json.loads(capsys.readouterr().out)
    assert legs["ligB/solvent"]["status"] == "partial"
    assert legs["ligB/solvent"]["estimate"]["n_iterations"] == 25
    assert main(["fe", "report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["fe", "report", str(tmp_path)]) == 2
    assert "neither results.json nor legs" in capsys.readouterr().err


def test_bad_rows_are_refused(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        write_results(tmp_path, [{"name": "x", "kind": "weird", "status": "done"}], {})
    with pytest.raises(ValueError, match="names no ligands"):
        write_results(tmp_path, [{"name": "x", "kind": "relative", "status": "done"}], {})
    with pytest.raises(ValueError, match="disagree"):
        write_results(tmp_path, [{"name": "x", "kind": "absolute", "status": "done",
                                  "dg_kcal": 1.0, "dg_kJ": 1.0}], {})
    assert not (tmp_path / "results.json").exists()
