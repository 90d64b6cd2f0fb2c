"""Serving a registered AnnData's counts to the models in minibatches.

Why this design: the count matrix is never copied or densified as a whole. A minibatch is sliced from the CSR
(or dense) matrix as it is stored, densified alone, and handed over with the list of its non-zero entries, so the
models evaluate lnΓ only where a count is non-zero. The count checks, per-cell constants (log library size,
Σ_g lnΓ(x_ng + 1)) and gene totals are computed in one chunked pass when the data are registered with a model.

A matrix on disk (an AnnData opened backed, or anndata's ``sparse_dataset``) is never loaded whole: it is read
through :class:`~scvi_core.data.DiskMatrix`, and training shuffles it chunk-wise within a buffer read ahead by a
background thread (:mod:`scvi_core.data._ondisk` says what that trades).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.special import gammaln

from . import _ondisk as ondisk
from ._anndata import Registry, codes_of, registry_of
from ._counts import checked_chunks, get_counts, refuse_empty_cells


@dataclass
class Batch:
    """One minibatch: dense counts plus the coordinates of their non-zero entries and per-cell constants."""

    index: torch.Tensor  # (b,) cell indices in the AnnData
    x: torch.Tensor  # (b, G) float32 counts
    row_lengths: torch.Tensor  # (b,) number of non-zero entries of each cell (entries are in row order)
    cols: torch.Tensor  # (nnz,) gene of each non-zero entry
    values: torch.Tensor  # (nnz,) its count
    log_library: torch.Tensor  # (b,) log Σ_g x_ng
    log_factorial: torch.Tensor  # (b,) Σ_g lnΓ(x_ng + 1)
    batch: torch.Tensor  # (b,) batch code s_n
    label: torch.Tensor  # (b,) label code y_n

    @property
    def size(self) -> int:
        return self.x.shape[0]

    def flat_index(self) -> torch.Tensor:
        """Position row·G + gene of each non-zero entry in the flattened x (needed only for per-cell parameters)."""
        rows = torch.repeat_interleave(torch.arange(self.size, device=self.x.device), self.row_lengths)
        return rows * self.x.shape[1] + self.cols


class CountData:
    """A registered AnnData as the models see it. Holds a reference to the count matrix (CSR or dense), not a copy
    (a CSC/COO matrix is converted to CSR once, as row slicing needs it), or a
    :class:`~scvi_core.data.DiskMatrix` when the counts are on disk (``on_disk``)."""

    def __init__(self, adata, registry: Registry | None = None):
        self.registry = registry or registry_of(adata)
        matrix = get_counts(adata, self.registry.layer)
        if sp.issparse(matrix) and matrix.format != "csr":
            matrix = sp.csr_matrix(matrix)
        elif not (sp.issparse(matrix) or isinstance(matrix, ondisk.DiskMatrix)):
            matrix = np.asarray(matrix)
        self.matrix = matrix
        self.on_disk = isinstance(matrix, ondisk.DiskMatrix)
        self.n_cells, self.n_genes = matrix.shape
        self.gene_names = [str(g) for g in adata.var_names]
        self.batch_codes = codes_of(adata, self.registry.batch_key, self.registry.batch_categories, "batch")
        self.label_codes = codes_of(adata, self.registry.labels_key, self.registry.label_categories, "label")
        self._constants(adata.obs_names, adata.var_names)

    def _constants(self, obs_names, var_names) -> None:
        """Check the counts and compute log Σ_g x_ng, Σ_g lnΓ(x_ng + 1) per cell and Σ_n x_ng per gene, in one
        pass over the matrix (one read of a matrix on disk)."""
        totals = np.zeros(self.n_cells, dtype=np.float64)
        self.log_factorial = np.zeros(self.n_cells, dtype=np.float32)
        self._gene_totals = np.zeros(self.n_genes, dtype=np.float64)
        for start, block in checked_chunks(self.matrix, obs_names, var_names):
            rows = slice(start, start + block.shape[0])
            totals[rows] = np.asarray(block.sum(axis=1), dtype=np.float64).ravel()
            self._gene_totals += np.asarray(block.sum(axis=0, dtype=np.float64)).ravel()
            if sp.issparse(block):
                per_entry = sp.csr_matrix((gammaln(block.data + 1.0), block.indices, block.indptr), shape=block.shape)
                self.log_factorial[rows] = np.asarray(per_entry.sum(axis=1)).ravel()
            else:
                self.log_factorial[rows] = gammaln(np.asarray(block, dtype=np.float64) + 1.0).sum(axis=1)
        refuse_empty_cells(totals, obs_names)
        self.log_library = np.log(totals).astype(np.float32)

    def library_prior(self, n_batch: int) -> tuple[np.ndarray, np.ndarray]:
        """Empirical mean and variance of the log library size in each batch (the prior of the latent library)."""
        means, variances = np.zeros(n_batch, np.float32), np.ones(n_batch, np.float32)
        for b in range(n_batch):
            values = self.log_library[self.batch_codes == b]
            if values.size:
                means[b] = values.mean()
                variances[b] = max(float(values.var()), 1e-4)
        return means, variances

    def gene_totals(self) -> np.ndarray:
        """Σ_n x_ng for every gene (float64)."""
        return self._gene_totals

    def batch(self, index: np.ndarray, device: torch.device, block=None) -> Batch:
        """The cells ``index`` in that order (results follow the order their caller asked for); ``block``: their
        rows of the count matrix when the caller has read them already."""
        index = np.asarray(index)
        block = self.matrix[index] if block is None else block
        if sp.issparse(block):
            values = block.data.astype(np.float32)
            x = sp.csr_matrix((values, block.indices, block.indptr), shape=block.shape).toarray()
            cols, row_lengths = block.indices, np.diff(block.indptr)
        else:
            x = np.asarray(block, dtype=np.float32)
            rows, cols = np.nonzero(x)
            values, row_lengths = x[rows, cols], np.bincount(rows, minlength=len(index))

        def tensor(a, dtype):
            return torch.as_tensor(a, dtype=dtype).to(device, non_blocking=True)

        return Batch(
            index=tensor(index, torch.long),
            x=tensor(x, torch.float32),
            row_lengths=tensor(row_lengths, torch.long),
            cols=tensor(cols, torch.long),
            values=tensor(values, torch.float32),
            log_library=tensor(self.log_library[index], torch.float32),
            log_factorial=tensor(self.log_factorial[index], torch.float32),
            batch=tensor(self.batch_codes[index], torch.long),
            label=tensor(self.label_codes[index], torch.long),
        )

    def minibatches(
        self, indices: np.ndarray, batch_size: int, device: torch.device, rng: np.random.Generator | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> Iterator[Batch]:
        """Yield minibatches over ``indices`` (shuffled when ``rng`` is given). A trailing batch too small to give
        every shard two cells is merged into the one before (BatchNorm cannot train on one cell).

        ``shard=(rank, world_size)``: for data-parallel training, every process draws the same order (the same
        seeded ``rng``) and takes its part ``rank`` of each minibatch of ``batch_size`` cells (``np.array_split``),
        so every process gets the same number of minibatches and together they see each cell once."""
        rank, world_size = shard
        if self.on_disk:
            yield from self._minibatches_from_disk(indices, batch_size, device, rng, shard)
            return
        order = rng.permutation(indices) if rng is not None else np.asarray(indices)
        starts = minibatch_starts(len(order), batch_size, world_size)
        for i, start in enumerate(starts):
            stop = starts[i + 1] if i + 1 < len(starts) else len(order)
            yield self.batch(np.array_split(order[start:stop], world_size)[rank], device)

    def _minibatches_from_disk(self, indices, batch_size, device, rng, shard) -> Iterator[Batch]:
        """:meth:`minibatches` for counts on disk: the same minibatches (and the same number) over an order that is
        shuffled chunk-wise (:func:`~scvi_core.data._ondisk.chunk_shuffle`) when ``rng`` is given, else ``indices`` as they
        come, read buffer by buffer ahead of the minibatches (:class:`~scvi_core.data._ondisk.BufferedRows`)."""
        rank, world_size = shard
        buffer_size = ondisk.CHUNK_ROWS * ondisk.BUFFER_CHUNKS
        if rng is not None:
            order, buffer_starts = ondisk.chunk_shuffle(indices, rng)
        else:
            order = np.asarray(indices)
            buffer_starts = np.arange(0, max(len(order), 1), buffer_size)
        starts = minibatch_starts(len(order), batch_size, world_size)
        rows = ondisk.BufferedRows(self.matrix, order, buffer_starts)
        try:
            for i, start in enumerate(starts):
                stop = starts[i + 1] if i + 1 < len(starts) else len(order)
                part = np.array_split(np.arange(start, stop), world_size)[rank]  # consecutive positions in order
                first, last = int(part[0]), int(part[-1]) + 1
                yield self.batch(order[first:last], device, rows.take(first, last))
        finally:
            rows.close()


def minibatch_starts(n: int, batch_size: int, world_size: int = 1) -> list[int]:
    """Start offsets of the minibatches over n cells; a trailing batch of fewer than 2 cells per shard joins the
    previous one."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < 2 * world_size:
        starts.pop()
    return starts
