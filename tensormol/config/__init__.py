"""Validated, frozen run configuration: a schema per section, YAML load/dump, CLI overrides.

>>> from tensormol.config import load_config
>>> cfg = load_config("configs/tensornet_ethanol.yaml", ["training.lr=5e-4"])  # doctest: +SKIP
>>> cfg.training.lr  # doctest: +SKIP
0.0005

Unknown keys raise :class:`ConfigError` listing the valid keys and suggesting the closest one.
"""

from tensormol.config._io import (
    apply_overrides,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
    load_yaml,
    parse_override,
)
from tensormol.config._schema import (
    ConfigError,
    FrozenDict,
    Section,
    build_section,
    check_unknown_keys,
    describe,
    option,
)
from tensormol.config._sections import (
    METRIC_NAMES,
    DataConfig,
    EarlyStoppingConfig,
    LoggingConfig,
    LossConfig,
    ModelConfig,
    PlateauConfig,
    SplitConfig,
    TrainConfig,
    TrainerConfig,
    TrainingConfig,
)

__all__ = [
    "ConfigError",
    "FrozenDict",
    "Section",
    "option",
    "build_section",
    "check_unknown_keys",
    "describe",
    "load_yaml",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "parse_override",
    "apply_overrides",
    "METRIC_NAMES",
    "TrainConfig",
    "DataConfig",
    "SplitConfig",
    "ModelConfig",
    "TrainingConfig",
    "LossConfig",
    "PlateauConfig",
    "EarlyStoppingConfig",
    "TrainerConfig",
    "LoggingConfig",
]
