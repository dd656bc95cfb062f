"""Fixtures of the MD tests: the T4 L99A files (tiny models and bundles: tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def t4_dir():
    """openmmtools' T4 lysozyme L99A + p-xylene (implicit solvent) files, without importing it."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("openmmtools")
    assert spec is not None, "openmmtools is needed for the T4 lysozyme test system"
    return Path(spec.origin).parent / "data" / "T4-lysozyme-L99A-implicit"
