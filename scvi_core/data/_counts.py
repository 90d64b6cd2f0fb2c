"""Checks that a matrix holds raw counts, with messages a biologist can act on.

Why a module of its own: both ``setup_anndata`` and the dashboard's Load data page must refuse normalised or
corrupt data with the same, specific explanation. The checks read the matrix in chunks so that a sparse matrix is
never densified and a large dense one is never copied whole.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from anndata.abc import CSCDataset

from ._ondisk import DiskMatrix, is_on_disk

_CHUNK_ROWS = 4096


class CountsError(ValueError):
    """The data are not raw counts (or are unusable as such). The message says what was found and what to do."""


def get_counts(adata, layer: str | None = None):
    """Return the matrix that holds the counts: ``adata.X``, ``adata.layers[layer]`` or, for ``layer="raw"``,
    ``adata.raw.X`` when ``adata.raw`` has the same genes. A matrix on disk (an AnnData opened backed, or anndata's
    ``sparse_dataset``) comes as a :class:`~scvi_core.data._ondisk.DiskMatrix`, which reads only the rows asked for."""
    if layer is None:
        matrix = adata.X
    elif layer == "raw" and "raw" not in adata.layers:
        if adata.raw is None:
            raise CountsError("layer='raw' was asked for but this AnnData has no .raw. Choose X or a layer.")
        if list(adata.raw.var_names) != list(adata.var_names):
            raise CountsError(
                ".raw holds a different gene set than X. Subset adata.raw.to_adata() to your genes first, "
                "or choose X or a layer."
            )
        matrix = adata.raw.X
    elif layer in adata.layers:
        matrix = adata.layers[layer]
    else:
        available = ", ".join(repr(k) for k in adata.layers.keys()) or "none"
        raise CountsError(f"Layer {layer!r} not found. Available layers: {available}; or use X (layer=None).")
    if matrix is None:
        raise CountsError("This AnnData has no expression matrix (X is empty). Load a file that contains counts.")
    if isinstance(matrix, CSCDataset):
        raise CountsError(
            "The counts on disk are stored gene by gene (CSC), so reading a few cells would read the whole file. "
            "Write a cell-by-cell (CSR) copy once, e.g. adata.X = adata.X.tocsr() on a machine that holds it, or "
            "with anndata's chunked writers."
        )
    return DiskMatrix(matrix) if is_on_disk(matrix) else matrix


def _row_chunks(matrix):
    """Yield (first_row, block) pairs: CSR row blocks or dense row slices, never the whole matrix densified."""
    for start in range(0, matrix.shape[0], _CHUNK_ROWS):
        yield start, matrix[start : start + _CHUNK_ROWS]


def counts_per_cell(matrix, gene: int | None = None) -> np.ndarray:
    """Each cell's total count, or its count of the gene in column ``gene``, in row chunks: a matrix on disk is
    read once and never whole (a column of an on-disk CSR cannot be read without reading every row)."""
    totals = np.zeros(matrix.shape[0], dtype=np.float64)
    for start, block in _row_chunks(matrix):
        block = block if gene is None else block[:, [gene]]
        totals[start : start + block.shape[0]] = np.asarray(block.sum(axis=1), dtype=np.float64).ravel()
    return totals


def _describe(value: float) -> str:
    return f"{value:.4g}"


def checked_chunks(matrix, obs_names, var_names):
    """Yield (first_row, block) pairs over ``matrix`` in row blocks, each block checked first: raise
    :class:`CountsError` unless the values are finite, non-negative and integer-valued (see :func:`check_counts`).
    Callers that need more per-cell or per-gene sums than the totals compute them in the same pass."""
    if matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise CountsError(
            f"The matrix is empty ({matrix.shape[0]} cells × {matrix.shape[1]} genes). "
            "Load a file with at least one cell and one gene, or loosen the filters."
        )
    if sp.issparse(matrix) and not isinstance(matrix, sp.csr_matrix | sp.csr_array):
        matrix = sp.csr_matrix(matrix)
    if not (np.issubdtype(matrix.dtype, np.number) or matrix.dtype == bool):
        raise CountsError(f"The matrix has dtype {matrix.dtype}; counts must be numbers.")
    for start, block in _row_chunks(matrix):
        values = block.data if sp.issparse(block) else np.asarray(block)
        _check_block(block, values, start, obs_names, var_names)
        yield start, block


def check_counts(matrix, obs_names, var_names) -> np.ndarray:
    """Raise :class:`CountsError` unless ``matrix`` holds finite, non-negative, integer-valued counts with no
    empty cell. Return the total count of every cell (float64), which callers need anyway.

    The first offending entry is named (value, cell, gene) with a diagnosis: NaN/inf (corrupt or missing values),
    negative (scaled or centred data), non-integer (normalised or log-transformed data).
    """
    totals = np.zeros(matrix.shape[0], dtype=np.float64)
    for start, block in checked_chunks(matrix, obs_names, var_names):
        totals[start : start + block.shape[0]] = np.asarray(block.sum(axis=1), dtype=np.float64).ravel()
    refuse_empty_cells(totals, obs_names)
    return totals


def refuse_empty_cells(totals: np.ndarray, obs_names) -> None:
    """Raise :class:`CountsError` naming cells whose total count is zero."""
    empty = np.flatnonzero(totals == 0)
    if empty.size:
        example = ", ".join(str(obs_names[i]) for i in empty[:3])
        raise CountsError(
            f"{empty.size} of {len(totals)} cells have zero total counts (e.g. {example}). A cell without any "
            "count carries no information and breaks the library-size model. Remove them first, e.g. "
            "sc.pp.filter_cells(adata, min_counts=1), or raise 'minimum counts per cell' on the Load data page."
        )


def _locate(block, values, bad_mask, start, obs_names, var_names) -> tuple[str, str, float]:
    """Name the cell and gene of the first flagged entry of a block."""
    k = int(np.flatnonzero(bad_mask.ravel())[0])
    if sp.issparse(block):
        row = int(np.searchsorted(block.indptr, k, side="right") - 1)
        col = int(block.indices[k])
        value = float(block.data[k])
    else:
        row, col = np.unravel_index(k, values.shape)
        value = float(values[row, col])
    return str(obs_names[start + row]), str(var_names[col]), value


def _check_block(block, values, start, obs_names, var_names) -> None:
    is_float = not (np.issubdtype(values.dtype, np.integer) or values.dtype == bool)
    if is_float:
        not_finite = ~np.isfinite(values)
        if not_finite.any():
            cell, gene, value = _locate(block, values, not_finite, start, obs_names, var_names)
            raise CountsError(
                f"Found {value} at cell {cell!r}, gene {gene!r}. The matrix has missing or infinite values, so the "
                "file may be corrupt or the data were transformed. Use the raw count matrix; if it really has "
                "gaps, remove those cells or genes first."
            )
    negative = values < 0
    if negative.any():
        cell, gene, value = _locate(block, values, negative, start, obs_names, var_names)
        raise CountsError(
            f"Found a negative value ({_describe(value)}) at cell {cell!r}, gene {gene!r}. Counts cannot be "
            "negative: the data look scaled or centred. Use the layer (or .raw) that holds raw counts."
        )
    if is_float:
        fractional = values != np.round(values)
        if fractional.any():
            cell, gene, value = _locate(block, values, fractional, start, obs_names, var_names)
            looks = "log-normalised" if float(values.max()) < 30 else "normalised (e.g. CPM or TPM)"
            raise CountsError(
                f"Found a non-integer value ({_describe(value)}) at cell {cell!r}, gene {gene!r}: values look "
                f"{looks}. scVI and AutoZI model raw counts; choose the layer that holds raw counts (often "
                "'counts') or .raw."
            )
