"""A runs folder written before the library's restructuring (issue 19) opens with today's code: its model, results,
differential-expression answer, saved group and UMAP are read as they were written, nothing recomputed.

The fixture ``tests/data/runs_before_one_house`` was written by commit a2a1002 (the last before the
restructuring): a tiny AUTOZI run (120 simulated cells × 30 genes, 3 epochs) with a saved group, a UMAP of every
cell (5 neighbours) and the markers of its cell types."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from dashboard import de_answers, embeddings, groups
from dashboard.runs import RunStore
from scvi_core.embedding import EmbeddingParams

FIXTURE = Path(__file__).parent / "data" / "runs_before_one_house"


@pytest.fixture
def old_runs(tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(FIXTURE, root)
    store = RunStore(root)
    (run_id,) = store.list_runs()["run_id"]
    return store, run_id


def test_the_model_and_its_results_open_as_they_were_saved(old_runs):
    store, run_id = old_runs
    assert store.read_status(run_id)["state"] == "finished" and store.has_model(run_id)
    model = store.load_model(run_id)
    assert type(model).__name__ == "AUTOZI" and model.params["n_latent"] == 3
    np.testing.assert_allclose(model.get_latent_representation(), store.read_latent(run_id), rtol=1e-5, atol=1e-6)
    table = store.read_zero_inflation(run_id)
    assert len(table) == 30 and table.attrs["methods"]["prob_zero_inflated"].startswith("AutoZI")


def test_kept_answer_group_and_umap_are_read_not_recomputed(old_runs, monkeypatch):
    store, run_id = old_runs
    (meta,) = de_answers.saved(store.de_dir(run_id))
    answer = de_answers.load(store.de_dir(run_id), meta["key"])
    assert answer.question.kind == "markers" and set(answer.table["group1"]) == set(answer.labels)
    assert list(groups.read_groups(store.groups_file(run_id))["first"]) == list(range(10))
    monkeypatch.setattr(embeddings, "compute", lambda *a, **k: pytest.fail("recomputed a kept UMAP"))
    umap = embeddings.cached(store.embeddings_dir(run_id), store.read_latent(run_id), EmbeddingParams(n_neighbors=5))
    assert umap.umap.shape == (120, 2) and len(umap.leiden) == 120
