"""Data generation with tblite: labels, integrator, boxes, and resume after an interruption.

Real GFN2-xTB runs on small molecules (ethanol: a few ms per single point).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tensormol import keys as K
from tensormol.data import (
    SamplingSettings,
    TBLiteLabeller,
    baoab_step,
    build_box,
    generate,
    prepare_structure,
    read_dataset,
    structure_from_file,
)
from tensormol.elements import atomic_masses

pytest.importorskip("tblite")
pytest.importorskip("rdkit")

REPO = Path(__file__).resolve().parents[2]
KB = 8.617333262e-5  # eV/K
ACC = 9.648533212e-3  # Å/fs² per eV/(Å·amu)


@pytest.fixture(scope="module")
def ethanol():
    return prepare_structure(smiles="CCO", seed=0)


def test_labeller_agrees_with_tblite_ase_calculator(ethanol):
    from ase import Atoms
    from tblite.ase import TBLite

    lab = TBLiteLabeller(ethanol.numbers, ethanol.cell, ethanol.pbc)
    out = lab(ethanol.positions)
    atoms = Atoms(numbers=ethanol.numbers, positions=ethanol.positions)
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    # ASE uses CODATA 2014 Hartree/Bohr, tensormol CODATA 2018: 1e-8 relative apart
    assert out["energy"] == pytest.approx(atoms.get_potential_energy(), rel=3e-8)
    np.testing.assert_allclose(out["forces"], atoms.get_forces(), atol=1e-6)
    np.testing.assert_allclose(out["dipole"], atoms.get_dipole_moment(), atol=1e-6)
    assert "stress" not in out and lab.calls == 1 and lab.seconds > 0
    # forces are the negative gradient (central differences, two coordinates)
    h = 1e-4
    for atom, axis in ((0, 0), (8, 2)):
        xp, xm = ethanol.positions.copy(), ethanol.positions.copy()
        xp[atom, axis] += h
        xm[atom, axis] -= h
        fd = -(lab(xp)["energy"] - lab(xm)["energy"]) / (2 * h)
        assert fd == pytest.approx(out["forces"][atom, axis], abs=2e-5)


def test_stress_has_ase_sign_and_matches_finite_strain():
    # One water in a 4 Å periodic cube: stress = (1/V) dE/d(strain), positive = tensile.
    numbers = np.array([8, 1, 1])
    x = np.array([[0.1, 0.2, 0.0], [1.05, 0.25, 0.05], [-0.15, 1.12, 0.1]])
    cell = np.eye(3) * 4.0
    stress = TBLiteLabeller(numbers, cell, np.ones(3, bool))(x)["stress"]
    volume = 64.0
    h = 1e-4
    for i, j in ((0, 0), (0, 1)):
        e = []
        for sign in (1, -1):
            eps = np.zeros((3, 3))
            eps[i, j] += sign * h / (1 if i == j else 2)
            eps[j, i] += 0 if i == j else sign * h / 2
            deform = np.eye(3) + eps
            lab = TBLiteLabeller(numbers, cell @ deform, np.ones(3, bool))
            e.append(lab(x @ deform)["energy"])
        assert (e[0] - e[1]) / (2 * h) / volume == pytest.approx(stress[i, j], abs=2e-6)
    np.testing.assert_allclose(stress, stress.T, atol=1e-8)


def test_baoab_samples_boltzmann_whatever_the_masses():
    # Harmonic springs k = 5 eV/Å²: <k x²/2> = <m v²/2> = k_B T / 2 per degree of freedom, also
    # with very different masses (why heavier hydrogens do not change the sampled ensemble).
    n, k, T = 64, 5.0, 400.0
    rng = np.random.default_rng(0)
    masses = np.where(np.arange(n) % 2 == 0, 1.008, 15.999)
    inv_m = (ACC / masses)[:, None]
    sigma = np.sqrt(KB * T * inv_m)

    def springs(x):
        return {"forces": -k * x, "energy": 0.5 * k * float((x**2).sum())}

    x = np.zeros((n, 3))
    v = sigma * rng.standard_normal((n, 3))
    lab = springs(x)
    c1 = math.exp(-0.05 * 0.5)
    pot, kin = [], []
    for step in range(12000):
        x, v, lab = baoab_step(x, v, lab, springs, inv_m, sigma, 0.5, c1, rng)
        if step >= 2000:
            pot.append(0.5 * k * (x**2))
            kin.append(0.5 * masses[:, None] * v**2 / ACC)
    pot, kin = np.mean(pot, axis=0), np.mean(kin, axis=0)
    for light in (True, False):
        sel = (np.arange(n) % 2 == 0) == light
        assert pot[sel].mean() == pytest.approx(KB * T / 2, rel=0.05)
        assert kin[sel].mean() == pytest.approx(KB * T / 2, rel=0.05)


def test_velocity_verlet_conserves_energy(ethanol):
    lab = TBLiteLabeller(ethanol.numbers, ethanol.cell, ethanol.pbc)
    m = atomic_masses(ethanol.numbers)
    inv_m = (ACC / m)[:, None]
    sigma = np.sqrt(KB * 500.0 * inv_m)
    rng = np.random.default_rng(1)
    x, v = ethanol.positions.copy(), sigma * rng.standard_normal((len(m), 3))
    out = lab(x)
    total = []
    for _ in range(100):
        x, v, out = baoab_step(x, v, out, lab, inv_m, sigma, 0.5, 1.0, rng)
        total.append(out["energy"] + 0.5 * float((m[:, None] * v**2).sum()) / ACC)
    kinetic_scale = 1.5 * len(m) * KB * 500.0
    assert np.ptp(total) < 0.02 * kinetic_scale  # 0.5 fs: fluctuations ~1e-3 eV, not 0.6 eV


def _frames(path: Path) -> str:
    with gzip.open(path, "rt") as fh:
        return fh.read()


def _assert_same_frames(a: Path, b: Path) -> None:
    """Same trajectory: positions as written (1e-6 Å rounding), labels to 1e-9 relative.

    Not a text comparison: tblite's OpenMP reductions may differ in the last bits between two
    runs (e.g. dipoles at 1e-14 e·Å), which is not a resume error.
    """
    da, db = read_dataset(a), read_dataset(b)
    assert len(da) == len(db)
    torch.testing.assert_close(da.positions, db.positions, rtol=0, atol=1e-12)
    for key in da.label_keys:
        torch.testing.assert_close(da.labels[key], db.labels[key], rtol=1e-9, atol=1e-9)


SETTINGS = dict(n_frames=8, temperature=500.0, timestep=0.5, friction=20.0, save_every=3,
                equilibration_steps=5, chunk_frames=3, seed=7)


def test_generate_then_resume_reproduces_an_uninterrupted_run(tmp_path, ethanol):
    s = SamplingSettings(**SETTINGS)
    full = generate(tmp_path / "full.xyz.gz", ethanol, s, progress=False, log=lambda m: None)
    assert full["complete"] and full["frames"] == 8 and full["resumed_from_frame"] is None
    assert full["calls"] == 1 + s.total_steps
    assert json.loads((tmp_path / "full.xyz.gz.state.json").read_text())["complete"]
    again = generate(tmp_path / "full.xyz.gz", ethanol, s, progress=False, log=lambda m: None)
    assert again["calls"] == 0 and again["complete"]  # same command again: nothing to do

    out = tmp_path / "part.xyz.gz"
    first = generate(out, ethanol, s, max_new_frames=4, progress=False, log=lambda m: None)
    assert first["frames"] == 4 and not first["complete"]
    state = json.loads((tmp_path / "part.xyz.gz.state.json").read_text())
    assert state["frames"] == 4 and state["step"] == 5 + 4 * 3
    assert len(read_dataset(out)) == 4  # the partial file is a valid data set
    with open(out, "ab") as fh:  # a chunk half-written when the process died
        fh.write(gzip.compress(b"9\nProperties=species:S:1:pos:R:3 energy=1.0\nH 0 0")[:30])
    second = generate(out, ethanol, s, progress=False, log=lambda m: None)
    assert second["resumed_from_frame"] == 4 and second["complete"]
    assert second["calls"] == s.total_steps - state["step"]  # continued, not restarted
    _assert_same_frames(out, tmp_path / "full.xyz.gz")

    # extending a finished run continues its trajectory: same frames as one longer run
    longer = SamplingSettings(**{**SETTINGS, "n_frames": 10})
    ext = generate(out, ethanol, longer, progress=False, log=lambda m: None)
    assert ext["resumed_from_frame"] == 8 and ext["calls"] == 2 * 3 and ext["frames"] == 10
    generate(tmp_path / "ten.xyz.gz", ethanol, longer, progress=False, log=lambda m: None)
    _assert_same_frames(out, tmp_path / "ten.xyz.gz")
    with pytest.raises(ValueError, match="already holds 10 frames, more than n_frames=8"):
        generate(out, ethanol, s, progress=False, log=lambda m: None)

    ds = read_dataset(out)
    assert len(ds) == 10 and ds.label_keys == (K.ENERGY, K.FORCES, K.DIPOLE)
    assert ds.metadata["level_of_theory"] == "GFN2-xTB"
    assert ds.metadata["code"].startswith("tblite")
    head = _frames(out).splitlines()[1]
    for token in ("energy_unit=eV", "length_unit=Angstrom", "forces_unit=eV/Angstrom",
                  "dipole_unit=e*Angstrom", "md_step=8 ", "temperature_K=500.0"):
        assert token in head
    # labels belong to the written positions (rounded to 1e-6 Å)
    lab = TBLiteLabeller(ethanol.numbers, ethanol.cell, ethanol.pbc)(ds[5][K.POSITIONS].numpy())
    assert lab["energy"] == pytest.approx(ds[5][K.ENERGY].item(), abs=1e-4)
    np.testing.assert_allclose(lab["forces"], ds[5][K.FORCES].numpy(), atol=2e-3)
    np.testing.assert_allclose(lab["dipole"], ds[5][K.DIPOLE][0].numpy(), atol=1e-4)


def test_refuses_to_clobber_or_to_mix_settings(tmp_path, ethanol):
    s = SamplingSettings(**SETTINGS)
    out = tmp_path / "e.xyz"
    out.write_text("precious")
    with pytest.raises(FileExistsError, match="no generation state"):
        generate(out, ethanol, s, progress=False, log=lambda m: None)
    assert out.read_text() == "precious"
    out.unlink()
    generate(out, ethanol, s, max_new_frames=1, progress=False, log=lambda m: None)
    other = SamplingSettings(**{**SETTINGS, "temperature": 300.0})
    with pytest.raises(ValueError, match="temperature: 500.0 then, 300.0 now"):
        generate(out, ethanol, other, progress=False, log=lambda m: None)
    done = generate(out, ethanol, other, overwrite=True, progress=False, log=lambda m: None)
    assert done["complete"] and done["resumed_from_frame"] is None
    with pytest.raises(ValueError, match="cannot parse the SMILES"):
        prepare_structure(smiles="C1CC")
    with pytest.raises(ValueError, match="save_every must be an integer >= 1"):
        SamplingSettings(n_frames=3, save_every=0)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        SamplingSettings(n_frames=3, temperature=float("nan"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        generate(tmp_path / "nowhere" / "x.xyz", ethanol, s, progress=False)


@pytest.mark.slow  # two interpreter start-ups (torch import): ~10 s idle, ~40 s on a busy box
def test_killed_cli_run_resumes_where_it_stopped(tmp_path):
    """SIGKILL a real ``tensormol data generate`` process mid-run, rerun the same command."""
    out = tmp_path / "kill.xyz.gz"
    state = tmp_path / "kill.xyz.gz.state.json"
    cmd = [sys.executable, "-m", "tensormol", "data", "generate", "--smiles", "CCO", "-o",
           str(out), "-n", "60", "--save-every", "4", "--equilibration", "4", "--chunk", "5",
           "--seed", "3", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    frames_at_kill = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists():
            try:
                frames_at_kill = json.loads(state.read_text())["frames"]
            except (json.JSONDecodeError, KeyError):
                frames_at_kill = 0
            if frames_at_kill >= 10:
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.005)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    before = read_dataset(out)  # whatever is on disk past the checkpoint gets dropped
    assert len(before) >= frames_at_kill >= 10

    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["complete"] and summary["frames"] == 60
    assert summary["resumed_from_frame"] >= frames_at_kill
    assert summary["calls"] <= 4 + 60 * 4 - 10 * 4  # it did not start over
    ds = read_dataset(out)
    assert len(ds) == 60
    with gzip.open(out, "rt") as fh:
        steps = [int(line.split("md_step=")[1].split()[0]) for line in fh if "md_step=" in line]
    assert steps == [4 + 4 * (k + 1) for k in range(60)]  # no gap, no duplicate
    resumed = summary["resumed_from_frame"]
    for k in range(resumed):  # frames from before the kill are kept as they were
        np.testing.assert_array_equal(ds[k][K.POSITIONS].numpy(), before[k][K.POSITIONS].numpy())


def test_box_has_the_density_and_keeps_molecules_apart():
    water = prepare_structure(smiles="O", seed=0)
    box = build_box(water, 32, density=1.0, seed=0)
    mass_g = atomic_masses(box.numbers).sum() * 1.66053906660e-24
    volume_cm3 = abs(np.linalg.det(box.cell)) * 1e-24
    assert mass_g / volume_cm3 == pytest.approx(1.0, rel=1e-12)
    assert box.cell[0, 0] == pytest.approx(9.8555, abs=1e-3) and box.pbc.all()
    assert len(box.numbers) == 96
    x = box.positions
    mol = np.repeat(np.arange(32), 3)
    d = x[:, None, :] - x[None, :, :]
    d -= np.round(d / box.cell[0, 0]) * box.cell[0, 0]  # minimum image
    dist = np.linalg.norm(d, axis=-1)
    assert dist[mol[:, None] != mol[None, :]].min() > 1.2
    with pytest.raises(ValueError, match="exactly one of density"):
        build_box(water, 4)


def test_structure_inputs_sdf_and_xyz(tmp_path):
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("CC=O"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    Chem.MolToMolFile(mol, str(tmp_path / "a.sdf"))
    st = structure_from_file(tmp_path / "a.sdf")
    assert sorted(st.numbers.tolist()) == [1, 1, 1, 1, 6, 6, 8]
    np.testing.assert_allclose(st.positions, mol.GetConformer().GetPositions(), atol=1e-4)
    (tmp_path / "w.xyz").write_text("3\nwater\nO 0 0 0\nH 0.96 0 0\nH -0.24 0.93 0\n")
    assert structure_from_file(tmp_path / "w.xyz").numbers.tolist() == [8, 1, 1]
    with pytest.raises(FileNotFoundError, match="missing.sdf"):
        structure_from_file(tmp_path / "missing.sdf")
