"""The model zoo: every model is an :class:`EnergyModel` built through ``registry.MODELS``.

>>> from tensormol.registry import MODELS
>>> model = MODELS.get("tensornet")(atomic_numbers=[1, 6, 8], hidden_channels=32)  # doctest: +SKIP

Importing this package registers nothing: the registry imports a model's module the first time
its name is looked up.
"""

from tensormol.models._base import MODEL_DTYPES, AtomicGraph, EnergyModel, EnergyModelConfig
from tensormol.models._gaunt import GauntNet, GauntNetConfig, build_gauntnet
from tensormol.models._tensornet import TensorNet, TensorNetConfig, build_tensornet

__all__ = [
    "EnergyModel",
    "EnergyModelConfig",
    "AtomicGraph",
    "MODEL_DTYPES",
    "TensorNet",
    "TensorNetConfig",
    "build_tensornet",
    "GauntNet",
    "GauntNetConfig",
    "build_gauntnet",
]
