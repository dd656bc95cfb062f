"""Worker for ``bench_accuracy.py``: trains one potential (tensormol's TensorNet or GauntNet, or
TorchMD-Net's TensorNet) with one shared, plain PyTorch training loop, and reports test errors.

The same file runs in both virtual environments (TorchMD-Net's never imports tensormol), so both
implementations see exactly the same data, split, batches, loss, optimiser and schedule; only the
model differs::

    python _accuracy_worker.py DATA.npz OUT.json --impl tensormol|torchmdnet --seed 0 ...

``DATA.npz`` holds one molecule's frames: ``z`` (n,) int64, ``R`` (F, n, 3) Å, ``E`` (F,) eV and
``F`` (F, n, 3) eV/Å, all float64.

Loop: seeded split (``n_train`` / ``n_val`` / rest test), energies shifted by the training mean (one
molecule: that is the per-element least-squares reference), loss ``w_E MSE(E) + w_F MSE(F)`` (eV,
eV/Å), Adam, ReduceLROnPlateau on the validation loss, a fixed number of epochs; the weights of the
best validation epoch are evaluated on the test split (energy and force MAE and RMSE).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import warnings

import numpy as np
import torch


def build(impl: str, a: argparse.Namespace, species: list[int]):
    """A float32 TensorNet and a function ``(z, pos, batch) -> (E (B,), F (N, 3))`` float64."""
    torch.manual_seed(a.seed)
    if impl == "torchmdnet":
        from torchmdnet.models.model import create_model

        model = create_model(dict(
            model="tensornet", embedding_dimension=a.hidden, num_layers=a.layers,
            num_rbf=a.rbf, rbf_type="expnorm", trainable_rbf=False, activation="silu",
            cutoff_lower=0.0, cutoff_upper=a.cutoff, max_z=128, max_num_neighbors=64,
            equivariance_invariance_group="O(3)", static_shapes=False, output_model="Scalar",
            derivative=True, atom_filter=-1, prior_model=None, reduce_op="add", precision=32,
        ))

        def run(z, pos, batch):
            y, neg_dy = model(z, pos.float(), batch)
            return y.reshape(-1).double(), neg_dy.double()

        return model, run

    from tensormol import keys as K
    from tensormol.models import GauntNet, TensorNet

    if impl == "gauntnet":
        import yaml

        extra = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in a.gaunt_option)}
        model = GauntNet(
            atomic_numbers=species, hidden_channels=a.hidden, num_layers=a.layers,
            lmax=a.lmax, correlation=a.correlation, num_rbf=8, cutoff_upper=a.cutoff,
            dtype="float32", **extra,
        )
    else:
        model = TensorNet(
            atomic_numbers=species, hidden_channels=a.hidden, num_layers=a.layers,
            num_rbf=a.rbf, rbf_type="expnorm", activation="silu", cutoff_upper=a.cutoff,
            equivariance_invariance_group="O(3)", dtype="float32",
        )

    def run(z, pos, batch):
        out = model({K.POSITIONS: pos, K.ATOMIC_NUMBERS: z, K.BATCH: batch},
                    create_graph=model.training)
        return out[K.ENERGY], out[K.FORCES]

    return model, run


def main() -> None:
    warnings.filterwarnings("ignore")
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--impl", choices=("tensormol", "torchmdnet", "gauntnet"), required=True)
    p.add_argument("--lmax", type=int, default=2, help="GauntNet only")
    p.add_argument("--correlation", type=int, default=3, help="GauntNet only")
    p.add_argument("--gaunt-option", nargs="*", default=[], metavar="KEY=VALUE",
                   help="GauntNet only: further config entries (YAML values)")
    p.add_argument("--compiled", action="store_true",
                   help="tensormol only: load the compiled extension (fused Gaunt kernel)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--rbf", type=int, default=32)
    p.add_argument("--cutoff", type=float, default=5.0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--energy-weight", type=float, default=0.05)
    p.add_argument("--forces-weight", type=float, default=0.95)
    p.add_argument("--n-train", type=int, default=950)
    p.add_argument("--n-val", type=int, default=50)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--save-init", default=None, help="save the initial state dict here")
    p.add_argument("--init-only", action="store_true", help="with --save-init: stop there")
    p.add_argument("--init-from-torchmdnet", default=None,
                   help="tensormol only: initial weights from a TorchMD-Net state dict file")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.compiled:
        from tensormol._ext import load_extension

        status = load_extension()
        if not status.loaded:
            sys.exit(f"--compiled: the extension is unavailable: {status.reason}")

    d = np.load(a.data)
    z1 = torch.as_tensor(d["z"], dtype=torch.int64)
    R = torch.as_tensor(d["R"], dtype=torch.float64)
    E = torch.as_tensor(d["E"], dtype=torch.float64)
    F = torch.as_tensor(d["F"], dtype=torch.float64)
    n_frames, n_atoms = R.shape[0], R.shape[1]
    perm = np.random.default_rng(a.seed).permutation(n_frames)
    train = perm[: a.n_train]
    val = perm[a.n_train : a.n_train + a.n_val]
    test = perm[a.n_train + a.n_val : a.n_train + a.n_val + a.n_test]
    shift = float(E[train].mean())
    E = E - shift

    model, run = build(a.impl, a, sorted(set(z1.tolist())))
    if a.save_init:
        torch.save(model.state_dict(), a.save_init)
        if a.init_only:
            return
    if a.init_from_torchmdnet:
        # Start tensormol's TensorNet from TorchMD-Net's initial weights (a state dict saved by
        # torch.save in TorchMD-Net's venv): separates initialisation from implementation.
        sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
        from bench_tensornet import map_torchmdnet_state

        state = model.state_dict()
        state.update(map_torchmdnet_state(torch.load(a.init_from_torchmdnet)))
        model.load_state_dict(state)

    def batch_of(idx):
        idx = torch.as_tensor(idx, dtype=torch.int64)
        b = len(idx)
        return (z1.repeat(b), R[idx].reshape(-1, 3),
                torch.arange(b).repeat_interleave(n_atoms), E[idx], F[idx].reshape(-1, 3))

    def evaluate(idx, bs: int = 100):
        model.eval()
        de, df = [], []
        for s in range(0, len(idx), bs):
            z, pos, batch, e, f = batch_of(idx[s : s + bs])
            pe, pf = run(z, pos, batch)
            de.append((pe.detach() - e).abs())
            df.append((pf.detach() - f).abs().reshape(-1))
        de, df = torch.cat(de), torch.cat(df)
        return {"energy_mae": float(de.mean()), "energy_rmse": float(de.pow(2).mean().sqrt()),
                "forces_mae": float(df.mean()), "forces_rmse": float(df.pow(2).mean().sqrt()),
                "loss": float(a.energy_weight * de.pow(2).mean()
                              + a.forces_weight * df.pow(2).mean())}

    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.8, patience=5, min_lr=1e-6)
    gen = torch.Generator().manual_seed(a.seed)
    history, best, best_state, epoch_times = [], float("inf"), None, []
    for epoch in range(a.epochs):
        model.train()
        t0 = time.perf_counter()
        order = train[torch.randperm(len(train), generator=gen).numpy()]
        for s in range(0, len(order), a.batch_size):
            z, pos, batch, e, f = batch_of(order[s : s + a.batch_size])
            pe, pf = run(z, pos, batch)
            loss = (a.energy_weight * (pe - e).pow(2).mean()
                    + a.forces_weight * (pf - f).pow(2).mean())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        epoch_times.append(time.perf_counter() - t0)
        v = evaluate(val)
        sched.step(v["loss"])
        history.append({"epoch": epoch, "val_forces_mae": v["forces_mae"],
                        "val_energy_mae": v["energy_mae"], "lr": opt.param_groups[0]["lr"]})
        if v["loss"] < best:
            best, best_state = v["loss"], copy.deepcopy(model.state_dict())
        print(f"[{a.impl} seed {a.seed}] epoch {epoch + 1}/{a.epochs} "
              f"val F-MAE {v['forces_mae']:.4f} eV/Å  E-MAE {v['energy_mae']:.4f} eV  "
              f"{epoch_times[-1]:.1f} s", file=sys.stderr, flush=True)
    model.load_state_dict(best_state)
    result = {"impl": a.impl, "seed": a.seed, "test": evaluate(test), "history": history,
              "epoch_time_s": epoch_times, "n_test": len(test),
              "parameters": sum(q.numel() for q in model.parameters()),
              "settings": {k: v for k, v in vars(a).items() if k not in ("data", "out")}}
    with open(a.out, "w") as fh:
        json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
