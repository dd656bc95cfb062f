"""Python front of the compiled ops, with autograd and a pure-PyTorch reference twin."""

from __future__ import annotations

import logging

import torch

from ._loader import ext_status, load_extension

__all__ = ["segment_sum_csr", "resolve_backend"]

_log = logging.getLogger("tensormol.ext")
_LOGGED: set[tuple[str, str]] = set()
_VALID = ("auto", "torch", "cpp")


def resolve_backend(op: str, backend: str) -> str:
    """Map ``backend`` ("auto" | "torch" | "cpp") to the one that runs, logging the choice once.

    "auto" takes the compiled op only when the extension is already loaded (building it takes a
    minute, so it is never started implicitly); "cpp" loads it and fails loudly if it cannot.
    """
    if backend not in _VALID:
        raise ValueError(f"backend must be one of {', '.join(_VALID)}, got {backend!r}")
    if backend == "cpp":
        status = load_extension()
        if not status.loaded:
            raise RuntimeError(f"backend='cpp' requested for {op}, but the compiled extension "
                               f"is unavailable: {status.reason}. Use backend='torch' or 'auto'.")
        chosen = "cpp"
    elif backend == "auto":
        chosen = "cpp" if ext_status().loaded else "torch"
    else:
        chosen = "torch"
    if (op, chosen) not in _LOGGED:
        _LOGGED.add((op, chosen))
        _log.info("tensormol op %s uses backend %r", op, chosen)
    return chosen


class _SegmentSumCSR(torch.autograd.Function):
    """Compiled forward; backward is a gather written in torch ops, so it is itself
    differentiable (double backward, needed when forces enter a loss)."""

    @staticmethod
    def forward(ctx, src: torch.Tensor, ptr: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(ptr)
        ctx.num_rows = src.shape[0]
        return torch.ops.tensormol_ext.segment_sum(src, ptr)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (ptr,) = ctx.saved_tensors
        seg = torch.repeat_interleave(
            torch.arange(ptr.numel() - 1, device=ptr.device), ptr.diff(), output_size=ctx.num_rows
        )
        return grad_out.index_select(0, seg), None


def _segment_sum_torch(src: torch.Tensor, ptr: torch.Tensor) -> torch.Tensor:
    seg = torch.repeat_interleave(
        torch.arange(ptr.numel() - 1, device=ptr.device), ptr.diff(), output_size=src.shape[0]
    )
    out = src.new_zeros((ptr.numel() - 1,) + tuple(src.shape[1:]))
    return out.index_add(0, seg, src)


def segment_sum_csr(src: torch.Tensor, ptr: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """Sum consecutive row segments of ``src``: ``out[s] = src[ptr[s]:ptr[s+1]].sum(0)``.

    Parameters
    ----------
    src : torch.Tensor
        (E, ...) float32 or float64; rows grouped by segment (e.g. edges sorted by centre atom).
    ptr : torch.Tensor
        (S + 1,) int64 offsets, ``ptr[0] = 0``, ``ptr[-1] = E``, non-decreasing.
    backend : str
        "auto", "torch" (reference twin) or "cpp" (compiled, deterministic, no atomics).

    Returns
    -------
    torch.Tensor
        (S, ...) same dtype as ``src``.
    """
    if ptr.dim() != 1 or ptr.dtype != torch.int64 or ptr.numel() < 1:
        raise ValueError(f"ptr must be a 1-D int64 tensor of offsets, got {ptr.dtype} "
                         f"shape {tuple(ptr.shape)}")
    if int(ptr[0]) != 0 or int(ptr[-1]) != src.shape[0] or bool((ptr.diff() < 0).any()):
        raise ValueError("ptr must start at 0, end at src.shape[0] and never decrease")
    if resolve_backend("segment_sum", backend) == "torch":
        return _segment_sum_torch(src, ptr)
    flat = src.reshape(src.shape[0], -1)
    out = _SegmentSumCSR.apply(flat, ptr)
    return out.reshape((ptr.numel() - 1,) + tuple(src.shape[1:]))
