"""YAML → validated, frozen :class:`TrainConfig`, with dotted CLI overrides, and back to YAML."""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from tensormol.config._schema import ConfigError, build_section, section_to_dict
from tensormol.config._sections import ModelConfig, TrainConfig
from tensormol.registry import MODELS, suggest

__all__ = [
    "load_yaml",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "parse_override",
    "apply_overrides",
]


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.2), not as the string '1e-3'."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping; raise ``FileNotFoundError`` / :class:`ConfigError` with the path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        with path.open(encoding="utf-8") as fh:
            raw = yaml.load(fh, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {err}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"config file {str(path)!r} must hold a mapping of sections, got {type(raw).__name__}"
        )
    return raw


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"training.lr=1e-3"`` into ``(["training", "lr"], 0.001)``.

    The value is read as YAML (so ``null``, ``true``, ``[1, 2]`` and ``{a: 1}`` work; ``1e-3`` is a
    float).
    """
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, value = text.split("=", 1)
    parts = [p.strip() for p in key.strip().split(".")]
    if not parts or any(not p for p in parts):
        raise ConfigError(f"override {text!r}: bad key {key!r} (expected section.key=value)")
    try:
        parsed = yaml.load(value, Loader=_Loader)  # noqa: S506
    except yaml.YAMLError:
        parsed = value
    return parts, parsed


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a deep copy of ``raw`` with each ``key.path=value`` override set.

    Unknown keys are not rejected here; validation of the result reports them with suggestions.
    """
    out = copy.deepcopy(dict(raw))
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(
                    f"override {text!r}: {where!r} is a value ({child!r}), not a section"
                )
            node = child
        node[parts[-1]] = value
    return out


def _resolve_path(value: str, base_dir: Path | None) -> str:
    p = Path(os.path.expanduser(value))
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    return str(p.resolve())


def config_from_dict(
    raw: Mapping[str, Any], base_dir: str | os.PathLike | None = None
) -> TrainConfig:
    """Validate a plain mapping (as read from YAML) into a frozen :class:`TrainConfig`.

    Parameters
    ----------
    raw : Mapping
        Sections ``data``, ``model``, ``training``, ``trainer``, ``logging`` and ``seed``.
        In ``model`` every key besides ``name`` is an argument of the model builder.
    base_dir : path-like, optional
        Folder against which a relative ``data.path`` resolves (the YAML file's folder);
        ``None`` = the working directory.

    Raises
    ------
    ConfigError
        Unknown keys (with the valid ones and the closest), wrong types, bad values, or an
        unknown model name.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"a config must be a mapping of sections, got {type(raw).__name__}")
    raw = dict(raw)
    model = raw.get("model")
    if isinstance(model, Mapping):
        model = dict(model)
        if "params" in model:
            raise ConfigError(
                "config section 'model': write the model's arguments directly under 'model' "
                "(next to 'name'), not under 'params'"
            )
        name = model.pop("name", None)
        raw["model"] = {"params": model} if name is None else {"name": name, "params": model}
    cfg = build_section(TrainConfig, raw, "")
    _check_model(cfg.model)
    data_path = _resolve_path(cfg.data.path, Path(base_dir) if base_dir is not None else None)
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=data_path))


def _check_model(model: ModelConfig) -> None:
    """Check the model name and, where the model publishes its config class, its arguments."""
    if model.name not in MODELS:
        valid = MODELS.names()
        raise ConfigError(
            f"config entry 'model.name': unknown model {model.name!r}{suggest(model.name, valid)}; "
            f"valid models are: {', '.join(valid) or '(none registered)'}"
        )
    config_class = MODELS.config_class(model.name)
    if config_class is not None:
        build_section(config_class, model.params.to_dict(), "model")


def load_config(path: str | os.PathLike, overrides: Iterable[str] = ()) -> TrainConfig:
    """Read a YAML config, apply ``section.key=value`` overrides and validate it.

    A relative ``data.path`` in the file resolves against the file's folder; one given as an
    override resolves against the working directory.
    """
    path = Path(path)
    raw = load_yaml(path)
    overrides = list(overrides)
    data_path_overridden = False
    for text in overrides:
        parts, _ = parse_override(text)
        if parts == ["data", "path"]:
            data_path_overridden = True
    raw = apply_overrides(raw, overrides)
    base = Path.cwd() if data_path_overridden else path.resolve().parent
    return config_from_dict(raw, base_dir=base)


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The resolved config as plain YAML-ready data (the model's arguments next to its name)."""
    out = section_to_dict(cfg)
    model = out.pop("model")
    out["model"] = {"name": model["name"], **model["params"]}
    order = ["seed", "data", "model", "training", "trainer", "logging"]
    return {k: out[k] for k in order}


def dump_config(cfg: TrainConfig, path: str | os.PathLike) -> None:
    """Write the resolved config (defaults filled in, absolute data path) as YAML."""
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False)
    Path(path).write_text(text, encoding="utf-8")
