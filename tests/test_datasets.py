"""The real PBMC dataset shipped in ``scvi_core/datasets``: its size and contents, that the models accept it, that it
matches its source in ../shared when that is present, and the build script's marker rule."""

from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from dashboard import data_sources
from scvi_core import SCVI, datasets
from scvi_core.data import _preprocess as preprocess
from scvi_core.datasets import _build_pbmc

SOURCE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pbmc_3batches_10x" / "pbmc_3batches_10x.h5ad"
MARKERS = ["IL7R", "CD3E", "CD3D", "MS4A1", "CD79A", "LYZ", "CD14", "S100A8", "S100A9", "NKG7", "GNLY", "FCGR3A",
           "CST3"]


@pytest.fixture(scope="module")
def pbmc() -> ad.AnnData:
    return datasets.pbmc_3batches()


def test_shipped_file_is_small_and_tracked():
    assert datasets.PBMC_FILE.is_file()
    assert datasets.PBMC_FILE.stat().st_size <= 5 * 1024**2
    assert (datasets.PBMC_FILE.parent / "SOURCE.md").is_file()


def test_pbmc_holds_all_cells_three_batches_and_raw_counts(pbmc):
    assert pbmc.shape == (2860, 2000)
    assert sp.issparse(pbmc.X) and pbmc.X.format == "csr" and pbmc.X.dtype == np.int32
    assert pbmc.X.min() >= 0
    assert pbmc.obs["batch"].dtype == "category"
    assert pbmc.obs["batch"].value_counts().to_dict() == {"pbmc1k_3p_v2": 954, "pbmc1k_3p_v3": 906,
                                                          "pbmc8k_5p_sub1k": 1000}
    assert set(pbmc.obs.columns) == {"batch", "chemistry"}
    assert pbmc.obs_names.is_unique and pbmc.var_names.is_unique
    assert (np.asarray(pbmc.X.sum(axis=1)).ravel() > 0).all(), "every cell has counts"
    assert (np.asarray((pbmc.X > 0).sum(axis=0)).ravel() >= 3).all(), "every gene is detected in 3 cells"


def test_pbmc_keeps_the_marker_panel(pbmc):
    assert set(MARKERS) == set(datasets.PBMC_MARKERS)
    assert set(MARKERS) <= set(pbmc.var_names)


def test_each_call_returns_a_fresh_anndata(pbmc):
    other = datasets.pbmc_3batches()
    assert other is not pbmc
    other.X.data[:] = 0
    other.obs["batch"] = "changed"
    assert datasets.pbmc_3batches().X.sum() == pbmc.X.sum() > 0
    assert "changed" not in set(pbmc.obs["batch"])


def test_setup_anndata_accepts_it(pbmc):
    adata = pbmc.copy()
    SCVI.setup_anndata(adata, batch_key="batch")
    model = SCVI(adata)
    assert model.module is not None


def test_prepared_with_the_page_defaults_nothing_is_lost(pbmc):
    candidates = preprocess.key_candidates(pbmc)
    assert preprocess.suggest_keys(candidates) == ("batch", None)
    prepared, _ = preprocess.prepare(pbmc, None, n_top_genes=None, batch_key="batch")
    assert prepared.shape == (2860, 2000)


def test_offered_as_a_demo():
    assert data_sources.DEMO_CHOICES["pbmc"]["name"] == "PBMC 3 batches (real)"
    assert "real" in data_sources.DEMO_CHOICES["pbmc"]["caption"].lower()
    assert data_sources.demo_dataset("pbmc").shape == (2860, 2000)


def test_missing_markers_replace_the_lowest_ranked_genes(pbmc):
    """With only 300 genes some markers are not highly variable: they are added and the total stays 300."""
    genes, added = _build_pbmc.select_genes(pbmc, n_genes=300)
    assert len(genes) == 300 and added
    assert set(MARKERS) <= set(genes)
    assert genes == [g for g in pbmc.var_names if g in set(genes)], "genes keep the file's order"


@pytest.mark.skipif(not SOURCE.is_file(), reason="the source ../shared/data/pbmc_3batches_10x is not available")
def test_counts_equal_the_source():
    source = ad.read_h5ad(SOURCE)
    shipped = datasets.pbmc_3batches()
    assert list(shipped.obs_names) == list(source.obs_names)
    assert (shipped.obs["batch"].astype(str) == source.obs["batch"].astype(str)).all()
    assert (shipped.obs["chemistry"].astype(str) == source.obs["chemistry"].astype(str)).all()
    expected = sp.csr_matrix(source[:, shipped.var_names].X)
    assert (shipped.X != expected).nnz == 0
