"""Summaries and preparation (scvi_core.data._preprocess) and the session state built on them (dashboard.workspace)."""

import time

import numpy as np
import pytest
import scipy.sparse as sp

from dashboard import data_sources
from scvi_core import io
from scvi_core.data import _preprocess as preprocess
from scvi_core.data import CountsError
from dashboard.workspace import Workspace
from tests import datafiles


@pytest.fixture(scope="module")
def demo():
    return data_sources.demo_dataset("quick")


def test_summary_of_the_demo(demo):
    summary = preprocess.summarize(demo)
    dense = demo.X.toarray()
    assert (summary.n_cells, summary.n_genes) == demo.shape
    assert summary.sparsity == pytest.approx((dense == 0).mean())
    np.testing.assert_allclose(summary.counts_per_cell, dense.sum(axis=1))
    np.testing.assert_array_equal(summary.genes_per_cell, (dense > 0).sum(axis=1))
    assert summary.top_genes["gene"].iloc[0] == demo.var_names[dense.sum(axis=0).argmax()]
    assert summary.obs_columns.set_index("column").loc["batch", "categories"] == 2
    assert preprocess.histogram(summary.counts_per_cell)["cells"].sum() == demo.n_obs


def test_key_candidates_flag_identifier_columns():
    adata = datafiles.tiny_counts()
    adata.obs["barcode"] = [f"id{i}" for i in range(adata.n_obs)]
    adata.obs["size"] = np.arange(adata.n_obs, dtype=float)
    adata.obs["one"] = "x"
    table = preprocess.obs_column_table(adata, max_categories=20).set_index("column")
    assert preprocess.key_candidates(adata, max_categories=20) == ["batch", "cell_type"]
    assert "too many categories (30)" in table.loc["barcode", "note"]
    assert table.loc["size", "note"].startswith("numeric")
    assert table.loc["one", "note"].startswith("a single value")
    assert preprocess.suggest_keys(["cell_type", "batch"]) == ("batch", "cell_type")


def test_prepare_filters_selects_genes_and_leaves_the_original_untouched(demo):
    before = demo.X.copy()
    prepared, notices = preprocess.prepare(demo, min_counts=2000, n_top_genes=100, batch_key="batch")
    assert prepared.n_vars == 100 and prepared.n_obs < demo.n_obs
    assert prepared.var["highly_variable"].all()
    assert any("Removed" in n for n in notices) and any("per batch of 'batch'" in n for n in notices)
    assert (demo.X != before).nnz == 0 and demo.shape == (2000, 500)
    assert prepared.uns["preparation_notices"] == notices


def test_prepare_takes_counts_from_a_layer():
    adata = datafiles.tiny_counts()
    adata.layers["counts"] = adata.X.copy()
    adata.X = sp.csr_matrix(np.log1p(adata.X.toarray()))
    assert preprocess.counts_locations(adata) == [None, "counts"]
    prepared, _ = preprocess.prepare(adata, "counts", n_top_genes=None)
    np.testing.assert_array_equal(prepared.X.toarray(), adata.layers["counts"].toarray())


def test_nothing_left_after_filtering_is_explained(demo):
    with pytest.raises(preprocess.PreparationError, match="No cells left.*Lower the cell filters"):
        preprocess.prepare(demo, min_counts=10**9)
    with pytest.raises(preprocess.PreparationError, match="No genes left"):
        preprocess.prepare(demo, min_cells=10**9)


def test_check_raw_counts_counts_empty_cells_and_refuses_normalised_data():
    adata = datafiles.tiny_counts()
    dense = adata.X.toarray()
    dense[0] = 0
    adata.X = sp.csr_matrix(dense)
    assert preprocess.check_raw_counts(adata) == 1
    adata.X = sp.csr_matrix(np.log1p(dense) + 0.37)
    with pytest.raises(CountsError, match="log-normalised"):
        preprocess.check_raw_counts(adata)


def test_workspace_finds_the_counts_and_resets_on_new_data(demo):
    adata = datafiles.tiny_counts()
    adata.layers["counts"] = adata.X.copy()
    adata.X = sp.csr_matrix(np.log1p(adata.X.toarray()))
    workspace = Workspace()
    assert workspace.status() == {"Data": "nothing loaded yet"}
    workspace.load("tiny", adata, ["a notice"])
    assert workspace.counts_layer == "counts" and workspace.counts_problem is None
    workspace.choose_counts(None)
    assert "log-normalised" in workspace.counts_problem
    workspace.load("demo", demo, [])
    prepared, _ = preprocess.prepare(demo, n_top_genes=None)
    workspace.set_prepared(prepared, "batch", "cell_type")
    workspace.model_config = {"model": "AutoZI"}
    assert workspace.status()["Batch key"] == "batch" and workspace.status()["Model"] == "AutoZI"
    workspace.load("tiny", adata, [])
    assert workspace.prepared is None and workspace.model_config is None and workspace.notices == []


def test_100k_cells_load_and_summarise_quickly_and_sparse(tmp_path):
    path = tmp_path / "big.h5ad"
    datafiles.write_big_h5ad(path)
    start = time.perf_counter()
    adata, _ = io.read_path(path)
    workspace = Workspace()
    workspace.load("big", adata, [])
    elapsed = time.perf_counter() - start
    assert sp.issparse(adata.X) and workspace.summary.n_cells == 100_000
    assert workspace.summary.obs_columns.set_index("column").loc["barcode", "usable as key"] == False  # noqa: E712
    assert elapsed < 20, f"reading and summarising 100,000 cells took {elapsed:.1f} s"
