"""The counts themselves, per group: what a table shows beside the model's answer (scvi-tools' ``all_stats``), read
in chunks of cells because a group may be most of the data (one cluster against the rest), which may be on disk."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

RAW_CHUNK_CELLS = 8192  # cells whose counts are read at once for a group's raw statistics
NOT_EXPRESSED_MEAN = 0.01  # scvi-tools' threshold_counts: raw mean count per cell below which a gene is not expressed
# in a group (both methods' pseudocounts)


def rows(matrix, cells: np.ndarray) -> sp.csr_matrix:
    """The cells' rows of the count matrix as a float64 CSR (cells in increasing order, which a matrix on disk reads
    in a few long slices)."""
    block = matrix[np.sort(cells)]
    return sp.csr_matrix(block, dtype=np.float64) if sp.issparse(block) else sp.csr_matrix(np.asarray(block, float))


def shares(block: sp.csr_matrix) -> sp.csr_matrix:
    """x_ng / l_n: the counts as shares of each cell's library."""
    library = np.maximum(np.asarray(block.sum(axis=1)).ravel(), 1.0)
    return sp.csr_matrix(sp.diags(1.0 / library) @ block)


def raw_statistics(matrix, cells: np.ndarray) -> dict[str, np.ndarray]:
    """Per gene over the group's cells: mean count, fraction of cells with a count, mean of counts per 10⁴."""
    cells = np.sort(cells)
    sums = np.zeros((3, matrix.shape[1]))
    for start in range(0, len(cells), RAW_CHUNK_CELLS):
        block = rows(matrix, cells[start : start + RAW_CHUNK_CELLS])
        sums += [np.asarray(block.sum(axis=0)).ravel(), np.asarray((block > 0).sum(axis=0)).ravel(),
                 np.asarray(shares(block).sum(axis=0)).ravel()]
    n = len(cells)
    return {"raw_mean": sums[0] / n, "non_zeros_proportion": sums[1] / n, "raw_normalized_mean": 1e4 * sums[2] / n}
