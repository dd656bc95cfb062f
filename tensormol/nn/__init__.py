"""Layers: radial bases and cutoff functions (more layers join here as they are written)."""

from ._cutoff import CosineCutoff, PolynomialCutoff
from ._radial import BesselRBF, ExpNormalRBF, GaussianRBF

__all__ = ["GaussianRBF", "ExpNormalRBF", "BesselRBF", "CosineCutoff", "PolynomialCutoff"]
