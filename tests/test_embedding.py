"""Neighbours / UMAP / Leiden on the latent space: shapes, the disk cache, subsampling for display."""

import numpy as np
import pytest

from dashboard import embeddings
from dashboard.runs import RunStore
from scvi_core import embedding


def test_cached_embedding_covers_every_cell_and_is_read_back(runs_copy, monkeypatch):
    store = RunStore(runs_copy["root"])
    run_id = runs_copy["AUTOZI"]
    latent = store.read_latent(run_id)
    first = embeddings.cached(store.embeddings_dir(run_id), latent, embedding.EmbeddingParams())  # kept by the fixture
    assert first.umap.shape == (latent.shape[0], 2) and np.isfinite(first.umap).all()
    assert len(first.leiden) == latent.shape[0] and "0" in set(first.leiden)

    monkeypatch.setattr(embedding, "compute", lambda *a, **k: pytest.fail("recomputed a cached embedding"))
    again = embeddings.cached(store.embeddings_dir(run_id), latent, embedding.EmbeddingParams())
    assert np.array_equal(again.umap, first.umap) and np.array_equal(again.leiden, first.leiden)


def test_a_group_and_other_parameters_get_their_own_cache_entries():
    cells = np.arange(50)
    keys = {embeddings.cache_key(embedding.EmbeddingParams(), cells),
            embeddings.cache_key(embedding.EmbeddingParams(), cells[:40]),
            embeddings.cache_key(embedding.EmbeddingParams(resolution=0.5), cells)}
    assert len(keys) == 3
    assert embeddings.cache_key(embedding.EmbeddingParams(), cells) == embeddings.cache_key(
        embedding.EmbeddingParams(), cells.copy())


def test_re_embedding_a_group_and_progress_messages(runs_copy):
    store = RunStore(runs_copy["root"])
    run_id = runs_copy["AUTOZI"]
    messages = []
    group = np.arange(0, 300, 3)
    sub = embeddings.cached(store.embeddings_dir(run_id), store.read_latent(run_id), embedding.EmbeddingParams(), group,
                           progress=messages.append)
    assert sub.umap.shape == (100, 2) and np.array_equal(sub.cells, group)
    assert any("UMAP" in m for m in messages) and any("Leiden" in m for m in messages)


def test_too_few_cells_is_a_clear_error():
    with pytest.raises(ValueError, match="At least 10 cells"):
        embedding.compute(np.zeros((4, 3)), embedding.EmbeddingParams())


def test_display_subsample_only_above_the_limit():
    assert np.array_equal(embedding.display_subsample(500, max_points=1000), np.arange(500))
    shown = embedding.display_subsample(5000, max_points=1000)
    assert len(shown) == 1000 and len(set(shown)) == 1000 and np.all(np.diff(shown) > 0) and shown.max() < 5000
    assert np.array_equal(shown, embedding.display_subsample(5000, max_points=1000))
