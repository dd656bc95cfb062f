"""Diagrams: enumeration counts, diagram matrices against entry-wise definitions, composition."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from tensormol.groups import (
    Diagram,
    brauer_diagrams,
    compose,
    diagram_matrix,
    diagram_scale,
    levi_civita_diagrams,
    levi_civita_tensor,
    set_partition_diagrams,
    symplectic_form,
    transpose_diagram,
)

BELL = [1, 1, 2, 5, 15, 52, 203, 877]


def stirling2(m: int, b: int) -> int:
    """Stirling numbers of the second kind by the explicit alternating sum."""
    total = sum((-1) ** j * math.comb(b, j) * (b - j) ** m for j in range(b + 1))
    return total // math.factorial(b)


def double_factorial(m: int) -> int:
    return math.prod(range(m, 0, -2)) if m > 0 else 1


@pytest.mark.parametrize("m", range(8))
def test_set_partition_counts(m):
    for k in sorted({0, m // 2, m}):
        assert len(set_partition_diagrams(k, m - k)) == BELL[m]
        for b in range(m + 2):
            want = sum(stirling2(m, j) for j in range(b + 1)) if m else 1
            got = set_partition_diagrams(k, m - k, max_blocks=b)
            assert len(got) == want
            assert all(d.num_blocks <= b for d in got)
    assert len(set(set_partition_diagrams(0, m))) == BELL[m]  # no duplicates


@pytest.mark.parametrize("m", range(9))
def test_brauer_and_levi_civita_counts(m):
    k = m // 2
    brauer = brauer_diagrams(k, m - k)
    assert len(brauer) == (double_factorial(m - 1) if m % 2 == 0 else 0)
    assert all(d.is_brauer for d in brauer)
    for n in range(1, 6):
        lc = levi_civita_diagrams(k, m - k, n)
        want = math.comb(m, n) * double_factorial(m - n - 1) if m >= n and (m - n) % 2 == 0 else 0
        assert len(lc) == want
        assert all(len(d.free) == n and all(len(b) == 2 for b in d.blocks) for d in lc)


def test_diagram_validation_and_label():
    d = Diagram(2, 1, ((0, 2), (1,)))
    assert d.label() == "{1,2'} {1'}"
    assert d == Diagram(2, 1, ((1,), (2, 0)))  # normalised order
    with pytest.raises(ValueError, match="cover 0..2"):
        Diagram(2, 1, ((0, 1),))
    with pytest.raises(ValueError, match="cover"):
        Diagram(1, 1, ((0, 1), (1,)))
    with pytest.raises(ValueError, match="k must be"):
        Diagram(-1, 1, ((0,),))
    with pytest.raises(ValueError, match="non-empty"):
        Diagram(1, 0, ((0,), ()))
    with pytest.raises(ValueError, match="max_blocks"):
        set_partition_diagrams(2, 2, max_blocks=-1)


def _index_tuples(n: int, m: int):
    return itertools.product(range(n), repeat=m)


def _entrywise(d: Diagram, n: int, form: str) -> np.ndarray:
    """The definition of the diagram matrix, one entry at a time."""
    m, l = d.num_vertices, d.l
    j = symplectic_form(n).numpy() if form == "symplectic" else None
    eps = levi_civita_tensor(n).numpy() if d.free else None
    out = np.zeros((n**l, n ** d.k))
    for idx in _index_tuples(n, m):
        val = 1.0
        for b in d.blocks:
            same_row = all(d.is_top(v) for v in b) or not any(d.is_top(v) for v in b)
            if form == "symplectic" and len(b) == 2 and same_row:
                val *= j[idx[b[0]], idx[b[1]]]
            elif len({idx[v] for v in b}) > 1:
                val = 0.0
        if d.free:
            val *= eps[tuple(idx[v] for v in d.free)]
        row = int(np.ravel_multi_index(idx[:l], (n,) * l)) if l else 0
        col = int(np.ravel_multi_index(idx[l:], (n,) * d.k)) if d.k else 0
        out[row, col] = val
    return out


@pytest.mark.parametrize("k,l", [(0, 0), (1, 0), (0, 2), (1, 1), (2, 1), (2, 2), (1, 3)])
def test_partition_matrices_match_definition(k, l):
    for n in (1, 2, 3):
        for d in set_partition_diagrams(k, l):
            m = diagram_matrix(d, n)
            assert m.shape == (n**l, n**k) and m.dtype == torch.float64
            np.testing.assert_array_equal(m.numpy(), _entrywise(d, n, "orthogonal"))


@pytest.mark.parametrize("k,l", [(1, 1), (2, 0), (0, 2), (2, 2), (3, 1), (1, 3)])
def test_symplectic_and_levi_civita_matrices_match_definition(k, l):
    for n in (2, 4):
        for d in brauer_diagrams(k, l):
            np.testing.assert_array_equal(
                diagram_matrix(d, n, form="symplectic").numpy(), _entrywise(d, n, "symplectic")
            )
    for n in (2, 3, 4):
        for d in levi_civita_diagrams(k, l, n):
            np.testing.assert_array_equal(diagram_matrix(d, n).numpy(),
                                          _entrywise(d, n, "orthogonal"))


def test_diagram_matrix_errors():
    d = brauer_diagrams(1, 1)[0]
    with pytest.raises(ValueError, match="even n"):
        diagram_matrix(d, 3, form="symplectic")
    with pytest.raises(ValueError, match="form must be"):
        diagram_matrix(d, 3, form="unitary")
    with pytest.raises(ValueError, match="needs n=3"):
        diagram_matrix(levi_civita_diagrams(2, 1, 3)[0], 4)
    with pytest.raises(TypeError, match="Diagram"):
        diagram_matrix("not a diagram", 2)
    with pytest.raises(ValueError, match="even n"):
        symplectic_form(3)


def _compose_cases(family, shapes):
    for k, mid, l in shapes:
        for top in family(mid, l):
            for bottom in family(k, mid):
                yield top, bottom


PARTITION_SHAPES = [(1, 1, 1), (2, 1, 2), (1, 2, 1), (2, 2, 0), (0, 2, 2), (2, 2, 1), (1, 3, 1)]
BRAUER_SHAPES = [(1, 1, 1), (2, 2, 2), (1, 3, 1), (0, 2, 2), (2, 2, 0), (3, 1, 2), (2, 4, 2)]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_composition_partitions(n):
    """M(top) M(bottom) = n^c M(composed), c the number of removed middle components."""
    seen_c = set()
    mat = {}

    def matrix(d):
        if d not in mat:
            mat[d] = diagram_matrix(d, n)
        return mat[d]

    for top, bottom in _compose_cases(set_partition_diagrams, PARTITION_SHAPES):
        d, c, sign = compose(top, bottom)
        assert sign == 1 and (d.k, d.l) == (bottom.k, top.l)
        seen_c.add(c)
        torch.testing.assert_close(matrix(top) @ matrix(bottom), n**c * matrix(d), rtol=0, atol=0)
    assert seen_c == {0, 1, 2, 3}


@pytest.mark.parametrize("form,n", [("orthogonal", 2), ("orthogonal", 3), ("symplectic", 2),
                                    ("symplectic", 4)])
def test_composition_brauer(form, n):
    """Brauer: loops give n each; for Sp(n) the J orientation contributes a sign ±1."""
    signs, loops = set(), set()
    for top, bottom in _compose_cases(brauer_diagrams, BRAUER_SHAPES):
        d, c, sign = compose(top, bottom, form=form)
        assert d.is_brauer and (d.k, d.l) == (bottom.k, top.l)
        signs.add(sign)
        loops.add(c)
        lhs = diagram_matrix(top, n, form=form) @ diagram_matrix(bottom, n, form=form)
        rhs = sign * n**c * diagram_matrix(d, n, form=form)
        torch.testing.assert_close(lhs, rhs, rtol=0, atol=0)
    assert loops == {0, 1, 2}
    assert signs == ({1} if form == "orthogonal" else {1, -1})


def test_compose_errors():
    a = set_partition_diagrams(2, 1)[0]
    with pytest.raises(ValueError, match="middle row"):
        compose(a, a)
    lc = levi_civita_diagrams(1, 1, 2)[0]
    with pytest.raises(ValueError, match="Levi-Civita"):
        compose(lc, lc)
    with pytest.raises(ValueError, match="two Brauer"):
        compose(set_partition_diagrams(1, 1)[1], set_partition_diagrams(1, 1)[1],
                form="symplectic")
    with pytest.raises(TypeError):
        compose(a, "b")


@pytest.mark.parametrize("form", ["orthogonal", "symplectic"])
def test_diagram_scale_is_root_of_rows_over_frobenius(form):
    n = 4
    cases = list(brauer_diagrams(2, 2)) + list(brauer_diagrams(3, 1)) + list(brauer_diagrams(0, 4))
    if form == "orthogonal":
        cases += list(set_partition_diagrams(2, 2)) + list(set_partition_diagrams(3, 1))
        cases += list(levi_civita_diagrams(3, 1, 4)) + list(levi_civita_diagrams(2, 2, 4))
        cases += list(levi_civita_diagrams(4, 2, 4))
    for d in cases:
        m = diagram_matrix(d, n, form=form)
        rows = int((m != 0).any(dim=1).sum())
        want = math.sqrt(rows / float((m**2).sum()))
        assert diagram_scale(d, n, form) == pytest.approx(want, rel=1e-12), d


def test_transpose_diagram_gives_the_transposed_matrix():

    cases = [(d, "orthogonal", 3) for d in set_partition_diagrams(1, 3)]
    cases += [(d, "symplectic", 4) for d in brauer_diagrams(3, 1)]
    cases += [(d, "orthogonal", 3) for d in levi_civita_diagrams(2, 3, 3)]
    cases += [(d, "orthogonal", 2) for d in levi_civita_diagrams(1, 3, 2)]
    signs = set()
    for d, form, n in cases:
        t, sign = transpose_diagram(d)
        signs.add(sign)
        assert (t.k, t.l) == (d.l, d.k)
        torch.testing.assert_close(diagram_matrix(d, n, form=form).T,
                                   sign * diagram_matrix(t, n, form=form), rtol=0, atol=0)
    assert signs == {1, -1}
