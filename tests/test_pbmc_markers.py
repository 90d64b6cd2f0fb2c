"""The real PBMC demo: after scVI, its Leiden clusters show the textbook blood-cell markers among their top DE genes.
This is what a room of biologists checks first, and it exercises the whole path on real counts: training, the latent
space, Leiden, and one-vs-rest differential expression."""

import pytest

from scvi_core import SCVI, embedding
from scvi_core.datasets import pbmc_3batches
from scvi_core.de_views import top_markers

# cell type: (its textbook markers, how many of them one cluster must show). T cells split into subtypes (naive and
# memory CD4, CD8, MAIT) even at a coarse resolution, and one-vs-rest against the other T cells ranks the pan-T genes
# CD3E / CD3D (called DE, LFC ≈ 1.3) below the subtype markers: one of the three is asked for there.
TEXTBOOK = {
    "T cells": ({"IL7R", "CD3E", "CD3D"}, 1),
    "B cells": ({"MS4A1", "CD79A"}, 2),
    "monocytes": ({"LYZ", "CD14", "S100A8", "S100A9"}, 2),
    "NK cells": ({"NKG7", "GNLY"}, 2),
}
TOP = 20


@pytest.fixture(scope="module")
def markers():
    adata = pbmc_3batches()
    SCVI.setup_anndata(adata, batch_key="batch")
    model = SCVI(adata)
    model.train(max_epochs=60, batch_size=256, lr=2e-3)
    # coarse clusters (resolution 0.4): at scanpy's default of 1.0 the T cells split into subtypes, whose markers
    # against each other (CCR7, CD8A, …) then rank above the CD3 genes they share
    _, leiden = embedding.compute(model.get_latent_representation(), embedding.EmbeddingParams(resolution=0.4))
    adata.obs["leiden"] = leiden
    table = model.differential_expression(groupby="leiden", n_samples=1000, batch_correction=True)
    return top_markers(table, TOP)


@pytest.mark.parametrize("cell_type", list(TEXTBOOK))
def test_a_cluster_shows_the_textbook_markers(markers, cell_type):
    expected, needed = TEXTBOOK[cell_type]
    best = max(markers.values(), key=lambda genes: len(expected & set(genes)))
    assert len(expected & set(best)) >= needed, (
        f"no cluster has {needed} of {sorted(expected)} among its top {TOP} markers: {markers}")
