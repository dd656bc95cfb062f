"""Neighbour search through vesin (cell lists in C++, https://github.com/Luthaf/vesin).

vesin-torch is imported lazily, the first time it is needed, and the outcome of that probe is
remembered so that a broken install is reported once (by the caller's logging), not per call.
"""

from __future__ import annotations

import functools

import torch

from ._neighbors_torch import complete_cell

__all__ = ["vesin_import_error", "vesin_pairs"]


@functools.lru_cache(maxsize=1)
def vesin_import_error() -> str | None:
    """Import vesin-torch once; return ``None`` on success or the reason it is unusable."""
    try:
        import vesin_torch  # noqa: F401
    except Exception as exc:  # ImportError, or OSError from a shared library of the wrong ABI
        return f"{type(exc).__name__}: {exc}"
    return None


def vesin_pairs(
    positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, cutoff: float,
    *, distances: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """All pairs (i, j, shift) of one structure with distance < cutoff, except i == j at zero shift.

    The search runs on the CPU in float64 (this wrapper copies device tensors there); the results
    come back unsorted on the CPU.

    Parameters
    ----------
    positions : torch.Tensor
        (N, 3) float64, Å, N >= 1.
    cell : torch.Tensor
        (3, 3) float64, Å, lattice vectors as rows; rows of non-periodic directions are ignored.
    pbc : torch.Tensor
        (3,) bool.
    cutoff : float
        Å, > 0.
    distances : bool
        Also return the pair distances (float64, Å); otherwise the fourth output is ``None``.

    Returns
    -------
    tuple
        ``i`` (E,) int64, ``j`` (E,) int64, ``shifts`` (E, 3) int64, ``distances`` (E,) float64.
    """
    from vesin_torch import NeighborList

    pos = positions.detach().to(device="cpu", dtype=torch.float64).contiguous()
    pbc = pbc.to("cpu")
    if bool(pbc.any()):
        # vesin accepts mixed periodicity; the completed cell keeps it well conditioned even
        # when the user left a non-periodic lattice vector at zero.
        box = complete_cell(cell.to(device="cpu", dtype=torch.float64), pbc).contiguous()
        periodic = pbc.clone()
    else:
        box = torch.zeros((3, 3), dtype=torch.float64)
        periodic = torch.zeros(3, dtype=torch.bool)
    calculator = NeighborList(
        cutoff=float(cutoff), full_list=True, sorted=False,
        n_threads=max(1, torch.get_num_threads()),
    )
    quantities = "ijSd" if distances else "ijS"
    out = calculator.compute(pos, box, periodic, quantities=quantities, copy=True)
    i, j, shifts = out[0].to(torch.int64), out[1].to(torch.int64), out[2].to(torch.int64)
    d = out[3] if distances else None
    return i, j, shifts, d
