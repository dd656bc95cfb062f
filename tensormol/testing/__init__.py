"""Test oracles shipped for tensormol developers and plugin authors.

* :func:`assert_equivariant` / :func:`equivariance_error`: random rotations, reflections and
  translations acting on inputs and outputs declared by irreps (or ``"cartesian_points"``);
* :func:`assert_equivariant_finite`: the same oracle for explicit group elements and actions
  (permutations, O(n) matrices, graph automorphisms), with :func:`permutation_action` and
  :func:`matrix_action` for the common cases;
* :func:`check_forces_fd` / :func:`finite_difference_forces`: forces against central finite
  differences of the energy (float64);
* the model contract: :func:`check_energy_model` runs every ``check_*`` on a model factory; the
  generators (:func:`random_molecule`, :func:`random_periodic`, :func:`supercell`) produce
  :class:`TorchStructure` objects that :func:`make_batch` turns into a model's batch.
"""

from __future__ import annotations

from ._contract import (
    TorchStructure,
    check_batching,
    check_cutoff_smoothness,
    check_dtypes,
    check_energy_model,
    check_equivariance,
    check_force_jacobian,
    check_forces_finite_difference,
    check_input_validation,
    check_isolated_atoms,
    check_output_contract,
    check_periodic_supercell,
    check_permutation_equivariance,
    check_reflection_sensitivity,
    check_stress_finite_strain,
    check_translation_invariance,
    make_batch,
    random_molecule,
    random_periodic,
    supercell,
)
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
    # oracles
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
    # the model contract
    "check_energy_model",
    "check_output_contract",
    "check_equivariance",
    "check_reflection_sensitivity",
    "check_translation_invariance",
    "check_permutation_equivariance",
    "check_forces_finite_difference",
    "check_force_jacobian",
    "check_batching",
    "check_cutoff_smoothness",
    "check_dtypes",
    "check_isolated_atoms",
    "check_periodic_supercell",
    "check_stress_finite_strain",
    "check_input_validation",
    # structures for the checks
    "TorchStructure",
    "make_batch",
    "random_molecule",
    "random_periodic",
    "supercell",
]
