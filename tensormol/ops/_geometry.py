"""Edge geometry from a neighbour list: differentiable w.r.t. positions and cell."""

from __future__ import annotations

import torch

from .._validate import check_tensor

__all__ = ["edge_vectors", "edge_vectors_unchecked"]


def edge_vectors_unchecked(
    positions: torch.Tensor,
    edge_index: torch.Tensor,
    cell_shifts: torch.Tensor | None = None,
    cell: torch.Tensor | None = None,
    batch: torch.Tensor | None = None,
) -> torch.Tensor:
    """``edge_vectors`` without argument checks: TorchScript-compatible and free of host syncs,
    for exported models (``torch.jit.script``/``torch.export``). Same arguments and result."""
    vec = positions.index_select(0, edge_index[1]) - positions.index_select(0, edge_index[0])
    if cell_shifts is None or cell is None:
        return vec
    shifts = cell_shifts.to(cell.dtype)
    if cell.dim() == 2:
        return vec + shifts @ cell
    if batch is None:
        return vec + shifts @ cell[0]
    cell_of_edge = cell.index_select(0, batch.index_select(0, edge_index[0]))
    return vec + torch.einsum("ek,ekl->el", shifts, cell_of_edge)


def edge_vectors(
    positions: torch.Tensor,
    edge_index: torch.Tensor,
    cell_shifts: torch.Tensor | None = None,
    cell: torch.Tensor | None = None,
    batch: torch.Tensor | None = None,
) -> torch.Tensor:
    """Vectors from centre ``i`` to neighbour ``j`` (including its periodic translation).

    ``vec[e] = positions[j] - positions[i] + cell_shifts[e] @ cell[batch[i]]``. Gradients flow to
    ``positions`` and ``cell`` (the cell gradient is what stress needs), to any order.

    Parameters
    ----------
    positions : torch.Tensor
        (N, 3) float, Å.
    edge_index : torch.Tensor
        (2, E) int64, rows (i, j) as returned by ``neighbor_list``.
    cell_shifts : torch.Tensor, optional
        (E, 3) integer or float, lattice translations applied to j. Ignored when ``cell`` is
        ``None``, in which case they must all be zero (checked).
    cell : torch.Tensor, optional
        (3, 3) or (B, 3, 3), same dtype as ``positions``, Å, lattice vectors as rows.
    batch : torch.Tensor, optional
        (N,) int64 structure index of each atom; needed when ``cell`` is (B, 3, 3) with B > 1.

    Returns
    -------
    torch.Tensor
        (E, 3), dtype of ``positions``, Å.
    """
    check_tensor(positions, "positions", shape=(-1, 3), floating=True)
    check_tensor(edge_index, "edge_index", shape=(2, -1))
    if edge_index.is_floating_point():
        raise TypeError(f"edge_index must be an integer tensor, got dtype {edge_index.dtype}")
    if cell_shifts is not None:
        check_tensor(cell_shifts, "cell_shifts", shape=(edge_index.shape[1], 3))
        if cell is None and bool(cell_shifts.any()):
            raise ValueError("cell_shifts has nonzero entries but cell is None; pass the cell")
    if cell_shifts is not None and cell is not None:
        check_tensor(cell, "cell", floating=True)
        if cell.dtype != positions.dtype:
            raise TypeError(
                f"cell must have the dtype of positions ({positions.dtype}), got {cell.dtype}"
            )
        if cell.dim() == 3 and cell.shape[0] == 1:
            cell = cell[0]
        if cell.dim() == 2:
            check_tensor(cell, "cell", shape=(3, 3))
        else:
            check_tensor(cell, "cell", shape=(-1, 3, 3))
            if batch is None:
                raise ValueError(
                    f"cell has shape {tuple(cell.shape)} (several structures) but batch is None; "
                    "pass batch so each edge finds its structure's cell"
                )
            check_tensor(batch, "batch", shape=(positions.shape[0],))
    return edge_vectors_unchecked(positions, edge_index, cell_shifts, cell, batch)
