"""Simulated count data with known ground truth.

Why: the dashboard's demo needs data without a download, and the tests need data where the right answer is known
(cell types for the latent space, batches for batch correction, and which genes are zero-inflated for AutoZI).

Generative process (per gene g, cell n of type t and batch b):

    mean_ng   = library_n * softmax_g(base_g + type_effect_tg + batch_effect_bg)
    x_ng      ~ NB(mean_ng, theta_g)
    x_ng      = 0 with probability pi_g for the zero-inflated genes (pi_g = 0 for the others)

The ground truth is stored in ``var["is_zero_inflated"]``, ``var["true_dropout"]``, ``var["true_dispersion"]``,
``obs["cell_type"]`` and ``obs["batch"]``.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp


ENTRIES_PER_BLOCK = 2_000_000  # cells are drawn in blocks of this many entries, so memory stays ~100 MB


def simulate(
    n_cells: int = 2000,
    n_genes: int = 500,
    n_cell_types: int = 4,
    n_batches: int = 2,
    zi_fraction: float = 0.3,
    dropout_range: tuple[float, float] = (0.2, 0.5),
    dispersion_range: tuple[float, float] = (2.0, 20.0),
    mean_library_size: float = 3000.0,
    batch_effect: float = 0.3,
    seed: int = 0,
) -> ad.AnnData:
    """Return an AnnData of raw counts (int32 CSR) with known cell types, batches and zero-inflated genes.

    ``zi_fraction`` of the genes get extra (structural) zeros with a per-gene rate drawn uniformly from
    ``dropout_range``; the rest are plain negative binomial. Dispersions ``theta_g`` are log-uniform in
    ``dispersion_range`` (larger = less over-dispersed).
    """
    if n_cells < 1 or n_genes < 1 or n_cell_types < 1 or n_batches < 1:
        raise ValueError("n_cells, n_genes, n_cell_types and n_batches must all be at least 1.")
    if not 0.0 <= zi_fraction <= 1.0:
        raise ValueError(f"zi_fraction must lie in [0, 1]; got {zi_fraction}.")
    rng = np.random.default_rng(seed)

    base = rng.normal(0.0, 1.2, size=n_genes)
    type_effect = rng.normal(0.0, 1.0, size=(n_cell_types, n_genes)) * (rng.random((n_cell_types, n_genes)) < 0.3)
    batch_shift = rng.normal(0.0, batch_effect, size=(n_batches, n_genes))
    theta = np.exp(rng.uniform(*np.log(dispersion_range), size=n_genes))
    is_zi = np.zeros(n_genes, dtype=bool)
    is_zi[rng.choice(n_genes, size=int(round(zi_fraction * n_genes)), replace=False)] = True
    dropout = np.where(is_zi, rng.uniform(*dropout_range, size=n_genes), 0.0)

    cell_type = rng.integers(0, n_cell_types, size=n_cells)
    batch = rng.integers(0, n_batches, size=n_cells)
    library = np.exp(rng.normal(np.log(mean_library_size), 0.3, size=n_cells))

    logits = base[None, :] + type_effect + batch_shift[:, None, :]  # (batch, cell type, gene)
    rows_per_block = max(1, ENTRIES_PER_BLOCK // n_genes)
    blocks = []
    for start in range(0, n_cells, rows_per_block):
        cells = slice(start, start + rows_per_block)
        block_logits = logits[batch[cells], cell_type[cells]]
        freq = np.exp(block_logits - block_logits.max(axis=1, keepdims=True))
        freq /= freq.sum(axis=1, keepdims=True)
        mean = library[cells, None] * freq
        # NB as a Gamma-Poisson mixture: rate ~ Gamma(shape=theta, scale=mean/theta).
        counts = rng.poisson(rng.gamma(theta[None, :], mean / theta[None, :]))
        counts[rng.random(counts.shape) < dropout[None, :]] = 0
        blocks.append(sp.csr_matrix(counts.astype(np.int32)))

    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical([f"type_{t + 1}" for t in cell_type]),
            "batch": pd.Categorical([f"batch_{b + 1}" for b in batch]),
        },
        index=[f"cell_{i:06d}" for i in range(n_cells)],
    )
    var = pd.DataFrame(
        {"is_zero_inflated": is_zi, "true_dropout": dropout, "true_dispersion": theta},
        index=[f"gene_{j:05d}" for j in range(n_genes)],
    )
    adata = ad.AnnData(X=sp.vstack(blocks, format="csr"), obs=obs, var=var)
    adata.uns["simulation"] = {
        "n_cell_types": n_cell_types,
        "n_batches": n_batches,
        "zi_fraction": zi_fraction,
        "dropout_range": list(dropout_range),
        "dispersion_range": list(dispersion_range),
        "mean_library_size": mean_library_size,
        "batch_effect": batch_effect,
        "seed": seed,
    }
    return adata
