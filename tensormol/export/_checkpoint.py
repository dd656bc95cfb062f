"""Turn a ``tensormol train`` checkpoint into a model bundle (EMA weights, never an import path)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from tensormol.export._bundle import Bundle, resolved_params, save_bundle

__all__ = ["export_checkpoint"]


def _plain_or_repr(obj: Any) -> Any:
    """Plain data for the bundle; anything else (tensors, config objects) becomes a string."""
    if isinstance(obj, dict):
        return {str(k): _plain_or_repr(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain_or_repr(v) for v in obj]
    if isinstance(obj, (bool, int, float, str)) or obj is None:
        return obj
    if isinstance(obj, torch.Tensor) and obj.numel() <= 64:
        return obj.tolist()
    return repr(obj)[:200]


def export_checkpoint(checkpoint: str | os.PathLike, output: str | os.PathLike, *,
                      use_ema: bool = True) -> Bundle:
    """Write the model of a ``tensormol train`` checkpoint to a bundle.

    Parameters
    ----------
    checkpoint : path-like
        A checkpoint written by :func:`tensormol.train.train` (``last.ckpt``, ``best.ckpt``).
        It is unpickled, so only pass checkpoints you trust.
    output : path-like
        The bundle to write (``model.tmol``).
    use_ema : bool
        Export the exponential-moving-average weights (default; the raw weights when the run had
        no EMA).

    Returns
    -------
    Bundle
    """
    from tensormol.train import load_checkpoint

    src = Path(checkpoint)
    model, meta = load_checkpoint(src, ema=use_ema)
    ckpt_state = torch.load(src, map_location="cpu", weights_only=False)["state_dict"]
    has_ema = any(k.startswith("ema.module.") for k in ckpt_state)
    training = {
        "weights": "EMA" if (use_ema and has_ema) else "raw",
        "data": (meta.get("config") or {}).get("data", {}).get("path"),
        "statistics": meta.get("statistics"),
        "trained_with": {"tensormol": meta.get("tensormol_version"),
                         "torch": meta.get("torch_version")},
    }
    return save_bundle(model, output, name=str(meta["model_name"]),
                       params=resolved_params(model), source=str(src),
                       training=_plain_or_repr(training))
