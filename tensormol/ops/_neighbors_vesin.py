"""Neighbour search through vesin (cell lists in C++, https://github.com/Luthaf/vesin).

vesin-torch is imported lazily, the first time it is needed, and the outcome of that probe is
remembered so that a broken install is reported once (by the caller's logging), not per call.
"""

from __future__ import annotations

import functools

import torch

__all__ = ["vesin_import_error", "make_vesin_calculator", "vesin_pairs"]


@functools.lru_cache(maxsize=1)
def vesin_import_error() -> str | None:
    """Import vesin-torch once; return ``None`` on success or the reason it is unusable."""
    try:
        import vesin_torch  # noqa: F401
    except Exception as exc:  # ImportError, or OSError from a shared library of the wrong ABI
        return f"{type(exc).__name__}: {exc}"
    return None


def make_vesin_calculator(cutoff: float) -> object:
    """A vesin ``NeighborList`` for a full (both directions), unsorted list; reusable across
    structures with the same cutoff. Uses as many threads as torch does."""
    from vesin_torch import NeighborList

    return NeighborList(cutoff=float(cutoff), full_list=True, sorted=False,
                        n_threads=max(1, torch.get_num_threads()))


def vesin_pairs(
    calculator: object, positions: torch.Tensor, cell: torch.Tensor, pbc: list[bool],
    *, distances: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """All pairs (i, j, shift) of one structure with distance < cutoff, except i == j at zero shift.

    The search runs on the CPU in float64; the results come back unsorted on the CPU.

    Parameters
    ----------
    calculator : vesin_torch.NeighborList
        From ``make_vesin_calculator(cutoff)``.
    positions : torch.Tensor
        (N, 3) float64, Å, CPU, N >= 1.
    cell : torch.Tensor
        (3, 3) float64, Å, CPU, lattice vectors as rows, *completed* (``complete_cell``) so it
        is non-singular: vesin accepts mixed periodicity, and a well-conditioned box keeps its
        wrapping exact even when the user left a non-periodic lattice vector at zero.
    pbc : list of bool
        Three flags.
    distances : bool
        Also return the pair distances (float64, Å); otherwise the fourth output is ``None``.

    Returns
    -------
    tuple
        ``i`` (E,) int64, ``j`` (E,) int64, ``shifts`` (E, 3) int64, ``distances`` (E,) float64.
    """
    if any(pbc):
        box, periodic = cell.contiguous(), torch.tensor(pbc)
    else:
        box, periodic = torch.zeros((3, 3), dtype=torch.float64), torch.zeros(3, dtype=torch.bool)
    quantities = "ijSd" if distances else "ijS"
    out = calculator.compute(positions.contiguous(), box, periodic, quantities=quantities,
                             copy=True)
    i, j, shifts = out[0].to(torch.int64), out[1].to(torch.int64), out[2].to(torch.int64)
    return i, j, shifts, (out[3] if distances else None)
