"""The compiled segment sum against its torch twin: forward, backward, double backward."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from tensormol._ext import build_prerequisites, load_extension, segment_sum_csr, sources_dir


@pytest.fixture(scope="module")
def ext_loaded() -> None:
    missing = build_prerequisites()  # probed once per process
    if missing is not None:
        pytest.skip(f"the compiled extension cannot be built here: {missing}")
    status = load_extension()
    # With a compiler present the build is part of the project: a failure is a real failure.
    assert status.loaded, status.reason


def _random_segments(gen: torch.Generator, n_seg: int = 37, feat: int = 5):
    counts = torch.randint(0, 6, (n_seg,), generator=gen)
    ptr = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)])
    src = torch.randn(int(ptr[-1]), feat, 3, generator=gen, dtype=torch.float64)
    return src, ptr


def test_forward_matches_twin(ext_loaded, generator) -> None:
    src, ptr = _random_segments(generator)
    ref = segment_sum_csr(src, ptr, backend="torch")
    fast = segment_sum_csr(src, ptr, backend="cpp")
    assert fast.shape == ref.shape == (37, 5, 3)
    assert torch.allclose(fast, ref, atol=1e-13, rtol=0)
    # Determinism: a second call is bitwise identical.
    assert torch.equal(fast, segment_sum_csr(src, ptr, backend="cpp"))
    f32 = segment_sum_csr(src.float(), ptr, backend="cpp")
    assert torch.allclose(f32.double(), ref, atol=1e-5)


def test_backward_and_double_backward(ext_loaded, generator) -> None:
    src, ptr = _random_segments(generator, n_seg=9, feat=2)
    src.requires_grad_(True)
    torch.autograd.gradcheck(lambda s: segment_sum_csr(s, ptr, backend="cpp"), (src,))
    torch.autograd.gradgradcheck(lambda s: segment_sum_csr(s, ptr, backend="cpp") ** 2, (src,))


def test_bad_offsets_are_rejected() -> None:
    src = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="ptr must start at 0"):
        segment_sum_csr(src, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="int64"):
        segment_sum_csr(src, torch.tensor([0.0, 4.0]))
    with pytest.raises(ValueError, match="backend must be one of"):
        segment_sum_csr(src, torch.tensor([0, 4]), backend="fortran")


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed on this machine")
def test_cuda_kernel_compiles(tmp_path: Path) -> None:
    # The CUDA kernels are torch-header-free, so a bare nvcc can check them without a GPU.
    src = sources_dir()
    assert src is not None
    out = subprocess.run(["nvcc", "-c", str(src / "segment_sum_kernel.cu"), "-o",
                          str(tmp_path / "k.o"), "-std=c++17"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "k.o").stat().st_size > 0
