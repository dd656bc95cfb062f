"""The model bundle: one file holding everything needed to rebuild a trained potential.

A bundle is a ``torch.save`` archive of plain data (loaded with ``weights_only=True``, so opening a
bundle never runs code from it):

``format``          ``"tensormol.bundle"``
``schema_version``  int, :data:`SCHEMA_VERSION` when written
``model``           ``{"name": <registry name>, "params": <builder keyword arguments>}``; never a
                    Python import path
``state_dict``      the (EMA) weights and buffers
``metadata``        species (atomic numbers), cutoff (Å), units, model dtype, tensormol and torch
                    versions, creation time, source, and free-form training information
``checksum``        ``{"algorithm": "sha256", "digest": <hex>}`` of everything above (schema ≥ 2)

Integrity: the archive's own format does not notice flipped bytes inside tensor data (2 kB of
them loaded silently and shifted energies by 14.6 meV), so :func:`load_bundle` recomputes the
SHA-256 of the model name, params, weights (names, dtypes, shapes, bytes) and metadata and
refuses a bundle whose digest differs. Every unreadable file (empty, truncated, damaged, not a
bundle, wrong checksum) raises :class:`BundleError` with one sentence saying what is wrong and
what to do. Bundles of schema version 1 (written before checksums) still load, with a
:class:`BundleIntegrityWarning` asking to re-export them: refusing them would strand every model
exported before, and nothing in them is less trustworthy than before.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tensormol.units import MODEL_UNITS

__all__ = [
    "SCHEMA_VERSION",
    "BUNDLE_FORMAT",
    "BUNDLE_UNITS",
    "Bundle",
    "BundleError",
    "BundleIntegrityWarning",
    "bundle_checksum",
    "build_model",
    "save_bundle",
    "load_bundle",
    "load_model",
    "bundle_from_bytes",
    "resolved_params",
]

#: Version of the bundle layout written by this tensormol; readers accept any version <= this.
#: 2: a SHA-256 checksum of the content.
SCHEMA_VERSION = 2
BUNDLE_FORMAT = "tensormol.bundle"
#: Units of every quantity a tensormol model takes or returns (:data:`tensormol.units.MODEL_UNITS`).
BUNDLE_UNITS: dict[str, str] = MODEL_UNITS
_CHECKSUM_ALGORITHM = "sha256"
_REEXPORT = "re-export it from its checkpoint (`tensormol export CHECKPOINT -o model.tmol`)"


class BundleError(ValueError):
    """A bundle cannot be read or does not fit the system it is used for."""


class BundleIntegrityWarning(UserWarning):
    """A bundle without a checksum (schema version 1) was loaded unverified."""


def bundle_checksum(name: str, params: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor],
                    metadata: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a bundle's content: model name and params, weights, metadata.

    Tensors enter by name, dtype, shape and raw bytes (in name order); the rest as canonical
    JSON, so the digest does not depend on how the archive was written.
    """
    h = hashlib.sha256()
    head = {"name": name, "params": params, "metadata": metadata}
    h.update(json.dumps(head, sort_keys=True, ensure_ascii=True, default=repr).encode())
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(f"\n{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        # Bytes as stored (a view as uint8 also covers dtypes numpy lacks, e.g. bfloat16).
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _symbol(z: int) -> str:
    from tensormol.elements import element_symbol

    return element_symbol(int(z))


def build_model(name: str, params: Mapping[str, Any]) -> torch.nn.Module:
    """Build a registered model ``name`` from its builder arguments ``params``."""
    from tensormol.registry import MODELS

    builder = MODELS.get(name)
    return builder(**dict(params))


def _plain(obj: Any) -> Any:
    """Convert config containers (frozen dicts, tuples, numpy scalars) to plain Python data."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (bool, int, float, str)) or obj is None:
        return obj
    if hasattr(obj, "item") and callable(obj.item):  # numpy / 0-d torch scalars
        return obj.item()
    raise TypeError(
        f"model params must be plain data (dict, list, str, int, float, bool, None); "
        f"got {type(obj).__name__}: {obj!r}"
    )


def _versions() -> dict[str, str]:
    import tensormol

    return {"tensormol": str(tensormol.__version__), "torch": str(torch.__version__)}


@dataclass
class Bundle:
    """A loaded bundle: model name and builder arguments, weights and metadata.

    Attributes
    ----------
    name : str
        Registry name of the model (``tensormol.registry.MODELS``).
    params : dict
        Keyword arguments of the model builder (the resolved model config).
    state_dict : dict[str, Tensor]
        Weights and buffers (the EMA weights when exported from a training checkpoint).
    metadata : dict
        ``species`` (list of atomic numbers), ``cutoff`` (Å), ``units``, ``model_dtype``,
        ``versions``, ``created``, ``source``, ``training``.
    schema_version : int
    path : Path or None
        Where the bundle was read from.
    """

    name: str
    params: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, Any]
    schema_version: int = SCHEMA_VERSION
    path: Path | None = field(default=None, compare=False)

    # ------------------------------------------------------------------ metadata shortcuts
    @property
    def species(self) -> list[int]:
        """Atomic numbers the model was trained on, sorted."""
        return [int(z) for z in self.metadata["species"]]

    @property
    def cutoff(self) -> float:
        """Interaction cutoff in Å."""
        return float(self.metadata["cutoff"])

    @property
    def model_dtype(self) -> torch.dtype:
        return getattr(torch, str(self.metadata.get("model_dtype", "float32")))

    def check_species(self, atomic_numbers: Iterable[int], what: str = "the system") -> None:
        """Raise :class:`BundleError` if ``atomic_numbers`` holds an element the model lacks."""
        known = set(self.species)
        missing = sorted({int(z) for z in atomic_numbers} - known)
        if missing:
            names = ", ".join(f"{_symbol(z)} (Z={z})" for z in missing)
            trained = ", ".join(_symbol(z) for z in self.species)
            src = f" {self.path}" if self.path else ""
            raise BundleError(
                f"{what} contains {names}, which the model{src} was not trained on (it knows "
                f"{trained}); use a model trained on these elements, or put only atoms of "
                f"{trained} in the ML region (e.g. `tensormol md --ml` / the ml_atoms argument)"
            )

    # ------------------------------------------------------------------ model
    def build_model(self, device: str | torch.device = "cpu",
                    atomic_numbers: Iterable[int] | None = None) -> torch.nn.Module:
        """Rebuild the model with its weights, in eval mode, on ``device``.

        Parameters
        ----------
        device : str or torch.device
        atomic_numbers : iterable of int, optional
            Elements of the system the model will see; checked against the bundle's species.
        """
        if atomic_numbers is not None:
            self.check_species(atomic_numbers)
        model = build_model(self.name, self.params)
        model.to(dtype=self.model_dtype)
        missing, unexpected = model.load_state_dict(self.state_dict, strict=False)
        if missing or unexpected:
            raise BundleError(
                f"the weights in bundle {self.path or ''} do not fit model {self.name!r} built "
                f"from its params (missing {missing[:5]}, unexpected {unexpected[:5]}); the "
                "bundle was written by an incompatible tensormol version: re-export it from "
                "its checkpoint with this version (`tensormol export CHECKPOINT -o model.tmol`)"
            )
        model.eval()
        model.requires_grad_(False)
        return model.to(device)

    def checksum(self) -> str:
        """SHA-256 (hex) of the content (:func:`bundle_checksum`)."""
        return bundle_checksum(self.name, self.params, self.state_dict, self.metadata)

    def to_dict(self) -> dict[str, Any]:
        """The archive content as written by :func:`save_bundle` (always the current schema,
        with a checksum)."""
        return {
            "format": BUNDLE_FORMAT,
            "schema_version": SCHEMA_VERSION,
            "model": {"name": self.name, "params": self.params},
            "state_dict": self.state_dict,
            "metadata": self.metadata,
            "checksum": {"algorithm": _CHECKSUM_ALGORITHM, "digest": self.checksum()},
        }

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        torch.save(self.to_dict(), buf)
        return buf.getvalue()

    def describe(self) -> str:
        """A human-readable summary (what ``tensormol info model.tmol`` prints)."""
        m = self.metadata
        n_params = sum(int(t.numel()) for k, t in self.state_dict.items()
                       if t.is_floating_point() and not k.endswith(("reference_energies",
                                                                    "energy_scale")))
        versions = m.get("versions", {})
        lines = [
            f"tensormol model bundle {self.path or ''}".rstrip(),
            f"  schema version : {self.schema_version} (this tensormol reads <= {SCHEMA_VERSION})",
            f"  model          : {self.name}",
            f"  params         : {self.params}",
            f"  species        : {', '.join(_symbol(z) for z in self.species)} "
            f"(Z = {self.species})",
            f"  cutoff         : {self.cutoff:g} Å",
            f"  model dtype    : {m.get('model_dtype')}",
            "  units          : " + ", ".join(f"{k} {v}" for k, v in m.get("units", {}).items()),
            f"  weights        : {n_params} numbers in {len(self.state_dict)} tensors",
            f"  written by     : tensormol {versions.get('tensormol', '?')}, "
            f"torch {versions.get('torch', '?')}, {m.get('created', '?')}",
            f"  source         : {m.get('source', '?')}",
        ]
        training = m.get("training") or {}
        for k, v in training.items():
            lines.append(f"  training.{k:<7}: {v}")
        return "\n".join(lines)


def resolved_params(model: torch.nn.Module) -> dict[str, Any]:
    """Builder arguments that rebuild ``model``: its full config plus ``atomic_numbers``."""
    cfg = getattr(model, "config", None)
    if cfg is None or not hasattr(cfg, "to_dict"):
        raise TypeError(
            f"cannot read the resolved config of a {type(model).__name__}; pass params= "
            "explicitly"
        )
    params = dict(cfg.to_dict())
    params["atomic_numbers"] = [int(z) for z in model.atomic_numbers]
    return params


def save_bundle(model: torch.nn.Module, path: str | os.PathLike, *, name: str,
                params: Mapping[str, Any] | None = None, source: str | None = None,
                training: Mapping[str, Any] | None = None) -> Bundle:
    """Write ``model`` (built as ``MODELS.get(name)(**params)``) to a bundle file.

    Parameters
    ----------
    model : EnergyModel
        The model whose weights are stored (pass the EMA copy for a trained model).
    path : path-like
        Output file (``.tmol`` by convention).
    name : str
        Registry name the model was built from.
    params : mapping, optional
        The builder's keyword arguments (plain data); default: :func:`resolved_params`, the
        model's full config and species.
    source : str, optional
        Where the weights come from (checkpoint path), recorded in the metadata.
    training : mapping, optional
        Free-form plain-data facts about training (data set, metrics) recorded in the metadata.

    Returns
    -------
    Bundle
    """
    from tensormol.registry import MODELS

    MODELS.get(name)  # unknown names fail here, listing the valid ones
    species = getattr(model, "atomic_numbers", None)
    cutoff = getattr(model, "cutoff", None)
    if species is None or cutoff is None:
        raise TypeError(
            f"model must be a tensormol EnergyModel with atomic_numbers and cutoff, got "
            f"{type(model).__name__}"
        )
    if params is None:
        params = resolved_params(model)
    dtype = getattr(model, "model_dtype", torch.float32)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    bundle = Bundle(
        name=str(name),
        params=_plain(params),
        state_dict=state,
        metadata={
            "species": [int(z) for z in species],
            "cutoff": float(cutoff),
            "units": dict(BUNDLE_UNITS),
            "model_dtype": str(dtype).replace("torch.", ""),
            "versions": _versions(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "source": str(source) if source is not None else "python",
            "training": _plain(dict(training or {})),
        },
    )
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(bundle.to_dict(), tmp)
    os.replace(tmp, path)  # never leave a half-written bundle behind
    bundle.path = path
    return bundle


_ZIP_MAGIC = b"PK\x03\x04"


def _unreadable(where: str, data: bytes) -> BundleError:
    """The one-sentence error for a file ``torch.load`` could not read."""
    size = len(data)
    if size == 0:
        return BundleError(f"model bundle {where} is empty (0 bytes), so it was never written "
                           f"completely; {_REEXPORT}")
    foreign = BundleError(f"{where} is not a tensormol model bundle (not a PyTorch archive); "
                          "create one with `tensormol export CHECKPOINT -o model.tmol`")
    if not data[:4].startswith(_ZIP_MAGIC):
        return foreign
    import zipfile

    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        names = None  # a zip that ends early: truncated
    if names is not None and not any(n.endswith("data.pkl") for n in names):
        return foreign  # another kind of zip (npz, ...)
    return BundleError(f"model bundle {where} is damaged (truncated or corrupted, {size} bytes "
                       f"cannot be read as an archive); {_REEXPORT}")


def _bundle_from_dict(raw: Any, where: str) -> Bundle:
    if not isinstance(raw, dict) or raw.get("format") != BUNDLE_FORMAT:
        raise BundleError(
            f"{where} is not a tensormol model bundle; create one with "
            "`tensormol export CHECKPOINT -o model.tmol`"
        )
    version = raw.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise BundleError(f"{where} has an invalid schema_version {version!r}; {_REEXPORT}")
    if version > SCHEMA_VERSION:
        import tensormol

        raise BundleError(
            f"{where} was written with bundle schema version {version}, newer than the version "
            f"{SCHEMA_VERSION} this tensormol {tensormol.__version__} reads; upgrade tensormol "
            "(pip install -U tensormol) or re-export the checkpoint with this version"
        )
    model = raw.get("model")
    state, metadata = raw.get("state_dict"), raw.get("metadata")
    if (not isinstance(model, dict) or not isinstance(model.get("name"), str)
            or not isinstance(state, dict) or not isinstance(metadata, dict)
            or not all(isinstance(v, torch.Tensor) for v in state.values())):
        raise BundleError(f"model bundle {where} lacks parts of a bundle (model, state_dict or "
                          f"metadata are missing or malformed); {_REEXPORT}")
    bundle = Bundle(
        name=model["name"],
        params=dict(model.get("params") or {}),
        state_dict=dict(state),
        metadata=dict(metadata),
        schema_version=version,
    )
    stored = raw.get("checksum")
    if version >= 2:
        if (not isinstance(stored, dict) or stored.get("algorithm") != _CHECKSUM_ALGORITHM
                or not isinstance(stored.get("digest"), str)):
            raise BundleError(f"model bundle {where} has no valid {_CHECKSUM_ALGORITHM} checksum, "
                              f"so its content cannot be verified; {_REEXPORT}")
        if bundle.checksum() != stored["digest"]:
            raise BundleError(f"model bundle {where} is corrupted: its content does not match "
                              f"the {_CHECKSUM_ALGORITHM} checksum written at export; {_REEXPORT}")
    else:
        warnings.warn(f"model bundle {where} has schema version {version}, written before "
                      "bundles carried a checksum, so it was loaded unverified; re-export it "
                      "from its checkpoint to add one", BundleIntegrityWarning, stacklevel=4)
    return bundle


def load_bundle(path: str | os.PathLike | Bundle) -> Bundle:
    """Read a bundle file (never executing code from it) and verify its checksum.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    BundleError
        With one sentence saying what is wrong and what to do, if the file is empty, truncated
        or damaged, not a bundle, fails its checksum, or was written with a newer schema version.

    Warns
    -----
    BundleIntegrityWarning
        For a bundle of schema version 1 (no checksum), loaded unverified.
    """
    if isinstance(path, Bundle):
        return path
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"model bundle {str(p)!r} does not exist")
    data = p.read_bytes()
    bundle = _bundle_from_data(data, str(p))
    bundle.path = p
    return bundle


def _bundle_from_data(data: bytes, where: str) -> Bundle:
    try:
        raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:  # torch raises many kinds (and messages) for a damaged or foreign file
        raise _unreadable(where, data) from None
    return _bundle_from_dict(raw, where)


def bundle_from_bytes(data: bytes, where: str = "bundle") -> Bundle:
    """Rebuild a :class:`Bundle` from :meth:`Bundle.to_bytes` output (used by pickling);
    verified like :func:`load_bundle`."""
    return _bundle_from_data(bytes(data), where)


def load_model(path: str | os.PathLike | Bundle, *, device: str | torch.device = "cpu",
               atomic_numbers: Iterable[int] | None = None) -> torch.nn.Module:
    """Load a bundle and rebuild its model (eval mode, no parameter gradients).

    ``atomic_numbers`` (optional) are checked against the bundle's species first.
    """
    return load_bundle(path).build_model(device=device, atomic_numbers=atomic_numbers)
