"""The simulator: structure of its output, and block-wise drawing (which keeps its memory bounded)."""

import numpy as np

from scvi_core import simulate
from scvi_core.data import _simulate as simulate_module


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


def test_zeros_that_follow_the_cell_type_and_genes_that_are_off_in_some_types():
    """The harder kinds of gene (issue 18): dropout in some cell types only, and plain NB genes that are off in some
    types. Checked against the counts themselves, type by type; the default data do not change."""
    kinds = dict(cell_type_zi_fraction=0.2, cell_type_dropout_range=(0.5, 0.6), silent_fraction=0.2)
    adata = simulate(n_cells=3000, n_genes=100, zi_fraction=0.2, dispersion_range=(50.0, 50.0), seed=3, **kinds)
    kind = adata.var["zero_kind"].astype(str).to_numpy()
    assert {k: int((kind == k).sum()) for k in simulate_module.ZERO_KINDS} == {
        simulate_module.NB: 40, simulate_module.NB_SILENT: 20, simulate_module.CONSTANT_DROPOUT: 20,
        simulate_module.CELL_TYPE_DROPOUT: 20}
    truth = adata.var["is_zero_inflated"].to_numpy()
    assert (truth == np.isin(kind, [simulate_module.CONSTANT_DROPOUT, simulate_module.CELL_TYPE_DROPOUT])).all()
    counts, types = adata.X.toarray(), adata.obs["cell_type"].to_numpy()
    per_type = np.stack([counts[types == t].sum(0) for t in np.unique(types)])  # (types, genes) total counts
    silent = kind == simulate_module.NB_SILENT
    off = per_type[:, silent] == 0
    assert off.any(0).all() and (~off).any(0).all()  # each silent gene is off in some types, on in others
    assert (per_type[:, ~silent] > 0).all()
    # cell-type dropout: the zero share jumps by about the dropout in the types where it applies, not in the others
    dropped = kind == simulate_module.CELL_TYPE_DROPOUT
    mean_in_zero_types = np.array([[np.mean(counts[types == t, g] == 0) for g in np.flatnonzero(dropped)]
                                   for t in np.unique(types)])
    assert (mean_in_zero_types.max(0) - mean_in_zero_types.min(0) > 0.3).all()
    assert adata.var.loc[dropped, "true_dropout"].between(0.5 / 4, 0.6 * 3 / 4).all()  # averaged over the 4 types
    default = simulate(n_cells=200, n_genes=40, seed=3)
    again = simulate(n_cells=200, n_genes=40, seed=3, cell_type_zi_fraction=0.0, silent_fraction=0.0)
    assert np.array_equal(default.X.toarray(), again.X.toarray())
