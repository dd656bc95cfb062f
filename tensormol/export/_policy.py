"""Deployment policy: which graph runs a model in OpenMM, decided once per system and logged.

The choice is a property of deployment (system size, periodicity, device, and what was measured
for each model family), not of a model class, so it lives here, in one table.

The traced TorchScript graph (:mod:`._torchforce`) dispatches the few thousand small ops of a
small molecule's step from C++ and skips the Python of custom autograd Functions, at the price of
running every op's reference twin and an all-pairs O(N²) candidate list. Measured on the CPU, one
thread, energy + forces of ethanol per call (best of 200):

============  ==================  ======================================================
family        traced vs eager     decision
============  ==================  ======================================================
tensornet     7.6–8.2 ms vs        traced for small molecules
              9.5–12.5 ms
gauntnet      45.6 ms vs 26.0 ms   eager (17.7 ms with the compiled Gaunt kernel, which a
              (L = 3, ν = 3)       traced graph cannot call)
============  ==================  ======================================================

Families not in the table run eager (nothing measured, and eager is the reference).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

__all__ = ["TRACED_MAX_ATOMS", "TRACED_FAMILIES", "GraphRoute", "choose_graph", "log_route"]

_LOG = logging.getLogger("tensormol.export")

#: Largest non-periodic system run through the traced graph by ``graph="auto"``: its candidate
#: pair list holds all N(N-1) ordered pairs.
TRACED_MAX_ATOMS = 200

#: Model families (registry names) measured faster through the traced graph on small molecules.
TRACED_FAMILIES: dict[str, bool] = {"tensornet": True, "gauntnet": False}


@dataclass(frozen=True)
class GraphRoute:
    """The graph a system runs through and why (one log line)."""

    graph: str  # "traced" or "eager"
    reason: str

    def describe(self) -> str:
        name = "traced graph" if self.graph == "traced" else "eager model"
        return f"route: {name}, because {self.reason}"


def choose_graph(model_name: str, num_atoms: int, periodic: bool, device: str,
                 requested: str = "auto") -> GraphRoute:
    """The graph of the OpenMM PythonForce route for one system.

    Parameters
    ----------
    model_name : str
        Registry name of the model family (the bundle's ``name``).
    num_atoms : int
        Atoms the force applies to (the ML region).
    periodic : bool
    device : str
        Torch device of the evaluation.
    requested : {"auto", "eager", "traced"}
        ``"auto"`` applies the policy; the others are taken as given.

    Returns
    -------
    GraphRoute
    """
    if requested != "auto":
        return GraphRoute(requested, f"graph={requested!r} was requested")
    import torch

    if periodic:
        return GraphRoute("eager", "the system is periodic (the traced graph's pair list is "
                                   "the minimum image; the eager list has every image)")
    if torch.device(device).type != "cpu":
        return GraphRoute("eager", f"the device is {device} (the traced graph was measured "
                                   "faster on the CPU only)")
    if num_atoms > TRACED_MAX_ATOMS:
        return GraphRoute("eager", f"{num_atoms} atoms > {TRACED_MAX_ATOMS} (the traced "
                                   "graph's candidate pairs grow as N²)")
    faster = TRACED_FAMILIES.get(model_name)
    if faster is None:
        return GraphRoute("eager", f"model {model_name!r} was not measured traced")
    if not faster:
        return GraphRoute("eager", f"{model_name} was measured slower traced than eager")
    return GraphRoute("traced", f"{model_name}, {num_atoms} atoms <= {TRACED_MAX_ATOMS}, "
                                "non-periodic, CPU: measured faster traced")


def log_route(route: GraphRoute, threads=None) -> None:
    """Log the route of a system and its thread policy, once (INFO on ``tensormol.export``).

    ``threads`` is a :class:`tensormol._threads.ThreadPolicy` (or ``None``).
    """
    extra = f"; {threads.describe()}" if threads is not None else ""
    _LOG.info("%s%s", route.describe(), extra)
