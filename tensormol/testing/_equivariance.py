"""Equivariance oracles: random O(3) elements (and translations), or any finite group action.

:func:`assert_equivariant` checks ``fn(g . x) == g . fn(x)`` for random rotations, reflections and
translations acting on inputs and outputs declared by irreps (the action on the last dimension is
the block-diagonal Wigner matrix of :meth:`Irreps.D_from_matrix`), by ``"cartesian_points"``
(rotated and translated) or by ``None`` (left alone: species, indices, cells' integer shifts...).
:func:`assert_equivariant_finite` is the same oracle for an explicit list of group elements and
user-given actions, so permutation (S_n), O(n) or graph-automorphism equivariance is checked the
same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..so3._irreps import Irreps
from ..so3._rotation import rand_matrix

__all__ = [
    "CARTESIAN_POINTS",
    "default_tolerance",
    "equivariance_error",
    "assert_equivariant",
    "finite_equivariance_error",
    "assert_equivariant_finite",
    "permutation_action",
    "matrix_action",
]

CARTESIAN_POINTS = "cartesian_points"

_BASE_TOL = {
    torch.float64: 1e-10,
    torch.float32: 1e-5,
    torch.float16: 1e-2,
    torch.bfloat16: 1e-2,
}


def default_tolerance(dtype: torch.dtype, scale: float = 1.0) -> float:
    """Default absolute tolerance for outputs of ``dtype`` with magnitude ``scale``.

    ``base(dtype) * max(1, scale)`` with base 1e-10 (float64), 1e-5 (float32), 1e-2 (half types):
    absolute for O(1) outputs, relative for large ones.
    """
    base = _BASE_TOL.get(dtype, 1e-10 if dtype == torch.complex128 else 1e-5)
    return base * max(1.0, float(scale))


# ---------------------------------------------------------------------------------------------
# helpers shared by both oracles
# ---------------------------------------------------------------------------------------------
def _as_tuple(x: Any) -> tuple:
    if isinstance(x, (tuple, list)):
        return tuple(x)
    return (x,)


def _call(fn: Callable, args: tuple, what: str) -> tuple[torch.Tensor, ...]:
    out = fn(*args)
    outs = _as_tuple(out)
    for i, o in enumerate(outs):
        if not isinstance(o, torch.Tensor):
            raise TypeError(
                f"{what}: fn must return a tensor or a tuple/list of tensors; output {i} is "
                f"{type(o).__name__}"
            )
    return outs


@dataclass
class _Worst:
    error: float = 0.0
    ratio: float = 0.0  # error / tolerance of the worst case
    message: str = ""


def _compare(got: torch.Tensor, want: torch.Tensor, tol: float | None, label: str,
             worst: _Worst) -> None:
    """Update ``worst`` with the difference of one output under one group element."""
    if got.shape != want.shape:
        raise AssertionError(
            f"{label}: output shape changed under the group action: {tuple(got.shape)} after "
            f"transforming the input, {tuple(want.shape)} from transforming the output"
        )
    g = got.detach().to(torch.float64) if got.is_floating_point() else got.detach().double()
    w = want.detach().to(torch.float64) if want.is_floating_point() else want.detach().double()
    if g.numel() == 0:
        return
    if not bool(torch.isfinite(g).all()) or not bool(torch.isfinite(w).all()):
        err = float("inf")
        flat = int((~(torch.isfinite(g) & torch.isfinite(w))).reshape(-1).nonzero()[0])
    else:
        diff = (g - w).abs()
        flat = int(diff.reshape(-1).argmax())
        err = float(diff.reshape(-1)[flat])
    scale = float(w.abs().max()) if bool(torch.isfinite(w).all()) else 1.0
    t = default_tolerance(got.dtype, scale) if tol is None else float(tol)
    ratio = err / t if t > 0 else (0.0 if err == 0 else float("inf"))
    worst.error = max(worst.error, err)
    if ratio > worst.ratio:
        idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), g.shape))
        worst.ratio = ratio
        worst.message = (
            f"{label}: max |difference| {err:.3e} > tolerance {t:.1e} at index {idx}: "
            f"{float(g.reshape(-1)[flat]):.6g} from fn(g . input) vs "
            f"{float(w.reshape(-1)[flat]):.6g} from g . fn(input)"
        )


# ---------------------------------------------------------------------------------------------
# O(3) oracle
# ---------------------------------------------------------------------------------------------
def _parse_specs(specs: Any, n: int, name: str) -> list:
    if isinstance(specs, (str, Irreps)) or specs is None:
        if n != 1:
            raise ValueError(
                f"{name} is the single entry {specs!r} but there are {n} tensors: give a list "
                "with one irreps (or 'cartesian_points', or None) per tensor"
            )
        specs = [specs]
    specs = list(specs)
    # A bare list of (mul, ir) pairs for a single tensor reads like a list of specs: disambiguate.
    if n == 1 and len(specs) != 1:
        try:
            specs = [Irreps(specs)]
        except (ValueError, TypeError):
            pass
    if len(specs) != n:
        raise ValueError(f"{name} has {len(specs)} entries but there are {n} tensors")
    out = []
    for i, s in enumerate(specs):
        if s is None or s == CARTESIAN_POINTS:
            out.append(s)
            continue
        try:
            out.append(Irreps(s))
        except (ValueError, TypeError) as e:
            raise ValueError(
                f"{name}[{i}] = {s!r} is not irreps, '{CARTESIAN_POINTS}' or None: {e}"
            ) from None
    return out


def _check_shapes(tensors: Sequence[Any], specs: list, name: str) -> None:
    for i, (x, s) in enumerate(zip(tensors, specs)):
        if s is None:
            continue
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            got = str(x.dtype) if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(
                f"{name}[{i}] is declared {s!s} but is not a floating-point tensor (got {got})"
            )
        dim = 3 if s == CARTESIAN_POINTS else s.dim
        if x.dim() == 0 or x.shape[-1] != dim:
            raise ValueError(
                f"{name}[{i}] is declared {s!s} (last dimension {dim}) but has shape "
                f"{tuple(x.shape)}"
            )


def _act(x: Any, spec: Any, R: torch.Tensor, t: torch.Tensor | None,
         cache: dict) -> Any:
    """Apply ``(R, t)`` to one tensor according to its spec (on the last dimension)."""
    if spec is None:
        return x
    if spec == CARTESIAN_POINTS:
        y = x.to(torch.float64) @ R.t()
        if t is not None:
            y = y + t
        return y.to(x.dtype)
    key = str(spec)
    if key not in cache:
        cache[key] = spec.D_from_matrix(R)
    D = cache[key]
    return (x.to(torch.float64) @ D.t()).to(x.dtype)


def _elements(n_trials: int, reflections: bool, translations: bool,
              generator: torch.Generator | None, device: Any
              ) -> list[tuple[str, torch.Tensor, torch.Tensor | None]]:
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    out = []
    for trial in range(n_trials):
        R = rand_matrix(generator=gen, dtype=torch.float64)
        tr = f"trial {trial + 1}/{n_trials}"
        out.append((f"rotation ({tr})", R, None))
        if reflections:
            R2 = rand_matrix(generator=gen, dtype=torch.float64)
            out.append((f"rotation-reflection, det -1 ({tr})", -R2, None))
        if translations:
            t = 3.0 * torch.randn(3, generator=gen, dtype=torch.float64)
            out.append((f"translation ({tr})", torch.eye(3, dtype=torch.float64), t))
            out.append((f"rotation + translation ({tr})", R, t))
    return [(lbl, R.to(device), None if t is None else t.to(device)) for lbl, R, t in out]


def _o3_error(fn: Callable, args_in: Any, irreps_in: Any, irreps_out: Any, *, n_trials: int,
              reflections: bool, translations: bool, generator: torch.Generator | None,
              atol: float | None) -> _Worst:
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials must be an integer >= 1, got {n_trials!r}")
    args = _as_tuple(args_in)
    specs_in = _parse_specs(irreps_in, len(args), "irreps_in")
    _check_shapes(args, specs_in, "args_in")
    device = next((a.device for a in args if isinstance(a, torch.Tensor)), torch.device("cpu"))
    if translations and CARTESIAN_POINTS not in specs_in:
        raise ValueError(
            "translations=True but no input is marked 'cartesian_points' in irreps_in: "
            "nothing would be translated"
        )
    out0 = _call(fn, args, "assert_equivariant")
    specs_out = _parse_specs(irreps_out, len(out0), "irreps_out")
    _check_shapes(out0, specs_out, "outputs of fn")
    worst = _Worst()
    for label, R, t in _elements(n_trials, reflections, translations, generator, device):
        cache_in: dict = {}
        cache_out: dict = {}
        moved = tuple(_act(a, s, R, t, cache_in) for a, s in zip(args, specs_in))
        out1 = _call(fn, moved, "assert_equivariant")
        if len(out1) != len(out0):
            raise AssertionError(
                f"under {label}: fn returned {len(out1)} outputs instead of {len(out0)}"
            )
        for i, (o1, o0, s) in enumerate(zip(out1, out0, specs_out)):
            want = _act(o0, s, R, t, cache_out)
            _compare(o1, want, atol, f"output {i} ({s!s}) under {label}", worst)
    return worst


def equivariance_error(fn: Callable, args_in: Any, irreps_in: Any, irreps_out: Any, *,
                       n_trials: int = 3, reflections: bool = True, translations: bool = False,
                       generator: torch.Generator | None = None) -> float:
    r"""Largest ``|fn(g . x) - g . fn(x)|`` over random elements ``g`` of O(3) (or SO(3)).

    Parameters
    ----------
    fn : callable
        ``fn(*args_in)`` returns a tensor or a tuple/list of tensors.
    args_in : tensor or sequence
        Inputs (tensors, or anything for entries declared ``None``).
    irreps_in : irreps-like, ``"cartesian_points"``, None, or a sequence of those
        One entry per input: irreps act on the last dimension by ``Irreps.D_from_matrix``;
        ``"cartesian_points"`` (shape ``(..., 3)``) are rotated and translated; ``None`` is left
        unchanged.
    irreps_out : same, one entry per output.
    n_trials : int
        Random group elements per kind (rotation; rotation-reflection if ``reflections``;
        translation and rotation + translation if ``translations``).
    reflections : bool
        Also test improper elements (``det = -1``): O(3) rather than SO(3).
    translations : bool
        Also translate the ``"cartesian_points"`` inputs (and outputs).
    generator : torch.Generator, optional
        Source of the group elements (default: a fresh generator seeded with 0, so failures
        reproduce).

    Returns
    -------
    float
        Maximum absolute difference, compared in float64.
    """
    return _o3_error(fn, args_in, irreps_in, irreps_out, n_trials=n_trials,
                     reflections=reflections, translations=translations, generator=generator,
                     atol=None).error


def assert_equivariant(fn: Callable, args_in: Any, irreps_in: Any, irreps_out: Any, *,
                       n_trials: int = 3, reflections: bool = True, translations: bool = False,
                       generator: torch.Generator | None = None,
                       atol: float | None = None) -> float:
    r"""Assert ``fn(g . x) == g . fn(x)`` for random O(3) elements (see :func:`equivariance_error`).

    Parameters
    ----------
    atol : float, optional
        Absolute tolerance. Default: per output, :func:`default_tolerance` of its dtype scaled by
        its largest magnitude (1e-10 in float64, 1e-5 in float32).

    Returns
    -------
    float
        The maximum absolute equivariance error.

    Raises
    ------
    AssertionError
        Naming the output, the kind of group element, the error, the tolerance and the entry.
    """
    __tracebackhide__ = True
    worst = _o3_error(fn, args_in, irreps_in, irreps_out, n_trials=n_trials,
                      reflections=reflections, translations=translations, generator=generator,
                      atol=atol)
    if worst.ratio > 1:
        raise AssertionError(f"fn is not equivariant: {worst.message}")
    return worst.error


# ---------------------------------------------------------------------------------------------
# finite-group oracle
# ---------------------------------------------------------------------------------------------
def _actions(act: Any, n: int, name: str) -> list:
    if callable(act) or act is None:
        return [act] * n
    acts = list(act)
    if len(acts) != n:
        raise ValueError(f"{name} has {len(acts)} actions but there are {n} tensors")
    for i, a in enumerate(acts):
        if a is not None and not callable(a):
            raise TypeError(f"{name}[{i}] must be a callable (g, tensor) -> tensor or None")
    return acts


def _finite_error(fn: Callable, inputs: Any, group_elements: Iterable, act_in: Any,
                  act_out: Any, atol: float | None) -> _Worst:
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    args = _as_tuple(inputs)
    elements = list(group_elements)
    if not elements:
        raise ValueError("group_elements is empty: give at least one group element")
    acts_in = _actions(act_in, len(args), "act_in")
    out0 = _call(fn, args, "assert_equivariant_finite")
    acts_out = _actions(act_out, len(out0), "act_out")
    worst = _Worst()
    for k, g in enumerate(elements):
        moved = tuple(a if f is None else f(g, a) for a, f in zip(args, acts_in))
        out1 = _call(fn, moved, "assert_equivariant_finite")
        if len(out1) != len(out0):
            raise AssertionError(
                f"under group element {k}: fn returned {len(out1)} outputs, not {len(out0)}"
            )
        gs = repr(g)
        gs = gs if len(gs) <= 60 else gs[:57] + "..."
        for i, (o1, o0, f) in enumerate(zip(out1, out0, acts_out)):
            want = o0 if f is None else f(g, o0)
            _compare(o1, want, atol, f"output {i} under group element {k} ({gs})", worst)
    return worst


def finite_equivariance_error(fn: Callable, inputs: Any, group_elements: Iterable,
                              act_in: Any, act_out: Any) -> float:
    """Largest ``|fn(act_in(g, x)) - act_out(g, fn(x))|`` over the given group elements.

    See :func:`assert_equivariant_finite` for the parameters.
    """
    return _finite_error(fn, inputs, group_elements, act_in, act_out, None).error


def assert_equivariant_finite(fn: Callable, inputs: Any, group_elements: Iterable,
                              act_in: Any, act_out: Any, *, atol: float | None = None) -> float:
    r"""Assert ``fn(act_in(g, x)) == act_out(g, fn(x))`` for every ``g`` in ``group_elements``.

    Parameters
    ----------
    fn : callable
        ``fn(*inputs)`` returns a tensor or a tuple/list of tensors.
    inputs : tensor or sequence of tensors
    group_elements : iterable
        Group elements in any form the actions understand (permutation tensors, matrices, ...).
    act_in : callable ``(g, tensor) -> tensor``, None, or a sequence of those (one per input)
        The action on inputs; ``None`` leaves an input unchanged.
    act_out : same, for the outputs (``None``: the output must be invariant).
    atol : float, optional
        Default: :func:`default_tolerance` of each output's dtype, scaled by its magnitude.

    Returns
    -------
    float
        The maximum absolute error.

    Raises
    ------
    AssertionError
        Naming the group element, the output, the error and the tolerance.

    Examples
    --------
    Permutation equivariance of a per-node map, with :func:`permutation_action`:

    >>> perms = [torch.randperm(5) for _ in range(3)]
    >>> act = permutation_action(dim=0)
    >>> assert_equivariant_finite(torch.tanh, torch.randn(5, 2), perms, act, act) == 0.0
    True
    """
    __tracebackhide__ = True
    worst = _finite_error(fn, inputs, group_elements, act_in, act_out, atol)
    if worst.ratio > 1:
        raise AssertionError(f"fn is not equivariant: {worst.message}")
    return worst.error


def permutation_action(dim: int = 0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Action of a permutation ``g`` (an index tensor) on ``dim``: ``x.index_select(dim, g)``."""

    def act(g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(dim, torch.as_tensor(g, device=x.device))

    return act


def matrix_action(dim: int = -1) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Action of a matrix ``g`` (``(n, n)``) on axis ``dim`` of size ``n``: ``x_i -> g_ij x_j``."""

    def act(g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y = torch.movedim(x, dim, -1) @ g.to(x.dtype).t()
        return torch.movedim(y, -1, dim)

    return act
