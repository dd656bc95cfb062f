"""Loader of the optional compiled extension and the kernel registry.

The C++/OpenMP and CUDA sources ship inside the package (``tensormol/_ext/csrc/``) and are
compiled on demand against the torch that is installed (never a prebuilt wheel pinned to one
torch ABI: TorchMD-Net's lesson), cached by torch in ``TORCH_EXTENSIONS_DIR``; the ops register
under ``torch.ops.tensormol_ext``. The core never needs them: every op has a pure-PyTorch
reference twin.

Which implementation of an op runs is decided by the kernel registry (:class:`Kernel`,
``_backends``): resolved once per module, logged on ``tensormol.kernels``. Capabilities are
probed once per process and cached in the loader object, the only state kept here besides the
registry (no global torch settings are touched).
"""

from ._backends import (
    Backend,
    Kernel,
    Resolution,
    extension_backend,
    extension_key,
    kernels,
    tracing,
)
from ._loader import (
    ExtensionStatus,
    ExtensionUnavailableError,
    build_prerequisites,
    ext_status,
    load_extension,
    require_extension,
    sources_dir,
)
from ._ops import segment_sum_csr

__all__ = [
    "Backend", "ExtensionStatus", "ExtensionUnavailableError", "Kernel", "Resolution",
    "build_prerequisites", "ext_status", "extension_backend", "extension_key", "kernels",
    "load_extension", "require_extension", "segment_sum_csr", "sources_dir", "tracing",
]
