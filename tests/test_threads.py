"""The thread policy: counts per workload, passive OpenMP wait set before torch loads, scoping."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tensormol._threads import (
    ENV_NUM_THREADS,
    SMALL_ML_ATOMS,
    available_cores,
    choose_threads,
    configure_openmp,
    idle_cores,
    openmp_loaded,
    thread_scope,
)


def test_small_ml_regions_run_on_one_thread(monkeypatch):
    monkeypatch.delenv(ENV_NUM_THREADS, raising=False)
    p = choose_threads("md", n_atoms=9)
    assert p.torch_threads == 1 and "too small to split" in p.reason
    big = choose_threads("md", n_atoms=SMALL_ML_ATOMS + 1)
    assert 1 <= big.torch_threads <= available_cores()
    train = choose_threads("train")
    assert train.torch_threads == idle_cores() <= available_cores()
    assert "OpenMP wait" in p.describe() and "threads (md): torch 1" in p.describe()


def test_explicit_counts_and_the_environment_override(monkeypatch):
    monkeypatch.setenv(ENV_NUM_THREADS, "3")
    assert choose_threads("md", n_atoms=9).torch_threads == 3
    assert choose_threads("md", n_atoms=9, torch_threads=2).torch_threads == 2  # flag wins
    monkeypatch.setenv(ENV_NUM_THREADS, "torch")
    assert choose_threads("train").torch_threads is None  # torch's own default
    monkeypatch.setenv(ENV_NUM_THREADS, "0")
    with pytest.raises(ValueError, match=ENV_NUM_THREADS):
        choose_threads("train")
    with pytest.raises(ValueError, match="workload must be one of"):
        choose_threads("fitting")
    with pytest.raises(ValueError, match="n_atoms"):
        monkeypatch.delenv(ENV_NUM_THREADS)
        choose_threads("md")


def test_thread_scope_restores_the_previous_count():
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with thread_scope(other):
        assert torch.get_num_threads() == other
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), thread_scope(choose_threads("md", n_atoms=5)):
        raise RuntimeError("restored on errors too")
    assert torch.get_num_threads() == before


def test_configure_openmp_only_before_the_runtime_loads():
    code = (
        "import os, tensormol._threads as t\n"
        "assert not t.openmp_loaded()\n"
        "assert t.configure_openmp()\n"
        "import torch\n"
        "assert t.openmp_loaded()\n"
        "print(os.environ['OMP_WAIT_POLICY'], os.environ['GOMP_SPINCOUNT'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["PASSIVE", "0"]
    # Too late in this process (torch is loaded): nothing is set, and it says so.
    assert openmp_loaded()
    env_copy: dict[str, str] = {}
    assert configure_openmp(env_copy) is False and env_copy == {}


def test_the_command_sets_passive_wait_for_its_children():
    code = ("import os, sys\n"
            "from tensormol.cli.main import main\n"
            "main(['info'])\n"
            "print('POLICY', os.environ.get('OMP_WAIT_POLICY'))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "POLICY PASSIVE" in out.stdout
