"""Shared test fixtures. Tests use explicit dtypes; nothing sets the global default dtype."""

from __future__ import annotations

import os

import pytest
import torch

# Two cores on CI: keep intra-op threads low so parallel work does not oversubscribe.
torch.set_num_threads(int(os.environ.get("TENSORMOL_TEST_THREADS", "2")))


@pytest.fixture
def generator() -> torch.Generator:
    """A seeded CPU generator, so every test is reproducible."""
    return torch.Generator().manual_seed(1234)


# ------------------------------------------------ tiny models and bundles (export and MD tests)
TINY = dict(hidden_channels=8, num_layers=1, num_rbf=8, cutoff_upper=3.0, dtype="float64")


def tiny_model(atomic_numbers=(1, 6, 8), seed: int = 0, **overrides):
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
    """A small TensorNet trained on GFN2-xTB ethanol + p-xylene (``md/fixtures/make_bundle.py``)."""
    from pathlib import Path

    path = Path(__file__).parent / "md" / "fixtures" / "ethanol_xylene.tmol"
    assert path.is_file(), f"{path} is missing: run tests/md/fixtures/make_bundle.py"
    return path
