"""Layers: activations, radial bases and cutoff functions (more layers join here as written)."""

from ._activations import ACTIVATIONS, ShiftedSoftplus, activation
from ._cutoff import CosineCutoff, PolynomialCutoff
from ._radial import BesselRBF, ExpNormalRBF, GaussianRBF

__all__ = [
    "ACTIVATIONS",
    "ShiftedSoftplus",
    "activation",
    "GaussianRBF",
    "ExpNormalRBF",
    "BesselRBF",
    "CosineCutoff",
    "PolynomialCutoff",
]
