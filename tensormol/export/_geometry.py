"""Geometries a potential cannot evaluate, detected the same way on every inference route.

Two things go wrong in molecular dynamics with a short-ranged model:

* **Overlapping atoms** (distance ≤ :data:`OVERLAP_TOL`): every model divides by distances, so
  the eager model refuses them and a traced graph would return NaN.
* **A molecule falling apart**: once a fragment is farther than the cutoff from the rest of the
  molecule it belonged to, the model sees no interaction between them at all, so the run
  continues on a potential that no longer binds them. A fragment without neighbours is not an
  error of the *potential* (an isolated atom has a well-defined energy, its reference energy,
  and zero force; every route returns that), so it is detected relative to the start:
  :class:`ConnectivityMonitor` records which atoms are connected through pairs within the cutoff
  at the first evaluation, and reports when such a group splits. Separate molecules that were
  already out of each other's range at the start are never reported.

Both raise :class:`GeometryError`, whose message names the atoms with 0-based indices. OpenMM
turns an exception raised in a ``PythonForce`` into an ``openmm.OpenMMException`` holding only
the message, so :meth:`GeometryError.from_exception` recognises the message again (an MD driver
then adds the step with :meth:`GeometryError.at_step`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["GeometryError", "OVERLAP_TOL", "check_overlap", "check_edge_overlap", "overlap_error",
           "ConnectivityMonitor"]

#: Distance (Å) at or below which two atoms overlap (the neighbour list's default tolerance).
OVERLAP_TOL = 1e-8

_PREFIX = "unphysical geometry"


class GeometryError(ValueError):
    """A configuration a potential cannot (or can no longer meaningfully) evaluate.

    Attributes
    ----------
    kind : {"overlap", "fell apart"}
    atoms : tuple of int
        0-based indices of the atoms concerned (the overlapping pair, or the fragment).
    step : int or None
        MD step of the configuration, when the driver knows it (:meth:`at_step`).
    """

    def __init__(self, message: str, *, kind: str = "", atoms: tuple[int, ...] = (),
                 step: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.atoms = tuple(int(a) for a in atoms)
        self.step = step

    @classmethod
    def from_exception(cls, err: BaseException) -> GeometryError | None:
        """The :class:`GeometryError` behind ``err`` (itself, or an ``OpenMMException`` raised
        while OpenMM called a tensormol force), else ``None``."""
        if isinstance(err, GeometryError):
            return err
        text = str(err).strip()
        if not text.startswith(_PREFIX):
            return None
        kind = text[len(_PREFIX):].split(")", 1)[0].lstrip(" (")
        return cls(text, kind=kind)

    def at_step(self, step: int) -> GeometryError:
        """The same error, its message saying at which MD step it happened."""
        text = str(self)
        head, sep, tail = text.partition(": ")
        return GeometryError(f"{head} at step {int(step)}{sep}{tail}", kind=self.kind,
                             atoms=self.atoms, step=int(step))


def _minimum_image(d: np.ndarray, cell: np.ndarray | None) -> np.ndarray:
    """Difference vectors (..., 3) Å reduced to the minimum image of a reduced-form ``cell``."""
    if cell is None:
        return d
    d = d.copy()
    for k in (2, 1, 0):  # OpenMM's reduced form: c, then b, then a
        n = np.round(d[..., k] / cell[k, k])
        d -= n[..., None] * cell[k]
    return d


def check_overlap(pos: np.ndarray, pairs: np.ndarray | None = None,
                  cell: np.ndarray | None = None) -> None:
    """Raise :class:`GeometryError` if two atoms are within :data:`OVERLAP_TOL` of each other.

    Parameters
    ----------
    pos : ndarray
        (N, 3) float64 Å.
    pairs : ndarray, optional
        (2, P) int candidate pairs (e.g. a neighbour list); default: all pairs.
    cell : ndarray, optional
        (3, 3) float64 Å periodic box in reduced form (rows), minimum image.
    """
    pos = np.asarray(pos, dtype=np.float64)
    if pairs is None:
        i, j = np.triu_indices(pos.shape[0], k=1)
    else:
        i, j = np.asarray(pairs[0]), np.asarray(pairs[1])
    if i.size == 0:
        return
    d = np.linalg.norm(_minimum_image(pos[j] - pos[i], cell), axis=1)
    bad = np.flatnonzero(d <= OVERLAP_TOL)
    if bad.size:
        raise overlap_error(int(i[bad[0]]), int(j[bad[0]]), float(d[bad[0]]))


def check_edge_overlap(pos, edge_index, shifts, cell=None) -> None:
    """:func:`check_overlap` on a neighbour list (periodic images included).

    Parameters
    ----------
    pos : Tensor
        (N, 3) float64 Å.
    edge_index : Tensor
        (2, E) int64.
    shifts : Tensor
        (E, 3) integer cell shifts.
    cell : Tensor, optional
        (1, 3, 3) or (3, 3) float64 Å, lattice vectors as rows.
    """
    import torch

    if edge_index.shape[1] == 0:
        return
    vec = pos.index_select(0, edge_index[1]) - pos.index_select(0, edge_index[0])
    if cell is not None:
        vec = vec + shifts.to(vec.dtype) @ cell.reshape(3, 3)
    length = torch.linalg.vector_norm(vec, dim=1)
    bad = (length <= OVERLAP_TOL).nonzero()
    if bad.numel():
        e = int(bad[0, 0])
        raise overlap_error(int(edge_index[0, e]), int(edge_index[1, e]), float(length[e]))


def overlap_error(i: int, j: int, distance: float) -> GeometryError:
    """The :class:`GeometryError` of atoms ``i`` and ``j`` (0-based) ``distance`` Å apart."""
    a, b = sorted((int(i), int(j)))
    return GeometryError(
        f"{_PREFIX} (overlap): atoms {a} and {b} (0-based indices) are {distance:.1e} Å "
        "apart; a model cannot evaluate overlapping atoms (check the structure, or the time "
        "step if this happened during MD)", kind="overlap", atoms=(a, b))


def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(i.size, dtype=np.int8), (i, j)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


class ConnectivityMonitor:
    """Detects a molecule falling apart: groups connected through pairs within ``cutoff`` at the
    first configuration must stay connected.

    Each call checks a spanning forest of the groups (N edges, O(N) work); only when one of its
    edges stretched beyond the cutoff is the full pair graph examined (and the forest renewed
    if the group is still connected another way).

    A split is reported once it has lasted ``patience`` consecutive calls: an energy minimizer's
    line search evaluates trial points far off (measured: an ethanol H 5.6 Å from every atom at
    the first trial step of OpenMM's L-BFGS, back at 1.1 Å two evaluations later), whereas a
    molecule that fell apart during MD stays apart.

    Parameters
    ----------
    cutoff : float
        Å, the model's interaction range.
    periodic : bool
        Distances use the minimum image of the box passed to :meth:`check` (boxes at least twice
        the cutoff wide; the check is skipped for smaller ones).
    patience : int
        Consecutive calls a split must last before it is reported.
    """

    def __init__(self, cutoff: float, periodic: bool = False, patience: int = 10) -> None:
        self.cutoff = float(cutoff)
        self.periodic = bool(periodic)
        self.patience = max(1, int(patience))
        self._strikes = 0
        self._groups: np.ndarray | None = None  # start component of every atom
        self._tree: tuple[np.ndarray, np.ndarray] | None = None

    def _pairs_within(self, pos: np.ndarray, cell: np.ndarray | None
                      ) -> tuple[np.ndarray, np.ndarray]:
        import torch

        from tensormol.ops import neighbor_list

        t = torch.as_tensor(pos, dtype=torch.float64)
        c = None if cell is None else torch.as_tensor(cell, dtype=torch.float64)[None]
        pbc = None if cell is None else torch.ones(1, 3, dtype=torch.bool)
        edges, _ = neighbor_list(t, self.cutoff, cell=c, pbc=pbc, check_overlap=False)
        e = edges.numpy()
        keep = e[0] < e[1]
        return e[0][keep], e[1][keep]

    def _forest(self, n: int, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import minimum_spanning_tree

        # Unit weights: any spanning forest will do.
        graph = coo_matrix((np.ones(i.size), (i, j)), shape=(n, n))
        tree = minimum_spanning_tree(graph).tocoo()
        return tree.row.astype(np.int64), tree.col.astype(np.int64)

    def check(self, pos: np.ndarray, cell: np.ndarray | None = None) -> None:
        """Record the groups on the first call; raise :class:`GeometryError` when one split.

        Parameters
        ----------
        pos : ndarray
            (N, 3) float64 Å.
        cell : ndarray, optional
            (3, 3) float64 Å, rows, OpenMM's reduced form (periodic systems).
        """
        pos = np.asarray(pos, dtype=np.float64)
        n = pos.shape[0]
        if self.periodic:
            if cell is None or float(np.diagonal(cell).min()) < 2.0 * self.cutoff:
                return  # minimum image undefined: the model's own list is the only judge
        else:
            cell = None
        if self._groups is None or self._groups.shape[0] != n:
            i, j = self._pairs_within(pos, cell)
            self._groups = _components(n, i, j)
            self._tree = self._forest(n, i, j)
            return
        ti, tj = self._tree
        if ti.size == 0:
            return
        d = np.linalg.norm(_minimum_image(pos[tj] - pos[ti], cell), axis=1)
        if bool((d < self.cutoff).all()):
            self._strikes = 0
            return
        i, j = self._pairs_within(pos, cell)
        now = _components(n, i, j)
        for g in np.unique(self._groups):
            members = np.flatnonzero(self._groups == g)
            parts = np.unique(now[members])
            if parts.size > 1:
                self._strikes += 1
                if self._strikes < self.patience:
                    return  # keep the forest: the next call checks again
                # The largest piece is "the rest"; every other piece is reported.
                sizes = [(int((now[members] == p).sum()), -int(p)) for p in parts]
                largest = -max(sizes)[1]
                frag = [int(a) for a in members[now[members] != largest]]
                shown = ", ".join(map(str, frag[:10])) + (", ..." if len(frag) > 10 else "")
                raise GeometryError(
                    f"{_PREFIX} (fell apart): atom(s) {shown} (0-based indices) have been "
                    f"farther than the model's cutoff ({self.cutoff:g} Å) from the rest of the "
                    f"molecule they belonged to at the start for {self._strikes} consecutive "
                    "evaluations, so the model no longer binds them (check "
                    "the time step and temperature; disable this check for a dissociation you "
                    "intend)", kind="fell apart", atoms=tuple(frag))
        self._strikes = 0
        self._tree = self._forest(n, i, j)
