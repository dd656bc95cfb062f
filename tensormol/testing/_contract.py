"""The contract every :class:`tensormol.models.EnergyModel` signs, as reusable checks.

Each ``check_*`` function evaluates a model on generated structures, raises ``AssertionError``
with a readable message when the model breaks the contract, and otherwise returns the largest
error it measured (a float, or a dict of them), so a test can report the numbers.
:func:`check_energy_model` runs them all from a model factory.

The checks (all on random structures and random group elements, never hand-picked ones):

* equivariance under O(3) and translations, by the shipped oracle
  :func:`tensormol.testing.assert_equivariant`: energy (and stress) invariant, forces (stress)
  rotate; for an SO(3)-only model, invariance under rotations *and* a reflected chiral molecule
  that changes the energy;
* translation invariance (periodic structures wrapped back into the cell), permutation
  equivariance;
* forces against central finite differences (float64, by
  :func:`tensormol.testing.finite_difference_forces`), and the force Jacobian against finite
  differences of forces and against its own transpose (forces are a true gradient; double backward
  is right);
* batching: a batch equals its structures one by one (no cross-talk between structures);
* smoothness at the cutoff: energy and forces continuous as a pair crosses it;
* dtypes: float32 and float64 models agree and return float64 outputs;
* isolated atoms: an atom without neighbours has its reference energy and zero force;
* periodic images: a 2x2x1 supercell has 4x the energy, the same forces and the same stress;
* stress against finite strain (ASE's convention, ``stress = (1/V) dE/d(strain)``);
* input validation: NaN positions, wrong shapes and unknown elements raise clear errors.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from tensormol import keys as K
from tensormol.so3 import (
    RANK2_IRREPS,
    VECTOR_IRREPS,
    irreps_to_vector,
    rand_matrix,
    rank2_to_irreps,
    vector_to_irreps,
)
from tensormol.testing._equivariance import CARTESIAN_POINTS, assert_equivariant
from tensormol.testing._forces import finite_difference_forces

__all__ = [
    "TorchStructure",
    "make_batch",
    "random_molecule",
    "random_periodic",
    "supercell",
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
    "check_energy_model",
]

F64 = torch.float64


# ---------------------------------------------------------------------------------- structures
@dataclass(frozen=True)
class TorchStructure:
    """One structure as torch tensors, what the contract checks generate and transform:
    ``atomic_numbers`` (n,) int64, ``positions`` (n, 3) float64 Å, ``cell`` (3, 3) float64 Å
    (rows are lattice vectors; zeros = none), ``pbc`` (3,) bool. :func:`make_batch` turns a list
    of them into a model's batch."""

    atomic_numbers: Tensor
    positions: Tensor
    cell: Tensor
    pbc: Tensor

    @property
    def num_atoms(self) -> int:
        return int(self.atomic_numbers.shape[0])

    def transformed(self, q: Tensor, shift: Tensor | None = None) -> TorchStructure:
        """Apply ``r -> q r + shift`` to the positions and ``a -> q a`` to the lattice vectors."""
        pos = self.positions @ q.T
        if shift is not None:
            pos = pos + shift
        return replace(self, positions=pos, cell=self.cell @ q.T)

    def permuted(self, perm: Tensor) -> TorchStructure:
        return replace(self, atomic_numbers=self.atomic_numbers[perm],
                       positions=self.positions[perm])


def make_batch(structures: Sequence[TorchStructure], dtype: torch.dtype = F64) -> dict[str, Tensor]:
    """Concatenate structures into a batch dict keyed by :mod:`tensormol.keys`."""
    n = torch.tensor([s.num_atoms for s in structures], dtype=torch.int64)
    return {
        K.POSITIONS: torch.cat([s.positions for s in structures]).to(dtype),
        K.ATOMIC_NUMBERS: torch.cat([s.atomic_numbers for s in structures]),
        K.BATCH: torch.repeat_interleave(torch.arange(len(structures)), n),
        K.CELL: torch.stack([s.cell for s in structures]).to(F64),
        K.PBC: torch.stack([s.pbc for s in structures]),
        K.NUM_ATOMS: n,
    }


def _choice(species: Sequence[int], n: int, gen: torch.Generator) -> Tensor:
    idx = torch.randint(len(species), (n,), generator=gen)
    z = torch.tensor(list(species), dtype=torch.int64)[idx]
    # Make sure every species appears when there is room: the checks then cover all of them.
    for k, s in enumerate(species[: n]):
        z[k] = s
    return z[torch.randperm(n, generator=gen)]


def random_molecule(
    species: Sequence[int], n_atoms: int, gen: torch.Generator, *, bond: tuple[float, float] = (
        1.0, 1.6), min_distance: float = 0.9,
) -> TorchStructure:
    """A connected random cluster grown atom by atom (generically chiral, no symmetry)."""
    pos = [torch.zeros(3, dtype=F64)]
    while len(pos) < n_atoms:
        anchor = pos[int(torch.randint(len(pos), (1,), generator=gen))]
        d = torch.randn(3, generator=gen, dtype=F64)
        d = d / d.norm()
        lo, hi = bond
        new = anchor + d * (lo + (hi - lo) * float(torch.rand(1, generator=gen, dtype=F64)))
        if all(float((new - p).norm()) >= min_distance for p in pos):
            pos.append(new)
    positions = torch.stack(pos)
    positions = positions - positions.mean(0)
    return TorchStructure(_choice(species, n_atoms, gen), positions, torch.zeros(3, 3, dtype=F64),
                     torch.zeros(3, dtype=torch.bool))


def random_periodic(
    species: Sequence[int], n_atoms: int, gen: torch.Generator, *, lengths: Sequence[float] = (
        3.6, 3.9, 4.2), skew: float = 0.3, min_distance: float = 1.0,
) -> TorchStructure:
    """Random atoms in a slightly triclinic, fully periodic cell (minimum image distance kept)."""
    cell = torch.diag(torch.tensor(list(lengths), dtype=F64))
    cell[1, 0] = skew * float(torch.rand(1, generator=gen, dtype=F64))
    cell[2, 0] = skew * float(torch.rand(1, generator=gen, dtype=F64))
    cell[2, 1] = skew * float(torch.rand(1, generator=gen, dtype=F64))
    images = torch.stack(torch.meshgrid(*[torch.arange(-1, 2)] * 3, indexing="ij"), -1)
    images = images.reshape(-1, 3).to(F64) @ cell
    frac: list[Tensor] = []
    while len(frac) < n_atoms:
        f = torch.rand(3, generator=gen, dtype=F64)
        r = f @ cell
        ok = all(
            float(((r - q @ cell)[None] + images).norm(dim=1).min()) >= min_distance for q in frac
        )
        if ok:
            frac.append(f)
    positions = torch.stack(frac) @ cell
    return TorchStructure(_choice(species, n_atoms, gen), positions, cell,
                     torch.ones(3, dtype=torch.bool))


# ---------------------------------------------------------------------------------- helpers
def _evaluate(model: Any, structures: Sequence[TorchStructure], *, forces: bool = True,
              stress: bool = False, dtype: torch.dtype = F64) -> dict[str, Tensor]:
    return _evaluate_batch(model, make_batch(structures, dtype), forces=forces, stress=stress)


def _evaluate_batch(model: Any, batch: dict[str, Tensor], *, forces: bool = True,
                    stress: bool = False) -> dict[str, Tensor]:
    was_training = model.training
    model.eval()
    try:
        out = model(batch, compute_forces=forces, compute_stress=stress, create_graph=False)
    finally:
        model.train(was_training)
    return {k: v.detach() for k, v in out.items()}


def _tol(model: Any, tight: float = 1e-9, loose: float = 1e-4) -> float:
    return tight if model.model_dtype == F64 else loose


def _rel(a: Tensor, b: Tensor) -> float:
    """max |a - b| / max(1, max |b|)."""
    if a.numel() == 0:
        return 0.0
    return float((a - b).abs().max()) / max(1.0, float(b.abs().max()))


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise AssertionError(message)


def _nontrivial(forces: Tensor, what: str) -> None:
    _check(
        float(forces.abs().max()) > 1e-6,
        f"{what}: the model's forces are all ~0 (max {float(forces.abs().max()):.2e} eV/Å), so "
        "the check would be vacuous; use a model with nonzero random weights",
    )


def _species(model: Any) -> list[int]:
    return list(model.atomic_numbers)


def _molecules(model: Any, gen: torch.Generator,
               sizes: Sequence[int] = (6, 4)) -> list[TorchStructure]:
    return [random_molecule(_species(model), n, gen) for n in sizes]


def _randomize_statistics(model: Any, gen: torch.Generator) -> None:
    refs = -5.0 * torch.rand(model.num_species, generator=gen, dtype=F64) - 1.0
    model.set_energy_statistics(refs, scale=1.0 + float(torch.rand(1, generator=gen)))


# ---------------------------------------------------------------------------------- checks
def check_output_contract(model: Any, gen: torch.Generator, periodic: bool = True) -> float:
    """Shapes, dtypes (float64) and finiteness of every output; stress = -virial / V, symmetric."""
    groups = [(_molecules(model, gen), False)]
    if periodic:
        groups.append(([random_periodic(_species(model), 4, gen) for _ in range(2)], True))
    err = 0.0
    for structs, stress in groups:
        out = _evaluate(model, structs, stress=stress)
        n, b = sum(s.num_atoms for s in structs), len(structs)
        want = {K.ENERGY: (b,), K.FORCES: (n, 3)}
        if stress:
            want.update({K.STRESS: (b, 3, 3), K.VIRIAL: (b, 3, 3)})
        for key, shape in want.items():
            _check(key in out, f"output has no {key!r} entry; it has {sorted(out)}")
            v = out[key]
            _check(tuple(v.shape) == shape, f"{key}: shape {tuple(v.shape)}, expected {shape}")
            _check(v.dtype == F64, f"{key}: dtype {v.dtype}, expected torch.float64")
            _check(bool(torch.isfinite(v).all()), f"{key}: non-finite values")
        if stress:
            vol = torch.stack([torch.linalg.det(s.cell).abs() for s in structs])
            e = _rel(out[K.STRESS] * vol[:, None, None], -out[K.VIRIAL])
            _check(e < 1e-12, f"stress != -virial / volume (relative error {e:.2e})")
            sym = _rel(out[K.STRESS], out[K.STRESS].transpose(1, 2))
            _check(sym < 1e-10, f"stress is not symmetric (relative asymmetry {sym:.2e})")
            err = max(err, e, sym)
    return err


# How each output acts under O(3), for the oracle: its irreducible coordinates and their irreps.
_OUTPUT_IRREPS: dict[str, tuple[Callable[[Tensor], Tensor], str]] = {
    K.ENERGY: (lambda e: e[:, None], "0e"),
    K.FORCES: (vector_to_irreps, VECTOR_IRREPS),
    K.STRESS: (rank2_to_irreps, RANK2_IRREPS),
}


def _output_of(model: Any, batch: dict[str, Tensor], key: str, stress: bool,
               scale: float) -> Callable[[Tensor, Tensor], Tensor]:
    """``fn(positions, cell as 1o vectors) -> output key / scale`` in irreducible coordinates."""
    to_irreps = _OUTPUT_IRREPS[key][0]

    def fn(pos: Tensor, cell: Tensor) -> Tensor:
        moved = {**batch, K.POSITIONS: pos, K.CELL: irreps_to_vector(cell)}
        return to_irreps(_evaluate_batch(model, moved, stress=stress)[key]) / scale

    return fn


def check_equivariance(model: Any, gen: torch.Generator, *, periodic: bool = True,
                       so3_only: bool = False, n_samples: int = 2,
                       tol: float | None = None) -> dict[str, float]:
    """Energy invariant, forces and stress covariant under random group elements and
    translations, checked by :func:`tensormol.testing.assert_equivariant`.

    Positions are points (rotated and translated), lattice vectors and forces are ``1o`` vectors,
    stress is a rank-2 tensor (``0e+1e+2e``). For an O(3) model the oracle draws improper
    elements too (det -1); for an SO(3)-only model rotations only (see
    :func:`check_reflection_sensitivity` for reflections). Errors are relative to
    ``max(1, max |output|)``; returns the largest per output.

    ``n_samples`` random elements of each kind are drawn from ``gen``: rotations, improper
    rotations (O(3) only), translations, and rotations with translations.
    """
    tol = _tol(model) if tol is None else tol
    groups = [(_molecules(model, gen), False)]
    if periodic:
        groups.append(([random_periodic(_species(model), 5, gen)], True))
    worst = {K.ENERGY: 0.0, K.FORCES: 0.0, K.STRESS: 0.0}
    for structs, stress in groups:
        batch = make_batch(structs)
        ref = _evaluate_batch(model, batch, stress=stress)
        _nontrivial(ref[K.FORCES], "check_equivariance")
        for key in (K.ENERGY, K.FORCES) + ((K.STRESS,) if stress else ()):
            irreps = _OUTPUT_IRREPS[key][1]
            scale = max(1.0, float(ref[key].abs().max()))
            fn = _output_of(model, batch, key, stress, scale)
            kind = "SO(3)" if so3_only else "O(3)"
            try:
                err = assert_equivariant(
                    fn, (batch[K.POSITIONS], vector_to_irreps(batch[K.CELL])),
                    [CARTESIAN_POINTS, VECTOR_IRREPS], [irreps], n_trials=n_samples,
                    reflections=not so3_only, translations=True, generator=gen, atol=tol,
                )
            except AssertionError as err:
                what = "periodic structure" if stress else "molecules"
                raise AssertionError(
                    f"{key} not equivariant under random {kind} elements and translations "
                    f"({what}; errors relative to max |{key}| = {scale:.3g}): {err}"
                ) from None
            worst[key] = max(worst[key], err)
    return worst


def check_reflection_sensitivity(model: Any, gen: torch.Generator, *,
                                 min_change: float = 1e-10, snr: float = 100.0) -> float:
    """An SO(3)-only model must tell a chiral molecule from its mirror image.

    The energy change under a mirror reflection must exceed ``min_change`` (relative) and be
    ``snr`` times larger than the change under a random rotation of the same molecules (the
    numerical noise); use a float64 model, since the effect can be small at initialisation.
    Returns the largest relative change under the reflection.
    """
    structs = _molecules(model, gen, sizes=(6, 7, 5))
    ref = _evaluate(model, structs)
    scale = max(1.0, float(ref[K.ENERGY].abs().max()))
    mirror = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=F64))
    out = _evaluate(model, [s.transformed(mirror) for s in structs])
    rot = _evaluate(model, [s.transformed(rand_matrix(generator=gen)) for s in structs])
    change = float((out[K.ENERGY] - ref[K.ENERGY]).abs().max()) / scale
    noise = float((rot[K.ENERGY] - ref[K.ENERGY]).abs().max()) / scale
    _check(change > min_change and change > snr * noise,
           f"energy of chiral molecules barely changed by a reflection (relative change "
           f"{change:.2e}, rotation noise {noise:.2e}): an SO(3)-only model should distinguish "
           "mirror images")
    return change


def check_translation_invariance(model: Any, gen: torch.Generator, *, periodic: bool = True,
                                 tol: float | None = None) -> float:
    """A rigid translation changes neither energies nor forces (periodic: wrapped back in)."""
    tol = _tol(model) if tol is None else tol
    structs = _molecules(model, gen)
    if periodic:
        structs.append(random_periodic(_species(model), 5, gen))
    ref = _evaluate(model, structs)
    moved = []
    for s in structs:
        t = 3.0 * torch.randn(3, generator=gen, dtype=F64)
        pos = s.positions + t
        if bool(s.pbc.all()):
            frac = torch.linalg.solve(s.cell.T, pos.T).T
            pos = (frac - torch.floor(frac)) @ s.cell
        moved.append(replace(s, positions=pos))
    out = _evaluate(model, moved)
    err = max(_rel(out[K.ENERGY], ref[K.ENERGY]), _rel(out[K.FORCES], ref[K.FORCES]))
    _check(err < tol, f"not translation invariant: relative error {err:.2e} > {tol:.0e}")
    return err


def check_permutation_equivariance(model: Any, gen: torch.Generator, *,
                                   tol: float | None = None) -> float:
    """Relabelling atoms leaves the energy unchanged and permutes the forces."""
    tol = _tol(model) if tol is None else tol
    s = random_molecule(_species(model), 7, gen)
    perm = torch.randperm(s.num_atoms, generator=gen)
    ref = _evaluate(model, [s])
    out = _evaluate(model, [s.permuted(perm)])
    err = max(_rel(out[K.ENERGY], ref[K.ENERGY]), _rel(out[K.FORCES], ref[K.FORCES][perm]))
    _check(err < tol, f"not permutation equivariant: relative error {err:.2e} > {tol:.0e}")
    return err


def _energy(model: Any, s: TorchStructure) -> float:
    return float(_evaluate(model, [s], forces=False)[K.ENERGY][0])


def check_forces_finite_difference(model64: Any, gen: torch.Generator, *, h: float = 1e-5,
                                   tol: float = 1e-6, periodic: bool = True) -> float:
    """Forces equal ``-dE/dr`` by central differences (float64 model, step ``h`` Å, by
    :func:`tensormol.testing.finite_difference_forces`).

    The truncation error of central differences is ``h²/6`` times the third derivative of the
    energy; sharply curved radial bases reach 1e-5 relative at ``h = 1e-4`` Å on some random
    molecules, while rounding stays near ``1e-16 |E| / h``, so ``h = 1e-5`` Å keeps both far
    below ``tol``.
    """
    _check(model64.model_dtype == F64, "check_forces_finite_difference needs a float64 model")
    structs = [random_molecule(_species(model64), 5, gen)]
    if periodic:
        structs.append(random_periodic(_species(model64), 3, gen))
    worst = 0.0
    for s in structs:
        f = _evaluate(model64, [s])[K.FORCES]
        _nontrivial(f, "check_forces_finite_difference")
        def energy(pos: Tensor, s: TorchStructure = s) -> Tensor:
            return torch.tensor(_energy(model64, replace(s, positions=pos)), dtype=F64)

        fd = finite_difference_forces(energy, s.positions, eps=h)
        err = _rel(f, fd)
        worst = max(worst, err)
        what = "periodic structure" if bool(s.pbc.any()) else "molecule"
        _check(err < tol, f"forces differ from -dE/dr by central differences ({what}): relative "
                          f"error {err:.2e} > {tol:.0e}\nautograd:\n{f}\nfinite differences:\n{fd}")
    return worst


def check_force_jacobian(model64: Any, gen: torch.Generator, *, h: float = 1e-4,
                         tol_symmetry: float = 1e-9, tol_fd: float = 1e-6) -> dict[str, float]:
    """The force Jacobian (minus the Hessian, by double backward) is symmetric and matches finite
    differences of the forces: forces are a true gradient and second derivatives are right."""
    _check(model64.model_dtype == F64, "check_force_jacobian needs a float64 model")
    s = random_molecule(_species(model64), 4, gen)
    batch = make_batch([s])
    pos = batch[K.POSITIONS].clone().requires_grad_(True)
    batch[K.POSITIONS] = pos
    was_training = model64.training
    model64.eval()
    try:
        forces = model64(batch, compute_forces=True, create_graph=True)[K.FORCES]
        n = forces.numel()
        rows = []
        for k in range(n):
            (g,) = torch.autograd.grad(forces.reshape(-1)[k], pos, retain_graph=k < n - 1)
            rows.append(g.reshape(-1))
    finally:
        model64.train(was_training)
    jac = torch.stack(rows).detach()  # d F_k / d x_l
    _nontrivial(jac, "check_force_jacobian")
    sym = _rel(jac, jac.T)
    _check(sym < tol_symmetry, f"force Jacobian is not symmetric (relative asymmetry {sym:.2e} > "
                               f"{tol_symmetry:.0e}): the forces are not the gradient of an energy")
    fd = torch.zeros_like(jac)
    for l in range(n):
        p = s.positions.clone().reshape(-1)
        p[l] += h
        fp = _evaluate(model64, [replace(s, positions=p.reshape(-1, 3))])[K.FORCES].reshape(-1)
        p[l] -= 2 * h
        fm = _evaluate(model64, [replace(s, positions=p.reshape(-1, 3))])[K.FORCES].reshape(-1)
        fd[:, l] = (fp - fm) / (2 * h)
    err = _rel(jac, fd)
    _check(err < tol_fd, f"force Jacobian (double backward) differs from finite differences of "
                         f"the forces: relative error {err:.2e} > {tol_fd:.0e}")
    return {"symmetry": sym, "finite_difference": err}


def check_batching(model: Any, gen: torch.Generator, *, periodic: bool = True,
                   tol: float | None = None) -> float:
    """Evaluating a batch equals evaluating its structures one by one."""
    tol = _tol(model) if tol is None else tol
    structs = _molecules(model, gen, sizes=(5, 3, 7))
    if periodic:
        structs.insert(1, random_periodic(_species(model), 4, gen))
    out = _evaluate(model, structs, stress=False)
    alone = [_evaluate(model, [s]) for s in structs]
    e_alone = torch.cat([a[K.ENERGY] for a in alone])
    f_alone = torch.cat([a[K.FORCES] for a in alone])
    err = max(_rel(out[K.ENERGY], e_alone), _rel(out[K.FORCES], f_alone))
    _check(err < tol, f"a batch differs from its structures evaluated one by one: relative error "
                      f"{err:.2e} > {tol:.0e} (cross-talk between structures?)")
    return err


def check_cutoff_smoothness(model: Any, gen: torch.Generator, *, delta: float = 1e-4,
                            tol_energy: float | None = None,
                            tol_forces: float | None = None) -> dict[str, float]:
    """Energy and forces are continuous as a pair crosses the cutoff.

    A bonded pair A-B plus an atom C on the far side of A, at ``cutoff - delta`` and
    ``cutoff + delta`` from A (always beyond the cutoff from B): the energies must agree within
    ``tol_energy`` and the force on C just inside must be ~0 (within ``tol_forces``), while C well
    inside does interact (the check is not vacuous).
    """
    sp = _species(model)
    rc = float(model.cutoff)
    tol_e = _tol(model, 1e-6, 1e-5) if tol_energy is None else tol_energy
    tol_f = _tol(model, 1e-3, 1e-3) if tol_forces is None else tol_forces
    z = _choice(sp, 3, gen)
    direction = torch.randn(3, generator=gen, dtype=F64)
    direction = direction / direction.norm()

    def at(d: float) -> TorchStructure:
        pos = torch.stack([torch.zeros(3, dtype=F64), -1.2 * direction, d * direction])
        return TorchStructure(z, pos, torch.zeros(3, 3, dtype=F64),
                              torch.zeros(3, dtype=torch.bool))

    inside, outside = _evaluate(model, [at(rc - delta)]), _evaluate(model, [at(rc + delta)])
    near = _evaluate(model, [at(0.6 * rc)])
    de = float((inside[K.ENERGY] - outside[K.ENERGY]).abs().max())
    fc = float(inside[K.FORCES][2].abs().max())
    jump_f = float((inside[K.FORCES] - outside[K.FORCES]).abs().max())
    interacts = float((near[K.ENERGY] - outside[K.ENERGY]).abs().max())
    _check(interacts > 10 * tol_e,
           f"cutoff smoothness check is vacuous: moving the atom from 0.6 rc to beyond rc changes "
           f"the energy by only {interacts:.2e} eV")
    _check(de < tol_e, f"energy jumps by {de:.2e} eV > {tol_e:.0e} as a pair crosses the cutoff "
                       f"{rc} Å (±{delta} Å)")
    _check(max(fc, jump_f) < tol_f,
           f"forces jump by {max(fc, jump_f):.2e} eV/Å > {tol_f:.0e} as a pair crosses the cutoff "
           f"{rc} Å (±{delta} Å)")
    return {"energy_jump": de, "force_jump": max(fc, jump_f), "interaction": interacts}


def check_dtypes(model_factory: Callable[[torch.dtype], Any], gen: torch.Generator, *,
                 periodic: bool = True, tol: float = 1e-4) -> float:
    """A float64 model and its float32 copy (same weights) agree; both return float64 outputs,
    and float32 input positions are accepted."""
    m64 = model_factory(F64)
    _randomize_statistics(m64, gen)
    m32 = copy.deepcopy(m64).to(torch.float32)
    _check(m32.model_dtype == torch.float32, f"model.to(float32) left dtype {m32.model_dtype}")
    _check(m64.model_dtype == F64, f"model_factory(float64) built a {m64.model_dtype} model")
    groups = [(_molecules(m64, gen), False)]
    if periodic:
        groups.append(([random_periodic(_species(m64), 4, gen)], True))
    err = 0.0
    for structs, stress in groups:
        o64 = _evaluate(m64, structs, stress=stress)
        o32 = _evaluate(m32, structs, stress=stress)
        o32in = _evaluate(m64, structs, stress=stress, dtype=torch.float32)
        for key, v in o64.items():
            _check(o32[key].dtype == F64, f"float32 model returned {key} as {o32[key].dtype}")
            e = _rel(o32[key], v)
            err = max(err, e)
            _check(e < tol, f"float32 and float64 models disagree on {key}: relative error "
                            f"{e:.2e} > {tol:.0e}")
            e_in = _rel(o32in[key], v)
            _check(e_in < 1e-5, f"float32 positions give {key} off by {e_in:.2e} (relative)")
    # Reference energies stay float64 when the layers are cast.
    _check(m32.reference_energies.dtype == F64,
           "model.to(float32) cast the reference energies (must stay float64)")
    return err


def check_isolated_atoms(model: Any, gen: torch.Generator, *,
                         tol: float | None = None) -> float:
    """Atoms farther apart than the cutoff have exactly their reference energies and no force,
    alone or in a batch with an interacting molecule."""
    tol = _tol(model, 1e-10, 1e-5) if tol is None else tol
    model = copy.deepcopy(model)
    _randomize_statistics(model, gen)
    sp = _species(model)
    refs = dict(zip(sp, model.reference_energies.tolist()))
    z = torch.tensor(sp + sp[:1], dtype=torch.int64)
    spacing = float(model.cutoff) + 0.5
    pos = torch.zeros(len(z), 3, dtype=F64)
    pos[:, 0] = spacing * torch.arange(len(z), dtype=F64)
    far = TorchStructure(z, pos, torch.zeros(3, 3, dtype=F64), torch.zeros(3, dtype=torch.bool))
    single = TorchStructure(z[:1], torch.zeros(1, 3, dtype=F64), torch.zeros(3, 3, dtype=F64),
                       torch.zeros(3, dtype=torch.bool))
    mol = random_molecule(sp, 5, gen)
    out = _evaluate(model, [far, mol, single])
    want = torch.tensor([sum(refs[int(a)] for a in z), refs[int(z[0])]], dtype=F64)
    got = out[K.ENERGY][[0, 2]]
    e = float((got - want).abs().max())
    f_far = torch.cat([out[K.FORCES][: len(z)], out[K.FORCES][-1:]])
    f = float(f_far.abs().max())
    _check(e < tol, f"isolated atoms: energy {got.tolist()} != sum of reference energies "
                    f"{want.tolist()} (error {e:.2e} eV)")
    _check(f < tol, f"isolated atoms: nonzero force {f:.2e} eV/Å on an atom without neighbours")
    return max(e, f)


def supercell(s: TorchStructure, reps: tuple[int, int, int]) -> TorchStructure:
    """Repeat a periodic structure ``reps`` times along its lattice vectors."""
    shifts = torch.stack(torch.meshgrid(*[torch.arange(r) for r in reps], indexing="ij"), -1)
    shifts = shifts.reshape(-1, 3).to(F64) @ s.cell
    pos = (s.positions[None] + shifts[:, None]).reshape(-1, 3)
    z = s.atomic_numbers.repeat(shifts.shape[0])
    cell = s.cell * torch.tensor(reps, dtype=F64)[:, None]
    return TorchStructure(z, pos, cell, s.pbc)


def check_periodic_supercell(model: Any, gen: torch.Generator, *,
                             tol: float | None = None) -> float:
    """A 2x2x1 supercell has 4x the energy, the same forces per image, and the same stress."""
    tol = _tol(model) if tol is None else tol
    s = random_periodic(_species(model), 4, gen)
    big = supercell(s, (2, 2, 1))
    o1 = _evaluate(model, [s], stress=True)
    o4 = _evaluate(model, [big], stress=True)
    _nontrivial(o1[K.FORCES], "check_periodic_supercell")
    e = _rel(o4[K.ENERGY], 4 * o1[K.ENERGY])
    f = _rel(o4[K.FORCES], o1[K.FORCES].repeat(4, 1))
    st = _rel(o4[K.STRESS], o1[K.STRESS])
    _check(e < tol, f"2x2x1 supercell energy {float(o4[K.ENERGY][0]):.10g} != 4 x "
                    f"{float(o1[K.ENERGY][0]):.10g} (relative error {e:.2e})")
    _check(f < tol, f"2x2x1 supercell forces differ from the unit cell's (relative error {f:.2e})")
    _check(st < tol, f"2x2x1 supercell stress differs from the unit cell's (relative error "
                     f"{st:.2e})")
    return max(e, f, st)


def check_stress_finite_strain(model64: Any, gen: torch.Generator, *, h: float = 1e-5,
                               tol: float = 1e-6) -> float:
    """Stress equals ``(1/V) dE/d(strain)`` by central differences of a symmetric strain applied
    to positions and cell (ASE's convention: negative under compression)."""
    _check(model64.model_dtype == F64, "check_stress_finite_strain needs a float64 model")
    s = random_periodic(_species(model64), 4, gen)
    out = _evaluate(model64, [s], stress=True)
    vol = float(torch.linalg.det(s.cell).abs())
    fd = torch.zeros(3, 3, dtype=F64)
    for a in range(3):
        for b in range(a, 3):
            eps = torch.zeros(3, 3, dtype=F64)
            eps[a, b] += 0.5 * h
            eps[b, a] += 0.5 * h
            strained = []
            for sign in (1.0, -1.0):
                def_ = torch.eye(3, dtype=F64) + sign * eps
                strained.append(_energy(model64, replace(
                    s, positions=s.positions @ def_, cell=s.cell @ def_)))
            fd[a, b] = fd[b, a] = (strained[0] - strained[1]) / (2 * h) / vol
    _nontrivial(fd, "check_stress_finite_strain")
    err = _rel(out[K.STRESS][0], fd)
    _check(err < tol, f"stress differs from (1/V) dE/d(strain) by central differences: relative "
                      f"error {err:.2e} > {tol:.0e}\nmodel:\n{out[K.STRESS][0]}\nfinite "
                      f"differences:\n{fd}")
    return err


def check_input_validation(model: Any, gen: torch.Generator) -> None:
    """Bad input raises a clear error (naming the problem), never a deep torch trace."""
    s = random_molecule(_species(model), 4, gen)
    cases: list[tuple[str, dict[str, Tensor], type[Exception], str]] = []
    b = make_batch([s])
    b[K.POSITIONS] = b[K.POSITIONS].clone()
    b[K.POSITIONS][1, 2] = float("nan")
    cases.append(("NaN positions", b, ValueError, "positions"))
    b = make_batch([s])
    b[K.POSITIONS] = b[K.POSITIONS][:, :2]
    cases.append(("positions of shape (N, 2)", b, ValueError, "positions"))
    b = make_batch([s])
    b[K.ATOMIC_NUMBERS] = b[K.ATOMIC_NUMBERS][:-1]
    cases.append(("atomic_numbers shorter than positions", b, ValueError, "atomic_numbers"))
    unknown = next(z for z in range(1, 119) if z not in _species(model))
    b = make_batch([s])
    b[K.ATOMIC_NUMBERS] = b[K.ATOMIC_NUMBERS].clone()
    b[K.ATOMIC_NUMBERS][0] = unknown
    cases.append(("an unknown element", b, ValueError, "not known to this model"))
    b = make_batch([s])
    del b[K.POSITIONS]
    cases.append(("a batch without positions", b, KeyError, "positions"))
    for what, batch, exc, needle in cases:
        try:
            model(batch)
        except exc as err:  # noqa: PERF203
            _check(needle in str(err), f"{what}: the error message {str(err)!r} does not mention "
                                       f"{needle!r}")
        except Exception as err:  # pragma: no cover - reported as a failure
            raise AssertionError(
                f"{what}: raised {type(err).__name__} ({err}), expected {exc.__name__}"
            ) from err
        else:
            raise AssertionError(f"{what}: no error raised (expected {exc.__name__})")


# ---------------------------------------------------------------------------------- suite
def check_energy_model(
    model_factory: Callable[[torch.dtype], Any],
    *,
    dtype: torch.dtype = torch.float32,
    periodic: bool = True,
    so3_only: bool = False,
    seed: int = 0,
    skip: Sequence[str] = (),
) -> dict[str, Any]:
    """Run the whole contract on models from ``model_factory(dtype)``.

    Parameters
    ----------
    model_factory : callable
        ``model_factory(dtype) -> EnergyModel``: a fresh model with random (nonzero) weights whose
        layers are in ``dtype``. Called for ``dtype`` and for float64 (the derivative checks).
    dtype : torch.dtype
        Dtype of the model under the symmetry and batching checks.
    periodic : bool
        Include periodic structures, the supercell and the stress checks.
    so3_only : bool
        The model is equivariant under rotations only: check reflections change chiral energies.
    seed : int
        Seed of the structure generator (the model's own initialisation is the factory's).
    skip : sequence of str
        Names of checks to leave out (e.g. ``"dtypes"``), for a model that documents why.

    Returns
    -------
    dict
        The largest error each check measured (the checks raise ``AssertionError`` on failure).
    """
    gen = torch.Generator().manual_seed(seed)
    model = model_factory(dtype)
    _randomize_statistics(model, gen)
    model64 = model_factory(F64)
    _randomize_statistics(model64, gen)
    checks: dict[str, Callable[[], Any]] = {
        "output_contract": lambda: check_output_contract(model, gen, periodic),
        "equivariance": lambda: check_equivariance(model, gen, periodic=periodic,
                                                   so3_only=so3_only),
        "translation": lambda: check_translation_invariance(model, gen, periodic=periodic),
        "permutation": lambda: check_permutation_equivariance(model, gen),
        "batching": lambda: check_batching(model, gen, periodic=periodic),
        "cutoff_smoothness": lambda: check_cutoff_smoothness(model, gen),
        "isolated_atoms": lambda: check_isolated_atoms(model, gen),
        "input_validation": lambda: check_input_validation(model, gen),
        "forces_finite_difference": lambda: check_forces_finite_difference(
            model64, gen, periodic=periodic),
        "force_jacobian": lambda: check_force_jacobian(model64, gen),
        "dtypes": lambda: check_dtypes(model_factory, gen, periodic=periodic),
    }
    if so3_only:
        checks["reflection_sensitivity"] = lambda: check_reflection_sensitivity(model64, gen)
    if periodic:
        checks["periodic_supercell"] = lambda: check_periodic_supercell(model, gen)
        checks["stress_finite_strain"] = lambda: check_stress_finite_strain(model64, gen)
    unknown = [s for s in skip if s not in checks]
    if unknown:
        raise ValueError(f"unknown checks to skip {unknown}; the checks are {sorted(checks)}")
    results: dict[str, Any] = {}
    for name, run in checks.items():
        if name in skip:
            continue
        try:
            results[name] = run()
        except AssertionError as err:
            raise AssertionError(f"contract check {name!r} failed: {err}") from None
    return results
