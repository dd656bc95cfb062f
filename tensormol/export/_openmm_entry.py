"""Target of the ``openmmml.potentials`` entry point, kept free of openmm-ml imports.

openmm-ml loads every entry point while its own ``mlpotential`` module is still initialising, so
the entry point must not import openmm-ml at module level (that import would be circular when
``tensormol.export._openmm_plugin`` is imported first). openmm-ml only calls ``createImpl``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TensorMolPotentialImplFactory", "register_openmm_plugin"]


class TensorMolPotentialImplFactory:
    """Creates :class:`tensormol.export._openmm_plugin.TensorMolPotentialImpl` for
    ``MLPotential("tensormol", bundle="model.tmol")``."""

    def createImpl(self, name: str, bundle: Any = None, **args: Any) -> Any:
        from tensormol.export._bundle import BundleError
        from tensormol.export._openmm_plugin import TensorMolPotentialImpl

        if bundle is None:
            raise BundleError(
                'the tensormol potential needs a bundle: MLPotential("tensormol", '
                'bundle="model.tmol") (create one with `tensormol export`)'
            )
        return TensorMolPotentialImpl(name, bundle, **args)


def register_openmm_plugin(name: str = "tensormol") -> None:
    """Register the factory with openmm-ml (a no-op if the entry point already did it)."""
    from openmmml.mlpotential import MLPotential

    if name not in MLPotential._implFactories:
        MLPotential.registerImplFactory(name, TensorMolPotentialImplFactory())
