"""Ligands on a tensormol potential inside an MM system (mechanical embedding, ML/MM).

:func:`add_ml_potential` gives each ligand's intramolecular energy to a tensormol model; the
ligand–environment interactions stay MM. The MM terms are removed by the openmm-ml plugin route
(``openmmml.MLPotential("tensormol", bundle=...).createMixedSystem(..., interpolate=False)``),
one ligand at a time, so only the terms *within* a ligand go: two ligands of one system (ATM)
keep their MM interaction with each other. The per-ligand model forces that route adds are
then replaced by one ``openmm.PythonForce`` that evaluates every ligand in ONE batched model
call (one graph per ligand, no edges between ligands).

Order of operations: build the MM system, call this, then apply any alchemical modification.
``createMixedSystem`` cannot handle the ``CustomNonbondedForce`` that alchemical factories add
(with ``interpolate=True`` it fails on it), and the model energy of a ligand does not depend on
the alchemical state (it is translation invariant and sees no environment), so it stays outside
the alchemical forces and is evaluated once per step.

Each ligand is made whole before the model sees it (minimum image relative to its first atom
when the system is periodic), so a ligand split by the periodic boundary is handled; the model
then treats it as an isolated molecule (no periodic images), which is what an intramolecular
energy is. Constraints among ligand atoms are kept by default (``remove_constraints=False``):
with hydrogen mass repartitioning they allow the same 4 fs step as the MM run, and the X–H bond
lengths are then the MM ones.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import openmm
import openmm.app as app
import torch
from openmm import unit

from tensormol import keys as K
from tensormol.units import ANGSTROM_TO_NM, EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM

__all__ = ["add_ml_potential", "LigandBatchCallback", "ml_atom_groups"]

#: Name of the batched force added by :func:`add_ml_potential`.
FORCE_NAME = "TensorMolLigands"


def ml_atom_groups(ml_atoms: Sequence[int] | Sequence[Sequence[int]], n_particles: int
                   ) -> list[list[int]]:
    """Normalise ``ml_atoms`` (one list of indices, or one list per ligand) and check it."""
    items = list(ml_atoms)
    if not items:
        raise ValueError("ml_atoms is empty: give the atom indices of at least one ligand")
    if all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in items):
        groups = [[int(a) for a in items]]
    elif all(isinstance(g, (Sequence, np.ndarray)) and not isinstance(g, str) for g in items):
        groups = [[int(a) for a in g] for g in items]
    else:
        raise TypeError("ml_atoms must be a sequence of atom indices or a sequence of such "
                        f"sequences (one per ligand), got {ml_atoms!r}")
    seen: set[int] = set()
    for k, g in enumerate(groups):
        if not g:
            raise ValueError(f"ml_atoms[{k}] is empty")
        bad = [a for a in g if not 0 <= a < n_particles]
        if bad:
            raise ValueError(f"ml_atoms[{k}] holds indices outside [0, {n_particles}): {bad[:5]}")
        if len(set(g)) != len(g) or seen & set(g):
            raise ValueError(f"ml_atoms[{k}] repeats atoms (each atom in at most one ligand)")
        seen |= set(g)
    return groups


class LigandBatchCallback:
    """``PythonForce`` computation: several molecules, one batched model call.

    Picklable (holds the bundle's bytes); the model is built on first use.

    Parameters
    ----------
    bundle : tensormol.export.Bundle
    groups_z : list of list of int
        Atomic numbers of each molecule; the force's particles are the molecules' atoms in this
        order.
    periodic : bool
        Whether OpenMM passes a box (molecules are then made whole by minimum image).
    device : str
    threads : int or None
        Torch intra-op threads during each call (restored after); ``None``: leave torch's.
    """

    def __init__(self, bundle: Any, groups_z: Sequence[Sequence[int]], periodic: bool,
                 device: str = "cpu", threads: int | None = None) -> None:
        self._bundle_bytes = bundle.to_bytes()
        self._bundle = bundle
        self.groups_z = [[int(z) for z in g] for g in groups_z]
        self.periodic = bool(periodic)
        self.device = str(device)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):
            raise ValueError(f"threads must be an integer >= 1 or None, got {threads!r}")
        self.threads = threads
        self._model = None

    def __getstate__(self) -> dict[str, Any]:
        return {"bundle": self._bundle_bytes, "groups_z": self.groups_z,
                "periodic": self.periodic, "device": self.device, "threads": self.threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        from tensormol.export._bundle import bundle_from_bytes

        self._bundle_bytes = state["bundle"]
        self._bundle = bundle_from_bytes(self._bundle_bytes)
        self.groups_z = state["groups_z"]
        self.periodic = state["periodic"]
        self.device = state["device"]
        self.threads = state["threads"]
        self._model = None

    def _setup(self) -> None:
        dev = torch.device(self.device)
        self._model = self._bundle.build_model(device=dev)
        z = [z for g in self.groups_z for z in g]
        self._z = torch.tensor(z, dtype=torch.int64, device=dev)
        self._batch = torch.cat([torch.full((len(g),), k, dtype=torch.int64)
                                 for k, g in enumerate(self.groups_z)]).to(dev)
        self._pbc = torch.zeros((len(self.groups_z), 3), dtype=torch.bool, device=dev)
        self._splits = np.cumsum([0] + [len(g) for g in self.groups_z])

    def _whole(self, pos: np.ndarray, box: np.ndarray | None) -> np.ndarray:
        if box is None:
            return pos
        inv = np.linalg.inv(box)
        out = pos.copy()
        for a, b in zip(self._splits[:-1], self._splits[1:]):
            d = (pos[a:b] - pos[a]) @ inv  # fractional offsets from the first atom
            out[a:b] = pos[a] + (d - np.round(d)) @ box
        return out

    def evaluate(self, positions_nm: np.ndarray, box_nm: np.ndarray | None = None
                 ) -> tuple[float, np.ndarray]:
        """Total energy (kJ/mol) and forces (N, 3) kJ/mol/nm of all molecules.

        ``positions_nm``: (N, 3) float64, nm, the molecules' atoms in order; ``box_nm``: (3, 3)
        nm rows or ``None``.
        """
        if self._model is None:
            self._setup()
        pos = self._whole(np.asarray(positions_nm, dtype=np.float64),
                          None if box_nm is None else np.asarray(box_nm, dtype=np.float64))
        batch = {K.POSITIONS: torch.as_tensor(pos * NM_TO_ANGSTROM, device=self._z.device),
                 K.ATOMIC_NUMBERS: self._z, K.BATCH: self._batch, K.PBC: self._pbc}
        previous = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            out = self._model(batch, compute_forces=True)
        finally:
            if self.threads is not None:
                torch.set_num_threads(previous)
        energy = float(out[K.ENERGY].sum()) * EV_TO_KJ_PER_MOL
        forces = out[K.FORCES].detach().cpu().numpy() * (EV_TO_KJ_PER_MOL / ANGSTROM_TO_NM)
        return energy, forces

    def __call__(self, state: openmm.State) -> tuple[float, np.ndarray]:
        pos = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        box = (state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
               if self.periodic else None)
        return self.evaluate(pos, box)


def add_ml_potential(system: openmm.System, topology: app.Topology,
                     ml_atoms: Sequence[int] | Sequence[Sequence[int]],
                     bundle_path: str | os.PathLike | Any, *, threads: int | None = None,
                     device: str = "cpu", remove_constraints: bool = False,
                     force_group: int = 0) -> openmm.System:
    """A new System whose ligands' intramolecular energy comes from a tensormol bundle.

    Parameters
    ----------
    system : openmm.System
        The MM system (not alchemically modified yet); not changed.
    topology : openmm.app.Topology
    ml_atoms : sequence of int, or sequence of sequences of int
        Atom indices of one ligand, or of each ligand (each a whole molecule).
    bundle_path : path-like or Bundle
        A tensormol bundle (``tensormol export``).
    threads : int, optional
        Torch threads of the model call (``None``: torch's current setting).
    device : str
        Torch device of the model.
    remove_constraints : bool
        Drop constraints between ligand atoms (default False: keep them, see module notes).
    force_group : int
        Force group of the model force.

    Returns
    -------
    openmm.System
        MM terms within each ligand removed (bonds, angles, torsions, nonbonded pairs), one
        ``PythonForce`` named ``"TensorMolLigands"`` evaluating all ligands in one batched call.

    Raises
    ------
    tensormol.export.BundleError
        (a ValueError) naming the elements of a ligand that the model was not trained on.
    """
    from tensormol.export._bundle import load_bundle
    from tensormol.md._systems import ml_potential

    bundle = load_bundle(bundle_path)
    groups = ml_atom_groups(ml_atoms, system.getNumParticles())
    atoms = list(topology.atoms())
    if len(atoms) != system.getNumParticles():
        raise ValueError(f"topology has {len(atoms)} atoms but the system has "
                         f"{system.getNumParticles()} particles")
    groups_z = []
    for k, g in enumerate(groups):
        zs = []
        for i in g:
            if atoms[i].element is None:
                raise ValueError(f"atom {i} ({atoms[i].name}) of ligand {k} has no element")
            zs.append(int(atoms[i].element.atomic_number))
        res = atoms[g[0]].residue.name
        bundle.check_species(zs, what=f"ligand {k} (residue {res}, atoms {g[0]}-{g[-1]})")
        groups_z.append(zs)
    for f in system.getForces():
        if isinstance(f, openmm.CustomNonbondedForce) and any(
                f.getGlobalParameterName(i).startswith("lambda")
                for i in range(f.getNumGlobalParameters())):
            raise ValueError("add_ml_potential needs the system before alchemical modification "
                             f"(found the alchemical force {f.getName()!r}); add the ML "
                             "potential first, then apply the alchemical factory")
    potential = ml_potential(bundle)
    mixed = system
    for g in groups:
        mixed = potential.createMixedSystem(topology, mixed, g, interpolate=False,
                                            removeConstraints=remove_constraints,
                                            forceGroup=force_group)
        # The route's own model force (one per ligand) gives way to the batched one below.
        for i in reversed(range(mixed.getNumForces())):
            f = mixed.getForce(i)
            if f.getName() in ("TensorMol", "TorchForce") or (
                    isinstance(f, openmm.PythonForce) and f.getName() != FORCE_NAME):
                mixed.removeForce(i)
    periodic = system.usesPeriodicBoundaryConditions()
    force = openmm.PythonForce(LigandBatchCallback(bundle, groups_z, periodic, device, threads))
    force.setParticles([i for g in groups for i in g])
    force.setUsesPeriodicBoundaryConditions(periodic)
    force.setForceGroup(int(force_group))
    force.setName(FORCE_NAME)
    mixed.addForce(force)
    return mixed
