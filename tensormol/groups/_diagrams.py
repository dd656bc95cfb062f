"""Diagrams on two rows of vertices: set partitions, Brauer diagrams and Levi-Civita diagrams.

A diagram with ``l`` top vertices and ``k`` bottom vertices stands for a linear map
``(R^n)^{⊗k} → (R^n)^{⊗l}``. Vertices are numbered ``0 … l-1`` along the top row (the output
legs, left to right) and ``l … l+k-1`` along the bottom row (the input legs, left to right),
as in Pearce-Crump's papers (his ``1 … l`` and ``l+1 … l+k``).

- A *set partition* diagram (S_n, partition algebra) is a set partition of the ``l+k`` vertices.
- A *Brauer* diagram (O(n), Sp(n)) is a set partition whose blocks are all pairs.
- A *Levi-Civita* diagram, Pearce-Crump's ``(l+k)\\n`` diagram (SO(n)), has ``n`` *free*
  vertices tied to one Levi-Civita symbol, the other ``l+k-n`` vertices being paired.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .._validate import check_int_ge

__all__ = [
    "Diagram",
    "set_partition_diagrams",
    "brauer_diagrams",
    "levi_civita_diagrams",
    "compose",
]


@dataclass(frozen=True)
class Diagram:
    """A diagram with ``l`` top (output) and ``k`` bottom (input) vertices.

    Parameters
    ----------
    k : int
        Number of bottom vertices (input tensor order).
    l : int
        Number of top vertices (output tensor order).
    blocks : tuple of tuple of int
        Connected components among the non-free vertices, each a sorted tuple; ordered by their
        smallest vertex. Vertex ``v < l`` is top vertex ``v``; vertex ``l + j`` is bottom vertex
        ``j``.
    free : tuple of int
        Vertices attached to the Levi-Civita symbol (SO(n) diagrams), sorted; empty otherwise.
    """

    k: int
    l: int
    blocks: tuple[tuple[int, ...], ...]
    free: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_int_ge(self.k, "k", 0)
        check_int_ge(self.l, "l", 0)
        blocks = tuple(tuple(sorted(int(v) for v in b)) for b in self.blocks)
        blocks = tuple(sorted(blocks, key=lambda b: b[0] if b else -1))
        free = tuple(sorted(int(v) for v in self.free))
        seen = [v for b in blocks for v in b] + list(free)
        if any(len(b) == 0 for b in blocks):
            raise ValueError(f"blocks must be non-empty, got {self.blocks!r}")
        if sorted(seen) != list(range(self.k + self.l)):
            raise ValueError(
                f"blocks and free vertices must cover 0..{self.k + self.l - 1} exactly once "
                f"(k={self.k}, l={self.l}), got blocks={self.blocks!r}, free={self.free!r}"
            )
        object.__setattr__(self, "blocks", blocks)
        object.__setattr__(self, "free", free)

    @property
    def num_vertices(self) -> int:
        return self.k + self.l

    @property
    def num_blocks(self) -> int:
        """Number of blocks (free vertices not counted)."""
        return len(self.blocks)

    @property
    def is_brauer(self) -> bool:
        """True when every block is a pair and there are no free vertices."""
        return not self.free and all(len(b) == 2 for b in self.blocks)

    def is_top(self, v: int) -> bool:
        return v < self.l

    def label(self) -> str:
        """A readable label: top vertices ``1 … l``, bottom vertices ``1' … k'``."""

        def name(v: int) -> str:
            return str(v + 1) if v < self.l else f"{v - self.l + 1}'"

        parts = ["{" + ",".join(name(v) for v in b) + "}" for b in self.blocks]
        if self.free:
            parts.append("ε(" + ",".join(name(v) for v in self.free) + ")")
        return " ".join(parts) if parts else "∅"

    def __repr__(self) -> str:
        return f"Diagram(k={self.k}, l={self.l}, {self.label()})"


def _restricted_growth_strings(m: int, max_blocks: int):
    """All set partitions of ``range(m)`` as restricted growth strings with ≤ max_blocks blocks."""
    if m == 0:
        yield ()
        return
    a = [0] * m

    def rec(i: int, used: int):
        if i == m:
            yield tuple(a)
            return
        for b in range(min(used + 1, max_blocks)):
            a[i] = b
            yield from rec(i + 1, max(used, b + 1))

    yield from rec(1, 1) if max_blocks >= 1 else iter(())


@lru_cache(maxsize=256)
def _set_partitions_cached(k: int, l: int, max_blocks: int) -> tuple[Diagram, ...]:
    m = k + l
    out = []
    for rgs in _restricted_growth_strings(m, max_blocks):
        nb = (max(rgs) + 1) if rgs else 0
        blocks = [[] for _ in range(nb)]
        for v, b in enumerate(rgs):
            blocks[b].append(v)
        out.append(Diagram(k, l, tuple(tuple(b) for b in blocks)))
    return tuple(out)


def set_partition_diagrams(k: int, l: int, max_blocks: int | None = None) -> tuple[Diagram, ...]:
    """All set-partition diagrams of ``l + k`` vertices, optionally with at most ``max_blocks``.

    Parameters
    ----------
    k, l : int
        Bottom and top row sizes, ``>= 0``.
    max_blocks : int, optional
        Keep only partitions with at most this many blocks (``n`` for S_n when ``n < k + l``).

    Returns
    -------
    tuple of Diagram
        In restricted-growth-string order; there are Bell(k + l) of them without a bound.
    """
    check_int_ge(k, "k", 0)
    check_int_ge(l, "l", 0)
    mb = k + l if max_blocks is None else check_int_ge(max_blocks, "max_blocks", 0)
    return _set_partitions_cached(k, l, min(mb, k + l))


def _perfect_matchings(points: tuple[int, ...]):
    if not points:
        yield ()
        return
    first = points[0]
    for i in range(1, len(points)):
        rest = points[1:i] + points[i + 1 :]
        for m in _perfect_matchings(rest):
            yield ((first, points[i]),) + m


@lru_cache(maxsize=256)
def _brauer_cached(k: int, l: int) -> tuple[Diagram, ...]:
    m = k + l
    if m % 2:
        return ()
    return tuple(Diagram(k, l, pairs) for pairs in _perfect_matchings(tuple(range(m))))


def brauer_diagrams(k: int, l: int) -> tuple[Diagram, ...]:
    """All Brauer diagrams (perfect matchings) of ``l + k`` vertices; ``(k+l-1)!!`` of them.

    Empty when ``k + l`` is odd; one empty diagram when ``k = l = 0``.
    """
    check_int_ge(k, "k", 0)
    check_int_ge(l, "l", 0)
    return _brauer_cached(k, l)


@lru_cache(maxsize=256)
def _levi_civita_cached(k: int, l: int, n: int) -> tuple[Diagram, ...]:
    m = k + l
    if m < n or (m - n) % 2:
        return ()
    out = []
    for free in itertools.combinations(range(m), n):
        rest = tuple(v for v in range(m) if v not in free)
        for pairs in _perfect_matchings(rest):
            out.append(Diagram(k, l, pairs, free=free))
    return tuple(out)


def levi_civita_diagrams(k: int, l: int, n: int) -> tuple[Diagram, ...]:
    """Pearce-Crump's ``(l+k)\\n`` diagrams: ``n`` free vertices on ε, the rest paired.

    They exist only when ``k + l >= n`` and ``k + l - n`` is even; there are
    ``C(k+l, n) (k+l-n-1)!!`` of them.
    """
    check_int_ge(k, "k", 0)
    check_int_ge(l, "l", 0)
    check_int_ge(n, "n", 1)
    return _levi_civita_cached(k, l, n)


_J2 = np.array([[0.0, 1.0], [-1.0, 0.0]])


def compose(top: Diagram, bottom: Diagram, *, form: str = "orthogonal") -> tuple[Diagram, int, int]:
    """Compose two diagrams: ``top ∘ bottom`` (first ``bottom``, then ``top``).

    The matrices obey ``M(top) @ M(bottom) = sign * n**c * M(composed)``, with ``c`` the number of
    components left in the middle row and removed.

    Parameters
    ----------
    top, bottom : Diagram
        Set-partition (or Brauer) diagrams with ``top.k == bottom.l``; Levi-Civita diagrams do
        not compose to a single diagram and are refused.
    form : {"orthogonal", "symplectic"}
        With ``"symplectic"`` both diagrams must be Brauer diagrams and the matrices are the
        Sp(n) ones (``J`` on same-row pairs); ``sign`` then tracks the orientation of ``J``.

    Returns
    -------
    composed : Diagram
        With ``k = bottom.k`` and ``l = top.l``.
    c : int
        Number of removed middle components (closed loops for Brauer diagrams).
    sign : int
        ``+1`` for ``form="orthogonal"``; ``±1`` for ``form="symplectic"``.
    """
    if not isinstance(top, Diagram) or not isinstance(bottom, Diagram):
        raise TypeError("compose expects two Diagram objects")
    if top.free or bottom.free:
        raise ValueError("Levi-Civita diagrams do not compose to a single diagram")
    if top.k != bottom.l:
        raise ValueError(
            f"cannot compose: top.k={top.k} must equal bottom.l={bottom.l} (the middle row)"
        )
    if form not in ("orthogonal", "symplectic"):
        raise ValueError(f"form must be 'orthogonal' or 'symplectic', got {form!r}")
    if form == "symplectic" and not (top.is_brauer and bottom.is_brauer):
        raise ValueError("form='symplectic' needs two Brauer diagrams")
    lt, kb, mid = top.l, bottom.k, top.k
    # Global ids: result top 0..lt-1, result bottom lt..lt+kb-1, middle lt+kb..lt+kb+mid-1.
    def gid_top(v: int) -> int:
        return v if v < lt else lt + kb + (v - lt)

    def gid_bottom(v: int) -> int:
        return lt + kb + v if v < bottom.l else lt + (v - bottom.l)

    total = lt + kb + mid
    parent = list(range(total))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for d, gid in ((top, gid_top), (bottom, gid_bottom)):
        for b in d.blocks:
            for v in b[1:]:
                union(gid(b[0]), gid(v))
    comps: dict[int, list[int]] = {}
    for v in range(total):
        comps.setdefault(find(v), []).append(v)
    blocks, c = [], 0
    for members in comps.values():
        outer = [v for v in members if v < lt + kb]
        if outer:
            blocks.append(tuple(outer))
        else:
            c += 1
    composed = Diagram(kb, lt, tuple(blocks))
    sign = 1
    if form == "symplectic":
        sign = _symplectic_sign(top, bottom, gid_top, gid_bottom, lt, kb, composed)
    return composed, c, sign


def _symplectic_sign(top, bottom, gid_top, gid_bottom, lt, kb, composed) -> int:
    """Sign of the Sp(n) composition, found by walking each path and loop with 2×2 blocks.

    ``J = [[0, I], [-I, 0]] = J2 ⊗ I_{n/2}``, so every chain of ``I``, ``J``, ``Jᵀ`` reduces to
    ``±`` a canonical factor that the ``2 × 2`` version ``J2`` already decides.
    """
    # Oriented edges: adj[u] holds (edge id, v, F) meaning factor F[i_u, i_v]. Edge ids, not
    # vertex pairs, identify edges: a loop of length two has two edges between the same vertices.
    adj: dict[int, list[tuple[int, int, np.ndarray]]] = {}
    num_edges = 0
    for d, gid in ((top, gid_top), (bottom, gid_bottom)):
        for p, q in d.blocks:
            f = _J2 if d.is_top(p) == d.is_top(q) else np.eye(2)
            u, v = gid(p), gid(q)
            adj.setdefault(u, []).append((num_edges, v, f))
            adj.setdefault(v, []).append((num_edges, u, f.T))
            num_edges += 1
    used = [False] * num_edges
    outer = lt + kb

    def walk(start: int) -> tuple[int, np.ndarray]:
        prod, cur = np.eye(2), start
        while True:
            step = next(((e, v, f) for e, v, f in adj[cur] if not used[e]), None)
            if step is None:
                return cur, prod
            e, cur, f = step
            used[e] = True
            prod = prod @ f
            if cur == start or cur < outer:  # closed a loop, or reached the other end of a path
                return cur, prod

    sign = 1
    for p, q in composed.blocks:
        end, prod = walk(p)
        canon = _J2 if composed.is_top(p) == composed.is_top(q) else np.eye(2)
        s = float(np.sum(prod * canon) / np.sum(canon * canon))
        if end != q or not np.allclose(prod, s * canon) or abs(abs(s) - 1.0) > 1e-12:
            raise AssertionError("internal error: symplectic path did not reduce to ±canonical")
        sign *= int(round(s))
    for v in sorted(adj):
        if v >= outer and any(not used[e] for e, _, _ in adj[v]):
            _, prod = walk(v)
            sign *= int(round(np.trace(prod) / 2.0))
    return sign
