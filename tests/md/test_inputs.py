"""Inputs of ``tensormol md``: file readers, ML-region selection, config validation."""

from __future__ import annotations

import numpy as np
import pytest
from openmm import unit

from tensormol.config import ConfigError
from tensormol.md import load_md_config, load_structure, select_atoms

pytestmark = pytest.mark.openmm


def test_readers_agree_on_a_molecule(tmp_path):
    import ase.io
    import openmm.app as app
    from ase.build import molecule

    a = molecule("CH3CH2OH")
    ase.io.write(tmp_path / "m.xyz", a)
    s = load_structure(tmp_path / "m.xyz")
    assert s.num_atoms == 9 and s.box is None
    pos = np.asarray(s.positions.value_in_unit(unit.angstrom))
    np.testing.assert_allclose(pos, a.get_positions(), atol=1e-12)
    with open(tmp_path / "m.pdb", "w") as fh:
        app.PDBFile.writeFile(s.topology, s.positions, fh)
    p = load_structure(tmp_path / "m.pdb")
    np.testing.assert_allclose(np.asarray(p.positions.value_in_unit(unit.angstrom)),
                               a.get_positions(), atol=1e-3)
    assert [x.element.symbol for x in p.topology.atoms()] == a.get_chemical_symbols()


def test_sdf_and_periodic_xyz(tmp_path):
    sdf = """ethanol-ish
  test

  3  2  0  0  0  0  0  0  0  0999 V2000
    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0
    1.5000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0
    2.0000    1.3000    0.0000 O   0  0  0  0  0  0  0  0  0  0  0  0
  1  2  1  0
  2  3  1  0
M  END
$$$$
"""
    (tmp_path / "m.sdf").write_text(sdf)
    s = load_structure(tmp_path / "m.sdf")
    assert [a.element.symbol for a in s.topology.atoms()] == ["C", "C", "O"]
    import ase
    import ase.io

    box = ase.Atoms("H2O", positions=[[0, 0, 0], [0.9, 0, 0], [0, 0.9, 0]], cell=[8, 9, 10],
                    pbc=True)
    ase.io.write(tmp_path / "w.extxyz", box)
    w = load_structure(tmp_path / "w.extxyz")
    vecs = np.array([[v.x, v.y, v.z] for v in w.topology.getPeriodicBoxVectors()
                     .value_in_unit(unit.nanometer)])
    np.testing.assert_allclose(vecs, np.diag([0.8, 0.9, 1.0]), atol=1e-12)


def test_amber_files_and_selection(t4_dir):
    s = load_structure(t4_dir / "complex.prmtop", t4_dir / "complex.crd")
    assert s.prmtop is not None and s.num_atoms == 2621
    lig = select_atoms(s.topology, "TMP")
    assert lig == list(range(2603, 2621))
    assert select_atoms(s.topology, "resname:TMP") == lig
    assert select_atoms(s.topology, "2603-2620") == lig
    assert select_atoms(s.topology, "index:0-2,5") == [0, 1, 2, 5]
    with pytest.raises(ValueError, match="no residue named LIG.*TMP"):
        select_atoms(s.topology, "LIG")
    with pytest.raises(ValueError, match=r"0-based, valid 0\.\.2620 for the 2621 atoms"):
        select_atoms(s.topology, "2600-2700")


def test_config_from_yaml_and_flags(tmp_path):
    (tmp_path / "md.yaml").write_text(
        "md:\n  structure: mol.xyz\n  model: m.tmol\n  ensemble: nve\n  timestep: 0.25\n"
    )
    cfg = load_md_config(tmp_path / "md.yaml", steps=10, timestep=None)
    assert cfg.ensemble == "nve" and cfg.timestep == 0.25 and cfg.steps == 10
    assert cfg.structure == str(tmp_path / "mol.xyz")
    with pytest.raises(ConfigError, match="did you mean 'timestep'"):
        load_md_config(structure="a.xyz", model="m.tmol", timestpe=1.0)
    with pytest.raises(ConfigError, match="ensemble"):
        load_md_config(structure="a.xyz", model="m.tmol", ensemble="nvx")
    with pytest.raises(ConfigError, match="model must be given"):
        load_md_config(structure="a.xyz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_structure(tmp_path / "nothing.pdb")
