"""The real PBMC demo: after scVI, its Leiden clusters show the textbook blood-cell markers among their top DE genes,
and two random halves of one cluster show no DE gene and no large fold change, with either DE method. This is what a
room of biologists checks first, and it exercises the whole path on real counts: training, the latent space, Leiden,
and differential expression."""

import numpy as np
import pytest

from scvi_core import SCVI, embedding
from scvi_core.datasets import pbmc_3batches
from scvi_core.de import top_markers

# cell type: (its textbook markers, how many of them one cluster must show among its top markers), per method.
# The group-mean test, at Leiden resolution 0.4 (at scanpy's default of 1.0 the T cells split into subtypes whose
# markers against each other, CCR7, CD8A, …, rank above the CD3 genes they share), top 20: T cells split into subtypes
# (naive and memory CD4, CD8, MAIT) and one-vs-rest against the other T cells ranks the pan-T genes CD3E / CD3D
# (called DE, LFC ≈ 1.3) below the subtype markers, so one of the three is asked for there.
# scVI's change mode asks whether a random cell of the cluster is above a random cell of the rest, so a marker shared
# with a sibling cluster (B-cell genes across B subclusters, NKG7 / GNLY with cytotoxic T cells, CD3E across the T
# subtypes) ranks below the genes unique to the cluster: at resolution 0.2 MS4A1 and CD79A rank 2nd and
# 1st (scvi-tools on PBMC cell types: 4th and 2nd), NKG7 / GNLY about 23rd / 13th, the pan-T genes beyond 60th (None:
# not asked, the test says so as a skip).
TEXTBOOK = {
    "T cells": ({"IL7R", "CD3E", "CD3D"}, {"group-mean": 1, "scvi": None}),
    "B cells": ({"MS4A1", "CD79A"}, {"group-mean": 2, "scvi": 2}),
    "monocytes": ({"LYZ", "CD14", "S100A8", "S100A9"}, {"group-mean": 2, "scvi": 2}),
    "NK cells": ({"NKG7", "GNLY"}, {"group-mean": 2, "scvi": 2}),
}
CLUSTERING = {"group-mean": (0.4, 20), "scvi": (0.2, 30)}  # Leiden resolution, top markers looked at


@pytest.fixture(scope="module")
def trained():
    adata = pbmc_3batches()
    SCVI.setup_anndata(adata, batch_key="batch")
    model = SCVI(adata)
    model.train()  # what a user gets: lr 5e-3 until early stopping (about 14 s here)
    return model


def leiden_clusters(model, resolution: float) -> np.ndarray:
    _, leiden = embedding.compute(model.get_latent_representation(), embedding.EmbeddingParams(resolution=resolution))
    return np.asarray(leiden, dtype=str)


@pytest.fixture(scope="module", params=list(CLUSTERING))
def markers(trained, request):
    resolution, top = CLUSTERING[request.param]
    trained.adata.obs["leiden"] = leiden_clusters(trained, resolution)
    # scVI's change mode at its default 5,000 draws: with 1,000, P(DE) moves in steps of 0.001, and a marker at
    # 0.999 in one draw of them ranked behind the hundreds of genes at 1.000 (MS4A1: 7th or 29th by the seed)
    table = trained.differential_expression(groupby="leiden", batch_correction=True, method=request.param,
                                            n_samples=5000 if request.param == "scvi" else 1000)
    return request.param, top_markers(table, CLUSTERING[request.param][1])


@pytest.mark.parametrize("cell_type", list(TEXTBOOK))
def test_a_cluster_shows_the_textbook_markers(markers, cell_type):
    method, found = markers
    expected, needed = TEXTBOOK[cell_type][0], TEXTBOOK[cell_type][1][method]
    if needed is None:
        pytest.skip(f"{method}: {cell_type}' textbook markers are shared by several clusters and rank low (see above)")
    best = max(found.values(), key=lambda genes: len(expected & set(genes)))
    assert len(expected & set(best)) >= needed, (
        f"{method}: no cluster has {needed} of {sorted(expected)} among its top markers: {found}")


@pytest.mark.parametrize("method", ["scvi", "group-mean"])
def test_random_halves_of_a_cluster_show_nothing(trained, method):
    """Every call between two random halves of the largest cluster is false, and no gene — also none seen in a
    handful of cells — may get a fold change its counts cannot support."""
    leiden = leiden_clusters(trained, 0.4)
    largest = max(set(leiden), key=lambda c: (leiden == c).sum())
    cells = np.random.default_rng(0).permutation(np.flatnonzero(leiden == largest))
    table = trained.differential_expression(idx1=cells[: len(cells) // 2], idx2=cells[len(cells) // 2:],
                                              method=method)
    assert table["is_de_fdr_0.05"].sum() == 0
    assert table["lfc_mean"].abs().max() < 1.5, table["lfc_mean"].abs().sort_values().tail(3)
