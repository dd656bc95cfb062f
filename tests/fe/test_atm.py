"""ATM: the alchemical potential, its analytic reduced potentials, restraints, a tiny leg."""

from __future__ import annotations

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")

from tensormol.fe._atm import (  # noqa: E402
    ATMReducedPotentials,
    ATMSettings,
    RestraintSettings,
    add_alignment_restraint,
    add_atm_force,
    add_position_restraints,
    add_site_restraint,
    atm_energy,
    atm_states,
    site_standard_state_kT,
)

pytestmark = pytest.mark.openmm

KJ = openmm.unit.kilojoule_per_mole


def _toy_system(seed: int = 0):
    """A 6-particle 'host' ring, ligand A (3 particles) in it, ligand B (3) 2 nm away."""
    rng = np.random.default_rng(seed)
    system = openmm.System()
    ang = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    host = np.stack([0.35 * np.cos(ang), 0.35 * np.sin(ang), np.zeros(6)], 1)
    lig = np.array([[0.0, 0.0, 0.0], [0.15, 0.0, 0.0], [0.0, 0.15, 0.0]])
    d = np.array([2.0, 0.0, 0.0])
    pos = np.vstack([host, lig + 0.01 * rng.standard_normal((3, 3)), lig + d])
    for m in [12.0] * 6 + [12.0] * 6:
        system.addParticle(m)
    nb = openmm.NonbondedForce()
    nb.setNonbondedMethod(openmm.NonbondedForce.NoCutoff)
    charges = [0.2, -0.2] * 3 + [0.3, -0.15, -0.15] * 2
    for q in charges:
        nb.addParticle(q, 0.3, 0.5)
    bonds = openmm.HarmonicBondForce()
    for a, b in ((6, 7), (6, 8), (9, 10), (9, 11)):
        bonds.addBond(a, b, 0.15, 2.0e4)
        nb.addException(a, b, 0.0, 0.3, 0.0)
    for a, b in ((7, 8), (10, 11)):
        nb.addException(a, b, 0.0, 0.3, 0.0)
    for i in range(6):
        bonds.addBond(i, (i + 1) % 6, 0.35, 1.0e4)
    system.addForce(nb)
    system.addForce(bonds)
    return system, pos, d


def _leg(settings: ATMSettings | None = None):
    system, pos, d = _toy_system()
    states = atm_states(settings)
    disp = {i: d for i in range(6, 9)}
    disp.update({i: -d for i in range(9, 12)})
    idx = add_atm_force(system, disp, states[0])
    add_site_restraint(system, [6, 7, 8], list(range(6)))
    add_site_restraint(system, [9, 10, 11], list(range(6)), offset_nm=d)
    add_alignment_restraint(system, [6, 7, 8], [9, 10, 11], d)
    add_position_restraints(system, list(range(6)), pos)
    return system, pos, d, states, idx


def test_states_follow_the_literature_schedule():
    states = atm_states()
    assert len(states) == 22
    lam1 = [s["Lambda1"] for s in states]
    lam2 = [s["Lambda2"] for s in states]
    assert lam2[:6] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert lam1[5:11] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert lam1[11:] == pytest.approx(lam1[:11][::-1])
    assert [s["Direction"] for s in states] == [1.0] * 11 + [-1.0] * 11
    assert states[0]["Alpha"] == pytest.approx(0.1 / 4.184)
    assert states[0]["Umax"] == pytest.approx(200 * 4.184)
    lin = atm_states(ATMSettings(n_states=6, schedule="linear"))
    assert [s["Lambda1"] for s in lin] == pytest.approx([0, 0.25, 0.5, 0.5, 0.25, 0])
    with pytest.raises(ValueError, match="even integer"):
        ATMSettings(n_states=7)


def test_numpy_energy_equals_openmm_and_analytic_reduced_potentials_equal_brute_force():
    system, pos, d, states, idx = _leg()
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001),
                         openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(pos)
    # put ligand B partly onto the host so u1 is large: exercise the soft-core and softplus
    red = ATMReducedPotentials(idx, states, 300.0)
    for shift in (0.0, 0.12):
        p = pos.copy()
        p[9:12] += np.array([0.0, shift, 0.0])
        ctx.setPositions(p)
        for k in (0, 7, 15):
            for key, v in states[k].items():
                ctx.setParameter(key, v)
            analytic = red(ctx, k)
            brute = []
            for s in states:
                for key, v in s.items():
                    ctx.setParameter(key, v)
                brute.append(ctx.getState(getEnergy=True).getPotentialEnergy()
                             .value_in_unit(KJ) / red.kT)
            np.testing.assert_allclose(analytic, brute, rtol=1e-9, atol=1e-7)
        _, u0, u1, w = red.perturbation_energies(ctx)
        assert w == pytest.approx(float(atm_energy(u0, u1, states[-1])), rel=1e-10, abs=1e-8)


def test_soft_core_caps_large_perturbations():
    st = atm_states()[5]
    e = atm_energy(0.0, np.array([1e3, 1e6, 1e12]), st)
    assert np.all(np.isfinite(e))
    assert np.all(e < 0.5 * st["Umax"] + 1.0)


def test_restraints_are_zero_at_the_start_and_restrain():
    system, pos, d, states, idx = _leg()
    for i, f in enumerate(system.getForces()):
        f.setForceGroup(1 if f.getName().startswith("ATM") and i != idx else 0)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001),
                         openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(pos)
    e = ctx.getState(getEnergy=True, groups={1}).getPotentialEnergy().value_in_unit(KJ)
    assert e == pytest.approx(0.0, abs=0.5)  # only the tiny misalignment of the jittered A
    p = pos.copy()
    p[9:12] += np.array([0.0, 0.0, 1.0])  # B 1 nm off its displaced site: 0.5 nm beyond the wall
    ctx.setPositions(p)
    e = ctx.getState(getEnergy=True, groups={1}).getPotentialEnergy().value_in_unit(KJ)
    k = 25 * 4.184 * 100  # kJ/mol/nm^2
    assert e > 0.5 * k * 0.5**2  # site wall alone; alignment adds more


def test_standard_state_term():
    # hard sphere of 5 A: -ln(523.6/1660.5) = 1.154; the harmonic wall widens it a little
    v = site_standard_state_kT(298.15)
    assert 1.0 < v < 1.154
    hard = site_standard_state_kT(298.15, RestraintSettings(site_k_kcal_A2=1e6))
    assert hard == pytest.approx(1.154, abs=0.005)
