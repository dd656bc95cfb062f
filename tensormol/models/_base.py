"""The :class:`EnergyModel` contract every tensormol potential signs.

A model maps an atomic batch (a ``dict[str, Tensor]`` keyed by :mod:`tensormol.keys`) to

* ``ENERGY`` (B,) float64, eV: ``E = sum_i [ s * (eps_i - eps_iso(Z_i)) + e_ref(Z_i) ]``,
* ``FORCES`` (N, 3) float64, eV/Å: ``-dE/dr`` by autograd,
* ``STRESS`` (B, 3, 3) float64, eV/Å³ and ``VIRIAL`` (B, 3, 3) float64, eV by the strain
  derivative: a symmetric displacement gradient ``eps`` acts on positions and cell,
  ``r -> r (1 + eps)``, ``cell -> cell (1 + eps)``; ``virial = -dE/deps`` and
  ``stress = (1/V) dE/deps = -virial / V`` (ASE's sign: positive = tensile).

Subclasses implement :meth:`EnergyModel.atomic_energies` only: per-node outputs ``eps_i`` of a graph
whose edge vectors are already formed (float64, Å). The base class owns everything shared:
input validation, the species table, the neighbour list (from :attr:`EnergyModel.cutoff`, the single
source of truth), the strain trick, the float64 accumulation, and the per-element reference
energies and scale.

Isolated atoms. The base class appends one *isolated reference node* per known species to every
graph (a node without edges) and subtracts its output from every atom of that species. An atom
without neighbours therefore has energy exactly ``e_ref(Z)`` and zero force, whatever the network,
and ``reference_energies`` keep their physical meaning (energies of the free atoms in the model's
reference). The subtraction is a per-element constant: it changes no force and no stress.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from tensormol import keys as K
from tensormol._validate import check_finite, check_tensor
from tensormol.config import Section
from tensormol.elements import MAX_ATOMIC_NUMBER as _MAX_Z
from tensormol.elements import element_symbol

__all__ = ["EnergyModel", "AtomicGraph", "EnergyModelConfig", "MODEL_DTYPES"]

#: Dtypes a model's layers may have, by the name its config gives them.
MODEL_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}


class EnergyModelConfig(Section):
    """Base of the hyperparameter classes of models (frozen dataclasses of :func:`option`
    fields, with ``from_dict``/``to_dict`` from :class:`tensormol.config.Section`).

    A subclass declares a ``dtype`` field with ``choices=tuple(MODEL_DTYPES)``; models read the
    torch dtype from :attr:`torch_dtype` and build their config with :meth:`resolve`.
    """

    @classmethod
    def resolve(cls, config: Any = None, params: Mapping[str, Any] | None = None,
                where: str = "model") -> Any:
        """The validated config from ``config`` (an instance, a mapping or ``None``) with the
        entries of ``params`` overriding it; a ``torch.dtype`` is accepted for ``dtype``.

        Raises
        ------
        ConfigError
            For unknown keys (with a suggestion) or bad values.
        TypeError
            If ``config`` is neither an instance of ``cls``, a mapping nor ``None``.
        """
        if isinstance(config, cls):
            raw = config.to_dict()
        elif config is None:
            raw = {}
        elif isinstance(config, Mapping):
            raw = dict(config)
        else:
            raise TypeError(
                f"config must be a {cls.__name__} or a mapping, got {type(config).__name__}"
            )
        raw.update(params or {})
        if isinstance(raw.get("dtype"), torch.dtype):
            names = {v: k for k, v in MODEL_DTYPES.items()}
            if raw["dtype"] not in names:
                from tensormol.config import ConfigError
                from tensormol.registry import suggest

                raise ConfigError(
                    f"config entry '{where}.dtype' must be one of {', '.join(MODEL_DTYPES)}, got "
                    f"{raw['dtype']}"
                    f"{suggest(str(raw['dtype']).replace('torch.', ''), list(MODEL_DTYPES))}"
                )
            raw["dtype"] = names[raw["dtype"]]
        return cls.from_dict(raw, where)

    @property
    def torch_dtype(self) -> torch.dtype:
        """The torch dtype of the layers (``MODEL_DTYPES[self.dtype]``)."""
        return MODEL_DTYPES[self.dtype]  # type: ignore[attr-defined]


class AtomicGraph(NamedTuple):
    """What a model's :meth:`EnergyModel.atomic_energies` receives.

    ``M = N + K`` nodes: the ``N`` atoms of the batch, then ``K`` isolated reference nodes (one per
    known species, in the order of :attr:`EnergyModel.atomic_numbers`) that have no edges.

    Attributes
    ----------
    species : Tensor
        (M,) int64, index of each node's element in :attr:`EnergyModel.atomic_numbers`.
    atomic_numbers : Tensor
        (M,) int64, atomic number of each node.
    edge_index : Tensor
        (2, E) int64, rows (i, j): i is the centre, j the neighbour; a full (both directions) list.
    edge_vectors : Tensor
        (E, 3) float64, Å, ``r_j - r_i + shift @ cell``; differentiable in positions and strain.
    edge_lengths : Tensor
        (E,) float64, Å, norms of ``edge_vectors`` (all > 0).
    cell_shifts : Tensor
        (E, 3) int64, integer lattice translations of j (zeros for molecules); with ``edge_index``
        they identify an edge, so a model can pair (i, j, s) with its reverse (j, i, -s).
    num_atoms : int
        N, the number of real atoms (the first N nodes).
    """

    species: Tensor
    atomic_numbers: Tensor
    edge_index: Tensor
    edge_vectors: Tensor
    edge_lengths: Tensor
    cell_shifts: Tensor
    num_atoms: int

    @property
    def num_nodes(self) -> int:
        return int(self.species.shape[0])


class _Inputs(NamedTuple):
    positions: Tensor
    atomic_numbers: Tensor
    batch: Tensor
    cell: Tensor
    pbc: Tensor
    num_structures: int
    edge_index: Tensor | None
    cell_shifts: Tensor | None


class EnergyModel(nn.Module):
    """Base class of tensormol potentials: energy, forces, stress and virial in float64.

    Parameters
    ----------
    cutoff : float
        Interaction cutoff in Å. The neighbour list is built from it (the single source of truth);
        data pipelines should read it from the model.
    atomic_numbers : sequence of int
        Elements the model is trained for (sorted, unique). Any other element is rejected.

    Notes
    -----
    Buffers (saved in the state dict): ``species`` (K,) int64, ``reference_energies`` (K,) float64
    eV, ``energy_scale`` () float64. Set the last two from training-set statistics with
    :meth:`set_energy_statistics`.
    """

    species: Tensor
    reference_energies: Tensor
    energy_scale: Tensor
    _species_lookup: Tensor

    def __init__(self, *, cutoff: float, atomic_numbers: Sequence[int]) -> None:
        super().__init__()
        cutoff = float(cutoff)
        if not cutoff > 0.0 or cutoff == float("inf"):
            raise ValueError(f"cutoff must be a finite number > 0 (Å), got {cutoff!r}")
        self.cutoff = cutoff
        zs = _check_atomic_numbers(atomic_numbers)
        self.register_buffer("species", torch.tensor(zs, dtype=torch.int64))
        lookup = torch.full((_MAX_Z + 2,), -1, dtype=torch.int64)
        lookup[torch.tensor(zs)] = torch.arange(len(zs))
        self.register_buffer("_species_lookup", lookup, persistent=False)
        self.register_buffer("reference_energies", torch.zeros(len(zs), dtype=torch.float64))
        self.register_buffer("energy_scale", torch.ones((), dtype=torch.float64))

    # Buffers that stay float64 whatever ``.to(dtype)`` / ``.float()`` is applied to the model:
    # a reference energy of -1000 eV in float32 would carry a 1e-4 eV error.
    _float64_buffers = ("reference_energies", "energy_scale")

    def _apply(self, fn, recurse=True):  # type: ignore[override]
        kept = {name: self._buffers[name] for name in self._float64_buffers}
        super()._apply(fn, recurse)
        for name, old in kept.items():
            new = self._buffers[name]
            if new is not None and new.dtype != torch.float64:
                self._buffers[name] = old.to(device=new.device)
        return self

    # ------------------------------------------------------------------ species and statistics
    @property
    def atomic_numbers(self) -> list[int]:
        """Atomic numbers the model knows, sorted."""
        return [int(z) for z in self.species.tolist()]

    @property
    def num_species(self) -> int:
        return int(self.species.shape[0])

    @property
    def model_dtype(self) -> torch.dtype:
        """Dtype of the layers (that of the first floating-point parameter)."""
        for p in self.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.float64

    def species_index(self, atomic_numbers: Tensor) -> Tensor:
        """Map atomic numbers (N,) int64 to indices into :attr:`atomic_numbers`.

        Raises
        ------
        ValueError
            For an element the model was not trained on, naming it and the known elements.
        """
        z = atomic_numbers
        lookup = self._species_lookup.to(z.device)
        inside = (z >= 0) & (z <= _MAX_Z)
        idx = lookup[z.clamp(0, _MAX_Z + 1)]
        bad = (idx < 0) | ~inside
        if bool(bad.any()):
            zbad = int(z[bad.nonzero()[0, 0]])
            known = ", ".join(element_symbol(k) for k in self.atomic_numbers)
            what = (f"element {element_symbol(zbad)} (Z={zbad})" if 1 <= zbad <= _MAX_Z
                    else f"atomic number {zbad}")
            raise ValueError(f"{what} is not known to this model; it was trained on {known}")
        return idx

    @torch.no_grad()
    def set_energy_statistics(
        self,
        reference_energies: Mapping[int, float] | Sequence[float] | Tensor | None = None,
        scale: float | None = None,
        shift: float = 0.0,
    ) -> None:
        """Set per-element reference energies (eV) and the energy scale (eV) from data statistics.

        Parameters
        ----------
        reference_energies : mapping Z -> eV, or sequence/tensor (K,) in the order of
            :attr:`atomic_numbers`, optional
            Energy of an isolated atom of each element (typically a least-squares fit of the
            training energies on the element counts). Unchanged when ``None``.
        scale : float, optional
            Multiplies the network's per-atom output (e.g. the RMS of the training forces or of the
            per-atom energy residuals). Unchanged when ``None``.
        shift : float
            A per-atom energy (eV) added to every reference energy (a common offset).
        """
        if reference_energies is not None:
            if isinstance(reference_energies, Mapping):
                missing = [z for z in self.atomic_numbers if z not in reference_energies]
                extra = [int(z) for z in reference_energies if int(z) not in self.atomic_numbers]
                if missing or extra:
                    raise ValueError(
                        "reference_energies must give one energy for each of the model's elements "
                        f"{self.atomic_numbers}; missing {missing}, unknown {extra}"
                    )
                values = torch.tensor(
                    [float(reference_energies[z]) for z in self.atomic_numbers],
                    dtype=torch.float64,
                )
            else:
                values = torch.as_tensor(reference_energies, dtype=torch.float64).flatten()
                if values.shape[0] != self.num_species:
                    raise ValueError(
                        f"reference_energies must have {self.num_species} entries (one per element "
                        f"{self.atomic_numbers}), got {values.shape[0]}"
                    )
            check_finite(values, "reference_energies")
            self.reference_energies.copy_(values + float(shift))
        elif shift:
            self.reference_energies.add_(float(shift))
        if scale is not None:
            s = float(scale)
            if not s > 0.0 or s == float("inf"):
                raise ValueError(f"scale must be a finite number > 0 (eV), got {scale!r}")
            self.energy_scale.fill_(s)

    def set_statistics(self, statistics: Mapping[str, Any]) -> None:
        """Take what the model uses from training-split statistics
        (:func:`tensormol.data.compute_statistics`); missing entries change nothing.

        The base class reads ``element_energies`` (Z -> eV, the reference energies) and the
        energy scale: ``force_rms`` (eV/Å; outputs of order one in force units), else
        ``energy_residual_per_atom_std``. Models that normalise messages by the mean neighbour
        count also read ``mean_num_neighbors`` (neighbours within :attr:`cutoff`).
        """
        refs = statistics.get("element_energies")
        scale = statistics.get("force_rms") or statistics.get("energy_residual_per_atom_std")
        self.set_energy_statistics(
            reference_energies={int(z): float(e) for z, e in refs.items()} if refs else None,
            scale=float(scale) if scale else None,
        )

    # ------------------------------------------------------------------ the model's own part
    def atomic_energies(self, graph: AtomicGraph) -> Tensor:
        """Per-node outputs ``eps`` (M,), in the model dtype, before scale and reference energies.

        Subclasses implement this; it must depend on positions only through
        ``graph.edge_vectors`` / ``graph.edge_lengths`` (translation invariance, strain).
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        batch: Mapping[str, Tensor],
        compute_forces: bool = True,
        compute_stress: bool = False,
        create_graph: bool | None = None,
    ) -> dict[str, Tensor]:
        """Energy (and forces, stress, virial) of every structure in ``batch``.

        Parameters
        ----------
        batch : dict[str, Tensor]
            ``POSITIONS`` (N, 3) float Å and ``ATOMIC_NUMBERS`` (N,) int64 are required;
            ``BATCH`` (N,) int64 (default: one structure), ``CELL`` (B, 3, 3) float64 Å (rows are
            lattice vectors; zeros = no cell), ``PBC`` (B, 3) bool (default: no periodicity),
            ``NUM_ATOMS`` (B,), and a precomputed ``EDGE_INDEX`` (2, E) / ``CELL_SHIFTS`` (E, 3)
            are optional. Pairs farther apart than :attr:`cutoff` in a given edge list are dropped.
        compute_forces : bool
            Return ``FORCES`` (N, 3) float64 eV/Å.
        compute_stress : bool
            Return ``STRESS`` (B, 3, 3) float64 eV/Å³ and ``VIRIAL`` (B, 3, 3) float64 eV; every
            structure needs a cell of nonzero volume.
        create_graph : bool, optional
            Keep the graph of forces/stress for a loss on them (double backward). Default: the
            module's ``training`` flag. Without it, outputs are detached.

        Returns
        -------
        dict[str, Tensor]
            ``ENERGY`` (B,) float64 eV, and the requested ``FORCES``, ``STRESS``, ``VIRIAL``.
        """
        need_grad = compute_forces or compute_stress
        if need_grad and torch.is_inference_mode_enabled():
            raise RuntimeError(
                "forces and stress are computed by autograd, which torch.inference_mode() "
                "disables; use torch.no_grad() or nothing instead (Lightning: "
                "Trainer(inference_mode=False))"
            )
        if create_graph is None:
            create_graph = self.training
        inp = self._read_batch(batch)
        with torch.enable_grad() if need_grad else nullcontext():
            return self._forward(inp, compute_forces, compute_stress, bool(create_graph))

    def _forward(
        self, inp: _Inputs, compute_forces: bool, compute_stress: bool, create_graph: bool
    ) -> dict[str, Tensor]:
        f64 = torch.float64
        pos = inp.positions
        if compute_forces and not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        cell, batch, n_struct = inp.cell, inp.batch, inp.num_structures
        volume = None
        if compute_stress:
            volume = torch.linalg.det(cell).abs()
            flat = (volume <= 1e-12 * cell.abs().amax(dim=(1, 2)).clamp_min(1.0) ** 3).nonzero()
            if flat.numel():
                raise ValueError(
                    f"compute_stress needs a cell of nonzero volume for every structure; "
                    f"structure {int(flat[0, 0])} has cell {cell[int(flat[0, 0])].tolist()}"
                )
            # Symmetric displacement gradient: its derivative is the (symmetric) virial.
            strain = torch.zeros(n_struct, 3, 3, dtype=f64, device=pos.device, requires_grad=True)
            sym = 0.5 * (strain + strain.transpose(1, 2))
            pos_s = pos + torch.einsum("ni,nij->nj", pos, sym[batch])
            cell_s = cell + torch.bmm(cell, sym)
        else:
            strain = None
            pos_s, cell_s = pos, cell

        edge_index, shifts = self._edges(inp, pos)
        from tensormol.ops import edge_vectors

        vec = edge_vectors(pos_s, edge_index, shifts.to(f64), cell_s, batch)
        length = torch.linalg.vector_norm(vec, dim=-1)
        if inp.edge_index is not None and edge_index.shape[1] > 0:
            keep = length <= self.cutoff
            if not bool(keep.all()):
                edge_index, shifts = edge_index[:, keep], shifts[keep]
                vec, length = vec[keep], length[keep]
        if length.numel() and bool((length <= 1e-8).any()):
            e = int((length <= 1e-8).nonzero()[0, 0])
            i, j = int(edge_index[0, e]), int(edge_index[1, e])
            raise ValueError(
                f"positions: atoms {i} and {j} coincide (distance {float(length[e]):.2e} Å); "
                "a model cannot evaluate overlapping atoms"
            )

        n_atoms = pos.shape[0]
        species = self.species_index(inp.atomic_numbers)
        ref_nodes = torch.arange(self.num_species, device=pos.device)
        graph = AtomicGraph(
            species=torch.cat([species, ref_nodes]),
            atomic_numbers=torch.cat([inp.atomic_numbers, self.species.to(pos.device)]),
            edge_index=edge_index,
            edge_vectors=vec,
            edge_lengths=length,
            cell_shifts=shifts,
            num_atoms=n_atoms,
        )
        eps = self.atomic_energies(graph).to(f64)
        if eps.shape != (n_atoms + self.num_species,):
            raise RuntimeError(
                f"{type(self).__name__}.atomic_energies returned shape {tuple(eps.shape)}, "
                f"expected ({n_atoms + self.num_species},)"
            )
        ref = self.reference_energies.to(f64)
        scale = self.energy_scale.to(f64)
        per_atom = scale * (eps[:n_atoms] - eps[n_atoms:][species]) + ref[species]
        energy = torch.zeros(n_struct, dtype=f64, device=pos.device).index_add(0, batch, per_atom)
        out: dict[str, Tensor] = {K.ENERGY: energy}

        if compute_forces or compute_stress:
            wrt = ([pos] if compute_forces else []) + ([strain] if strain is not None else [])
            grads = torch.autograd.grad(
                energy.sum(), wrt, create_graph=create_graph, allow_unused=True
            )
            grads = [torch.zeros_like(w) if g is None else g for g, w in zip(grads, wrt)]
            if compute_forces:
                out[K.FORCES] = -grads[0]
            if strain is not None:
                virial = -grads[-1]
                out[K.VIRIAL] = virial
                out[K.STRESS] = -virial / volume[:, None, None]
        if not create_graph and (compute_forces or compute_stress):
            out = {k: v.detach() for k, v in out.items()}
        return out

    # ------------------------------------------------------------------ helpers
    def _edges(self, inp: _Inputs, pos: Tensor) -> tuple[Tensor, Tensor]:
        if inp.edge_index is not None:
            shifts = inp.cell_shifts
            if shifts is None:
                shifts = torch.zeros(inp.edge_index.shape[1], 3, dtype=torch.int64,
                                     device=pos.device)
            return inp.edge_index, shifts
        from tensormol.ops import neighbor_list

        edge_index, shifts = neighbor_list(
            pos.detach(), self.cutoff, cell=inp.cell, pbc=inp.pbc, batch=inp.batch
        )
        return edge_index, shifts

    def _read_batch(self, batch: Mapping[str, Tensor]) -> _Inputs:
        if not isinstance(batch, Mapping):
            raise TypeError(
                f"batch must be a dict[str, Tensor] keyed by tensormol.keys, got "
                f"{type(batch).__name__}"
            )
        for key in (K.POSITIONS, K.ATOMIC_NUMBERS):
            if key not in batch:
                raise KeyError(
                    f"batch has no {key!r} entry ({K.FIELD_DOCS[key]}); it has: "
                    f"{', '.join(map(repr, batch)) or 'nothing'}"
                )
        pos = check_tensor(batch[K.POSITIONS], f"batch[{K.POSITIONS!r}]", shape=(-1, 3),
                           floating=True)
        check_finite(pos, f"batch[{K.POSITIONS!r}]")
        pos = pos.to(torch.float64)
        n = pos.shape[0]
        dev = pos.device
        z = check_tensor(batch[K.ATOMIC_NUMBERS], f"batch[{K.ATOMIC_NUMBERS!r}]", shape=(n,))
        if z.is_floating_point() or z.dtype == torch.bool:
            raise TypeError(
                f"batch[{K.ATOMIC_NUMBERS!r}] must be an integer tensor, got dtype {z.dtype}"
            )
        z = z.to(device=dev, dtype=torch.int64)
        if K.BATCH in batch and batch[K.BATCH] is not None:
            b = check_tensor(batch[K.BATCH], f"batch[{K.BATCH!r}]", shape=(n,))
            if b.is_floating_point():
                raise TypeError(f"batch[{K.BATCH!r}] must be an integer tensor, got {b.dtype}")
            b = b.to(device=dev, dtype=torch.int64)
        else:
            b = torch.zeros(n, dtype=torch.int64, device=dev)
        if K.CELL in batch and batch[K.CELL] is not None:
            cell = check_tensor(batch[K.CELL], f"batch[{K.CELL!r}]", floating=True)
            if cell.shape == (3, 3):
                cell = cell.unsqueeze(0)
            check_tensor(cell, f"batch[{K.CELL!r}]", shape=(-1, 3, 3))
            check_finite(cell, f"batch[{K.CELL!r}]")
            cell = cell.to(device=dev, dtype=torch.float64)
            n_struct = cell.shape[0]
        elif K.NUM_ATOMS in batch and batch[K.NUM_ATOMS] is not None:
            n_struct = int(batch[K.NUM_ATOMS].shape[0])
            cell = None
        else:
            n_struct = int(b.max()) + 1 if n else 1
            cell = None
        if cell is None:
            cell = torch.zeros(n_struct, 3, 3, dtype=torch.float64, device=dev)
        if n and (int(b.min()) < 0 or int(b.max()) >= n_struct):
            raise ValueError(
                f"batch[{K.BATCH!r}] must hold structure indices in [0, {n_struct}), got values "
                f"in [{int(b.min())}, {int(b.max())}]"
            )
        if K.PBC in batch and batch[K.PBC] is not None:
            pbc = torch.as_tensor(batch[K.PBC], device=dev)
            if pbc.shape == (3,):
                pbc = pbc.unsqueeze(0).expand(n_struct, 3)
            check_tensor(pbc, f"batch[{K.PBC!r}]", shape=(n_struct, 3))
            pbc = pbc.to(torch.bool)
        else:
            pbc = torch.zeros(n_struct, 3, dtype=torch.bool, device=dev)
        if bool(pbc.any()):
            row_zero = (cell.abs().sum(-1) == 0) & pbc
            if bool(row_zero.any()):
                s, d = (int(v) for v in row_zero.nonzero()[0])
                raise ValueError(
                    f"structure {s} is periodic along lattice vector {d} but its cell row {d} is "
                    "zero; give a cell or set pbc False there"
                )
        edge_index = batch.get(K.EDGE_INDEX)
        shifts = batch.get(K.CELL_SHIFTS)
        if edge_index is not None:
            edge_index = check_tensor(edge_index, f"batch[{K.EDGE_INDEX!r}]", shape=(2, -1))
            edge_index = edge_index.to(device=dev, dtype=torch.int64)
            if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= n):
                raise ValueError(
                    f"batch[{K.EDGE_INDEX!r}] must hold atom indices in [0, {n}), got values in "
                    f"[{int(edge_index.min())}, {int(edge_index.max())}]"
                )
            if shifts is not None:
                shifts = check_tensor(shifts, f"batch[{K.CELL_SHIFTS!r}]",
                                      shape=(edge_index.shape[1], 3))
                shifts = shifts.to(dev)
                if shifts.is_floating_point():
                    shifts = shifts.round()
                shifts = shifts.to(torch.int64)
        return _Inputs(pos, z, b, cell, pbc, n_struct, edge_index, shifts)

    def extra_repr(self) -> str:
        zs = ", ".join(element_symbol(z) for z in self.atomic_numbers)
        return f"cutoff={self.cutoff}, elements=[{zs}]"


def _check_atomic_numbers(atomic_numbers: Any) -> list[int]:
    try:
        zs = [int(z) for z in atomic_numbers]
    except TypeError:
        raise TypeError(
            f"atomic_numbers must be a sequence of integers, got {atomic_numbers!r}"
        ) from None
    if not zs:
        raise ValueError("atomic_numbers must name at least one element, got an empty sequence")
    bad = [z for z in zs if not 1 <= z <= _MAX_Z]
    if bad:
        raise ValueError(f"atomic_numbers must lie in 1..{_MAX_Z}, got {bad}")
    if len(set(zs)) != len(zs):
        raise ValueError(f"atomic_numbers must be unique, got {zs}")
    return sorted(zs)
