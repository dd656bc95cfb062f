"""GAFF2/AM1-BCC ligand parameters through AmberTools: real antechamber runs, cache, errors."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rdkit")
pytest.importorskip("openmm")

from tensormol.fe._ligands import (  # noqa: E402
    AntechamberError,
    parameterize_ligand,
)

pytestmark = pytest.mark.openmm


def test_ethanol_end_to_end_and_cache(tmp_path):
    import openmm.app as app

    lig = parameterize_ligand("CCO", cache_dir=tmp_path)
    assert not lig.cached
    assert lig.inchikey == "LFQSCWFLJHTTHZ-UHFFFAOYSA-N"
    assert lig.net_charge == 0 and lig.num_atoms == 9
    assert lig.positions.shape == (9, 3)
    q = lig.partial_charges()
    assert abs(q.sum()) < 1e-3  # AM1-BCC charges sum to the net charge
    # The hydroxyl oxygen carries a clearly negative AM1-BCC charge (about -0.6 e).
    o = lig.atomic_numbers.index(8)
    assert -0.8 < q[o] < -0.45
    prmtop = app.AmberPrmtopFile(str(lig.prmtop_path))
    types = {a.name for a in prmtop.topology.atoms()}
    assert len(types) == 9
    system = prmtop.createSystem()
    assert system.getNumParticles() == 9
    # Second call: a cache hit (no AmberTools run), same files; a different atom order and
    # coordinates of the input are mapped onto the cached order.
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("OCC"))
    AllChem.EmbedMolecule(mol, randomSeed=3)
    again = parameterize_ligand(mol, cache_dir=tmp_path, name="ethanol")
    assert again.cached and again.prmtop_path == lig.prmtop_path and again.name == "ethanol"
    assert again.atomic_numbers == lig.atomic_numbers
    # Positions are the given pose: distances of the input molecule are preserved.
    xyz = mol.GetConformer().GetPositions()
    d_in = np.linalg.norm(xyz[0] - xyz[1])
    oxy, c_next = again.atomic_numbers.index(8), None
    for b in again.rdkit_mol.GetAtomWithIdx(oxy).GetBonds():
        other = b.GetOtherAtomIdx(oxy)
        if again.rdkit_mol.GetAtomWithIdx(other).GetAtomicNum() == 6:
            c_next = other
    d_out = 10 * np.linalg.norm(again.positions[oxy] - again.positions[c_next])
    assert d_out == pytest.approx(d_in, abs=1e-6)
    assert not list(tmp_path.glob(".*"))  # no temporary directory left behind


def test_charged_ligand_and_charge_mismatch(tmp_path):
    with pytest.raises(ValueError, match=r"net_charge=0 does not match.*sum to -1"):
        parameterize_ligand("CC(=O)[O-]", cache_dir=tmp_path, net_charge=0)
    with pytest.raises(ValueError, match="unpaired electron"):
        parameterize_ligand("[CH3]", cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_antechamber_failure_quotes_log(tmp_path):
    # AM1 has no parameters for tin: sqm stops, and the error quotes why.
    with pytest.raises(AntechamberError) as err:
        parameterize_ligand("C[Sn](C)(C)C", cache_dir=tmp_path)
    msg = str(err.value)
    assert "antechamber failed" in msg
    assert "no AM1 parameters for this element" in msg
    assert not any(p.name.endswith("_bcc") for p in tmp_path.iterdir())


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="could not parse the SMILES"):
        parameterize_ligand("C1CC", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="charge_method"):
        parameterize_ligand("C", cache_dir=tmp_path, charge_method="resp")
    with pytest.raises(TypeError, match="ligand must be"):
        parameterize_ligand(3, cache_dir=tmp_path)
