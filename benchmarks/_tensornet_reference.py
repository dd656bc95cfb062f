"""Worker for ``bench_tensornet.py``: runs TorchMD-Net's TensorNet on saved inputs.

Runs in TorchMD-Net's own virtual environment (it never imports tensormol):

    /tmp/tmdnet-venv/bin/python benchmarks/_tensornet_reference.py INPUTS.npz OUT.json

``INPUTS.npz`` holds ``z`` (N,), ``pos`` (N, 3) Å, ``batch`` (N,), ``box`` (3, 3) Å or empty,
``group`` ("O(3)"/"SO(3)"), ``seed``, ``threads``, ``repeats``, ``warmup`` and ``mode``:

* ``time``: energy + forces ``repeats`` times (after ``warmup``), wall times and the growth of the
  peak RSS over the state after a small warm-up input (``warm_z``, ``warm_pos``, ``warm_batch``);
* ``weights``: also saves the model's state dict next to OUT.json (``OUT.pt``) with energy and
  forces, so the caller can load the same weights into tensormol and compare outputs.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np
import torch
from _rss import reset_peak_rss, rss_mib


def _build(group: str, seed: int, cutoff: float, precision: int = 32):
    from torchmdnet.models.model import create_model

    torch.manual_seed(seed)
    args = dict(
        model="tensornet", embedding_dimension=128, num_layers=2, num_rbf=32, rbf_type="expnorm",
        trainable_rbf=False, activation="silu", cutoff_lower=0.0, cutoff_upper=cutoff, max_z=128,
        max_num_neighbors=128, equivariance_invariance_group=group, static_shapes=False,
        output_model="Scalar", derivative=True, atom_filter=-1, prior_model=None,
        reduce_op="add", precision=precision,
    )
    return create_model(args)


def main() -> None:
    warnings.filterwarnings("ignore")
    inputs, out_path = sys.argv[1], sys.argv[2]
    d = np.load(inputs)
    torch.set_num_threads(int(d["threads"]))
    precision = int(d["precision"]) if "precision" in d else 32
    fdtype = torch.float64 if precision == 64 else torch.float32
    model = _build(str(d["group"]), int(d["seed"]), float(d["cutoff"]), precision).eval()
    z = torch.tensor(d["z"], dtype=torch.long)
    pos = torch.tensor(d["pos"], dtype=fdtype)
    batch = torch.tensor(d["batch"], dtype=torch.long)
    box = torch.tensor(d["box"], dtype=fdtype) if d["box"].size else None
    import torchmdnet.models.tensornet as tn

    def run():
        energy, forces = model(z, pos, batch, box=box)
        return energy.detach(), forces.detach()

    result = {
        "torchmdnet_optimized_ops": bool(getattr(tn, "OPT", False)),
        "torch": torch.__version__,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    try:
        import torchmdnet

        result["torchmdnet"] = getattr(torchmdnet, "__version__", "unknown")
    except Exception:  # pragma: no cover
        result["torchmdnet"] = "unknown"
    if str(d["mode"]) == "weights":
        energy, forces = run()
        torch.save(
            {"state_dict": model.state_dict(), "energy": energy.double(),
             "forces": forces.double()},
            out_path[: -len(".json")] + ".pt",
        )
    else:
        # Warm up on a small piece (compiles kernels, fills caches) so the peak-RSS growth below
        # is what the full input costs, not one-off compilation.
        wz = torch.tensor(d["warm_z"], dtype=torch.long)
        wpos = torch.tensor(d["warm_pos"], dtype=fdtype)
        wbatch = torch.tensor(d["warm_batch"], dtype=torch.long)
        model(wz, wpos, wbatch, box=box)
        reset_peak_rss()
        base = rss_mib("VmRSS")
        for _ in range(int(d["warmup"])):
            run()
        times, cpu_times = [], []
        for _ in range(int(d["repeats"])):
            t0, c0 = time.perf_counter(), time.process_time()
            run()
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
        peak = rss_mib("VmHWM")
        result.update(times=times, cpu_times=cpu_times, peak_rss_growth_mib=peak - base,
                      peak_rss_mib=peak)
    with open(out_path, "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main()
