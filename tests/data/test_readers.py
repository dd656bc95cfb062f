"""Readers and writers: round trips, ASE compatibility, unit conversion, clear errors."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

from tensormol import keys as K
from tensormol.data import AtomicDataset, read_dataset, write_dataset

# Independent of tensormol.units: 1 kcal/mol = 4184 J / N_A / e  (in eV), 1 nm = 10 Å.
KCAL_MOL_IN_EV = 4184.0 / 6.02214076e23 / 1.602176634e-19


def _mixed(periodic: bool = True) -> AtomicDataset:
    """Three structures of different size; one periodic (triclinic) if asked."""
    rng = np.random.default_rng(3)
    counts = np.array([3, 5, 4])
    n = int(counts.sum())
    cell = np.zeros((3, 3, 3))
    pbc = np.zeros((3, 3), bool)
    if periodic:
        cell[1] = [[6.0, 0.0, 0.0], [1.0, 7.0, 0.0], [0.5, -0.3, 8.0]]
        pbc[1] = True
    return AtomicDataset(
        rng.normal(size=(n, 3)) * 2, rng.choice([1, 6, 7, 8, 17], size=n), counts,
        cell=cell, pbc=pbc, energy=rng.normal(size=3) * 100, forces=rng.normal(size=(n, 3)),
        stress=rng.normal(size=(3, 3, 3)) * 1e-2, dipole=rng.normal(size=(3, 3)),
        metadata={"level_of_theory": "toy"})


def _assert_same(a: AtomicDataset, b: AtomicDataset, atol: float = 1e-10) -> None:
    assert len(a) == len(b)
    assert a.label_keys == b.label_keys
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert set(x) == set(y)
        for k in x:
            if x[k].is_floating_point():
                torch.testing.assert_close(x[k], y[k], atol=atol, rtol=0, msg=k)
            else:
                assert torch.equal(x[k], y[k]), k


@pytest.mark.parametrize("name", ["d.xyz", "d.extxyz.gz", "d.xyz.bz2", "d.h5", "d.db"])
def test_round_trip(tmp_path, name):
    ds = _mixed()
    path = write_dataset(ds, tmp_path / name)
    back = read_dataset(path)
    _assert_same(ds, back)
    assert back.metadata["source"] == str(path)
    assert not list(tmp_path.glob(".tmp*"))


def test_npz_round_trip_single_molecule(tmp_path):
    rng = np.random.default_rng(0)
    ds = AtomicDataset(rng.normal(size=(12, 3)), [8, 1, 1] * 4, [3] * 4, energy=rng.normal(size=4),
                       forces=rng.normal(size=(12, 3)), dipole=rng.normal(size=(4, 3)))
    _assert_same(ds, read_dataset(write_dataset(ds, tmp_path / "w.npz")), atol=0.0)
    with pytest.raises(ValueError, match="same atoms"):
        write_dataset(_mixed(), tmp_path / "mixed.npz")
    assert not (tmp_path / "mixed.npz").exists() and not list(tmp_path.glob(".tmp*"))


def test_ase_extxyz_interoperates(tmp_path):
    ase_io = pytest.importorskip("ase.io")
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = []
    rng = np.random.default_rng(1)
    for i in range(3):
        a = Atoms("CH4", positions=rng.normal(size=(5, 3)), cell=np.eye(3) * (9 + i), pbc=i == 1)
        a.calc = SinglePointCalculator(a, energy=-10.0 - i, forces=rng.normal(size=(5, 3)),
                                       stress=rng.normal(size=6))
        frames.append(a)
    ase_io.write(tmp_path / "ase.xyz", frames, format="extxyz")
    ds = read_dataset(tmp_path / "ase.xyz")
    for i, a in enumerate(frames):
        s = ds[i]
        np.testing.assert_allclose(s[K.POSITIONS].numpy(), a.positions, atol=1e-7)
        np.testing.assert_allclose(s[K.FORCES].numpy(), a.get_forces(), atol=1e-7)
        np.testing.assert_allclose(s[K.STRESS][0].numpy(), a.get_stress(voigt=False), atol=1e-7)
        assert s[K.ENERGY].item() == pytest.approx(a.get_potential_energy(), abs=1e-9)
        assert s[K.PBC][0].tolist() == a.pbc.tolist()
        np.testing.assert_allclose(s[K.CELL][0].numpy(), a.cell.array)
    # and ASE reads what tensormol writes
    write_dataset(ds, tmp_path / "tm.xyz")
    back = ase_io.read(tmp_path / "tm.xyz", ":")
    for i, a in enumerate(back):
        np.testing.assert_allclose(a.get_forces(), ds[i][K.FORCES].numpy(), atol=1e-10)
        np.testing.assert_allclose(a.get_stress(voigt=False), ds[i][K.STRESS][0].numpy(),
                                   atol=1e-10)


def test_units_are_converted_once_to_ev_and_angstrom(tmp_path):
    # One water in kcal/mol and nm: every label must come out in eV, Å, eV/Å, eV/Å³, e·Å.
    R = np.array([[[0.0, 0.0, 0.0], [0.096, 0.0, 0.0], [-0.024, 0.093, 0.0]]])  # nm
    F = np.ones((1, 3, 3))  # kcal/mol/nm
    np.savez(tmp_path / "w.npz", R=R, z=np.array([8, 1, 1]), E=np.array([[-100.0]]), F=F,
             D=np.array([[0.1, 0.0, 0.0]]), stress=np.eye(3)[None] * 2.0)
    ds = read_dataset(tmp_path / "w.npz", energy_unit="kcal/mol", length_unit="nm")
    s = ds[0]
    np.testing.assert_allclose(s[K.POSITIONS].numpy(), R[0] * 10.0, rtol=1e-15)
    assert s[K.ENERGY].item() == pytest.approx(-100.0 * KCAL_MOL_IN_EV, rel=1e-12)
    np.testing.assert_allclose(s[K.FORCES].numpy(), KCAL_MOL_IN_EV / 10.0, rtol=1e-12)
    np.testing.assert_allclose(s[K.DIPOLE].numpy(), [[1.0, 0.0, 0.0]], rtol=1e-12)
    np.testing.assert_allclose(s[K.STRESS][0].numpy(), np.eye(3) * 2 * KCAL_MOL_IN_EV / 1e3,
                               rtol=1e-12)
    # the MD17 case: kcal/mol and kcal/mol/Å
    ds2 = read_dataset(tmp_path / "w.npz", energy_unit="kcal/mol")
    np.testing.assert_allclose(ds2[0][K.FORCES].numpy(), 0.0433641042, rtol=1e-9)
    # Hartree and Bohr through extxyz
    text = ("2\nProperties=species:S:1:pos:R:3:forces:R:3 energy=-1.0 pbc=\"F F F\"\n"
            "H 0 0 0 0 0 1\nH 1.4 0 0 0 0 -1\n")
    (tmp_path / "h2.xyz").write_text(text)
    h2 = read_dataset(tmp_path / "h2.xyz", energy_unit="Hartree", length_unit="Bohr")
    assert h2[0][K.ENERGY].item() == pytest.approx(-27.211386245988, rel=1e-12)
    assert h2[0][K.POSITIONS][1, 0].item() == pytest.approx(1.4 * 0.529177210903, rel=1e-12)
    assert h2[0][K.FORCES][0, 2].item() == pytest.approx(27.211386245988 / 0.529177210903,
                                                          rel=1e-12)


def test_declared_units_are_honoured_and_contradictions_rejected(tmp_path):
    text = ("1\nProperties=species:S:1:pos:R:3 energy=-2.0 energy_unit=kcal/mol "
            "length_unit=Angstrom\nH 0 0 0\n")
    (tmp_path / "a.xyz").write_text(text)
    with pytest.raises(ValueError, match="declares energy_unit='kcal/mol' but energy_unit='eV'"):
        read_dataset(tmp_path / "a.xyz")
    ds = read_dataset(tmp_path / "a.xyz", energy_unit=None)
    assert ds[0][K.ENERGY].item() == pytest.approx(-2.0 * KCAL_MOL_IN_EV, rel=1e-12)
    assert ds.metadata["energy_unit"] == "kcal/mol"
    with pytest.raises(ValueError, match="unknown energy unit 'furlong'"):
        read_dataset(tmp_path / "a.xyz", energy_unit="furlong")
    np.savez(tmp_path / "u.npz", R=np.zeros((1, 1, 3)), z=[1], E=[1.0],
             units=np.array(json.dumps({"energy": "Hartree", "length": "Angstrom"})))
    assert read_dataset(tmp_path / "u.npz", energy_unit=None)[0][K.ENERGY].item() == \
        pytest.approx(27.211386245988)


def test_custom_keys_and_rmd17_names(tmp_path):
    text = ("2\nProperties=species:S:1:pos:R:3:REF_forces:R:3 REF_energy=-3.5 "
            "energy=99.0 pbc=\"F F F\"\nO 0 0 0 1 2 3\nH 1 0 0 -1 -2 -3\n")
    (tmp_path / "r.xyz").write_text(text)
    ds = read_dataset(tmp_path / "r.xyz", energy_key="REF_energy", forces_key="REF_forces")
    assert ds[0][K.ENERGY].item() == -3.5
    assert ds[0][K.FORCES][1].tolist() == [-1.0, -2.0, -3.0]
    with pytest.raises(ValueError, match="forces_key='forces' not found in frame 0.*REF_forces"):
        read_dataset(tmp_path / "r.xyz", forces_key="forces")
    np.savez(tmp_path / "rmd17.npz", coords=np.ones((2, 2, 3)), nuclear_charges=[6, 1],
             energies=[1.0, 2.0], forces=np.zeros((2, 2, 3)))
    ds = read_dataset(tmp_path / "rmd17.npz")
    assert len(ds) == 2 and ds.label_keys == (K.ENERGY, K.FORCES)
    with pytest.raises(ValueError, match="energy key 'U' not found"):
        read_dataset(tmp_path / "rmd17.npz", energy_key="U")


def test_missing_file_names_the_path(tmp_path):
    for name in ("nope.xyz", "nope.npz", "nope.h5", "nope.db"):
        with pytest.raises(FileNotFoundError, match=str(tmp_path / name)):
            read_dataset(tmp_path / name)
    assert not (tmp_path / "nope.db").exists()  # ASE would have created an empty database
    (tmp_path / "x.cif").write_text("")
    with pytest.raises(ValueError, match="cannot tell the format.*'.cif'"):
        read_dataset(tmp_path / "x.cif")
    with pytest.raises(ValueError, match="format must be one of"):
        read_dataset(tmp_path / "x.cif", format="cif")


def _xyz(frames: list[tuple[float, list[str]]]) -> str:
    out = []
    for energy, lines in frames:
        out.append(f"{len(lines)}\nProperties=species:S:1:pos:R:3:forces:R:3 energy={energy}\n")
        out.extend(line + "\n" for line in lines)
    return "".join(out)


GOOD = ["O 0 0 0 0 0 0", "H 0.96 0 0 0.1 0 0", "H -0.24 0.93 0 -0.1 0 0"]


def test_nan_energy_and_forces_name_the_frame(tmp_path):
    (tmp_path / "e.xyz").write_text(_xyz([(-1.0, GOOD), (-2.0, GOOD), (float("nan"), GOOD)]))
    with pytest.raises(ValueError, match=r"energy contains NaN .* frame 2 in .*e\.xyz"):
        read_dataset(tmp_path / "e.xyz")
    bad = [GOOD[0], "H 0.96 0 0 nan 0 0", GOOD[2]]
    with gzip.open(tmp_path / "f.xyz.gz", "wt") as fh:
        fh.write(_xyz([(-1.0, GOOD), (-2.0, bad)]))
    with pytest.raises(ValueError, match=r"forces contain NaN .* frame 1 \(atom 1 of that"):
        read_dataset(tmp_path / "f.xyz.gz")
    F = np.zeros((4, 2, 3))
    F[3, 0, 0] = np.nan
    np.savez(tmp_path / "n.npz", R=np.zeros((4, 2, 3)) + [[0, 0, 0], [1, 0, 0]], z=[1, 1],
             E=np.zeros(4), F=F)
    with pytest.raises(ValueError, match=r"forces contain NaN .* frame 3"):
        read_dataset(tmp_path / "n.npz")


def test_mismatched_lengths_are_clear(tmp_path):
    np.savez(tmp_path / "a.npz", R=np.zeros((5, 2, 3)), z=[1, 1], E=np.zeros(4),
             F=np.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match=r"E has shape \(4,\) but R has 5 frames of 2 atoms"):
        read_dataset(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", R=np.zeros((5, 2, 3)), z=[1, 1, 1], E=np.zeros(5))
    with pytest.raises(ValueError, match=r"z has shape \(3,\), expected \(2,\)"):
        read_dataset(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", R=np.zeros((5, 2, 3)), z=[1, 1], E=np.zeros(5),
             F=np.zeros((5, 3, 3)))
    with pytest.raises(ValueError, match=r"F has shape \(5, 3, 3\)"):
        read_dataset(tmp_path / "c.npz")
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "d.h5", "w") as fh:
        fh["num_atoms"] = [2, 3]
        fh["atomic_numbers"] = [1, 1, 8, 1, 1]
        fh["positions"] = np.zeros((5, 3))
        fh["energy"] = [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match=r"energy must have shape \(2,\)"):
        read_dataset(tmp_path / "d.h5")
    # an atom line too short, and a file that ends inside a frame
    (tmp_path / "s.xyz").write_text(_xyz([(-1.0, [GOOD[0], "H 0.96 0 0 0.1 0", GOOD[2]])]))
    with pytest.raises(ValueError, match=r"6 columns, Properties needs 7 .*frame 0, line 4"):
        read_dataset(tmp_path / "s.xyz")
    (tmp_path / "t.xyz").write_text(_xyz([(-1.0, GOOD)]) + _xyz([(-2.0, GOOD[:2])]).replace(
        "2\n", "3\n", 1))
    with pytest.raises(ValueError, match="ends inside frame 1"):
        read_dataset(tmp_path / "t.xyz")
    # a compressed file cut short
    data = gzip.compress(_xyz([(-1.0, GOOD)] * 20).encode())
    (tmp_path / "cut.xyz.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.xyz\.gz.*truncated or corrupt"):
        read_dataset(tmp_path / "cut.xyz.gz")
    # labels in some frames only
    text = _xyz([(-1.0, GOOD)]) + "3\nProperties=species:S:1:pos:R:3:forces:R:3\n" + \
        "".join(g + "\n" for g in GOOD)
    (tmp_path / "m.xyz").write_text(text)
    with pytest.raises(ValueError, match="frame 1 lacks energy"):
        read_dataset(tmp_path / "m.xyz")


def test_unknown_elements_are_clear(tmp_path):
    (tmp_path / "x.xyz").write_text(_xyz([(-1.0, GOOD), (-1.0, [GOOD[0], "Xx 1 0 0 0 0 0",
                                                               GOOD[2]])]))
    with pytest.raises(ValueError, match=r"unknown element symbol 'Xx' \(.*frame 1, line 9\)"):
        read_dataset(tmp_path / "x.xyz")
    np.savez(tmp_path / "z.npz", R=np.zeros((1, 2, 3)) + [[0, 0, 0], [1, 0, 0]], z=[1, 119],
             E=[0.0])
    with pytest.raises(ValueError, match=r"unknown atomic number 119 in frame 0 \(atom 1"):
        read_dataset(tmp_path / "z.npz")
    (tmp_path / "n.xyz").write_text("1\n\n0 0 0 0\n")
    with pytest.raises(ValueError, match="unknown atomic number 0"):
        read_dataset(tmp_path / "n.xyz")


def test_plain_xyz_reads_without_labels(tmp_path):
    (tmp_path / "p.xyz").write_text("3\nwater molecule\nO 0 0 0\nH 0.96 0 0\nh -0.24 0.93 0\n")
    ds = read_dataset(tmp_path / "p.xyz")
    assert ds.label_keys == () and ds[0][K.ATOMIC_NUMBERS].tolist() == [8, 1, 1]
