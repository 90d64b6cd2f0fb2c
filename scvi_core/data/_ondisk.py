"""Count matrices that stay on disk: an AnnData opened backed, or anndata's ``sparse_dataset`` of an .h5ad / .zarr.

Why: an atlas of millions of cells does not fit in memory, and the models never need more than a few thousand cells
at a time. :class:`DiskMatrix` answers the two questions the package asks of a count matrix, "rows a to b" and "these
rows, in this order", by reading only those rows; it is indexed like a scipy CSR (``m[a:b]``, ``m[index]``), so the
code written for an in-memory matrix runs on it unchanged, while an in-memory matrix is used as it is (no wrapper,
no cost). Rows are read straight from the CSR's ``data`` / ``indices`` arrays with ``indptr`` held in memory (8 bytes a
cell): anndata's own row slicing costs about 3 ms a call, this 15 µs.

Training from disk (:func:`chunk_shuffle`, :class:`BufferedRows`): a full random permutation would read every
minibatch cell by cell from all over the file. Instead the (sorted) cells are cut into chunks of ``CHUNK_ROWS``
consecutive cells, the chunks are shuffled, ``BUFFER_CHUNKS`` of them at a time are read into a buffer, and the
buffer's cells are shuffled together; a background thread reads the next buffer while the minibatches of the current
one train. The trade-off: a minibatch draws its cells from the 32 chunks of its buffer, not from the whole dataset,
so cells stored next to each other (one sample, one batch, one cell type: files are often sorted so) meet in the same
minibatches more often than by chance. With 1,024-cell chunks each minibatch still mixes cells of up to 32 places of
the file. When a file is sorted by sample or cell type and that matters, :func:`write_shuffled_copy` writes a copy in
a random cell order once. When one buffer holds every cell, the order is exactly the in-memory permutation, so small
data train the same from disk as from memory.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp
from anndata.abc import CSCDataset, CSRDataset

ON_DISK_KEY = "on_disk_source"
"""``uns`` key of an AnnData whose counts stay on disk (:func:`scvi_core.io.open_on_disk`): {"path": the .h5ad,
"layer": where its X came from}, so that another process opens the same counts again."""

CHUNK_ROWS = 1024
"""Consecutive cells read together from disk; also the longest single read of :meth:`DiskMatrix.rows`."""
BUFFER_CHUNKS = 32
"""Chunks shuffled together in training (32 × 1,024 cells: about 50 MB of buffer at 2,000 genes, 10% non-zero)."""
MAX_GAP = 64
"""Rows asked for that lie closer than this are read in one slice (the rows between are read and dropped)."""


def is_on_disk(matrix) -> bool:
    """Whether ``matrix`` is an on-disk matrix this module reads (anndata sparse dataset, HDF5 dataset)."""
    return isinstance(matrix, CSRDataset | CSCDataset | h5py.Dataset | DiskMatrix)


class DiskMatrix:
    """An on-disk CSR (anndata ``CSRDataset``, h5ad or zarr) or dense HDF5 matrix, read by rows only.

    ``m[a:b]`` reads rows a to b in one slice; ``m[index]`` reads the rows ``index`` in that order (see :meth:`rows`).
    Blocks come back as scipy CSR (or numpy) matrices in memory."""

    def __init__(self, stored):
        if isinstance(stored, DiskMatrix):
            stored = stored.stored
        if not isinstance(stored, CSRDataset | h5py.Dataset):
            raise TypeError(f"DiskMatrix reads a CSR sparse dataset or an HDF5 dataset, not {type(stored).__name__}.")
        self.stored = stored
        self.shape = tuple(int(n) for n in stored.shape)
        self.dtype = stored.dtype
        self.sparse = isinstance(stored, CSRDataset)
        if self.sparse:
            group = stored.group
            self._data, self._indices = group["data"], group["indices"]
            self._indptr = np.asarray(group["indptr"][...], dtype=np.int64)

    def __reduce__(self):
        """Pickled as the file and the place in it, opened again read-only where it is unpickled: the ranks of a
        data-parallel run each read the file themselves (an open HDF5 handle cannot cross processes)."""
        node = self.stored.group if self.sparse else self.stored
        if not isinstance(node, h5py.Group | h5py.Dataset):
            raise TypeError("Only counts in an .h5ad (HDF5) file can be sent to other processes; this one is "
                            f"{type(node).__name__}. Write it to an .h5ad first.")
        return _reopen, (node.file.filename, node.name, self.sparse)

    def __repr__(self) -> str:
        kind = "CSR" if self.sparse else "dense"
        return f"DiskMatrix({kind}, {self.shape[0]:,} × {self.shape[1]:,}, {self.dtype})"

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(self.shape[0])
            if step != 1:
                raise IndexError("A DiskMatrix is read by ranges of consecutive rows or by row positions.")
            return self.range(start, max(start, stop))
        return self.rows(index)

    def range(self, start: int, stop: int):
        """Rows [start, stop) in one read."""
        if not self.sparse:
            return np.asarray(self.stored[start:stop])
        lo, hi = self._indptr[start], self._indptr[stop]
        return sp.csr_matrix((self._data[lo:hi], self._indices[lo:hi], self._indptr[start : stop + 1] - lo),
                             shape=(stop - start, self.shape[1]))

    def rows(self, index) -> sp.csr_matrix | np.ndarray:
        """The rows ``index`` in that order (repeats allowed). The distinct rows are read in increasing order in
        slices of at most ``CHUNK_ROWS`` (rows closer than ``MAX_GAP`` in the same slice, the rows between read and
        dropped at once), then put in the order asked for: a random subset costs one small read per row, a sorted or
        chunk-shuffled one a few long reads, and the memory is one slice plus the result (a validation subset spread
        over the whole file once read the whole file's span before picking its rows)."""
        index = np.asarray(index, dtype=np.int64)
        cells, inverse = np.unique(index, return_inverse=True)
        if cells.size == 0:
            return self.range(0, 0)
        if cells[0] < 0 or cells[-1] >= self.shape[0]:
            raise IndexError(f"Row positions must lie in 0 … {self.shape[0] - 1}.")
        runs = np.split(cells, np.flatnonzero(np.diff(cells) > MAX_GAP) + 1)
        spans = [(start, min(start + CHUNK_ROWS, int(run[-1]) + 1))
                 for run in runs for start in range(int(run[0]), int(run[-1]) + 1, CHUNK_ROWS)]
        pieces = []  # the distinct cells, in increasing order: each slice is cut down to them as soon as it is read
        for start, stop in spans:
            inside = cells[np.searchsorted(cells, start) : np.searchsorted(cells, stop)] - start
            block = self.range(start, stop)
            pieces.append(block if len(inside) == stop - start else block[inside])
        block = stack(pieces)
        return block if np.array_equal(inverse, np.arange(block.shape[0])) else block[inverse]


def _reopen(filename: str, name: str, sparse: bool) -> DiskMatrix:
    from anndata.io import sparse_dataset  # noqa: PLC0415 - only a process that unpickles a DiskMatrix needs it

    node = h5py.File(filename, "r")[name]
    return DiskMatrix(sparse_dataset(node) if sparse else node)


def resident_bytes(matrix: DiskMatrix) -> int:
    """Memory a model holds for counts on disk: ``indptr``, the per-cell constants, codes and training order (about
    64 bytes a cell) and up to four buffers of ``CHUNK_ROWS × BUFFER_CHUNKS`` cells (one served, one ready, one being
    read, one being shuffled)."""
    n_cells, n_genes = matrix.shape
    if matrix.sparse:
        row_bytes = matrix._indptr[-1] / max(n_cells, 1) * (matrix._data.dtype.itemsize + matrix._indices.dtype.itemsize)
    else:
        row_bytes = n_genes * matrix.dtype.itemsize
    return int(72 * n_cells + 4 * CHUNK_ROWS * BUFFER_CHUNKS * row_bytes)


def stack(blocks: list):
    """Row blocks (all CSR or all dense) one under the other."""
    if len(blocks) == 1:
        return blocks[0]
    return sp.vstack(blocks, format="csr") if sp.issparse(blocks[0]) else np.concatenate(blocks)


def chunk_shuffle(indices: np.ndarray, rng: np.random.Generator, chunk_rows: int = CHUNK_ROWS,
                  buffer_chunks: int = BUFFER_CHUNKS) -> tuple[np.ndarray, np.ndarray]:
    """A seeded training order of ``indices`` and the positions where its buffers start (module docstring).

    The sorted cells are cut into chunks of ``chunk_rows``; the chunks are shuffled and taken ``buffer_chunks`` at
    a time, and each buffer's cells are shuffled. When one buffer holds every cell, the order is
    ``rng.permutation(indices)``, the in-memory order (and the same draws from ``rng``)."""
    if len(indices) <= chunk_rows * buffer_chunks:
        return rng.permutation(indices), np.zeros(1, dtype=np.int64)
    cells = np.sort(indices)
    chunks = [cells[start : start + chunk_rows] for start in range(0, len(cells), chunk_rows)]
    picked = rng.permutation(len(chunks))
    buffers = [rng.permutation(np.concatenate([chunks[c] for c in picked[first : first + buffer_chunks]]))
               for first in range(0, len(picked), buffer_chunks)]
    starts = np.cumsum([0] + [len(b) for b in buffers[:-1]])
    return np.concatenate(buffers), starts


class BufferedRows:
    """The rows of ``order`` for consecutive minibatches, read buffer by buffer (``order[starts[i]:starts[i+1]]``)
    by a background thread that keeps one buffer ready ahead of the one being served. :meth:`take` must be asked
    for increasing ranges, as minibatches come; :meth:`close` stops the thread."""

    def __init__(self, matrix: DiskMatrix, order: np.ndarray, starts: np.ndarray):
        bounds = list(zip(starts.tolist(), [*starts[1:].tolist(), len(order)], strict=True))
        self._buffers = prefetch((start, stop, matrix.rows(order[start:stop])) for start, stop in bounds)
        self._held: list[tuple[int, int, object]] = []  # buffers read and not yet fully served

    def take(self, start: int, stop: int):
        """The rows of ``order[start:stop]``, in that order."""
        while not self._held or self._held[-1][1] < stop:
            self._held.append(next(self._buffers))
        self._held = [held for held in self._held if held[1] > start]
        return stack([block[max(start, first) - first : min(stop, last) - first]
                      for first, last, block in self._held if first < stop])

    def close(self) -> None:
        self._buffers.close()


_DONE = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def prefetch(items: Iterable, depth: int = 1) -> Iterator:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead of the consumer (plus the one being
    made). An exception in the thread is raised in the consumer; closing the iterator stops the thread."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> None:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def work() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                put(item)
            put(_DONE)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, which raises it
            put(_Failed(err))

    thread = threading.Thread(target=work, daemon=True, name="scvi-prefetch")
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


def write_shuffled_copy(source, target: str | Path, seed: int = 0, chunk_rows: int = 65536) -> Path:
    """Write ``target`` (.h5ad): the AnnData ``source`` (in memory, or opened on disk) with its cells in a random
    order, its X written ``chunk_rows`` cells at a time (never held whole). Do this once for a file sorted by
    sample or cell type, so that chunk shuffling mixes them as a full permutation would. obs and var are kept;
    layers, obsm and uns are not copied."""
    import anndata as ad  # noqa: PLC0415 - only this helper writes files
    from anndata.io import sparse_dataset, write_elem  # noqa: PLC0415

    matrix = DiskMatrix(source.X) if is_on_disk(source.X) else source.X
    order = np.random.default_rng(seed).permutation(source.n_obs)
    target = Path(target)
    ad.AnnData(obs=source.obs.iloc[order], var=source.var).write_h5ad(target)
    with h5py.File(target, "a") as file:
        for start in range(0, len(order), chunk_rows):
            block = sp.csr_matrix(matrix[order[start : start + chunk_rows]])
            if start == 0:
                write_elem(file, "X", block)
            else:
                sparse_dataset(file["X"]).append(block)
    return target
