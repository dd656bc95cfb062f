"""Command-line flags generated from a config section's fields.

A section (a frozen dataclass declared with :func:`tensormol.config.option`) already carries
each option's type, default, bounds, choices and description; :func:`add_section_flags` turns
them into ``argparse`` flags, so a command never retypes them. Flag defaults are ``None``
("not given"): values from a YAML file then stay unless a flag overrides them. ``--help``
shows each option's config default.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Collection, Mapping
from typing import Any, Union

__all__ = ["add_section_flags", "section_overrides"]


def _base_type(tp: Any) -> tuple[Any, bool]:
    """The non-None type of an annotation and whether it is optional."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), len(args) < len(typing.get_args(tp))
    return tp, False


def _default_text(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
    else:
        return "required"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "none" if not value else ", ".join(map(str, value))
    return str(value)


def _check_bounds(name: str, meta: Mapping[str, Any], convert: Any) -> Any:
    """An argparse ``type`` converting with ``convert`` and checking the field's bounds."""
    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            what = "an integer" if convert is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        for key, ok, sym in (("ge", value >= (meta.get("ge") or 0), ">="),
                             ("gt", value > (meta.get("gt") or 0), ">"),
                             ("le", value <= (meta.get("le") or 0), "<="),
                             ("lt", value < (meta.get("lt") or 0), "<")):
            if meta.get(key) is not None and not ok:
                raise argparse.ArgumentTypeError(f"must be {sym} {meta[key]}, got {text}")
        return value

    parse.__name__ = convert.__name__
    return parse


def add_section_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                      section: type, *, exclude: Collection[str] = (),
                      short: Mapping[str, str] | None = None) -> list[str]:
    """Add one ``--flag-name`` per field of ``section`` (except ``exclude``).

    Types follow the annotations: ``int``/``float``/``str`` take a value (checked against the
    field's bounds and choices), ``bool`` gives ``--name``/``--no-name``, a tuple of strings is
    repeatable. Each help text is the field's description with its default. ``short`` maps
    field names to extra option strings (``{"output": "-o"}``).

    Returns
    -------
    list of str
        The field names that received a flag (pass them to :func:`section_overrides`).
    """
    hints = typing.get_type_hints(section)
    names: list[str] = []
    for f in dataclasses.fields(section):
        if f.name in exclude or not f.init:
            continue
        tp, _ = _base_type(hints[f.name])
        meta = f.metadata
        flag = "--" + f.name.replace("_", "-")
        doc = meta.get("doc", "")
        kwargs: dict[str, Any] = {"dest": f.name, "default": None,
                                  "help": f"{doc} (default: {_default_text(f)})"}
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) in (tuple, list):
            kwargs["action"] = "append"
        else:
            if meta.get("choices"):
                kwargs["choices"] = meta["choices"]
            if tp in (int, float):
                kwargs["type"] = _check_bounds(f.name, meta, tp)
        extra = [short[f.name]] if short and f.name in short else []
        parser.add_argument(*extra, flag, **kwargs)
        names.append(f.name)
    return names


def section_overrides(args: argparse.Namespace, names: Collection[str]) -> dict[str, Any]:
    """The flags that were given, as ``{field: value}`` (lists become tuples)."""
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(args, name, None)
        if value is None:
            continue
        out[name] = tuple(value) if isinstance(value, list) else value
    return out
