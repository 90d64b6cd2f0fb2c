"""The simulator: structure of its output, and block-wise drawing (which keeps its memory bounded)."""

import importlib

import numpy as np

from scvi_core import simulate

simulate_module = importlib.import_module("scvi_core.simulate")  # the package's `simulate` is the function


def test_simulated_counts_and_ground_truth():
    adata = simulate(n_cells=400, n_genes=80, zi_fraction=0.25, seed=4)
    assert adata.shape == (400, 80) and adata.X.format == "csr" and adata.X.dtype == np.int32
    assert set(adata.obs.columns) >= {"cell_type", "batch"}
    assert adata.var["is_zero_inflated"].sum() == 20
    assert (adata.var.loc[~adata.var["is_zero_inflated"], "true_dropout"] == 0).all()
    # structural zeros: at a similar mean, zero-inflated genes have more zeros than plain NB genes
    counts = adata.X.toarray()
    zero_fraction, log_mean = (counts == 0).mean(0), np.log(counts.mean(0) + 1)
    residual = zero_fraction - np.poly1d(np.polyfit(log_mean, zero_fraction, 2))(log_mean)
    zi = adata.var["is_zero_inflated"].to_numpy()
    assert residual[zi].mean() > residual[~zi].mean() + 0.05


def test_blockwise_drawing_gives_the_same_distribution(monkeypatch):
    """Cells are drawn in blocks of ENTRIES_PER_BLOCK entries; with tiny blocks the parameters and the cells' labels
    are unchanged and the genes' mean counts agree with a single-block draw."""
    whole = simulate(n_cells=600, n_genes=50, seed=2)
    monkeypatch.setattr(simulate_module, "ENTRIES_PER_BLOCK", 50 * 7)  # 7 cells per block
    blocks = simulate(n_cells=600, n_genes=50, seed=2)
    assert blocks.obs.equals(whole.obs) and blocks.var.equals(whole.var)
    means_whole, means_blocks = (np.log1p(np.asarray(a.X.mean(0))).ravel() for a in (whole, blocks))
    assert np.corrcoef(means_whole, means_blocks)[0, 1] > 0.97
    assert not np.array_equal(whole.X.toarray(), blocks.X.toarray())
