"""The model bundle: round trip, metadata, version and species errors, the info/export CLI."""

from __future__ import annotations

import pytest
import torch

from tensormol import keys as K
from tensormol.export import SCHEMA_VERSION, BundleError, load_bundle, load_model, save_bundle


def _ethanol_batch():
    from ase.build import molecule

    a = molecule("CH3CH2OH")
    return {K.POSITIONS: torch.tensor(a.get_positions(), dtype=torch.float64),
            K.ATOMIC_NUMBERS: torch.tensor(a.get_atomic_numbers())}


def test_round_trip_reproduces_the_model(tmp_path, make_tiny_model):
    model = make_tiny_model(seed=3)
    path = tmp_path / "m.tmol"
    save_bundle(model, path, name="tensornet", training={"note": "test"})
    loaded = load_model(path)
    batch = _ethanol_batch()
    a = model(batch, compute_forces=True)
    b = loaded(batch, compute_forces=True)
    assert torch.equal(a[K.ENERGY], b[K.ENERGY])
    assert torch.equal(a[K.FORCES], b[K.FORCES])
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())


def test_metadata_is_complete_and_holds_no_import_path(tmp_path, make_tiny_model):
    path = tmp_path / "m.tmol"
    save_bundle(make_tiny_model(), path, name="tensornet")
    raw = torch.load(path, weights_only=True)  # plain data only: no code runs on load
    assert raw["format"] == "tensormol.bundle"
    assert raw["schema_version"] == SCHEMA_VERSION
    assert raw["model"]["name"] == "tensornet"
    meta = raw["metadata"]
    assert meta["species"] == [1, 6, 8]
    assert meta["cutoff"] == pytest.approx(3.0)
    assert meta["model_dtype"] == "float64"
    assert meta["units"] == {"length": "Angstrom", "energy": "eV", "forces": "eV/Angstrom",
                             "stress": "eV/Angstrom^3"}
    assert meta["versions"]["torch"] == torch.__version__
    assert "tensormol" in meta["versions"]
    # Resolved config: every hyperparameter, and no dotted Python path anywhere.
    params = raw["model"]["params"]
    assert params["hidden_channels"] == 8 and params["atomic_numbers"] == [1, 6, 8]
    assert "rbf_type" in params and "activation" in params
    flat = repr(raw["model"]) + repr(meta)
    assert "tensormol.models" not in flat and "<class" not in flat


def test_newer_schema_is_rejected_with_advice(tmp_path, make_tiny_model):
    path = tmp_path / "new.tmol"
    bundle = save_bundle(make_tiny_model(), path, name="tensornet")
    raw = bundle.to_dict()
    raw["schema_version"] = SCHEMA_VERSION + 1
    torch.save(raw, path)
    with pytest.raises(BundleError, match=r"newer.*upgrade tensormol"):
        load_bundle(path)


def test_missing_species_is_rejected_with_advice(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    with pytest.raises(BundleError, match=r"N \(Z=7\).*not trained on.*H, C, O.*ML region"):
        bundle.build_model(atomic_numbers=[1, 6, 7])
    with pytest.raises(BundleError, match="Cl"):
        load_model(tiny_bundle, atomic_numbers=[17])


def test_foreign_and_missing_files(tmp_path):
    junk = tmp_path / "junk.tmol"
    junk.write_bytes(b"not a bundle at all")
    with pytest.raises(BundleError, match="not a readable tensormol model bundle"):
        load_bundle(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(BundleError, match="tensormol export"):
        load_bundle(other)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_bundle(tmp_path / "nothing.tmol")


def test_float32_model_keeps_its_dtype(tmp_path, make_tiny_model):
    model = make_tiny_model(dtype="float32")
    path = tmp_path / "f32.tmol"
    save_bundle(model, path, name="tensornet")
    bundle = load_bundle(path)
    assert bundle.model_dtype == torch.float32
    rebuilt = bundle.build_model()
    assert rebuilt.model_dtype == torch.float32
    assert rebuilt.reference_energies.dtype == torch.float64
    batch = _ethanol_batch()
    assert torch.equal(model(batch)[K.ENERGY], rebuilt(batch)[K.ENERGY])


def test_info_cli_describes_a_bundle(tiny_bundle, capsys):
    from tensormol.cli.main import main

    assert main(["info", str(tiny_bundle)]) == 0
    text = capsys.readouterr().out
    assert "tensornet" in text and "H, C, O" in text and "cutoff         : 3 Å" in text
    assert f"schema version : {SCHEMA_VERSION}" in text
