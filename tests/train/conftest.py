"""Training tests run with the test thread count: the thread policy of train()/evaluate() would
otherwise use every core (``TENSORMOL_NUM_THREADS`` overrides it)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _test_threads(monkeypatch):
    monkeypatch.setenv("TENSORMOL_NUM_THREADS", os.environ.get("TENSORMOL_TEST_THREADS", "2"))
