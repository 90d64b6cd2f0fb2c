"""UMAP and Leiden clusters of a run kept in the run's embeddings folder (:meth:`RunStore.embeddings_dir
<dashboard.runs.RunStore.embeddings_dir>`), computed once per run, cells and parameters (:mod:`scvi_core.embedding`).

Why a disk cache: the results pages rerun their script on every click, and the neighbour graph + UMAP of a large
dataset take minutes; a server restart must not redo them either. Each result is kept as ``<key>.npz``, the key
hashing the parameters and the cells embedded, so a re-embedded group and the whole dataset never overwrite each
other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from scvi_core.embedding import Embedding, EmbeddingParams, compute

from . import atomic


def cache_key(params: EmbeddingParams, cells: np.ndarray) -> str:
    digest = hashlib.sha1(json.dumps(asdict(params), sort_keys=True).encode())
    digest.update(np.ascontiguousarray(cells, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


def cache_path(folder: str | Path, params: EmbeddingParams, cells: np.ndarray | None, n_cells: int) -> Path:
    """Where the embedding of ``cells`` (None: all ``n_cells``) at ``params`` is (or will be) kept."""
    cells = np.arange(n_cells) if cells is None else cells
    return Path(folder) / f"{cache_key(params, cells)}.npz"


def cached(folder: str | Path, latent: np.ndarray, params: EmbeddingParams, cells: np.ndarray | None = None,
           progress: Callable[[str], None] | None = None) -> Embedding:
    """The embedding of ``cells`` (default: every cell) from the run's cache, computing and storing it if absent."""
    cells = np.arange(latent.shape[0]) if cells is None else np.asarray(cells, dtype=np.int64)
    path = cache_path(folder, params, cells, latent.shape[0])
    if path.exists():
        with np.load(path) as stored:
            return Embedding(cells=cells, umap=stored["umap"], leiden=stored["leiden"])
    umap, leiden = compute(latent[cells], params, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_arrays(path, umap=umap, leiden=leiden)
    return Embedding(cells=cells, umap=umap, leiden=leiden)

