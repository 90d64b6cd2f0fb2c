"""Export: the annotated .h5ad reopens with anndata and holds what scanpy users expect; the model zip loads back;
saved groups; the reproduction snippet."""

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from dashboard import embeddings, export, groups
from scvi_core import embedding
from scvi_core.model import load_model, model_zip_bytes
from scvi_core.zi import CHECK_COLUMNS, CHECK_METHOD, CHECK_PREFIX, POSTERIOR_METHODS
from dashboard.runs import RunStore


@pytest.fixture
def autozi_run(runs_copy):
    store = RunStore(runs_copy["root"])
    return store, runs_copy["AUTOZI"]


def test_groups_are_saved_validated_and_deleted(tmp_path):
    assert groups.read_groups(tmp_path / "groups.json") == {}
    cells = groups.save_group(tmp_path / "groups.json", " T cells ", [5, 3, 3, 9], n_cells=10)
    assert list(cells) == [3, 5, 9]
    assert list(groups.read_groups(tmp_path / "groups.json")["T cells"]) == [3, 5, 9]
    for name, chosen, message in (("", [1], "Name the group"), ("../x", [1], "Name the group"),
                                  ("ok", [], "at least one cell"), ("ok", [10], "between 0 and 9")):
        with pytest.raises(groups.GroupError, match=message):
            groups.save_group(tmp_path / "groups.json", name, chosen, n_cells=10)
    sizes = groups.group_sizes(groups.read_groups(tmp_path / "groups.json"))
    assert sizes.to_dict("records") == [{"group": "T cells", "cells": 3}]
    groups.delete_group(tmp_path / "groups.json", "T cells")
    assert groups.read_groups(tmp_path / "groups.json") == {}


def test_exported_h5ad_holds_every_result(autozi_run, tmp_path):
    store, run_id = autozi_run
    adata, latent = store.load_adata(run_id), store.read_latent(run_id)
    emb = embeddings.cached(store.embeddings_dir(run_id), latent, embedding.EmbeddingParams())
    groups.save_group(store.groups_file(run_id), "first ten", range(10), adata.n_obs)
    table = store.read_zero_inflation(run_id)
    annotated = export.annotated_adata(adata, latent, run_id, store.read_config(run_id), emb,
                                       groups.read_groups(store.groups_file(run_id)), table)
    path = tmp_path / "out.h5ad"
    path.write_bytes(export.h5ad_bytes(annotated))
    back = ad.read_h5ad(path)
    assert np.allclose(back.obsm["X_scVI"], latent) and back.obsm["X_umap"].shape == (adata.n_obs, 2)
    assert list(back.obs["leiden"].astype(str)) == list(emb.leiden)
    assert back.obs["group_first ten"].sum() == 10 and back.obs["group_first ten"].iloc[:10].all()
    assert back.var["autozi_prob_zero_inflated"].to_numpy() == pytest.approx(table["prob_zero_inflated"].to_numpy())
    assert list(back.var["autozi_call"]) == list(table["call"])
    # the NB vs ZINB check keeps its own prefix, and what made each column travels with the file
    assert list(back.var[CHECK_PREFIX + "call"]) == list(table[CHECK_PREFIX + "call"])
    assert not any(c.startswith("autozi_" + CHECK_PREFIX) for c in back.var.columns)
    methods = back.uns["autozi_zero_inflation"]["methods"]
    assert methods["autozi_prob_zero_inflated"] == POSTERIOR_METHODS["variational"]
    assert methods[CHECK_PREFIX + "log10_bayes_factor"] == CHECK_METHOD
    assert back.uns["autozi_zero_inflation"]["posterior"] == "variational q(δ) as trained"
    info = back.uns["scvi_dashboard"]
    assert info["run_id"] == run_id and json.loads(info["config"])["model"] == "AUTOZI"
    assert {"torch", "scanpy", "anndata"} <= set(info["versions"])
    assert np.array_equal(back.X.toarray(), adata.X.toarray())  # the counts themselves are untouched


def test_per_group_tables_become_one_var_column_set_per_group():
    table = pd.DataFrame({"gene": ["a", "a", "b", "b"], "batch": ["x", "y", "x", "y"],
                          "prob_zero_inflated": [0.1, 0.2, 0.3, 0.4]})
    wide = export.zero_inflation_var_columns(table, ["b", "a"], "batch")
    assert list(wide.columns) == ["autozi_prob_zero_inflated_x", "autozi_prob_zero_inflated_y"]
    assert wide.loc["b"].tolist() == [0.3, 0.4]


def test_cells_table_has_coordinates(autozi_run):
    store, run_id = autozi_run
    adata, latent = store.load_adata(run_id), store.read_latent(run_id)
    annotated = export.annotated_adata(adata, latent, run_id, {}, None)
    cells = export.cells_table(annotated)
    assert len(cells) == adata.n_obs and cells["cell"].iloc[0] == adata.obs_names[0]
    assert f"scVI_{latent.shape[1]}" in cells.columns and "UMAP_1" not in cells.columns


def test_model_zip_loads_back_with_the_same_latent_space(autozi_run, tmp_path):
    store, run_id = autozi_run
    archive = tmp_path / "model.zip"
    archive.write_bytes(model_zip_bytes(store.path(run_id) / "model"))
    model = load_model(archive, store.load_adata(run_id))
    assert type(model).__name__ == "AUTOZI"
    assert np.allclose(model.get_latent_representation(), store.read_latent(run_id), atol=1e-5)
    (tmp_path / "not_a_model").mkdir()
    (tmp_path / "not_a_model" / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="should hold one saved model"):
        load_model(model_zip_bytes(tmp_path / "not_a_model"), store.load_adata(run_id))


def test_snippet_is_valid_python_naming_the_run_settings(autozi_run):
    store, run_id = autozi_run
    code = export.reproduce_snippet(store.read_config(run_id), store.load_adata(run_id))
    compile(code, "snippet", "exec")
    assert "AUTOZI.setup_anndata(adata, batch_key='batch', labels_key='cell_type')" in code
    assert "n_hidden=32" in code and "max_epochs=4" in code


@pytest.mark.parametrize("layer", [None, "counts"])
def test_data_opened_on_disk_export_their_results_without_x_and_code_that_reads_the_file(tmp_path, layer):
    from scvi_core import SCVI, simulate
    from scvi_core.io import open_on_disk

    data = simulate(n_cells=120, n_genes=20, seed=1)
    if layer:
        data.layers[layer] = data.X.copy()
    data.write_h5ad(tmp_path / "atlas.h5ad")
    adata, _ = open_on_disk(tmp_path / "atlas.h5ad", layer)
    SCVI.setup_anndata(adata, batch_key="batch")
    latent = np.random.default_rng(0).normal(size=(120, 3))
    (tmp_path / "results.h5ad").write_bytes(export.h5ad_bytes(export.annotated_adata(adata, latent, "r1", {})))
    out = ad.read_h5ad(tmp_path / "results.h5ad")
    assert out.X is None and out.shape == (120, 20)
    np.testing.assert_allclose(out.obsm["X_scVI"], latent.astype(np.float32))
    assert list(out.obs_names) == list(data.obs_names)
    assert out.uns["scvi_dashboard"]["counts_file"] == str((tmp_path / "atlas.h5ad").resolve())
    snippet = export.reproduce_snippet({"model": "SCVI", "train_params": {"max_epochs": 1, "batch_size": 32}}, adata)
    namespace = {}
    exec(snippet.replace('model.save("my_model")', "pass  #"), namespace)  # trains on the file itself
    assert namespace["model"].data.on_disk and namespace["adata"].obsm["X_scVI"].shape == (120, 10)



def test_a_table_saved_before_the_methods_were_recorded_is_made_again(runs_copy):
    """Runs saved before issue 18 hold the NB vs ZINB check under AutoZI's names and no zero_inflation.json: reading
    one makes the table again from the run's model (AutoZI's answer, the check beside it) and records its methods."""
    store, run_id = RunStore(runs_copy["root"]), runs_copy["AUTOZI"]
    results = store.results_dir(run_id)
    old = store.read_zero_inflation(run_id).drop(columns=[c for c in CHECK_COLUMNS if c != CHECK_PREFIX + "call"])
    old.drop(columns=CHECK_PREFIX + "call").to_csv(results / "zero_inflation.csv", index=False)
    (results / "zero_inflation.json").unlink()
    table = store.read_zero_inflation(run_id)
    assert (results / "zero_inflation.json").exists()
    assert set(CHECK_COLUMNS) <= set(table.columns)
    assert table.attrs["methods"]["prob_zero_inflated"] == POSTERIOR_METHODS["variational"]
    alphas = store.load_model(run_id).get_alphas_betas()
    assert table["alpha_posterior"].to_numpy() == pytest.approx(alphas["alpha_posterior"])
