"""Loader of the optional compiled extension (``cuda_ext/``: C++/OpenMP and CUDA sources).

The extension is compiled on demand against the torch that is installed (never a prebuilt wheel
pinned to one torch ABI: TorchMD-Net's lesson), cached by torch in ``TORCH_EXTENSIONS_DIR``, and
registers its ops under ``torch.ops.tensormol_ext``. The core never needs it: every op has a
pure-PyTorch reference twin, and ``backend="auto"`` uses the compiled op only once it is loaded.

Capabilities are probed once per process and cached in this module's loader object, which is
the only state kept here (no global torch settings are touched).
"""

from __future__ import annotations

from ._loader import ExtensionStatus, ext_status, load_extension, sources_dir
from ._ops import resolve_backend, segment_sum_csr

__all__ = ["ExtensionStatus", "ext_status", "load_extension", "resolve_backend",
           "segment_sum_csr", "sources_dir"]
