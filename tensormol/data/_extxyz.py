"""Extended XYZ: a small, strict parser and writer (ASE-compatible), plain or compressed.

Why not ``ase.io``: the core readers need no optional dependency, errors must name the file,
frame and line, and the generator appends gzip members to a file that it may later truncate
(resume), which needs control over every byte written.

Format of one frame::

    <number of atoms>
    key=value key="quoted value" Properties=species:S:1:pos:R:3:forces:R:3 Lattice="a1 a2 a3"
    <one line per atom with the columns named by Properties>

``Lattice`` holds the three cell vectors as rows (9 numbers). A comment line without
``Properties`` means ``species:S:1:pos:R:3`` (plain XYZ).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ..elements import MAX_ATOMIC_NUMBER, SYMBOLS, symbol_to_number

__all__ = ["XYZFrame", "iter_extxyz", "read_extxyz_frames", "format_extxyz_frame",
           "write_extxyz_frames", "open_text"]

_DEFAULT_PROPERTIES = [("species", "S", 1), ("pos", "R", 3)]
_BOOL = {"T": True, "F": False, "True": True, "False": False, "true": True, "false": False,
         "TRUE": True, "FALSE": False}
_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


@dataclass
class XYZFrame:
    """One parsed frame: numbers (n,), positions (n, 3), cell (3, 3), pbc (3,), header info and
    per-atom arrays (units as in the file)."""

    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def open_text(path: str | Path, mode: str = "rt") -> TextIO:
    """Open a text file, transparently (de)compressing ``.gz``, ``.bz2`` and ``.xz``.

    A gzip file made of several members (as the generator appends them) reads as one stream.
    """
    p = Path(path)
    opener = _OPENERS.get(p.suffix.lower())
    if opener is None:
        return open(p, mode, encoding="utf-8")
    return opener(p, mode, encoding="utf-8")


# -- header ------------------------------------------------------------------------------------
def _split_header(line: str) -> list[tuple[str, str | None, bool]]:
    """Split a comment line into (key, raw value or None, value was quoted) tuples."""
    out: list[tuple[str, str | None, bool]] = []
    i, n = 0, len(line)
    closing = {'"': '"', "'": "'", "{": "}", "[": "]"}
    while i < n:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            break
        j = i
        while j < n and not line[j].isspace() and line[j] != "=":
            j += 1
        key = line[i:j]
        if j < n and line[j] == "=":
            j += 1
            if j < n and line[j] in closing:
                end = line.find(closing[line[j]], j + 1)
                if end < 0:
                    raise ValueError(f"unterminated {line[j]} in value of {key!r}")
                out.append((key, line[j + 1:end], True))
                j = end + 1
            else:
                k = j
                while k < n and not line[k].isspace():
                    k += 1
                out.append((key, line[j:k], False))
                j = k
        else:
            out.append((key, None, False))
        i = j
    return out


def _convert(raw: str | None) -> Any:
    """Header value to int, float, bool, array of those, or str (ASE's rules)."""
    if raw is None:
        return True
    parts = raw.replace(",", " ").split()
    if not parts:
        return raw
    for cast in (int, float):
        try:
            vals = [cast(p) for p in parts]
        except ValueError:
            continue
        return vals[0] if len(vals) == 1 else np.asarray(vals)
    if all(p in _BOOL for p in parts):
        vals = [_BOOL[p] for p in parts]
        return vals[0] if len(vals) == 1 else np.asarray(vals)
    return raw


def _parse_properties(spec: str) -> list[tuple[str, str, int]]:
    fields = spec.split(":")
    if len(fields) % 3:
        raise ValueError(f"Properties={spec!r} must be name:type:count triples")
    props = []
    for k in range(0, len(fields), 3):
        name, kind, count = fields[k], fields[k + 1].upper(), fields[k + 2]
        if kind not in "SRIL" or not count.isdigit() or int(count) < 1:
            raise ValueError(f"bad Properties entry {name}:{kind}:{count} (type must be S, R, I "
                             f"or L; count a positive integer)")
        props.append((name, kind, int(count)))
    return props


# -- reading -----------------------------------------------------------------------------------
def iter_extxyz(path: str | Path) -> Iterator[XYZFrame]:
    """Yield the frames of an (extended) XYZ file one by one (units as in the file).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (the message names it).
    ValueError
        For a malformed frame, naming the file, the frame index and the line number.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"extended XYZ file not found: {str(p)!r}")
    frames = _iter_frames(p)
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except (EOFError, OSError, lzma.LZMAError, UnicodeDecodeError) as exc:
            # A truncated or corrupt compressed stream (e.g. a copy taken mid-write).
            raise ValueError(f"cannot read {str(p)!r}: the file is truncated or corrupt "
                             f"({type(exc).__name__}: {exc})") from None
        yield frame


def _iter_frames(p: Path) -> Iterator[XYZFrame]:
    with open_text(p) as fh:
        lineno = 0
        frame = 0
        while True:
            line = fh.readline()
            lineno += 1
            if not line:
                return
            if not line.strip():
                continue  # blank lines between frames (some writers add them)
            where = f"{p}, frame {frame}, line {lineno}"
            try:
                natoms = int(line.split()[0])
            except ValueError:
                raise ValueError(f"expected the number of atoms, got {line.strip()[:60]!r} "
                                 f"({where})") from None
            if natoms < 0:
                raise ValueError(f"negative number of atoms {natoms} ({where})")
            comment = fh.readline()
            lineno += 1
            if not comment:
                raise ValueError(f"file ends before the comment line of frame {frame} ({p})")
            try:
                yield _parse_frame(fh, natoms, comment.rstrip("\n"), lineno, frame, p)
            except EOFError as exc:
                raise ValueError(str(exc)) from None
            lineno += natoms
            frame += 1


def _parse_frame(fh: TextIO, natoms: int, comment: str, lineno: int, frame: int,
                 path: Path) -> XYZFrame:
    where = f"{path}, frame {frame}"
    try:
        pairs = _split_header(comment)
    except ValueError as exc:
        raise ValueError(f"{exc} ({where}, line {lineno})") from None
    is_ext = any(k == "Properties" for k, _, _ in pairs) or any(v is not None for _, v, _ in pairs)
    info: dict[str, Any] = {}
    props = list(_DEFAULT_PROPERTIES)
    cell = np.zeros((3, 3))
    pbc = None
    if is_ext:
        for key, raw, _quoted in pairs:
            if key == "Properties":
                try:
                    props = _parse_properties(raw or "")
                except ValueError as exc:
                    raise ValueError(f"{exc} ({where}, line {lineno})") from None
            elif key == "Lattice":
                vals = _convert(raw)
                arr = np.asarray(vals, dtype=float).reshape(-1)
                if arr.shape != (9,):
                    raise ValueError(f"Lattice must hold 9 numbers, got {raw!r} ({where}, "
                                     f"line {lineno})")
                cell = arr.reshape(3, 3)
            elif key == "pbc":
                vals = _convert(raw)
                arr = np.asarray(vals).reshape(-1)
                if arr.shape != (3,) or arr.dtype != bool:
                    raise ValueError(f"pbc must hold 3 of T/F, got {raw!r} ({where}, "
                                     f"line {lineno})")
                pbc = arr
            else:
                info[key] = _convert(raw)
    elif comment.strip():
        info["comment"] = comment.strip()
    if pbc is None:
        # ASE's rule: a Lattice without pbc means periodic in all three directions.
        pbc = np.array([bool(np.any(cell[i])) for i in range(3)])
    ncols = sum(c for _, _, c in props)
    columns: list[list[str]] = []
    for a in range(natoms):
        line = fh.readline()
        if not line:
            raise EOFError(f"file ends inside frame {frame}: expected {natoms} atom lines, got "
                           f"{a} ({path})")
        parts = line.split()
        if len(parts) != ncols:
            raise ValueError(f"atom line has {len(parts)} columns, Properties needs {ncols} "
                             f"({where}, line {lineno + 1 + a})")
        columns.append(parts)
    arrays: dict[str, np.ndarray] = {}
    col = 0
    for name, kind, count in props:
        block = [row[col:col + count] for row in columns]
        try:
            if kind == "R":
                arr = np.asarray(block, dtype=np.float64).reshape(natoms, count)
            elif kind == "I":
                arr = np.asarray(block, dtype=np.int64).reshape(natoms, count)
            elif kind == "L":
                arr = np.asarray([[_BOOL[v] for v in r] for r in block], dtype=bool)
                arr = arr.reshape(natoms, count)
            else:
                arr = np.asarray(block, dtype=object).reshape(natoms, count)
        except (ValueError, KeyError):
            raise ValueError(f"column {name!r} holds a value that is not of type {kind} "
                             f"({where}, lines {lineno + 1}-{lineno + natoms})") from None
        arrays[name] = arr[:, 0] if count == 1 else arr
        col += count
    species = arrays.pop("species", None)
    if "Z" in arrays:
        numbers = np.asarray(arrays.pop("Z"), dtype=np.int64).reshape(natoms)
    elif species is not None:
        numbers = np.empty(natoms, dtype=np.int64)
        for a, s in enumerate(species.reshape(-1)):
            s = str(s)
            if s.isdigit():
                numbers[a] = int(s)
            else:
                numbers[a] = symbol_to_number(s, f"{where}, line {lineno + 1 + a}")
    else:
        raise ValueError(f"Properties names neither 'species' nor 'Z' ({where}, line {lineno})")
    bad = np.flatnonzero((numbers < 1) | (numbers > MAX_ATOMIC_NUMBER))
    if bad.size:
        raise ValueError(f"unknown atomic number {int(numbers[bad[0]])} ({where}, line "
                         f"{lineno + 1 + int(bad[0])})")
    if "pos" not in arrays:
        raise ValueError(f"Properties has no 'pos' column ({where}, line {lineno})")
    positions = np.asarray(arrays.pop("pos"), dtype=np.float64).reshape(natoms, 3)
    return XYZFrame(numbers, positions, cell, pbc.astype(bool), info, arrays)


def read_extxyz_frames(path: str | Path) -> list[XYZFrame]:
    """All frames of an (extended) XYZ file; see :func:`iter_extxyz`."""
    return list(iter_extxyz(path))


# -- writing -----------------------------------------------------------------------------------
def _fmt_value(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "T" if value else "F"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, np.ndarray) or isinstance(value, (list, tuple)):
        arr = np.asarray(value).reshape(-1)
        return '"' + " ".join(_fmt_value(v) for v in arr.tolist()) + '"'
    s = str(value)
    if not s or any(c.isspace() or c in "=\"'{}[]" for c in s):
        if '"' in s:
            raise ValueError(f"header value {s!r} may not contain a double quote")
        return f'"{s}"'
    return s


def format_extxyz_frame(numbers: np.ndarray, positions: np.ndarray, *,
                        cell: np.ndarray | None = None, pbc: np.ndarray | None = None,
                        info: Mapping[str, Any] | None = None,
                        arrays: Mapping[str, np.ndarray] | None = None,
                        decimals: int = 10) -> str:
    """One frame as extended XYZ text.

    Parameters
    ----------
    numbers : (n,) int
    positions : (n, 3) float, written with ``decimals`` digits after the point
    cell : (3, 3) float, optional, rows are lattice vectors; written as ``Lattice`` if non-zero
    pbc : (3,) bool, optional
    info : mapping, optional, header entries (floats written at full precision)
    arrays : mapping of per-atom float arrays (n,) or (n, k), optional
    decimals : int
        Digits after the decimal point of the per-atom columns.
    """
    numbers = np.asarray(numbers).reshape(-1)
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    n = len(numbers)
    head: list[str] = []
    if cell is not None and np.any(np.asarray(cell)):
        head.append("Lattice=" + _fmt_value(np.asarray(cell, dtype=np.float64).reshape(9)))
    cols = [positions]
    props = ["species:S:1", "pos:R:3"]
    for name, arr in (arrays or {}).items():
        a = np.asarray(arr, dtype=np.float64).reshape(n, -1)
        props.append(f"{name}:R:{a.shape[1]}")
        cols.append(a)
    head.append("Properties=" + ":".join(props))
    for key, value in (info or {}).items():
        if key in ("Lattice", "Properties", "pbc"):
            raise ValueError(f"info key {key!r} is reserved")
        if isinstance(value, (float, np.floating)) and not math.isfinite(value):
            raise ValueError(f"info value {key}={value} is not finite")
        head.append(f"{key}={_fmt_value(value)}")
    if pbc is not None:
        head.append("pbc=" + _fmt_value(np.asarray(pbc, dtype=bool)))
    data = np.concatenate(cols, axis=1) if n else np.zeros((0, 3))
    if not np.all(np.isfinite(data)):
        raise ValueError("per-atom values to write contain NaN or infinite values")
    buf = io.StringIO()
    buf.write(f"{n}\n{' '.join(head)}\n")
    fmt = f"%.{int(decimals)}f"
    for z, row in zip(numbers.tolist(), data):
        buf.write(f"{SYMBOLS[int(z)]:<2} " + " ".join(fmt % v for v in row) + "\n")
    return buf.getvalue()


def write_extxyz_frames(path: str | Path, frames: list[str]) -> None:
    """Write already formatted frames to ``path`` (compressed by extension), atomically."""
    p = Path(path)
    tmp = p.with_name(f".tmp.{p.name}")  # keeps the suffix, so the same compression applies
    with open_text(tmp, "wt") as fh:
        for text in frames:
            fh.write(text)
    tmp.replace(p)
