"""Differentiable functional ops: neighbour lists, edge geometry, scatter/segment sums.

Every op has a reference torch implementation (the specification) and, where one exists, a fast
backend chosen per call and logged once.
"""

from ._gaunt_fourier import fourier_grid_shape, gaunt_product, gaunt_product_dense
from ._geometry import edge_vectors, edge_vectors_unchecked
from ._neighbors import neighbor_list, neighbor_list_backends
from ._scatter import scatter_sum, segment_sum
from ._tensor_product import GauntTensorProduct, cg_tensor_product

__all__ = [
    "neighbor_list", "neighbor_list_backends", "edge_vectors", "edge_vectors_unchecked",
    "scatter_sum", "segment_sum", "gaunt_product", "gaunt_product_dense", "fourier_grid_shape",
    "GauntTensorProduct", "cg_tensor_product",
]
