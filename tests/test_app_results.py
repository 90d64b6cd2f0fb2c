"""Results pages in AppTest, on a tiny finished run: Latent space, Zero-inflation, Export."""

import json

import numpy as np

from dashboard import groups
from dashboard.config import MODEL_PARAMS
from dashboard.runs import RunStore


def open_page(app, title: str):
    app.switch_page({"Latent space (UMAP)": "pages/4_latent_space.py", "Zero-inflation": "pages/5_zero_inflation.py",
                     "Export": "pages/6_export.py"}[title])
    app.run()
    assert not app.exception, app.exception
    return app


def texts(app) -> str:
    return "\n".join(e.value for kind in ("markdown", "caption", "info", "success", "error", "warning")
                     for e in getattr(app, kind))


def test_latent_space_page_without_runs_says_what_to_do(app):
    open_page(app, "Latent space (UMAP)")
    assert "No finished training run yet" in texts(app)


def test_latent_space_page_shows_the_run_and_saves_a_group(runs_copy, app):
    open_page(app, "Latent space (UMAP)")
    offered = " ".join(app.selectbox(key="results_run").options)
    assert runs_copy["AUTOZI"] in offered and runs_copy["SCVI"] in offered
    app.selectbox(key="results_run").set_value(runs_copy["AUTOZI"]).run()
    assert not app.exception
    assert app.session_state["workspace"].current_run_id == runs_copy["AUTOZI"]
    assert len(app.get("plotly_chart")) == 1
    # colour by a gene (denoised, then raw)
    app.selectbox(key="colour_by").set_value("gene").run()
    app.selectbox(key="colour_gene").set_value("gene_00003").run()
    assert not app.exception
    app.radio(key="colour_kind").set_value("raw counts").run()
    assert not app.exception
    # select cluster 0 and save it as a group
    app.radio(key="select_by").set_value("clusters or annotations").run()
    app.multiselect(key="select_values_leiden").set_value(["0"]).run()
    app.text_input(key="group_name").input("cluster zero")
    app.button[[b.label for b in app.button].index("Save selected cells as a group")].click().run()
    assert not app.exception
    assert "Saved group 'cluster zero'" in texts(app)
    saved = groups.read_groups(RunStore(runs_copy["root"]).groups_file(runs_copy["AUTOZI"]))
    assert list(saved) == ["cluster zero"] and len(saved["cluster zero"]) > 10
    # re-embed it
    app.button(key="reembed").click().run()
    assert not app.exception
    assert "re-embedded" in " ".join(h.value for h in app.subheader)
    assert len(app.get("plotly_chart")) == 2


def test_zero_inflation_page_table_threshold_and_gene_detail(runs_copy, app):
    app.session_state["workspace"].current_run_id = runs_copy["AUTOZI"]
    open_page(app, "Zero-inflation")
    table = app.dataframe[0].value
    assert len(table) == 60 and table["gene"].is_unique  # one row per gene
    # headline: the evidence-aware calls of the table's 'call' column, with the plain rule P(ZI) > 0.5 beside them
    called_at_half = int(table["prob_zero_inflated"].gt(0.5).sum())
    assert app.metric[0].value == f"{int((table['call'] == 'zero-inflated').sum())} of 60"
    assert app.metric[0].delta == f"{called_at_half} with P(ZI) > 0.50"
    app.slider(key="zi_threshold").set_value(0.05).run()
    assert not app.exception
    assert app.metric[0].delta == f"{int(table['prob_zero_inflated'].gt(0.05).sum())} with P(ZI) > 0.05"
    table = app.dataframe[0].value
    assert app.metric[0].value == f"{int((table['call'] == 'zero-inflated').sum())} of 60"
    # AutoZI's answer and the NB vs ZINB check side by side, each saying what it asks, and where they disagree
    check = "nb_zinb_check_call"
    assert {"prob_zero_inflated", "call", "nb_zinb_check_prob_zero_inflated", check} <= set(table.columns)
    assert "**AutoZI** (the answer) asks" in texts(app) and "**The NB vs ZINB check** asks" in texts(app)
    disagreeing = int((table["call"] != table[check]).sum())
    assert f"the two calls differ on {disagreeing:,} genes" in texts(app)
    app.checkbox(key="zi_disagree").check().run()
    shown = app.dataframe[0].value
    assert len(shown) == disagreeing and (shown["call"] != shown[check]).all()
    app.checkbox(key="zi_disagree").uncheck().run()
    # ground truth of the simulated data is reported
    assert "True ZI genes found" in [m.label for m in app.metric]
    # search a gene: the table narrows and the detail opens on it
    app.text_input(key="zi_search").input("gene_00007").run()
    assert not app.exception
    assert list(app.dataframe[0].value["gene"]) == ["gene_00007"]
    assert app.selectbox(key="zi_gene").value == "gene_00007"
    assert "**gene_00007**" in texts(app) and len(app.get("plotly_chart")) == 5
    # mean-count filter
    app.text_input(key="zi_search").input("").run()
    app.number_input(key="zi_min_mean").set_value(1.0).run()
    assert app.dataframe[0].value["mean_count"].gt(1).all()


def test_zero_inflation_page_for_an_scvi_run_offers_autozi(runs_copy, app):
    app.session_state["workspace"].current_run_id = runs_copy["SCVI"]
    open_page(app, "Zero-inflation")
    assert "AutoZI question" in texts(app)
    app.button(key="configure_autozi").click().run()
    assert not app.exception
    workspace = app.session_state["workspace"]
    assert workspace.model_config["model"] == "AUTOZI" and workspace.prepared.n_obs == 300


def test_zero_inflation_page_offers_a_higher_minimal_dropout_where_autozi_alone_calls_genes(runs_copy, app):
    store, run_id = RunStore(runs_copy["root"]), runs_copy["AUTOZI"]
    table = store.read_zero_inflation(run_id)
    autozi_only = np.arange(len(table)) < 3  # AutoZI sure of zero inflation, the check sure of none, well expressed
    table.loc[autozi_only, "mean_count"] = 5.0
    table["prob_zero_inflated"], table["log10_bayes_factor"] = np.where(autozi_only, 0.99, 0.01), np.where(
        autozi_only, 2.0, -2.0)
    table["nb_zinb_check_prob_zero_inflated"], table["nb_zinb_check_log10_bayes_factor"] = 0.01, -2.0
    store.save_zero_inflation(run_id, table)
    app.session_state["workspace"].current_run_id = run_id
    open_page(app, "Zero-inflation")
    assert "AutoZI calls 3 genes with mean count > 1 zero-inflated that the NB vs ZINB check does not" in texts(app)
    app.button(key="retrain_minimal_dropout").click().run()
    assert not app.exception
    ran = store.read_config(run_id)
    configured = app.session_state["workspace"].model_config
    assert configured["model"] == "AUTOZI"  # the rest as the run had it, what it does not record at the defaults
    assert configured["model_params"] == {**MODEL_PARAMS["AUTOZI"], **ran["model_params"], "minimal_dropout": 0.03}
    assert configured["train_params"] == {**configured["train_params"], **ran["train_params"]}
    assert not app.exception and app.session_state["workspace"].prepared.n_obs == 300  # the Model page drew it
    # a run already at that minimal dropout is not offered it again
    store.path(run_id).joinpath("config.json").write_text(json.dumps(
        {**ran, "model_params": {**ran["model_params"], "minimal_dropout": 0.03}}))
    open_page(app, "Zero-inflation")
    assert "that the NB vs ZINB check does not" not in texts(app)


def test_export_page_lists_what_the_h5ad_holds_and_the_snippet(runs_copy, app):
    store = RunStore(runs_copy["root"])
    groups.save_group(store.groups_file(runs_copy["AUTOZI"]), "first", np.arange(20), 300)
    app.session_state["workspace"].current_run_id = runs_copy["AUTOZI"]
    open_page(app, "Export")
    listing = texts(app)
    for key in ("obsm['X_scVI']", "obsm['X_umap']", "obs['leiden']", "obs['group_first']", "var['autozi_*']",
                "var['nb_zinb_check_*']", "uns['autozi_zero_inflation']", "uns['scvi_dashboard']"):
        assert key in listing
    downloads = [e.label for e in app.get("download_button")]
    assert len(downloads) == 5 and "Download for scvi-tools (.zip)" in downloads  # h5ad, 2 CSVs, 2 model zips
    snippet = app.code[0].value
    compile(snippet, "snippet", "exec")
    assert "AUTOZI(adata, n_hidden=32, n_latent=5)" in snippet


def test_zero_inflation_page_per_batch_has_a_group_selector(data_dir, app):
    from tests.tiny_run import write_tiny_run

    run_id = write_tiny_run(data_dir.parent / "runs", "AUTOZI", n_cells=200, n_genes=30, max_epochs=2,
                            zero_inflation="gene-batch")
    app.session_state["workspace"].current_run_id = run_id
    open_page(app, "Zero-inflation")
    assert app.selectbox(key="zi_group").options == ["batch_1", "batch_2"]
    assert len(app.dataframe[0].value) == 30  # one row per gene within the chosen batch
    app.selectbox(key="zi_group").set_value("batch_2").run()
    assert not app.exception
    assert "in batch batch_2" in texts(app)  # the gene detail is the chosen batch's


def test_an_scvi_run_on_the_latent_space_and_export_pages(runs_copy, app):
    app.session_state["workspace"].current_run_id = runs_copy["SCVI"]
    open_page(app, "Latent space (UMAP)")  # its UMAP is computed here, not cached by the fixture
    assert len(app.get("plotly_chart")) == 1
    open_page(app, "Export")
    assert "var['autozi_*']" not in texts(app) and len(app.get("download_button")) == 4
    assert "SCVI(adata, n_hidden=32, n_latent=5)" in app.code[0].value
