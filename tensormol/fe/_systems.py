"""OpenMM systems for free-energy legs: ligands (GAFF2), receptors, water, ions, HMR.

One builder serves hydration and binding: :func:`build_system` takes any number of ligands
(:class:`~tensormol.fe._ligands.LigandParameters`) and optionally a receptor (a PDB with Amber
ff14SB templates, OpenMM's ``amber14-all.xml``, or Amber prmtop/inpcrd files with their own
parameters) and returns the topology, system and positions in one of four environments:

``"tip3p"``   explicit TIP3P water in a cubic box (solute–face distance ``padding_nm``, or a fixed
              ``box_nm``), neutralising Na+/Cl- plus ``ionic_strength_molar`` NaCl (Joung–Cheatham
              ions of amber14), PME, a Lennard-Jones cutoff with the long-range dispersion
              correction; the box must be at least twice the cutoff wide (checked).
``"vacuum"``  no cutoff, no box.
``"obc2"``, ``"gbn2"``  implicit solvent (OpenMM's amber14 ``implicit/*.xml``: radii and scales
              from the topology, charges from the force field), no cutoff.

How the GAFF2 parameters meet OpenMM's ``ForceField`` (which amber14, TIP3P and ``Modeller``
need): every prmtop component (ligand, or a prmtop receptor) gets a generated residue template
with one atom type per atom carrying its charge and Lennard-Jones parameters (enough for
``Modeller.addSolvent`` and for the nonbonded force); its bonds, angles and torsions (impropers
included, in the prmtop's own atom order) and its 1-4 exceptions are then copied from the
prmtop's own OpenMM system, so the component's energy is exactly the prmtop's. Constraints on
bonds to hydrogen use the prmtop's equilibrium lengths.

Hydrogen mass repartitioning (``hydrogen_mass_amu``, default 3 amu): each hydrogen's mass is
raised to that value and the difference taken from its bonded heavy atom (water excluded: it is
rigid), which leaves the total mass, and so the thermodynamics, unchanged; together with
constraints on bonds to hydrogen it allows a 4 fs Langevin step (the hydration presets use it).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
import openmm
import openmm.app as app
from openmm import unit

from tensormol.fe._ligands import LigandParameters

__all__ = [
    "SystemSettings",
    "Receptor",
    "BuiltSystem",
    "build_system",
    "load_receptor",
    "check_box",
    "repartition_hydrogen_mass",
]

_SOLVENTS = ("tip3p", "vacuum", "obc2", "gbn2")
_IMPLICIT_XML = {"obc2": "implicit/obc2.xml", "gbn2": "implicit/gbn2.xml"}
_WATER_NAMES = frozenset({"HOH", "WAT", "TIP3", "SOL"})


@dataclass(frozen=True)
class SystemSettings:
    """How to build a system (lengths nm, concentrations mol/L, masses amu).

    Attributes
    ----------
    solvent : {"tip3p", "vacuum", "obc2", "gbn2"}
    cutoff_nm : float
        Nonbonded cutoff of periodic systems (PME real space and Lennard-Jones).
    padding_nm : float
        Smallest distance between the solute and a face of the cubic water box.
    box_nm : float or None
        Fixed cubic box edge (overrides ``padding_nm``).
    ionic_strength_molar : float
        NaCl added beyond the neutralising counter-ions.
    neutralize : bool
    hydrogen_mass_amu : float or None
        Hydrogen mass after repartitioning (``None``: natural masses).
    constraints : {"hbonds", "none"}
    ewald_error_tolerance : float
    dispersion_correction : bool
        Long-range Lennard-Jones correction (periodic systems).
    """

    solvent: str = "tip3p"
    cutoff_nm: float = 0.9
    padding_nm: float = 1.0
    box_nm: float | None = None
    ionic_strength_molar: float = 0.15
    neutralize: bool = True
    hydrogen_mass_amu: float | None = 3.0
    constraints: str = "hbonds"
    ewald_error_tolerance: float = 5e-4
    dispersion_correction: bool = True

    def __post_init__(self) -> None:
        if self.solvent not in _SOLVENTS:
            raise ValueError(f"solvent must be one of {_SOLVENTS}, got {self.solvent!r}")
        if self.constraints not in ("hbonds", "none"):
            raise ValueError(f"constraints must be 'hbonds' or 'none', got {self.constraints!r}")
        for name in ("cutoff_nm", "padding_nm"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0 (nm), got {getattr(self, name)!r}")
        if self.box_nm is not None and not float(self.box_nm) > 0:
            raise ValueError(f"box_nm must be > 0 (nm) or None, got {self.box_nm!r}")
        if not float(self.ionic_strength_molar) >= 0:
            raise ValueError(
                f"ionic_strength_molar must be >= 0, got {self.ionic_strength_molar!r}")
        if self.hydrogen_mass_amu is not None and not 1.0 <= float(self.hydrogen_mass_amu) <= 5.0:
            raise ValueError(
                f"hydrogen_mass_amu must be between 1 and 5 amu (3-4 is usual), or None; got "
                f"{self.hydrogen_mass_amu!r}"
            )

    @property
    def periodic(self) -> bool:
        return self.solvent == "tip3p"


@dataclass
class Receptor:
    """A receptor: topology, positions (N, 3) nm, and the prmtop when it brings parameters."""

    topology: app.Topology
    positions: np.ndarray
    prmtop: app.AmberPrmtopFile | None = None
    name: str = "receptor"


@dataclass
class BuiltSystem:
    """A built system.

    Attributes
    ----------
    topology : openmm.app.Topology
    system : openmm.System
    positions : numpy.ndarray
        (N, 3) float64, nm.
    box_vectors : numpy.ndarray or None
        (3, 3) float64, nm, rows; ``None`` without periodicity.
    ligand_atoms : list of list of int
        Atom indices of each ligand, in the order given (prmtop atom order inside each).
    receptor_atoms : list of int
    settings : SystemSettings
    """

    topology: app.Topology
    system: openmm.System
    positions: np.ndarray
    box_vectors: np.ndarray | None
    ligand_atoms: list[list[int]]
    receptor_atoms: list[int] = field(default_factory=list)
    settings: SystemSettings = field(default_factory=SystemSettings)

    def positions_quantity(self) -> unit.Quantity:
        return unit.Quantity(self.positions, unit.nanometer)


def load_receptor(path: str | os.PathLike, coordinates: str | os.PathLike | None = None,
                  ) -> Receptor:
    """A receptor from a PDB (amber14/ff14SB templates) or Amber prmtop + inpcrd files.

    Water and ions of the file are kept (a PDB's crystal waters get TIP3P parameters); a prmtop
    should hold the solute alone (the builder adds the solvent).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"receptor file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".pdb":
        pdb = app.PDBFile(str(path))
        pos = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        return Receptor(pdb.topology, pos, None, path.stem)
    if suffix in (".prmtop", ".parm7", ".top"):
        if coordinates is None:
            raise ValueError(f"receptor {path.name}: an Amber prmtop needs coordinates "
                             "(inpcrd/rst7 or PDB) as well")
        coords = Path(coordinates)
        if not coords.is_file():
            raise FileNotFoundError(f"receptor coordinates {str(coords)!r} do not exist")
        prmtop = app.AmberPrmtopFile(str(path))
        if coords.suffix.lower() == ".pdb":
            xyz = app.PDBFile(str(coords)).getPositions(asNumpy=True)
        else:
            xyz = app.AmberInpcrdFile(str(coords)).getPositions(asNumpy=True)
        pos = np.asarray(xyz.value_in_unit(unit.nanometer))
        if len(pos) != prmtop.topology.getNumAtoms():
            raise ValueError(f"receptor {path.name} has {prmtop.topology.getNumAtoms()} atoms but "
                             f"{coords.name} has {len(pos)} positions")
        prmtop.topology.setPeriodicBoxVectors(None)
        return Receptor(prmtop.topology, pos, prmtop, path.stem)
    raise ValueError(f"receptor must be a .pdb or an Amber .prmtop/.parm7 file, got {path.name!r}")


# ------------------------------------------------------------------------- components
@dataclass
class _Component:
    topology: app.Topology
    positions: np.ndarray  # nm
    prmtop: app.AmberPrmtopFile | None
    key: str  # unique prefix of the generated atom types and templates
    start: int = 0  # first atom index in the combined topology


def _template_xml(comp: _Component) -> tuple[str, dict[int, str]]:
    """ForceField XML with one atom type per atom of a prmtop component; template per residue."""
    system = comp.prmtop.createSystem(nonbondedMethod=app.NoCutoff, constraints=None,
                                      rigidWater=False, removeCMMotion=False)
    nb = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    types, atoms_nb, residues, names = [], [], [], {}
    atoms = list(comp.topology.atoms())
    for atom in atoms:
        if atom.element is None:
            raise ValueError(f"{comp.key}: atom {atom.name} has no element (extra points are not "
                             "supported in free-energy systems)")
        t = f"{comp.key}-{atom.index}"
        mass = system.getParticleMass(atom.index).value_in_unit(unit.dalton)
        types.append(f'  <Type name="{t}" class="{t}" element="{atom.element.symbol}" '
                     f'mass="{mass!r}"/>')
        q, sig, eps = nb.getParticleParameters(atom.index)
        atoms_nb.append(f'  <Atom type="{t}" charge="{q.value_in_unit(unit.elementary_charge)!r}" '
                        f'sigma="{sig.value_in_unit(unit.nanometer)!r}" '
                        f'epsilon="{eps.value_in_unit(unit.kilojoule_per_mole)!r}"/>')
    bonds_by_res: dict[int, list[tuple[int, int]]] = {}
    external: dict[int, set[int]] = {}
    for b in comp.topology.bonds():
        r1, r2 = b.atom1.residue.index, b.atom2.residue.index
        if r1 == r2:
            bonds_by_res.setdefault(r1, []).append((b.atom1.index, b.atom2.index))
        else:
            external.setdefault(r1, set()).add(b.atom1.index)
            external.setdefault(r2, set()).add(b.atom2.index)
    for res in comp.topology.residues():
        tname = f"{comp.key}-r{res.index}"
        names[res.index] = tname
        local = {a.index: k for k, a in enumerate(res.atoms())}
        lines = [f"  <Residue name={quoteattr(tname)}>"]
        lines += [f'   <Atom name="A{local[a.index]}" type="{comp.key}-{a.index}"/>'
                  for a in res.atoms()]
        lines += [f'   <Bond from="{local[i]}" to="{local[j]}"/>'
                  for i, j in bonds_by_res.get(res.index, [])]
        lines += [f'   <ExternalBond from="{local[i]}"/>'
                  for i in sorted(external.get(res.index, ()))]
        lines.append("  </Residue>")
        residues.append("\n".join(lines))
    xml = ("<ForceField>\n <AtomTypes>\n" + "\n".join(types) + "\n </AtomTypes>\n <Residues>\n"
           + "\n".join(residues) + "\n </Residues>\n"
           ' <NonbondedForce coulomb14scale="0.833333333333" lj14scale="0.5">\n'
           + "\n".join(atoms_nb) + "\n </NonbondedForce>\n</ForceField>\n")
    return xml, names


def _components(ligands: Sequence[LigandParameters], receptor: Receptor | None,
                ligand_positions: Sequence[Any] | None) -> list[_Component]:
    comps: list[_Component] = []
    if receptor is not None:
        comps.append(_Component(receptor.topology, np.asarray(receptor.positions, dtype=float),
                                receptor.prmtop, "REC"))
    if ligand_positions is not None and len(ligand_positions) != len(ligands):
        raise ValueError(f"ligand_positions has {len(ligand_positions)} entries for "
                         f"{len(ligands)} ligands")
    for k, lig in enumerate(ligands):
        if not isinstance(lig, LigandParameters):
            raise TypeError(f"ligands[{k}] must be LigandParameters (parameterize_ligand), got "
                            f"{type(lig).__name__}")
        prmtop = app.AmberPrmtopFile(str(lig.prmtop_path))
        pos = lig.positions if ligand_positions is None else ligand_positions[k]
        if isinstance(pos, unit.Quantity):
            pos = pos.value_in_unit(unit.nanometer)
        pos = np.asarray(pos, dtype=np.float64)
        if pos.shape != (prmtop.topology.getNumAtoms(), 3):
            raise ValueError(f"positions of ligand {k} ({lig.name}) must have shape "
                             f"({prmtop.topology.getNumAtoms()}, 3) nm, got {pos.shape}")
        comps.append(_Component(prmtop.topology, pos, prmtop, f"L{k}"))
    if not comps:
        raise ValueError("build_system needs at least one ligand or a receptor")
    return comps


def check_box(box_vectors: np.ndarray, cutoff_nm: float, what: str = "box") -> None:
    """Raise unless every width of the periodic box is at least twice the cutoff.

    ``box_vectors``: (3, 3) nm, rows. The width along each reduced axis is the distance between
    opposite faces (volume / area of the face), which is what the minimum image convention needs.
    """
    a, b, c = np.asarray(box_vectors, dtype=float)
    vol = abs(np.dot(a, np.cross(b, c)))
    widths = [vol / np.linalg.norm(np.cross(b, c)), vol / np.linalg.norm(np.cross(c, a)),
              vol / np.linalg.norm(np.cross(a, b))]
    if min(widths) < 2.0 * cutoff_nm - 1e-9:
        raise ValueError(
            f"the {what} is {min(widths):.3f} nm wide, less than twice the nonbonded cutoff "
            f"(2 x {cutoff_nm:.3f} nm): increase the padding or the box, or lower the cutoff"
        )


def _box_edge(positions: np.ndarray, settings: SystemSettings) -> float:
    if settings.box_nm is not None:
        return float(settings.box_nm)
    center = 0.5 * (positions.min(axis=0) + positions.max(axis=0))
    radius = float(np.linalg.norm(positions - center, axis=1).max())
    return 2.0 * (radius + settings.padding_nm)


def repartition_hydrogen_mass(system: openmm.System, topology: app.Topology,
                              hydrogen_mass_amu: float) -> None:
    """Move mass from heavy atoms to their bonded hydrogens (water untouched); in place."""
    for bond in topology.bonds():
        a1, a2 = bond.atom1, bond.atom2
        if a1.element is not None and a1.element.symbol == "H":
            a1, a2 = a2, a1
        if a2.element is None or a2.element.symbol != "H" or a1.element is None \
                or a1.element.symbol == "H" or a1.residue.name in _WATER_NAMES:
            continue
        h_mass = system.getParticleMass(a2.index).value_in_unit(unit.dalton)
        if h_mass == 0:
            continue
        delta = hydrogen_mass_amu - h_mass
        heavy = system.getParticleMass(a1.index).value_in_unit(unit.dalton) - delta
        if heavy <= 1.0:
            raise ValueError(f"hydrogen mass repartitioning to {hydrogen_mass_amu} amu leaves atom "
                             f"{a1.index} ({a1.name}) with {heavy:.2f} amu; use a smaller mass")
        system.setParticleMass(a2.index, hydrogen_mass_amu * unit.dalton)
        system.setParticleMass(a1.index, heavy * unit.dalton)


def _force(system: openmm.System, cls: type) -> Any:
    found = [f for f in system.getForces() if isinstance(f, cls)]
    if found:
        return found[0]
    f = cls()
    system.addForce(f)
    return f


def _copy_prmtop_terms(system: openmm.System, comp: _Component, constrain_h: bool) -> None:
    """Add the component's bonded terms and set its 1-4 exceptions from its prmtop system."""
    own = comp.prmtop.createSystem(nonbondedMethod=app.NoCutoff, constraints=None,
                                   rigidWater=False, removeCMMotion=False)
    off = comp.start
    elements = [a.element for a in comp.topology.atoms()]
    for f in own.getForces():
        if isinstance(f, openmm.HarmonicBondForce):
            target = _force(system, openmm.HarmonicBondForce)
            for i in range(f.getNumBonds()):
                p1, p2, r0, k = f.getBondParameters(i)
                target.addBond(p1 + off, p2 + off, r0, k)
                if constrain_h and (elements[p1].symbol == "H" or elements[p2].symbol == "H"):
                    system.addConstraint(p1 + off, p2 + off, r0)
        elif isinstance(f, openmm.HarmonicAngleForce):
            target = _force(system, openmm.HarmonicAngleForce)
            for i in range(f.getNumAngles()):
                p1, p2, p3, th, k = f.getAngleParameters(i)
                target.addAngle(p1 + off, p2 + off, p3 + off, th, k)
        elif isinstance(f, openmm.PeriodicTorsionForce):
            target = _force(system, openmm.PeriodicTorsionForce)
            for i in range(f.getNumTorsions()):
                p1, p2, p3, p4, n, ph, k = f.getTorsionParameters(i)
                target.addTorsion(p1 + off, p2 + off, p3 + off, p4 + off, n, ph, k)
        elif isinstance(f, openmm.NonbondedForce):
            _set_particles(system, f, comp)
            _set_exceptions(system, f, comp)
        elif isinstance(f, openmm.CMAPTorsionForce):
            raise ValueError(f"{comp.key}: CMAP terms of a prmtop are not supported here")


def _set_particles(system: openmm.System, own: openmm.NonbondedForce, comp: _Component) -> None:
    """Charges and Lennard-Jones parameters from the prmtop, atom by atom (a template match may
    permute symmetry-equivalent atoms); the implicit-solvent force's charges follow."""
    nb = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    gb = [f for f in system.getForces() if isinstance(f, openmm.CustomGBForce)]
    for i in range(comp.topology.getNumAtoms()):
        q, sig, eps = own.getParticleParameters(i)
        nb.setParticleParameters(comp.start + i, q, sig, eps)
        for f in gb:
            params = list(f.getParticleParameters(comp.start + i))
            params[0] = q.value_in_unit(unit.elementary_charge)
            f.setParticleParameters(comp.start + i, params)


def _set_exceptions(system: openmm.System, own: openmm.NonbondedForce, comp: _Component) -> None:
    nb = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    off, n = comp.start, comp.topology.getNumAtoms()
    want = {}
    for i in range(own.getNumExceptions()):
        p1, p2, qq, sig, eps = own.getExceptionParameters(i)
        want[(min(p1, p2) + off, max(p1, p2) + off)] = (qq, sig, eps)
    seen = set()
    for i in range(nb.getNumExceptions()):
        p1, p2, *_ = nb.getExceptionParameters(i)
        key = (min(p1, p2), max(p1, p2))
        if off <= key[0] < off + n and off <= key[1] < off + n:
            if key not in want:
                raise ValueError(f"{comp.key}: the force field excludes atoms {key} that the "
                                 "prmtop does not; cannot reproduce its nonbonded terms")
            nb.setExceptionParameters(i, key[0], key[1], *want[key])
            seen.add(key)
    for key, params in want.items():
        if key not in seen:
            nb.addException(key[0], key[1], *params)


# ------------------------------------------------------------------------- builder
def build_system(ligands: Sequence[LigandParameters], settings: SystemSettings | None = None, *,
                 receptor: Receptor | str | os.PathLike | None = None,
                 receptor_coordinates: str | os.PathLike | None = None,
                 ligand_positions: Sequence[Any] | None = None) -> BuiltSystem:
    """Receptor (optional) + ligands in vacuum, implicit solvent or a TIP3P box.

    Parameters
    ----------
    ligands : sequence of LigandParameters
    settings : SystemSettings, optional
    receptor : Receptor or path, optional
        See :func:`load_receptor` (``receptor_coordinates`` for a prmtop path).
    ligand_positions : sequence of (n_k, 3) arrays (nm) or Quantities, optional
        Coordinates of each ligand in prmtop atom order (default: ``ligand.positions``).

    Returns
    -------
    BuiltSystem
        Atoms ordered receptor, ligands (in the given order), then water and ions.
    """
    settings = settings or SystemSettings()
    if receptor is not None and not isinstance(receptor, Receptor):
        receptor = load_receptor(receptor, receptor_coordinates)
    comps = _components(ligands, receptor, ligand_positions)
    modeller = app.Modeller(comps[0].topology, unit.Quantity(comps[0].positions, unit.nanometer))
    for comp in comps[1:]:
        comp.start = modeller.topology.getNumAtoms()
        modeller.add(comp.topology, unit.Quantity(comp.positions, unit.nanometer))
    # Templates of the prmtop components, mapped onto the combined topology's residues.
    files: list[Any] = ["amber14-all.xml"]
    if settings.solvent == "tip3p":
        files.append("amber14/tip3p.xml")
    elif settings.solvent in _IMPLICIT_XML:
        files.append(_IMPLICIT_XML[settings.solvent])
    xmls, templates = [], {}
    residues = list(modeller.topology.residues())
    for comp in comps:
        if comp.prmtop is None:
            continue
        xml, names = _template_xml(comp)
        xmls.append(xml)
        first = next(a.residue.index for a in modeller.topology.atoms() if a.index == comp.start)
        for res in comp.topology.residues():
            templates[residues[first + res.index]] = names[res.index]
    forcefield = app.ForceField(*files, *(io.StringIO(x) for x in xmls))
    n_solute = modeller.topology.getNumAtoms()
    box = None
    if settings.periodic:
        solute = np.asarray(modeller.getPositions().value_in_unit(unit.nanometer))
        edge = _box_edge(solute, settings)
        box = np.eye(3) * edge
        check_box(box, settings.cutoff_nm, "water box")
        center = 0.5 * (solute.min(axis=0) + solute.max(axis=0))
        shifted = solute - center + 0.5 * edge  # solute in the middle of the box
        modeller.positions = unit.Quantity(shifted, unit.nanometer)
        modeller.addSolvent(forcefield, model="tip3p", boxSize=openmm.Vec3(edge, edge, edge),
                            ionicStrength=settings.ionic_strength_molar * unit.molar,
                            neutralize=settings.neutralize, residueTemplates=templates)
        templates = {r: templates[r_old] for r, r_old in zip(modeller.topology.residues(),
                                                              residues) if r_old in templates}
        # addSolvent copies the solute residues first, in order: remap the templates onto them.
    top = modeller.topology
    kwargs: dict[str, Any] = {
        "constraints": app.HBonds if settings.constraints == "hbonds" else None,
        "rigidWater": True, "residueTemplates": templates, "removeCMMotion": False,
    }
    if settings.periodic:
        kwargs.update(nonbondedMethod=app.PME, nonbondedCutoff=settings.cutoff_nm * unit.nanometer,
                      ewaldErrorTolerance=settings.ewald_error_tolerance)
    else:
        kwargs.update(nonbondedMethod=app.NoCutoff)
    system = forcefield.createSystem(top, **kwargs)
    for comp in comps:
        if comp.prmtop is not None:
            _copy_prmtop_terms(system, comp, settings.constraints == "hbonds")
    for f in system.getForces():
        if isinstance(f, openmm.NonbondedForce) and settings.periodic:
            f.setUseDispersionCorrection(bool(settings.dispersion_correction))
    if settings.hydrogen_mass_amu is not None:
        repartition_hydrogen_mass(system, top, float(settings.hydrogen_mass_amu))
    positions = np.asarray(modeller.getPositions().value_in_unit(unit.nanometer), dtype=np.float64)
    if box is not None:
        vecs = top.getPeriodicBoxVectors()
        box = np.asarray([[v.x, v.y, v.z] for v in (x.value_in_unit(unit.nanometer) for x in vecs)])
        system.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*row) for row in box))
    ligand_atoms: list[list[int]] = []
    rec_atoms: list[int] = []
    for comp in comps:
        idx = list(range(comp.start, comp.start + comp.topology.getNumAtoms()))
        if comp.key == "REC":
            rec_atoms = idx
        else:
            ligand_atoms.append(idx)
    assert sum(map(len, ligand_atoms)) + len(rec_atoms) == n_solute
    return BuiltSystem(top, system, positions, box, ligand_atoms, rec_atoms, settings)


def with_settings(settings: SystemSettings, **changes: Any) -> SystemSettings:
    """A copy of ``settings`` with some fields changed (validated)."""
    return replace(settings, **changes)
