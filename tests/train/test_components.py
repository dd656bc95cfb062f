"""Building blocks of training: sampler sharding, loss and error sums, EMA, CSV logger."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from tensormol import keys as K
from tensormol.train import (
    AppendingCSVLogger,
    ErrorSums,
    ExponentialMovingAverage,
    PotentialLoss,
    ShardedSampler,
    read_metrics_csv,
)


@pytest.mark.parametrize("n", [48, 50])
def test_sharded_sampler_reproduces_single_process_batches(n):
    """With local batch B/W, step k of W ranks covers exactly step k of one rank with batch B."""
    global_batch, world = 8, 2
    for epoch in (0, 3):
        single = ShardedSampler(n, shuffle=True, seed=7, drop_last=True)
        single.set_epoch(epoch)
        order = list(single)
        shards = []
        for rank in range(world):
            s = ShardedSampler(n, shuffle=True, seed=7, rank=rank, world_size=world,
                               drop_last=True)
            s.set_epoch(epoch)
            shards.append(list(s))
        local = global_batch // world
        for k in range(len(shards[0]) // local):
            union = sorted(i for sh in shards for i in sh[k * local:(k + 1) * local])
            assert union == sorted(order[k * global_batch:(k + 1) * global_batch])
    # A different epoch is a different permutation; the same epoch is the same one.
    a = ShardedSampler(n, shuffle=True, seed=7, epoch_fn=lambda: 1)
    b = ShardedSampler(n, shuffle=True, seed=7, epoch_fn=lambda: 2)
    assert list(a) == list(a) and list(a) != list(b)


def test_sharded_sampler_evaluation_covers_each_index_once():
    n, world = 17, 3
    parts = [list(ShardedSampler(n, shuffle=False, rank=r, world_size=world)) for r in range(world)]
    assert sorted(i for p in parts for i in p) == list(range(n))
    assert [len(ShardedSampler(n, shuffle=False, rank=r, world_size=world))
            for r in range(world)] == [len(p) for p in parts]
    with pytest.raises(ValueError, match="rank"):
        ShardedSampler(4, shuffle=False, rank=2, world_size=2)


def _fake(generator):
    n_atoms = torch.tensor([3, 5])
    n = int(n_atoms.sum())
    batch = {K.NUM_ATOMS: n_atoms,
             K.ENERGY: torch.randn(2, generator=generator, dtype=torch.float64),
             K.FORCES: torch.randn(n, 3, generator=generator, dtype=torch.float64)}
    pred = {K.ENERGY: torch.randn(2, generator=generator, dtype=torch.float64),
            K.FORCES: torch.randn(n, 3, generator=generator, dtype=torch.float64)}
    return pred, batch


def test_loss_matches_formula(generator):
    pred, batch = _fake(generator)
    loss = PotentialLoss(energy_weight=2.0, forces_weight=10.0, energy_per_atom=True)
    de = (pred[K.ENERGY] - batch[K.ENERGY]) / batch[K.NUM_ATOMS]
    df = pred[K.FORCES] - batch[K.FORCES]
    expected = 2.0 * de.square().mean() + 10.0 * df.square().mean()
    assert float(loss(pred, batch)) == pytest.approx(float(expected), rel=1e-12)
    # Huber equals the MSE below delta and grows linearly above it.
    hub = PotentialLoss(energy_weight=0.0, forces_weight=1.0, kind="huber", huber_delta=0.5)
    a = df.abs()
    ref = torch.where(a < 0.5, a.square(), a - 0.25).mean()
    assert float(hub(pred, batch)) == pytest.approx(float(ref), rel=1e-12)
    with pytest.raises(ValueError, match="forces_weight must be >= 0"):
        PotentialLoss(forces_weight=-1.0)
    with pytest.raises(KeyError, match="no reference stress"):
        PotentialLoss(stress_weight=1.0)(pred, batch)


def test_error_sums_over_batches_equal_direct_metrics(generator):
    loss = PotentialLoss(energy_weight=1.0, forces_weight=5.0)
    sums = ErrorSums()
    batches = [_fake(generator) for _ in range(3)]
    for pred, batch in batches:
        sums.update(pred, batch, loss.term_sums(pred, batch))
    de = torch.cat([p[K.ENERGY] - b[K.ENERGY] for p, b in batches]).numpy()
    na = torch.cat([b[K.NUM_ATOMS] for _, b in batches]).numpy()
    df = torch.cat([p[K.FORCES] - b[K.FORCES] for p, b in batches]).numpy()
    m = sums.compute(loss)
    assert m["energy_mae"] == pytest.approx(np.abs(de).mean(), rel=1e-12)
    assert m["energy_rmse"] == pytest.approx(math.sqrt((de**2).mean()), rel=1e-12)
    assert m["energy_per_atom_mae"] == pytest.approx(np.abs(de / na).mean(), rel=1e-12)
    assert m["forces_mae"] == pytest.approx(np.abs(df).mean(), rel=1e-12)
    assert m["forces_rmse"] == pytest.approx(math.sqrt((df**2).mean()), rel=1e-12)
    assert m["loss"] == pytest.approx(((de / na) ** 2).mean() + 5.0 * (df**2).mean(), rel=1e-12)
    # Sums of two halves (two processes) add up to the whole.
    a, b = ErrorSums(), ErrorSums()
    for i, (pred, batch) in enumerate(batches):
        (a if i % 2 else b).update(pred, batch, loss.term_sums(pred, batch))
    both = ErrorSums()
    both.values = a.values + b.values
    assert both.compute(loss) == pytest.approx(m, rel=1e-12)


def test_ema_update_rule():
    torch.manual_seed(0)
    model = nn.Linear(3, 2, dtype=torch.float64)
    ema = ExponentialMovingAverage(model, decay=0.9)
    w0 = model.weight.detach().clone()
    assert not any(p.requires_grad for p in ema.module.parameters())
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # n = 0: effective decay min(0.9, 1/10) = 0.1
    assert torch.allclose(ema.module.weight, 0.1 * w0 + 0.9 * (w0 + 1.0), atol=1e-14)
    for _ in range(200):
        ema.update(model)
    assert ema.effective_decay() == pytest.approx(0.9)
    assert torch.allclose(ema.module.weight, model.weight, atol=1e-8)
    assert int(ema.state_dict()["num_updates"]) == 201
    with pytest.raises(ValueError, match="decay"):
        ExponentialMovingAverage(model, decay=1.0)


def test_csv_logger_appends_and_drops_rows_of_a_killed_run(tmp_path):
    log = AppendingCSVLogger(tmp_path)
    for step in range(5):
        log.log_metrics({"train/loss_step": 10.0 - step, "epoch": 0}, step=step)
    log.log_metrics({"val/forces_mae": 0.5, "epoch": 0}, step=4)
    log.save()
    rows = read_metrics_csv(tmp_path / "metrics.csv")
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4, 4]
    assert rows[-1]["val/forces_mae"] == 0.5 and "train/loss_step" not in rows[-1]
    # Resume from a checkpoint at step 2: rows 3, 4 of the killed run go, new rows append.
    log2 = AppendingCSVLogger(tmp_path, resume_step=2)
    log2.log_metrics({"train/loss_step": 1.0, "lr": 1e-3, "epoch": 0}, step=3)
    log2.save()
    rows = read_metrics_csv(tmp_path / "metrics.csv")
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    assert rows[-1]["lr"] == 1e-3 and rows[0]["train/loss_step"] == 10.0


def test_trainer_follows_the_config(tmp_path):
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.strategies import DDPStrategy

    from tensormol.config import ConfigError, config_from_dict
    from tensormol.train import build_trainer

    raw = {"data": {"path": "x.xyz"}, "model": {"name": "tensornet"},
           "training": {"grad_clip": 5.0, "early_stopping": {"patience": 7},
                        "monitor": "val/forces_mae"},
           "trainer": {"accelerator": "cpu", "devices": 2, "strategy": "ddp", "max_epochs": 4},
           "logging": {"root": str(tmp_path), "name": "t"}}
    trainer = build_trainer(config_from_dict(raw), tmp_path / "t")
    assert trainer.gradient_clip_val == 5.0 and trainer.max_epochs == 4
    assert isinstance(trainer.strategy, DDPStrategy) and trainer.world_size == 2
    # Forces need autograd in evaluation; the samplers are ours (see ShardedSampler).
    assert trainer.validate_loop.inference_mode is False
    assert trainer.test_loop.inference_mode is False
    stop = [c for c in trainer.callbacks if isinstance(c, EarlyStopping)]
    assert len(stop) == 1 and stop[0].patience == 7 and stop[0].monitor == "val/forces_mae"
    ckpt = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
    assert ckpt[0].save_last and ckpt[0].monitor == "val/forces_mae"
    raw["trainer"]["strategy"] = "dpp"
    with pytest.raises(ConfigError, match="trainer"):
        build_trainer(config_from_dict(raw), tmp_path / "t")
