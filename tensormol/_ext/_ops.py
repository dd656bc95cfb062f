"""Python front of the compiled ops, with autograd and a pure-PyTorch reference twin."""

from __future__ import annotations

import torch

from ._backends import Kernel, extension_backend, extension_key
from ._loader import ext_status

__all__ = ["segment_sum_csr", "SEGMENT_SUM_CSR"]

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
    chosen = SEGMENT_SUM_CSR.select(SEGMENT_SUM_CSR.resolve_cached(
        backend, extension_key(src.device)), src.device, src.dtype)
    return chosen.fn(src, ptr)


def _segment_sum_cpp(src: torch.Tensor, ptr: torch.Tensor) -> torch.Tensor:
    flat = src.reshape(src.shape[0], -1)
    out = _SegmentSumCSR.apply(flat, ptr)
    return out.reshape((ptr.numel() - 1,) + tuple(src.shape[1:]))


def _cpp_supports(device: torch.device, dtype: torch.dtype) -> bool:
    return dtype.is_floating_point and (device.type == "cpu"
                                        or (device.type == "cuda" and ext_status().cuda))


SEGMENT_SUM_CSR = Kernel("segment_sum_csr", traced="torch")
SEGMENT_SUM_CSR.register("cpp", _segment_sum_cpp, supports=_cpp_supports, **extension_backend(),
                         doc="compiled, deterministic; CPU, and CUDA when compiled with it")
SEGMENT_SUM_CSR.register("torch", _segment_sum_torch, traceable=True,
                         doc="index_add reference twin")
