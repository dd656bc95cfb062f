"""EquivariantLinear: equivariance for every group kind, fast ≡ dense (forward, backward, double
backward), state-dict compatibility, edge cases and errors."""

from __future__ import annotations

import networkx as nx
import pytest
import torch

from tensormol.groups import (
    AutomorphismGroup,
    EquivariantLinear,
    random_elements,
    representation,
    tensor_power_action,
)
from tensormol.testing import assert_equivariant_finite

PETERSEN = AutomorphismGroup(nx.petersen_graph())
CYCLE5 = AutomorphismGroup(nx.cycle_graph(5))
GROUPS = [("S_n", 4), ("O(n)", 3), ("SO(n)", 3), ("SO(n)", 2), ("SO(n)", 4), ("Sp(n)", 4),
          ("Sp(n)", 2), (PETERSEN, 10), (CYCLE5, 5)]
SHAPES = [(0, 0), (0, 2), (2, 0), (1, 1), (2, 2), (2, 1), (1, 3), (3, 1)]


def gid(case) -> str:
    g, n = case
    return f"{g if isinstance(g, str) else 'Aut'}-{n}"


def make_pair(group, n, k, l, c_in=3, c_out=2, seed=0):
    torch.manual_seed(seed)
    fast = EquivariantLinear(group, n, k, l, c_in, c_out, dtype=torch.float64)
    dense = EquivariantLinear(group, n, k, l, c_in, c_out, dtype=torch.float64, backend="dense")
    with torch.no_grad():
        if fast.bias_weight is not None:
            fast.bias_weight.normal_()
    dense.load_state_dict(fast.state_dict())
    return fast, dense


def leg_action(group, n, k):
    """``(g, x) -> ρ(g)^{⊗k} x`` on channels-last tensors, for the shared finite-group oracle."""
    return lambda g, x: tensor_power_action(representation(group, n, g), x, k)


def check_equivariance(layer, group, n, k, l, x, num=3, seed=0, atol=None) -> float:
    """``|layer(ρ(g)^{⊗k} x) - ρ(g)^{⊗l} layer(x)|`` for random g, through
    :func:`tensormol.testing.assert_equivariant_finite` (default tolerance: 1e-10 in float64,
    1e-5 in float32, relative to the output magnitude)."""
    gen = torch.Generator().manual_seed(seed)
    elements = list(random_elements(group, n, num, generator=gen))
    with torch.no_grad():
        return assert_equivariant_finite(layer, x, elements, leg_action(group, n, k),
                                         leg_action(group, n, l), atol=atol)


@pytest.mark.parametrize("case", GROUPS, ids=gid)
@pytest.mark.parametrize("backend", ["fast", "dense"])
def test_equivariance_float64(case, backend):
    group, n = case
    worst = 0.0
    for k, l in SHAPES:
        fast, dense = make_pair(group, n, k, l)
        layer = fast if backend == "fast" else dense
        x = torch.randn(4, *([n] * k), 3, dtype=torch.float64)
        with torch.no_grad():
            worst = max(worst, check_equivariance(layer, group, n, k, l, x, atol=1e-10))
            y = layer(x)
        assert y.shape == (4, *([n] * l), 2)
    assert worst <= 1e-10  # absolute float64 error


@pytest.mark.parametrize("case", GROUPS, ids=gid)
def test_fast_matches_dense_with_gradients(case):
    group, n = case
    for k, l in [(2, 2), (1, 3), (0, 2), (3, 1)]:
        fast, dense = make_pair(group, n, k, l)
        x = torch.randn(3, *([n] * k), 3, dtype=torch.float64, requires_grad=True)
        grads = []
        for layer in (fast, dense):
            y = layer(x)
            w = torch.randn_like(y, generator=torch.Generator().manual_seed(1))
            loss = (y * w).sum()
            params = [x, layer.weight] + (
                [layer.bias_weight] if layer.bias_weight is not None and layer.bias_weight.numel()
                else [])
            g = torch.autograd.grad(loss, params, create_graph=True)
            # Double backward: gradient of |dL/dx|^2 with respect to the weights.
            gg = torch.autograd.grad((g[0] ** 2).sum(), [layer.weight], allow_unused=True)
            grads.append((y.detach(), [t.detach() for t in g], gg[0]))
        (y1, g1, h1), (y2, g2, h2) = grads
        torch.testing.assert_close(y1, y2, rtol=1e-12, atol=1e-12)
        for a, b in zip(g1, g2):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(h1, h2, rtol=1e-11, atol=1e-11)


def test_gradcheck_fast_backend():
    fast, _ = make_pair("SO(n)", 3, 2, 1, c_in=2, c_out=2)
    x = torch.randn(2, 3, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: torch.func.functional_call(
        fast, {"weight": w, "bias_weight": fast.bias_weight}, (x,)), (x, fast.weight))
    sn, _ = make_pair("S_n", 3, 2, 2, c_in=2, c_out=1)
    x = torch.randn(2, 3, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(sn, (x,))


def test_state_dict_identical_between_backends():
    for group, n in GROUPS:
        fast, dense = make_pair(group, n, 2, 2)
        sf, sd = fast.state_dict(), dense.state_dict()
        assert list(sf) == list(sd) == ["weight", "bias_weight"]
        assert all(sf[key].shape == sd[key].shape for key in sf)


def test_parameter_counts_and_defaults():
    layer = EquivariantLinear("S_n", 5, 2, 2, 4, 6)
    assert layer.weight.dtype == torch.float32
    assert layer.num_weights == 15 and layer.weight.shape == (15, 6, 4)
    assert layer.bias_weight.shape == (2, 6)  # the all-ones and the identity matrix
    assert EquivariantLinear("O(n)", 3, 2, 2, 1, 1).num_weights == 3
    assert EquivariantLinear("SO(n)", 3, 2, 1, 1, 1).num_weights == 1  # the cross product
    assert EquivariantLinear("Sp(n)", 4, 1, 1, 1, 1).bias_weight.shape == (0, 1)
    assert EquivariantLinear(PETERSEN, 10, 1, 1, 1, 1).num_weights == 3  # equal, adjacent, not
    assert "group=S_n" in repr(layer) and "backend='fast'" in repr(layer)


def test_batch_dims_and_float32():
    layer = EquivariantLinear("S_n", 4, 2, 1, 3, 5)
    x = torch.randn(2, 3, 4, 4, 3)
    y = layer(x)
    assert y.shape == (2, 3, 4, 5) and y.dtype == torch.float32
    torch.testing.assert_close(y[1, 2], layer(x[1, 2]))
    # float32 equivariance, at float32 accuracy.
    check_equivariance(layer, "S_n", 4, 2, 1, x.reshape(6, 4, 4, 3))


def test_output_scale_is_order_one():
    """With the sqrt(R/F) normalisation, unit inputs give outputs of order one for any n."""
    for n in (5, 20, 40):
        layer = EquivariantLinear("S_n", n, 2, 2, 8, 8, bias=False)
        y = layer(torch.randn(16, n, n, 8)).detach()
        assert 0.3 < float(y.std()) < 3.0, (n, float(y.std()))


def test_edge_cases_scalar_and_n_equals_one():
    lay = EquivariantLinear("O(n)", 3, 0, 0, 2, 4)  # plain dense layer on scalars
    x = torch.randn(7, 2)
    assert lay(x).shape == (7, 4)
    want = x @ (lay.weight[0] * lay.scales[0]).T + lay.equivariant_bias()
    torch.testing.assert_close(lay(x), want)
    for group in ("S_n", "O(n)", "SO(n)"):
        lay = EquivariantLinear(group, 1, 2, 3, 2, 2, dtype=torch.float64)
        x = torch.randn(3, 1, 1, 2, dtype=torch.float64)
        assert lay(x).shape == (3, 1, 1, 1, 2)
    # No equivariant map: O(3), k + l odd: output is zeros (no bias exists for odd l either).
    lay = EquivariantLinear("O(n)", 3, 2, 1, 2, 2)
    assert lay.num_weights == 0 and lay.bias_weight.shape == (0, 2)
    assert torch.equal(lay(torch.randn(4, 3, 3, 2)), torch.zeros(4, 3, 2))


def test_errors_are_clear():
    with pytest.raises(ValueError, match="did you mean 'SO\\(n\\)'"):
        EquivariantLinear("SO(m)", 3, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="even n"):
        EquivariantLinear("Sp(n)", 3, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="does not match the graph"):
        EquivariantLinear(PETERSEN, 9, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="backend must be"):
        EquivariantLinear("S_n", 3, 1, 1, 1, 1, backend="sparse")
    with pytest.raises(ValueError, match="c_in must be"):
        EquivariantLinear("S_n", 3, 1, 1, 0, 1)
    lay = EquivariantLinear("S_n", 3, 2, 1, 2, 2)
    with pytest.raises(ValueError, match=r"x must have shape \(\*batch, 3, 3, 2\)"):
        lay(torch.randn(4, 3, 2))
    with pytest.raises(TypeError, match="dtype"):
        lay(torch.randn(4, 3, 3, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="not orthogonal"):
        representation("O(n)", 3, 2 * torch.eye(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="determinant"):
        representation("SO(n)", 3, torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)))
    with pytest.raises(ValueError, match="not symplectic"):
        representation("Sp(n)", 2, torch.diag(torch.tensor([2.0, 1.0], dtype=torch.float64)))
    with pytest.raises(ValueError, match="permutations"):
        representation("S_n", 3, torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="not an automorphism"):
        representation(CYCLE5, 5, torch.tensor([0, 2, 1, 3, 4]))
