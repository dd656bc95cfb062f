"""The Alchemical Transfer Method (ATM) with OpenMM's ``ATMForce``.

Azimi, Khuttan, Wu, Pal, Gallicchio, "Relative binding free energy calculations for ligands with
diverse scaffolds with the alchemical transfer method", J. Chem. Inf. Model. 62, 309 (2022);
Wu, Azimi, Khuttan, Deng, Gallicchio, "Alchemical transfer approach to absolute binding free
energy estimation", J. Chem. Theory Comput. 17, 3309 (2021).

One box holds the receptor and the ligand(s). ``ATMForce`` evaluates the forces that couple the
ligands to their environment (non-bonded, implicit solvent) twice per step: at the current
coordinates (``u0``) and with the ligand atoms displaced by a fixed vector ``d`` (``u1``; ligand
A moved from the site into the solvent by ``+d``, ligand B from the solvent into the site by
``-d``). The alchemical potential of a state is

    W = u_ref + (λ2 − λ1)/α · ln(1 + exp(−α (u_sc − u_h))) + λ2 u_sc + w0,
    u = ±(u1 − u0),   u_ref = u0 (Direction = +1) or u1 (Direction = −1),

with ``u_sc`` the soft-core of ``u`` (Umax, Ubcore, Acore). The 22 states of the literature run
λ from 0 to 1/2 in the forward direction and back from 1/2 to 0 in the reverse one, so state 0
is "ligand A in the site" and state K−1 "ligand A in the solvent" (absolute) or "B in the site"
(relative), and the two directions meet at the symmetric intermediate λ = 1/2.

Everything else (bonded terms, a machine-learning potential on the ligands, restraints) is
translation invariant with respect to the transfer and stays outside the ``ATMForce``, so it is
evaluated once per step. The reduced potentials of a configuration at every state follow from
``u0``, ``u1`` and one energy evaluation (:class:`ATMReducedPotentials`), not from K evaluations.

Units here are OpenMM's (nm, kJ/mol); literature settings are quoted in kcal/mol and Å and
converted with the factors of :mod:`tensormol.units`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tensormol.units import ANGSTROM_TO_NM, AVOGADRO, KCAL_TO_KJ

__all__ = [
    "ATMSettings",
    "RestraintSettings",
    "atm_states",
    "atm_energy",
    "ATMReducedPotentials",
    "add_atm_force",
    "add_site_restraint",
    "add_alignment_restraint",
    "add_position_restraints",
    "site_standard_state_kT",
    "anneal_forward",
    "NONBONDED_FORCE_TYPES",
]

#: Force classes whose energy depends on the ligands' position relative to their environment;
#: these go inside the ``ATMForce``; every other force is translation invariant for a ligand.
NONBONDED_FORCE_TYPES = ("NonbondedForce", "CustomNonbondedForce", "GBSAOBCForce", "CustomGBForce",
                         "GBSAGBnForce", "AmoebaMultipoleForce", "AmoebaVdwForce",
                         "AmoebaGeneralizedKirkwoodForce", "AmoebaWcaDispersionForce")

_KCAL = KCAL_TO_KJ  # kJ per kcal


@dataclass(frozen=True)
class ATMSettings:
    """The ATM alchemical schedule and soft-core, in the literature's units (kcal/mol).

    Defaults are the AToM-OpenMM settings of Azimi et al. (2022): 22 states, the softplus
    schedule (λ2 rises first to 1/2, then λ1 follows), α = 0.1 (kcal/mol)⁻¹, u_h = 110 kcal/mol,
    w0 = 0, soft-core Umax = 200 kcal/mol, Ubcore = 100 kcal/mol, Acore = 1/16.

    Parameters
    ----------
    n_states : int
        Number of states, even, ≥ 4: half in each direction.
    schedule : {"softplus", "linear"}
        ``"softplus"``: λ2 = min(t, 1/2), λ1 = max(0, t − 1/2) along t ∈ [0, 1] of each half;
        ``"linear"``: λ1 = λ2 = λ (no softplus term; the RBFE schedule for small perturbations).
    alpha_per_kcal, uh_kcal, w0_kcal : float
        Softplus parameters.
    umax_kcal, ubcore_kcal, acore : float
        Soft-core: perturbation energies above ``ubcore`` are compressed smoothly to below
        ``umax``; ``acore = 0`` switches the soft-core off.
    """

    n_states: int = 22
    schedule: str = "softplus"
    alpha_per_kcal: float = 0.1
    uh_kcal: float = 110.0
    w0_kcal: float = 0.0
    umax_kcal: float = 200.0
    ubcore_kcal: float = 100.0
    acore: float = 0.0625

    def __post_init__(self) -> None:
        if (isinstance(self.n_states, bool) or not isinstance(self.n_states, int)
                or self.n_states < 4 or self.n_states % 2):
            raise ValueError(f"ATMSettings.n_states must be an even integer >= 4, "
                             f"got {self.n_states!r}")
        if self.schedule not in ("softplus", "linear"):
            raise ValueError(f"ATMSettings.schedule must be 'softplus' or 'linear', "
                             f"got {self.schedule!r}")
        if self.schedule == "softplus" and not self.alpha_per_kcal > 0:
            raise ValueError(f"ATMSettings.alpha_per_kcal must be > 0 for the softplus schedule, "
                             f"got {self.alpha_per_kcal!r}")
        if not self.umax_kcal > self.ubcore_kcal:
            raise ValueError(f"ATMSettings.umax_kcal ({self.umax_kcal}) must exceed ubcore_kcal "
                             f"({self.ubcore_kcal})")
        if self.acore < 0:
            raise ValueError(f"ATMSettings.acore must be >= 0, got {self.acore!r}")


@dataclass(frozen=True)
class RestraintSettings:
    """Restraints of an ATM leg, in the literature's units (AToM-OpenMM defaults).

    Parameters
    ----------
    site_k_kcal_A2, site_tolerance_A : float
        Flat-bottom harmonic restraint of each ligand's centroid to the site centre (the
        centroid of the receptor's site atoms; for the ligand in the solvent, the site centre
        plus the displacement): 25 kcal/(mol Å²) beyond 5 Å (Wu et al. 2021).
    align_k_dist_kcal_A2, align_k_theta_kcal, align_k_psi_kcal : float
        Alignment of ligand B to ligand A (relative legs; Azimi et al. 2022): a harmonic
        restraint on the offset of their first reference atoms from the displacement
        (2.5 kcal/(mol Å²)), and ``k/2 (1 − cos)`` restraints on the angle between their first
        reference axes (θ) and between the perpendicular parts of their second axes (ψ)
        (25 kcal/mol each).
    posre_k_kcal_A2, posre_tolerance_A : float
        Flat-bottom positional restraints on receptor atoms (25 kcal/(mol Å²) beyond 1.5 Å).
    """

    site_k_kcal_A2: float = 25.0
    site_tolerance_A: float = 5.0
    align_k_dist_kcal_A2: float = 2.5
    align_k_theta_kcal: float = 25.0
    align_k_psi_kcal: float = 25.0
    posre_k_kcal_A2: float = 25.0
    posre_tolerance_A: float = 1.5


def _k_kj_nm2(k_kcal_A2: float) -> float:
    return k_kcal_A2 * _KCAL / ANGSTROM_TO_NM**2


def atm_states(settings: ATMSettings | None = None) -> list[dict[str, float]]:
    """The thermodynamic states of an ATM leg: ``ATMForce`` global parameters (OpenMM units).

    Returns
    -------
    list of dict
        K dicts with ``Lambda1``, ``Lambda2``, ``Alpha`` ((kJ/mol)⁻¹), ``Uh``, ``W0``, ``Umax``,
        ``Ubcore`` (kJ/mol), ``Acore`` and ``Direction`` (+1 for the first half, −1 for the
        second). State 0 is the unperturbed potential ``u0``, state K−1 the displaced one ``u1``.
    """
    s = settings or ATMSettings()
    half = s.n_states // 2
    states = []
    for k in range(s.n_states):
        forward = k < half
        i = k if forward else s.n_states - 1 - k
        t = i / (half - 1)  # 0 at the end states, 1 at the intermediate
        if s.schedule == "softplus":
            lam1, lam2 = max(0.0, t - 0.5), min(t, 0.5)
            alpha = s.alpha_per_kcal / _KCAL
        else:
            lam1 = lam2 = 0.5 * t
            alpha = 0.0
        states.append({
            "Lambda1": float(lam1), "Lambda2": float(lam2), "Alpha": float(alpha),
            "Uh": s.uh_kcal * _KCAL, "W0": s.w0_kcal * _KCAL if i == half - 1 else 0.0,
            "Umax": s.umax_kcal * _KCAL, "Ubcore": s.ubcore_kcal * _KCAL, "Acore": s.acore,
            "Direction": 1.0 if forward else -1.0,
        })
    return states


def atm_energy(u0: np.ndarray | float, u1: np.ndarray | float,
               state: Mapping[str, float]) -> np.ndarray:
    """The ``ATMForce`` energy of a state, evaluated in numpy (OpenMM's default expression).

    Parameters
    ----------
    u0, u1 : array-like, float64, kJ/mol
        Energies of the forces inside the ``ATMForce`` at the current and displaced coordinates.
    state : mapping
        ``ATMForce`` global parameters (see :func:`atm_states`).

    Returns
    -------
    numpy.ndarray
        float64, kJ/mol, broadcast shape of ``u0`` and ``u1``.
    """
    u0 = np.asarray(u0, dtype=np.float64)
    u1 = np.asarray(u1, dtype=np.float64)
    forward = state["Direction"] >= 0
    u = (u1 - u0) if forward else (u0 - u1)
    umax, ubcore, acore = state["Umax"], state["Ubcore"], state["Acore"]
    usc = u
    if acore != 0:
        y = (u - ubcore) / (umax - ubcore)
        with np.errstate(over="ignore", invalid="ignore"):
            z = 1.0 + 2.0 * (y / acore) + 2.0 * (y / acore) ** 2
            za = z**acore
            fsc = (za - 1.0) / (za + 1.0)
            fsc = np.where(np.isinf(za), 1.0, fsc)
        usc = np.where(u >= ubcore, (umax - ubcore) * fsc + ubcore, u)
    lam1, lam2, alpha = state["Lambda1"], state["Lambda2"], state["Alpha"]
    energy = (u0 if forward else u1) + lam2 * usc + state["W0"]
    if lam2 - lam1 != 0:
        if alpha == 0:
            raise ValueError("an ATM state with Lambda2 != Lambda1 needs Alpha > 0")
        energy = energy + ((lam2 - lam1) / alpha) * np.logaddexp(0.0, -alpha * (usc - state["Uh"]))
    return np.asarray(energy, dtype=np.float64)


class ATMReducedPotentials:
    """Reduced potentials of the current configuration at every state, from ``u0`` and ``u1``.

    ``u_l = (E − W_current + W_l(u0, u1)) / k_B T``: one energy evaluation of the context (which
    also refreshes the ``ATMForce``'s ``u0``, ``u1``), then the ATM energy of each state in numpy.
    Equal to setting each state's parameters and evaluating the whole system, K times cheaper.

    Parameters
    ----------
    force_index : int
        Index of the ``ATMForce`` in the system.
    states : sequence of mapping
        The leg's states (see :func:`atm_states`).
    temperature_K : float
        K.
    """

    def __init__(self, force_index: int, states: Sequence[Mapping[str, float]],
                 temperature_K: float) -> None:
        from tensormol.fe._sampler import boltzmann_kj_per_mol

        self.force_index = int(force_index)
        self.states = [dict(s) for s in states]
        self.kT = boltzmann_kj_per_mol(temperature_K)

    def perturbation_energies(self, context: Any) -> tuple[float, float, float, float]:
        """``(E_total, u0, u1, W_current)`` in kJ/mol for the context's configuration."""
        from openmm import unit

        kj = unit.kilojoule_per_mole
        e_total = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(kj)
        force = context.getSystem().getForce(self.force_index)
        u1, u0, w = (q.value_in_unit(kj) for q in force.getPerturbationEnergy(context))
        return float(e_total), float(u0), float(u1), float(w)

    def __call__(self, context: Any, state_index: int) -> np.ndarray:
        e_total, u0, u1, w = self.perturbation_energies(context)
        rest = e_total - w
        return np.array([(rest + float(atm_energy(u0, u1, s))) / self.kT for s in self.states],
                        dtype=np.float64)


def add_atm_force(system: Any, displacements: Mapping[int, Sequence[float]],
                  state: Mapping[str, float] | None = None) -> int:
    """Move the system's non-bonded forces into a new ``ATMForce``; return its index.

    Parameters
    ----------
    system : openmm.System
        Modified in place: every force of :data:`NONBONDED_FORCE_TYPES` is removed from it and
        a copy is added to the ``ATMForce``, so those forces are evaluated twice (current and
        displaced coordinates). Bonded forces, a machine-learning force and restraints stay
        outside and are evaluated once.
    displacements : mapping int -> (3,) float, nm
        Displacement of each transferred particle (ligand A: +d, ligand B: −d); every other
        particle is not displaced.
    state : mapping, optional
        Default values of the global parameters (default: the first state of
        :func:`atm_states`).
    """
    import openmm

    state = dict(state or atm_states()[0])
    n = system.getNumParticles()
    bad = [i for i in displacements if not 0 <= int(i) < n]
    if bad:
        raise ValueError(f"displacements: particle indices {bad[:5]} outside 0..{n - 1}")
    if any(isinstance(f, openmm.ATMForce) for f in system.getForces()):
        raise ValueError("system already has an ATMForce")
    atm = openmm.ATMForce(state["Lambda1"], state["Lambda2"], state["Alpha"], state["Uh"],
                          state["W0"], state["Umax"], state["Ubcore"], state["Acore"],
                          state["Direction"])
    for i in range(n):
        d = displacements.get(i)
        if d is None:
            atm.addParticle(openmm.Vec3(0.0, 0.0, 0.0))
        else:
            atm.addParticle(openmm.Vec3(*(float(x) for x in d)))
    moved = [i for i, f in enumerate(system.getForces())
             if type(f).__name__ in NONBONDED_FORCE_TYPES]
    if not moved:
        raise ValueError("system has no non-bonded force to put inside the ATMForce")
    for i in moved:
        atm.addForce(openmm.XmlSerializer.clone(system.getForce(i)))
    for i in reversed(moved):
        system.removeForce(i)
    return system.addForce(atm)


def add_site_restraint(system: Any, ligand_atoms: Sequence[int], site_atoms: Sequence[int],
                       settings: RestraintSettings | None = None,
                       offset_nm: Sequence[float] = (0.0, 0.0, 0.0)) -> int:
    """Flat-bottom restraint of a ligand's centroid to the site centre (+ offset); force index.

    Parameters
    ----------
    ligand_atoms, site_atoms : sequence of int
        Atoms whose (unweighted) centroids define the ligand and the site centre.
    offset_nm : (3,) float, nm
        Added to the site centre: the displacement for a ligand kept in the solvent.
    """
    import openmm

    s = settings or RestraintSettings()
    expr = ("0.5*kf*step(d-tol)*(d-tol)^2;"
            "d=sqrt((x1-x2-ox)^2+(y1-y2-oy)^2+(z1-z2-oz)^2+1e-12)")
    f = openmm.CustomCentroidBondForce(2, expr)
    for name in ("kf", "tol", "ox", "oy", "oz"):
        f.addPerBondParameter(name)
    n = system.getNumParticles()
    for name, atoms in (("ligand_atoms", ligand_atoms), ("site_atoms", site_atoms)):
        if not len(atoms) or any(not 0 <= int(a) < n for a in atoms):
            raise ValueError(f"{name} must be a non-empty list of particle indices in 0..{n - 1}")
    g1 = f.addGroup([int(a) for a in ligand_atoms], [1.0] * len(ligand_atoms))
    g2 = f.addGroup([int(a) for a in site_atoms], [1.0] * len(site_atoms))
    f.addBond([g1, g2], [_k_kj_nm2(s.site_k_kcal_A2), s.site_tolerance_A * ANGSTROM_TO_NM,
                         *(float(x) for x in offset_nm)])
    f.setName("ATMSiteRestraint")
    return system.addForce(f)


def add_alignment_restraint(system: Any, ref_a: Sequence[int], ref_b: Sequence[int],
                            displacement_nm: Sequence[float],
                            settings: RestraintSettings | None = None) -> int:
    """Align ligand B (solvent) to ligand A (site) through three reference atoms of each.

    ``k_d/2 |r_B1 − r_A1 − d|² + k_θ/2 (1 − cos θ) + k_ψ/2 (1 − cos ψ)``, θ the angle between
    ``r_2 − r_1`` of A and of B, ψ the angle between the parts of ``r_3 − r_1`` perpendicular to
    those axes. Keeps the displaced ligand in a pose that overlaps the bound one, so the transfer
    of one into the other's place needs no atom mapping yet has good overlap.
    """
    import openmm

    if len(ref_a) != 3 or len(ref_b) != 3:
        raise ValueError(f"alignment needs three reference atoms per ligand, got {len(ref_a)} "
                         f"and {len(ref_b)}")
    s = settings or RestraintSettings()
    expr = (
        "0.5*kd*((x4-x1-dx)^2+(y4-y1-dy)^2+(z4-z1-dz)^2)"
        " + 0.5*kt*(1-cost) + 0.5*kp*(1-cosp);"
        "cost=(ax*bx+ay*by+az*bz)/(la*lb);"
        "cosp=(pax*pbx+pay*pby+paz*pbz)/sqrt((pax^2+pay^2+paz^2)*(pbx^2+pby^2+pbz^2)+1e-12);"
        "pax=cx-ax*ca/la^2; pay=cy-ay*ca/la^2; paz=cz-az*ca/la^2;"
        "pbx=ex-bx*cb/lb^2; pby=ey-by*cb/lb^2; pbz=ez-bz*cb/lb^2;"
        "ca=cx*ax+cy*ay+cz*az; cb=ex*bx+ey*by+ez*bz;"
        "la=sqrt(ax^2+ay^2+az^2); lb=sqrt(bx^2+by^2+bz^2);"
        "ax=x2-x1; ay=y2-y1; az=z2-z1; bx=x5-x4; by=y5-y4; bz=z5-z4;"
        "cx=x3-x1; cy=y3-y1; cz=z3-z1; ex=x6-x4; ey=y6-y4; ez=z6-z4"
    )
    f = openmm.CustomCompoundBondForce(6, expr)
    for name in ("kd", "kt", "kp", "dx", "dy", "dz"):
        f.addPerBondParameter(name)
    f.addBond([int(a) for a in (*ref_a, *ref_b)],
              [_k_kj_nm2(s.align_k_dist_kcal_A2), s.align_k_theta_kcal * _KCAL,
               s.align_k_psi_kcal * _KCAL, *(float(x) for x in displacement_nm)])
    f.setName("ATMAlignmentRestraint")
    return system.addForce(f)


def add_position_restraints(system: Any, atoms: Sequence[int], positions_nm: np.ndarray,
                            settings: RestraintSettings | None = None) -> int:
    """Flat-bottom positional restraints of ``atoms`` to their ``positions_nm`` (N, 3) nm."""
    import openmm

    s = settings or RestraintSettings()
    # Plain (not minimum-image) distance: OpenMM does not wrap a context's coordinates, so a
    # restrained atom never jumps by a box vector. The 1e-12 nm² keeps the gradient finite at
    # d = 0 (where sqrt's derivative is 0/0) and changes no energy measurably.
    f = openmm.CustomExternalForce(
        "0.5*kf*step(d-tol)*(d-tol)^2; d=sqrt((x-x0)^2+(y-y0)^2+(z-z0)^2+1e-12)")
    for name in ("kf", "tol", "x0", "y0", "z0"):
        f.addPerParticleParameter(name)
    k, tol = _k_kj_nm2(s.posre_k_kcal_A2), s.posre_tolerance_A * ANGSTROM_TO_NM
    pos = np.asarray(positions_nm, dtype=np.float64)
    for a in atoms:
        f.addParticle(int(a), [k, tol, *pos[int(a)]])
    f.setName("ATMPositionRestraint")
    return system.addForce(f)


def anneal_forward(context: Any, integrator: Any, states: Sequence[Mapping[str, float]],
                   steps_per_state: int) -> None:
    """Walk a context through the forward half of the states (λ 0 → 1/2), MD at each.

    In explicit solvent the displaced ligand of an absolute leg starts on top of water
    molecules: u1 is astronomically large and the reverse-direction states (whose energy is
    ``u1 + λ2·(u0 − u1)``, not soft-cored) are unusable. Annealing along the forward direction,
    where the soft-core bounds the perturbation, lets the solvent make room at the displaced
    position, after which both directions meet at the intermediate (the AToM-OpenMM protocol).
    """
    half = len(states) // 2
    for k in range(half):
        for key, value in states[k].items():
            context.setParameter(key, value)
        integrator.step(int(steps_per_state))


def site_standard_state_kT(temperature_K: float,
                           settings: RestraintSettings | None = None) -> float:
    """−ln(C° V_site): the standard-state term (kT) of an absolute ATM binding free energy.

    The unbound ligand of an ATM leg is confined by the site restraint around the displaced site
    centre, so ΔG°_b = ΔG_b(leg) − kT ln(C° V_site), with C° = 1 M (1660.54 Å³ per molecule) and
    V_site = ∫ 4πr² exp(−U(r)/k_B T) dr the restraint's effective volume (the flat bottom's
    sphere plus its harmonic wall, integrated numerically).
    """
    from tensormol.fe._sampler import boltzmann_kj_per_mol

    s = settings or RestraintSettings()
    kt_kcal = boltzmann_kj_per_mol(temperature_K) / _KCAL
    r = np.linspace(0.0, s.site_tolerance_A + 20.0 * math.sqrt(kt_kcal / s.site_k_kcal_A2), 20001)
    u = 0.5 * s.site_k_kcal_A2 * np.clip(r - s.site_tolerance_A, 0.0, None) ** 2
    integrand = 4.0 * math.pi * r**2 * np.exp(-u / kt_kcal)
    v_site = float(np.sum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(r)))  # Å³
    v_standard = 1e27 / AVOGADRO  # Å³ per molecule at 1 mol/L (1 L = 1e27 Å³)
    return -math.log(v_site / v_standard)
