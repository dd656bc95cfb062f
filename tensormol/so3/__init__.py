"""O(3) representation theory: irreps, real spherical harmonics, rotations, Wigner D matrices.

Conventions are e3nn's (irreps strings, Y-X-Y Euler angles, spherical-harmonic basis and
normalizations), so tensormol and e3nn layers interoperate.
"""

from __future__ import annotations

from ._cartesian import (
    ELASTICITY_IRREPS,
    MANDEL_IRREPS,
    RANK2_IRREPS,
    VECTOR_IRREPS,
    VOIGT_PAIRS,
    decompose_rank2,
    elasticity_basis,
    elasticity_to_irreps,
    elasticity_to_mandel,
    irreps_to_elasticity,
    irreps_to_mandel,
    irreps_to_rank2,
    irreps_to_vector,
    mandel_basis,
    mandel_rotation,
    mandel_to_elasticity,
    mandel_to_irreps,
    rank2_basis,
    rank2_to_irreps,
    symmetrize_elasticity,
    vector_to_irreps,
)
from ._cg import clebsch_gordan, real_basis_in_complex, wigner_3j
from ._gaunt import gaunt, gaunt_allowed, gaunt_coefficients, gaunt_table, gaunt_tensor
from ._irreps import Irrep, Irreps, MulIr
from ._rotation import (
    angles_to_matrix,
    angles_to_xyz,
    axis_angle_to_matrix,
    identity_angles,
    matrix_to_angles,
    matrix_to_axis_angle,
    matrix_x,
    matrix_y,
    matrix_z,
    rand_angles,
    rand_matrix,
    rand_o3,
    xyz_to_angles,
)
from ._sh import SphericalHarmonics, sh_irreps, spherical_harmonics
from ._wigner import wigner_D, wigner_D_from_matrix

__all__ = [
    "ELASTICITY_IRREPS",
    "MANDEL_IRREPS",
    "RANK2_IRREPS",
    "VECTOR_IRREPS",
    "VOIGT_PAIRS",
    "clebsch_gordan",
    "decompose_rank2",
    "elasticity_basis",
    "elasticity_to_irreps",
    "elasticity_to_mandel",
    "gaunt",
    "gaunt_allowed",
    "gaunt_coefficients",
    "gaunt_table",
    "gaunt_tensor",
    "irreps_to_elasticity",
    "irreps_to_mandel",
    "irreps_to_rank2",
    "irreps_to_vector",
    "mandel_basis",
    "mandel_rotation",
    "mandel_to_elasticity",
    "mandel_to_irreps",
    "rank2_basis",
    "rank2_to_irreps",
    "real_basis_in_complex",
    "symmetrize_elasticity",
    "vector_to_irreps",
    "wigner_3j",
    "Irrep",
    "Irreps",
    "MulIr",
    "SphericalHarmonics",
    "angles_to_matrix",
    "angles_to_xyz",
    "axis_angle_to_matrix",
    "identity_angles",
    "matrix_to_angles",
    "matrix_to_axis_angle",
    "matrix_x",
    "matrix_y",
    "matrix_z",
    "rand_angles",
    "rand_matrix",
    "rand_o3",
    "sh_irreps",
    "spherical_harmonics",
    "wigner_D",
    "wigner_D_from_matrix",
    "xyz_to_angles",
]
