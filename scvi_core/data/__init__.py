"""The counts the models see: registering an AnnData (``setup_anndata``), checking that it holds counts, serving
them in minibatches (in memory or from disk), preparing a dataset (filters, highly variable genes) and simulating
one with known answers.

One concept per private file, re-exported here: ``_anndata`` (the registration), ``_counts`` (the checks),
``_loader`` (minibatches), ``_ondisk`` (matrices that stay on disk), ``_preprocess`` (summaries and preparation),
``_simulate`` (simulated counts and their truth).
"""

from ._anndata import SETUP_KEY, Registry, registry_of, setup_anndata
from ._counts import CountsError, check_counts, counts_per_cell, get_counts
from ._loader import Batch, CountData, minibatch_starts
from ._ondisk import ON_DISK_KEY, DiskMatrix, is_on_disk, resident_bytes, write_shuffled_copy
from ._preprocess import (
    DatasetSummary,
    PreparationError,
    counts_locations,
    histogram,
    inspect_counts,
    key_candidates,
    prepare,
    prepare_on_disk,
    suggest_keys,
    summarize,
)
from ._simulate import CELL_TYPE_DROPOUT, CONSTANT_DROPOUT, NB, NB_SILENT, ZERO_KINDS, simulate, true_lfc

__all__ = [
    "SETUP_KEY", "Registry", "registry_of", "setup_anndata",
    "CountsError", "check_counts", "counts_per_cell", "get_counts",
    "Batch", "CountData", "minibatch_starts",
    "ON_DISK_KEY", "DiskMatrix", "is_on_disk", "resident_bytes", "write_shuffled_copy",
    "DatasetSummary", "PreparationError", "counts_locations", "histogram", "inspect_counts", "key_candidates",
    "prepare", "prepare_on_disk",
    "suggest_keys", "summarize",
    "CELL_TYPE_DROPOUT", "CONSTANT_DROPOUT", "NB", "NB_SILENT", "ZERO_KINDS", "simulate", "true_lfc",
]
