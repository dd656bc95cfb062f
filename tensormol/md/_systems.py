"""OpenMM systems: pure ML, MM (amber14 or the Amber files' own), and ML/MM."""

from __future__ import annotations

from collections.abc import Sequence

import openmm
import openmm.app as app
from openmm import unit

from tensormol.export._bundle import Bundle, load_bundle
from tensormol.md._inputs import OpenMMStructure

__all__ = ["ml_potential", "create_ml_system", "create_mm_system", "create_mlmm_system"]


def ml_potential(bundle: Bundle | str, **kwargs):
    """``openmmml.MLPotential("tensormol", bundle=...)``, registering the plugin if needed."""
    from openmmml import MLPotential

    from tensormol.export import register_openmm_plugin

    register_openmm_plugin()
    return MLPotential("tensormol", bundle=load_bundle(bundle), **kwargs)


def create_ml_system(structure: OpenMMStructure, bundle: Bundle | str, *, device: str = "cpu",
                     backend: str = "auto", remove_cm_motion: bool = True,
                     threads: int | None = None) -> openmm.System:
    """A System whose whole energy is the model's (vacuum, or periodic if the input has a box).

    ``threads`` sets torch's threads around each force call (``None``: the md thread policy)."""
    bundle = load_bundle(bundle)
    zs = [a.element.atomic_number if a.element is not None else 0
          for a in structure.topology.atoms()]
    bundle.check_species(zs, what=f"{structure.path.name}")
    pot = ml_potential(bundle, device=device, backend=backend, threads=threads)
    return pot.createSystem(structure.topology, removeCMMotion=remove_cm_motion)


_IMPLICIT_XML = {"obc2": "implicit/obc2.xml", "gbn2": "implicit/gbn2.xml"}


def create_mm_system(structure: OpenMMStructure, *, forcefield: str = "amber14",
                     solvent: str = "vacuum", constraints: str = "none",
                     extra_forcefield: Sequence[str] = (),
                     nonbonded_cutoff_nm: float = 1.0) -> openmm.System:
    """The MM System of the whole input.

    Parameters
    ----------
    structure : OpenMMStructure
    forcefield : {"amber14", "amber"}
        OpenMM's amber14-all (templates for proteins, nucleic acids, ions, water; a ligand needs
        ``extra_forcefield``), or the Amber prmtop's own parameters.
    solvent : {"vacuum", "obc2", "gbn2", "tip3p"}
        Implicit solvent (non-periodic, no cutoff), or explicit TIP3P water already in the input
        (periodic box, PME).
    constraints : {"none", "hbonds"}
    """
    cons = {"none": None, "hbonds": app.HBonds}[constraints]
    periodic = solvent == "tip3p"
    if periodic and structure.topology.getPeriodicBoxVectors() is None:
        raise ValueError(
            "solvent 'tip3p' needs a periodic box in the input (a CRYST1 record or an inpcrd box)"
        )
    if not periodic and structure.topology.getPeriodicBoxVectors() is not None:
        structure.topology.setPeriodicBoxVectors(None)
    method = app.PME if periodic else app.NoCutoff
    kwargs = {"nonbondedMethod": method, "constraints": cons, "rigidWater": periodic}
    if periodic:
        kwargs["nonbondedCutoff"] = nonbonded_cutoff_nm * unit.nanometer
    if forcefield == "amber":
        if structure.prmtop is None:
            raise ValueError(
                "forcefield 'amber' (the files' own parameters) needs an Amber prmtop input; "
                f"got {structure.path.name}"
            )
        implicit = {"obc2": app.OBC2, "gbn2": app.GBn2}.get(solvent)
        return structure.prmtop.createSystem(implicitSolvent=implicit, **kwargs)
    if forcefield != "amber14":
        raise ValueError(f"forcefield must be 'amber14' or 'amber', got {forcefield!r}")
    files = ["amber14-all.xml"]
    if solvent in _IMPLICIT_XML:
        files.append(_IMPLICIT_XML[solvent])
    elif solvent == "tip3p":
        files.append("amber14/tip3p.xml")
    files.extend(extra_forcefield)
    ff = app.ForceField(*files)
    try:
        return ff.createSystem(structure.topology, **kwargs)
    except ValueError as err:
        if "template" in str(err).lower():
            raise ValueError(
                f"amber14 has no parameters for a residue of {structure.path.name} ({err}); "
                "a ligand needs its own templates: pass them with --extra-forcefield LIG.xml, or "
                "use Amber files (prmtop/inpcrd) with --forcefield amber"
            ) from None
        raise


def _check_link_atoms(structure: OpenMMStructure, mm_system: openmm.System,
                      ml_atoms: Sequence[int]) -> None:
    """Refuse a bond-cutting ML region with implicit solvent: openmm-ml (1.8) adds its link-atom
    sites to nonbonded forces only, not to GB forces, which OpenMM then rejects."""
    gb = [type(f).__name__ for f in mm_system.getForces()
          if isinstance(f, (openmm.GBSAOBCForce, openmm.CustomGBForce))]
    if not gb:
        return
    inside = set(int(a) for a in ml_atoms)
    cut = [(b.atom1.index, b.atom2.index) for b in structure.topology.bonds()
           if (b.atom1.index in inside) != (b.atom2.index in inside)]
    if cut:
        i, j = cut[0]
        raise ValueError(
            f"the ML region cuts {len(cut)} covalent bond(s) (e.g. atoms {i}-{j}); link atoms are "
            f"not supported with implicit solvent ({', '.join(gb)}) by openmm-ml's mechanical "
            "embedding; choose whole molecules/residues not bonded to the rest (e.g. a ligand), "
            "or use vacuum or explicit solvent"
        )


def create_mlmm_system(structure: OpenMMStructure, bundle: Bundle | str, ml_atoms: Sequence[int], *,
                       mm_system: openmm.System | None = None, forcefield: str = "amber14",
                       solvent: str = "vacuum", constraints: str = "none",
                       extra_forcefield: Sequence[str] = (), interpolate: bool = False,
                       device: str = "cpu", backend: str = "auto",
                       threads: int | None = None) -> openmm.System:
    """ML/MM with mechanical embedding: the ML region's MM internal terms (bonds, angles,
    torsions, nonbonded pairs inside it) are removed and the model's energy of the region added;
    ML-MM interactions (and implicit solvation) stay MM."""
    if mm_system is None:
        mm_system = create_mm_system(structure, forcefield=forcefield, solvent=solvent,
                                     constraints=constraints, extra_forcefield=extra_forcefield)
    bundle = load_bundle(bundle)
    atoms = list(structure.topology.atoms())
    bundle.check_species([atoms[i].element.atomic_number if atoms[i].element else 0
                          for i in ml_atoms], what="the ML region")
    _check_link_atoms(structure, mm_system, ml_atoms)
    pot = ml_potential(bundle, device=device, backend=backend, threads=threads)
    return pot.createMixedSystem(structure.topology, mm_system, list(ml_atoms),
                                 interpolate=interpolate)
