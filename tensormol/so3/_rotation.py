"""Rotations of R^3: random Haar rotations, Euler angles (e3nn's Y-X-Y convention), axis-angle.

Conventions (identical to e3nn): ``angles_to_matrix(a, b, c) = Ry(a) @ Rx(b) @ Ry(c)``, so
``gamma`` is applied first and ``alpha`` last; matrices act on column vectors, ``x' = R @ x``
(for row-vector batches: ``x @ R.T``).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .._validate import check_int_ge, check_tensor

__all__ = [
    "rand_matrix",
    "rand_o3",
    "rand_angles",
    "identity_angles",
    "matrix_x",
    "matrix_y",
    "matrix_z",
    "angles_to_matrix",
    "matrix_to_angles",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "angles_to_xyz",
    "xyz_to_angles",
]


def _shape(shape: tuple[Any, ...], name: str) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
        shape = tuple(shape[0])
    return tuple(check_int_ge(s, f"{name} shape entry", 0) for s in shape)


def _check_float_dtype(dtype: torch.dtype) -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    return dtype


def rand_matrix(*shape: int, generator: torch.Generator | None = None,
                dtype: torch.dtype = torch.float64, device: Any = None) -> torch.Tensor:
    r"""Haar-random rotation matrices of SO(3).

    Uniform unit quaternions (normalized 4-d Gaussians) are Haar distributed on SU(2), whose image
    in SO(3) is Haar distributed.

    Parameters
    ----------
    *shape : int
        Batch shape (``rand_matrix()`` gives one ``(3, 3)`` matrix, ``rand_matrix(5)`` gives five).
    generator : torch.Generator, optional
        Source of randomness (on ``device``).
    dtype : torch.dtype
        Floating dtype of the result (default float64).
    device : torch.device, optional

    Returns
    -------
    torch.Tensor
        Shape ``(*shape, 3, 3)``, ``det = +1``.
    """
    shape = _shape(shape, "rand_matrix")
    dtype = _check_float_dtype(dtype)
    q = torch.randn(*shape, 4, generator=generator, dtype=torch.float64, device=device)
    # A Gaussian vector is zero with probability 0, but clamp anyway so the norm never divides by 0.
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    return _quaternion_to_matrix(q).to(dtype)


def rand_o3(*shape: int, generator: torch.Generator | None = None,
            dtype: torch.dtype = torch.float64, device: Any = None) -> torch.Tensor:
    r"""Haar-random elements of O(3): a random rotation times ``±I`` with probability 1/2 each.

    Parameters
    ----------
    *shape : int
        Batch shape.
    generator : torch.Generator, optional
    dtype : torch.dtype
        Default float64.
    device : torch.device, optional

    Returns
    -------
    torch.Tensor
        Shape ``(*shape, 3, 3)``; ``det`` is ``+1`` or ``-1``.
    """
    shape = _shape(shape, "rand_o3")
    R = rand_matrix(*shape, generator=generator, dtype=dtype, device=device)
    flip = torch.randint(0, 2, shape, generator=generator, device=device)
    sign = (1 - 2 * flip).to(R.dtype)
    return R * sign[..., None, None]


def rand_angles(*shape: int, generator: torch.Generator | None = None,
                dtype: torch.dtype = torch.float64, device: Any = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Euler angles ``(alpha, beta, gamma)`` of a Haar-random rotation.

    ``alpha, gamma`` are uniform on ``[0, 2 pi)`` and ``cos(beta)`` uniform on ``[-1, 1]``.

    Returns
    -------
    tuple of torch.Tensor
        Three tensors of shape ``shape``, radians.
    """
    shape = _shape(shape, "rand_angles")
    dtype = _check_float_dtype(dtype)
    u = torch.rand(3, *shape, generator=generator, dtype=torch.float64, device=device)
    alpha = (2 * math.pi * u[0]).to(dtype)
    gamma = (2 * math.pi * u[2]).to(dtype)
    beta = torch.acos(2 * u[1] - 1).to(dtype)
    return alpha, beta, gamma


def identity_angles(*shape: int, dtype: torch.dtype = torch.float64, device: Any = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Euler angles of the identity: three zero tensors of shape ``shape``."""
    shape = _shape(shape, "identity_angles")
    dtype = _check_float_dtype(dtype)
    z = torch.zeros(3, *shape, dtype=dtype, device=device)
    return z[0], z[1], z[2]


def _angle(x: Any, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x, dtype=torch.float64)
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of angles, got dtype {x.dtype}")
    return x


def _rot(angle: torch.Tensor, i: int, j: int) -> torch.Tensor:
    # Rotation by `angle` in the (i, j) coordinate plane, taking e_i towards e_j.
    c, s = torch.cos(angle), torch.sin(angle)
    o, z = torch.ones_like(angle), torch.zeros_like(angle)
    rows = [[o, z, z], [z, o, z], [z, z, o]]
    rows[i][i], rows[j][j] = c, c
    rows[j][i], rows[i][j] = s, -s
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def matrix_x(angle: torch.Tensor) -> torch.Tensor:
    """Rotation about the x axis, shape ``(..., 3, 3)`` for angles of shape ``(...)``."""
    return _rot(_angle(angle, "angle"), 1, 2)


def matrix_y(angle: torch.Tensor) -> torch.Tensor:
    """Rotation about the y axis, shape ``(..., 3, 3)`` for angles of shape ``(...)``."""
    return _rot(_angle(angle, "angle"), 2, 0)


def matrix_z(angle: torch.Tensor) -> torch.Tensor:
    """Rotation about the z axis, shape ``(..., 3, 3)`` for angles of shape ``(...)``."""
    return _rot(_angle(angle, "angle"), 0, 1)


def angles_to_matrix(alpha: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    r"""Rotation matrix ``Ry(alpha) @ Rx(beta) @ Ry(gamma)`` (e3nn's convention).

    Parameters
    ----------
    alpha, beta, gamma : torch.Tensor
        Broadcastable angles, shape ``(...)``, radians.

    Returns
    -------
    torch.Tensor
        Shape ``(..., 3, 3)``.
    """
    alpha, beta, gamma = torch.broadcast_tensors(
        _angle(alpha, "alpha"), _angle(beta, "beta"), _angle(gamma, "gamma")
    )
    return matrix_y(alpha) @ matrix_x(beta) @ matrix_y(gamma)


def _check_rotation(R: Any, name: str) -> torch.Tensor:
    check_tensor(R, name, floating=True)
    if R.dim() < 2 or tuple(R.shape[-2:]) != (3, 3):
        raise ValueError(f"{name} must have shape (..., 3, 3), got {tuple(R.shape)}")
    return R


def xyz_to_angles(xyz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Angles ``(alpha, beta)`` with ``xyz / |xyz| = Ry(alpha) Rx(beta) e_y`` (e3nn's convention).

    ``beta`` is computed with ``atan2`` (accurate near the poles, unlike ``acos``).
    """
    check_tensor(xyz, "xyz", floating=True)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    beta = torch.atan2(torch.sqrt(x * x + z * z), y)
    alpha = torch.atan2(x, z)
    return alpha, beta


def angles_to_xyz(alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Point ``Ry(alpha) Rx(beta) e_y`` on the unit sphere, shape ``(..., 3)``."""
    alpha, beta = torch.broadcast_tensors(_angle(alpha, "alpha"), _angle(beta, "beta"))
    sb = torch.sin(beta)
    return torch.stack([sb * torch.sin(alpha), torch.cos(beta), sb * torch.cos(alpha)], dim=-1)


def matrix_to_angles(R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Euler angles with ``angles_to_matrix(alpha, beta, gamma) == R`` for a rotation ``R``.

    Parameters
    ----------
    R : torch.Tensor
        Rotation matrices (``det = +1``), shape ``(..., 3, 3)``.

    Returns
    -------
    tuple of torch.Tensor
        ``alpha, gamma`` in ``(-pi, pi]``, ``beta`` in ``[0, pi]``, each of shape ``(...)``.

    Raises
    ------
    ValueError
        If ``R`` is not a 3x3 rotation (orthogonal within tolerance and ``det = +1``).
    """
    _check_rotation(R, "R")
    _check_orthogonal(R, "R", proper=True)
    a, b = xyz_to_angles(R[..., :, 1])  # R e_y = Ry(a) Rx(b) e_y
    # Ry(a) Rx(b) Ry(c) = R  =>  Ry(c) = Rx(-b) Ry(-a) R, and Ry(c) e_z has x = sin c, z = cos c.
    Rc = angles_to_matrix(a, b, torch.zeros_like(a)).transpose(-1, -2) @ R
    c = torch.atan2(Rc[..., 0, 2], Rc[..., 0, 0])
    return a, b, c


def _check_orthogonal(R: torch.Tensor, name: str, proper: bool = False) -> torch.Tensor:
    """Raise unless every matrix is orthogonal (and a rotation if ``proper``); return det signs."""
    with torch.no_grad():
        Rd = R.detach()
        eye = torch.eye(3, dtype=Rd.dtype, device=Rd.device)
        err = (Rd @ Rd.transpose(-1, -2) - eye).abs().amax(dim=(-1, -2)) if Rd.numel() else Rd
        # Loose enough for rotations built by products and round trips, tight enough to catch
        # a scaled, sheared or transposed-wrong matrix.
        tol = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 1e-2}.get(Rd.dtype, 1e-6)
        if err.numel() and not bool((err <= tol).all()):
            worst = float(err.max()) if bool(torch.isfinite(err).all()) else float("nan")
            raise ValueError(
                f"{name} must hold orthogonal 3x3 matrices (|R R^T - I| <= {tol:g}); worst "
                f"deviation is {worst:.3g}"
            )
        det = torch.linalg.det(Rd) if Rd.numel() else Rd.new_ones(Rd.shape[:-2])
        if proper and Rd.numel() and not bool((det > 0).all()):
            raise ValueError(
                f"{name} must hold proper rotations (det = +1); got a matrix with det = -1. "
                "Use Irreps.D_from_matrix for improper matrices"
            )
        return torch.where(det < 0, -1.0, 1.0).to(Rd.dtype)


def axis_angle_to_matrix(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    r"""Rotation by ``angle`` about ``axis`` (right-hand rule), Rodrigues' formula.

    Parameters
    ----------
    axis : torch.Tensor
        Rotation axes, shape ``(..., 3)``, need not be normalized (must be nonzero).
    angle : torch.Tensor
        Angles, shape ``(...)``, radians; broadcast against ``axis[..., 0]``.

    Returns
    -------
    torch.Tensor
        Shape ``(..., 3, 3)``.
    """
    check_tensor(axis, "axis", floating=True)
    if axis.dim() < 1 or axis.shape[-1] != 3:
        raise ValueError(f"axis must have shape (..., 3), got {tuple(axis.shape)}")
    angle = _angle(angle, "angle").to(axis.dtype)
    n = axis.norm(dim=-1, keepdim=True)
    if bool((n.detach() == 0).any()):
        raise ValueError("axis must be nonzero vectors, got a zero axis")
    u = axis / n
    u, angle = torch.broadcast_tensors(u, angle[..., None])
    angle = angle[..., 0]
    ux, uy, uz = u[..., 0], u[..., 1], u[..., 2]
    z = torch.zeros_like(ux)
    K = torch.stack([
        torch.stack([z, -uz, uy], dim=-1),
        torch.stack([uz, z, -ux], dim=-1),
        torch.stack([-uy, ux, z], dim=-1),
    ], dim=-2)
    eye = torch.eye(3, dtype=axis.dtype, device=axis.device)
    s = torch.sin(angle)[..., None, None]
    c1 = (1 - torch.cos(angle))[..., None, None]
    return eye + s * K + c1 * (K @ K)


def matrix_to_axis_angle(R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Axis (unit, shape ``(..., 3)``) and angle in ``[0, pi]`` of rotation matrices ``R``."""
    _check_rotation(R, "R")
    _check_orthogonal(R, "R", proper=True)
    # Through the quaternion, which is well conditioned for every angle (including pi).
    q = _matrix_to_quaternion(R)
    v = q[..., 1:]
    angle = 2 * torch.atan2(v.norm(dim=-1), q[..., 0].abs())
    sign = torch.where(q[..., 0] < 0, -1.0, 1.0).to(R.dtype)[..., None]
    axis = torch.nn.functional.normalize(v * sign, dim=-1)
    return axis, angle


def _quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], dim=-1),
        torch.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], dim=-1),
        torch.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], dim=-1),
    ], dim=-2)


def _matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    # Shepperd's method, batched: pick for each matrix the largest of 4 candidate denominators.
    m = R
    t = torch.stack([
        1 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2],
        1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
        1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
        1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2],
    ], dim=-1)
    qs = torch.stack([
        torch.stack([t[..., 0], m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                     m[..., 1, 0] - m[..., 0, 1]], dim=-1),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], t[..., 1], m[..., 1, 0] + m[..., 0, 1],
                     m[..., 0, 2] + m[..., 2, 0]], dim=-1),
        torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] + m[..., 0, 1], t[..., 2],
                     m[..., 2, 1] + m[..., 1, 2]], dim=-1),
        torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0],
                     m[..., 2, 1] + m[..., 1, 2], t[..., 3]], dim=-1),
    ], dim=-2)
    best = t.argmax(dim=-1)
    q = torch.gather(qs, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    tb = torch.gather(t, -1, best[..., None])
    return q / (2 * torch.sqrt(tb.clamp_min(1e-300)))
