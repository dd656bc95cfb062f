"""Neighbour lists with periodic boundary conditions, for one structure or a batch.

The public function validates its input, resolves ``cell``/``pbc``/``batch`` into one (cell, pbc,
atom range) per structure, runs a backend per structure, then sorts and checks the merged list.
Backends only have to return the unsorted set of (i, j, shift) with distance < cutoff, excluding
the self pair at zero shift; everything else (self interaction, order, overlap check, devices) is
done once here, so the backends stay interchangeable.
"""

from __future__ import annotations

import numpy as np
import torch

from .._ext import Kernel
from .._validate import check_finite, check_positive, check_tensor
from ._neighbors_torch import brute_force_pairs, complete_cell, lattice_heights
from ._neighbors_vesin import make_vesin_calculator, vesin_import_error, vesin_pairs

__all__ = ["NEIGHBOR_LIST", "neighbor_list", "neighbor_list_backends"]

#: A periodic structure needing more images than this is rejected (its cell is far too small
#: for the cutoff; the brute force would allocate the image table alone in GBs).
_MAX_IMAGES = 10_000_000
#: |det(cell)| / prod |a_k| below this counts as singular (cell vectors nearly coplanar).
_SINGULAR_TOL = 1e-8


#: Backends in preference order; "auto" takes the first usable one (vesin when it imports).
#: The search runs outside any traced graph (the exported graph forms its own pair list).
NEIGHBOR_LIST = Kernel("neighbor_list", traced="torch", warn_unavailable=("vesin",))
NEIGHBOR_LIST.register("vesin", None, unavailable=vesin_import_error,
                       doc="cell lists in C++ (vesin-torch), CPU")
NEIGHBOR_LIST.register("torch", None, traceable=True,
                       doc="brute force in torch, O(N^2 images), any device")


def neighbor_list_backends() -> tuple[str, ...]:
    """Return the usable neighbour-list backends, fastest first."""
    return NEIGHBOR_LIST.usable()


def _as_bool_tensor(pbc: object) -> torch.Tensor:
    if isinstance(pbc, torch.Tensor):
        if pbc.dtype != torch.bool:
            raise TypeError(f"pbc must be a bool tensor, got dtype {pbc.dtype}")
        return pbc.detach().to("cpu")
    if isinstance(pbc, (bool, np.bool_)):
        return torch.tensor(bool(pbc))
    if isinstance(pbc, (list, tuple, np.ndarray)):
        arr = np.asarray(pbc)
        if arr.dtype != np.bool_:
            raise TypeError(f"pbc must hold booleans, got {pbc!r}")
        return torch.from_numpy(arr.copy())
    raise TypeError(f"pbc must be None, a bool, or a (3,)/(B, 3) bool tensor; got {pbc!r}")


def _resolve_structures(
    positions: torch.Tensor, cell: torch.Tensor | None, pbc: object, batch: torch.Tensor | None
) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """Return atom offsets ``ptr`` (B + 1 ints), cells (B, 3, 3) float64, pbc (B, 3) bool (CPU)."""
    n = positions.shape[0]
    if cell is not None:
        check_tensor(cell, "cell", floating=True)
        if cell.dim() not in (2, 3) or tuple(cell.shape[-2:]) != (3, 3):
            raise ValueError(f"cell must have shape (3, 3) or (B, 3, 3), got {tuple(cell.shape)}")
        check_finite(cell.reshape(-1, 9), "cell")
    pbc_t = None if pbc is None else _as_bool_tensor(pbc)
    if pbc_t is not None and not (
        pbc_t.dim() == 0 or tuple(pbc_t.shape) == (3,) or (pbc_t.dim() == 2 and pbc_t.shape[1] == 3)
    ):
        raise ValueError(f"pbc must have shape (), (3,) or (B, 3), got {tuple(pbc_t.shape)}")
    # Number of structures: fixed by a per-structure cell or pbc when given, else by batch. A
    # leading size of 1 broadcasts like a (3, 3) cell or a (3,) pbc.
    sizes = {}
    if cell is not None and cell.dim() == 3 and cell.shape[0] != 1:
        sizes["cell"] = cell.shape[0]
    if pbc_t is not None and pbc_t.dim() == 2 and pbc_t.shape[0] != 1:
        sizes["pbc"] = pbc_t.shape[0]
    if len(set(sizes.values())) > 1:
        raise ValueError(
            f"cell has {sizes['cell']} structures but pbc has {sizes['pbc']}; they must agree"
        )
    if batch is None:
        for name, size in sizes.items():
            if size != 1:
                raise ValueError(
                    f"{name} describes {size} structures but batch is None (one structure); "
                    "pass batch, or a single cell/pbc"
                )
        n_struct, ptr = 1, [0, n]
    else:
        check_tensor(batch, "batch", shape=(n,))
        if batch.is_floating_point() or batch.is_complex() or batch.dtype == torch.bool:
            raise TypeError(f"batch must be an integer tensor (int64), got dtype {batch.dtype}")
        b = batch.detach().to("cpu", torch.int64)
        if n and int(b.min()) < 0:
            raise ValueError(f"batch must hold structure indices >= 0, got minimum {int(b.min())}")
        if n > 1 and not bool((b[1:] >= b[:-1]).all()):
            first = int((b[1:] < b[:-1]).nonzero()[0]) + 1
            raise ValueError(
                "batch must be sorted (atoms of each structure contiguous, structures in order); "
                f"batch[{first}] = {int(b[first])} follows batch[{first - 1}] = {int(b[first - 1])}"
            )
        used = int(b.max()) + 1 if n else 0
        n_struct = next(iter(sizes.values())) if sizes else used
        if used > n_struct:
            name = next(iter(sizes))
            raise ValueError(
                f"batch refers to structure {used - 1} but {name} describes only {n_struct} "
                "structures"
            )
        ptr = [0] + torch.cumsum(torch.bincount(b, minlength=n_struct), 0).tolist()
    # Broadcast to one cell and one pbc row per structure.
    if cell is None:
        if pbc_t is not None and bool(pbc_t.any()):
            raise ValueError("pbc requests periodic directions but cell is None; pass a cell")
        cells = torch.zeros((n_struct, 3, 3), dtype=torch.float64)
        pbcs = torch.zeros((n_struct, 3), dtype=torch.bool)
    else:
        c = cell.detach().to("cpu", torch.float64).reshape(-1, 3, 3)
        cells = c.expand(n_struct, 3, 3).clone() if c.shape[0] == 1 else c.clone()
        if pbc_t is None:
            pbcs = torch.ones((n_struct, 3), dtype=torch.bool)
        else:
            p = pbc_t.expand(3) if pbc_t.dim() == 0 else pbc_t
            p = p.reshape(-1, 3)
            pbcs = p.expand(n_struct, 3).clone() if p.shape[0] == 1 else p.clone()
    return ptr, cells, pbcs


def _complete_and_check_cells(
    cells: torch.Tensor, pbcs: torch.Tensor, cutoff: float, per_structure: bool
) -> torch.Tensor:
    """Complete every cell (see ``complete_cell``) and reject the unusable periodic ones.

    Rejected: a zero or (nearly) linearly dependent set of periodic lattice vectors, and cells so
    small for the cutoff that the periodic images would explode. Vectorised over structures,
    one group per pbc pattern, so a batch of many small cells costs a handful of torch calls.

    Returns
    -------
    torch.Tensor
        (B, 3, 3) float64 completed cells.
    """
    full = torch.empty_like(cells)
    for pattern in torch.unique(pbcs, dim=0):
        rows = (pbcs == pattern).all(dim=1).nonzero().flatten()
        if not bool(pattern.any()):
            full[rows] = torch.eye(3, dtype=cells.dtype)
            continue
        periodic = pattern.nonzero().flatten().tolist()
        group = cells[rows]
        norms = torch.linalg.norm(group[:, periodic], dim=-1)  # (G, P)
        completed = complete_cell(group, pattern)
        ratio = torch.linalg.det(completed).abs() / torch.linalg.norm(completed, dim=-1).prod(-1)
        heights = lattice_heights(completed)[:, periodic]  # (G, P)
        reps = torch.floor(cutoff / heights) + 1
        images = (2 * reps + 1).prod(-1)
        # NaN ratios (a zero periodic vector, or parallel ones) fail ``> tol`` too.
        bad = (norms <= 0).any(-1) | ~(ratio > _SINGULAR_TOL) | ~(images <= _MAX_IMAGES)
        if bool(bad.any()):
            g = int(bad.nonzero()[0])
            b = int(rows[g])
            where = f"cell[{b}]" if per_structure else "cell"
            pbc_txt = f"pbc={pattern.tolist()}"
            if bool((norms[g] <= 0).any()) or not float(ratio[g]) > _SINGULAR_TOL:
                raise ValueError(
                    f"{where} is singular along its periodic directions ({pbc_txt}): "
                    f"|det| / prod |a_k| = {float(ratio[g]):.3g}, lattice vector lengths "
                    f"{[round(float(x), 6) for x in norms[g]]} Å; its periodic lattice vectors "
                    "must be nonzero and linearly independent"
                )
            raise ValueError(
                f"{where} is far too small for cutoff {cutoff} Å (perpendicular heights "
                f"{[round(float(h), 6) for h in heights[g]]} Å would need ~{float(images[g]):.2e}"
                " periodic images)"
            )
        full[rows] = completed
    return full


def _sort_order(i: torch.Tensor, j: torch.Tensor, s: torch.Tensor, n: int) -> torch.Tensor:
    """Permutation sorting the edges by i, then j, then shift (lexicographic).

    The (i, j, shift) triples are unique, so any sort gives the same, deterministic result; an
    unstable sort on one packed int64 key is the fastest. On the CPU the work is done in numpy:
    several times faster than torch's sort there, and free of intra-op thread synchronisation.
    """
    if i.numel() == 0:
        return torch.zeros(0, dtype=torch.int64, device=i.device)
    if i.device.type == "cpu":
        i_np, j_np = i.numpy(), j.numpy()
        cols = np.ascontiguousarray(s.numpy().T)  # (3, E): contiguous columns
        lo = cols.min(axis=1)
        span = [int(x) for x in cols.max(axis=1) - lo + 1]
        if n * n * span[0] * span[1] * span[2] < 2**62:
            key = i_np * n
            key += j_np
            for k in range(3):
                key *= span[k]
                key += cols[k]
                key -= lo[k]
            return torch.from_numpy(np.argsort(key))
        return torch.from_numpy(np.lexsort((cols[2], cols[1], cols[0], j_np, i_np)))
    lo = s.min(dim=0).values
    span = (s.max(dim=0).values - lo + 1).tolist()
    s0 = s - lo
    if n * n * span[0] * span[1] * span[2] < 2**62:
        key = ((i * n + j) * span[0] + s0[:, 0]) * span[1] * span[2] + s0[:, 1] * span[2] + s0[:, 2]
        return torch.sort(key).indices
    order = torch.arange(i.numel(), device=i.device)
    for col in (s[:, 2], s[:, 1], s[:, 0], j, i):  # least significant first, stable sorts
        order = order[torch.sort(col[order], stable=True).indices]
    return order


def neighbor_list(
    positions: torch.Tensor,
    cutoff: float,
    cell: torch.Tensor | None = None,
    pbc: object = None,
    batch: torch.Tensor | None = None,
    *,
    self_interaction: bool = False,
    backend: str = "auto",
    check_overlap: bool = True,
    overlap_tol: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Full neighbour list (both directions) of one structure or a batch, with periodic images.

    Parameters
    ----------
    positions : torch.Tensor
        (N, 3) float32 or float64, Å. Not differentiated through (build ``edge_vectors`` from the
        returned indices for gradients). The search itself always runs in float64.
    cutoff : float
        Å, > 0. Pairs with distance strictly below it are returned.
    cell : torch.Tensor, optional
        (3, 3) or (B, 3, 3) float, Å, lattice vectors as rows (ASE convention). A (3, 3) cell is
        shared by all structures. Rows of non-periodic directions are ignored (may be zero).
    pbc : bool or torch.Tensor, optional
        ``None`` (all periodic if ``cell`` is given, else none), a bool, a (3,) or a (B, 3) bool
        tensor (or a list of bools).
    batch : torch.Tensor, optional
        (N,) int64, index of the structure of each atom, sorted (atoms of a structure
        contiguous). ``None``: one structure. Structures never connect to each other.
    self_interaction : bool
        Include the pair (i, i) at zero shift. Periodic self-images (i, i, shift != 0) are
        always included.
    backend : {"auto", "vesin", "torch"}
        "vesin": cell lists in C++ (CPU; device inputs are copied there and back). "torch":
        brute force in torch, O(N² · images), on the input's device, chunked so memory stays
        bounded. "auto": vesin when it imports, else torch; each distinct resolution is logged
        once on ``tensormol.kernels``.
    check_overlap : bool
        Raise if two distinct atoms (or an atom and a periodic image) lie closer than
        ``overlap_tol``: every model divides by the distance. Costs O(E), one comparison.
    overlap_tol : float
        Å.

    Returns
    -------
    edge_index : torch.Tensor
        (2, E) int64: ``edge_index[0]`` = i (centre), ``edge_index[1]`` = j (neighbour), sorted by
        i, then j, then shift.
    cell_shifts : torch.Tensor
        (E, 3) int64: integer lattice translations applied to j, so that the edge vector is
        ``positions[j] - positions[i] + cell_shifts @ cell``; zero along non-periodic directions.

    Raises
    ------
    TypeError, ValueError
        Bad shapes or dtypes, cutoff <= 0, NaN/inf positions or cell, unsorted batch, a singular
        periodic cell, or overlapping atoms (see ``check_overlap``). Messages name the argument.
    RuntimeError
        ``backend="vesin"`` when vesin-torch cannot be imported.

    Notes
    -----
    The search is done in float64 whatever the dtype of ``positions``; edge vectors recomputed in
    float32 may exceed the cutoff by rounding (~1e-6 Å), so layers should use cutoff functions
    that vanish at the cutoff (all of ``tensormol.nn``'s do). Periodic self-images of an atom
    (cells smaller than the cutoff) appear as (i, i, shift != 0). The order of the output does
    not depend on the backend: both return the same sorted list, which the tests check exactly.
    Structures of a batch are searched one after the other (about 30 µs of vesin overhead each).
    """
    check_tensor(positions, "positions", shape=(-1, 3), floating=True)
    cutoff = check_positive(cutoff, "cutoff")
    check_finite(positions, "positions")
    chosen = NEIGHBOR_LIST.resolve_cached(backend).backend
    ptr, cells, pbcs = _resolve_structures(positions, cell, pbc, batch)
    n_struct = cells.shape[0]
    per_structure = cell is not None and cell.dim() == 3 and cell.shape[0] > 1
    cells = _complete_and_check_cells(cells, pbcs, cutoff, per_structure)

    device = positions.device
    pos = positions.detach().to(torch.float64)
    calculator = None
    if chosen == "vesin":
        pos = pos.to("cpu")
        calculator = make_vesin_calculator(cutoff)
    pbc_rows = pbcs.tolist()
    parts_i, parts_j, parts_s, parts_d = [], [], [], []
    for b in range(n_struct):
        lo, hi = ptr[b], ptr[b + 1]
        if hi == lo:
            continue
        if chosen == "vesin":
            i, j, s, d = vesin_pairs(calculator, pos[lo:hi], cells[b], pbc_rows[b],
                                     distances=check_overlap)
        else:
            i, j, s, d = brute_force_pairs(pos[lo:hi], cells[b], pbcs[b], cutoff)
        parts_i.append(i + lo)
        parts_j.append(j + lo)
        parts_s.append(s)
        if check_overlap:
            parts_d.append(d)
    work = pos.device
    if len(parts_i) == 1:  # one structure: no copies
        i, j, s = parts_i[0], parts_j[0], parts_s[0]
    elif parts_i:
        i, j, s = torch.cat(parts_i), torch.cat(parts_j), torch.cat(parts_s)
    else:
        i = torch.zeros(0, dtype=torch.int64, device=work)
        j, s = i.clone(), torch.zeros((0, 3), dtype=torch.int64, device=work)

    if check_overlap and parts_d:
        d = parts_d[0] if len(parts_d) == 1 else torch.cat(parts_d)
        close = d < float(overlap_tol)
        if bool(close.any()):
            k = int(close.nonzero()[0])
            raise ValueError(
                f"positions: atoms {int(i[k])} and {int(j[k])} overlap (distance {float(d[k]):.3g}"
                f" Å < overlap_tol={overlap_tol} Å at cell shift {s[k].tolist()}); models divide "
                "by distances. Remove duplicates, or pass check_overlap=False to skip this check"
            )

    if self_interaction:
        n = positions.shape[0]
        idx = torch.arange(n, dtype=torch.int64, device=work)
        i, j = torch.cat([i, idx]), torch.cat([j, idx])
        s = torch.cat([s, torch.zeros((n, 3), dtype=torch.int64, device=work)])

    order = _sort_order(i, j, s, positions.shape[0]).to(work)
    if work.type == "cpu":  # numpy gathers: no intra-op thread synchronisation
        o = order.numpy()
        edge_index = torch.from_numpy(np.stack([i.numpy()[o], j.numpy()[o]]))
        shifts = torch.from_numpy(s.numpy()[o])
    else:
        edge_index, shifts = torch.stack([i[order], j[order]]), s[order]
    return edge_index.to(device), shifts.to(device)
