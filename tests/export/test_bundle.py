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


_REEXPORT = r"re-export it from its checkpoint \(`tensormol export CHECKPOINT -o model\.tmol`\)$"


def _one_sentence(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and len(text) < 400, text
    return text


def test_foreign_and_missing_files(tmp_path):
    import numpy as np

    junk = tmp_path / "junk.tmol"
    junk.write_bytes(b"not a bundle at all")
    with pytest.raises(BundleError, match=r"not a tensormol model bundle \(not a PyTorch archive"):
        load_bundle(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(BundleError, match="tensormol export"):
        load_bundle(other)
    npz = tmp_path / "data.npz"  # a zip, but not a PyTorch archive
    np.savez(npz, x=np.zeros(3))
    with pytest.raises(BundleError, match="not a tensormol model bundle") as err:
        load_bundle(npz)
    _one_sentence(err.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_bundle(tmp_path / "nothing.tmol")


def _weights_offset(path) -> tuple[int, int]:
    """Byte range of the largest tensor record inside the bundle's zip archive."""
    import zipfile

    with zipfile.ZipFile(path) as zf:
        info = max((i for i in zf.infolist() if "/data/" in i.filename),
                   key=lambda i: i.file_size)
    raw = path.read_bytes()
    start = info.header_offset + 30 + int.from_bytes(raw[info.header_offset + 26:
                                                         info.header_offset + 28], "little")
    start += int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    return start, info.file_size


def test_flipped_bytes_inside_the_weights_are_detected(tmp_path, make_tiny_model):
    # The archive format itself does not notice: before checksums such a bundle loaded and gave
    # shifted energies. Flip 2 kB (or the whole record if smaller) in the largest weight tensor.
    path = tmp_path / "m.tmol"
    save_bundle(make_tiny_model(), path, name="tensornet")
    start, size = _weights_offset(path)
    raw = bytearray(path.read_bytes())
    n = min(2048, size)
    for k in range(start, start + n):
        raw[k] ^= 0x5A
    path.write_bytes(bytes(raw))
    # The tensors still load (the zip layer does not check them)...
    tampered = torch.load(path, weights_only=True)
    assert tampered["format"] == "tensormol.bundle"
    # ...but the bundle does not.
    with pytest.raises(BundleError, match=r"is corrupted: its content does not match the "
                                          r"sha256 checksum.*" + _REEXPORT) as err:
        load_bundle(path)
    _one_sentence(err.value)
    # The pickled copy an OpenMM System carries is verified the same way.
    from tensormol.export._bundle import bundle_from_bytes

    with pytest.raises(BundleError, match="corrupted"):
        bundle_from_bytes(bytes(raw))


def test_zero_byte_and_truncated_bundles_get_one_sentence(tmp_path, make_tiny_model):
    path = tmp_path / "m.tmol"
    save_bundle(make_tiny_model(), path, name="tensornet")
    full = path.read_bytes()
    empty = tmp_path / "empty.tmol"
    empty.write_bytes(b"")
    with pytest.raises(BundleError, match=r"is empty \(0 bytes\).*" + _REEXPORT) as err:
        load_bundle(empty)
    _one_sentence(err.value)
    for frac in (0.001, 0.25, 0.5, 0.9, 0.999):
        cut = tmp_path / f"cut{frac}.tmol"
        cut.write_bytes(full[: max(4, int(frac * len(full)))])
        with pytest.raises(BundleError, match=r"is damaged \(truncated or corrupted.*"
                                              + _REEXPORT) as err:
            load_bundle(cut)
        _one_sentence(err.value)


def test_old_bundles_without_checksum_load_with_a_warning(tmp_path, make_tiny_model):
    from tensormol.export import BundleIntegrityWarning

    path = tmp_path / "v1.tmol"
    model = make_tiny_model(seed=2)
    bundle = save_bundle(model, path, name="tensornet")
    raw = bundle.to_dict()
    raw["schema_version"] = 1
    del raw["checksum"]
    torch.save(raw, path)
    with pytest.warns(BundleIntegrityWarning, match="loaded unverified; re-export"):
        old = load_bundle(path)
    assert old.schema_version == 1
    batch = _ethanol_batch()
    assert torch.equal(old.build_model()(batch)[K.ENERGY], model(batch)[K.ENERGY])
    # A current bundle whose checksum entry was removed is refused, not trusted.
    raw["schema_version"] = SCHEMA_VERSION
    torch.save(raw, path)
    with pytest.raises(BundleError, match="has no valid sha256 checksum"):
        load_bundle(path)


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


def test_units_have_one_home():
    from tensormol.export import BUNDLE_UNITS
    from tensormol.units import MODEL_UNITS

    assert BUNDLE_UNITS is MODEL_UNITS


def test_mean_neighbour_statistic_travels_with_the_weights(tmp_path):
    # GauntNet takes n̄ from the training statistics when its config leaves it unset; the value
    # is saved with the weights, so the reloaded model computes the same energies. With n̄ in
    # the config the state dict keeps its former layout (older bundles load unchanged).
    from tensormol.models import GauntNet

    torch.manual_seed(1)
    model = GauntNet(atomic_numbers=[1, 6, 8], hidden_channels=4, lmax=2, correlation=2,
                     num_layers=2, dtype="float64").eval()
    before = model(_ethanol_batch())[K.ENERGY]
    model.set_statistics({"mean_num_neighbors": 6.25, "force_rms": 0.9,
                          "element_energies": {1: -13.6, 6: -1029.5, 8: -2041.25}})
    assert float(model.avg_num_neighbors) == 6.25
    after = model(_ethanol_batch())[K.ENERGY]
    assert not torch.equal(before, after)
    save_bundle(model, tmp_path / "g.tmol", name="gauntnet")
    loaded = load_model(tmp_path / "g.tmol")
    assert float(loaded.avg_num_neighbors) == 6.25
    assert torch.equal(loaded(_ethanol_batch())[K.ENERGY], after)

    fixed = GauntNet(atomic_numbers=[1, 6, 8], hidden_channels=4, lmax=2, correlation=2,
                     num_layers=1, avg_num_neighbors=8.0, dtype="float64")
    assert "avg_num_neighbors" not in fixed.state_dict()
    fixed.set_statistics({"mean_num_neighbors": 6.25})  # the config's value wins
    assert float(fixed.avg_num_neighbors) == 8.0
