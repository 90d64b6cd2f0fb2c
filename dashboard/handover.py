"""How a reader process hands the AnnData it read to the server: its matrices as ``.npy`` files the server maps, the
rest as a small ``.h5ad``.

Why: writing the whole AnnData to an ``.h5ad`` and reading it back in the server cost about 3 s per GB that reading in
the server never paid (issue 23). A matrix saved as ``.npy`` is one copy in the reader, and nothing in the server:
:func:`take` maps the file copy-on-write (``mmap_mode="c"``), so the server's arrays are those pages, writable, and
whatever the server changes stays in its own memory and never reaches the file. The files are removed once taken: a
mapping keeps its pages until the arrays are freed.

The ``.npy`` files go to a folder in memory (:data:`IN_MEMORY`, Linux's ``/dev/shm``) when it has room for them, and
beside the ``.h5ad`` in the session's folder otherwise: their pages are the server's memory anyway, and on disk the
kernel would start writing back pages that are deleted a second later (on this project's machines a disk-backed
hand-over of 1 GB took 0.9–2.6 s, an in-memory one 0.35 s). Files a killed server left there are removed by the next
(:func:`remove_orphans`).

What is handed over as ``.npy``: ``X``, every layer and ``raw.X``, when it is a dense numeric array or a CSR / CSC
matrix (its ``data``, ``indices`` and ``indptr``). Anything else (a matrix of strings, ``obsm``, ``uns``, the
tables) goes in the ``.h5ad``, as before. Nothing is unpickled: ``np.load`` refuses object arrays.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import processes

IN_MEMORY = Path("/dev/shm")
ORPHAN_PREFIX = "scvi-dashboard-"
SPARSE_PARTS = ("data", "indices", "indptr")
SPARSE_TYPES = {"csr_matrix": sp.csr_matrix, "csc_matrix": sp.csc_matrix, "csr_array": sp.csr_array,
                "csc_array": sp.csc_array}


def in_memory_prefix(prefix: Path) -> Path:
    """Where the matrices of the hand-over at ``prefix`` go when :data:`IN_MEMORY` has room (named after this
    server's process, so that :func:`remove_orphans` can tell whose they are)."""
    return IN_MEMORY / f"{ORPHAN_PREFIX}{os.getpid()}-{prefix.name}"


def give(adata: ad.AnnData, prefix: Path, in_memory: Path | None = None) -> dict:
    """Write ``adata`` for :func:`take`: ``PREFIX.h5ad`` (``PREFIX.raw.h5ad`` for ``raw``'s genes) and one ``.npy``
    per array of each matrix handed over, at ``in_memory`` when its folder has room for them all, else at
    ``prefix``. Returns what :func:`take` needs to put them back (JSON). ``adata`` loses those matrices on the way."""
    slots = {"X": adata.X, **{f"layers/{name}": adata.layers[name] for name in adata.layers},
             **({"raw": adata.raw.X} if adata.raw is not None else {})}
    slots = {slot: matrix for slot, matrix in slots.items() if _kind(matrix) is not None}
    arrays = {(slot, part): array for slot, matrix in slots.items() for part, array in _arrays(matrix).items()}
    size = sum(array.nbytes for array in arrays.values())
    # twice the size: the folder is the machine's shared memory, and other readers may be handing over too
    place = in_memory if in_memory is not None and _room(in_memory.parent) > 2 * size else prefix
    for (slot, part), array in arrays.items():
        np.save(_array_path(place, slot, part), array, allow_pickle=False)
    if "X" in slots:
        adata.X = None
    for slot in slots:
        if slot.startswith("layers/"):
            del adata.layers[slot.removeprefix("layers/")]
    if "raw" in slots:
        ad.AnnData(var=adata.raw.var, varm=dict(adata.raw.varm)).write_h5ad(prefix.with_suffix(".raw.h5ad"))
        adata.raw = None
    adata.write_h5ad(prefix.with_suffix(".h5ad"))
    return {"at": str(place), "matrices": [{"slot": slot, "kind": _kind(matrix), "shape": list(matrix.shape)}
                                           for slot, matrix in slots.items()]}


def take(prefix: Path, handed: dict) -> ad.AnnData:
    """The AnnData :func:`give` wrote at ``prefix``, its matrices mapped from their files."""
    adata, place = ad.read_h5ad(prefix.with_suffix(".h5ad")), Path(handed["at"])
    for entry in handed["matrices"]:
        slot, kind, shape = entry["slot"], entry["kind"], tuple(entry["shape"])
        if kind in SPARSE_TYPES:
            matrix = SPARSE_TYPES[kind](tuple(_mapped(place, slot, part) for part in SPARSE_PARTS), shape=shape,
                                        copy=False)
        else:
            matrix = _mapped(place, slot, "")
        if slot == "X":
            adata.X = matrix
        elif slot == "raw":
            genes = ad.read_h5ad(prefix.with_suffix(".raw.h5ad"))
            adata.raw = ad.AnnData(matrix, obs=pd.DataFrame(index=adata.obs_names), var=genes.var,
                                   varm=dict(genes.varm))
        else:
            adata.layers[slot.removeprefix("layers/")] = matrix
    return adata


def files(prefix: Path) -> list[Path]:
    """Every file :func:`give` may have written for ``prefix``, in the session's folder or in memory (to remove
    them once taken)."""
    places = (prefix, in_memory_prefix(prefix))
    return [*(path for place in places for path in place.parent.glob(f"{place.name}.*.npy")),
            prefix.with_suffix(".h5ad"), prefix.with_suffix(".raw.h5ad")]


def remove_orphans() -> None:
    """Remove the in-memory files of server processes that are gone (a killed server could not remove its own)."""
    for path in IN_MEMORY.glob(f"{ORPHAN_PREFIX}*"):
        owner = path.name.removeprefix(ORPHAN_PREFIX).partition("-")[0]
        if owner.isdigit() and not processes.is_running(int(owner)):
            path.unlink(missing_ok=True)


def _room(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free if folder.is_dir() else 0
    except OSError:
        return 0


def _arrays(matrix) -> dict[str, np.ndarray]:
    return {part: getattr(matrix, part) for part in SPARSE_PARTS} if sp.issparse(matrix) else {"": matrix}


def _kind(matrix) -> str | None:
    """How ``matrix`` is handed over: the name of its sparse type, "dense", or None (it stays in the .h5ad)."""
    if type(matrix) is np.ndarray:
        return "dense" if matrix.dtype.kind in "biuf" else None
    name = type(matrix).__name__
    return name if name in SPARSE_TYPES and matrix.dtype.kind in "biuf" else None


def _array_path(prefix: Path, slot: str, part: str) -> Path:
    label = slot.replace("/", "-") + (f"-{part}" if part else "")
    return prefix.with_name(f"{prefix.name}.{label.encode().hex()}.npy")  # hex: a layer's name is not a path


def _mapped(prefix: Path, slot: str, part: str) -> np.ndarray:
    """The array mapped copy-on-write, as a plain ndarray (the mapping lives as long as it does)."""
    return np.asarray(np.load(_array_path(prefix, slot, part), mmap_mode="c", allow_pickle=False))
