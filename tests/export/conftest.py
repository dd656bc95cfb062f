"""Fixtures of the export tests: tiny TensorNet bundles with random weights (float64)."""

from __future__ import annotations

import pytest
import torch

TINY = dict(hidden_channels=8, num_layers=1, num_rbf=8, cutoff_upper=3.0, dtype="float64")


def tiny_model(atomic_numbers=(1, 6, 8), seed: int = 0, **overrides):
    import tensormol.models  # noqa: F401  (registers the zoo)
    from tensormol.registry import MODELS

    torch.manual_seed(seed)
    params = dict(TINY, **overrides)
    model = MODELS.get("tensornet")(atomic_numbers=list(atomic_numbers), **params)
    # Random but not tiny outputs: a nonzero scale and reference energies, as after training.
    model.set_energy_statistics({z: -1.5 * z for z in atomic_numbers}, scale=0.7)
    return model.eval()


@pytest.fixture(scope="session")
def make_tiny_model():
    """The builder of tiny random TensorNets, ``make_tiny_model(atomic_numbers, seed, **kw)``."""
    return tiny_model


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    from tensormol.export import save_bundle

    path = tmp_path_factory.mktemp("bundle") / "tiny.tmol"
    save_bundle(tiny_model(), path, name="tensornet")
    return path


@pytest.fixture(scope="session")
def trained_bundle():
    """The trained fixture bundle of the MD tests (GFN2-xTB ethanol + p-xylene)."""
    from pathlib import Path

    path = Path(__file__).parents[1] / "md" / "fixtures" / "ethanol_xylene.tmol"
    assert path.is_file(), f"{path} is missing: run tests/md/fixtures/make_bundle.py"
    return path
