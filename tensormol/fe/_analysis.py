"""Free energy of one leg from its reduced potentials: equilibration, decorrelation, MBAR.

``analyze_leg`` follows the usual recipe (Chodera 2016, J. Chem. Theory Comput. 12, 1799):
the production region starts where the number of effectively uncorrelated samples of the
summed reduced energies is largest (``pymbar.timeseries.detect_equilibration``); that series'
statistical inefficiency g thins every state's samples to uncorrelated ones; MBAR (Shirts &
Chodera 2008) on those gives ΔG = f_{K-1} - f_0 with its asymptotic uncertainty and the overlap
matrix. Time-sliced estimates (the first / last fraction of the production samples) show whether
the estimate still drifts. Everything is returned as data; plots are drawn from it elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tensormol.fe._sampler import boltzmann_kj_per_mol
from tensormol.units import KCAL_TO_KJ

__all__ = ["LegEstimate", "analyze_leg", "mbar_estimate", "kT_to", "quiet_pymbar"]

#: Units a free energy may be reported in.
ENERGY_UNITS = ("kT", "kJ/mol", "kcal/mol")


def kT_to(value_kT: float, unit: str, temperature_K: float) -> float:
    """Convert a free energy from kT at ``temperature_K`` to ``unit`` (kT, kJ/mol, kcal/mol)."""
    if unit == "kT":
        return float(value_kT)
    kj = float(value_kT) * boltzmann_kj_per_mol(temperature_K)
    if unit == "kJ/mol":
        return kj
    if unit == "kcal/mol":
        return kj / KCAL_TO_KJ
    raise ValueError(f"unit must be one of {', '.join(ENERGY_UNITS)}; got {unit!r}")


@contextlib.contextmanager
def quiet_pymbar() -> Iterator[None]:
    """Silence pymbar's import banner (JAX) and advisory warnings for the duration only."""
    logger = logging.getLogger("pymbar")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            yield
    finally:
        logger.setLevel(previous)


@dataclass
class LegEstimate:
    """MBAR estimate of one leg.

    Attributes
    ----------
    dg_kT, ddg_kT : float
        f_{K-1} - f_0 and its standard error (kT).
    overlap : numpy.ndarray, shape (K, K), float64
        MBAR overlap matrix; rows sum to 1.
    forward, reverse : list of (fraction, dg_kT, ddg_kT)
        Estimates from the first (forward) or last (reverse) fraction of the production samples
        (a slice whose MBAR equations do not converge is left out).
    t_equil : int
        First iteration of the production region.
    g : float
        Statistical inefficiency (iterations) used to thin the production samples.
    n_effective : float
        Effectively uncorrelated samples per state.
    temperature_K : float
        Temperature of the leg (K).
    f_kT, df_kT : numpy.ndarray, shape (K,), float64
        Free energy of every state relative to state 0 and its standard error (kT).
    n_iterations : int
        Iterations the estimate was computed from (before discarding equilibration).
    """

    dg_kT: float
    ddg_kT: float
    overlap: np.ndarray
    forward: list[tuple[float, float, float]]
    reverse: list[tuple[float, float, float]]
    t_equil: int
    g: float
    n_effective: float
    temperature_K: float
    f_kT: np.ndarray = field(default_factory=lambda: np.zeros(0))
    df_kT: np.ndarray = field(default_factory=lambda: np.zeros(0))
    n_iterations: int = 0

    def dg(self, unit: str = "kcal/mol") -> tuple[float, float]:
        """(ΔG, σ) in ``unit``: ``"kcal/mol"``, ``"kJ/mol"`` or ``"kT"``."""
        return (kT_to(self.dg_kT, unit, self.temperature_K),
                kT_to(self.ddg_kT, unit, self.temperature_K))

    def min_neighbor_overlap(self) -> float:
        """Smallest overlap between neighbouring states (below ~0.03 the estimate is unreliable)."""
        k = self.overlap.shape[0]
        if k < 2:
            return 1.0
        return float(min(self.overlap[i, i + 1] for i in range(k - 1)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``from_dict`` reads it back)."""
        return {
            "dg_kT": self.dg_kT, "ddg_kT": self.ddg_kT,
            "overlap": np.asarray(self.overlap).tolist(),
            "forward": [list(map(float, r)) for r in self.forward],
            "reverse": [list(map(float, r)) for r in self.reverse],
            "t_equil": int(self.t_equil), "g": float(self.g),
            "n_effective": float(self.n_effective), "temperature_K": float(self.temperature_K),
            "f_kT": np.asarray(self.f_kT).tolist(), "df_kT": np.asarray(self.df_kT).tolist(),
            "n_iterations": int(self.n_iterations),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LegEstimate:
        return cls(
            dg_kT=float(d["dg_kT"]), ddg_kT=float(d["ddg_kT"]),
            overlap=np.asarray(d["overlap"], dtype=np.float64),
            forward=[tuple(r) for r in d.get("forward", [])],
            reverse=[tuple(r) for r in d.get("reverse", [])],
            t_equil=int(d.get("t_equil", 0)), g=float(d.get("g", 1.0)),
            n_effective=float(d.get("n_effective", 0.0)),
            temperature_K=float(d["temperature_K"]),
            f_kT=np.asarray(d.get("f_kT", []), dtype=np.float64),
            df_kT=np.asarray(d.get("df_kT", []), dtype=np.float64),
            n_iterations=int(d.get("n_iterations", 0)),
        )


def _check_u_kln(u_kln: Any) -> np.ndarray:
    u = np.asarray(u_kln, dtype=np.float64)
    if u.ndim != 3 or u.shape[0] != u.shape[1]:
        raise ValueError(f"u_kln must have shape (K, K, N) (reduced potentials, kT), got "
                         f"{u.shape}")
    if u.shape[0] < 2:
        raise ValueError(f"u_kln needs at least 2 states, got K = {u.shape[0]}")
    if not np.isfinite(u).all():
        k, ell, n = np.argwhere(~np.isfinite(u))[0]
        raise ValueError(f"u_kln contains NaN or infinite values (first: sample {n} of state "
                         f"{k} evaluated at state {ell})")
    return u


def _mbar(mbar_class: Any, u_kn: np.ndarray, n_k: np.ndarray, robust: bool = True) -> Any:
    """pymbar's default solvers with a bounded adaptive fallback; the robust protocol last.

    Unbounded adaptive iterations can spend minutes on samples of states without overlap (tiny
    time slices, a failed leg), where the estimate means little anyway and the overlap matrix
    says so.
    """
    protocol = (dict(method="hybr", continuation=True),
                dict(method="adaptive", options=dict(min_sc_iter=0, maxiter=500)))
    if not robust:
        return mbar_class(u_kn, n_k, solver_protocol=protocol[:1])
    try:
        mbar = mbar_class(u_kn, n_k, solver_protocol=protocol)
        # a bounded adaptive run can stop unconverged without raising; the weights' check does
        mbar.compute_free_energy_differences(compute_uncertainty=True)
        return mbar
    except Exception:  # noqa: BLE001 - pymbar raises ParameterError and others on no convergence
        return mbar_class(u_kn, n_k, solver_protocol="robust")


def mbar_estimate(u_kln: np.ndarray, *, compute_overlap: bool = True, robust: bool = True
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """MBAR on equally many samples per state.

    Parameters
    ----------
    u_kln : numpy.ndarray, shape (K, K, N), float64
        Reduced potentials (kT): sample n of state k evaluated at state l.
    compute_overlap : bool
        Also return the overlap matrix.
    robust : bool
        Fall back to slower solvers when Newton–Raphson fails (else raise).

    Returns
    -------
    f_k, df_k : numpy.ndarray, shape (K,)
        Free energies relative to state 0 and their standard errors (kT).
    overlap : numpy.ndarray, shape (K, K), or None
    """
    k, _, n = u_kln.shape
    # u_kn[l, k*N + i] = u_kln[k, l, i]
    u_kn = np.transpose(u_kln, (1, 0, 2)).reshape(k, k * n)
    n_k = np.full(k, n, dtype=np.int64)
    with quiet_pymbar():
        from pymbar import MBAR

        mbar = _mbar(MBAR, u_kn, n_k, robust)
        res = mbar.compute_free_energy_differences(compute_uncertainty=True)
        overlap = np.asarray(mbar.compute_overlap()["matrix"]) if compute_overlap else None
    delta = np.asarray(res["Delta_f"])
    ddelta = np.asarray(res["dDelta_f"])
    return delta[0].copy(), np.nan_to_num(ddelta[0], nan=0.0), overlap


def _equilibration(a_t: np.ndarray, discard: bool) -> tuple[int, float, float]:
    n = len(a_t)
    if n < 3 or float(np.ptp(a_t)) == 0.0:
        return 0, 1.0, float(n)
    with quiet_pymbar():
        from pymbar import timeseries

        if discard:
            t0, g, neff = timeseries.detect_equilibration(a_t, nskip=max(1, n // 200))
            return int(t0), float(max(g, 1.0)), float(neff)
        g = float(timeseries.statistical_inefficiency(a_t))
    g = max(g, 1.0)
    return 0, g, n / g


def _subsample(n: int, g: float) -> np.ndarray:
    """Indices 0 .. n-1 thinned to one every g (pymbar's rounding rule, deterministic)."""
    with quiet_pymbar():
        from pymbar import timeseries

        if g <= 1.0:
            return np.arange(n)
        idx = timeseries.subsample_correlated_data(np.zeros(n), g=g)
    return np.asarray(idx, dtype=np.int64)


def analyze_leg(u_kln: np.ndarray, temperature_K: float, *, n_slices: int = 10,
                discard_equilibration: bool = True) -> LegEstimate:
    """MBAR free energy of a leg with equilibration detection, decorrelation and time slices.

    Parameters
    ----------
    u_kln : numpy.ndarray, shape (K, K, N), float64
        Reduced potentials (kT) of sample n (iteration) of state k evaluated at state l.
    temperature_K : float
        Temperature of the leg (K), to convert kT to energies.
    n_slices : int
        Number of forward/reverse time slices (fractions 1/n_slices, ..., 1).
    discard_equilibration : bool
        Detect and discard the initial transient (else the production region starts at 0).

    Returns
    -------
    LegEstimate
    """
    u = _check_u_kln(u_kln)
    temperature_K = float(temperature_K)
    if not math.isfinite(temperature_K) or temperature_K <= 0:
        raise ValueError(f"temperature_K must be a finite number > 0, got {temperature_K!r}")
    if isinstance(n_slices, bool) or not isinstance(n_slices, int) or n_slices < 1:
        raise ValueError(f"n_slices must be an integer >= 1, got {n_slices!r}")
    k, _, n = u.shape
    if n < 2:
        raise ValueError(f"u_kln has {n} sample(s) per state; MBAR needs at least 2")
    # The replicas' summed reduced energies: one scalar series for the whole leg.
    a_t = u[np.arange(k), np.arange(k), :].sum(axis=0)
    t0, g, n_eff = _equilibration(a_t, discard_equilibration)
    prod = u[:, :, t0:]
    idx = _subsample(prod.shape[2], g)
    if len(idx) < 2:
        idx = np.arange(prod.shape[2])
    sub = prod[:, :, idx]
    f_k, df_k, overlap = mbar_estimate(sub)
    forward, reverse = [], []
    m = len(idx)
    for i in range(1, n_slices + 1):
        frac = i / n_slices
        take = max(2, int(round(frac * m)))
        if take > m:
            break
        for rows, out in ((sub[:, :, :take], forward), (sub[:, :, m - take:], reverse)):
            # A slice too short for its states to overlap may not converge: it is left out
            # (the slices are a diagnostic) rather than sent to the slow solvers.
            try:
                f, df, _ = mbar_estimate(rows, compute_overlap=False, robust=False)
            except Exception:  # noqa: BLE001 - pymbar's ParameterError / convergence errors
                continue
            if math.isfinite(f[-1]) and math.isfinite(df[-1]):
                out.append((frac, float(f[-1]), float(df[-1])))
    return LegEstimate(
        dg_kT=float(f_k[-1]), ddg_kT=float(df_k[-1]), overlap=overlap, forward=forward,
        reverse=reverse, t_equil=t0, g=g, n_effective=float(len(idx)),
        temperature_K=temperature_K, f_kT=f_k, df_kT=df_k, n_iterations=n,
    )
