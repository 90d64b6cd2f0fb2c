"""Summaries of a loaded dataset and its preparation for scVI / AutoZI: filters and highly variable genes.

Why a module: the Load data page shows what was loaded and produces the AnnData the model trains on; notebooks need
the same steps. Everything stays sparse (statistics are computed in row blocks) so that a 100,000-cell dataset is
summarised without densifying it, and :func:`prepare` always returns a new AnnData: the loaded one is never changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

from ._counts import CountsError, _row_chunks, check_counts, checked_chunks, get_counts
from ._ondisk import ON_DISK_KEY

MAX_CATEGORIES = 100
_CATEGORICAL_KINDS = "OSUb"  # object, bytes, str, bool numpy kinds; pandas categoricals are checked separately


class PreparationError(ValueError):
    """Preparation left nothing usable (or a step failed); the message says which setting to change."""


@dataclass
class DatasetSummary:
    """What the Load data page shows about a dataset's counts."""

    n_cells: int
    n_genes: int
    sparsity: float  # fraction of entries that are zero
    median_counts_per_cell: float
    counts_per_cell: np.ndarray
    genes_per_cell: np.ndarray
    top_genes: pd.DataFrame  # gene, total counts, % of all counts, cells expressing; most expressed first
    obs_columns: pd.DataFrame  # see obs_column_table


@dataclass
class _Stats:
    counts_per_cell: np.ndarray
    genes_per_cell: np.ndarray
    counts_per_gene: np.ndarray
    cells_per_gene: np.ndarray


def _stats(matrix, names: tuple | None = None) -> _Stats:
    """Per-cell and per-gene totals and non-zero counts, one block of rows at a time (never densifies a sparse
    matrix, never copies a dense one whole, reads one on disk once). With ``names`` (obs and var names) every block is
    checked for raw counts first (:func:`~scvi_core.data._counts.checked_chunks`)."""
    if sp.issparse(matrix) and not isinstance(matrix, sp.csr_matrix | sp.csr_array):
        matrix = sp.csr_matrix(matrix)
    n_cells, n_genes = matrix.shape
    stats = _Stats(np.zeros(n_cells), np.zeros(n_cells, dtype=np.int64), np.zeros(n_genes), np.zeros(n_genes, dtype=np.int64))
    for start, block in _row_chunks(matrix) if names is None else checked_chunks(matrix, *names):
        stop = start + block.shape[0]
        nonzero = block != 0
        stats.counts_per_cell[start:stop] = np.asarray(block.sum(axis=1), dtype=np.float64).ravel()
        stats.genes_per_cell[start:stop] = np.asarray(nonzero.sum(axis=1)).ravel()
        stats.counts_per_gene += np.asarray(block.sum(axis=0), dtype=np.float64).ravel()
        stats.cells_per_gene += np.asarray(nonzero.sum(axis=0)).ravel()
    return stats


def inspect_counts(adata: ad.AnnData, counts_layer: str | None = None) -> tuple[DatasetSummary, str | None]:
    """The summary of the matrix at ``counts_layer`` and, when it does not hold raw counts, why (the message of
    :func:`check_raw_counts`, else None). Raw counts take one pass over the matrix, which matters for a file on disk.
    Raises :class:`CountsError` when there is no matrix there."""
    matrix = get_counts(adata, counts_layer)
    try:
        stats, problem = _stats(matrix, (adata.obs_names, adata.var_names)), None
        if not stats.genes_per_cell.any():
            problem = _all_empty(matrix.shape[0])
    except CountsError as err:
        stats, problem = _stats(matrix), str(err)
    return _summary(adata, stats), problem


def summarize(adata: ad.AnnData, counts_layer: str | None = None, n_top_genes: int = 20) -> DatasetSummary:
    """Cells, genes, sparsity, per-cell totals and detected genes, the most expressed genes, and the obs columns."""
    return _summary(adata, _stats(get_counts(adata, counts_layer)), n_top_genes)


def _summary(adata: ad.AnnData, stats: _Stats, n_top_genes: int = 20) -> DatasetSummary:
    n_cells, n_genes = len(stats.counts_per_cell), len(stats.counts_per_gene)
    total = stats.counts_per_gene.sum()
    top = np.argsort(-stats.counts_per_gene, kind="stable")[:n_top_genes]
    top_genes = pd.DataFrame(
        {
            "gene": adata.var_names[top].astype(str),
            "total counts": stats.counts_per_gene[top],
            "% of all counts": 100 * stats.counts_per_gene[top] / total if total else 0.0,
            "cells expressing": stats.cells_per_gene[top],
        }
    )
    return DatasetSummary(
        n_cells=n_cells,
        n_genes=n_genes,
        sparsity=1.0 - stats.genes_per_cell.sum() / max(n_cells * n_genes, 1),
        median_counts_per_cell=float(np.median(stats.counts_per_cell)) if n_cells else 0.0,
        counts_per_cell=stats.counts_per_cell,
        genes_per_cell=stats.genes_per_cell,
        top_genes=top_genes,
        obs_columns=obs_column_table(adata),
    )


def obs_column_table(adata: ad.AnnData, max_categories: int = MAX_CATEGORIES) -> pd.DataFrame:
    """One row per obs column: its type, whether it is categorical, its number of distinct values, and whether it
    can serve as a batch or label key (categorical with 2 to ``max_categories`` categories; a column with hundreds
    of values is usually a cell identifier, not a grouping)."""
    rows = []
    for column in adata.obs.columns:
        values = adata.obs[column]
        categorical = isinstance(values.dtype, pd.CategoricalDtype) or values.dtype.kind in _CATEGORICAL_KINDS
        n_values = int(values.nunique(dropna=True))
        if not categorical:
            note = "numeric: not a grouping"
        elif n_values < 2:
            note = "a single value: nothing to separate"
        elif n_values > max_categories:
            note = f"too many categories ({n_values:,}): looks like an identifier"
        else:
            note = ""
        rows.append({"column": column, "type": str(values.dtype), "categorical": categorical,
                     "categories": n_values, "usable as key": categorical and not note, "note": note})
    return pd.DataFrame(rows, columns=["column", "type", "categorical", "categories", "usable as key", "note"])


def key_candidates(adata: ad.AnnData, max_categories: int = MAX_CATEGORIES) -> list[str]:
    """The obs columns offered as batch or label key (see :func:`obs_column_table`)."""
    table = obs_column_table(adata, max_categories)
    return table.loc[table["usable as key"], "column"].tolist()


def counts_locations(adata: ad.AnnData) -> list[str | None]:
    """Where counts could be: None (X), each layer (a layer called like "counts" first), and "raw" for ``.raw``."""
    layers = sorted(adata.layers.keys(), key=lambda name: "count" not in name.lower())
    return [None, *layers, *(["raw"] if adata.raw is not None and "raw" not in adata.layers else [])]


def check_raw_counts(adata: ad.AnnData, counts_layer: str | None = None) -> int:
    """Raise :class:`CountsError` unless the chosen matrix holds raw counts; return how many cells are empty.

    Empty cells are counted rather than refused here, because the preparation filters remove them; every other
    problem (NaN, negative or non-integer values) is refused with the message of :func:`check_counts`."""
    matrix = get_counts(adata, counts_layer)
    nonzero = _stats(matrix, (adata.obs_names, adata.var_names)).genes_per_cell
    if not nonzero.any():
        raise CountsError(_all_empty(matrix.shape[0]))
    return int((nonzero == 0).sum())


def _all_empty(n_cells: int) -> str:
    return f"All {n_cells} cells have zero counts in this matrix: there is nothing to model."


def suggest_keys(candidates: list[str]) -> tuple[str | None, str | None]:
    """Pre-select a batch key and a label key by their usual names ("batch", "sample"; "cell_type", "label")."""
    def first(words: tuple[str, ...]) -> str | None:
        return next((c for c in candidates if any(w in c.lower().replace("_", "") for w in words)), None)

    return first(("batch", "sample", "donor")), first(("celltype", "label", "cluster"))


def histogram(values: np.ndarray, bins: int = 50) -> pd.DataFrame:
    """Bin edges and counts (left, right, cells) so that a chart sends 50 bars, not 100,000 values, to the browser."""
    counts, edges = np.histogram(values[np.isfinite(values)], bins=bins)
    return pd.DataFrame({"left": edges[:-1], "right": edges[1:], "cells": counts})


def prepare(
    adata: ad.AnnData,
    counts_layer: str | None = None,
    *,
    min_counts: int = 1,
    min_genes: int = 0,
    min_cells: int = 3,
    n_top_genes: int | None = 2000,
    batch_key: str | None = None,
    labels_key: str | None = None,
) -> tuple[ad.AnnData, list[str]]:
    """Return a new AnnData with the raw counts in X, filtered and restricted to highly variable genes, plus notices.

    Cells need ``min_counts`` counts and ``min_genes`` detected genes; genes need to be detected in ``min_cells``
    cells. Highly variable genes are chosen on the counts with scanpy's ``seurat_v3`` flavour (per batch when a
    ``batch_key`` is given); ``n_top_genes=None`` (or at least the number of genes) keeps every gene.
    """
    for key in (batch_key, labels_key):
        if key is not None and key not in adata.obs.columns:
            raise PreparationError(f"There is no obs column {key!r}. Choose one of: {', '.join(adata.obs.columns)}.")
    counts = get_counts(adata, counts_layer)
    counts = sp.csr_matrix(counts) if not sp.issparse(counts) else counts.tocsr(copy=True)
    prepared = ad.AnnData(X=counts, obs=adata.obs.copy(), var=adata.var.copy())
    notices: list[str] = []

    stats = _stats(prepared.X)
    keep_cells = (stats.counts_per_cell >= min_counts) & (stats.genes_per_cell >= min_genes)
    if not keep_cells.any():
        raise PreparationError(
            f"No cells left: all {prepared.n_obs:,} cells have fewer than {min_counts:,} counts or {min_genes:,} "
            f"detected genes (the largest cell has {stats.counts_per_cell.max():,.0f} counts and "
            f"{stats.genes_per_cell.max():,} genes). Lower the cell filters."
        )
    prepared = _subset(prepared, keep_cells, None, "cells", notices, "below the cell filters")

    cells_per_gene = _stats(prepared.X).cells_per_gene
    keep_genes = cells_per_gene >= min_cells
    if not keep_genes.any():
        raise PreparationError(
            f"No genes left: every gene is detected in fewer than {min_cells:,} cells (at most "
            f"{cells_per_gene.max():,}). Lower 'minimum cells per gene'."
        )
    prepared = _subset(prepared, None, keep_genes, "genes", notices, f"detected in fewer than {min_cells:,} cells")

    if n_top_genes and n_top_genes < prepared.n_vars:
        prepared = _highly_variable(prepared, n_top_genes, batch_key, notices)
    elif n_top_genes:
        notices.append(f"Kept all {prepared.n_vars:,} genes: there are no more than the {n_top_genes:,} asked for.")
    check_counts(prepared.X, prepared.obs_names, prepared.var_names)
    prepared.uns["preparation_notices"] = notices
    return prepared, notices


def prepare_on_disk(adata: ad.AnnData, summary: DatasetSummary, counts_layer: str | None = None, *,
                    batch_key: str | None = None, labels_key: str | None = None) -> tuple[ad.AnnData, list[str]]:
    """:func:`prepare` for an AnnData opened on disk (:func:`scvi_core.io.open_on_disk`): every cell and gene as
    stored, the counts at ``counts_layer`` as X, still on disk. Filters and highly variable genes would need the
    matrix in memory (or a filtered copy written to disk); an atlas brought to be trained on is usually prepared
    already. ``summary``: the matrix's :class:`DatasetSummary`, whose empty cells are refused (they cannot be
    filtered out here)."""
    for key in (batch_key, labels_key):
        if key is not None and key not in adata.obs.columns:
            raise PreparationError(f"There is no obs column {key!r}. Choose one of: {', '.join(adata.obs.columns)}.")
    empty = int((summary.counts_per_cell == 0).sum())
    if empty:
        raise PreparationError(
            f"{empty:,} cells have no counts. A file opened on disk is trained as it is, without filters: remove "
            "those cells from the file first (e.g. with scanpy, sc.pp.filter_cells(adata, min_counts=1)).")
    source = adata.uns[ON_DISK_KEY] | ({"layer": counts_layer} if counts_layer else {})
    counts = adata.X if counts_layer is None else adata.layers[counts_layer]
    prepared = ad.AnnData(X=counts, obs=adata.obs.copy(), var=adata.var.copy(), uns={ON_DISK_KEY: source})
    notices = [f"Opened on disk: trains on all {prepared.n_obs:,} cells × {prepared.n_vars:,} genes as they are in "
               "the file. Cell and gene filters and highly variable genes are skipped (they would need the whole "
               "matrix in memory); prepare the file beforehand if it needs them."]
    prepared.uns["preparation_notices"] = notices
    return prepared, notices


def _highly_variable(prepared: ad.AnnData, n_top_genes: int, batch_key: str | None, notices: list[str]) -> ad.AnnData:
    """Keep the ``n_top_genes`` most variable genes (seurat_v3 on counts), then drop cells left without counts."""
    try:
        sc.pp.highly_variable_genes(prepared, flavor="seurat_v3", n_top_genes=n_top_genes, batch_key=batch_key)
    except Exception as err:  # scanpy/skmisc fail on degenerate inputs (e.g. a batch of one cell)
        per_batch = f" per batch of {batch_key!r}" if batch_key else ""
        raise PreparationError(
            f"Selecting highly variable genes{per_batch} failed ({type(err).__name__}: {err}). Try without a batch "
            "key, with more genes, or with looser filters."
        ) from err
    prepared = prepared[:, prepared.var["highly_variable"].to_numpy()].copy()
    notices.append(f"Selected {prepared.n_vars:,} highly variable genes (seurat_v3 on counts"
                   + (f", per batch of {batch_key!r})." if batch_key else ")."))
    has_counts = _stats(prepared.X).counts_per_cell > 0
    if not has_counts.any():
        raise PreparationError("No cell has counts in the highly variable genes. Ask for more genes.")
    return _subset(prepared, has_counts, None, "cells", notices, "no counts in the selected genes")


def _subset(adata, cells, genes, what, notices, reason) -> ad.AnnData:
    """Apply a keep-mask on cells or genes, noting how many were removed and why."""
    mask = cells if cells is not None else genes
    removed = int((~mask).sum())
    if not removed:
        return adata
    notices.append(f"Removed {removed:,} of {mask.size:,} {what}: {reason}.")
    return adata[mask].copy() if cells is not None else adata[:, mask].copy()
