"""GauntNet signs the shared model contract (both dtypes) and rejects bad configs."""

from __future__ import annotations

import pytest
import torch

from tensormol.config import ConfigError
from tensormol.models import GauntNet
from tensormol.registry import MODELS
from tensormol.testing import check_energy_model


def _factory(dtype: torch.dtype, **extra) -> GauntNet:
    torch.manual_seed(0)
    name = "float64" if dtype == torch.float64 else "float32"
    return GauntNet(atomic_numbers=[1, 6, 8], hidden_channels=4, lmax=2, correlation=3,
                    num_layers=2, num_rbf=4, radial_hidden=8, cutoff_upper=3.0, dtype=name,
                    **extra)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("radial_sh", [False, True])
def test_contract_suite(dtype: torch.dtype, radial_sh: bool) -> None:
    errors = check_energy_model(lambda d: _factory(d, radial_sh=radial_sh), dtype=dtype)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert errors["equivariance"]["forces"] < tol
    assert errors["batching"] < tol
    assert errors["forces_finite_difference"] < 1e-6


def test_registered_and_config_errors() -> None:
    model = MODELS.get("gauntnet")(atomic_numbers=[1, 8], hidden_channels=2, lmax=1,
                                   correlation=2, num_layers=1)
    assert model.cutoff == 5.0 and model.atomic_numbers == [1, 8]
    with pytest.raises(ConfigError, match="correlaton.*did you mean 'correlation'"):
        MODELS.get("gauntnet")(atomic_numbers=[1], correlaton=2)
    with pytest.raises(ConfigError, match="lmax"):
        MODELS.get("gauntnet")(atomic_numbers=[1], lmax=-1)
