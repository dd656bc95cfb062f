"""Groups acting on tensor powers of R^n, and equivariant linear layers between them.

Groups: the symmetric group ``S_n`` (set-partition diagrams), ``O(n)`` (Brauer diagrams),
``SO(n)`` (Brauer and Levi-Civita diagrams), ``Sp(n)`` (Brauer diagrams with the symplectic form)
and graph automorphism groups ``Aut(G)`` (orbit basis). See ``docs/groups.md``.
"""

from ._automorphism import AutomorphismGroup
from ._diagrams import (
    Diagram,
    brauer_diagrams,
    compose,
    levi_civita_diagrams,
    set_partition_diagrams,
)
from ._groups import (
    GROUP_KINDS,
    diagrams,
    orbit_basis,
    random_elements,
    representation,
    spanning_set,
    tensor_power_action,
)
from ._layers import EquivariantLinear
from ._matrices import diagram_matrix, levi_civita_tensor, symplectic_form
from ._products import diagram_scale, transpose_diagram

__all__ = [
    "GROUP_KINDS",
    "AutomorphismGroup",
    "Diagram",
    "EquivariantLinear",
    "brauer_diagrams",
    "compose",
    "diagram_matrix",
    "diagram_scale",
    "diagrams",
    "levi_civita_diagrams",
    "levi_civita_tensor",
    "orbit_basis",
    "random_elements",
    "representation",
    "set_partition_diagrams",
    "spanning_set",
    "symplectic_form",
    "tensor_power_action",
    "transpose_diagram",
]
