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
