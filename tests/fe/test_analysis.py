"""MBAR leg analysis on harmonic oscillators with an exact answer."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings

import numpy as np
import pytest

from tensormol.fe import LegEstimate, analyze_leg, kT_to, mbar_estimate

KS = np.array([1.0, 1.6, 2.6, 4.0, 6.5])  # force constants (kT per unit length²)
EXACT = 0.5 * np.log(KS[-1] / KS[0])  # f_K - f_0 of u = k x²/2 (Gaussian widths)


def harmonic_u_kln(x_kn: np.ndarray) -> np.ndarray:
    """u_kln[k, l, n] = KS[l] x_kn[k, n]² / 2."""
    return 0.5 * KS[None, :, None] * x_kn[:, None, :] ** 2


def iid_samples(rng, n):
    return rng.normal(size=(len(KS), n)) / np.sqrt(KS)[:, None]


def ar1_samples(rng, n, phi):
    """Exact Gaussian samples at each state, correlated in time (AR(1) with coefficient phi)."""
    z = np.empty((len(KS), n))
    z[:, 0] = rng.normal(size=len(KS))
    eps = rng.normal(size=(len(KS), n)) * np.sqrt(1 - phi**2)
    for t in range(1, n):
        z[:, t] = phi * z[:, t - 1] + eps[:, t]
    return z / np.sqrt(KS)[:, None]


def test_independent_samples_exact_dg_sigma_and_overlap():
    rng = np.random.default_rng(7)
    est = analyze_leg(harmonic_u_kln(iid_samples(rng, 500)), 300.0, n_slices=4)
    assert abs(est.dg_kT - EXACT) < 3 * est.ddg_kT
    assert 0.01 < est.ddg_kT < 0.05
    assert est.overlap.shape == (5, 5)
    np.testing.assert_allclose(est.overlap.sum(axis=1), 1.0, atol=1e-10)
    assert est.min_neighbor_overlap() > 0.15
    np.testing.assert_allclose(est.f_kT, 0.5 * np.log(KS / KS[0]), atol=4 * est.ddg_kT)
    assert [f for f, _, _ in est.forward] == [0.25, 0.5, 0.75, 1.0]
    assert est.forward[-1][1] == pytest.approx(est.dg_kT)
    assert est.reverse[-1][1] == pytest.approx(est.dg_kT)
    # Slices agree with the answer within their own (larger) errors.
    for _, dg, ddg in est.forward + est.reverse:
        assert abs(dg - EXACT) < 3.5 * ddg
    assert est.forward[0][2] > est.forward[-1][2]


def test_sigma_matches_the_spread_of_repeats():
    rng = np.random.default_rng(11)
    dgs, sigmas = [], []
    for _ in range(60):
        f, df, _ = mbar_estimate(harmonic_u_kln(iid_samples(rng, 200)), compute_overlap=False)
        dgs.append(f[-1])
        sigmas.append(df[-1])
    spread = np.std(dgs, ddof=1)
    assert abs(np.mean(dgs) - EXACT) < 3 * spread / np.sqrt(len(dgs))
    assert 0.75 < np.mean(sigmas) / spread < 1.33


def test_correlated_samples_are_decorrelated_and_transient_discarded():
    """AR(1) series: g > 1 is found, σ reflects the correlation, the transient is dropped."""
    rng = np.random.default_rng(3)
    dgs, sigmas, gs, t0s = [], [], [], []
    for _ in range(16):
        x = ar1_samples(rng, 1500, 0.9)
        x[:, :150] *= 3.0  # a start far from equilibrium (too hot)
        est = analyze_leg(harmonic_u_kln(x), 300.0, n_slices=2)
        dgs.append(est.dg_kT)
        sigmas.append(est.ddg_kT)
        gs.append(est.g)
        t0s.append(est.t_equil)
    assert 4.0 < np.median(gs) < 30.0
    assert np.median(t0s) >= 100
    spread = np.std(dgs, ddof=1)
    assert abs(np.mean(dgs) - EXACT) < 3.5 * spread / np.sqrt(len(dgs))
    assert 0.5 < np.mean(sigmas) / spread < 2.0
    # Without decorrelation the same data would claim a far smaller error.
    x = ar1_samples(rng, 1500, 0.9)
    naive = mbar_estimate(harmonic_u_kln(x), compute_overlap=False)[1][-1]
    est = analyze_leg(harmonic_u_kln(x), 300.0, n_slices=1)
    assert est.ddg_kT > 2.0 * naive


def test_units_and_serialisation():
    rng = np.random.default_rng(1)
    est = analyze_leg(harmonic_u_kln(iid_samples(rng, 100)), 298.15, n_slices=2)
    kcal, dkcal = est.dg("kcal/mol")
    kj, dkj = est.dg("kJ/mol")
    assert kj / est.dg_kT == pytest.approx(2.4789570296, rel=1e-9)  # R T at 298.15 K, kJ/mol
    assert kcal == pytest.approx(kj / 4.184) and dkcal == pytest.approx(dkj / 4.184)
    assert kT_to(1.0, "kT", 300.0) == 1.0
    with pytest.raises(ValueError, match="unit must be one of"):
        est.dg("eV")
    back = LegEstimate.from_dict(est.to_dict())
    assert back.dg_kT == est.dg_kT and np.array_equal(back.overlap, est.overlap)
    assert back.forward == [tuple(r) for r in est.forward]


def test_pymbar_is_silenced_without_changing_global_state():
    level = logging.getLogger("pymbar").level
    filters = list(warnings.filters)
    rng = np.random.default_rng(2)
    analyze_leg(harmonic_u_kln(ar1_samples(rng, 300, 0.5)), 300.0, n_slices=2)
    assert logging.getLogger("pymbar").level == level
    assert warnings.filters == filters
    # pymbar prints its banners when first imported: check in a fresh interpreter.
    code = ("import numpy as np; from tensormol.fe import analyze_leg; "
            "x = np.random.default_rng(0).normal(size=(2, 400)) / np.sqrt([[1.0], [2.0]]); "
            "u = 0.5 * np.array([1.0, 2.0])[None, :, None] * x[:, None, :] ** 2; "
            "print(analyze_leg(u, 300.0, n_slices=1).dg_kT)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert abs(float(proc.stdout) - 0.5 * np.log(2.0)) < 0.15
    assert proc.stderr == "", proc.stderr


def test_bad_input():
    with pytest.raises(ValueError, match=r"shape \(K, K, N\)"):
        analyze_leg(np.zeros((3, 2, 10)), 300.0)
    u = harmonic_u_kln(iid_samples(np.random.default_rng(0), 10))
    u[1, 2, 5] = np.nan
    with pytest.raises(ValueError, match="sample 5 of state 1 evaluated at state 2"):
        analyze_leg(u, 300.0)
    with pytest.raises(ValueError, match="temperature_K"):
        analyze_leg(harmonic_u_kln(iid_samples(np.random.default_rng(0), 10)), -1.0)
