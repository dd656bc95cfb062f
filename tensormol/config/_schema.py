"""A small declarative schema for configuration sections.

Each section is a frozen dataclass whose fields carry their constraints in ``dataclasses.field``
metadata (see :func:`option`). :func:`build_section` turns a plain mapping (from YAML) into such a
dataclass, checking every key and value and raising :class:`ConfigError` with the dotted path of
the offending entry, what was expected and what was given. Unknown keys list the valid ones and
suggest the closest.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, Literal, TypeVar, Union

from tensormol.registry import suggest

__all__ = [
    "ConfigError",
    "FrozenDict",
    "Section",
    "option",
    "build_section",
    "section_to_dict",
    "check_unknown_keys",
    "describe",
]

S = TypeVar("S")

_MISSING = dataclasses.MISSING


class ConfigError(ValueError):
    """An invalid config: names the entry (dotted path), what is expected and what was given."""


class FrozenDict(Mapping):
    """An immutable, picklable mapping used for free-form parts of a frozen config."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_data", {k: _freeze(v) for k, v in dict(data or {}).items()})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenDict is immutable")

    def __reduce__(self) -> tuple:
        return (FrozenDict, (self.to_dict(),))

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, _hashable(v)) for k, v in self._data.items())))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"

    def to_dict(self) -> dict[str, Any]:
        """A plain, mutable deep copy (dicts and lists) of the mapping."""
        return {k: _thaw(v) for k, v in self._data.items()}


def _freeze(value: Any) -> Any:
    if isinstance(value, FrozenDict):
        return value
    if isinstance(value, Mapping):
        return FrozenDict(value)
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, FrozenDict):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _hashable(value: Any) -> Any:
    if isinstance(value, FrozenDict):
        return hash(value)
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


def option(
    default: Any = _MISSING,
    *,
    doc: str,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[Any, ...] | None = None,
    default_factory: Any = _MISSING,
) -> Any:
    """Declare a config field with a docstring and optional numeric bounds or choices.

    Bounds apply to numbers (``None`` always passes when the type allows it); ``choices``
    restricts a value to a fixed set and is listed in the error message.
    """
    meta = {"doc": doc, "ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def check_unknown_keys(raw: Mapping[str, Any], valid: list[str], where: str) -> None:
    """Raise :class:`ConfigError` for the first key of ``raw`` not in ``valid``."""
    for key in raw:
        if key not in valid:
            place = f"{where}.{key}" if where else str(key)
            raise ConfigError(
                f"unknown config key {place!r}{suggest(str(key), valid)}; "
                f"valid keys{' of ' + repr(where) if where else ''} are: {', '.join(valid)}"
            )


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin in (list, tuple):
        args = typing.get_args(tp)
        if not args:
            return "a list"
        item = _type_name(args[0]).removeprefix("an ").removeprefix("a ")
        return f"a list of {item}s"
    if origin in (dict, Mapping) or tp in (dict, FrozenDict):
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return _PLAIN_NAMES.get(tp, getattr(tp, "__name__", str(tp)))


_PLAIN_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


class _NoMatch(Exception):
    pass


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Return ``value`` checked (and, for sections, built) against the annotation ``tp``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return _freeze(value)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        # Sections inside a union (e.g. ``EarlyStopping | None``) must report their own key errors,
        # so try the non-section alternatives first and descend into a section only for mappings.
        for arg in args:
            if dataclasses.is_dataclass(arg):
                continue
            try:
                return _convert(value, arg, where)
            except _NoMatch:
                continue
        for arg in args:
            if dataclasses.is_dataclass(arg) and isinstance(value, Mapping):
                return build_section(arg, value, where)
        raise _NoMatch
    if tp is type(None):
        if value is None:
            return None
        raise _NoMatch
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in typing.get_args(tp)):
            return value
        raise _NoMatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _NoMatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _NoMatch
    if tp is float:
        # An integer is a fine float (``lr: 1``); a bool or a string is not.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _NoMatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _NoMatch
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise _NoMatch
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        out = []
        for i, item in enumerate(value):
            try:
                out.append(_convert(item, item_tp, f"{where}[{i}]"))
            except _NoMatch:
                raise ConfigError(
                    f"config entry {where}[{i}] must be {_type_name(item_tp)}, got {_show(item)}"
                ) from None
        return tuple(out)
    if tp in (FrozenDict, dict) or origin in (dict, Mapping):
        if isinstance(value, Mapping):
            return FrozenDict(value)
        raise _NoMatch
    if dataclasses.is_dataclass(tp):
        if isinstance(value, Mapping):
            return build_section(tp, value, where)
        raise _NoMatch
    raise TypeError(f"unsupported annotation {tp!r} in config schema")  # schema bug, not user's


def _check_bounds(value: Any, meta: Mapping[str, Any], where: str) -> None:
    choices = meta.get("choices")
    if choices is not None and value is not None and value not in choices:
        raise ConfigError(
            f"config entry {where!r} must be one of {', '.join(map(repr, choices))}, "
            f"got {value!r}{suggest(str(value), [str(c) for c in choices])}"
        )
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config entry {where!r} must be a finite number, got {value!r}")
    for key, ok, text in (
        ("ge", lambda v, b: v >= b, ">="),
        ("gt", lambda v, b: v > b, ">"),
        ("le", lambda v, b: v <= b, "<="),
        ("lt", lambda v, b: v < b, "<"),
    ):
        bound = meta.get(key)
        if bound is not None and not ok(value, bound):
            raise ConfigError(f"config entry {where!r} must be {text} {bound}, got {value!r}")


def build_section(cls: type[S], raw: Any, where: str) -> S:
    """Build the frozen dataclass ``cls`` from the mapping ``raw``.

    Parameters
    ----------
    cls : type
        A dataclass whose fields were declared with :func:`option`.
    raw : Mapping or None
        Values from YAML; ``None`` means "all defaults".
    where : str
        Dotted path of this section in the whole config, used in error messages.

    Raises
    ------
    ConfigError
        On an unknown key (listing the valid ones, suggesting the closest), a missing required key,
        a value of the wrong type or out of its bounds.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config section {where!r} must be a mapping, got {_show(raw)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    check_unknown_keys(raw, list(fields), where)
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        path = f"{where}.{name}" if where else name
        if name not in raw:
            if f.default is _MISSING and f.default_factory is _MISSING:
                raise ConfigError(
                    f"config entry {path!r} is required ({f.metadata.get('doc', '')})"
                )
            if dataclasses.is_dataclass(hints[name]) and f.default_factory is not _MISSING:
                kwargs[name] = build_section(hints[name], {}, path)
            continue
        value = raw[name]
        try:
            value = _convert(value, hints[name], path)
        except _NoMatch:
            raise ConfigError(
                f"config entry {path!r} must be {_type_name(hints[name])}, got {_show(value)}"
            ) from None
        _check_bounds(value, f.metadata, path)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:  # cross-field checks in __post_init__
        raise ConfigError(f"config section {where or 'root'!r}: {err}") from None


def section_to_dict(section: Any) -> Any:
    """A plain nested dict/list copy of a built section, suitable for YAML."""
    if dataclasses.is_dataclass(section) and not isinstance(section, type):
        return {
            f.name: section_to_dict(getattr(section, f.name)) for f in dataclasses.fields(section)
        }
    if isinstance(section, FrozenDict):
        return {k: section_to_dict(v) for k, v in section.items()}
    if isinstance(section, list | tuple):
        return [section_to_dict(v) for v in section]
    return section


class Section:
    """Base of every config section: a frozen dataclass declared with :func:`option` fields.

    Gives each section the same two conversions, so none writes its own::

        @dataclass(frozen=True)
        class MyConfig(Section):
            width: int = option(16, doc="channels", ge=1)

        MyConfig.from_dict({"width": 8}, "model")   # validated, frozen
        MyConfig().to_dict()                         # plain data for YAML
    """

    @classmethod
    def from_dict(cls: type[S], raw: Mapping[str, Any] | None, where: str = "") -> S:
        """Validate a mapping (from YAML); unknown keys raise :class:`ConfigError` with a
        suggestion. ``where`` is the dotted path of the section, named in errors."""
        return build_section(cls, raw, where)

    def to_dict(self) -> dict[str, Any]:
        """A plain nested copy (dicts, lists, scalars) of the section, suitable for YAML."""
        return section_to_dict(self)


def describe(cls: type, where: str = "") -> list[tuple[str, str, str, str]]:
    """Rows ``(dotted key, type, default, doc)`` of a section and its subsections, for docs."""
    rows: list[tuple[str, str, str, str]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = f"{where}.{f.name}" if where else f.name
        tp = hints[f.name]
        sections = [a for a in (typing.get_args(tp) or (tp,)) if dataclasses.is_dataclass(a)]
        if f.default is not _MISSING:
            default = "null" if f.default is None else repr(f.default)
        elif f.default_factory is not _MISSING and not sections:
            default = "{}"
        else:
            default = "(required)" if f.default_factory is _MISSING else ""
        doc = f.metadata.get("doc", "")
        bounds = [f"{sym} {f.metadata[k]}" for k, sym in
                  (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"))
                  if f.metadata.get(k) is not None]
        if f.metadata.get("choices"):
            bounds.append("one of " + ", ".join(map(str, f.metadata["choices"])))
        if bounds:
            doc += f" ({'; '.join(bounds)})"
        if sections:
            rows.append((path, _type_name(tp), default, doc))
            rows.extend(describe(sections[0], path))
        else:
            rows.append((path, _type_name(tp), default, doc))
    return rows
