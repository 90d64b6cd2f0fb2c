"""Neighbours, UMAP and Leiden clusters on the learned latent space, computed once per run, cells and parameters.

Why a disk cache: the results pages rerun their script on every click, and the neighbour graph + UMAP of a large
dataset take minutes; a server restart must not redo them either. Each result is kept in the run's ``results/``
folder as ``embeddings/<key>.npz``, the key hashing the parameters and the cells embedded, so a re-embedded group
and the whole dataset never overwrite each other.

The neighbour graph is built on the latent representation (``use_rep="X_scVI"``), never on the counts: that is what
scVI's latent space is for (batch effects and count noise are modelled away).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import anndata as ad
import numpy as np

MAX_POINTS = 200_000
"""Above this many cells the chart draws a random subsample (the browser cannot draw more smoothly)."""
MIN_CELLS = 10
"""Fewer cells cannot be embedded meaningfully (UMAP's spectral initialisation needs a few neighbours)."""


@dataclass(frozen=True)
class EmbeddingParams:
    """scanpy's defaults, except a fixed seed so the same run always gives the same picture."""

    n_neighbors: int = 15
    min_dist: float = 0.5
    resolution: float = 1.0
    seed: int = 0


@dataclass
class Embedding:
    cells: np.ndarray
    """Indices (into the run's cells) of the embedded cells, in the order of the rows below."""
    umap: np.ndarray
    """(cells, 2) UMAP coordinates."""
    leiden: np.ndarray
    """Leiden cluster of each cell, as strings "0", "1", … (largest cluster first, scanpy's convention)."""


def compute(latent: np.ndarray, params: EmbeddingParams, progress: Callable[[str], None] | None = None,
            ) -> tuple[np.ndarray, np.ndarray]:
    """UMAP coordinates and Leiden clusters of the rows of ``latent``. ``progress(message)`` is told each step."""
    import scanpy as sc  # imported here: it takes seconds, and only the results pages need it

    n = latent.shape[0]
    if n < MIN_CELLS:
        raise ValueError(f"At least {MIN_CELLS} cells are needed for a UMAP; this selection has {n}.")
    say = progress or (lambda message: None)
    adata = ad.AnnData(np.zeros((n, 0), dtype=np.float32))
    adata.obsm["X_scVI"] = np.asarray(latent, dtype=np.float32)
    say(f"Finding the {params.n_neighbors} nearest neighbours of {n:,} cells in the latent space…")
    sc.pp.neighbors(adata, n_neighbors=min(params.n_neighbors, n - 1), use_rep="X_scVI", random_state=params.seed)
    say("Computing the UMAP…")
    sc.tl.umap(adata, min_dist=params.min_dist, random_state=params.seed)
    say("Clustering with Leiden…")
    sc.tl.leiden(adata, resolution=params.resolution, flavor="igraph", n_iterations=2, directed=False,
                 random_state=params.seed)
    return adata.obsm["X_umap"].astype(np.float32), np.asarray(adata.obs["leiden"], dtype=str)


def cache_key(params: EmbeddingParams, cells: np.ndarray) -> str:
    digest = hashlib.sha1(json.dumps(asdict(params), sort_keys=True).encode())
    digest.update(np.ascontiguousarray(cells, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


def cache_path(results_dir: str | Path, params: EmbeddingParams, cells: np.ndarray | None, n_cells: int) -> Path:
    """Where the embedding of ``cells`` (None: all ``n_cells``) at ``params`` is (or will be) kept."""
    cells = np.arange(n_cells) if cells is None else cells
    return Path(results_dir) / "embeddings" / f"{cache_key(params, cells)}.npz"


def cached(results_dir: str | Path, latent: np.ndarray, params: EmbeddingParams, cells: np.ndarray | None = None,
           progress: Callable[[str], None] | None = None) -> Embedding:
    """The embedding of ``cells`` (default: every cell) from the run's cache, computing and storing it if absent."""
    cells = np.arange(latent.shape[0]) if cells is None else np.asarray(cells, dtype=np.int64)
    path = cache_path(results_dir, params, cells, latent.shape[0])
    if path.exists():
        with np.load(path) as stored:
            return Embedding(cells=cells, umap=stored["umap"], leiden=stored["leiden"])
    umap, leiden = compute(latent[cells], params, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:  # a file handle, so numpy does not append another ".npz"
        np.savez(handle, umap=umap, leiden=leiden)
    os.replace(tmp, path)  # a concurrent reader never sees half a file
    return Embedding(cells=cells, umap=umap, leiden=leiden)


def display_subsample(n_cells: int, max_points: int = MAX_POINTS, seed: int = 0) -> np.ndarray:
    """Positions of the points to draw: all of them up to ``max_points``, else a reproducible random subsample
    (sorted). Only the drawing is subsampled; neighbours, UMAP and clusters always use every cell."""
    if n_cells <= max_points:
        return np.arange(n_cells)
    return np.sort(np.random.default_rng(seed).choice(n_cells, size=max_points, replace=False))
