"""Free energies with OpenMM: replica exchange, MBAR analysis, network estimates, results.

The engine of ``tensormol fe``. States of a leg are dicts of OpenMM context global parameters;
``ReplicaExchange`` samples them, ``analyze_leg`` turns the reduced potentials into ΔG with
MBAR, ``network_estimate`` combines edges into per-ligand ΔG, ``write_results``/``report`` write
and print the results, and ``run_tasks`` runs independent legs in parallel with Dask.
"""

from tensormol.fe._analysis import LegEstimate, analyze_leg, kT_to, mbar_estimate
from tensormol.fe._atm import (
    ATMReducedPotentials,
    ATMSettings,
    RestraintSettings,
    add_atm_force,
    atm_energy,
    atm_states,
)
from tensormol.fe._binding import prepare_binding, run_binding
from tensormol.fe._config import BindingConfig, load_binding_config
from tensormol.fe._hydration import HydrationPreset, HydrationResult, run_hydration
from tensormol.fe._ligands import AntechamberError, LigandParameters, parameterize_ligand
from tensormol.fe._mlmm import add_ml_potential
from tensormol.fe._network import NetworkEstimate, network_estimate
from tensormol.fe._results import collect_legs, report, write_results
from tensormol.fe._sampler import (
    ReplicaExchange,
    SamplerSettings,
    SamplingError,
    SamplingResult,
)
from tensormol.fe._scaleout import run_leg_files, run_tasks, save_leg_files
from tensormol.fe._systems import BuiltSystem, Receptor, SystemSettings, build_system, load_receptor

__all__ = [
    "LegEstimate",
    "analyze_leg",
    "kT_to",
    "mbar_estimate",
    "NetworkEstimate",
    "network_estimate",
    "ReplicaExchange",
    "SamplerSettings",
    "SamplingError",
    "SamplingResult",
    "write_results",
    "report",
    "collect_legs",
    "run_tasks",
    "run_leg_files",
    "save_leg_files",
    "parameterize_ligand",
    "LigandParameters",
    "AntechamberError",
    "build_system",
    "load_receptor",
    "SystemSettings",
    "BuiltSystem",
    "Receptor",
    "add_ml_potential",
    "run_hydration",
    "HydrationPreset",
    "HydrationResult",
    "ATMSettings",
    "RestraintSettings",
    "ATMReducedPotentials",
    "atm_states",
    "atm_energy",
    "add_atm_force",
    "BindingConfig",
    "load_binding_config",
    "prepare_binding",
    "run_binding",
]
