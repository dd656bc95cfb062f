"""``tensormol info``: versions, platforms, backends and registered components."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata as md
import platform

__all__ = ["add_info_subcommand", "collect_info", "format_info"]

# Optional packages worth reporting; absent ones are shown as "not installed".
_PACKAGES = ("torch", "e3nn", "vesin-torch", "ase", "lightning", "tblite", "openmm", "openmmml",
             "openmmtorch", "pymbar")


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def _openmm_platforms() -> str:
    try:
        import openmm
    except ImportError:
        return "openmm not installed"
    count = openmm.Platform.getNumPlatforms()
    return ", ".join(openmm.Platform.getPlatform(i).getName() for i in range(count))


def _openmmtorch() -> str:
    try:
        importlib.import_module("openmmtorch")
    except Exception as err:  # the PyPI wheel fails to import without CUDA torch
        return f"does not import ({type(err).__name__}: {str(err).splitlines()[0][:80]})"
    return "imports"


def bundled_datasets() -> tuple[str | None, list[str]]:
    """The folder of the data sets bundled with the source (``data/*.xyz.gz``) and their names;
    ``(None, [])`` when tensormol was installed without its source tree."""
    from pathlib import Path

    import tensormol

    folder = Path(tensormol.__file__).resolve().parents[1] / "data"
    files = sorted(folder.glob("*.xyz.gz")) if folder.is_dir() else []
    if not files:
        return None, []
    return str(folder), [f.name for f in files]


def collect_info(build_ext: bool = False) -> dict[str, object]:
    """Gather the facts ``tensormol info`` prints, as a dict (also used by tests)."""
    import torch

    import tensormol
    from tensormol import _ext, registry

    # Importing the ops fills the backend table (models need nothing: the registry finds them).
    for mod in ("tensormol.ops",):
        try:
            importlib.import_module(mod)
        except ImportError:
            pass
    import sys

    if build_ext:
        print("building/loading the compiled extension (the first build takes about a minute; "
              f"cached in {_ext_cache_dir()})...", file=sys.stderr, flush=True)
    import time

    t0 = time.perf_counter()
    status = _ext.load_extension() if build_ext else _ext.ext_status()
    if build_ext:
        print(f"compiled extension {'loaded' if status.loaded else 'NOT loaded'} after "
              f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    data_dir, datasets = bundled_datasets()
    return {
        "tensormol": tensormol.__version__,
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in _PACKAGES},
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "openmm_platforms": _openmm_platforms(),
        "openmmtorch": _openmmtorch(),
        "compiled_extension": {"loaded": status.loaded, "cuda": status.cuda,
                               "detail": status.reason,
                               "sources": str(_ext.sources_dir())},
        "models": registry.MODELS.names(),
        "datasets": datasets,
        "datasets_dir": data_dir,
        # Every registered kernel and the backends usable here (the extension's once loaded).
        "backends": {op: list(k.usable()) for op, k in _ext.kernels().items()},
    }


def format_info(info: dict[str, object]) -> str:
    lines = [f"tensormol {info['tensormol']} (Python {info['python']})"]
    lines.append("packages:")
    for name, ver in info["packages"].items():  # type: ignore[union-attr]
        lines.append(f"  {name:<12} {ver}")
    lines.append(
        f"torch threads: {info['torch_threads']}, CUDA available: {info['cuda_available']}"
    )
    lines.append(f"OpenMM platforms: {info['openmm_platforms']}")
    lines.append(f"openmmtorch: {info['openmmtorch']}")
    ext = info["compiled_extension"]
    state = "loaded" if ext["loaded"] else "not loaded"  # type: ignore[index]
    detail = f"(CUDA kernels: {ext['cuda']}); {ext['detail']}"  # type: ignore[index]
    lines.append(f"compiled extension: {state} {detail}")
    lines.append(f"models: {', '.join(info['models']) or '(none)'}")  # type: ignore[arg-type]
    if info.get("datasets"):
        lines.append(f"bundled data sets ({info['datasets_dir']}): "
                     f"{', '.join(info['datasets'])}")  # type: ignore[arg-type]
    else:
        lines.append("bundled data sets: not in this installation (data/ of the source tree)")
    for op, names in info["backends"].items():  # type: ignore[union-attr]
        lines.append(f"backends[{op}]: {', '.join(names)}")
    return "\n".join(lines)


def _ext_cache_dir() -> str:
    import os

    return os.environ.get("TORCH_EXTENSIONS_DIR", "torch's extension cache")


def _run(args: argparse.Namespace) -> int:
    if args.path:
        # A model bundle is described by the export module once it exists.
        from tensormol.cli import _export  # type: ignore[attr-defined]

        return _export.describe_bundle(args.path)
    print(format_info(collect_info(build_ext=args.build_ext)))
    return 0


def add_info_subcommand(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("info", help="versions, platforms, backends, registered models")
    p.add_argument("path", nargs="?", help="a model bundle (.tmol) to describe")
    p.add_argument("--build-ext", action="store_true",
                   help="compile/load the C++/CUDA extension (first time takes about a minute)")
    p.set_defaults(func=_run)
