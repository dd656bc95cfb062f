"""The kernel registry: resolutions are recorded and logged, overridable, fixed at construction,
and traced graphs record the traceable twins."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest
import torch

from tensormol._ext import Kernel, Resolution, build_prerequisites, kernels
from tensormol.ops import GauntTensorProduct, gaunt_product_dense

F64 = torch.float64


def _twice(x: torch.Tensor) -> torch.Tensor:
    return 2.0 * x


def _twice_by_sum(x: torch.Tensor) -> torch.Tensor:
    return x + x


# A small op of this test: "fast" takes float64 only and is not traceable, "plain" is its twin.
_OP = Kernel("test_kernels.twice", traced="plain")
_OP.register("fast", _twice, supports=lambda device, dtype: dtype == F64, doc="float64 only")
_OP.register("plain", _twice_by_sum, traceable=True, doc="the twin")
_OP.register("absent", _twice, unavailable=lambda: "its library is not installed")


def test_builtin_kernels_are_found_on_first_lookup_and_name_a_traceable_twin() -> None:
    table = kernels()
    for op in ("gaunt_product", "gaunt_grid", "segment_sum", "segment_sum_csr", "neighbor_list",
               "tensornet.message_passing", "tensornet.matmul3", "tensornet.normalize",
               "undirected_pairs.keys"):
        assert op in table, op
    for op, kernel in table.items():
        assert kernel.backend(kernel.traced).traceable, op


def test_resolution_is_recorded_on_the_module_and_logged_once(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="tensormol.kernels"):
        tp = GauntTensorProduct(2, 2, 2, channels=3, dtype=F64)
        x = torch.randn(5, 3, 9, dtype=F64)
        tp(x, x)
        tp(x, x)
    lines = [r.getMessage() for r in caplog.records if r.name == "tensormol.kernels"]
    assert len(lines) == 1, lines  # resolved at construction, not per call
    assert isinstance(tp.resolution, Resolution)
    assert lines[0] == tp.resolution.line()
    assert lines[0].startswith(f"gaunt_product -> {tp.backend!r} (requested 'auto'): ")
    assert "degrees (2, 2) -> 2" in lines[0]


def test_override_runs_the_named_backend_and_bad_names_list_the_valid_ones() -> None:
    x, y = torch.randn(4, 3, 16, dtype=F64), torch.randn(4, 3, 9, dtype=F64)
    ref = gaunt_product_dense(x, y, lmax_out=3)
    for name in ("dense", "fourier", "grid"):
        tp = GauntTensorProduct(3, 2, 3, channels=3, backend=name, dtype=F64)
        assert tp.backend == name and tp.resolution.reason == "explicit request"
        assert torch.allclose(tp(x, y), ref, atol=1e-12)
    with pytest.raises(ValueError, match=r"backend must be one of 'auto', 'dense', 'fourier'"):
        GauntTensorProduct(3, 2, 3, channels=3, backend="fft")


def test_auto_fallback_and_explicit_requests() -> None:
    res = _OP.resolve("auto", log=False)
    assert (res.backend, res.fallback, res.traced) == ("fast", "plain", "plain")
    x64 = torch.arange(3.0, dtype=F64)
    assert _OP.select(res, x64.device, F64).name == "fast"
    # float32 is not taken by "fast": "auto" runs the fallback recorded at resolution ...
    assert _OP.select(res, x64.device, torch.float32).name == "plain"
    # ... an explicit request raises instead of switching silently.
    explicit = _OP.resolve("fast", log=False)
    with pytest.raises(ValueError, match="does not take torch.float32"):
        _OP.select(explicit, x64.device, torch.float32)
    with pytest.raises(RuntimeError, match="its library is not installed"):
        _OP.resolve("absent", log=False)
    with pytest.raises(ValueError, match="a resolution of 'gaunt_product' was passed"):
        _OP.resolve(GauntTensorProduct(1, 1, 1, channels=1).resolution)


def test_tracing_records_the_traceable_twin() -> None:
    import tensormol.models._irreducible as irr
    from tensormol.models._tensornet_ops import message_passing, message_passing_reference

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, 4, 5, generator=g, dtype=F64, requires_grad=True)
    f = torch.randn(3, 6, 5, generator=g, dtype=F64)
    y = torch.randn(9, 4, 5, generator=g, dtype=F64)
    i, j = torch.tensor([0, 0, 1, 2, 3, 3]), torch.tensor([1, 2, 0, 3, 0, 1])
    pair = torch.arange(6)

    def step(a: torch.Tensor, yy: torch.Tensor):
        c = irr.normalize(irr.from_matrix(irr.anticommutator(a, irr.matmul3(a, a))))
        return c, message_passing(f, yy, i, j, pair, 4), _OP(yy)

    eager = step(x, y)
    # Eager: the fused autograd Functions run (their backward nodes are custom).
    assert type(eager[0].grad_fn).__name__ == "_NormalizeBackward"
    traced = torch.jit.trace(step, (x, y), check_trace=False)
    kinds = {n.kind() for n in traced.graph.nodes()}
    assert "prim::PythonOp" not in kinds  # no custom Function was recorded
    y2 = torch.randn(9, 4, 5, generator=g, dtype=F64)
    x2 = torch.randn(3, 3, 4, 5, generator=g, dtype=F64)
    for a, b in zip(traced(x2, y2), step(x2, y2)):
        assert torch.allclose(a, b, atol=1e-12)
    assert torch.allclose(traced(x2, y2)[1], message_passing_reference(f, y2, i, j, pair, 4),
                          atol=1e-12)


@pytest.mark.skipif(build_prerequisites() is not None,
                    reason=f"the compiled extension cannot be built here: {build_prerequisites()}")
def test_module_choice_is_fixed_at_construction_when_the_extension_loads_later() -> None:
    # A fresh interpreter: the extension is not loaded when the module is built.
    code = textwrap.dedent("""
        import logging, torch
        lines = []
        class H(logging.Handler):
            def emit(self, r): lines.append(r.getMessage())
        log = logging.getLogger("tensormol.kernels")
        log.addHandler(H()); log.setLevel(logging.INFO)
        from tensormol._ext import load_extension
        from tensormol.ops import GauntTensorProduct, gaunt_product
        tp = GauntTensorProduct(6, 6, 6, channels=2, dtype=torch.float64)
        before = tp.backend
        assert load_extension().loaded
        x = torch.randn(3, 2, 49, dtype=torch.float64)
        z = tp(x, x)
        assert tp.backend == before == "fourier", tp.backend
        assert sum(line.startswith("gaunt_product") for line in lines) == 1, lines
        # A plain function call with "auto" resolves at the call: a new, logged resolution.
        gaunt_product(x, x, lmax_out=6)
        assert lines[-1].startswith("gaunt_product -> 'cpp' (requested 'auto')"), lines
        assert GauntTensorProduct(6, 6, 6, channels=2).backend == "cpp"
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
