"""Differentiable functional ops: neighbour lists, edge geometry, scatter/segment sums, Gaunt and
Clebsch–Gordan tensor products.

Every op has a reference torch implementation (the specification) and, where one exists, fast
backends; which one runs is decided by the kernel registry (``tensormol._ext.Kernel``): once per
module at construction, or per call for plain functions, logged on ``tensormol.kernels``.
"""

from ._gaunt import gaunt_product, resolve_gaunt_backend
from ._gaunt_dense import gaunt_product_dense
from ._gaunt_fourier import fourier_grid_shape
from ._geometry import edge_vectors, edge_vectors_unchecked
from ._neighbors import neighbor_list, neighbor_list_backends
from ._scatter import scatter_sum, segment_sum
from ._tensor_product import GauntTensorProduct, cg_tensor_product

__all__ = [
    "neighbor_list", "neighbor_list_backends", "edge_vectors", "edge_vectors_unchecked",
    "scatter_sum", "segment_sum", "gaunt_product", "gaunt_product_dense", "fourier_grid_shape",
    "GauntTensorProduct", "cg_tensor_product", "resolve_gaunt_backend",
]
