"""The openmm-ml plugin: ``MLPotential("tensormol", bundle="model.tmol")``.

This is the engine edge: OpenMM hands positions in nm and wants kJ/mol and kJ/mol/nm; the model
works in Å and eV. The conversion happens here and only here, with the factors of
:mod:`tensormol.units`.

Two backends:

``"python"``  an ``openmm.PythonForce`` calling the model through PyTorch (every platform).
``"torch"``   openmm-torch's ``TorchForce`` with a traced TorchScript module (where
              ``openmmtorch`` imports, i.e. machines with CUDA-enabled torch); see
              :mod:`._torchforce` (minimum image: boxes at least twice the cutoff wide).

``backend="auto"`` (default) picks ``"python"``: it is the route that runs everywhere; the
TorchForce route is opt-in.

Periodic systems: the model builds its own neighbour list with all periodic images within the
cutoff (not only the minimum image), from the box OpenMM passes at every call, so barostat moves
(NPT) and boxes smaller than twice the cutoff are both handled exactly. Registration: the package
entry point ``openmmml.potentials: tensormol`` (or :func:`register_openmm_plugin` until it is
installed).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import openmm
import openmm.app
import torch
from openmm import unit
from openmmml.mlpotential import MLPotential, MLPotentialImpl

from tensormol import keys as K
from tensormol.export._bundle import Bundle, bundle_from_bytes, load_bundle
from tensormol.export._openmm_entry import TensorMolPotentialImplFactory
from tensormol.units import ANGSTROM_TO_NM, EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM

__all__ = [
    "TensorMolPotentialImplFactory",
    "TensorMolPotentialImpl",
    "TensorMolForceCallback",
    "register_openmm_plugin",
    "ENERGY_TO_OPENMM",
    "FORCE_TO_OPENMM",
]

#: eV -> kJ/mol.
ENERGY_TO_OPENMM = EV_TO_KJ_PER_MOL
#: eV/Å -> kJ/mol/nm.
FORCE_TO_OPENMM = EV_TO_KJ_PER_MOL / ANGSTROM_TO_NM

_BACKENDS = ("auto", "python", "torch")
_GRAPHS = ("auto", "eager", "traced")


class TensorMolForceCallback:
    """The computation of a ``PythonForce``: OpenMM state (nm) -> (kJ/mol, kJ/mol/nm).

    Picklable (OpenMM pickles the callable to copy or serialize a System): the pickled state
    holds the bundle's bytes, not a path, so a serialized System stays self-contained; the model
    is rebuilt lazily on first use.

    Parameters
    ----------
    bundle : Bundle
    atomic_numbers : sequence of int
        Elements of the particles the force applies to, in order.
    periodic : bool
        Use the periodic box of the State (all three directions periodic).
    device : str
    skin : float
        Verlet skin (Å) of the cached neighbour list: the list holds pairs within
        ``cutoff + skin`` and is rebuilt when an atom has moved more than ``skin / 2`` or the box
        changed; the model drops the pairs beyond its cutoff, so results equal a fresh list's
        (same pairs, same sorted order). ``0`` lets the model build its list at every call.
    graph : {"auto", "eager", "traced"}
        How the model runs. "eager": the PyTorch model with the cached neighbour list.
        "traced": the TorchScript graph of the TorchForce route (traced on the first call; pairs
        from all N(N-1) candidates inside the graph, reference twins of the custom autograd
        ops), whose per-call overhead is lower: for small molecules a step is dominated by
        dispatching a few thousand small ops, not by arithmetic. "auto" (default): "traced" for
        non-periodic systems of at most ``TRACED_MAX_ATOMS`` atoms on the CPU whose model sets
        ``trace_small_systems`` (TensorNet: faster traced; GauntNet: slower, and its compiled
        Gaunt kernel only runs eager), "eager" otherwise.
    """

    #: Largest non-periodic system that ``graph="auto"`` runs traced (its all-pairs candidate
    #: list is O(N²)).
    TRACED_MAX_ATOMS = 200

    def __init__(self, bundle: Bundle, atomic_numbers: Iterable[int], periodic: bool,
                 device: str = "cpu", skin: float = 0.5, graph: str = "auto") -> None:
        self._bundle_bytes = bundle.to_bytes()
        self._bundle = bundle
        self.atomic_numbers = [int(z) for z in atomic_numbers]
        bundle.check_species(self.atomic_numbers)
        self.periodic = bool(periodic)
        self.device = str(device)
        self.skin = float(skin)
        if not self.skin >= 0.0:
            raise ValueError(f"skin must be >= 0 (Å), got {skin!r}")
        if graph not in _GRAPHS:
            raise ValueError(f"graph must be one of {_GRAPHS}, got {graph!r}")
        if graph == "traced" and self.periodic:
            raise ValueError("graph='traced' is for non-periodic systems (its pair list is the "
                             "minimum image); use graph='eager' or 'auto' for periodic ones")
        self.graph = graph
        self._model: torch.nn.Module | None = None
        self._traced: torch.jit.ScriptModule | None = None
        self._z: torch.Tensor | None = None
        self._pbc: torch.Tensor | None = None
        self._reset_list()

    def _reset_list(self) -> None:
        self._list: tuple[torch.Tensor, torch.Tensor] | None = None
        self._list_pos: torch.Tensor | None = None
        self._list_cell: torch.Tensor | None = None
        #: How many times the neighbour list was built (for tests and benchmarks).
        self.list_builds = 0

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        return {"bundle": self._bundle_bytes, "atomic_numbers": self.atomic_numbers,
                "periodic": self.periodic, "device": self.device, "skin": self.skin,
                "graph": self.graph}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._bundle_bytes = state["bundle"]
        self._bundle = bundle_from_bytes(self._bundle_bytes)
        self.atomic_numbers = list(state["atomic_numbers"])
        self.periodic = bool(state["periodic"])
        self.device = state["device"]
        self.skin = float(state.get("skin", 0.0))
        self.graph = state.get("graph", "eager")
        self._model = None
        self._traced = None
        self._z = None
        self._pbc = None
        self._reset_list()

    # ------------------------------------------------------------------ evaluation
    @property
    def model(self) -> torch.nn.Module:
        if self._model is None:
            self._model = self._bundle.build_model(device=self.device)
            dev = torch.device(self.device)
            self._z = torch.tensor(self.atomic_numbers, dtype=torch.int64, device=dev)
            self._pbc = torch.full((1, 3), self.periodic, dtype=torch.bool, device=dev)
        return self._model

    def evaluate(self, positions_nm: np.ndarray, box_nm: np.ndarray | None
                 ) -> tuple[float, np.ndarray]:
        """Energy (kJ/mol) and forces (N, 3) float64 kJ/mol/nm at positions (N, 3) nm.

        ``box_nm`` (3, 3) nm holds the box vectors as rows, or is ``None`` without periodicity.
        """
        model = self.model
        dev = self._z.device
        if self.uses_traced_graph:
            return self._evaluate_traced(positions_nm)
        pos = torch.as_tensor(np.asarray(positions_nm, dtype=np.float64) * NM_TO_ANGSTROM,
                              device=dev)
        batch = {K.POSITIONS: pos, K.ATOMIC_NUMBERS: self._z, K.PBC: self._pbc}
        if self.periodic:
            if box_nm is None:
                raise ValueError("the tensormol force is periodic but OpenMM passed no box")
            batch[K.CELL] = torch.as_tensor(
                np.asarray(box_nm, dtype=np.float64) * NM_TO_ANGSTROM, device=dev
            )[None]
        if self.skin > 0.0:
            batch[K.EDGE_INDEX], batch[K.CELL_SHIFTS] = self._edges(pos, batch.get(K.CELL))
        out = model(batch, compute_forces=True)
        energy = float(out[K.ENERGY][0]) * ENERGY_TO_OPENMM
        forces = out[K.FORCES].detach().cpu().numpy() * FORCE_TO_OPENMM
        return energy, forces

    @property
    def uses_traced_graph(self) -> bool:
        """Whether calls run the traced graph (see ``graph``)."""
        if self.graph == "auto":  # measured on CPU only: elsewhere the eager model runs
            return (not self.periodic and torch.device(self.device).type == "cpu"
                    and len(self.atomic_numbers) <= self.TRACED_MAX_ATOMS
                    and bool(getattr(self.model, "trace_small_systems", False)))
        return self.graph == "traced"

    def _evaluate_traced(self, positions_nm: np.ndarray) -> tuple[float, np.ndarray]:
        if self._traced is None:
            from tensormol.export._torchforce import torchscript_module

            self._traced = torchscript_module(self.model, self.atomic_numbers, False)
        x = torch.as_tensor(np.asarray(positions_nm, dtype=np.float64),
                            device=self._z.device).requires_grad_(True)
        # The graph runs as traced: the JIT executor's profiling-then-optimizing stages would
        # change the backward's operation order after the first calls (forces differing in the
        # last bits), so a resumed run would not repeat an uninterrupted one exactly. Measured
        # no slower on small molecules.
        with torch.jit.optimized_execution(False):
            energy = self._traced(x)  # kJ/mol, from positions in nm
            (grad,) = torch.autograd.grad(energy, x)
        return float(energy.detach()), grad.neg().cpu().numpy()

    def _edges(self, pos: torch.Tensor, cell: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """The cached Verlet list, rebuilt when needed (see ``skin``)."""
        stale = (
            self._list is None
            or self._list_pos.shape != pos.shape
            or (cell is not None and not torch.equal(cell, self._list_cell))
            # A wrap by OpenMM moves an atom by a lattice vector: also caught here.
            or float((pos - self._list_pos).norm(dim=1).max()) > 0.5 * self.skin
        )
        if stale:
            from tensormol.ops import neighbor_list

            self._list = neighbor_list(pos, float(self.model.cutoff) + self.skin, cell=cell,
                                       pbc=self._pbc if cell is not None else None)
            self._list_pos = pos.clone()
            self._list_cell = None if cell is None else cell.clone()
            self.list_builds += 1
        return self._list

    def __call__(self, state: openmm.State) -> tuple[float, np.ndarray]:
        pos = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        box = (state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
               if self.periodic else None)
        return self.evaluate(pos, box)


def _atomic_numbers(topology: openmm.app.Topology, atoms: list[int] | None) -> list[int]:
    all_atoms = list(topology.atoms())
    chosen = all_atoms if atoms is None else [all_atoms[i] for i in atoms]
    zs = []
    for atom in chosen:
        if atom.element is None:
            raise ValueError(
                f"atom {atom.index} ({atom.name} in residue {atom.residue.name}) has no element; "
                "the tensormol potential needs an element for every ML atom (virtual sites and "
                "extra points cannot be in the ML region)"
            )
        zs.append(int(atom.element.atomic_number))
    return zs


class TensorMolPotentialImpl(MLPotentialImpl):
    """Adds a tensormol model to an OpenMM System (made by the factory below).

    Parameters
    ----------
    name : str
        ``"tensormol"``.
    bundle : path-like or Bundle
        The model bundle (``tensormol export``).
    device : str, optional
        Torch device of the PythonForce backend (default: ``"cpu"``).
    backend : {"auto", "python", "torch"}
    """

    def __init__(self, name: str, bundle: Any, device: str = "cpu",
                 backend: str = "auto") -> None:
        self.name = name
        self.bundle = load_bundle(bundle)
        self.device = device
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
        self.backend = backend

    def getMLLongRange(self) -> bool:
        # A tensormol model is local: nothing beyond its cutoff.
        return False

    def addForces(self, topology: openmm.app.Topology, system: openmm.System,
                  atoms: Iterable[int] | None, forceGroup: int, **args: Any) -> None:
        """Add the model's force for ``atoms`` (all atoms if ``None``) in ``forceGroup``.

        Extra keyword arguments: ``device`` and ``backend`` override the constructor's;
        ``graph`` ("auto", "eager", "traced") is passed to :class:`TensorMolForceCallback`.
        """
        atom_list = None if atoms is None else [int(a) for a in atoms]
        zs = _atomic_numbers(topology, atom_list)
        what = "the ML region" if atom_list is not None else "the topology"
        self.bundle.check_species(zs, what=what)
        periodic = (topology.getPeriodicBoxVectors() is not None
                    or system.usesPeriodicBoundaryConditions())
        backend = args.get("backend", self.backend)
        device = args.get("device", self.device)
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
        if backend == "torch":
            from tensormol.export._torchforce import make_torch_force

            box = None
            if periodic:
                vecs = topology.getPeriodicBoxVectors()
                if vecs is None:
                    vecs = system.getDefaultPeriodicBoxVectors()
                box = torch.tensor([[v.x, v.y, v.z] for v in
                                    (vec.value_in_unit(unit.nanometer) for vec in vecs)],
                                   dtype=torch.float64)
            # A TorchForce sees every particle: the module selects the ML region itself.
            force = make_torch_force(self.bundle, zs, periodic, indices=atom_list,
                                     num_particles=system.getNumParticles(), box_nm=box)
        else:
            force = openmm.PythonForce(TensorMolForceCallback(
                self.bundle, zs, periodic, device, graph=args.get("graph", "auto")))
            force.setUsesPeriodicBoundaryConditions(periodic)
            if atom_list is not None:
                force.setParticles(atom_list)  # the callback then sees only these particles
        force.setForceGroup(int(forceGroup))
        force.setName("TensorMol")
        system.addForce(force)


def register_openmm_plugin(name: str = "tensormol") -> None:
    """Register the factory with openmm-ml (a no-op if the entry point already did it)."""
    if name not in MLPotential._implFactories:
        MLPotential.registerImplFactory(name, TensorMolPotentialImplFactory())
