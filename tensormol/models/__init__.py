"""The model zoo: every model is an :class:`EnergyModel` registered in ``registry.MODELS``.

>>> from tensormol.registry import MODELS
>>> model = MODELS.get("tensornet")(atomic_numbers=[1, 6, 8], hidden_channels=32)  # doctest: +SKIP
"""

from tensormol.models._base import CHEMICAL_SYMBOLS, AtomicGraph, EnergyModel, element_symbol
from tensormol.models._gaunt import GauntNet, GauntNetConfig, build_gauntnet
from tensormol.models._tensornet import TensorNet, TensorNetConfig, build_tensornet

__all__ = [
    "EnergyModel",
    "AtomicGraph",
    "CHEMICAL_SYMBOLS",
    "element_symbol",
    "TensorNet",
    "TensorNetConfig",
    "build_tensornet",
    "GauntNet",
    "GauntNetConfig",
    "build_gauntnet",
]
