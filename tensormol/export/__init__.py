"""Export of trained potentials: the model bundle, the ASE calculator, the openmm-ml plugin.

>>> from tensormol.export import export_checkpoint, TensorMolCalculator
>>> export_checkpoint("runs/ethanol/best.ckpt", "ethanol.tmol")  # doctest: +SKIP
>>> atoms.calc = TensorMolCalculator("ethanol.tmol")  # doctest: +SKIP
>>> from openmmml import MLPotential  # doctest: +SKIP
>>> potential = MLPotential("tensormol", bundle="ethanol.tmol")  # doctest: +SKIP

ASE and OpenMM are imported only when their parts are used.
"""

from tensormol.export._bundle import (
    BUNDLE_FORMAT,
    BUNDLE_UNITS,
    SCHEMA_VERSION,
    Bundle,
    BundleError,
    BundleIntegrityWarning,
    bundle_checksum,
    load_bundle,
    load_model,
    resolved_params,
    save_bundle,
)
from tensormol.export._checkpoint import export_checkpoint
from tensormol.export._geometry import GeometryError

__all__ = [
    "SCHEMA_VERSION",
    "BUNDLE_FORMAT",
    "BUNDLE_UNITS",
    "Bundle",
    "BundleError",
    "BundleIntegrityWarning",
    "bundle_checksum",
    "GeometryError",
    "save_bundle",
    "load_bundle",
    "load_model",
    "resolved_params",
    "export_checkpoint",
    "TensorMolCalculator",
    "TensorMolPotentialImplFactory",
    "TensorMolPotentialImpl",
    "TensorMolForceCallback",
    "register_openmm_plugin",
]

_LAZY = {
    "TensorMolCalculator": "tensormol.export._ase",
    "TensorMolPotentialImplFactory": "tensormol.export._openmm_entry",
    "TensorMolPotentialImpl": "tensormol.export._openmm_plugin",
    "TensorMolForceCallback": "tensormol.export._openmm_plugin",
    "register_openmm_plugin": "tensormol.export._openmm_entry",
}


def __getattr__(name: str):
    # ASE and OpenMM are optional: import them only when their classes are asked for.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tensormol.export' has no attribute {name!r}")
