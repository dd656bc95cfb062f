"""Binding with ATM end to end on CB7: config errors, relative wiring, resume, ML/MM outside ATM."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openmm")
pytest.importorskip("rdkit")
pytest.importorskip("openmmtools")

import openmm  # noqa: E402
from openmm import unit  # noqa: E402

from tensormol.config import ConfigError  # noqa: E402
from tensormol.fe._binding import build_leg_system, prepare_binding, run_binding  # noqa: E402
from tensormol.fe._config import load_binding_config  # noqa: E402
from tensormol.fe._sampler import SamplingResult  # noqa: E402

pytestmark = pytest.mark.openmm

KJ = unit.kilojoule_per_mole

CONFIG = """
name: tiny
output: {output}
preset: quick
charge_method: gas
receptor:
  prmtop: openmmtools:cb7-b2/receptor.prmtop
  inpcrd: openmmtools:cb7-b2/receptor.inpcrd
  restrain: heavy
ligands:
  - {{name: B2, mol2: {b2}}}
  - {{name: A1, smiles: "OC12CC3CC(CC(C3)C1)C2"}}
reference: B2
absolute: [B2]
{extra}
atm: {{n_states: 4}}
sampling: {{n_iterations: 2, steps_per_iteration: 10, threads: 1, checkpoint_every: 1}}
"""


def _config(tmp_path: Path, name: str = "c.yaml", *, output: Path | None = None,
            b2: str = "openmmtools:cb7-b2/b2_tripos.mol2", extra: str = "edges: [[A1, B2]]",
            more: str = "") -> Path:
    path = tmp_path / name
    path.write_text(CONFIG.format(output=output or tmp_path / "run", b2=b2, extra=extra) + more)
    return path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("binding")
    cfg = load_binding_config(_config(tmp))
    legs = prepare_binding(cfg, tmp / "run", progress=False)
    return tmp, {p.name: p for p in legs}


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    path = _config(tmp_path, more="sampling_:\n  seed: 1\n")
    path.write_text(path.read_text().replace("absolute:", "absolut:"))
    with pytest.raises(ConfigError, match=r"'absolut' \(did you mean 'absolute'\?\)"):
        load_binding_config(path)
    path = _config(tmp_path, extra="edges: [[A1, B3]]")
    with pytest.raises(ConfigError, match=r"edges\[0\]: unknown ligand 'B3'; ligands are: B2, A1"):
        load_binding_config(path)


def test_missing_file_writes_nothing(tmp_path):
    out = tmp_path / "run"
    path = _config(tmp_path, b2=str(tmp_path / "nope.mol2"), output=out)
    with pytest.raises(FileNotFoundError, match="nope.mol2"):
        run_binding(path)
    assert not out.exists()


def test_ligand_outside_the_site_writes_nothing(tmp_path):
    from rdkit import Chem

    src = load_binding_config(_config(tmp_path)).ligand("B2").mol2
    mol = Chem.MolFromMol2File(src, removeHs=False)
    conf = mol.GetConformer()
    for i in range(mol.GetNumAtoms()):
        p = conf.GetAtomPosition(i)
        conf.SetAtomPosition(i, (p.x + 20.0, p.y, p.z))
    sdf = tmp_path / "far.sdf"
    w = Chem.SDWriter(str(sdf))
    w.write(mol)
    w.close()
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="ligand 'B2' is outside the receptor's site"):
        run_binding(_config(tmp_path, b2=str(sdf), output=out, extra=""))
    assert not out.exists()


def test_element_the_potential_does_not_know(tmp_path, tiny_bundle):
    path = _config(tmp_path, extra="", more=f"potential: {tiny_bundle}\n")
    # amantadine: nitrogen, which the bundle (H, C, O) does not know
    path.write_text(path.read_text().replace("OC12CC3CC", "NC12CC3CC"))
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"ligand 'A1' contains N \(Z=7\)"):
        run_binding(path)
    assert not out.exists()


def test_box_smaller_than_two_cutoffs(tmp_path):
    path = _config(tmp_path, extra="", more="system: {box_A: 15.0, cutoff_A: 9.0}\n")
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"smaller than twice the cutoff \(18.0 Å\)"):
        run_binding(path, overrides=["preset=standard"])
    assert not out.exists()


def test_relative_leg_wiring(prepared):
    _, legs = prepared
    system, pos, box, meta, idx = build_leg_system(legs["rel_A1_B2"])
    assert box is None and meta["kind"] == "relative" and meta["ligands"] == ["A1", "B2"]
    a, b = meta["ligand_atoms"]
    d = np.asarray(meta["displacement_nm"])
    assert np.linalg.norm(d) > 1.5  # clears the host by 10 Å
    atm = system.getForce(idx)
    assert isinstance(atm, openmm.ATMForce)
    inner = _inner_types(atm)
    assert inner == {"NonbondedForce", "GBSAOBCForce"}  # the only translation-dependent terms
    outside = {type(f).__name__ for f in system.getForces()}
    assert not outside & {"NonbondedForce", "GBSAOBCForce", "CustomGBForce"}

    def disp(i):
        return np.asarray(atm.getParticleTransformation(i).getFixedDisplacement1()
                          .value_in_unit(unit.nanometer))

    np.testing.assert_allclose(disp(a[0]), d)
    np.testing.assert_allclose(disp(b[0]), -d)
    np.testing.assert_allclose(disp(0), 0.0)  # the host stays
    # B sits in the solvent, posed on A: centroids differ by d (to the pose overlap)
    off = pos[b].mean(0) - pos[a].mean(0) - d
    assert np.linalg.norm(off) < 0.25
    names = [f.getName() for f in system.getForces()]
    assert names.count("ATMSiteRestraint") == 2
    assert names.count("ATMAlignmentRestraint") == 1
    assert names.count("ATMPositionRestraint") == 1
    # restraints barely act on the prepared (minimised) start
    for f in system.getForces():
        f.setForceGroup(1 if f.getName().startswith("ATM") and not isinstance(
            f, openmm.ATMForce) else 0)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001),
                         openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(pos)
    e = ctx.getState(getEnergy=True, groups={1}).getPotentialEnergy().value_in_unit(KJ)
    assert 0.0 <= e < 15.0
    # the displaced ligands land where the others were: no clash at the end state
    u1, u0, _ = (q.value_in_unit(KJ) for q in atm.getPerturbationEnergy(ctx))
    assert abs(u1 - u0) < 200.0


def test_ml_potential_stays_outside_the_atm_force(prepared, tiny_bundle, tmp_path):
    from tensormol.fe._atm import atm_states

    _, legs = prepared
    ml_leg = tmp_path / "rel_ml"
    shutil.copytree(legs["rel_A1_B2"], ml_leg, ignore=shutil.ignore_patterns("sampling"))
    meta = json.loads((ml_leg / "leg.json").read_text())
    meta["potential"] = str(tiny_bundle)
    (ml_leg / "leg.json").write_text(json.dumps(meta))
    mm, pos, _, meta_mm, i_mm = build_leg_system(legs["rel_A1_B2"])
    ml, _, _, _, i_ml = build_leg_system(ml_leg)
    assert any(type(f).__name__ == "PythonForce" for f in ml.getForces())
    atm = ml.getForce(i_ml)
    assert _inner_types(atm) == {"NonbondedForce", "GBSAOBCForce"}
    p = pos.copy()
    p[meta_mm["ligand_atoms"][1]] += np.array([0.0, 0.02, 0.0])  # off the minimum
    ctxs = []
    for system in (mm, ml):
        c = openmm.Context(system, openmm.VerletIntegrator(0.001),
                           openmm.Platform.getPlatformByName("Reference"))
        c.setPositions(p)
        ctxs.append(c)
    diffs, perts = [], []
    for st in atm_states(_atm_settings(meta_mm)):
        e = []
        for c, idx, system in zip(ctxs, (i_mm, i_ml), (mm, ml)):
            for k, v in st.items():
                c.setParameter(k, v)
            e.append(c.getState(getEnergy=True).getPotentialEnergy().value_in_unit(KJ))
            u1, u0, _ = (q.value_in_unit(KJ) for q in
                         system.getForce(idx).getPerturbationEnergy(c))
            perts.append(u1 - u0)
        diffs.append(e[1] - e[0])
    # the ML term (minus the MM intramolecular terms it replaces) is the same at every state
    assert np.ptp(diffs) < 1e-6 * max(1.0, abs(diffs[0]))
    assert abs(diffs[0]) > 1.0
    # and the transfer perturbation u1 - u0 is the MM one
    np.testing.assert_allclose(perts[0::2], perts[1::2], rtol=1e-9, atol=1e-6)


def _inner_types(atm):
    """Classes of the forces inside an ATMForce (its Python proxies are plain ``Force``)."""
    import re

    xml = openmm.XmlSerializer.serialize(atm)
    return set(re.findall(r'<Force [^>]*type="(\w+)"', xml)) - {"ATMForce"}


def _atm_settings(meta):
    from tensormol.fe._atm import ATMSettings

    return ATMSettings(**meta["atm"])


def test_tiny_leg_finite_and_resume_equals_uninterrupted(tmp_path):
    full_cfg = _config(tmp_path, "full.yaml", output=tmp_path / "full", extra="")
    part_cfg = _config(tmp_path, "part.yaml", output=tmp_path / "part", extra="")
    # one preparation for both runs (the minimised start is stored with the leg)
    prepare_binding(load_binding_config(full_cfg), tmp_path / "full", progress=False)
    shutil.copytree(tmp_path / "full", tmp_path / "part")
    full = run_binding(full_cfg, n_iterations=4, resume=True, progress=False)
    run_binding(part_cfg, n_iterations=2, resume=True, progress=False)  # "killed" after two
    with pytest.raises(FileExistsError, match="--resume"):
        run_binding(part_cfg, n_iterations=4, progress=False)
    resumed = run_binding(part_cfg, n_iterations=4, resume=True, progress=False)
    a = SamplingResult.load(tmp_path / "full" / "legs" / "abs_B2", "sampling")
    b = SamplingResult.load(tmp_path / "part" / "legs" / "abs_B2", "sampling")
    assert a.u_kln.shape == (4, 4, 4)
    np.testing.assert_array_equal(a.u_kln, b.u_kln)
    row_full, row_res = full["rows"][0], resumed["rows"][0]
    assert row_full["status"] == "done" and np.isfinite(row_full["dg_kcal"])
    assert row_res["dg_kcal"] == row_full["dg_kcal"]
    assert (tmp_path / "full" / "binding.json").is_file()
