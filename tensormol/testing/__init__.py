"""Test oracles shipped for tensormol developers and plugin authors.

* :func:`assert_equivariant` / :func:`equivariance_error`: random rotations, reflections and
  translations acting on inputs and outputs declared by irreps (or ``"cartesian_points"``);
* :func:`assert_equivariant_finite`: the same oracle for explicit group elements and actions
  (permutations, O(n) matrices, graph automorphisms), with :func:`permutation_action` and
  :func:`matrix_action` for the common cases;
* :func:`check_forces_fd`: forces against central finite differences of the energy (float64).

The model contract suite lives in :mod:`tensormol.testing._contract`.
"""

from __future__ import annotations

from ._contract import check_energy_model
from ._equivariance import (
    CARTESIAN_POINTS,
    assert_equivariant,
    assert_equivariant_finite,
    default_tolerance,
    equivariance_error,
    finite_equivariance_error,
    matrix_action,
    permutation_action,
)
from ._forces import check_forces_fd, finite_difference_forces

__all__ = [
    "check_energy_model",
    "CARTESIAN_POINTS",
    "assert_equivariant",
    "assert_equivariant_finite",
    "check_forces_fd",
    "default_tolerance",
    "equivariance_error",
    "finite_difference_forces",
    "finite_equivariance_error",
    "matrix_action",
    "permutation_action",
]
