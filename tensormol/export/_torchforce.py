"""openmm-torch's ``TorchForce`` route: a TorchScript module in OpenMM units around a tensormol
model.

openmm-torch calls ``module(positions)`` (or ``module(positions, box)`` for periodic systems) with
the positions of *all* particles in nm and takes the returned energy in kJ/mol; forces come from
autograd inside openmm-torch. :class:`OpenMMEnergyModule` selects the model's particles (the ML
region of a mixed system), converts units (factors from :mod:`tensormol.units`), builds the pair
list in plain tensor operations (no neighbour-list library, so the whole computation is one
TorchScript graph) and calls the model.

The models use Python-side validation and custom autograd functions, which ``torch.jit.script``
cannot compile; :func:`torchscript_module` therefore *traces* the module on an example
configuration. The trace is exact for every configuration of the same particles: the pair list
is computed inside the graph from all N(N-1) ordered pairs, selected by a mask whose size is
dynamic, and no Python branch depends on the positions. Tracing fixes the particle count and
elements (a TorchForce is built per system anyway). Periodic boxes use the minimum image, so every
box width must be at least twice the cutoff; the box is checked when the module is built and the
traced graph also checks it at every call.

This route exists only where ``openmmtorch`` imports (CUDA-enabled torch builds); everywhere else
the PythonForce route is used. The traced module itself is plain TorchScript: it is tested on CPU
(``torch.jit.save``/``load`` and autograd forces against the model).
"""

import functools
from collections.abc import Sequence
from typing import Optional

import torch
from torch import Tensor, nn

from tensormol import keys as K
from tensormol.export._bundle import Bundle
from tensormol.export._geometry import OVERLAP_TOL
from tensormol.units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM

__all__ = ["OpenMMEnergyModule", "openmmtorch_import_error", "make_torch_force",
           "torchscript_module"]


def minimum_image_pairs(pos: Tensor, pairs: Tensor, cell: Optional[Tensor],  # noqa: UP045
                        cutoff: float) -> tuple[Tensor, Tensor]:
    """Ordered pairs (2, E) int64 closer than ``cutoff`` and their integer cell shifts (E, 3).

    Parameters
    ----------
    pos : Tensor
        (N, 3) float Å.
    pairs : Tensor
        (2, P) int64 candidate ordered pairs (i, j), typically all i != j.
    cell : Tensor, optional
        (3, 3) float Å, lattice vectors as rows in OpenMM's reduced form (a along x, b in the xy
        plane); ``None`` without periodicity. Every width must be ≥ 2 ``cutoff``.
    cutoff : float
        Å.

    Returns
    -------
    tuple of Tensor
        ``edge_index`` (2, E) and ``cell_shifts`` (E, 3) int64 with
        ``r_ij = pos[j] - pos[i] + cell_shifts @ cell`` the minimum-image vector.
    """
    d = pos.index_select(0, pairs[1]) - pos.index_select(0, pairs[0])
    shifts = torch.zeros_like(d)
    if cell is not None:
        # OpenMM's reduced form: c, then b, then a, each removes one fractional coordinate.
        for k in (2, 1, 0):
            n = -torch.round(d[:, k] / cell[k, k])
            d = d + n[:, None] * cell[k][None, :]
            shifts[:, k] = n
    keep = (d * d).sum(dim=1) < cutoff * cutoff
    return pairs[:, keep], shifts[keep].to(torch.int64)


def _check_box(cell: Tensor, cutoff: float) -> Tensor:
    if bool(torch.diagonal(cell).min() < 2.0 * cutoff):
        raise RuntimeError("box width < 2 x cutoff: the TorchForce route uses the minimum image; "
                           "use backend='python' (all periodic images) or a larger box")
    return cell


@functools.cache
def _box_checker():
    return torch.jit.script(_check_box)


def _check_pairs(pos: Tensor, edge_index: Tensor, shifts: Tensor,
                 cell: Optional[Tensor], tol: float) -> Tensor:  # noqa: UP045
    # Scripted, so the check stays in the traced graph: without it overlapping atoms give NaN.
    if edge_index.shape[1] > 0:
        d = pos.index_select(0, edge_index[1]) - pos.index_select(0, edge_index[0])
        if cell is not None:
            d = d + shifts.to(d.dtype) @ cell
        length = torch.linalg.vector_norm(d, dim=1)
        if bool((length <= tol).any()):
            e = int(torch.nonzero(length <= tol)[0, 0])
            i = int(edge_index[0, e])
            j = int(edge_index[1, e])
            raise RuntimeError("unphysical geometry (overlap): atoms " + str(min(i, j))
                               + " and " + str(max(i, j)) + " (0-based indices) overlap; a "
                               "model cannot evaluate overlapping atoms")
    return edge_index


@functools.cache
def _pair_checker():
    return torch.jit.script(_check_pairs)


class OpenMMEnergyModule(nn.Module):
    """``(positions (N_all, 3) nm[, box (3, 3) nm]) -> energy () kJ/mol`` of a tensormol model.

    Parameters
    ----------
    model : EnergyModel
    atomic_numbers : sequence of int
        Elements of the model's particles.
    periodic : bool
    indices : sequence of int, optional
        Positions of the model's particles among all particles OpenMM passes (an ML region);
        default: all particles, in order.
    """

    def __init__(self, model: nn.Module, atomic_numbers: Sequence[int], periodic: bool,
                 indices: Optional[Sequence[int]] = None) -> None:  # noqa: UP045
        super().__init__()
        self.model = model
        zs = [int(z) for z in atomic_numbers]
        n = len(zs)
        if indices is not None and len(indices) != n:
            raise ValueError(f"indices has {len(indices)} entries for {n} atomic numbers")
        self.register_buffer("atomic_numbers", torch.tensor(zs, dtype=torch.int64))
        self.register_buffer("indices", torch.tensor(
            list(range(n)) if indices is None else [int(i) for i in indices], dtype=torch.int64))
        self.select = indices is not None
        i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        off = i != j
        self.register_buffer("pairs", torch.stack([i[off], j[off]]))
        self.periodic = bool(periodic)
        self.cutoff = float(model.cutoff)

    def forward(self, positions: Tensor, box: Optional[Tensor] = None) -> Tensor:  # noqa: UP045
        pos = positions.to(torch.float64)
        if self.select:
            pos = pos.index_select(0, self.indices)
        pos = pos * NM_TO_ANGSTROM
        batch = {K.POSITIONS: pos, K.ATOMIC_NUMBERS: self.atomic_numbers}
        cell: Optional[Tensor] = None  # noqa: UP045
        if self.periodic and box is not None:
            cell = box.to(torch.float64) * NM_TO_ANGSTROM
            # A scripted call keeps its branch inside the traced graph (a Python check would be
            # evaluated once at trace time): NPT can shrink the box during a run.
            cell = _box_checker()(cell, self.cutoff)
            batch[K.CELL] = cell.unsqueeze(0)
            batch[K.PBC] = torch.ones(1, 3, dtype=torch.bool, device=pos.device)
        edge_index, shifts = minimum_image_pairs(pos, self.pairs, cell, self.cutoff)
        # Indices of the ML region (0-based); no pair in range is fine (isolated atoms).
        edge_index = _pair_checker()(pos.detach(), edge_index, shifts, cell, OVERLAP_TOL)
        batch[K.EDGE_INDEX], batch[K.CELL_SHIFTS] = edge_index, shifts
        energy = self.model(batch, compute_forces=False)[K.ENERGY]
        return energy.sum() * EV_TO_KJ_PER_MOL


def _example_positions(n_all: int, indices: Sequence[int]) -> Tensor:
    """A configuration to trace on: the model's atoms on a 1.2 Å cubic grid (many pairs within
    any cutoff, none overlapping), the others at the origin."""
    pos = torch.zeros(n_all, 3, dtype=torch.float64)
    side = max(1, round(len(indices) ** (1.0 / 3.0) + 0.5))
    grid = torch.stack(torch.meshgrid(*[torch.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)
    pos[torch.as_tensor(list(indices))] = 0.12 * grid[: len(indices)].to(torch.float64) + 0.05
    return pos


def torchscript_module(model: nn.Module, atomic_numbers: Sequence[int], periodic: bool, *,
                       indices: Optional[Sequence[int]] = None,  # noqa: UP045
                       num_particles: Optional[int] = None,  # noqa: UP045
                       box_nm: Optional[Tensor] = None) -> torch.jit.ScriptModule:  # noqa: UP045
    """The TorchScript module a ``TorchForce`` runs (traced; see the module docstring).

    Parameters
    ----------
    model : EnergyModel
    atomic_numbers : sequence of int
        Elements of the model's particles.
    periodic : bool
    indices : sequence of int, optional
        The model's particles among all ``num_particles`` (default: all, in order).
    num_particles : int, optional
        Particles in the OpenMM system (default: ``len(atomic_numbers)``).
    box_nm : Tensor, optional
        (3, 3) nm, the periodic box (required when ``periodic``): checked to be ≥ 2 cutoffs wide.

    Returns
    -------
    torch.jit.ScriptModule
        ``module(positions (num_particles, 3) nm[, box (3, 3) nm]) -> energy () kJ/mol``.
    """
    model = model.eval()
    n = len(atomic_numbers)
    n_all = n if num_particles is None else int(num_particles)
    idx = list(range(n)) if indices is None else [int(i) for i in indices]
    module = OpenMMEnergyModule(model, atomic_numbers, periodic,
                                indices=None if indices is None and n_all == n else idx)
    example = _example_positions(n_all, idx)
    args: tuple[Tensor, ...] = (example,)
    if periodic:
        if box_nm is None:
            raise ValueError("a periodic TorchScript module needs the box (box_nm) to trace on")
        box = torch.as_tensor(box_nm, dtype=torch.float64).reshape(3, 3)
        width = float(torch.diagonal(box).min()) * NM_TO_ANGSTROM
        if width < 2.0 * module.cutoff:
            raise ValueError(
                f"the box is {width:.2f} Å wide, less than twice the model's cutoff "
                f"({module.cutoff:.2f} Å): the TorchForce route uses the minimum image; use "
                "backend='python' (all periodic images) or a larger box")
        args = (example, box)
    import warnings

    with warnings.catch_warnings():
        # Expected: the model's argument checks turn tensors into Python values; they pass on
        # the example and are not part of the traced computation.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(module, args, check_trace=False)


def openmmtorch_import_error() -> Optional[str]:  # noqa: UP045
    """``None`` if ``openmmtorch`` imports, else why not (one line)."""
    try:
        import openmmtorch  # noqa: F401
    except Exception as err:  # the PyPI wheel fails to load without CUDA-enabled torch
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return None


def make_torch_force(bundle: Bundle, atomic_numbers: Sequence[int], periodic: bool, *,
                     indices: Optional[Sequence[int]] = None,  # noqa: UP045
                     num_particles: Optional[int] = None,  # noqa: UP045
                     box_nm: Optional[Tensor] = None):  # noqa: UP045
    """An ``openmmtorch.TorchForce`` computing the bundle's model (traced TorchScript module).

    Arguments as in :func:`torchscript_module`.

    Raises
    ------
    ImportError
        Where ``openmmtorch`` does not import (use ``backend="python"``).
    """
    reason = openmmtorch_import_error()
    if reason is not None:
        raise ImportError(
            f"backend 'torch' needs openmm-torch, which does not import here ({reason}); use "
            "backend='python' (the PythonForce route, on every platform)"
        )
    import openmmtorch

    module = torchscript_module(bundle.build_model(), atomic_numbers, periodic, indices=indices,
                                num_particles=num_particles, box_nm=box_nm)
    force = openmmtorch.TorchForce(module)
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    force.setOutputsForces(False)
    return force
