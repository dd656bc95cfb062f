"""Per-ligand free energies from a network of relative edges (and optional absolute anchors).

Each edge e = (a → b) measures ΔΔG_e = G_b − G_a with standard error σ_e; each anchor i measures
G_i with σ_i. With independent Gaussian errors the maximum-likelihood G minimises

    Σ_e (G_b − G_a − ΔΔG_e)² / σ_e²  +  Σ_i (G_i − A_i)² / σ_i²,

a weighted least-squares problem with Fisher matrix F = Aᵀ W A; its inverse is the covariance
of the estimates (Xu 2019, J. Chem. Theory Comput. 15, 4432; cinnabar's ``stats.mle``). A
connected component without an anchor fixes only differences: there F is singular (a graph
Laplacian) and its pseudo-inverse gives the estimate and covariance in the gauge where the
component's ΔG sum to zero. Cycle closures are given for one basis of independent cycles (one
per edge outside a spanning tree: m − n + c of them); failed edges are listed, never dropped
silently, and ligands they leave unconnected are reported.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["NetworkEstimate", "network_estimate"]


@dataclass
class NetworkEstimate:
    """Maximum-likelihood per-ligand ΔG of an edge network.

    Attributes
    ----------
    ligands : list of str
        Ligands in the order of ``dg``/``covariance``.
    dg, sigma : dict str -> float
        Estimate and standard error per ligand (unit of the input). Absolute where the ligand's
        component has an anchor; else relative, with the component's estimates summing to zero
        (or shifted by ``shift_to``). NaN and inf for a ligand that no successful edge or anchor
        reaches.
    covariance : numpy.ndarray, shape (n, n), float64
        Covariance of the estimates (zero between components).
    components : list of list of str
        Connected components (by edges that did not fail).
    anchored : dict str -> bool
        Whether each ligand's component has an absolute anchor (its ΔG is absolute).
    cycles : list of dict
        One per independent cycle: ``ligands`` (closed path), ``edges`` (indices into the input
        edges, with sign ``+1`` when traversed a → b), ``closure`` (sum of signed ΔΔG, ideally
        zero) and ``sigma`` (its standard error from the edge σ).
    failed_edges : list of dict
        Edges that failed (``a``, ``b``, ``error``); not used in the fit.
    residuals : list of dict
        Per used edge: ``a``, ``b``, ``ddg``, ``fit`` (G_b − G_a) and ``residual``.
    unit : str
        Unit of every value.
    """

    ligands: list[str]
    dg: dict[str, float]
    sigma: dict[str, float]
    covariance: np.ndarray
    components: list[list[str]]
    anchored: dict[str, bool]
    cycles: list[dict[str, Any]] = field(default_factory=list)
    failed_edges: list[dict[str, Any]] = field(default_factory=list)
    residuals: list[dict[str, Any]] = field(default_factory=list)
    unit: str = "kcal/mol"

    @property
    def disconnected(self) -> bool:
        """True when the ligands form more than one connected component."""
        return len(self.components) > 1

    def ddg(self, a: str, b: str) -> tuple[float, float]:
        """Estimated G_b − G_a and its standard error (covariance included)."""
        for name in (a, b):
            if name not in self.dg:
                raise KeyError(f"ligand {name!r} is not in the network; ligands: "
                               f"{', '.join(self.ligands)}")
        if _component_of(self.components, a) != _component_of(self.components, b):
            raise ValueError(f"ligands {a!r} and {b!r} are in different connected components; "
                             "no relative free energy between them can be estimated")
        i, j = self.ligands.index(a), self.ligands.index(b)
        c = self.covariance
        var = c[i, i] + c[j, j] - 2 * c[i, j]
        return self.dg[b] - self.dg[a], math.sqrt(max(var, 0.0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "unit": self.unit,
            "ligands": [{"name": n, "dg": _finite_or_none(self.dg[n]),
                         "sigma": _finite_or_none(self.sigma[n]), "absolute": self.anchored[n]}
                        for n in self.ligands],
            "covariance": [[_finite_or_none(v) for v in row] for row in self.covariance],
            "components": self.components,
            "cycles": self.cycles,
            "failed_edges": self.failed_edges,
            "residuals": self.residuals,
        }


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _component_of(components: list[list[str]], name: str) -> int:
    for i, comp in enumerate(components):
        if name in comp:
            return i
    return -1


def _parse_edge(i: int, edge: Any) -> dict[str, Any]:
    if isinstance(edge, Mapping):
        a = edge.get("a", edge.get("ligand_a"))
        b = edge.get("b", edge.get("ligand_b"))
        ddg, sigma, error = edge.get("ddg"), edge.get("sigma"), edge.get("error")
    elif isinstance(edge, (tuple, list)) and len(edge) in (4, 5):
        a, b, ddg, sigma = edge[:4]
        error = edge[4] if len(edge) == 5 else None
    else:
        raise ValueError(f"edges[{i}] must be a mapping with keys a, b, ddg, sigma (optional "
                         f"error) or a tuple (a, b, ddg, sigma), got {edge!r}")
    if a is None or b is None:
        raise ValueError(f"edges[{i}] must name both ligands (keys 'a' and 'b'), got {edge!r}")
    a, b = str(a), str(b)
    if a == b:
        raise ValueError(f"edges[{i}] connects ligand {a!r} to itself")
    if error is None:
        try:
            ddg_f, sigma_f = float(ddg), float(sigma)
        except (TypeError, ValueError):
            error = f"no result (ddg={ddg!r}, sigma={sigma!r})"
        else:
            if not (math.isfinite(ddg_f) and math.isfinite(sigma_f)):
                error = f"non-finite result (ddg={ddg!r}, sigma={sigma!r})"
            elif sigma_f <= 0:
                raise ValueError(f"edges[{i}] ({a} -> {b}) has sigma {sigma!r}; a standard error "
                                 "must be > 0 (give a floor such as 0.1 kcal/mol)")
    if error is not None:
        return {"a": a, "b": b, "error": str(error), "index": i}
    return {"a": a, "b": b, "ddg": ddg_f, "sigma": sigma_f, "index": i}


def _components(names: list[str], edges: list[dict[str, Any]]) -> list[list[str]]:
    parent = {n: n for n in names}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for e in edges:
        ra, rb = find(e["a"]), find(e["b"])
        if ra != rb:
            parent[rb] = ra
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(find(n), []).append(n)
    return list(groups.values())


def _cycle_basis(names: list[str], edges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fundamental cycles of a spanning forest: one per edge outside the forest."""
    adj: dict[str, list[tuple[str, int]]] = {n: [] for n in names}
    for k, e in enumerate(edges):
        adj[e["a"]].append((e["b"], k))
        adj[e["b"]].append((e["a"], k))
    parent: dict[str, tuple[str | None, int | None]] = {}
    depth: dict[str, int] = {}
    tree: set[int] = set()
    for root in names:
        if root in parent:
            continue
        parent[root], depth[root] = (None, None), 0
        queue = [root]
        while queue:
            u = queue.pop(0)
            for v, k in adj[u]:
                if v not in parent:
                    parent[v], depth[v] = (u, k), depth[u] + 1
                    tree.add(k)
                    queue.append(v)
    cycles = []
    for k, e in enumerate(edges):
        if k in tree:
            continue
        # Closed walk: a -> b along the edge, then b back to a through the tree.
        a, b = e["a"], e["b"]
        up_b, up_a = [b], [a]
        x, y = b, a
        while depth[x] > depth[y]:
            x = parent[x][0]  # type: ignore[assignment]
            up_b.append(x)
        while depth[y] > depth[x]:
            y = parent[y][0]  # type: ignore[assignment]
            up_a.append(y)
        while x != y:
            x, y = parent[x][0], parent[y][0]  # type: ignore[assignment]
            up_b.append(x)
            up_a.append(y)
        path = up_b + up_a[-2::-1]  # b ... lca ... a
        walk = [a] + path  # a -> b -> ... -> a
        used, total, var = [], 0.0, 0.0
        for u, v in zip(walk[:-1], walk[1:]):
            if (u, v) == (a, b) and not used:
                kk = k
            else:
                kk = parent[v][1] if parent[v][0] == u else parent[u][1]  # type: ignore[index]
            ek = edges[kk]
            sign = 1 if (ek["a"], ek["b"]) == (u, v) else -1
            used.append({"edge": ek["index"], "sign": sign})
            total += sign * ek["ddg"]
            var += ek["sigma"] ** 2
        cycles.append({"ligands": walk, "edges": used, "closure": total,
                       "sigma": math.sqrt(var)})
    return cycles


def network_estimate(edges: Sequence[Any],
                     anchors: Mapping[str, tuple[float, float]] | None = None, *,
                     ligands: Iterable[str] | None = None,
                     shift_to: Mapping[str, float] | None = None,
                     unit: str = "kcal/mol") -> NetworkEstimate:
    """Maximum-likelihood per-ligand ΔG from relative edges and optional absolute anchors.

    Parameters
    ----------
    edges : sequence
        Each a mapping ``{"a", "b", "ddg", "sigma"}`` (``ddg`` = G_b − G_a, ``sigma`` > 0; an
        ``"error"`` key, or a missing/non-finite ``ddg``, marks the edge failed) or a tuple
        ``(a, b, ddg, sigma)``.
    anchors : mapping str -> (dg, sigma), optional
        Absolute ΔG measurements of some ligands (e.g. absolute binding legs).
    ligands : iterable of str, optional
        Ligands to report even when no successful edge reaches them.
    shift_to : mapping str -> float, optional
        For components without an anchor: shift the estimates so that their mean over the
        ligands named here equals the mean of these values (e.g. experiment), the usual way to
        compare relative estimates with absolute data. Uncertainties are unchanged.
    unit : str
        Unit label of the values (they are not converted).

    Returns
    -------
    NetworkEstimate
    """
    anchors = dict(anchors or {})
    parsed = [_parse_edge(i, e) for i, e in enumerate(edges)]
    good = [e for e in parsed if "error" not in e]
    failed = [{"a": e["a"], "b": e["b"], "error": e["error"], "edge": e["index"]}
              for e in parsed if "error" in e]
    names: list[str] = []
    for n in [*(ligands or []), *(x for e in parsed for x in (e["a"], e["b"])), *anchors]:
        if n not in names:
            names.append(str(n))
    for n, val in anchors.items():
        try:
            g, s = float(val[0]), float(val[1])
        except (TypeError, ValueError, IndexError) as err:
            raise ValueError(f"anchors[{n!r}] must be (dg, sigma), got {val!r}") from err
        if not (math.isfinite(g) and math.isfinite(s)) or s <= 0:
            raise ValueError(f"anchors[{n!r}] must be finite with sigma > 0, got {val!r}")
    if not names:
        raise ValueError("network_estimate needs at least one edge or anchor")
    index = {n: i for i, n in enumerate(names)}
    comps = _components(names, good)
    n = len(names)
    g_all = np.zeros(n)
    cov_all = np.zeros((n, n))
    anchored: dict[str, bool] = {}
    for comp in comps:
        idx = [index[x] for x in comp]
        local = {x: i for i, x in enumerate(comp)}
        m = len(comp)
        fisher = np.zeros((m, m))
        rhs = np.zeros(m)
        for e in good:
            if e["a"] not in local:
                continue
            i, j, w = local[e["a"]], local[e["b"]], 1.0 / e["sigma"] ** 2
            fisher[i, i] += w
            fisher[j, j] += w
            fisher[i, j] -= w
            fisher[j, i] -= w
            rhs[j] += w * e["ddg"]
            rhs[i] -= w * e["ddg"]
        has_anchor = any(x in anchors for x in comp)
        for x in comp:
            anchored[x] = has_anchor
            if x in anchors:
                w = 1.0 / float(anchors[x][1]) ** 2
                fisher[local[x], local[x]] += w
                rhs[local[x]] += w * float(anchors[x][0])
        cov = np.linalg.inv(fisher) if has_anchor else np.linalg.pinv(fisher, hermitian=True)
        g = cov @ rhs
        if not has_anchor and shift_to:
            known = [x for x in comp if x in shift_to]
            if known:
                g += np.mean([float(shift_to[x]) for x in known]) - np.mean(
                    [g[local[x]] for x in known])
        if m == 1 and not has_anchor:
            # A ligand no successful edge or anchor reaches: nothing is known about it.
            g, cov = np.array([np.nan]), np.array([[np.inf]])
        g_all[idx] = g
        cov_all[np.ix_(idx, idx)] = cov
    sigma = np.sqrt(np.clip(np.diag(cov_all), 0.0, None))
    residuals = [{"a": e["a"], "b": e["b"], "ddg": e["ddg"],
                  "fit": float(g_all[index[e["b"]]] - g_all[index[e["a"]]]),
                  "residual": float(e["ddg"] - (g_all[index[e["b"]]] - g_all[index[e["a"]]]))}
                 for e in good]
    return NetworkEstimate(
        ligands=names, dg={x: float(g_all[index[x]]) for x in names},
        sigma={x: float(sigma[index[x]]) for x in names}, covariance=cov_all,
        components=comps, anchored=anchored, cycles=_cycle_basis(names, good),
        failed_edges=failed, residuals=residuals, unit=unit,
    )
