"""An ASE calculator backed by a tensormol model bundle (MD, optimizers, NEB)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from tensormol import keys as K
from tensormol.export._bundle import Bundle, load_bundle

__all__ = ["TensorMolCalculator"]


class TensorMolCalculator(Calculator):
    """Energy (eV), forces (eV/Å) and, for periodic cells, stress (eV/Å³) from a tensormol model.

    Parameters
    ----------
    model : path-like, Bundle or EnergyModel
        A bundle file (``model.tmol``), a loaded :class:`Bundle`, or a model object.
    device : str
        Torch device to evaluate on.
    **kwargs
        Passed to :class:`ase.calculators.calculator.Calculator` (``label``, ``atoms``...).

    Notes
    -----
    Stress is computed only when all three directions are periodic (ASE asks for it in NPT and cell
    filters); it follows ASE's sign convention and is returned in Voigt order (xx, yy, zz, yz, xz,
    xy). Elements the model was not trained on raise a ``ValueError`` that names them;
    overlapping atoms raise :class:`~tensormol.export.GeometryError` (0-based indices), as on the
    OpenMM routes.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, model: str | os.PathLike | Bundle | torch.nn.Module,
                 device: str = "cpu", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(model, torch.nn.Module):
            self.bundle = None
            self.model = model.to(device).eval()
        else:
            self.bundle = load_bundle(model)
            self.model = self.bundle.build_model(device=device)
        self.device = torch.device(device)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        z = atoms.get_atomic_numbers()
        if self.bundle is not None:
            self.bundle.check_species(z, what="the Atoms object")
        pbc = np.asarray(atoms.get_pbc(), dtype=bool)
        want_stress = "stress" in properties and bool(pbc.all())
        if "stress" in properties and not pbc.all():
            raise ValueError(
                "stress needs a cell periodic in all three directions; this Atoms has pbc="
                f"{pbc.tolist()}"
            )
        dev, f64 = self.device, torch.float64
        batch = {
            K.POSITIONS: torch.tensor(atoms.get_positions(), dtype=f64, device=dev),
            K.ATOMIC_NUMBERS: torch.tensor(z, dtype=torch.int64, device=dev),
            K.CELL: torch.tensor(np.asarray(atoms.get_cell()), dtype=f64, device=dev)[None],
            K.PBC: torch.tensor(pbc, device=dev)[None],
        }
        # The pair list is built here so that overlapping atoms get the same GeometryError
        # (0-based indices) as on the OpenMM routes.
        from tensormol.export._geometry import check_edge_overlap
        from tensormol.ops import neighbor_list

        pbc_t = batch[K.PBC]
        cell = batch[K.CELL] if bool(pbc_t.any()) else None
        edges, shifts = neighbor_list(batch[K.POSITIONS], float(self.model.cutoff), cell=cell,
                                      pbc=pbc_t if cell is not None else None,
                                      check_overlap=False)
        check_edge_overlap(batch[K.POSITIONS], edges, shifts, cell)
        batch[K.EDGE_INDEX], batch[K.CELL_SHIFTS] = edges, shifts
        out = self.model(batch, compute_forces=True, compute_stress=want_stress)
        energy = float(out[K.ENERGY][0])
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["forces"] = out[K.FORCES].detach().cpu().numpy().astype(np.float64)
        if want_stress:
            s = out[K.STRESS][0].detach().cpu().numpy()
            self.results["stress"] = np.array(
                [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]], dtype=np.float64
            )
