"""setup_anndata refuses non-count data with its documented message and leaves the AnnData as it was."""

import anndata as ad
import numpy as np
import pytest
import scanpy as sc
import scipy.sparse as sp

from scvi_core import AUTOZI, SCVI, CountsError, simulate
from scvi_core.data import SETUP_KEY, CountData


@pytest.fixture
def counts():
    adata = simulate(n_cells=120, n_genes=30, seed=5)
    adata.layers["counts"] = adata.X.copy()
    return adata


def _snapshot(adata):
    x = adata.X.toarray() if sp.issparse(adata.X) else np.array(adata.X, copy=True)
    return x, adata.obs.copy(), adata.var.copy(), dict(adata.uns), {k: v.copy() for k, v in adata.layers.items()}


def _assert_unchanged(adata, snap):
    x, obs, var, uns, layers = snap
    now = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
    np.testing.assert_array_equal(now, x)
    assert adata.obs.equals(obs) and adata.var.equals(var)
    assert set(adata.uns) == set(uns) and SETUP_KEY not in adata.uns
    assert set(adata.layers) == set(layers)


def _log_normalised(adata):
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    return adata


def _with_value(value, row=4, col=7, dense=False):
    def change(adata):
        x = adata.X.toarray().astype(np.float32)
        x[row, col] = value
        adata.X = x if dense else sp.csr_matrix(x)
        return adata

    return change


def _empty_cells(adata):
    x = adata.X.toarray()
    x[[3, 9]] = 0
    adata.X = sp.csr_matrix(x)
    return adata


@pytest.mark.parametrize(
    "corrupt, keys, message",
    [
        (_log_normalised, {}, r"non-integer value .* look log-normalised\. .*raw counts"),
        (_with_value(np.nan), {}, r"Found nan at cell 'cell_000004', gene 'gene_00007'"),
        (_with_value(np.inf, dense=True), {}, r"missing or infinite"),
        (_with_value(-2.0), {}, r"negative value \(-2\) at cell 'cell_000004'.*scaled or centred"),
        (_with_value(2.5, dense=True), {}, r"non-integer value \(2\.5\)"),
        (_empty_cells, {}, r"2 of 120 cells have zero total counts .*filter_cells"),
        (lambda a: a, {"layer": "spliced"}, r"Layer 'spliced' not found. Available layers: 'counts'"),
        (lambda a: a, {"batch_key": "sample"}, r"batch_key 'sample' is not a column"),
        (lambda a: a, {"layer": "raw"}, r"no \.raw"),
    ],
)
def test_bad_input_raises_documented_error_and_leaves_adata_unchanged(counts, corrupt, keys, message):
    adata = corrupt(counts)
    snap = _snapshot(adata)
    with pytest.raises(CountsError, match=message):
        SCVI.setup_anndata(adata, **keys)
    _assert_unchanged(adata, snap)


def test_missing_batch_values_are_refused(counts):
    counts.obs["batch"] = counts.obs["batch"].astype(object)
    counts.obs.iloc[0, counts.obs.columns.get_loc("batch")] = np.nan
    with pytest.raises(CountsError, match="1 missing values"):
        AUTOZI.setup_anndata(counts, batch_key="batch")


def test_counts_in_a_layer_or_raw_are_used(counts):
    _log_normalised(counts)
    SCVI.setup_anndata(counts, layer="counts", batch_key="batch")
    record = counts.uns[SETUP_KEY]
    assert record["layer"] == "counts" and record["batch_categories"] == ["batch_1", "batch_2"]
    assert "labels_key" not in record  # None is left out so the AnnData still writes to .h5ad
    data = CountData(counts)
    assert data.matrix is counts.layers["counts"]
    raw = ad.AnnData(counts.layers["counts"].copy(), obs=counts.obs, var=counts.var)
    logged = raw.copy()
    logged.raw = raw
    _log_normalised(logged)
    SCVI.setup_anndata(logged, layer="raw")
    assert CountData(logged).matrix is logged.raw.X


def test_registered_adata_still_writes_to_h5ad(counts, tmp_path):
    AUTOZI.setup_anndata(counts, batch_key="batch")
    counts.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    assert back.uns[SETUP_KEY]["batch_key"] == "batch"


def test_per_cell_constants_match_direct_computation(counts):
    SCVI.setup_anndata(counts)
    data = CountData(counts)
    x = counts.X.toarray().astype(np.float64)
    from scipy.special import gammaln

    np.testing.assert_allclose(data.log_library, np.log(x.sum(1)), rtol=1e-6)
    np.testing.assert_allclose(data.log_factorial, gammaln(x + 1).sum(1), rtol=1e-5)
    batch = data.batch(np.array([5, 2, 9]), device="cpu")  # in the order asked for
    np.testing.assert_array_equal(batch.x.numpy(), x[[5, 2, 9]])
    np.testing.assert_array_equal(batch.index.numpy(), [5, 2, 9])
    assert batch.values.numel() == np.count_nonzero(x[[5, 2, 9]])
    np.testing.assert_allclose(batch.log_library.numpy(), np.log(x[[5, 2, 9]].sum(1)), rtol=1e-6)
