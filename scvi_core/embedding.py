"""Neighbours, UMAP and Leiden clusters on the learned latent space (scanpy's, with a fixed seed).

The neighbour graph is built on the latent representation (``use_rep="X_scVI"``), never on the counts: that is what
scVI's latent space is for (batch effects and count noise are modelled away).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


def display_subsample(n_cells: int, max_points: int = MAX_POINTS, seed: int = 0) -> np.ndarray:
    """Positions of the points to draw: all of them up to ``max_points``, else a reproducible random subsample
    (sorted). Only the drawing is subsampled; neighbours, UMAP and clusters always use every cell."""
    if n_cells <= max_points:
        return np.arange(n_cells)
    return np.sort(np.random.default_rng(seed).choice(n_cells, size=max_points, replace=False))
