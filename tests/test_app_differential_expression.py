"""The Differential expression page in AppTest, on a small scVI run trained for these tests (400 cells × 60 genes,
at most 200 epochs, stopped early after about 110 to 150, a few seconds): markers of the simulated cell types with the
truth check, filters, CSV, dot plot and heatmap; the answer shown again from disk in a new session; two groups
compared (a saved group, Leiden clusters); the gene view's link to the UMAP; the .h5ad export reopened by scanpy.
Posterior samples are kept small for speed."""

import base64
import io
import json
import shutil

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from streamlit.runtime.media_file_manager import MediaFileManager

from dashboard import de_answers, groups
from dashboard.runs import RunStore
from scvi_core.data import true_lfc
from tests.tiny_run import write_tiny_run

PAGE = "pages/7_differential_expression.py"


@pytest.fixture(scope="module")
def de_runs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("de_runs")
    return {"root": root, "SCVI": write_tiny_run(root, "SCVI", n_cells=400, n_genes=60, max_epochs=200)}


@pytest.fixture
def de_copy(de_runs, data_dir, tmp_path, monkeypatch) -> dict:
    """A private copy of the run, set as the dashboard's runs directory (request it before ``app``)."""
    root = tmp_path / "de_runs"
    shutil.copytree(de_runs["root"], root)
    monkeypatch.setenv("SCVI_DASHBOARD_RUNS_DIR", str(root))
    return {**de_runs, "root": root}


@pytest.fixture
def downloads(monkeypatch) -> dict:
    """What the page's download buttons would hand the browser: file name → bytes / str, or the callable that
    builds it on click (large files)."""
    files = {}
    add, add_deferred = MediaFileManager.add, MediaFileManager.add_deferred

    def record(self, path_or_data, mimetype, coordinates, file_name=None, is_for_static_download=False):
        files[file_name] = path_or_data
        return add(self, path_or_data, mimetype, coordinates, file_name, is_for_static_download)

    def record_deferred(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        files[file_name] = data_callable
        return add_deferred(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add", record)
    monkeypatch.setattr(MediaFileManager, "add_deferred", record_deferred)
    return files


def texts(app) -> str:
    return "\n".join(e.value for kind in ("markdown", "caption", "info", "success", "error", "warning")
                     for e in getattr(app, kind))


def run_clean(element):
    app = element.run()
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    return app


def open_page(app, run_id: str | None = None):
    if run_id:
        app.session_state["workspace"].current_run_id = run_id
    app.switch_page(PAGE)
    return run_clean(app)


def charts(app) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]


def array(values) -> np.ndarray:
    """A plotly figure array from its JSON (plotly writes numeric arrays base64-encoded)."""
    if isinstance(values, dict) and "bdata" in values:
        flat = np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
        return flat.reshape([int(n) for n in str(values["shape"]).split(",")]) if "shape" in values else flat
    return np.asarray(values)


def chart_titles(app) -> list[str]:
    return [spec["layout"].get("title", {}).get("text", "") for spec in charts(app)]


def de_table(app) -> pd.DataFrame:
    return next(frame.value for frame in app.dataframe if "lfc_mean" in frame.value.columns)


def top_markers_from(app) -> dict[str, list[str]]:
    """The marker genes of the dot plot, by group, read back from its points (biggest scaled expression first)."""
    dot = charts(app)[1]["data"][0]
    genes, groups = list(dot["x"]), list(dot["y"])
    scaled = array(dot["marker"]["color"])
    out = {}
    for group in dict.fromkeys(groups):
        rows = [i for i, g in enumerate(groups) if g == group]
        out[group] = [genes[i] for i in sorted(rows, key=lambda i: -scaled[i])[:1]]
    return out


def metric(app, label: str) -> str:
    return next(m.value for m in app.metric if m.label == label)


def ask_markers(app, groupby: str, n_samples: int = 200):
    app.selectbox(key="de_groupby").set_value(groupby)
    app.number_input(key="de_n_samples").set_value(n_samples)
    run_clean(app)
    assert "Not computed yet" in texts(app)
    return run_clean(app.button(key="de_run").click())


def test_without_runs_the_page_says_what_to_do(app):
    app.switch_page(PAGE).run()
    assert not app.exception
    assert "train a model first" in texts(app)


def test_markers_of_cell_types_truth_filters_csv_and_dot_plot(de_copy, app, downloads, monkeypatch):
    run_id = de_copy["SCVI"]
    open_page(app, run_id)
    assert app.radio(key="de_question").value == "Markers of every cluster"
    assert app.selectbox(key="de_groupby").options[:2] == ["Leiden clusters (as on the Latent space page)",
                                                          "cell_type"]
    assert app.checkbox(key="de_batch").value is False  # offered: the run has a batch key
    ask_markers(app, "cell_type")
    assert app.selectbox(key="de_comparison").options == [f"type_{i} vs rest" for i in range(1, 5)]

    # truth check on the simulated cell types, as counted from the kept table and the simulator's fold changes
    store = RunStore(de_copy["root"])
    answer = de_answers.load(store.de_dir(run_id), de_answers.saved(store.de_dir(run_id))[0]["key"])
    type_1 = answer.table[answer.table["group1"] == "type_1"]
    truth = true_lfc(store.load_adata(run_id), "type_1")
    is_true, called = truth.loc[type_1.index].abs() >= 0.25, type_1["is_de_fdr_0.05"]
    assert metric(app, "True DE genes found") == f"{int((is_true & called).sum())} of {int(is_true.sum())}"
    assert metric(app, "False calls") == f"{int((called & ~is_true).sum())} of {int(called.sum())} called"
    assert (is_true & called).sum() > 5  # a model stopped early on 400 cells already finds true markers

    table = de_table(app)
    assert len(table) == 60 and table["gene"].is_unique
    assert table["proba_de"].is_monotonic_decreasing or table["proba_de"].iloc[0] >= table["proba_de"].iloc[-1]
    assert (table["pct1"].where(table["lfc_mean"] > 0, table["pct2"]) >= 10).all()  # default: ≥ 10% expressing
    titles = chart_titles(app)
    volcano = charts(app)[0]
    ups, downs = int((table["direction"] == "up").sum()), int((table["direction"] == "down").sum())
    assert f"type_1 vs rest: {ups:,} genes up" in titles[0]  # the default filter keeps every called gene here
    assert f"{downs:,} down" in titles[0]
    assert {trace["name"].split(" (")[0] for trace in volcano["data"]} == {"up in type_1", "up in rest", "not DE"}
    assert [shape["x0"] for shape in volcano["layout"]["shapes"]] == [-0.25, 0.25]
    assert titles[1].startswith("Top markers") and titles[2].startswith("Marker genes in single cells")
    assert titles[3].endswith("denoised expression per group")
    # the heatmap's cells are the groups they are drawn under: each group's best marker is highest in its own cells
    heat = charts(app)[2]["data"][0]
    z, genes, cell_groups = array(heat["z"]), list(heat["y"]), np.asarray(heat["customdata"][0])
    best = {g: table_genes[0] for g, table_genes in top_markers_from(app).items()}
    for group, gene in best.items():
        row = z[genes.index(gene)]
        assert row[cell_groups == group].mean() > row[cell_groups != group].mean() + 0.5, (group, gene)

    # filters: direction, search, minimal % expressing, called only
    app.radio(key="de_direction").set_value("up")
    run_clean(app)
    assert (de_table(app)["lfc_mean"] > 0).all()
    app.radio(key="de_direction").set_value("both")
    app.text_input(key="de_search").input("gene_0001")
    run_clean(app)
    assert set(de_table(app)["gene"]) <= {f"gene_{i:05d}" for i in range(10, 20)} and len(de_table(app))
    app.text_input(key="de_search").input("")
    app.checkbox(key="de_called_only").check()
    app.number_input(key="de_min_pct").set_value(50.0)
    run_clean(app)
    filtered = de_table(app)
    assert (filtered["direction"] != "not DE").all()
    assert (filtered["pct1"].where(filtered["lfc_mean"] > 0, filtered["pct2"]) >= 50).all()
    csv = pd.read_csv(io.BytesIO(downloads[f"de_{run_id}__type_1_vs_rest.csv"]))
    assert list(csv["gene"]) == list(filtered["gene"])  # the CSV is the filtered table
    assert set(csv["method"]) == {"scvi"}  # and says which method made it
    full = pd.read_csv(io.BytesIO(downloads[f"de_{run_id}_full.csv"]), index_col=0)
    assert len(full) == 4 * 60 and "is_de_fdr_0.05" in full.columns

    # another group, the log-odds axis, more genes per group and LFC colours in the dot plot
    app.selectbox(key="de_comparison").set_value("type_3 vs rest")
    app.radio(key="de_y").set_value("log_odds")
    app.slider(key="de_top_n").set_value(3)
    app.radio(key="de_dot_colour").set_value("lfc")
    run_clean(app)
    specs = charts(app)
    assert specs[0]["layout"]["title"]["text"].startswith("type_3 vs rest")
    assert specs[0]["layout"]["yaxis"]["title"]["text"].startswith("log-odds")
    dot = specs[1]["data"][0]
    assert len(set(dot["y"])) == 4 and len(dot["x"]) == 4 * len(set(dot["x"])) <= 4 * 4 * 3
    assert dot["marker"]["colorbar"]["title"]["text"] == "log2 FC vs rest"

    # a new session after a server restart (caches emptied) shows the kept answer without computing again
    monkeypatch.setattr(de_answers, "answer", lambda *a, **k: pytest.fail("recomputed a kept answer"))
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()
    st.cache_resource.clear()

    again = AppTest.from_file(app._script_path, default_timeout=60)
    run_clean(again)
    open_page(again, run_id)
    assert again.selectbox(key="de_groupby").value == "cell_type"
    assert again.button(key="de_run").disabled and len(de_table(again)) == 60
    assert "kept with the run" in texts(again)


def test_the_method_is_scvi_change_mode_by_default_and_group_mean_one_click_away(de_copy, app):
    """The page says which question each method answers, computes with the chosen one, keeps it with the answer and
    shows it; the same question by the other method is another answer, both kept."""
    run_id = de_copy["SCVI"]
    open_page(app, run_id)
    assert app.radio(key="de_method").value == "scvi"
    assert "a random cell of A" in texts(app)
    ask_markers(app, "cell_type")
    assert "scVI change mode (Boyeau et al.): δ = 0.25" in texts(app)
    store = RunStore(de_copy["root"])
    kept = de_answers.saved(store.de_dir(run_id))
    assert [m["settings"]["method"] for m in kept] == ["scvi"]
    assert (de_answers.load(store.de_dir(run_id), kept[0]["key"]).table["method"] == "scvi").all()

    app.radio(key="de_method").set_value("group-mean")
    run_clean(app)
    assert "A's mean expression" in texts(app) and "Not computed yet" in texts(app)  # another question
    run_clean(app.button(key="de_run").click())
    assert "group-mean test (this project's): δ = 0.25" in texts(app)
    kept = de_answers.saved(store.de_dir(run_id))
    assert [m["settings"]["method"] for m in kept] == ["group-mean", "scvi"]
    listing = app.dataframe[0].value  # the kept answers, newest first
    assert list(listing["method"]) == ["group-mean test (this project's)", "scVI change mode (Boyeau et al.)"]


def test_compare_a_saved_group_then_two_leiden_clusters_and_colour_the_umap(de_copy, app):
    run_id = de_copy["SCVI"]
    store = RunStore(de_copy["root"])
    adata = store.load_adata(run_id)
    type_2 = np.flatnonzero(adata.obs["cell_type"] == "type_2")
    groups.save_group(store.groups_file(run_id), "my cells", type_2, adata.n_obs)
    open_page(app, run_id)
    app.radio(key="de_question").set_value("Compare two groups")
    run_clean(app)
    app.selectbox(key="de_a_source").set_value("saved")  # raw option values (shown: "Saved group")
    app.number_input(key="de_n_samples").set_value(200)
    run_clean(app)
    assert app.selectbox(key="de_a_value").value == "my cells"
    assert app.selectbox(key="de_b_source").value == "rest"  # raw option values; options show "The rest of the cells"
    run_clean(app.button(key="de_run").click())
    assert [h.value for h in app.subheader][0] == "my cells vs rest"
    assert "my cells: " + f"{len(type_2):,} cells used" in texts(app)
    assert "True DE genes found" not in [m.label for m in app.metric]  # a saved group is not a known cell type
    table = de_table(app)
    assert len(table) == 60 and "Top markers" not in " ".join(chart_titles(app))  # no dot plot for a pair

    # the gene view follows the chosen gene, and its button colours the UMAP by it
    gene = table["gene"].iloc[0]
    app.selectbox(key="de_gene").set_value(gene)
    run_clean(app)
    assert f"**{gene}**: log2 fold change" in texts(app)
    assert chart_titles(app)[-1] == f"{gene}: denoised expression per group"
    violins = charts(app)[-1]["data"]
    assert [v["name"] for v in violins] == ["my cells", "rest"] and len(array(violins[0]["y"])) == len(type_2)
    run_clean(app.button(key="de_colour_umap").click())
    assert app.title[0].value == "Latent space (UMAP)"
    assert app.selectbox(key="colour_by").value == "gene" and app.selectbox(key="colour_gene").value == gene
    assert any(f"{gene} (denoised)" in json.dumps(spec) for spec in charts(app))

    # cluster vs cluster: the Leiden clusters are computed on choosing them (once) and offered by number
    app.switch_page(PAGE)
    run_clean(app)
    app.radio(key="de_question").set_value("Compare two groups")
    run_clean(app)
    app.selectbox(key="de_a_source").set_value("leiden")
    app.selectbox(key="de_b_source").set_value("leiden")
    run_clean(app)
    assert app.selectbox(key="de_a_value").options[:2] == ["cluster 0", "cluster 1"]
    assert app.selectbox(key="de_b_value").value == "1"  # B starts on another cluster than A
    app.selectbox(key="de_b_value").set_value("0")  # the same group on both sides is explained
    app.run()
    assert not app.exception and "both cluster 0" in " ".join(e.value for e in app.error)
    assert app.button(key="de_run").disabled and app.number_input(key="de_delta").value == 0.25  # controls stay
    app.selectbox(key="de_b_value").set_value("1")
    app.number_input(key="de_n_samples").set_value(200)
    run_clean(app)
    run_clean(app.button(key="de_run").click())
    assert [h.value for h in app.subheader][0] == "cluster 0 vs cluster 1"
    assert chart_titles(app)[0].startswith("cluster 0 vs cluster 1")
    kept = de_answers.saved(store.de_dir(run_id))
    assert [m["title"] for m in kept] == ["cluster 0 vs cluster 1", "my cells vs rest"]


def test_kept_answers_can_be_shown_again_and_deleted(de_copy, app):
    run_id = de_copy["SCVI"]
    open_page(app, run_id)
    ask_markers(app, "cell_type", n_samples=100)
    ask_markers(app, "batch", n_samples=100)
    assert [h.value for h in app.subheader][0] == "Markers of every batch"
    app.selectbox(key="de_kept").set_value(app.selectbox(key="de_kept").options[1])  # the cell-type answer
    run_clean(app.button(key="de_show_kept").click())
    assert app.selectbox(key="de_groupby").value == "cell_type" and "Markers of every cell_type" in \
        [h.value for h in app.subheader]
    run_clean(app.button(key="de_delete_kept").click())
    assert "Not computed yet" in texts(app) and len(de_answers.saved(RunStore(de_copy["root"]).de_dir(run_id))) == 1


def test_markers_of_an_autozi_run(runs_copy, app):
    open_page(app, runs_copy["AUTOZI"])
    ask_markers(app, "cell_type", n_samples=100)
    assert len(de_table(app)) == 60 and app.selectbox(key="de_comparison").value == "type_1 vs rest"


def test_export_page_writes_the_answer_into_the_h5ad_for_scanpy(de_copy, app, downloads, tmp_path):
    import scanpy as sc

    run_id = de_copy["SCVI"]
    open_page(app, run_id)
    ask_markers(app, "cell_type", n_samples=100)
    app.switch_page("pages/6_export.py")
    run_clean(app)
    picker = app.selectbox(key=f"export_de_{run_id}")
    kept = de_answers.saved(RunStore(de_copy["root"]).de_dir(run_id))
    assert picker.value == kept[0]["key"] and picker.options[0].startswith("Markers of every cell_type")
    assert "uns['rank_genes_groups']` by `obs['cell_type']`" in texts(app)
    assert "model.differential_expression(groupby='cell_type'" in app.code[0].value
    compile(app.code[0].value, "snippet", "exec")
    csv = pd.read_csv(io.BytesIO(downloads[f"de_{run_id}_full.csv"]), index_col=0)
    assert len(csv) == 240
    path = tmp_path / "export.h5ad"
    path.write_bytes(downloads[f"scvi_run_{run_id}.h5ad"]())  # built on click
    back = ad.read_h5ad(path)
    assert back.uns["rank_genes_groups"]["params"]["groupby"] == "cell_type"
    frame = sc.get.rank_genes_groups_df(back, group="type_1")
    table = back.uns["scvi_de"]
    type_1 = table[table["group1"] == "type_1"].set_index("gene")
    assert len(frame) == 60 and frame["logfoldchanges"].to_numpy() == pytest.approx(
        type_1.loc[frame["names"], "lfc_mean"].to_numpy(), abs=1e-5)
    import matplotlib

    matplotlib.use("Agg")
    sc.pl.rank_genes_groups_dotplot(back, n_genes=3, show=False)
    # "none" leaves the results out
    app.selectbox(key=f"export_de_{run_id}").set_value("")  # shown as "none"
    run_clean(app)
    assert "rank_genes_groups" not in texts(app)
