"""Sums of rows into groups: ``scatter_sum`` (any index order) and ``segment_sum`` (sorted index).

Both are differentiable to any order: their backward passes are gathers (``index_select``), whose
own backward is again a scatter, so forces (first derivative) and force training (second) work.
"""

from __future__ import annotations

import torch

from .._ext import Kernel, ext_status, extension_backend, extension_key
from .._validate import check_int_ge, check_tensor

__all__ = ["SEGMENT_SUM", "scatter_sum", "segment_sum"]


def _check_args(src: torch.Tensor, index: torch.Tensor, dim_size: int, dim: int, name: str) -> int:
    check_tensor(src, "src")
    check_tensor(index, "index", ndim=1)
    if index.is_floating_point() or index.is_complex() or index.dtype == torch.bool:
        raise TypeError(f"index must be an integer tensor (int64), got dtype {index.dtype}")
    check_int_ge(dim_size, "dim_size", 0)
    if src.dim() == 0:
        raise ValueError(f"{name}: src must have at least one dimension, got a scalar")
    if not -src.dim() <= dim < src.dim():
        raise ValueError(f"{name}: dim={dim} is out of range for src of shape {tuple(src.shape)}")
    dim = dim % src.dim()
    if index.shape[0] != src.shape[dim]:
        raise ValueError(
            f"{name}: index has length {index.shape[0]} but src has size {src.shape[dim]} along "
            f"dim {dim} (shape {tuple(src.shape)})"
        )
    # A bound check is one pass over the index; on the CPU it replaces a cryptic torch error.
    # On GPUs it would force a synchronisation (and the kernel asserts anyway); under
    # torch.compile it would break the graph on a data-dependent value.
    if index.device.type == "cpu" and index.numel() and not torch.compiler.is_compiling():
        lo, hi = int(index.min()), int(index.max())
        if lo < 0 or hi >= dim_size:
            raise IndexError(
                f"{name}: index values must lie in [0, dim_size={dim_size}), got range [{lo}, {hi}]"
            )
    return dim


def scatter_sum(
    src: torch.Tensor, index: torch.Tensor, dim_size: int, dim: int = 0
) -> torch.Tensor:
    """Sum the slices of ``src`` along ``dim`` into ``dim_size`` groups given by ``index``.

    ``out[..., index[e], ...] += src[..., e, ...]``; groups with no member are zero.

    Parameters
    ----------
    src : torch.Tensor
        (..., E, ...) any dtype, any trailing/leading dims.
    index : torch.Tensor
        (E,) int64, group of each slice, in ``[0, dim_size)``, any order.
    dim_size : int
        Number of groups.
    dim : int
        Dimension of ``src`` that ``index`` runs along.

    Returns
    -------
    torch.Tensor
        ``src``'s shape with size ``dim_size`` at ``dim``; dtype and device of ``src``.

    Notes
    -----
    Uses ``index_add``: fast, but on CUDA it sums with atomics, so float results may differ in
    the last bits between runs. ``segment_sum`` is deterministic where that matters.
    """
    dim = _check_args(src, index, dim_size, dim, "scatter_sum")
    shape = list(src.shape)
    shape[dim] = dim_size
    return src.new_zeros(shape).index_add(dim, index, src)


class _SegmentSumReduce(torch.autograd.Function):
    """Sum of contiguous segments via ``torch.segment_reduce`` (deterministic on CUDA).

    ``segment_reduce`` has no double backward; this Function's backward is a gather written in
    differentiable ops, so autograd derives every higher order from it.
    """

    @staticmethod
    def forward(ctx, src: torch.Tensor, index: torch.Tensor, lengths: torch.Tensor,
                dim: int) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.dim = dim
        moved = src.movedim(dim, 0)
        out = torch.segment_reduce(moved, "sum", lengths=lengths, axis=0, unsafe=True)
        return out.movedim(0, dim)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (index,) = ctx.saved_tensors
        return grad_out.index_select(ctx.dim, index), None, None, None


def _segment_index_add(src: torch.Tensor, index: torch.Tensor, dim_size: int,
                       dim: int) -> torch.Tensor:
    shape = list(src.shape)
    shape[dim] = dim_size
    return src.new_zeros(shape).index_add(dim, index, src)


def _lengths(index: torch.Tensor, dim_size: int) -> torch.Tensor:
    lengths = torch.bincount(index, minlength=dim_size)
    if lengths.shape[0] != dim_size:
        raise IndexError(f"segment_sum: index values must lie in [0, dim_size={dim_size})")
    return lengths


def _segment_reduce(src: torch.Tensor, index: torch.Tensor, dim_size: int,
                    dim: int) -> torch.Tensor:
    return _SegmentSumReduce.apply(src, index.to(torch.int64), _lengths(index, dim_size), dim)


def _segment_cpp(src: torch.Tensor, index: torch.Tensor, dim_size: int, dim: int) -> torch.Tensor:
    from .._ext import segment_sum_csr

    ptr = torch.zeros(dim_size + 1, dtype=torch.int64, device=index.device)
    ptr[1:] = torch.cumsum(_lengths(index, dim_size), 0)
    moved = src.movedim(dim, 0)
    out = segment_sum_csr(moved.reshape(moved.shape[0], -1), ptr, backend="cpp")
    return out.reshape((dim_size,) + tuple(moved.shape[1:])).movedim(0, dim)


def _cpp_supports(device: torch.device, dtype: torch.dtype) -> bool:
    return dtype.is_floating_point and (device.type == "cpu"
                                        or (device.type == "cuda" and ext_status().cuda))


def _segment_auto(kernel: Kernel, ctx: dict) -> tuple[str, str, str | None]:
    """"cpp" when the extension is loaded and takes the device, else "segment_reduce" on CUDA
    (deterministic, no atomics) and "torch" elsewhere."""
    device = ctx["device"]
    missing = kernel.backend("cpp").unavailable()
    if missing is None and _cpp_supports(device, torch.float32):
        return "cpp", f"compiled extension loaded; {device.type} tensors", None
    why = missing or f"the extension has no {device.type} kernel"
    if device.type == "cuda":
        return "segment_reduce", f"{why}; deterministic on CUDA", None
    return "torch", f"{why}; index_add on {device.type}", None


SEGMENT_SUM = Kernel("segment_sum", traced="torch", auto=_segment_auto)
SEGMENT_SUM.register("cpp", _segment_cpp, supports=_cpp_supports, **extension_backend(),
                     doc="compiled CSR segment sum, deterministic")
SEGMENT_SUM.register("segment_reduce", _segment_reduce,
                     doc="torch.segment_reduce, deterministic on CUDA")
SEGMENT_SUM.register("torch", _segment_index_add, traceable=True,
                     doc="index_add, the reference (deterministic on CPU)")


def segment_sum(
    src: torch.Tensor,
    index: torch.Tensor,
    dim_size: int,
    dim: int = 0,
    *,
    check_sorted: bool = True,
    backend: str = "auto",
) -> torch.Tensor:
    """``scatter_sum`` for a sorted ``index`` (segments of consecutive slices), deterministic.

    Parameters
    ----------
    src : torch.Tensor
        (..., E, ...) float.
    index : torch.Tensor
        (E,) int64, non-decreasing, in ``[0, dim_size)`` (e.g. ``batch`` or ``edge_index[0]``
        from ``neighbor_list``).
    dim_size : int
        Number of segments (empty segments give zeros).
    dim : int
        Dimension of ``src`` that ``index`` runs along.
    check_sorted : bool
        Verify that ``index`` is non-decreasing (one pass; forces a sync on GPUs). An unsorted
        index would give silently wrong sums with the segment backends.
    backend : {"auto", "torch", "segment_reduce", "cpp"} or Resolution
        "torch": ``index_add`` (the reference; deterministic on CPU). "segment_reduce":
        ``torch.segment_reduce`` (deterministic on CUDA, no atomics). "cpp": the compiled
        ``tensormol._ext.segment_sum_csr`` (loads the extension, fails loudly if it cannot).
        "auto": "cpp" if the extension is already loaded in this process, else
        "segment_reduce" on CUDA and "torch" elsewhere (resolved per call, each distinct
        resolution logged once on ``tensormol.kernels``); traced graphs run "torch".

    Returns
    -------
    torch.Tensor
        ``src``'s shape with size ``dim_size`` at ``dim``.
    """
    dim = _check_args(src, index, dim_size, dim, "segment_sum")
    res = SEGMENT_SUM.resolve_cached(backend, extension_key(src.device), {"device": src.device})
    chosen = SEGMENT_SUM.select(res, src.device, src.dtype)
    if check_sorted and index.numel() > 1 and not bool((index[1:] >= index[:-1]).all()):
        first = int((index[1:] < index[:-1]).nonzero()[0]) + 1
        raise ValueError(
            f"segment_sum: index must be sorted (non-decreasing); index[{first}] = "
            f"{int(index[first])} follows {int(index[first - 1])}. Use scatter_sum for any order"
        )
    return chosen.fn(src, index, dim_size, dim)
