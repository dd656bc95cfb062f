"""Activation functions by name, the one table every model config chooses from."""

from __future__ import annotations

import math

from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "ShiftedSoftplus", "activation"]

_LOG2 = math.log(2.0)


class ShiftedSoftplus(nn.Module):
    """``softplus(x) - log(2)`` (SchNet's activation; 0 at 0)."""

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.softplus(x) - _LOG2


#: Activation modules by the name a config gives them.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "ssp": ShiftedSoftplus,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def activation(name: str) -> type[nn.Module]:
    """The activation module class called ``name`` (one of :data:`ACTIVATIONS`).

    Raises
    ------
    ValueError
        For an unknown name, listing the valid ones and suggesting the closest.
    """
    if name not in ACTIVATIONS:
        from tensormol.registry import suggest

        raise ValueError(
            f"activation must be one of {', '.join(ACTIVATIONS)}, got {name!r}"
            f"{suggest(str(name), list(ACTIVATIONS))}"
        )
    return ACTIVATIONS[name]
