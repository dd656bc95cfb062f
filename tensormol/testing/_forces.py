"""Finite-difference check of forces: ``F = -dE/dr`` against central differences in float64."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["finite_difference_forces", "check_forces_fd"]

_AXES = "xyz"


def _energy(energy_fn: Callable[[torch.Tensor], torch.Tensor], pos: torch.Tensor) -> torch.Tensor:
    e = energy_fn(pos)
    if not isinstance(e, torch.Tensor):
        raise TypeError(f"energy_fn must return a tensor, got {type(e).__name__}")
    if e.numel() != 1:
        raise ValueError(
            f"energy_fn must return a single energy (one element), got shape {tuple(e.shape)}; "
            "sum per-structure energies first"
        )
    return e.reshape(())


def _prepare(positions: torch.Tensor) -> torch.Tensor:
    if not isinstance(positions, torch.Tensor) or not positions.is_floating_point():
        raise TypeError("positions must be a floating-point tensor (Å), e.g. shape (N, 3)")
    if positions.numel() == 0:
        raise ValueError(f"positions is empty (shape {tuple(positions.shape)})")
    if not bool(torch.isfinite(positions).all()):
        raise ValueError("positions contains NaN or infinite values")
    return positions.detach().to(torch.float64).clone()


def finite_difference_forces(energy_fn: Callable[[torch.Tensor], torch.Tensor],
                             positions: torch.Tensor, *, eps: float = 1e-4,
                             indices: torch.Tensor | None = None) -> torch.Tensor:
    r"""Central-difference forces ``-(E(r + eps e_i) - E(r - eps e_i)) / (2 eps)`` in float64.

    Parameters
    ----------
    energy_fn : callable
        ``energy_fn(positions) -> energy`` (one element), evaluated on float64 positions.
    positions : torch.Tensor
        Positions, any shape (usually ``(N, 3)``), Å.
    eps : float
        Displacement, Å.
    indices : torch.Tensor, optional
        Flat indices of the components to differentiate (default: all).

    Returns
    -------
    torch.Tensor
        float64, shape of ``positions`` (components not in ``indices`` are NaN), energy unit / Å.
    """
    if not float(eps) > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    pos = _prepare(positions)
    flat = pos.reshape(-1)
    idx = torch.arange(flat.numel()) if indices is None else torch.as_tensor(indices).reshape(-1)
    out = torch.full_like(flat, float("nan"))
    # No torch.no_grad() here: an energy function may use autograd internally.
    for i in idx.tolist():
        x = flat.clone()
        x[i] += eps
        ep = _energy(energy_fn, x.view_as(pos)).detach().to(torch.float64)
        x[i] -= 2 * eps
        em = _energy(energy_fn, x.view_as(pos)).detach().to(torch.float64)
        out[i] = -(ep - em) / (2 * eps)
    return out.view_as(pos)


def check_forces_fd(energy_fn: Callable[[torch.Tensor], torch.Tensor], positions: torch.Tensor,
                    forces: torch.Tensor | None = None, *, eps: float = 1e-4, atol: float = 1e-6,
                    rtol: float = 1e-5, n_samples: int | None = None,
                    generator: torch.Generator | None = None) -> float:
    r"""Check forces against central finite differences of the energy, in float64.

    Passes when ``|F_i - F_fd_i| <= atol + rtol |F_fd_i|`` for every checked component ``i``.

    Parameters
    ----------
    energy_fn : callable
        ``energy_fn(positions) -> energy`` with one element. It receives float64 positions and
        should compute in float64 (float32 energies make finite differences meaningless).
    positions : torch.Tensor
        Positions, usually ``(N, 3)``, Å (any floating dtype; used as float64).
    forces : torch.Tensor, optional
        Forces to check, shape of ``positions``. Default: ``-dE/dr`` by autograd through
        ``energy_fn`` (so this checks the energy function's own gradient).
    eps : float
        Central-difference step, Å (error O(eps^2) from truncation, O(1e-16 |E| / eps) from
        rounding).
    atol, rtol : float
        Absolute (energy/Å) and relative tolerances.
    n_samples : int, optional
        Check only this many randomly chosen components (large systems).
    generator : torch.Generator, optional
        Chooses the sampled components (default: seeded with 0).

    Returns
    -------
    float
        The largest absolute difference over the checked components.

    Raises
    ------
    AssertionError
        Naming the worst component (atom and axis for ``(N, 3)`` positions), both values, the
        error and the tolerance.
    """
    __tracebackhide__ = True
    pos = _prepare(positions)
    if forces is None:
        p = pos.clone().requires_grad_(True)
        with torch.enable_grad():
            e = _energy(energy_fn, p)
            if not e.requires_grad:
                raise ValueError(
                    "energy_fn output does not depend differentiably on positions: pass forces, "
                    "or make energy_fn differentiable"
                )
            (g,) = torch.autograd.grad(e, p, allow_unused=True)
        forces = torch.zeros_like(pos) if g is None else -g
    if not isinstance(forces, torch.Tensor) or forces.shape != pos.shape:
        got = tuple(forces.shape) if isinstance(forces, torch.Tensor) else type(forces).__name__
        raise ValueError(f"forces must have the shape of positions {tuple(pos.shape)}, got {got}")
    f = forces.detach().to(torch.float64).reshape(-1)
    n = f.numel()
    if n_samples is None or n_samples >= n:
        idx = torch.arange(n)
    else:
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer or None, got {n_samples!r}")
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        idx = torch.randperm(n, generator=gen)[:n_samples].sort().values
    fd = finite_difference_forces(energy_fn, pos, eps=eps, indices=idx).reshape(-1)[idx]
    fa = f[idx]
    err = (fa - fd).abs()
    tol = atol + rtol * fd.abs()
    bad = ~(err <= tol)  # NaN counts as bad
    worst = int(torch.where(bad, err / tol, torch.zeros_like(err)).nan_to_num(float("inf"))
                .argmax()) if bool(bad.any()) else int(err.argmax())
    max_err = float(err.max())
    if bool(bad.any()):
        i = int(idx[worst])
        if pos.dim() == 2 and pos.shape[1] == 3:
            where = f"atom {i // 3}, {_AXES[i % 3]}"
        else:
            multi = torch.unravel_index(torch.tensor(i), pos.shape)
            where = f"index {tuple(int(k) for k in multi)}"
        raise AssertionError(
            f"forces disagree with finite differences of the energy at {int(bad.sum())} of "
            f"{idx.numel()} components; worst at {where}: force {float(fa[worst]):.8g}, finite "
            f"difference {float(fd[worst]):.8g}, |error| {float(err[worst]):.3e} > tolerance "
            f"{float(tol[worst]):.3e} (atol {atol:g} + rtol {rtol:g} |F_fd|, eps {eps:g})"
        )
    return max_err
