"""``tensormol export``: a real ``tensormol train`` checkpoint -> bundle with the EMA weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tensormol import keys as K

REPO = Path(__file__).resolve().parents[2]
ETHANOL = REPO / "data" / "ethanol.xyz.gz"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import ase.io

    from tensormol.config import config_from_dict
    from tensormol.train import train

    tmp = tmp_path_factory.mktemp("train")
    data = tmp / "ethanol24.extxyz"
    ase.io.write(data, ase.io.read(ETHANOL, index=":24"))  # the first frames only: fast
    cfg = config_from_dict({
        "seed": 1,
        "data": {"path": str(data), "split": {"train": 16, "val": 8, "test": 0},
                 "batch_size": 8, "eval_batch_size": 8},
        "model": {"name": "tensornet", "hidden_channels": 8, "num_layers": 1, "num_rbf": 8,
                  "cutoff_upper": 4.0, "dtype": "float64"},
        "training": {"lr": 5e-3, "ema_decay": 0.5, "early_stopping": None, "plateau": None},
        "trainer": {"accelerator": "cpu", "devices": 1, "max_epochs": 1,
                    "enable_progress_bar": False, "log_every_n_steps": 1},
        "logging": {"root": str(tmp), "name": "run", "tensorboard": False},
    })
    return train(cfg, test=False).last_checkpoint


def test_export_writes_the_ema_model(checkpoint, tmp_path, capsys):
    from tensormol.cli.main import main
    from tensormol.export import load_bundle
    from tensormol.train import load_checkpoint

    out = tmp_path / "model.tmol"
    assert main(["export", str(checkpoint), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    bundle = load_bundle(out)
    assert bundle.name == "tensornet" and bundle.species == [1, 6, 8]
    assert bundle.metadata["training"]["weights"] == "EMA"
    assert bundle.params["hidden_channels"] == 8 and bundle.cutoff == 4.0
    ema, _ = load_checkpoint(checkpoint, ema=True)
    raw, _ = load_checkpoint(checkpoint, ema=False)
    from ase.build import molecule

    a = molecule("CH3CH2OH")
    batch = {K.POSITIONS: torch.tensor(a.get_positions()),
             K.ATOMIC_NUMBERS: torch.tensor(a.get_atomic_numbers())}
    e_bundle = bundle.build_model()(batch)[K.ENERGY]
    assert torch.equal(e_bundle, ema(batch)[K.ENERGY])
    assert not torch.equal(e_bundle, raw(batch)[K.ENERGY])  # really the averaged weights
    # Reference energies (data statistics) travel in the weights.
    assert torch.equal(bundle.build_model().reference_energies, ema.reference_energies)


def test_export_of_a_missing_checkpoint_is_explained(tmp_path, capsys):
    from tensormol.cli.main import main

    assert main(["export", str(tmp_path / "none.ckpt"), "-o", str(tmp_path / "m.tmol")]) == 2
    assert "does not exist" in capsys.readouterr().err
