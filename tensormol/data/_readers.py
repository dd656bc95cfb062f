"""Readers (extended XYZ, ASE database, MD17-style npz, HDF5) and writers of atomic data sets.

Every reader converts to Å, eV, eV/Å, eV/Å³ and e·Å once, here, with the factors of
:mod:`tensormol.units`: positions and cell × L, energy × E, forces × E/L, stress × E/L³, dipole
× L (charges are taken to be in e), where E = ``energy_factor(energy_unit)`` and L =
``length_factor(length_unit)``.

HDF5 layout (``format="hdf5"``, written by :func:`write_dataset`), version 1::

    /                 attrs: format="tensormol-atomic-data", version=1,
                             energy_unit (default "eV"), length_unit (default "Angstrom"),
                             any other attrs are kept as metadata
    /num_atoms        (B,) int        atoms per structure
    /atomic_numbers   (N,) int        N = sum(num_atoms), structures concatenated in order
    /positions        (N, 3) float    length unit
    /cell             (B, 3, 3) float optional, rows are lattice vectors, zeros if not periodic
    /pbc              (B, 3) bool     optional, default False
    /energy           (B,) float      optional, energy unit
    /forces           (N, 3) float    optional, energy/length
    /stress           (B, 3, 3) float optional, energy/length³, ASE sign (positive = tensile)
    /dipole           (B, 3) float    optional, e·length

MD17-style npz: ``R`` (B, n, 3), ``z`` (n,), ``E`` (B,) or (B, 1), ``F`` (B, n, 3); the revised
MD17 names (``coords``, ``nuclear_charges``, ``energies``, ``forces``) are recognised too, and an
optional ``cell`` ((3, 3) or (B, 3, 3)) with ``pbc``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import keys as K
from ..units import energy_factor, length_factor
from ._dataset import AtomicDataset
from ._extxyz import format_extxyz_frame, iter_extxyz, open_text

__all__ = ["read_dataset", "write_dataset", "FORMATS", "detect_format"]

#: Formats understood by :func:`read_dataset`, with the file suffixes that select them.
FORMATS: dict[str, tuple[str, ...]] = {
    "extxyz": (".xyz", ".extxyz"),
    "ase": (".db",),
    "npz": (".npz",),
    "hdf5": (".h5", ".hdf5"),
}
_COMPRESSED = (".gz", ".bz2", ".xz")
_HDF5_FORMAT = "tensormol-atomic-data"
_HDF5_VERSION = 1
_LABELS = ("energy", "forces", "stress", "dipole")
_DEFAULT_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "extxyz": {"energy": ("energy",), "forces": ("forces",), "stress": ("stress",),
               "dipole": ("dipole",)},
    "ase": {"energy": ("energy",), "forces": ("forces",), "stress": ("stress",),
            "dipole": ("dipole",)},
    "npz": {"positions": ("R", "coords", "positions"),
            "numbers": ("z", "nuclear_charges", "atomic_numbers", "Z"),
            "energy": ("E", "energies", "energy"), "forces": ("F", "forces"),
            "stress": ("stress",), "dipole": ("D", "dipole", "dipoles")},
    "hdf5": {"energy": ("energy",), "forces": ("forces",), "stress": ("stress",),
             "dipole": ("dipole",)},
}


def detect_format(path: str | Path) -> str:
    """Format name from the file suffix (``.gz``/``.bz2``/``.xz`` allowed for extended XYZ)."""
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    for name, exts in FORMATS.items():
        if last in exts:
            return name
    valid = ", ".join(f"{n} ({'/'.join(e)})" for n, e in FORMATS.items())
    raise ValueError(f"cannot tell the format of {str(p)!r} from its suffix {last!r}; pass "
                     f"format= one of: {valid}")


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return fmt


def _resolve_unit(given: str | None, declared: Any, kind: str, path: Path) -> str:
    """The unit to convert from: the argument, else the file's declaration, else the default;
    an argument contradicting the file's declaration is an error."""
    factor = energy_factor if kind == "energy" else length_factor
    default = "eV" if kind == "energy" else "Angstrom"
    if declared is not None:
        declared = str(declared)
        factor(declared)  # unknown declared unit: clear error
    if given is None:
        return declared if declared is not None else default
    if declared is not None and factor(given) != factor(declared):
        raise ValueError(f"{str(path)!r} declares {kind}_unit={declared!r} but {kind}_unit="
                         f"{given!r} was given; pass {kind}_unit={declared!r} (or None to use "
                         f"the file's)")
    factor(given)
    return given


def read_dataset(
    path: str | Path,
    format: str | None = None,
    *,
    energy_unit: str | None = "eV",
    length_unit: str | None = "Angstrom",
    energy_key: str | None = None,
    forces_key: str | None = None,
    stress_key: str | None = None,
    dipole_key: str | None = None,
    positions_key: str | None = None,
    numbers_key: str | None = None,
) -> AtomicDataset:
    """Read a data set and convert it to canonical units (Å, eV, eV/Å, eV/Å³, e·Å).

    Parameters
    ----------
    path : str or Path
        File to read.
    format : {"extxyz", "ase", "npz", "hdf5"}, optional
        Default: from the suffix (``.xyz``/``.extxyz`` optionally ``.gz``/``.bz2``/``.xz``,
        ``.db``, ``.npz``, ``.h5``/``.hdf5``).
    energy_unit, length_unit : str or None
        Units of the file (see :data:`tensormol.units.ENERGY_UNITS`, ``LENGTH_UNITS``). A file
        that declares its units (``energy_unit=``/``length_unit=`` in an extended XYZ header, or
        HDF5 attributes) must agree with them; ``None`` takes the file's declaration, else eV/Å.
    energy_key, forces_key, stress_key, dipole_key : str, optional
        Names of the labels in the file. Default: the format's usual names (``energy``,
        ``forces``, ``stress``, ``dipole``; npz: ``E``/``energies``, ``F``/``forces``), each read
        if present. A key given explicitly must exist.
    positions_key, numbers_key : str, optional
        npz only: names of the positions and atomic numbers arrays (default ``R``/``coords``
        and ``z``/``nuclear_charges``).

    Returns
    -------
    AtomicDataset
        ``metadata`` holds ``source``, ``format``, the file's units and header metadata (e.g.
        ``level_of_theory``).

    Raises
    ------
    FileNotFoundError
        The message names the path.
    ValueError
        Malformed files, NaN/infinite values (naming the frame), mismatched array lengths,
        unknown elements, unknown or contradictory units.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"data file not found: {str(p)!r}")
    if not p.is_file():
        raise ValueError(f"data path is not a file: {str(p)!r}")
    fmt = _check_format(format) if format is not None else detect_format(p)
    keys = {"energy": energy_key, "forces": forces_key, "stress": stress_key,
            "dipole": dipole_key}
    if fmt != "npz" and (positions_key is not None or numbers_key is not None):
        raise ValueError("positions_key and numbers_key apply to the npz format only")
    if fmt == "extxyz":
        raw = _read_extxyz(p, keys)
    elif fmt == "ase":
        raw = _read_ase_db(p, keys)
    elif fmt == "npz":
        raw = _read_npz(p, keys, positions_key, numbers_key)
    else:
        raw = _read_hdf5(p, keys)
    eu = _resolve_unit(energy_unit, raw["declared"].get("energy_unit"), "energy", p)
    lu = _resolve_unit(length_unit, raw["declared"].get("length_unit"), "length", p)
    ef, lf = energy_factor(eu), length_factor(lu)
    scale = {"energy": ef, "forces": ef / lf, "stress": ef / lf**3, "dipole": lf}
    labels = {k: np.asarray(v, dtype=np.float64) * scale[k] for k, v in raw["labels"].items()}
    meta = {"source": str(p), "format": fmt, "energy_unit": eu, "length_unit": lu,
            **raw.get("metadata", {})}
    return AtomicDataset(
        np.asarray(raw["positions"], dtype=np.float64) * lf, raw["numbers"], raw["num_atoms"],
        cell=np.asarray(raw["cell"], dtype=np.float64) * lf, pbc=raw["pbc"], metadata=meta,
        **labels)


# -- extended XYZ ------------------------------------------------------------------------------
def _voigt_or_full(value: Any, where: str, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.shape == (9,):
        return arr.reshape(3, 3)
    if arr.shape == (6,):  # Voigt order xx yy zz yz xz xy (ASE)
        xx, yy, zz, yz, xz, xy = arr
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    raise ValueError(f"{name} must hold 9 (3x3) or 6 (Voigt) numbers, got {arr.size} ({where})")


def _read_extxyz(p: Path, keys: dict[str, str | None]) -> dict[str, Any]:
    names = {k: (keys[k],) if keys[k] else _DEFAULT_KEYS["extxyz"][k] for k in _LABELS}
    pos, nums, counts, cells, pbcs = [], [], [], [], []
    labels: dict[str, list] = {k: [] for k in _LABELS}
    found: dict[str, str | None] = {}
    declared: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for f, fr in enumerate(iter_extxyz(p)):
        where = f"{p}, frame {f}"
        for unit_key in ("energy_unit", "length_unit"):
            if unit_key in fr.info:
                val = str(fr.info[unit_key])
                if f > 0 and declared.get(unit_key) != val:
                    raise ValueError(f"frame {f} declares {unit_key}={val!r}, frame 0 "
                                     f"{declared.get(unit_key)!r} ({p})")
                declared[unit_key] = val
            elif f > 0 and unit_key in declared:
                raise ValueError(f"frame {f} does not declare {unit_key}, frame 0 does ({p})")
        if f == 0:
            meta = {k: v for k, v in fr.info.items()
                    if k in ("level_of_theory", "code", "method", "temperature_K")
                    and isinstance(v, (str, int, float))}
        pos.append(fr.positions)
        nums.append(fr.numbers)
        counts.append(len(fr.numbers))
        cells.append(fr.cell)
        pbcs.append(fr.pbc)
        for lab in _LABELS:
            hit = None
            for name in names[lab]:
                src = fr.arrays if lab == "forces" else fr.info
                if name in src:
                    hit = name
                    break
            if f == 0:
                found[lab] = hit
                if hit is None and keys[lab] is not None:
                    avail = sorted(fr.arrays if lab == "forces" else fr.info)
                    kind = "per-atom columns" if lab == "forces" else "header keys"
                    raise ValueError(f"{lab}_key={keys[lab]!r} not found in frame 0 of {p}; "
                                     f"its {kind} are: {', '.join(avail) or 'none'}")
            elif (hit is None) != (found[lab] is None):
                has = "lacks" if hit is None else "has"
                raise ValueError(f"frame {f} {has} {lab} ({'/'.join(names[lab])}) unlike frame "
                                 f"0 ({p}); every frame needs the same labels")
            if hit is None:
                continue
            if lab == "forces":
                val = np.asarray(fr.arrays[hit], dtype=np.float64)
                if val.shape != (len(fr.numbers), 3):
                    raise ValueError(f"{hit} must have 3 columns per atom, got shape "
                                     f"{val.shape} ({where})")
                labels[lab].append(val)
            else:
                v = fr.info[hit]
                if isinstance(v, str):
                    raise ValueError(f"{lab} {hit}={v!r} is not numeric ({where})")
                if lab == "energy":
                    arr = np.asarray(v, dtype=np.float64).reshape(-1)
                    if arr.size != 1:
                        raise ValueError(f"{hit} must be one number, got {arr.size} ({where})")
                    labels[lab].append(arr[0])
                elif lab == "stress":
                    labels[lab].append(_voigt_or_full(v, where, hit))
                else:
                    arr = np.asarray(v, dtype=np.float64).reshape(-1)
                    if arr.shape != (3,):
                        raise ValueError(f"{hit} must hold 3 numbers, got {arr.size} ({where})")
                    labels[lab].append(arr)
    if not counts:
        raise ValueError(f"{str(p)!r} holds no frames")
    out = {k: (np.concatenate(v) if k == "forces" else np.stack(v)) for k, v in labels.items()
           if found.get(k) is not None}
    return {"positions": np.concatenate(pos), "numbers": np.concatenate(nums),
            "num_atoms": np.asarray(counts, dtype=np.int64), "cell": np.stack(cells),
            "pbc": np.stack(pbcs), "labels": out, "declared": declared, "metadata": meta}


# -- ASE database ------------------------------------------------------------------------------
def _read_ase_db(p: Path, keys: dict[str, str | None]) -> dict[str, Any]:
    try:
        import ase.db
    except ImportError as exc:  # pragma: no cover - ase is in the data extra
        raise ImportError(f"reading ASE databases needs ase (pip install ase): {exc}") from None
    pos, nums, counts, cells, pbcs = [], [], [], [], []
    labels: dict[str, list] = {k: [] for k in _LABELS}
    found: dict[str, bool] = {}
    with ase.db.connect(str(p), create_indices=False) as db:
        rows = list(db.select())
    for f, row in enumerate(rows):
        where = f"{p}, row id {row.id} (frame {f})"
        atoms = row.toatoms()
        pos.append(atoms.positions)
        nums.append(atoms.numbers)
        counts.append(len(atoms))
        cells.append(np.asarray(atoms.cell.array))
        pbcs.append(np.asarray(atoms.pbc))
        kvp = row.get("key_value_pairs", {}) or {}
        data = row.get("data", {}) or {}
        for lab in _LABELS:
            name = keys[lab]
            val = None
            if name is None:
                val = row.get(lab)  # calculator results stored by ASE
            else:
                val = kvp.get(name, data.get(name))
                if val is None and name == lab:
                    val = row.get(lab)
            present = val is not None
            if f == 0:
                found[lab] = present
                if not present and name is not None:
                    raise ValueError(f"{lab}_key={name!r} not found in {where}; key-value pairs:"
                                     f" {sorted(kvp) or 'none'}, data: {sorted(data) or 'none'}")
            elif present != found[lab]:
                raise ValueError(f"{where} {'has' if present else 'lacks'} {lab} unlike the "
                                 f"first row; every row needs the same labels")
            if not present:
                continue
            if lab == "energy":
                labels[lab].append(float(val))
            elif lab == "forces":
                arr = np.asarray(val, dtype=np.float64)
                if arr.shape != (len(atoms), 3):
                    raise ValueError(f"forces must have shape ({len(atoms)}, 3), got "
                                     f"{arr.shape} ({where})")
                labels[lab].append(arr)
            elif lab == "stress":
                labels[lab].append(_voigt_or_full(val, where, "stress"))
            else:
                labels[lab].append(np.asarray(val, dtype=np.float64).reshape(3))
    if not counts:
        raise ValueError(f"ASE database {str(p)!r} holds no rows")
    out = {k: (np.concatenate(v) if k == "forces" else np.stack(v)) for k, v in labels.items()
           if found.get(k)}
    return {"positions": np.concatenate(pos), "numbers": np.concatenate(nums),
            "num_atoms": np.asarray(counts, dtype=np.int64), "cell": np.stack(cells),
            "pbc": np.stack(pbcs), "labels": out, "declared": {}}


# -- npz (MD17 style) --------------------------------------------------------------------------
def _pick(npz: Any, explicit: str | None, defaults: Sequence[str], what: str, p: Path,
          required: bool) -> str | None:
    if explicit is not None:
        if explicit not in npz.files:
            raise ValueError(f"{what} key {explicit!r} not found in {str(p)!r}; its arrays are: "
                             f"{', '.join(npz.files)}")
        return explicit
    for name in defaults:
        if name in npz.files:
            return name
    if required:
        raise ValueError(f"{str(p)!r} has no {what} array (looked for {', '.join(defaults)}); "
                         f"its arrays are: {', '.join(npz.files)}; pass {what}_key=")
    return None


def _read_npz(p: Path, keys: dict[str, str | None], positions_key: str | None,
              numbers_key: str | None) -> dict[str, Any]:
    d = _DEFAULT_KEYS["npz"]
    try:
        npz = np.load(p, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"cannot read {str(p)!r} as npz: {exc}") from None
    with npz:
        rk = _pick(npz, positions_key, d["positions"], "positions", p, True)
        zk = _pick(npz, numbers_key, d["numbers"], "numbers", p, True)
        R = np.asarray(npz[rk], dtype=np.float64)
        if R.ndim == 2:
            R = R[None]
        if R.ndim != 3 or R.shape[2] != 3:
            raise ValueError(f"{rk} must have shape (frames, atoms, 3), got {npz[rk].shape} "
                             f"({p})")
        B, n = R.shape[:2]
        z = np.asarray(npz[zk])
        if z.ndim == 2:  # per-frame numbers; MD17 files repeat one molecule
            if z.shape != (B, n):
                raise ValueError(f"{zk} has shape {z.shape}, expected ({n},) or ({B}, {n}) to "
                                 f"match {rk} {R.shape} ({p})")
            z = z.reshape(-1)
        elif z.shape == (n,):
            z = np.tile(z, B)
        else:
            raise ValueError(f"{zk} has shape {z.shape}, expected ({n},) to match {rk} "
                             f"{R.shape} ({p})")
        labels: dict[str, np.ndarray] = {}
        for lab in _LABELS:
            name = _pick(npz, keys[lab], d[lab], f"{lab}", p, False)
            if name is None:
                continue
            a = np.asarray(npz[name], dtype=np.float64)
            want = {"energy": [(B,), (B, 1)], "forces": [(B, n, 3)], "stress": [(B, 3, 3)],
                    "dipole": [(B, 3)]}[lab]
            if a.shape not in want:
                raise ValueError(f"{name} has shape {a.shape} but {rk} has {B} frames of {n} "
                                 f"atoms; expected {' or '.join(map(str, want))} ({p})")
            labels[lab] = a.reshape(-1, 3) if lab == "forces" else (
                a.reshape(B) if lab == "energy" else a)
        cell = np.zeros((B, 3, 3))
        pbc = np.zeros((B, 3), bool)
        if "cell" in npz.files:
            c = np.asarray(npz["cell"], dtype=np.float64)
            cell = np.broadcast_to(c.reshape(-1, 3, 3), (B, 3, 3)) if c.shape in (
                (3, 3), (1, 3, 3), (B, 3, 3)) else None
            if cell is None:
                raise ValueError(f"cell has shape {c.shape}, expected (3, 3) or ({B}, 3, 3) "
                                 f"({p})")
            pbc = np.ones((B, 3), bool)
        if "pbc" in npz.files:
            pbc = np.broadcast_to(np.asarray(npz["pbc"], dtype=bool).reshape(-1, 3), (B, 3))
        declared: dict[str, str] = {}
        if "units" in npz.files and npz["units"].dtype.kind == "U":
            try:
                units = json.loads(str(npz["units"]))
            except json.JSONDecodeError:
                raise ValueError(f"the 'units' entry of {str(p)!r} is not JSON") from None
            declared = {f"{k}_unit": v for k, v in units.items() if k in ("energy", "length")}
        meta = {}
        for key in ("name", "theory", "type"):
            if key in npz.files and npz[key].dtype.kind in "US":
                meta[key] = str(npz[key].reshape(-1)[0]) if npz[key].size else ""
    return {"positions": R.reshape(-1, 3), "numbers": z, "num_atoms": np.full(B, n, np.int64),
            "cell": cell, "pbc": pbc, "labels": labels, "declared": declared, "metadata": meta}


# -- HDF5 --------------------------------------------------------------------------------------
def _read_hdf5(p: Path, keys: dict[str, str | None]) -> dict[str, Any]:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is in the data extra
        raise ImportError(f"reading HDF5 needs h5py (pip install h5py): {exc}") from None
    try:
        fh = h5py.File(p, "r")
    except OSError as exc:
        raise ValueError(f"cannot open {str(p)!r} as HDF5: {exc}") from None
    with fh:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in fh.attrs.items()}
        fmt = attrs.get("format")
        if fmt is not None and str(fmt) != _HDF5_FORMAT:
            raise ValueError(f"{str(p)!r} has format attribute {fmt!r}, expected "
                             f"{_HDF5_FORMAT!r}")
        if int(attrs.get("version", _HDF5_VERSION)) > _HDF5_VERSION:
            raise ValueError(f"{str(p)!r} has layout version {attrs['version']}, this reader "
                             f"knows up to {_HDF5_VERSION}")
        for need in ("num_atoms", "atomic_numbers", "positions"):
            if need not in fh:
                raise ValueError(f"{str(p)!r} lacks the dataset /{need} of the tensormol HDF5 "
                                 f"layout (see tensormol.data.read_dataset); it has: "
                                 f"{', '.join(fh.keys())}")
        counts = np.asarray(fh["num_atoms"][()])
        ntot = int(counts.sum()) if counts.size else 0
        B = len(counts)
        numbers = np.asarray(fh["atomic_numbers"][()])
        positions = np.asarray(fh["positions"][()], dtype=np.float64)
        if numbers.shape != (ntot,) or positions.shape != (ntot, 3):
            raise ValueError(f"/atomic_numbers {numbers.shape} and /positions "
                             f"{positions.shape} must have {ntot} rows (sum of /num_atoms) "
                             f"({p})")
        cell = np.asarray(fh["cell"][()], dtype=np.float64) if "cell" in fh else np.zeros(
            (B, 3, 3))
        pbc = np.asarray(fh["pbc"][()], dtype=bool) if "pbc" in fh else np.zeros((B, 3), bool)
        labels = {}
        for lab in _LABELS:
            name = keys[lab] or lab
            if name not in fh:
                if keys[lab] is not None:
                    raise ValueError(f"{lab}_key={name!r} not found in {str(p)!r}; it has: "
                                     f"{', '.join(fh.keys())}")
                continue
            labels[lab] = np.asarray(fh[name][()], dtype=np.float64)
    declared = {k: attrs[k] for k in ("energy_unit", "length_unit") if k in attrs}
    meta = {k: v for k, v in attrs.items() if k not in ("format", "version", "energy_unit",
                                                         "length_unit")
            and isinstance(v, (str, int, float))}
    return {"positions": positions, "numbers": numbers, "num_atoms": counts, "cell": cell,
            "pbc": pbc, "labels": labels, "declared": declared, "metadata": meta}


# -- writers -----------------------------------------------------------------------------------
def _tmp_path(p: Path) -> Path:
    return p.with_name(f".tmp.{p.name}")  # keeps the suffix (compression, format)


def write_dataset(dataset: AtomicDataset, path: str | Path, format: str | None = None) -> Path:
    """Write a data set in canonical units (eV, Å), atomically (a temporary file is renamed).

    Formats: ``extxyz`` (units in each header, full precision), ``hdf5`` (the layout above),
    ``npz`` (MD17 keys ``R``, ``z``, ``E``, ``F``; every structure must have the same atoms) and
    ``ase`` (an ASE database; the path must not exist).
    """
    p = Path(path)
    fmt = _check_format(format) if format is not None else detect_format(p)
    tmp = _tmp_path(p)
    if tmp.exists():
        tmp.unlink()
    try:
        if fmt == "extxyz":
            _write_extxyz(dataset, tmp)
        elif fmt == "hdf5":
            _write_hdf5(dataset, tmp)
        elif fmt == "npz":
            _write_npz(dataset, tmp)
        else:
            if p.exists():
                raise FileExistsError(f"{str(p)!r} exists; ASE databases are not overwritten")
            _write_ase(dataset, tmp)
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p


def _write_extxyz(ds: AtomicDataset, tmp: Path) -> None:
    meta = {k: v for k, v in ds.metadata.items()
            if k in ("level_of_theory", "code", "method") and isinstance(v, str)}
    with open_text(tmp, "wt") as fh:
        for i in range(len(ds)):
            s = ds[i]
            info: dict[str, Any] = {}
            if K.ENERGY in s:
                info["energy"] = float(s[K.ENERGY][0])
            if K.STRESS in s:
                info["stress"] = s[K.STRESS][0].numpy().reshape(9)
            if K.DIPOLE in s:
                info["dipole"] = s[K.DIPOLE][0].numpy()
            info.update(meta)
            info.update({"energy_unit": "eV", "length_unit": "Angstrom"})
            arrays = {"forces": s[K.FORCES].numpy()} if K.FORCES in s else {}
            cell = s[K.CELL][0].numpy()
            fh.write(format_extxyz_frame(
                s[K.ATOMIC_NUMBERS].numpy(), s[K.POSITIONS].numpy(),
                cell=cell if np.any(cell) else None, pbc=s[K.PBC][0].numpy(), info=info,
                arrays=arrays, decimals=12))


def _write_hdf5(ds: AtomicDataset, tmp: Path) -> None:
    import h5py

    with h5py.File(tmp, "w") as fh:
        fh.attrs["format"] = _HDF5_FORMAT
        fh.attrs["version"] = _HDF5_VERSION
        fh.attrs["energy_unit"] = "eV"
        fh.attrs["length_unit"] = "Angstrom"
        for k, v in ds.metadata.items():
            if k in ("level_of_theory", "code", "method") and isinstance(v, str):
                fh.attrs[k] = v
        fh["num_atoms"] = ds.num_atoms.numpy()
        fh["atomic_numbers"] = ds.atomic_numbers.numpy()
        fh["positions"] = ds.positions.numpy()
        fh["cell"] = ds.cell.numpy()
        fh["pbc"] = ds.pbc.numpy()
        for key, t in ds.labels.items():
            fh[key] = t.numpy()


def _write_npz(ds: AtomicDataset, tmp: Path) -> None:
    counts = ds.num_atoms
    if len(ds) == 0:
        raise ValueError("cannot write an empty data set as MD17-style npz")
    n = int(counts[0])
    z = ds.atomic_numbers.reshape(-1, n) if bool((counts == n).all()) else None
    if z is None or not bool((z == z[0]).all()):
        raise ValueError("MD17-style npz needs every structure to have the same atoms in the "
                         "same order; use extxyz or hdf5 for mixed data sets")
    arrays: dict[str, np.ndarray] = {"R": ds.positions.numpy().reshape(-1, n, 3),
                                     "z": z[0].numpy()}
    if K.ENERGY in ds.labels:
        arrays["E"] = ds.labels[K.ENERGY].numpy()
    if K.FORCES in ds.labels:
        arrays["F"] = ds.labels[K.FORCES].numpy().reshape(-1, n, 3)
    if K.DIPOLE in ds.labels:
        arrays["D"] = ds.labels[K.DIPOLE].numpy()
    if K.STRESS in ds.labels:
        arrays["stress"] = ds.labels[K.STRESS].numpy()
    if bool(ds.pbc.any()):
        arrays["cell"] = ds.cell.numpy()
        arrays["pbc"] = ds.pbc.numpy()
    arrays["units"] = np.array(json.dumps({"energy": "eV", "length": "Angstrom"}))
    with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a path
        np.savez(fh, **arrays)


def _write_ase(ds: AtomicDataset, tmp: Path) -> None:
    import ase
    import ase.db
    from ase.calculators.singlepoint import SinglePointCalculator

    with ase.db.connect(str(tmp), type="db", append=False) as db:
        for i in range(len(ds)):
            s = ds[i]
            atoms = ase.Atoms(numbers=s[K.ATOMIC_NUMBERS].numpy(),
                              positions=s[K.POSITIONS].numpy(), cell=s[K.CELL][0].numpy(),
                              pbc=s[K.PBC][0].numpy())
            res = {}
            if K.ENERGY in s:
                res["energy"] = float(s[K.ENERGY][0])
            if K.FORCES in s:
                res["forces"] = s[K.FORCES].numpy()
            if K.STRESS in s:
                res["stress"] = s[K.STRESS][0].numpy()
            if K.DIPOLE in s:
                res["dipole"] = s[K.DIPOLE][0].numpy()
            atoms.calc = SinglePointCalculator(atoms, **res)
            db.write(atoms)
