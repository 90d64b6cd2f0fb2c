"""Differential-expression questions (scvi_core.de) and their answers kept with the run (dashboard.de_answers), and
their export into the .h5ad (uns["scvi_de"], a scanpy-readable uns["rank_genes_groups"]), on a tiny trained model."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from dashboard import de_answers, export
from scvi_core import SCVI, de, simulate
from scvi_core.de import MARKERS, PAIR, DESettings, Question

FAST = DESettings(n_samples=100, max_cells_per_group=200)


@pytest.fixture(scope="module")
def model():
    adata = simulate(240, 40, seed=3)
    SCVI.setup_anndata(adata, batch_key="batch", labels_key="cell_type")
    fitted = SCVI(adata, n_hidden=16, n_latent=4)
    fitted.train(max_epochs=3, batch_size=128)
    return fitted


def test_group_labels_of_both_questions_and_their_errors():
    labels = de.pair_labels(6, "A", [0, 1], "B", [4, 5])
    assert list(labels) == ["A", "A", "", "", "B", "B"]
    assert list(de.pair_labels(4, "A", [3])) == ["rest", "rest", "rest", "A"]
    for args, message in ((("A", []), "has no cells"), (("A", [0], "A", [1]), "both A"),
                          (("A", [0, 1], "B", [1, 2]), "share 1 cells"), (("A", [0, 1], "B", [0, 1]), "same cells"),
                          (("A", range(6)), "holds every cell")):
        with pytest.raises(ValueError, match=message):
            de.pair_labels(6, *args)
    assert list(de.column_labels(pd.Series(["x", None, "y"]))) == ["x", "", "y"]
    assert de.sort_groups(["10", "2", "1", ""]) == ["1", "2", "10"]
    assert de.question_comparisons(Question(MARKERS, "leiden"), np.array(["1", "0", "1", ""])) == [("0", None),
                                                                                                    ("1", None)]
    with pytest.raises(ValueError, match="at least two groups"):
        de.question_comparisons(Question(MARKERS, "x"), np.array(["a", "a"]))
    with pytest.raises(ValueError, match="different values"):
        de.question_comparisons(Question(MARKERS, "barcode"), np.array([f"c{i}" for i in range(100)]))
    first, rest = de.masks(np.array(["a", "b", "", "a"]), "a", None)
    assert list(first) == [True, False, False, True] and list(rest) == [False, True, False, False]  # "" is no group


def test_groupable_columns():
    obs = pd.DataFrame({"count": np.arange(6.0), "type": list("aabbcc"), "flag": [True, False] * 3,
                        "same": ["x"] * 6, "batch": [0, 1] * 3})
    assert de.groupable_columns(obs, ("batch",)) == ["batch", "type", "flag"]


def test_markers_answer_is_the_core_one_vs_rest_call(model):
    labels = de.column_labels(model.adata.obs["cell_type"])
    calls = []
    table = de.answer(model, Question(MARKERS, "cell_type"), FAST, labels,
                              progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert list(pd.unique(table["comparison"])) == [f"type_{i} vs rest" for i in range(1, 5)]
    assert set(table["group2"]) == {"rest"} and len(table) == 4 * model.adata.n_vars
    core = model.differential_expression(groupby="cell_type", n_samples=100, max_cells_per_group=200)
    for name in pd.unique(core["comparison"]):
        ours, theirs = table[table["comparison"] == name], core[core["comparison"] == name]
        assert np.allclose(ours["proba_de"].to_numpy(), theirs["proba_de"].to_numpy())  # same seeds, same draws
        assert list(ours.index) == list(theirs.index)


def test_answers_are_kept_with_the_run_and_found_again(model, tmp_path):
    labels = de.pair_labels(model.adata.n_obs, "cluster x", np.arange(40), "cluster y", np.arange(100, 160))
    question = Question(PAIR, "groups", "cluster x", "cluster y")
    assert de_answers.find(tmp_path, question, FAST, labels) is None and de_answers.saved(tmp_path) == []
    first = de_answers.answer_and_save(model, tmp_path, question, FAST, labels, controls={"de_delta": 0.25})
    assert list(pd.unique(first.table["comparison"])) == ["cluster x vs cluster y"]
    assert first.table["n_cells1"].iloc[0] == 40 and first.table["n_cells2"].iloc[0] == 60
    again = de_answers.find(tmp_path, question, FAST, labels)
    assert again is not None and again.key == first.key and again.question == question and again.settings == FAST
    pd.testing.assert_frame_equal(again.table, first.table, check_dtype=False)
    assert again.table["is_de_fdr_0.05"].dtype == bool and list(again.labels) == list(labels)
    meta = de_answers.saved(tmp_path)
    assert [m["key"] for m in meta] == [first.key] and meta[0]["controls"] == {"de_delta": 0.25}
    assert meta[0]["group_sizes"] == {"cluster x": 40, "cluster y": 60}
    second = de_answers.answer_and_save(model, tmp_path, Question(PAIR, "groups", "cluster y", "cluster x"), FAST,
                                        de.pair_labels(model.adata.n_obs, "cluster y", np.arange(100, 160),
                                                               "cluster x", np.arange(40)))
    assert [m["key"] for m in de_answers.saved(tmp_path)] == [second.key, first.key]  # newest first, same second
    de_answers.delete(tmp_path, second.key)
    # other settings, or the same names on other cells (a re-clustering), are another answer
    assert de_answers.find(tmp_path, question, DESettings(n_samples=100, max_cells_per_group=200, delta=0.5),
                           labels) is None
    moved = de.pair_labels(model.adata.n_obs, "cluster x", np.arange(1, 41), "cluster y", np.arange(100, 160))
    assert de_answers.find(tmp_path, question, FAST, moved) is None
    assert not list((tmp_path / "de").glob(".*.tmp"))  # written through temporary files, none left behind
    de_answers.delete(tmp_path, first.key)
    assert de_answers.saved(tmp_path) == [] and de_answers.find(tmp_path, question, FAST, labels) is None


def test_bad_groups_raise_messages_for_users(model):
    labels = np.where(np.arange(model.adata.n_obs) == 0, "lonely", "rest")
    with pytest.raises(ValueError, match="single cell"):
        de.answer(model, Question(PAIR, "groups", "lonely"), FAST, labels)


@pytest.fixture(scope="module")
def markers_answer(model, tmp_path_factory):
    labels = de.column_labels(model.adata.obs["cell_type"])
    return de_answers.answer_and_save(model, tmp_path_factory.mktemp("de"), Question(MARKERS, "cell_type"), FAST,
                                      labels)


def exported(model, answer, tmp_path, obs_extra=None):
    adata = model.adata.copy()
    for key, values in (obs_extra or {}).items():
        adata.obs[key] = values
    out = export.annotated_adata(adata, model.get_latent_representation(), "run", {}, differential=answer)
    path = tmp_path / "out.h5ad"
    path.write_bytes(export.h5ad_bytes(out))
    return ad.read_h5ad(path)


def test_exported_markers_are_readable_and_plottable_by_scanpy(model, markers_answer, tmp_path):
    import matplotlib
    import scanpy as sc

    matplotlib.use("Agg")
    back = exported(model, markers_answer, tmp_path)
    rgg = back.uns["rank_genes_groups"]
    assert rgg["params"]["groupby"] == "cell_type" and rgg["params"]["reference"] == "rest"
    assert "posterior probability of NOT" in rgg["params"]["note"] and "de_groups" not in back.obs
    assert list(rgg["names"].dtype.names) == ["type_1", "type_2", "type_3", "type_4"]
    frame = sc.get.rank_genes_groups_df(back, group="type_2")
    block = markers_answer.table[markers_answer.table["group1"] == "type_2"]
    assert len(frame) == back.n_vars and set(frame["names"]) == set(back.var_names)
    assert frame["scores"].is_monotonic_decreasing  # scanpy's order: most convincingly higher in the group first
    lookup = frame.set_index("names")
    assert np.allclose(lookup.loc[block.index, "logfoldchanges"], block["lfc_mean"], atol=1e-5)
    assert np.allclose(lookup.loc[block.index, "pvals"], block["proba_not_de"])
    assert np.allclose(lookup.loc[block.index, "pct_nz_group"], block["non_zeros_proportion1"])
    positive = frame[frame["scores"] > 0]
    assert (positive["logfoldchanges"] > 0).all()
    called = block[block["is_de_fdr_0.05"]].index
    assert (lookup.loc[called, "pvals_adj"] <= 0.05).all()
    assert (lookup.drop(index=called)["pvals_adj"] > 0.05).all()  # pvals_adj ≤ target is exactly the call
    sc.pl.rank_genes_groups_dotplot(back, n_genes=3, show=False)
    table = back.uns["scvi_de"]
    assert isinstance(table, pd.DataFrame) and len(table) == len(markers_answer.table)
    assert list(table["gene"][:3]) == list(markers_answer.table.index[:3])
    assert back.uns["scvi_de_params"]["settings"]["n_samples"] == 100


def test_exported_pair_writes_its_groups_into_obs(model, tmp_path):
    labels = de.pair_labels(model.adata.n_obs, "first", np.arange(50))
    answer = de_answers.answer_and_save(model, tmp_path, Question(PAIR, "groups", "first"), FAST, labels)
    back = exported(model, answer, tmp_path)
    rgg = back.uns["rank_genes_groups"]
    assert rgg["params"]["groupby"] == "de_groups" and rgg["params"]["reference"] == "rest"
    assert list(back.obs["de_groups"].cat.categories) == ["first", "rest"]
    assert (back.obs["de_groups"].iloc[:50] == "first").all()
    import scanpy as sc

    assert len(sc.get.rank_genes_groups_df(back, group="first")) == back.n_vars
    sc.pl.rank_genes_groups_dotplot(back, n_genes=2, show=False)


def test_leiden_markers_use_the_exported_leiden_column_only_when_it_holds_the_same_clusters(model, tmp_path):
    leiden = np.where(np.arange(model.adata.n_obs) % 3 == 0, "0", "1")
    answer = de_answers.answer_and_save(model, tmp_path, Question(MARKERS, "leiden"), FAST, leiden)
    assert export.de_groupby_name(pd.DataFrame({"leiden": leiden}), answer) == "leiden"
    other = np.where(np.arange(model.adata.n_obs) % 2 == 0, "0", "1")  # clustered again with other settings
    assert export.de_groupby_name(pd.DataFrame({"leiden": other}), answer) == "de_groups"
    code = export.reproduce_snippet({"model": "SCVI"}, model.adata, differential=answer, de_groupby="leiden")
    compile(code, "snippet", "exec")
    assert "model.differential_expression(groupby='leiden', method='scvi', delta=0.25" in code and "n_samples=100" in code
