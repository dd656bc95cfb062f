"""Independent references for the groups tests: dimensions of equivariant-map spaces.

Nothing here uses tensormol.groups: the dimensions come from the equivariance constraints
themselves (Lie-algebra null spaces, null spaces for random group elements) or from Burnside's
lemma, so they can refute the spanning sets.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.linalg import expm
from scipy.sparse import coo_matrix


def symplectic_j(n: int) -> np.ndarray:
    m = n // 2
    j = np.zeros((n, n))
    j[:m, m:] = np.eye(m)
    j[m:, :m] = -np.eye(m)
    return j


def lie_algebra_basis(kind: str, n: int) -> list[np.ndarray]:
    """A basis of so(n) (for O(n), SO(n)) or sp(n) = {J S : S symmetric}."""
    if kind in ("O(n)", "SO(n)"):
        out = []
        for i, j in itertools.combinations(range(n), 2):
            x = np.zeros((n, n))
            x[i, j], x[j, i] = 1.0, -1.0
            out.append(x)
        return out
    if kind == "Sp(n)":
        jm, out = symplectic_j(n), []
        for i in range(n):
            for j in range(i, n):
                s = np.zeros((n, n))
                s[i, j] = s[j, i] = 1.0
                out.append(jm @ s)
        return out
    raise ValueError(kind)


def _torus(kind: str, n: int, m: int) -> np.ndarray:
    """A torus element whose integer weights separate zero from non-zero total weight on m legs."""
    c = [(m + 1) ** j for j in range(n // 2)]
    h = np.zeros((n, n))
    if kind in ("O(n)", "SO(n)"):
        for j, cj in enumerate(c):
            h[2 * j, 2 * j + 1], h[2 * j + 1, 2 * j] = cj, -cj
    else:
        half = n // 2
        for j, cj in enumerate(c):
            h[j, j], h[j + half, j + half] = cj, -cj
    return h


def _apply_leg(t: np.ndarray, a: np.ndarray, leg: int) -> np.ndarray:
    """Apply matrix ``a`` from the left on axis ``leg + 1`` of ``t`` (axis 0 is the basis index)."""
    return np.moveaxis(np.tensordot(t, a, axes=([leg + 1], [1])), -1, leg + 1)


def lie_dimension(kind: str, n: int, k: int, l: int) -> int:
    """dim Hom_G((R^n)^{⊗k}, (R^n)^{⊗l}) for G = O(n), SO(n), Sp(n), from the Lie algebra.

    W is equivariant under the connected group iff ``Σ_top X - Σ_bottom Xᵀ`` kills it for every
    X of the Lie algebra (O(n): also invariant under one reflection). In a weight basis of a
    torus element, the invariants lie in the zero-weight subspace, so the constraints are only
    evaluated there (a few hundred columns instead of n^(k+l)).
    """
    m = k + l
    if m == 0:
        return 1
    if n == 1:  # so(1) = 0: SO(1) is trivial, O(1) = {±1}
        return 1 if (kind == "SO(n)" or m % 2 == 0) else 0
    h = _torus(kind, n, m)
    lam, u = np.linalg.eig(h)
    w = np.rint(lam.imag if kind in ("O(n)", "SO(n)") else lam.real).astype(np.int64)
    uinv = np.linalg.inv(u)
    tuples = np.array(list(itertools.product(range(n), repeat=m)), dtype=np.int64).reshape(-1, m)
    total = w[tuples[:, :l]].sum(1) - w[tuples[:, l:]].sum(1)
    zero = tuples[total == 0]
    nz = len(zero)
    if nz == 0:
        return 0
    size = n**m
    weights = n ** np.arange(m - 1, -1, -1, dtype=np.int64)
    flat = zero @ weights
    cols = np.arange(nz)
    blocks = []
    for x in lie_algebra_basis(kind, n):
        xp = uinv @ x @ u
        rows, cc, vals = [], [], []
        for leg in range(m):
            a = xp if leg < l else -xp.T  # top legs: X; bottom legs: -Xᵀ, both from the left
            for s_ in range(n):
                rows.append(flat + (s_ - zero[:, leg]) * weights[leg])
                cc.append(cols)
                vals.append(a[s_, zero[:, leg]])
        blocks.append(coo_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cc))), shape=(size, nz)
        ).tocsr())
    if kind == "O(n)":
        # A reflection; in the weight basis it is monomial (it maps each weight vector to a
        # multiple of one weight vector), so its action on each e_t is a single scaled e_t'.
        r = np.eye(n)
        r[-1, -1] = -1.0
        rp = uinv @ r @ u
        rows, vals = np.zeros(nz, dtype=np.int64), np.ones(nz, dtype=np.complex128)
        for leg in range(m):
            a = rp if leg < l else np.linalg.inv(rp).T
            assert np.all((np.abs(a) > 1e-12).sum(0) == 1), "reflection is not monomial"
            target = np.argmax(np.abs(a), axis=0)
            rows += target[zero[:, leg]] * weights[leg]
            vals *= a[target, np.arange(n)][zero[:, leg]]
        refl = coo_matrix((vals, (rows, cols)), shape=(size, nz)).tocsr()
        ident = coo_matrix((np.ones(nz), (flat, cols)), shape=(size, nz)).tocsr()
        blocks.append(refl - ident)
    gram = sum((b.conj().T @ b).toarray() for b in blocks)
    ev = np.linalg.eigvalsh(gram)
    return int(np.sum(ev < 1e-8 * max(1.0, ev.max())))


def random_group_elements(kind: str, n: int, num: int, rng: np.random.Generator) -> list:
    """Random elements built from the Lie algebra (plus a reflection for O(n))."""
    basis = lie_algebra_basis(kind, n)
    out = []
    for _ in range(num):
        x = sum(rng.normal() * b for b in basis) * 0.7
        out.append(expm(x))
    if kind == "O(n)":
        r = np.eye(n)
        r[0, 0] = -1.0
        out.append(r @ out[0])
    return out


def kron_power(g: np.ndarray, p: int) -> np.ndarray:
    out = np.ones((1, 1))
    for _ in range(p):
        out = np.kron(out, g)
    return out


def nullspace_dimension(elements: list, k: int, l: int) -> int:
    """dim {W : ρ_l(g) W ρ_k(g)^{-1} = W for all g in elements}, as a dense null space."""
    n = elements[0].shape[0]
    size = n ** (k + l)
    rows = []
    for g in elements:
        # Row-major vec: vec(A W B) = (A ⊗ Bᵀ) vec W.
        op = np.kron(kron_power(g, l), kron_power(np.linalg.inv(g), k).T)
        rows.append(op - np.eye(size))
    s = np.linalg.svd(np.concatenate(rows), compute_uv=False)
    return int(np.sum(s < 1e-9 * max(1.0, s.max()))) + max(0, size - len(s))


def burnside(perms: np.ndarray, m: int) -> int:
    """Orbits of a permutation group on [n]^m: the mean of fix(σ)^m over the group."""
    fix = (perms == np.arange(perms.shape[1])).sum(1).astype(object)
    total = sum(int(f) ** m for f in fix)
    assert total % len(perms) == 0
    return total // len(perms)


def symmetric_group(n: int) -> np.ndarray:
    return np.array(list(itertools.permutations(range(n))), dtype=np.int64).reshape(-1, n)


def brute_force_automorphisms(adj: np.ndarray) -> np.ndarray:
    """All σ with A[σ(i), σ(j)] = A[i, j], by trying every permutation (small n only)."""
    n = adj.shape[0]
    assert math.factorial(n) <= 50_000
    perms = symmetric_group(n)
    ok = [s for s in perms if np.array_equal(adj[np.ix_(s, s)], adj)]
    return np.array(ok, dtype=np.int64)
