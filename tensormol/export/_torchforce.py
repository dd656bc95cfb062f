"""openmm-torch's ``TorchForce`` route: a module in OpenMM units around a tensormol model.

openmm-torch calls ``module(positions)`` (or ``module(positions, box)`` for periodic systems) with
positions in nm and takes the returned energy in kJ/mol; forces come from autograd inside
openmm-torch. :class:`OpenMMEnergyModule` does the unit conversion (factors from
:mod:`tensormol.units`) and wraps the model; :func:`make_torch_force` compiles it with
TorchScript and builds the ``TorchForce``. This route exists only where ``openmmtorch`` imports
(CUDA-enabled torch builds); everywhere else the PythonForce route is used.
"""

from collections.abc import Sequence
from typing import Optional

import torch
from torch import Tensor, nn

from tensormol import keys as K
from tensormol.export._bundle import Bundle
from tensormol.units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM

__all__ = ["OpenMMEnergyModule", "openmmtorch_import_error", "make_torch_force"]


class OpenMMEnergyModule(nn.Module):
    """``(positions (N, 3) nm[, box (3, 3) nm]) -> energy () kJ/mol`` of a tensormol model.

    Parameters
    ----------
    model : EnergyModel
    atomic_numbers : sequence of int
        Elements of the N particles.
    periodic : bool
    """

    def __init__(self, model: nn.Module, atomic_numbers: Sequence[int], periodic: bool) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("atomic_numbers", torch.tensor(list(atomic_numbers),
                                                            dtype=torch.int64))
        self.periodic = bool(periodic)

    def forward(self, positions: Tensor, box: Optional[Tensor] = None) -> Tensor:  # noqa: UP045
        pos = positions.to(torch.float64) * NM_TO_ANGSTROM
        batch = {K.POSITIONS: pos, K.ATOMIC_NUMBERS: self.atomic_numbers}
        if self.periodic and box is not None:
            batch[K.CELL] = (box.to(torch.float64) * NM_TO_ANGSTROM).unsqueeze(0)
            batch[K.PBC] = torch.ones(1, 3, dtype=torch.bool, device=pos.device)
        energy = self.model(batch, compute_forces=False)[K.ENERGY]
        return energy.sum() * EV_TO_KJ_PER_MOL


def openmmtorch_import_error() -> Optional[str]:  # noqa: UP045
    """``None`` if ``openmmtorch`` imports, else why not (one line)."""
    try:
        import openmmtorch  # noqa: F401
    except Exception as err:  # the PyPI wheel fails to load without CUDA-enabled torch
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return None


def make_torch_force(bundle: Bundle, atomic_numbers: Sequence[int], periodic: bool):
    """A ``openmmtorch.TorchForce`` computing the bundle's model (TorchScript module).

    Raises
    ------
    ImportError
        Where ``openmmtorch`` does not import (use ``backend="python"``).
    RuntimeError
        If the model cannot be compiled with TorchScript, with the compiler's reason.
    """
    reason = openmmtorch_import_error()
    if reason is not None:
        raise ImportError(
            f"backend 'torch' needs openmm-torch, which does not import here ({reason}); use "
            "backend='python' (the PythonForce route, on every platform)"
        )
    import openmmtorch

    module = OpenMMEnergyModule(bundle.build_model(), atomic_numbers, periodic)
    try:
        scripted = torch.jit.script(module)
    except Exception as err:
        raise RuntimeError(
            f"the {bundle.name} model cannot be compiled with TorchScript for TorchForce "
            f"({type(err).__name__}: {str(err).splitlines()[0][:200]}); use backend='python'"
        ) from None
    force = openmmtorch.TorchForce(scripted)
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    force.setOutputsForces(False)
    return force
