"""The sphere-grid Gaunt route: its torch twin against the dense contraction, and the compiled
kernel against the twin (forward, backward, double backward)."""

from __future__ import annotations

import pytest
import torch

from tensormol._ext import build_prerequisites, load_extension
from tensormol.ops import gaunt_product, gaunt_product_dense, resolve_gaunt_backend
from tensormol.ops._gaunt_grid import (
    _product_tables,
    grid_product,
    grid_route,
    grid_shape,
)
from tensormol.so3 import spherical_harmonics

F64 = torch.float64


@pytest.fixture(scope="module")
def ext_loaded() -> None:
    missing = build_prerequisites()  # probed once per process
    if missing is not None:
        pytest.skip(f"the compiled extension cannot be built here: {missing}")
    status = load_extension()
    # With a compiler present the build is part of the project: a failure is a real failure.
    assert status.loaded, status.reason


def _rand(gen: torch.Generator, lmax: int, *batch: int, dtype=F64) -> torch.Tensor:
    return torch.randn(*batch, (lmax + 1) ** 2, generator=gen, dtype=dtype)


def _grid(*xs: torch.Tensor, lmax_out: int, normalization: str = "integral",
          backend: str = "torch") -> torch.Tensor:
    lmaxes = [int(round(x.shape[-1] ** 0.5)) - 1 for x in xs]
    batch = torch.broadcast_shapes(*(x.shape[:-1] for x in xs))
    return grid_route(list(xs), lmaxes, lmax_out, tuple(batch), normalization, impl=backend)


def test_grid_is_the_smallest_exact_one() -> None:
    # Gauss–Legendre with n points is exact to degree 2n - 1; the integrand has degree S + L_out.
    assert grid_shape([10, 10], 10) == (16, 31)
    assert grid_shape([2, 2, 2], 2) == (5, 9)


def test_twin_equals_dense_for_all_degrees_up_to_8(generator) -> None:
    worst = 0.0
    for l1 in range(9):
        for l2 in range(9):
            x, y = _rand(generator, l1, 2), _rand(generator, l2, 2)
            for l3 in sorted({0, 1, l1, l1 + l2, 8}):
                norm = ("integral", "component", "norm")[(l1 + l2 + l3) % 3]
                ref = gaunt_product_dense(x, y, lmax_out=l3, normalization=norm)
                worst = max(worst, float((_grid(x, y, lmax_out=l3, normalization=norm)
                                          - ref).abs().max()))
    assert worst < 1e-10, worst


def test_pointwise_identity_and_many_body(generator) -> None:
    x, y = _rand(generator, 4), _rand(generator, 5)
    z = _grid(x, y, lmax_out=9)
    pts = torch.randn(64, 3, generator=generator, dtype=F64)

    def f(c, L):
        return spherical_harmonics(list(range(L + 1)), pts, normalization="integral") @ c

    assert torch.allclose(f(z, 9), f(x, 4) * f(y, 5), atol=1e-10 * f(z, 9).abs().max(), rtol=0)
    xs = [_rand(generator, L, 5) for L in (3, 2, 3)]
    assert torch.allclose(_grid(*xs, lmax_out=6), gaunt_product_dense(*xs, lmax_out=6),
                          atol=1e-11)


def test_kernel_equals_twin(ext_loaded, generator) -> None:
    # 37 rows: two full tiles of 16 and a partial one.
    for lmaxes, l_out in (((3, 2), 4), ((6, 6), 6), ((2, 2, 2), 2), ((1, 4, 0), 3), ((5,), 3)):
        xs = [_rand(generator, L, 37) for L in lmaxes]
        fast = _grid(*xs, lmax_out=l_out, normalization="component", backend="cpp")
        ref = _grid(*xs, lmax_out=l_out, normalization="component", backend="torch")
        assert torch.allclose(fast, ref, atol=1e-12), lmaxes
        xf = [x.float() for x in xs]
        f32 = _grid(*xf, lmax_out=l_out, normalization="component", backend="cpp")
        assert f32.dtype == torch.float32
        assert torch.allclose(f32.double(), ref, atol=2e-5 * ref.abs().max())


def test_kernel_gradients_and_double_backward(ext_loaded, generator) -> None:
    x = _rand(generator, 3, 19).requires_grad_(True)
    y = _rand(generator, 2, 19).requires_grad_(True)

    def fast(a, b):
        return _grid(a, b, a, lmax_out=4, backend="cpp")

    torch.autograd.gradcheck(fast, (x, y))
    torch.autograd.gradgradcheck(fast, (x, y))
    # And against the twin's autograd: first and second derivatives of a force-like loss.
    for fn in (fast, lambda a, b: _grid(a, b, a, lmax_out=4, backend="torch")):
        (gx,) = torch.autograd.grad(fn(x, y).pow(2).sum(), x, create_graph=True)
        hess = torch.autograd.grad(gx.sin().sum(), (x, y))
        if fn is fast:
            got = (gx, *hess)
        else:
            for a, b in zip(got, (gx, *hess)):
                assert torch.allclose(a, b, atol=1e-11)


def test_broadcast_and_auto_route(ext_loaded, generator) -> None:
    x, sh = _rand(generator, 5, 6, 4), _rand(generator, 5, 6, 1)
    ref = gaunt_product_dense(x, sh.expand(6, 4, 36), lmax_out=5)
    for route in ("grid", "cpp"):
        assert torch.allclose(gaunt_product(x, sh, lmax_out=5, backend=route), ref, atol=1e-11)
    assert resolve_gaunt_backend((5, 5), 5, dtype=F64).backend == "cpp"
    assert resolve_gaunt_backend((2, 2, 2), 2).backend == "cpp"
    # A pair with a shared operand at small degree keeps the dense contraction.
    assert resolve_gaunt_backend((2, 2), 2, shared=True).backend == "dense"
    # The kernel takes CPU float32/float64 only: other inputs run the torch route recorded at
    # resolution (fourier above degree 4), a float16 module resolves to a torch route.
    assert resolve_gaunt_backend((5, 5), 5).fallback == "fourier"
    assert resolve_gaunt_backend((2, 2), 2, dtype=torch.float16).backend == "dense"
    assert torch.allclose(gaunt_product(x, x, lmax_out=5), gaunt_product_dense(x, x, lmax_out=5),
                          atol=1e-11)


def test_kernel_rejects_inconsistent_tables(ext_loaded, generator) -> None:
    tabs, out = _product_tables((2, 2), 2, "integral", F64, torch.device("cpu"))
    x = _rand(generator, 2, 4)
    with pytest.raises(RuntimeError, match="out of range"):
        grid_product([x[:, :4], x], tabs, out, 9, backend="cpp")
    with pytest.raises(RuntimeError, match="same Z"):
        grid_product([x, x[:3]], tabs, out, 9, backend="cpp")


def test_kernel_general_tables_equal_twin(ext_loaded, generator) -> None:
    # The kernel folds φ_j with φ_{n-j} when the trig rows are even (cos) / odd (sin), which
    # the product's tables are; tables without that symmetry take the general path.
    from tensormol.ops._gaunt_grid import grid_product_torch

    tabs, out = _product_tables((3, 2), 4, "integral", F64, torch.device("cpu"))
    bent = tabs[0]._replace(trig=tabs[0].trig + 1e-3 * torch.randn(
        tabs[0].trig.shape, generator=generator, dtype=F64))
    for tables in ((bent, tabs[1]), tabs):
        xs = [_rand(generator, 3, 21), _rand(generator, 2, 21)]
        fast = grid_product(xs, tables, out, 25, backend="cpp")
        ref = grid_product_torch(xs, tables, out, 25)
        assert torch.allclose(fast, ref, atol=1e-12)
        # and the gradient (the analysis side of the bent table)
        x0 = xs[0].clone().requires_grad_(True)
        w = torch.randn(21, 25, generator=generator, dtype=F64)
        (g_fast,) = torch.autograd.grad((grid_product([x0, xs[1]], tables, out, 25,
                                                      backend="cpp") * w).sum(), x0)
        (g_ref,) = torch.autograd.grad((grid_product_torch([x0, xs[1]], tables, out, 25)
                                        * w).sum(), x0)
        assert torch.allclose(g_fast, g_ref, atol=1e-12)
