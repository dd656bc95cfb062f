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
from openmmml.mlpotential import MLPotentialImpl

from tensormol import keys as K
from tensormol.export._bundle import Bundle, bundle_from_bytes, load_bundle
from tensormol.units import ANGSTROM_TO_NM, EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM

__all__ = [
    "TensorMolPotentialImpl",
    "TensorMolForceCallback",
    "ENERGY_TO_OPENMM",
    "FORCE_TO_OPENMM",
]

#: eV -> kJ/mol.
ENERGY_TO_OPENMM = EV_TO_KJ_PER_MOL
#: eV/Å -> kJ/mol/nm.
FORCE_TO_OPENMM = EV_TO_KJ_PER_MOL / ANGSTROM_TO_NM

_BACKENDS = ("auto", "python", "torch")
_GRAPHS = ("auto", "eager", "traced")


def _check_threads(threads: Any) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1 or None (torch's setting), got "
                         f"{threads!r}")
    return int(threads)


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
        (same pairs, same sorted order). ``0`` rebuilds the list at every call.
    graph : {"auto", "eager", "traced"}
        How the model runs. "eager": the PyTorch model with the cached neighbour list.
        "traced": the TorchScript graph of the TorchForce route (traced on the first call; pairs
        from all N(N-1) candidates inside the graph, reference twins of the custom autograd
        ops), whose per-call overhead is lower: for small molecules a step is dominated by
        dispatching a few thousand small ops, not by arithmetic. "auto" (default): the
        deployment policy of :func:`tensormol.export._policy.choose_graph` (traced for small
        non-periodic systems on the CPU of model families measured faster traced), logged once.
    threads : int or None
        Torch intra-op threads while the force is evaluated (set around each call and restored
        after, so other work in the process keeps its own setting). ``None`` (default): the
        thread policy of :func:`tensormol._threads.choose_threads` for MD (one thread for ML
        regions up to ``SMALL_ML_ATOMS`` atoms, whose ops are too small to split; all available
        cores above; ``TENSORMOL_NUM_THREADS`` overrides). Logged with the route.
    check_connectivity : bool
        Raise :class:`~tensormol.export.GeometryError` when a molecule falls apart: atoms that
        were connected through pairs within the cutoff at the first call no longer are, for 10
        consecutive calls (a minimizer's trial steps are passing excursions;
        :class:`~tensormol.export._geometry.ConnectivityMonitor`). Switch off for a
        dissociation you intend. Overlapping atoms always raise it, on both graphs.
    """

    def __init__(self, bundle: Bundle, atomic_numbers: Iterable[int], periodic: bool,
                 device: str = "cpu", skin: float = 0.5, graph: str = "auto",
                 threads: int | None = None, check_connectivity: bool = True) -> None:
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
        self.threads = _check_threads(threads)
        self.check_connectivity = bool(check_connectivity)
        self._setup()

    def _setup(self) -> None:
        from tensormol._threads import choose_threads
        from tensormol.export._policy import choose_graph

        #: The graph this system runs through and why (:class:`GraphRoute`).
        self.route = choose_graph(self._bundle.name, len(self.atomic_numbers), self.periodic,
                                  self.device, self.graph)
        #: Torch threads of each call and why (:class:`tensormol._threads.ThreadPolicy`).
        self.thread_policy = choose_threads("md", n_atoms=len(self.atomic_numbers),
                                            torch_threads=self.threads)
        self._logged = False
        self._model: torch.nn.Module | None = None
        self._traced: torch.jit.ScriptModule | None = None
        self._z: torch.Tensor | None = None
        self._pbc: torch.Tensor | None = None
        self._monitor = None
        if self.check_connectivity:
            from tensormol.export._geometry import ConnectivityMonitor

            self._monitor = ConnectivityMonitor(self._bundle.cutoff, self.periodic)
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
                "graph": self.graph, "threads": self.threads,
                "check_connectivity": self.check_connectivity}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._bundle_bytes = state["bundle"]
        self._bundle = bundle_from_bytes(self._bundle_bytes)
        self.atomic_numbers = list(state["atomic_numbers"])
        self.periodic = bool(state["periodic"])
        self.device = state["device"]
        self.skin = float(state.get("skin", 0.0))
        self.graph = state.get("graph", "eager")
        self.threads = state.get("threads")
        self.check_connectivity = bool(state.get("check_connectivity", True))
        self._setup()

    # ------------------------------------------------------------------ evaluation
    @property
    def model(self) -> torch.nn.Module:
        if self._model is None:
            self._model = self._bundle.build_model(device=self.device)
            dev = torch.device(self.device)
            self._z = torch.tensor(self.atomic_numbers, dtype=torch.int64, device=dev)
            self._pbc = torch.full((1, 3), self.periodic, dtype=torch.bool, device=dev)
        return self._model

    @property
    def uses_traced_graph(self) -> bool:
        """Whether calls run the traced graph (see ``graph`` and :attr:`route`)."""
        return self.route.graph == "traced"

    def evaluate(self, positions_nm: np.ndarray, box_nm: np.ndarray | None
                 ) -> tuple[float, np.ndarray]:
        """Energy (kJ/mol) and forces (N, 3) float64 kJ/mol/nm at positions (N, 3) nm.

        ``box_nm`` (3, 3) nm holds the box vectors as rows, or is ``None`` without periodicity.

        Raises
        ------
        GeometryError
            Overlapping atoms, or (``check_connectivity``) a molecule that fell apart.
        """
        from tensormol._threads import thread_scope

        if not self._logged:
            from tensormol.export._policy import log_route

            log_route(self.route, self.thread_policy)
            self._logged = True
        with thread_scope(self.thread_policy):
            return self._evaluate(positions_nm, box_nm)

    def _evaluate(self, positions_nm: np.ndarray, box_nm: np.ndarray | None
                  ) -> tuple[float, np.ndarray]:
        from tensormol.export._geometry import check_edge_overlap, check_overlap

        model = self.model
        dev = self._z.device
        pos_a = np.asarray(positions_nm, dtype=np.float64) * NM_TO_ANGSTROM
        cell_a = None
        if self.periodic:
            if box_nm is None:
                raise ValueError("the tensormol force is periodic but OpenMM passed no box")
            cell_a = np.asarray(box_nm, dtype=np.float64) * NM_TO_ANGSTROM
        if self._monitor is not None:
            self._monitor.check(pos_a, cell_a)
        if self.uses_traced_graph:
            # The traced graph has no Python-side checks: all pairs, O(N²) for N small.
            check_overlap(pos_a)
            return self._evaluate_traced(positions_nm)
        pos = torch.as_tensor(pos_a, device=dev)
        batch = {K.POSITIONS: pos, K.ATOMIC_NUMBERS: self._z, K.PBC: self._pbc}
        if cell_a is not None:
            batch[K.CELL] = torch.as_tensor(cell_a, device=dev)[None]
        edge_index, shifts = self._edges(pos, batch.get(K.CELL))
        check_edge_overlap(pos, edge_index, shifts, batch.get(K.CELL))
        batch[K.EDGE_INDEX], batch[K.CELL_SHIFTS] = edge_index, shifts
        out = model(batch, compute_forces=True)
        energy = float(out[K.ENERGY][0]) * ENERGY_TO_OPENMM
        forces = out[K.FORCES].detach().cpu().numpy() * FORCE_TO_OPENMM
        return energy, forces

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
            self.skin == 0.0
            or self._list is None
            or self._list_pos.shape != pos.shape
            or (cell is not None and not torch.equal(cell, self._list_cell))
            # A wrap by OpenMM moves an atom by a lattice vector: also caught here.
            or float((pos - self._list_pos).norm(dim=1).max()) > 0.5 * self.skin
        )
        if stale:
            from tensormol.ops import neighbor_list

            # Overlaps are checked by the caller, with 0-based indices in a GeometryError.
            self._list = neighbor_list(pos, float(self.model.cutoff) + self.skin, cell=cell,
                                       pbc=self._pbc if cell is not None else None,
                                       check_overlap=False)
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


#: Keyword arguments of ``MLPotential("tensormol", ...)`` and of ``createSystem`` /
#: ``createMixedSystem`` (the latter override the former for one system).
IMPL_OPTIONS = ("device", "backend", "graph", "threads", "check_connectivity", "skin")


def _check_options(args: dict[str, Any], where: str) -> None:
    """Refuse an unknown keyword (a typo would otherwise be silently ignored by openmm-ml)."""
    from tensormol.registry import suggest

    for key in args:
        if key not in IMPL_OPTIONS:
            raise TypeError(
                f"{where} got an unknown keyword argument {key!r}{suggest(key, IMPL_OPTIONS)}; "
                f"the tensormol potential takes {', '.join(IMPL_OPTIONS)}"
            )


class TensorMolPotentialImpl(MLPotentialImpl):
    """Adds a tensormol model to an OpenMM System (made by the factory below).

    Parameters
    ----------
    name : str
        ``"tensormol"``.
    bundle : path-like or Bundle
        The model bundle (``tensormol export``).
    **options
        Defaults for every system made with this potential, overridable per call of
        ``createSystem`` / ``createMixedSystem``: ``device`` (torch device of the PythonForce,
        default ``"cpu"``), ``backend`` ("auto", "python", "torch"), ``graph`` ("auto", "eager",
        "traced"), ``threads`` (torch threads of each force call; default: the MD thread
        policy), ``check_connectivity`` (report a molecule falling apart; default True),
        ``skin`` (Å, Verlet skin of the eager route's list). Unknown names raise ``TypeError``.
    """

    def __init__(self, name: str, bundle: Any, **options: Any) -> None:
        _check_options(options, 'MLPotential("tensormol")')
        self.name = name
        self.bundle = load_bundle(bundle)
        self.options = {"device": "cpu", "backend": "auto", **options}
        self.device = self.options["device"]
        self.backend = self.options["backend"]
        if self.backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {self.backend!r}")

    def getMLLongRange(self) -> bool:
        # A tensormol model is local: nothing beyond its cutoff.
        return False

    def addForces(self, topology: openmm.app.Topology, system: openmm.System,
                  atoms: Iterable[int] | None, forceGroup: int, **args: Any) -> None:
        """Add the model's force for ``atoms`` (all atoms if ``None``) in ``forceGroup``.

        Keyword arguments: the options of the constructor (see the class), overriding it for
        this system; unknown names raise ``TypeError`` with a suggestion.
        """
        _check_options(args, "createSystem/createMixedSystem (tensormol potential)")
        opts = {**self.options, **args}
        atom_list = None if atoms is None else [int(a) for a in atoms]
        zs = _atomic_numbers(topology, atom_list)
        what = "the ML region" if atom_list is not None else "the topology"
        self.bundle.check_species(zs, what=what)
        periodic = (topology.getPeriodicBoxVectors() is not None
                    or system.usesPeriodicBoundaryConditions())
        backend = opts["backend"]
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
            kwargs = {k: opts[k] for k in ("graph", "threads", "check_connectivity", "skin")
                      if k in opts}
            force = openmm.PythonForce(TensorMolForceCallback(
                self.bundle, zs, periodic, opts["device"], **kwargs))
            force.setUsesPeriodicBoundaryConditions(periodic)
            if atom_list is not None:
                force.setParticles(atom_list)  # the callback then sees only these particles
        force.setForceGroup(int(forceGroup))
        force.setName("TensorMol")
        system.addForce(force)
