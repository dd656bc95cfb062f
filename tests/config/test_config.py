"""Config: YAML → validated frozen config, overrides, strict keys, clear errors, round trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tensormol.config import (
    ConfigError,
    FrozenDict,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
    parse_override,
)

REPO = Path(__file__).resolve().parents[2]
ETHANOL_YAML = REPO / "configs" / "tensornet_ethanol.yaml"
DEMO_YAML = REPO / "configs" / "demo_ethanol.yaml"


def _base() -> dict:
    return {"data": {"path": str(REPO / "data" / "ethanol.xyz.gz")},
            "model": {"name": "tensornet", "hidden_channels": 8}}


def _with(**sections) -> dict:
    raw = _base()
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(name), dict):
            raw[name] = {**raw[name], **value}
        else:
            raw[name] = value
    return raw


@pytest.mark.parametrize("path", [ETHANOL_YAML, DEMO_YAML])
def test_shipped_configs_load(path):
    cfg = load_config(path)
    # The data path resolves against the YAML file's folder, to the bundled file.
    assert Path(cfg.data.path) == (REPO / "data" / "ethanol.xyz.gz").resolve()
    assert Path(cfg.data.path).is_file()
    assert cfg.model.name == "tensornet"
    assert cfg.training.loss.forces_weight > 0
    # Shared values are not repeated: no cutoff or species outside the model section.
    flat = str(config_to_dict(cfg)["data"]) + str(config_to_dict(cfg)["training"])
    assert "cutoff" not in flat and "species" not in flat


def test_defaults_and_frozen():
    cfg = config_from_dict(_base())
    assert cfg.training.lr == 1e-3 and cfg.training.optimizer == "adamw"
    assert cfg.trainer.strategy == "auto" and cfg.seed == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.training.lr = 1.0  # type: ignore[misc]
    assert isinstance(cfg.model.params, FrozenDict)
    with pytest.raises(TypeError):
        cfg.model.params["hidden_channels"] = 3  # type: ignore[index]


def test_unknown_top_level_key_lists_valid_and_suggests():
    with pytest.raises(ConfigError) as err:
        config_from_dict(_with(trainning={"lr": 1.0}))
    msg = str(err.value)
    assert "'trainning'" in msg and "did you mean 'training'" in msg
    for name in ("data", "model", "training", "trainer", "logging", "seed"):
        assert name in msg


def test_unknown_nested_key_names_its_path():
    with pytest.raises(ConfigError, match=r"'training\.loss\.force_weight'.*did you mean "
                                          r"'forces_weight'.*energy_weight"):
        config_from_dict(_with(training={"loss": {"force_weight": 1.0}}))


def test_unknown_model_argument_is_rejected_at_load():
    with pytest.raises(ConfigError, match=r"model\.hiden_channels.*did you mean "
                                          r"'hidden_channels'"):
        config_from_dict(_with(model={"name": "tensornet", "hiden_channels": 8}))


def test_unknown_model_name_suggests():
    with pytest.raises(ConfigError, match=r"unknown model 'tensrnet'.*did you mean 'tensornet'"):
        config_from_dict(_with(model={"name": "tensrnet"}))


@pytest.mark.parametrize("weight", ["energy_weight", "forces_weight", "stress_weight"])
def test_negative_loss_weight(weight):
    with pytest.raises(ConfigError, match=rf"training\.loss\.{weight}' must be >= 0, got -0\.5"):
        config_from_dict(_with(training={"loss": {weight: -0.5}}))


def test_all_zero_loss_weights():
    with pytest.raises(ConfigError, match="at least one of"):
        config_from_dict(_with(training={"loss": {"energy_weight": 0, "forces_weight": 0}}))


@pytest.mark.parametrize(
    ("sections", "pattern"),
    [
        ({"training": {"lr": "fast"}}, r"'training\.lr' must be a number, got 'fast' \(str\)"),
        ({"training": {"lr": True}}, r"'training\.lr' must be a number, got True \(bool\)"),
        ({"training": {"lr": 0.0}}, r"'training\.lr' must be > 0"),
        ({"data": {"batch_size": 2.5}}, r"'data\.batch_size' must be an integer, got 2\.5"),
        ({"trainer": {"devices": 1.5}}, r"'trainer\.devices' must be"),
        ({"trainer": {"max_time": "3 minutes"}}, r"DD:HH:MM:SS"),
        ({"training": {"optimizer": "sgd"}}, r"must be one of 'adam', 'adamw'"),
        ({"training": {"monitor": "val/force_mae"}}, r"did you mean 'val/forces_mae'"),
        ({"data": {"energy_unit": "kcal"}}, r"unknown energy unit 'kcal'"),
        ({"data": {"split": {"train": 0.8, "val": 100}}}, r"mixes counts and fractions"),
        ({"data": {"split": {"train": 0.8, "val": 0.3}}}, r"sum to <= 1"),
        ({"training": "fast"}, r"'training' must be a mapping, got 'fast'"),
        ({"seed": -1}, r"'seed' must be >= 0"),
        ({"logging": {"name": "a/b"}}, r"plain folder name"),
        ({"trainer": {"max_epochs": None}}, r"training never ends"),
    ],
)
def test_bad_values_give_clear_errors(sections, pattern):
    with pytest.raises(ConfigError, match=pattern):
        config_from_dict(_with(**sections))


def test_missing_required_entry():
    with pytest.raises(ConfigError, match=r"'data\.path' is required"):
        config_from_dict({"data": {}, "model": {"name": "tensornet"}})


def test_yaml_float_without_dot_and_overrides(tmp_path):
    text = ETHANOL_YAML.read_text().replace("lr: 1.0e-3", "lr: 1e-3")
    path = tmp_path / "c.yaml"
    path.write_text(text.replace("../data/ethanol.xyz.gz", str(REPO / "data/ethanol.xyz.gz")))
    cfg = load_config(path, ["training.lr=5e-4", "trainer.devices=2", "trainer.strategy=ddp",
                             "training.plateau=null", "data.split={train: 10, val: 5, test: 0}"])
    assert cfg.training.lr == pytest.approx(5e-4) and isinstance(cfg.training.lr, float)
    assert cfg.trainer.devices == 2 and cfg.trainer.strategy == "ddp"
    assert cfg.training.plateau is None
    assert (cfg.data.split.train, cfg.data.split.val, cfg.data.split.test) == (10, 5, 0)
    assert load_config(path).training.lr == pytest.approx(1e-3)


def test_override_errors():
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("training.lr")
    with pytest.raises(ConfigError, match=r"'training\.lrr'.*did you mean 'lr'"):
        load_config(ETHANOL_YAML, ["training.lrr=1e-3"])
    with pytest.raises(ConfigError, match=r"'training\.lr' is a value"):
        load_config(ETHANOL_YAML, ["training.lr.x=1"])


def test_data_path_override_resolves_against_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(ETHANOL_YAML, ["data.path=some/file.xyz"])
    assert Path(cfg.data.path) == (tmp_path / "some" / "file.xyz").resolve()


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data: {path: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_resolved_config_round_trip(tmp_path):
    cfg = load_config(ETHANOL_YAML, ["training.lr=3e-4", "trainer.devices=[0, 1]"])
    out = tmp_path / "resolved.yaml"
    dump_config(cfg, out)
    again = load_config(out)
    assert again == cfg
    # The resolved file states every default and the model's arguments next to its name.
    text = out.read_text()
    assert "hidden_channels: 64" in text and "ema_decay: 0.99" in text


def test_configs_readme_lists_every_key():
    from tensormol.config import TrainConfig, describe

    text = (REPO / "configs" / "README.md").read_text()
    keys = [row[0] for row in describe(TrainConfig) if row[0] != "model.params"]
    assert len(keys) > 50
    missing = [k for k in keys if f"`{k}`" not in text]
    assert not missing, f"configs/README.md lacks {missing}; regenerate its table"


def test_sections_and_model_configs_share_one_base() -> None:
    import torch

    from tensormol.config import Section, TrainConfig
    from tensormol.models import EnergyModelConfig, GauntNet, GauntNetConfig, TensorNetConfig

    assert issubclass(TrainConfig, Section) and issubclass(TensorNetConfig, EnergyModelConfig)
    cfg = GauntNetConfig.from_dict({"lmax": 1, "dtype": "float64"}, "model")
    assert cfg.torch_dtype is torch.float64
    assert GauntNetConfig.from_dict(cfg.to_dict()) == cfg
    # A torch dtype is accepted wherever a model takes its dtype (both models, one rule).
    model = GauntNet(atomic_numbers=[1], hidden_channels=2, lmax=1, dtype=torch.float64)
    assert model.model_dtype is torch.float64
    with pytest.raises(ConfigError, match=r"'model.dtype' must be one of float32, float64.*"
                                          r"got torch.float16 \(did you mean 'float64'"):
        TensorNetConfig.resolve(None, {"dtype": torch.float16})
    with pytest.raises(TypeError, match="config must be a TensorNetConfig or a mapping"):
        TensorNetConfig.resolve(3)
    with pytest.raises(ConfigError, match="unknown config key 'model.lmx'.*did you mean 'lmax'"):
        GauntNetConfig.resolve({"lmx": 2})
