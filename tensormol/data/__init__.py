"""Atomic data: the data set and batch contract, readers, splits, statistics and generation.

A batch is a plain ``dict[str, torch.Tensor]`` keyed by :mod:`tensormol.keys`, in Å, eV, eV/Å,
eV/Å³ and e·Å, float64. Readers convert to these units once, at read time; neighbour lists are
not stored (the model builds them from its own cutoff). Element symbols and masses live in
:mod:`tensormol.elements`.
"""

from ._dataset import LABEL_KEYS, AtomicDataset, collate, make_dataloader
from ._generate import SamplingSettings, TBLiteLabeller, baoab_step, generate, prepare_structure
from ._readers import FORMATS, detect_format, read_dataset, write_dataset
from ._split import split_dataset, split_indices
from ._statistics import compute_statistics, dataset_summary, mean_num_neighbors
from ._structures import StartingStructure, build_box, structure_from_file, structure_from_smiles

__all__ = [
    # contract
    "AtomicDataset", "collate", "make_dataloader", "LABEL_KEYS",
    # reading and writing
    "read_dataset", "write_dataset", "detect_format", "FORMATS",
    # splits and statistics
    "split_dataset", "split_indices", "compute_statistics", "mean_num_neighbors",
    "dataset_summary",
    # generation
    "SamplingSettings", "TBLiteLabeller", "baoab_step", "generate", "prepare_structure",
    "StartingStructure", "build_box", "structure_from_file", "structure_from_smiles",
]
