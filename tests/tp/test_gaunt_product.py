"""Gaunt tensor product by the torus Fourier route against its dense twin and the identities
that define it."""

from __future__ import annotations

import math

import pytest
import torch

from tensormol.ops import GauntTensorProduct, cg_tensor_product, gaunt_product, gaunt_product_dense
from tensormol.so3 import Irreps, rand_o3, spherical_harmonics, wigner_3j

F64 = torch.float64


def fourier(*xs: torch.Tensor, **kw) -> torch.Tensor:
    """The torus route, whatever ``backend="auto"`` would pick for these degrees."""
    return gaunt_product(*xs, backend="fourier", **kw)


def _rand(gen: torch.Generator, lmax: int, *batch: int, dtype=F64) -> torch.Tensor:
    return torch.randn(*batch, (lmax + 1) ** 2, generator=gen, dtype=dtype)


def _eval(coeff: torch.Tensor, lmax: int, points: torch.Tensor, norm="integral"):
    return spherical_harmonics(list(range(lmax + 1)), points, normalization=norm) @ coeff


def test_fast_equals_dense_for_all_degrees_up_to_8(generator) -> None:
    worst = 0.0
    for l1 in range(9):
        for l2 in range(9):
            x, y = _rand(generator, l1, 2), _rand(generator, l2, 2)
            for l3 in range(9):
                fast = fourier(x, y, lmax_out=l3)
                ref = gaunt_product_dense(x, y, lmax_out=l3)
                worst = max(worst, float((fast - ref).abs().max()))
    assert worst < 1e-10, worst


@pytest.mark.parametrize("norm", ["integral", "component", "norm"])
def test_pointwise_identity(generator, norm) -> None:
    # Σ z_lm Y_lm(ω) = f_x(ω) f_y(ω) when the output keeps every degree of the product.
    l1, l2 = 4, 5
    x, y = _rand(generator, l1), _rand(generator, l2)
    z = fourier(x, y, lmax_out=l1 + l2, normalization=norm)
    pts = torch.randn(64, 3, generator=generator, dtype=F64)
    lhs = _eval(z, l1 + l2, pts, norm)
    rhs = _eval(x, l1, pts, norm) * _eval(y, l2, pts, norm)
    assert torch.allclose(lhs, rhs, atol=1e-10 * rhs.abs().max(), rtol=0)


def test_many_body_product_in_one_pass(generator) -> None:
    # ν = 3: one pass equals the chained dense products and the pointwise triple product.
    xs = [_rand(generator, 3, 5) for _ in range(3)]
    z = fourier(*xs, lmax_out=9)
    assert torch.allclose(z, gaunt_product_dense(*xs, lmax_out=9), atol=1e-11)
    pts = torch.randn(32, 3, generator=generator, dtype=F64)
    lhs = _eval(z.T, 9, pts).T
    rhs = math.prod(_eval(x.T, 3, pts).T for x in xs)
    assert torch.allclose(lhs, rhs, atol=1e-9)


def test_only_even_paths_exist(generator) -> None:
    # 1 ⊗ 1 has no degree-1 Gaunt component (l1 + l2 + l3 odd); the CG route has it.
    a = torch.zeros(4, dtype=F64)
    b = torch.zeros(4, dtype=F64)
    a[1:] = torch.randn(3, generator=generator, dtype=F64)
    b[1:] = torch.randn(3, generator=generator, dtype=F64)
    z = fourier(a, b, lmax_out=2)
    assert float(z[1:4].abs().max()) < 1e-14
    cross = cg_tensor_product(a[1:], 1, b[1:], 1, 1)
    # e3nn's 1o basis is (x, y, z): the CG 1⊗1→1 path is the cross product / sqrt(6).
    assert torch.allclose(cross, torch.linalg.cross(a[1:], b[1:]) / math.sqrt(6), atol=1e-14)
    assert torch.allclose(wigner_3j(1, 1, 1, dtype=F64).norm(), torch.tensor(1.0, dtype=F64))


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_equivariance_under_o3(generator, dtype, tol) -> None:
    l1, l2, l3 = 3, 4, 6
    irreps = {L: Irreps.spherical_harmonics(L) for L in (l1, l2, l3)}
    x, y = _rand(generator, l1, 8, dtype=dtype), _rand(generator, l2, 8, dtype=dtype)
    for R in rand_o3(4, generator=generator, dtype=F64):
        D = {L: irreps[L].D_from_matrix(R).to(dtype) for L in irreps}
        out_rot = fourier(x @ D[l1].T, y @ D[l2].T, lmax_out=l3)
        rot_out = fourier(x, y, lmax_out=l3) @ D[l3].T
        scale = rot_out.abs().max()
        assert float((out_rot - rot_out).abs().max() / scale) < tol


def test_gradients_and_double_backward(generator) -> None:
    x = _rand(generator, 2).requires_grad_(True)
    y = _rand(generator, 1).requires_grad_(True)
    torch.autograd.gradcheck(lambda a, b: fourier(a, b, lmax_out=3), (x, y))
    torch.autograd.gradgradcheck(lambda a, b: fourier(a, b, lmax_out=2), (x, y))
    # Gradients equal those of the dense twin.
    g_fast = torch.autograd.grad(fourier(x, y, lmax_out=4).pow(2).sum(), (x, y))
    g_ref = torch.autograd.grad(gaunt_product_dense(x, y, lmax_out=4).pow(2).sum(), (x, y))
    for a, b in zip(g_fast, g_ref):
        assert torch.allclose(a, b, atol=1e-12)


def test_module_backends_agree_and_share_state(generator) -> None:
    fast = GauntTensorProduct(3, 2, 4, channels=5, backend="fourier", dtype=F64)
    with torch.no_grad():
        for p in fast.parameters():
            p.normal_(generator=generator)
    dense = GauntTensorProduct(3, 2, 4, channels=5, backend="dense", dtype=F64)
    dense.load_state_dict(fast.state_dict())
    x, y = _rand(generator, 3, 7, 5), _rand(generator, 2, 7, 5)
    assert torch.allclose(fast(x, y), dense(x, y), atol=1e-12)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 5, 16\)"):
        fast(x[..., :9], y)


def test_dense_route_equals_the_reference_twin(generator) -> None:
    # backend="dense" (what "auto" runs for small degrees): all pairs up to degree 4, outputs
    # below, at and above the sum of the input degrees, and chained three-input products.
    worst = 0.0
    for l1 in range(5):
        for l2 in range(5):
            x, y = _rand(generator, l1, 3), _rand(generator, l2, 3)
            for l3 in range(l1 + l2 + 2):
                for norm in ("integral", "component"):
                    a = gaunt_product(x, y, lmax_out=l3, normalization=norm, backend="dense")
                    b = gaunt_product_dense(x, y, lmax_out=l3, normalization=norm)
                    worst = max(worst, float((a - b).abs().max()))
    xs = [_rand(generator, L, 4) for L in (2, 3, 1)]
    for l3 in (0, 2, 4, 7):
        a = gaunt_product(*xs, lmax_out=l3, backend="dense")
        worst = max(worst, float((a - gaunt_product_dense(*xs, lmax_out=l3)).abs().max()))
    assert worst < 1e-12, worst


def test_broadcast_inputs_and_auto_backend(generator) -> None:
    # Edge harmonics (E, 1, D) against channel features (E, C, D): transformed once, broadcast on
    # the grid; equal to the dense route and to the explicitly expanded product.
    x, y = _rand(generator, 3, 6, 4), _rand(generator, 2, 6, 1)
    ref = gaunt_product_dense(x, y.expand(6, 4, 9), lmax_out=4)
    assert torch.allclose(fourier(x, y, lmax_out=4), ref, atol=1e-12)
    assert torch.allclose(fourier(y, x, lmax_out=4), ref, atol=1e-12)
    assert torch.allclose(gaunt_product(x, y, lmax_out=4), ref, atol=1e-12)  # auto
    z = _rand(generator, 2, 1, 4)  # broadcast along the other axis
    ref3 = gaunt_product_dense(x, y.expand(6, 4, 9), z.expand(6, 4, 9), lmax_out=5)
    assert torch.allclose(fourier(x, y, z, lmax_out=5), ref3, atol=1e-11)
    with pytest.raises(ValueError, match="backend must be one of"):
        gaunt_product(x, y, lmax_out=2, backend="fft")


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match=r"last dimension \(lmax\+1\)²"):
        gaunt_product(torch.zeros(5), torch.zeros(4), lmax_out=2)
    with pytest.raises(ValueError, match="lmax_out"):
        gaunt_product(torch.zeros(4), torch.zeros(4), lmax_out=-1)
    with pytest.raises(ValueError, match="normalization must be one of"):
        gaunt_product(torch.zeros(4), torch.zeros(4), lmax_out=2, normalization="unit")
    with pytest.raises(TypeError, match="share dtype"):
        gaunt_product(torch.zeros(4), torch.zeros(4, dtype=F64), lmax_out=2)


def test_row_blocks_equal_one_pass(generator, monkeypatch) -> None:
    # Large batches run the Fourier route in row blocks; force blocks of 64 rows on 150 rows.
    import tensormol.ops._gaunt_fourier as gf

    x = _rand(generator, 3, 150, 3).requires_grad_(True)
    y = _rand(generator, 2, 150, 3).requires_grad_(True)
    ref = fourier(x, y, x, lmax_out=4)
    g_ref = torch.autograd.grad(ref.pow(2).sum(), (x, y))
    monkeypatch.setattr(gf, "GRID_CHUNK_BYTES", 1024)
    out = fourier(x, y, x, lmax_out=4)
    g = torch.autograd.grad(out.pow(2).sum(), (x, y))
    assert out.shape == ref.shape
    assert torch.allclose(out, ref, atol=1e-12)
    for a, b in zip(g, g_ref):
        assert torch.allclose(a, b, atol=1e-11)
