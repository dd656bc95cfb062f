"""Network maximum likelihood: known answers, cycle closures, failed edges, components."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tensormol.fe import network_estimate

TRUE = {"A": -5.0, "B": -6.5, "C": -4.2, "D": -7.1, "E": -5.9}
EDGES = [("A", "B"), ("B", "C"), ("C", "A"), ("A", "D"), ("D", "E"), ("B", "E"), ("C", "E")]


def test_consistent_edges_with_an_anchor_recover_the_answer():
    edges = [{"a": a, "b": b, "ddg": TRUE[b] - TRUE[a], "sigma": 0.2} for a, b in EDGES]
    est = network_estimate(edges, anchors={"A": (TRUE["A"], 0.3)})
    for name, g in TRUE.items():
        assert est.dg[name] == pytest.approx(g, abs=1e-10)
        assert est.anchored[name]
    assert len(est.cycles) == len(EDGES) - len(TRUE) + 1  # m - n + c independent cycles
    for cyc in est.cycles:
        assert cyc["ligands"][0] == cyc["ligands"][-1]
        assert cyc["closure"] == pytest.approx(0.0, abs=1e-12)
    assert not est.failed_edges and not est.disconnected


def test_relative_gauge_sums_to_zero_and_shift_to_experiment():
    edges = [(a, b, TRUE[b] - TRUE[a], 0.2) for a, b in EDGES]
    est = network_estimate(edges)
    mean = np.mean(list(TRUE.values()))
    for name, g in TRUE.items():
        assert est.dg[name] == pytest.approx(g - mean, abs=1e-10)
        assert not est.anchored[name]
    assert sum(est.dg.values()) == pytest.approx(0.0, abs=1e-10)
    shifted = network_estimate(edges, shift_to=TRUE)
    for name, g in TRUE.items():
        assert shifted.dg[name] == pytest.approx(g, abs=1e-10)
    d, s = est.ddg("A", "D")
    assert d == pytest.approx(TRUE["D"] - TRUE["A"], abs=1e-10) and 0 < s < 0.2


def test_chain_sigma_adds_in_quadrature_and_cycle_closure_is_spread_evenly():
    est = network_estimate([("A", "B", 1.0, 0.3), ("B", "C", 2.0, 0.4)], anchors={"A": (-5, 0.5)})
    assert est.dg["C"] == pytest.approx(-2.0)
    assert est.sigma["C"] == pytest.approx(math.sqrt(0.5**2 + 0.3**2 + 0.4**2))
    # A triangle whose edges do not close: closure 0.9, equal sigma -> each edge off by 0.3.
    tri = network_estimate([("A", "B", 1.0, 0.2), ("B", "C", 1.0, 0.2), ("C", "A", -1.1, 0.2)])
    assert len(tri.cycles) == 1
    cyc = tri.cycles[0]
    assert abs(cyc["closure"]) == pytest.approx(0.9)
    assert cyc["sigma"] == pytest.approx(math.sqrt(3) * 0.2)
    assert sorted(e["edge"] for e in cyc["edges"]) == [0, 1, 2]
    for r in tri.residuals:
        assert abs(r["residual"]) == pytest.approx(0.3)


def test_predicted_sigma_matches_monte_carlo_spread():
    rng = np.random.default_rng(0)
    sig = np.array([0.2, 0.3, 0.25, 0.4, 0.2, 0.35, 0.3])
    draws = []
    for _ in range(2000):
        noise = rng.normal(0.0, sig)
        edges = [(a, b, TRUE[b] - TRUE[a] + z, s) for (a, b), z, s in zip(EDGES, noise, sig)]
        anchor_noise = rng.normal(0.0, 0.5)
        est = network_estimate(edges, anchors={"B": (TRUE["B"] + anchor_noise, 0.5)})
        draws.append([est.dg[n] for n in TRUE])
    draws = np.array(draws)
    np.testing.assert_allclose(draws.mean(axis=0), list(TRUE.values()), atol=0.03)
    predicted = [est.sigma[n] for n in TRUE]
    np.testing.assert_allclose(draws.std(axis=0), predicted, rtol=0.07)


def test_failed_edges_are_listed_and_disconnected_ligands_reported():
    edges = [
        {"a": "A", "b": "B", "ddg": -1.5, "sigma": 0.2},
        {"a": "B", "b": "C", "ddg": None, "sigma": None, "error": "replica 3 NaN at state 7"},
        {"a": "D", "b": "E", "ddg": 1.2, "sigma": 0.3},
        {"a": "A", "b": "F", "ddg": float("nan"), "sigma": 0.2},
    ]
    est = network_estimate(edges, ligands=["G"])
    assert [(f["a"], f["b"]) for f in est.failed_edges] == [("B", "C"), ("A", "F")]
    assert "NaN at state 7" in est.failed_edges[0]["error"]
    assert est.disconnected
    comps = sorted(sorted(c) for c in est.components)
    assert comps == [["A", "B"], ["C"], ["D", "E"], ["F"], ["G"]]
    assert est.dg["B"] - est.dg["A"] == pytest.approx(-1.5)
    assert np.isnan(est.dg["C"]) and np.isinf(est.sigma["C"])  # nothing is known about C
    with pytest.raises(ValueError, match="different connected components"):
        est.ddg("A", "D")
    d = est.to_dict()
    assert {x["name"] for x in d["ligands"]} == set("ABCDEFG")


def test_bad_input():
    with pytest.raises(ValueError, match="sigma"):
        network_estimate([("A", "B", 1.0, 0.0)])
    with pytest.raises(ValueError, match="itself"):
        network_estimate([("A", "A", 1.0, 0.1)])
    with pytest.raises(ValueError, match="anchors"):
        network_estimate([("A", "B", 1.0, 0.1)], anchors={"A": (1.0, -1.0)})
