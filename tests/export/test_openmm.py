"""The openmm-ml plugin: OpenMM's energies and forces equal the model's, through the unit edge."""

from __future__ import annotations

import copy
import importlib.metadata as md
import pickle

import numpy as np
import openmm
import openmm.app as app
import pytest
import torch
from openmm import unit

from tensormol import keys as K
from tensormol.export import (
    TensorMolForceCallback,
    TensorMolPotentialImplFactory,
    load_model,
    register_openmm_plugin,
)
from tensormol.export._openmm_plugin import ENERGY_TO_OPENMM, FORCE_TO_OPENMM
from tensormol.export._torchforce import OpenMMEnergyModule, openmmtorch_import_error
from tensormol.units import ANGSTROM_TO_NM, EV_TO_KJ_PER_MOL

pytestmark = pytest.mark.openmm


def _topology(symbols, box_A=None):
    top = app.Topology()
    chain = top.addChain()
    res = top.addResidue("MOL", chain)
    for s in symbols:
        top.addAtom(s, app.Element.getBySymbol(s), res)
    if box_A is not None:
        top.setPeriodicBoxVectors([openmm.Vec3(*row) * ANGSTROM_TO_NM for row in box_A]
                                  * unit.nanometer)
    return top


def _potential(bundle):
    register_openmm_plugin()
    from openmmml import MLPotential

    return MLPotential("tensormol", bundle=str(bundle))


def _openmm_eval(system, pos_A, box_A=None):
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001),
                         openmm.Platform.getPlatformByName("Reference"))
    if box_A is not None:
        ctx.setPeriodicBoxVectors(*[openmm.Vec3(*row) * ANGSTROM_TO_NM for row in box_A])
    ctx.setPositions(np.asarray(pos_A) * ANGSTROM_TO_NM)
    st = ctx.getState(getEnergy=True, getForces=True)
    return (st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))


def _model_eval(model, z, pos_A, box_A=None):
    batch = {K.POSITIONS: torch.tensor(np.asarray(pos_A), dtype=torch.float64),
             K.ATOMIC_NUMBERS: torch.tensor(z)}
    if box_A is not None:
        batch[K.CELL] = torch.tensor(np.asarray(box_A), dtype=torch.float64)[None]
        batch[K.PBC] = torch.ones(1, 3, dtype=torch.bool)
    out = model(batch, compute_forces=True)
    return float(out[K.ENERGY][0]), out[K.FORCES].numpy()


def _assert_close(e_mm, f_mm, e_model, f_model, rtol=1e-6):
    e_ref = e_model * EV_TO_KJ_PER_MOL
    f_ref = f_model * EV_TO_KJ_PER_MOL / ANGSTROM_TO_NM
    assert abs(e_mm - e_ref) <= rtol * abs(e_ref)
    assert np.abs(f_mm - f_ref).max() <= rtol * np.abs(f_ref).max()


def _ethanols(n, box, seed=0):
    from ase.build import molecule

    rng = np.random.default_rng(seed)
    eth = molecule("CH3CH2OH")
    syms, pos = [], []
    for i in range(n):
        p = eth.get_positions() - eth.get_positions().mean(0)
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        pos.append(p @ q.T + (np.array([0.25, 0.5, 0.75]) + 0.33 * i) % 1.0 * box)
        syms += eth.get_chemical_symbols()
    return syms, np.concatenate(pos)


def test_unit_factors_come_from_units_py():
    assert ENERGY_TO_OPENMM == EV_TO_KJ_PER_MOL
    assert FORCE_TO_OPENMM == pytest.approx(964.8533212331, rel=1e-12)


def test_molecule_energy_and_forces_match_the_model(tiny_bundle):
    from ase.build import molecule

    a = molecule("CH3CH2OH")
    system = _potential(tiny_bundle).createSystem(_topology(a.get_chemical_symbols()))
    assert not system.usesPeriodicBoundaryConditions()
    e, f = _openmm_eval(system, a.get_positions())
    e0, f0 = _model_eval(load_model(tiny_bundle), a.get_atomic_numbers(), a.get_positions())
    _assert_close(e, f, e0, f0)


def test_periodic_box_matches_and_follows_cell_changes(tiny_bundle):
    box = np.diag([9.0, 9.5, 10.0])
    syms, pos = _ethanols(3, np.diag(box))
    system = _potential(tiny_bundle).createSystem(_topology(syms, box))
    assert system.usesPeriodicBoundaryConditions()
    z = [app.Element.getBySymbol(s).atomic_number for s in syms]
    model = load_model(tiny_bundle)
    e, f = _openmm_eval(system, pos, box)
    e0, f0 = _model_eval(model, z, pos, box)
    _assert_close(e, f, e0, f0)
    # A barostat move: box and positions scaled; and atoms wrapped out of the box by OpenMM's
    # choice must not matter (minimum image / all images within the cutoff).
    box2, pos2 = box * 0.93, pos * 0.93
    pos2[:3] += box2[0]  # one molecule's atoms shifted by a lattice vector
    e2, f2 = _openmm_eval(system, pos2, box2)
    e20, f20 = _model_eval(model, z, pos * 0.93, box2)
    _assert_close(e2, f2, e20, f20)
    assert abs(e2 - e) > 1e-3  # the cell change was seen


def test_box_smaller_than_twice_the_cutoff_is_exact(tiny_bundle):
    # Cutoff 3 Å, box 4.2 Å: pairs interact with several images. The energy of a 2x2x2
    # supercell must be 8 times that of the cell, forces periodic.
    from ase.build import molecule

    w = molecule("H2O")
    cell = np.diag([4.2, 4.4, 4.6])
    pos = w.get_positions() + 1.0
    syms = w.get_chemical_symbols()
    e1, f1 = _openmm_eval(_potential(tiny_bundle).createSystem(_topology(syms, cell)), pos, cell)
    shifts = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)])
    big_pos = np.concatenate([pos + s @ cell for s in shifts])
    big = 2 * cell
    e8, f8 = _openmm_eval(_potential(tiny_bundle).createSystem(_topology(syms * 8, big)),
                          big_pos, big)
    assert e8 == pytest.approx(8 * e1, rel=1e-9)
    np.testing.assert_allclose(f8.reshape(8, 3, 3), np.broadcast_to(f1, (8, 3, 3)),
                               rtol=1e-8, atol=1e-8)
    e0, f0 = _model_eval(load_model(tiny_bundle), w.get_atomic_numbers(), pos, cell)
    _assert_close(e1, f1, e0, f0)


def test_force_callback_pickles_and_system_serializes(tiny_bundle):
    from ase.build import molecule

    a = molecule("CH3CH2OH")
    system = _potential(tiny_bundle).createSystem(_topology(a.get_chemical_symbols()))
    e, f = _openmm_eval(system, a.get_positions())
    restored = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
    e2, f2 = _openmm_eval(restored, a.get_positions())
    assert e2 == e and np.array_equal(f2, f)
    e3, _ = _openmm_eval(copy.deepcopy(system), a.get_positions())
    assert e3 == e
    from tensormol.export import load_bundle

    cb = TensorMolForceCallback(load_bundle(tiny_bundle), a.get_atomic_numbers(), False)
    cb2 = pickle.loads(pickle.dumps(cb))
    pos_nm = a.get_positions() * ANGSTROM_TO_NM
    assert cb2.evaluate(pos_nm, None)[0] == cb.evaluate(pos_nm, None)[0]


def test_missing_species_and_missing_bundle_are_explained(tiny_bundle):
    from openmmml import MLPotential

    from tensormol.export import BundleError

    register_openmm_plugin()
    with pytest.raises(BundleError, match=r"N \(Z=7\).*not trained on"):
        _potential(tiny_bundle).createSystem(_topology(["C", "N", "H"]))
    with pytest.raises(BundleError, match="needs a bundle"):
        MLPotential("tensormol")


def test_entry_point_names_the_factory():
    eps = [ep for ep in md.entry_points(group="openmmml.potentials") if ep.name == "tensormol"]
    if eps:  # installed package metadata (pyproject entry point)
        assert eps[0].load() is TensorMolPotentialImplFactory
    register_openmm_plugin()
    from openmmml import MLPotential

    assert isinstance(MLPotential._implFactories["tensormol"], TensorMolPotentialImplFactory)


def test_torchforce_module_matches_pythonforce_in_eager_mode(tiny_bundle):
    # The module openmm-torch would run, evaluated eagerly: same energy, autograd forces.
    from ase.build import molecule

    from tensormol.export import load_bundle

    a = molecule("CH3CH2OH")
    bundle = load_bundle(tiny_bundle)
    mod = OpenMMEnergyModule(bundle.build_model(), a.get_atomic_numbers().tolist(), False)
    pos = torch.tensor(a.get_positions() * ANGSTROM_TO_NM, requires_grad=True)
    energy = mod(pos)
    (grad,) = torch.autograd.grad(energy, pos)
    cb = TensorMolForceCallback(bundle, a.get_atomic_numbers(), False)
    e_ref, f_ref = cb.evaluate(pos.detach().numpy(), None)
    assert float(energy.detach()) == pytest.approx(e_ref, rel=1e-12)
    np.testing.assert_allclose(-grad.numpy(), f_ref, rtol=1e-9, atol=1e-9)


@pytest.mark.skipif(openmmtorch_import_error() is not None,
                    reason=f"openmmtorch does not import here: {openmmtorch_import_error()}")
def test_torchforce_backend_matches_the_model(tiny_bundle):
    from ase.build import molecule

    a = molecule("CH3CH2OH")
    register_openmm_plugin()
    from openmmml import MLPotential

    pot = MLPotential("tensormol", bundle=str(tiny_bundle), backend="torch")
    system = pot.createSystem(_topology(a.get_chemical_symbols()))
    e, f = _openmm_eval(system, a.get_positions())
    e0, f0 = _model_eval(load_model(tiny_bundle), a.get_atomic_numbers(), a.get_positions())
    _assert_close(e, f, e0, f0)


def test_verlet_list_cache_equals_fresh_lists(tiny_bundle):
    # Random walk of a periodic box with cell changes and a wrap: the cached list (skin 0.5 Å)
    # gives bit-identical energies and forces to a list built at every call, with fewer builds.
    from tensormol.export import load_bundle

    box = np.diag([9.0, 9.5, 10.0])
    syms, pos = _ethanols(3, np.diag(box), seed=2)
    z = [app.Element.getBySymbol(s).atomic_number for s in syms]
    bundle = load_bundle(tiny_bundle)
    cached = TensorMolForceCallback(bundle, z, True, skin=0.5)
    fresh = TensorMolForceCallback(bundle, z, True, skin=0.0)
    rng = np.random.default_rng(0)
    for k in range(12):
        pos = pos + rng.normal(scale=0.05, size=pos.shape)
        if k == 6:
            box, pos = box * 1.01, pos * 1.01  # a barostat move
        if k == 9:
            pos[0] += box[1]  # OpenMM wrapped an atom
        a = cached.evaluate(pos * ANGSTROM_TO_NM, box * ANGSTROM_TO_NM)
        b = fresh.evaluate(pos * ANGSTROM_TO_NM, box * ANGSTROM_TO_NM)
        assert a[0] == b[0]
        assert np.array_equal(a[1], b[1])
    assert 3 <= cached.list_builds < 12


def test_traced_and_eager_graphs_agree(tiny_bundle):
    # graph="auto" runs small non-periodic systems through the traced graph (lower per-call
    # overhead); it must give the eager model's energy and forces.
    from ase.build import molecule

    from tensormol.export import load_bundle

    a = molecule("CH3CH2OH")
    bundle, z = load_bundle(tiny_bundle), a.get_atomic_numbers()
    traced = TensorMolForceCallback(bundle, z, False)
    eager = TensorMolForceCallback(bundle, z, False, graph="eager")
    assert traced.uses_traced_graph and not eager.uses_traced_graph
    rng = np.random.default_rng(0)
    for _ in range(3):  # different geometries, hence different pair counts inside the cutoff
        pos_nm = (a.get_positions() + rng.normal(0, 0.3, (9, 3))) * ANGSTROM_TO_NM
        e_t, f_t = traced.evaluate(pos_nm, None)
        e_e, f_e = eager.evaluate(pos_nm, None)
        assert e_t == pytest.approx(e_e, rel=1e-12)
        np.testing.assert_allclose(f_t, f_e, rtol=1e-9, atol=1e-9)
    # Repeated calls are bit-identical (a resumed MD run must repeat an uninterrupted one).
    first = traced.evaluate(pos_nm, None)[1]
    assert all(np.array_equal(traced.evaluate(pos_nm, None)[1], first) for _ in range(3))
    assert pickle.loads(pickle.dumps(eager)).graph == "eager"
    assert not TensorMolForceCallback(bundle, z, True).uses_traced_graph  # periodic: eager
    with pytest.raises(ValueError, match="non-periodic"):
        TensorMolForceCallback(bundle, z, True, graph="traced")
    with pytest.raises(ValueError, match="graph must be one of"):
        TensorMolForceCallback(bundle, z, False, graph="compiled")


def test_auto_graph_follows_the_deployment_policy(tmp_path):
    # Tracing is chosen in export's policy table, per model family, where it was measured to
    # help: TensorNet yes, GauntNet no; model classes carry no deployment flag.
    from tensormol.export import load_bundle, save_bundle
    from tensormol.export._policy import TRACED_MAX_ATOMS, choose_graph
    from tensormol.models import GauntNet, TensorNet

    assert not hasattr(GauntNet, "trace_small_systems")
    assert not hasattr(TensorNet, "trace_small_systems")
    assert choose_graph("tensornet", 9, False, "cpu").graph == "traced"
    assert choose_graph("tensornet", TRACED_MAX_ATOMS + 1, False, "cpu").graph == "eager"
    assert choose_graph("tensornet", 9, True, "cpu").graph == "eager"
    assert "not measured" in choose_graph("mymodel", 9, False, "cpu").reason
    torch.manual_seed(0)
    model = GauntNet(atomic_numbers=[1, 6, 8], hidden_channels=4, lmax=2, correlation=2,
                     num_layers=1, dtype="float64").eval()
    save_bundle(model, tmp_path / "gaunt.tmol", name="gauntnet")
    cb = TensorMolForceCallback(load_bundle(tmp_path / "gaunt.tmol"), [6, 1, 8], False)
    assert not cb.uses_traced_graph and "measured slower traced" in cb.route.reason
    forced = TensorMolForceCallback(load_bundle(tmp_path / "gaunt.tmol"), [6, 1, 8], False,
                                    graph="traced")
    pos = np.array([[0.0, 0.0, 0.0], [0.11, 0.0, 0.0], [0.0, 0.13, 0.0]])
    e_a, f_a = cb.evaluate(pos, None)
    e_b, f_b = forced.evaluate(pos, None)
    assert e_a == pytest.approx(e_b, rel=1e-12)
    np.testing.assert_allclose(f_a, f_b, rtol=1e-9, atol=1e-9)


def _ethanol():
    from ase.build import molecule

    return molecule("CH3CH2OH")


@pytest.mark.parametrize("graph", ["traced", "eager"])
def test_overlapping_atoms_give_the_same_error_on_both_graphs(tiny_bundle, graph):
    from tensormol.export import GeometryError, load_bundle

    a = _ethanol()
    pos = a.get_positions()
    pos[4] = pos[3]
    cb = TensorMolForceCallback(load_bundle(tiny_bundle), a.get_atomic_numbers(), False,
                                graph=graph)
    with pytest.raises(GeometryError, match=r"^unphysical geometry \(overlap\): atoms 3 and 4 "
                                            r"\(0-based indices\) are 0\.0e\+00 Å apart") as err:
        cb.evaluate(pos * ANGSTROM_TO_NM, None)
    assert err.value.atoms == (3, 4) and err.value.kind == "overlap"
    # Through OpenMM the message survives as an OpenMMException (one line, no traceback) and is
    # recognised again; an MD driver adds the step.
    system = _potential(tiny_bundle).createSystem(_topology(a.get_chemical_symbols()),
                                                  graph=graph)
    with pytest.raises(openmm.OpenMMException) as mm_err:
        _openmm_eval(system, pos)
    assert "\n" not in str(mm_err.value).strip()
    geo = GeometryError.from_exception(mm_err.value)
    assert geo is not None and geo.kind == "overlap"
    assert str(geo.at_step(120)).startswith("unphysical geometry (overlap) at step 120: atoms 3")


def test_traced_module_refuses_overlaps_inside_the_graph(tiny_bundle):
    # The TorchForce route has no Python around the graph: the check is scripted into it
    # (before: NaN energies).
    from tensormol.export import load_bundle
    from tensormol.export._torchforce import torchscript_module

    a = _ethanol()
    module = torchscript_module(load_bundle(tiny_bundle).build_model(),
                                a.get_atomic_numbers().tolist(), False)
    pos = torch.tensor(a.get_positions() * ANGSTROM_TO_NM)
    assert torch.isfinite(module(pos))
    pos[4] = pos[3]
    with pytest.raises(torch.jit.Error, match=r"overlap\): atoms 3 and 4 \(0-based indices\)"):
        module(pos)


@pytest.mark.parametrize("graph", ["traced", "eager"])
def test_exploded_molecule_same_answer_and_fell_apart_error(tiny_bundle, graph):
    from tensormol.export import GeometryError, load_bundle

    a = _ethanol()
    z, pos = a.get_atomic_numbers(), a.get_positions()
    bundle = load_bundle(tiny_bundle)
    # No pair inside the cutoff (before: `max(): Expected reduction dim` on the traced graph):
    # every atom is isolated, so the energy is the sum of the reference energies (tiny model:
    # -1.5 Z eV) and the forces vanish, on both graphs.
    free = TensorMolForceCallback(bundle, z, False, graph=graph, check_connectivity=False)
    e, f = free.evaluate(pos * 10.0 * ANGSTROM_TO_NM, None)
    assert e == pytest.approx(sum(-1.5 * int(k) for k in z) * EV_TO_KJ_PER_MOL, rel=1e-12)
    assert np.abs(f).max() == 0.0
    # During a run, a molecule falling apart is reported relative to its first configuration.
    cb = TensorMolForceCallback(bundle, z, False, graph=graph)
    cb.evaluate(pos * ANGSTROM_TO_NM, None)
    moved = pos.copy()
    moved[[5, 6, 7, 8]] += 20.0  # C2's hydrogens, O and its hydrogen leave
    # A passing excursion (an energy minimizer's trial step) is not reported...
    for _ in range(9):
        cb.evaluate(moved * ANGSTROM_TO_NM, None)
    cb.evaluate(pos * ANGSTROM_TO_NM, None)
    # ...a lasting one is, after 10 consecutive evaluations.
    for _ in range(9):
        cb.evaluate(moved * ANGSTROM_TO_NM, None)
    with pytest.raises(GeometryError, match=r"fell apart\): atom\(s\) 5, 6, 7, 8 \(0-based "
                                            r"indices\) have been farther than the model's "
                                            r"cutoff .* for 10 consecutive evaluations"):
        cb.evaluate(moved * ANGSTROM_TO_NM, None)
    # Stretching within the cutoff is not falling apart.
    stretched = pos.copy()
    stretched[8] += (stretched[8] - stretched[2]) * 0.8
    cb.evaluate(stretched * ANGSTROM_TO_NM, None)


def test_separate_molecules_from_the_start_are_not_reported(tiny_bundle):
    from tensormol.export import load_bundle

    a = _ethanol()
    z = np.concatenate([a.get_atomic_numbers()] * 2)
    pos = np.concatenate([a.get_positions(), a.get_positions() + 30.0])
    cb = TensorMolForceCallback(load_bundle(tiny_bundle), z, False, graph="eager")
    for shift in (0.0, 5.0, 50.0):
        p = pos.copy()
        p[9:] += shift
        cb.evaluate(p * ANGSTROM_TO_NM, None)


def test_option_typos_are_refused_with_a_suggestion(tiny_bundle, caplog):
    import logging

    from openmmml import MLPotential

    register_openmm_plugin()
    with pytest.raises(TypeError, match=r"unknown keyword argument 'backnd' \(did you mean "
                                        r"'backend'\?\)"):
        MLPotential("tensormol", bundle=str(tiny_bundle), backnd="torch")
    top = _topology(_ethanol().get_chemical_symbols())
    with pytest.raises(TypeError, match=r"'thraeds' \(did you mean 'threads'\?\)"):
        _potential(tiny_bundle).createSystem(top, thraeds=1)
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        _potential(tiny_bundle).createSystem(top, threads=0)
    # The thread setting reaches the force, is scoped to each call, and is logged with the route.
    system = _potential(tiny_bundle).createSystem(top, threads=1)
    before = torch.get_num_threads()
    with caplog.at_level(logging.INFO, logger="tensormol.export"):
        _openmm_eval(system, _ethanol().get_positions())
    assert torch.get_num_threads() == before
    lines = [r.getMessage() for r in caplog.records if r.name == "tensormol.export"]
    assert len(lines) == 1, lines
    assert lines[0].startswith("route: traced graph, because tensornet, 9 atoms <= 200")
    assert "threads (md): torch 1" in lines[0] and "[as requested]" in lines[0]
