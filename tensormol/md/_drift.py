"""Energy drift of an NVE run: the slope of the total energy, per atom, with its error."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from openmm import unit

__all__ = ["EnergyDrift", "energy_drift"]


@dataclass(frozen=True)
class EnergyDrift:
    """Linear drift of the total energy.

    Attributes
    ----------
    drift : float
        Slope of a least-squares line through (time, total energy), kJ/mol/ns per atom.
    error : float
        Standard error of that slope (kJ/mol/ns/atom), from the residuals of the fit. The samples
        are correlated in time, so it is a lower bound of the true uncertainty.
    samples : int
        Rows used.
    span_ps : float
        Time covered by the rows, ps.
    """

    drift: float
    error: float
    samples: int
    span_ps: float

    def describe(self) -> str:
        return (f"NVE energy drift {self.drift:+.3g} ± {self.error:.2g} kJ/mol/ns/atom "
                f"(linear fit of the total energy, {self.samples} samples over "
                f"{self.span_ps:.3g} ps)")

    def to_dict(self) -> dict[str, float]:
        return {"drift_kJ_mol_ns_atom": self.drift, "error_kJ_mol_ns_atom": self.error,
                "samples": self.samples, "span_ps": self.span_ps}


def energy_drift(time_ps: np.ndarray, total_kj_mol: np.ndarray, n_atoms: int) -> EnergyDrift:
    """Fit ``total = a + b t`` and return ``b`` per atom in kJ/mol/ns with its standard error.

    Parameters
    ----------
    time_ps : ndarray
        (T,) float64 simulation times, ps.
    total_kj_mol : ndarray
        (T,) float64 total energies, kJ/mol.
    n_atoms : int
        Atoms (particles) of the system.
    """
    t = np.asarray(time_ps, dtype=np.float64)
    e = np.asarray(total_kj_mol, dtype=np.float64)
    if t.shape != e.shape or t.ndim != 1:
        raise ValueError(f"time_ps and total_kj_mol must be 1-D of equal length, got shapes "
                         f"{t.shape} and {e.shape}")
    if t.size < 3:
        raise ValueError(f"an energy drift needs at least 3 samples, got {t.size}")
    if n_atoms < 1:
        raise ValueError(f"n_atoms must be >= 1, got {n_atoms}")
    tc = t - t.mean()
    sxx = float(tc @ tc)
    if sxx <= 0.0:
        raise ValueError("the samples of an energy drift must span a time interval")
    slope = float(tc @ (e - e.mean())) / sxx  # kJ/mol/ps
    resid = e - e.mean() - slope * tc
    se = math.sqrt(float(resid @ resid) / (t.size - 2) / sxx)
    per = unit.nanosecond.conversion_factor_to(unit.picosecond) / n_atoms  # /ps -> /ns, /atom
    return EnergyDrift(slope * per, se * per, int(t.size), float(t.max() - t.min()))
