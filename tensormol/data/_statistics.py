"""Training-set statistics: per-element reference energies, force scale, neighbour counts."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import keys as K
from ..elements import number_to_symbol
from ._dataset import AtomicDataset

__all__ = ["compute_statistics", "mean_num_neighbors", "dataset_summary"]


def _check_dataset(ds: object, name: str) -> AtomicDataset:
    if not isinstance(ds, AtomicDataset):
        raise TypeError(f"{name} must be an AtomicDataset, got {type(ds).__name__}")
    if len(ds) == 0:
        raise ValueError(f"{name} is empty; statistics need at least one structure")
    return ds


def mean_num_neighbors(dataset: AtomicDataset, cutoff: float, *, chunk: int = 256) -> float:
    """Average number of neighbours within ``cutoff`` (Å) per atom, periodic images included.

    Uses :func:`tensormol.ops.neighbor_list` on chunks of ``chunk`` structures (the same lists
    the models build), so the count is exactly the mean in-degree a model sees.
    """
    from ..ops import neighbor_list

    ds = _check_dataset(dataset, "dataset")
    cutoff = float(cutoff)
    if not cutoff > 0:
        raise ValueError(f"cutoff must be > 0 Å, got {cutoff}")
    edges = 0
    for start in range(0, len(ds), chunk):
        stop = min(start + chunk, len(ds))
        a, b = int(ds.ptr[start]), int(ds.ptr[stop])
        batch = torch.repeat_interleave(torch.arange(stop - start), ds.num_atoms[start:stop])
        edge_index, _ = neighbor_list(ds.positions[a:b], cutoff, cell=ds.cell[start:stop],
                                      pbc=ds.pbc[start:stop], batch=batch)
        edges += int(edge_index.shape[1])
    return edges / int(ds.ptr[-1])


def compute_statistics(train_dataset: AtomicDataset, cutoff: float | None = None
                       ) -> dict[str, Any]:
    """Statistics of a training split, for energy shifts, loss weights and message scaling.

    Parameters
    ----------
    train_dataset : AtomicDataset
        The training split only (never validation or test data).
    cutoff : float, optional
        Å; if given, also the mean neighbour count.

    Returns
    -------
    dict
        ``num_structures``, ``num_atoms``, ``species`` (sorted atomic numbers); with energies:
        ``element_energies`` {Z: eV}, the least-squares solution of E_b ≈ Σ_Z n_bZ e_Z
        (minimum-norm when the compositions do not determine every e_Z, e.g. one molecule;
        only the sums per composition are meaningful then), ``element_energies_rank`` (rank of
        the composition matrix), ``energy_residual_rms`` (eV, per structure, after subtracting
        the references) and ``energy_residual_per_atom_std`` (eV/atom); with forces:
        ``force_rms`` (eV/Å, root mean square over all components); with stress: ``stress_rms``
        (eV/Å³); with ``cutoff``: ``cutoff`` and ``mean_num_neighbors``.
    """
    ds = _check_dataset(train_dataset, "train_dataset")
    species = ds.species
    out: dict[str, Any] = {"num_structures": len(ds), "num_atoms": int(ds.ptr[-1]),
                           "species": species}
    if K.ENERGY in ds.labels:
        col = {z: c for c, z in enumerate(species)}
        frame = torch.repeat_interleave(torch.arange(len(ds)), ds.num_atoms).numpy()
        cols = np.array([col[int(z)] for z in ds.atomic_numbers.tolist()])
        counts = np.zeros((len(ds), len(species)))
        np.add.at(counts, (frame, cols), 1.0)
        energy = ds.labels[K.ENERGY].numpy()
        coef, _, rank, _ = np.linalg.lstsq(counts, energy, rcond=None)
        resid = energy - counts @ coef
        out["element_energies"] = {z: float(c) for z, c in zip(species, coef)}
        out["element_energies_rank"] = int(rank)
        out["energy_residual_rms"] = float(np.sqrt(np.mean(resid**2)))
        out["energy_residual_per_atom_std"] = float(np.std(resid / ds.num_atoms.numpy()))
    if K.FORCES in ds.labels:
        out["force_rms"] = float(torch.sqrt(torch.mean(ds.labels[K.FORCES] ** 2)))
    if K.STRESS in ds.labels:
        out["stress_rms"] = float(torch.sqrt(torch.mean(ds.labels[K.STRESS] ** 2)))
    if cutoff is not None:
        out["cutoff"] = float(cutoff)
        out["mean_num_neighbors"] = mean_num_neighbors(ds, cutoff)
    return out


def _rng(x: torch.Tensor) -> dict[str, float]:
    return {"min": float(x.min()), "max": float(x.max()), "mean": float(x.mean()),
            "std": float(x.std()) if x.numel() > 1 else 0.0}


def dataset_summary(dataset: AtomicDataset, cutoff: float | None = None) -> dict[str, Any]:
    """A JSON-friendly overview of a data set (sizes, species, label ranges in eV/Å units)."""
    ds = _check_dataset(dataset, "dataset")
    n = ds.num_atoms.to(torch.float64)
    out: dict[str, Any] = {
        "structures": len(ds),
        "atoms": int(ds.ptr[-1]),
        "atoms_per_structure": {"min": float(n.min()), "max": float(n.max())},
        "species": " ".join(number_to_symbol(z) for z in ds.species),
        "labels": ", ".join(ds.label_keys) or "none",
        "periodic_structures": int(ds.is_periodic.sum()),
    }
    for key in ("level_of_theory", "code", "energy_unit", "length_unit"):
        if key in ds.metadata:
            out[f"file_{key}" if key.endswith("unit") else key] = ds.metadata[key]
    if bool(ds.is_periodic.any()):
        vol = torch.linalg.det(ds.cell[ds.is_periodic]).abs()
        out["volume_A3"] = _rng(vol)
    if K.ENERGY in ds.labels:
        e = ds.labels[K.ENERGY]
        out["energy_eV"] = _rng(e)
        out["energy_per_atom_eV"] = _rng(e / n)
    if K.FORCES in ds.labels:
        f = ds.labels[K.FORCES]
        r = _rng(f)
        r["rms"] = float(torch.sqrt(torch.mean(f**2)))
        r["max_norm"] = float(torch.linalg.norm(f, dim=1).max())
        out["forces_eV_per_A"] = r
    if K.STRESS in ds.labels:
        out["stress_eV_per_A3"] = _rng(ds.labels[K.STRESS])
    if K.DIPOLE in ds.labels:
        out["dipole_norm_eA"] = _rng(torch.linalg.norm(ds.labels[K.DIPOLE], dim=1))
    if cutoff is not None:
        out["cutoff_A"] = float(cutoff)
        out["mean_num_neighbors"] = mean_num_neighbors(ds, cutoff)
    return out
