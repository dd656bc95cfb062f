"""Irreps / Irrep: e3nn's string syntax and semantics, checked against e3nn itself."""

from __future__ import annotations

import random

import pytest
import torch
from e3nn import o3

from tensormol.so3 import Irrep, Irreps, MulIr, rand_o3, wigner_D_from_matrix

F64 = torch.float64


@pytest.mark.parametrize(
    "s",
    ["8x0e+4x1o+2x2e", "1e", "0o + 2x1e", "  3x2y + 1x3y ", "", "0x2e", "10x0e+1x0e+0x1o+5x3o",
     "2x1y+1y+0y"],
)
def test_parsing_and_properties_match_e3nn(s):
    ours, theirs = Irreps(s), o3.Irreps(s)
    assert repr(ours) == repr(theirs)
    assert ours.dim == theirs.dim
    assert ours.num_irreps == theirs.num_irreps
    assert ours.ls == theirs.ls
    assert ours.slices() == theirs.slices()
    assert repr(ours.simplify()) == repr(theirs.simplify())
    assert ours == theirs and hash(ours) == hash(theirs)  # both are plain tuples underneath
    if ours.num_irreps:
        assert ours.lmax == theirs.lmax
    s_ours, s_theirs = ours.sort(), theirs.sort()
    assert repr(s_ours.irreps) == repr(s_theirs.irreps)
    assert s_ours.p == s_theirs.p and s_ours.inv == s_theirs.inv
    assert repr(ours.regroup()) == repr(theirs.regroup())


def test_random_irreps_match_e3nn():
    rng = random.Random(0)
    for _ in range(50):
        terms = [(rng.randint(0, 4), (rng.randint(0, 5), rng.choice((1, -1))))
                 for _ in range(rng.randint(0, 6))]
        ours, theirs = Irreps(terms), o3.Irreps(terms)
        assert repr(ours) == repr(theirs)
        assert Irreps(repr(ours)) == ours  # repr round-trips
        assert ours.dim == theirs.dim and ours.ls == theirs.ls
        assert repr(ours.simplify()) == repr(theirs.simplify())
        s1, s2 = ours.sort(), theirs.sort()
        assert (repr(s1.irreps), s1.p, s1.inv) == (repr(s2.irreps), s2.p, s2.inv)
        for ir in ["0e", "1o", "2e", "3o"]:
            assert ours.count(ir) == theirs.count(ir)
            assert (ir in ours) == (ir in theirs)


def test_irrep_basics():
    assert Irrep("1o") == Irrep(1, -1) == (1, -1)
    assert Irrep("3y") == Irrep(3, -1) and Irrep("2y") == Irrep(2, 1)
    assert Irrep((2, 1)).dim == 5 and Irrep("0e").is_scalar() and not Irrep("0o").is_scalar()
    assert repr(Irrep(2, -1)) == "2o"
    assert list(Irrep("1o") * Irrep("1o")) == [Irrep("0e"), Irrep("1e"), Irrep("2e")]
    assert list(Irrep.iterator(1)) == [Irrep("0e"), Irrep("0o"), Irrep("1o"), Irrep("1e")]
    assert 3 * Irrep("1e") == Irreps("3x1e")
    assert Irrep("1o") + Irrep("2e") == Irreps("1o+2e")
    assert Irrep(o3.Irrep("2o")) == Irrep("2o")  # from e3nn's irrep
    assert Irreps(o3.Irrep("2o")) == Irreps("1x2o")
    assert Irreps([o3.Irrep("2o"), "1e", (2, o3.Irrep("0e"))]) == Irreps("2o+1e+2x0e")
    assert MulIr(2, "1o").dim == 6 and repr(MulIr(2, "1o")) == "2x1o"


def test_irreps_algebra():
    a = Irreps("2x0e + 1o")
    assert a + "2e" == Irreps("2x0e+1o+2e")
    assert "2e" + a == Irreps("2e+2x0e+1o")
    assert a * 2 == Irreps("2x0e+1o+2x0e+1o") == 2 * a
    assert (Irreps("2x1e") * 3).simplify() == Irreps("6x1e")
    assert a[1:] == Irreps("1o") and isinstance(a[1:], Irreps)
    assert a[0].mul == 2 and a[0].ir == Irrep("0e")
    assert [(mul, ir) for mul, ir in a] == [(2, Irrep("0e")), (1, Irrep("1o"))]
    assert a.count("0e") == 2 and a.count("1e") == 0
    assert Irreps("1e + 1e + 0e + 1e").simplify() == Irreps("2x1e+1x0e+1x1e")
    assert Irreps("4x0e + 0x1o + 2x3e").remove_zero_multiplicities() == Irreps("4x0e+2x3e")
    assert Irreps.spherical_harmonics(3) == Irreps("0e+1o+2e+3o")
    assert Irreps.spherical_harmonics(2, p=1) == Irreps("0e+1e+2e")
    assert Irreps() == Irreps("") == Irreps(None) and Irreps().dim == 0
    with pytest.raises(NotImplementedError, match="tensor product"):
        _ = a * a


def test_e3nn_round_trip():
    x = Irreps("3x0e + 2x1o + 1x2e + 0x3o")
    e = x.to_e3nn()
    assert isinstance(e, o3.Irreps) and repr(e) == repr(x)
    back = Irreps.from_e3nn(e)
    assert isinstance(back, Irreps) and back == x
    assert Irreps(o3.Irreps("2x1o")) == Irreps("2x1o")


def test_d_from_matrix_is_block_diagonal_and_matches_e3nn():
    gen = torch.Generator().manual_seed(0)
    R = rand_o3(6, generator=gen)
    R[0] = -R[0] if torch.linalg.det(R[0]) > 0 else R[0]  # at least one improper matrix
    irreps = Irreps("2x0e + 1o + 0o + 1x2e + 1e + 3o")
    D = irreps.D_from_matrix(R)
    assert D.shape == (6, irreps.dim, irreps.dim) and D.dtype == F64
    det = torch.linalg.det(R)
    for sl, (mul, ir) in zip(irreps.slices(), irreps):
        block = wigner_D_from_matrix(ir.l, R, p=ir.p)
        for k in range(mul):
            s = slice(sl.start + k * ir.dim, sl.start + (k + 1) * ir.dim)
            torch.testing.assert_close(D[:, s, s], block, atol=1e-14, rtol=0)
            off = D[:, s].clone()
            off[:, :, s] = 0
            assert off.abs().max() == 0
        if ir.l == 0:
            want = torch.where(det < 0, ir.p, 1.0).to(F64)
            torch.testing.assert_close(D[:, sl, sl][:, 0, 0], want)
    # e3nn builds D in the default dtype (float32 generators): agreement to float32 precision
    De = irreps.to_e3nn().D_from_matrix(R)
    assert (D - De).abs().max() < 2e-5
    # O(3) representation: D(R1 R2) = D(R1) D(R2), also for improper matrices
    torch.testing.assert_close(irreps.D_from_matrix(R[1:] @ R[:-1]), D[1:] @ D[:-1],
                               atol=1e-12, rtol=0)
    # D_from_angles with parity k agrees with D_from_matrix
    from tensormol.so3 import matrix_to_angles
    Rp = R * torch.where(det < 0, -1.0, 1.0).to(F64)[:, None, None]
    k = (det < 0).to(F64)
    torch.testing.assert_close(irreps.D_from_angles(*matrix_to_angles(Rp), k), D,
                               atol=1e-12, rtol=0)
    torch.testing.assert_close(Irrep("2o").D_from_matrix(R), wigner_D_from_matrix(2, R, p=-1),
                               atol=0, rtol=0)


@pytest.mark.parametrize(
    "bad, what",
    [("1x", "1x"), ("x1e", "x1e"), ("1e++2e", "1e++2e"), ("-1e", "-1e"), ("1.5e", "1.5e"),
     ("1z", "1z"), ("2x1", "2x1"), ("ax1e", "ax1e"), ("1e 2e", "1e 2e"), ("2x-1o", "2x-1o")],
)
def test_malformed_strings_name_the_string(bad, what):
    with pytest.raises(ValueError, match="expected") as err:
        Irreps(bad)
    assert repr(what) in str(err.value) or what in str(err.value)


@pytest.mark.parametrize("bad", ["1", "e", "-2o", "1.0e", "2q", "", "1ee"])
def test_bad_irrep_strings(bad):
    with pytest.raises(ValueError, match="cannot parse irrep"):
        Irrep(bad)


def test_bad_irrep_values():
    with pytest.raises(ValueError, match="degree l must be an integer >= 0"):
        Irrep(-1, 1)
    with pytest.raises(ValueError, match="degree l must be an integer >= 0"):
        Irrep(1.5, 1)
    with pytest.raises(ValueError, match="parity p must be"):
        Irrep(1, 0)
    with pytest.raises(ValueError, match="parity p must be"):
        Irrep(1, "o")
    with pytest.raises(ValueError, match="multiplicity must be an integer >= 0"):
        Irreps([(-1, "1e")])
    with pytest.raises(ValueError, match="multiplicity must be an integer >= 0"):
        Irreps([(1.5, "1e")])
    with pytest.raises(ValueError, match="cannot interpret"):
        Irreps([(1, 2)])
    with pytest.raises(ValueError, match="cannot interpret"):
        Irreps(3.5)
    with pytest.raises(ValueError, match="lmax of empty"):
        _ = Irreps("").lmax
    with pytest.raises(ValueError, match="lmax must be"):
        Irreps.spherical_harmonics(-1)
