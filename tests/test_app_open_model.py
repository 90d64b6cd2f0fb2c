"""Opening a scvi-tools model in the dashboard through AppTest (issue 22): uploaded as a zip or as its files, or
picked in the data directory, on its own cells or on the data loaded in the session, it becomes a run that the
Latent space, Zero-inflation, Differential expression and Export pages show; what cannot be opened says why."""

import io
import shutil
import zipfile
from pathlib import Path

from dashboard.runs import RunStore
from tests.test_app_load_data import assert_clean, texts

FIXTURES = Path(__file__).parent / "data" / "scvi_tools"


def all_text(app) -> str:
    return "\n".join(e.value for kind in ("markdown", "caption", "info", "success", "error", "warning")
                     for e in getattr(app, kind))


def zipped(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in folder.iterdir():
            archive.write(path, f"{folder.name}/{path.name}")
    return buffer.getvalue()


def upload_model(app, files: dict[str, bytes], cells: str = "saved"):
    app.radio(key="source").set_value("A trained model").run()
    app.file_uploader(key="model_upload").set_value([(n, c, "application/octet-stream") for n, c in files.items()])
    app.run()
    if cells != "saved":
        app.radio(key="model_cells").set_value(cells).run()
    app.button(key="open_model").click().run()
    assert_clean(app)
    return app


def open_page(app, page: str):
    app.switch_page(page).run()
    assert_clean(app)
    return app


def test_an_uploaded_zip_becomes_a_run_every_results_page_shows(app, data_dir):
    upload_model(app, {"autozi.zip": zipped(FIXTURES / "autozi")})
    assert "Opened 'autozi.zip' as run" in texts(app.success)
    store = RunStore(data_dir.parent / "runs")
    run_id = store.list_runs().loc[0, "run_id"]
    assert app.session_state["workspace"].current_run_id == run_id
    open_page(app, "pages/4_latent_space.py")
    assert app.selectbox(key="results_run").value == run_id
    assert "AUTOZI · autozi.zip · finished, 5 epochs" in " ".join(app.selectbox(key="results_run").options)
    assert len(app.get("plotly_chart")) == 1  # the UMAP
    open_page(app, "pages/5_zero_inflation.py")
    assert app.dataframe and len(app.dataframe[0].value) == 50
    open_page(app, "pages/7_differential_expression.py")
    app.selectbox(key="de_groupby").set_value("batch").run()
    app.button(key="de_run").click().run()
    assert_clean(app)
    assert "b1: 100 cells used; rest: 100 cells used." in all_text(app)
    assert len(app.dataframe[-1].value) == 49  # one gene filtered out as expressed in too few cells
    open_page(app, "pages/6_export.py")
    labels = [b.label for b in app.get("download_button")]
    assert "Download for scvi-tools (.zip)" in labels and "Download the model (.zip)" in labels
    assert f"AUTOZI.load('model_{run_id}', adata)" in "".join(c.value for c in app.code)


def test_the_files_uploaded_on_the_loaded_data_and_a_folder_of_the_data_directory(app, data_dir):
    shutil.copytree(FIXTURES / "scvi", data_dir / "models" / "my_scvi")
    app.radio(key="source").set_value("Data directory").run()
    app.text_input(key="server_path").set_value("models/my_scvi/adata.h5ad").run()
    app.button(key="open_server_file").click().run()
    assert_clean(app)
    upload_model(app, {"model.pt": (FIXTURES / "scvi" / "model.pt").read_bytes()}, cells="loaded")
    assert "Opened 'model.pt' as run" in texts(app.success)
    store = RunStore(data_dir.parent / "runs")
    assert store.read_config(store.list_runs().loc[0, "run_id"])["dataset_name"] == "adata.h5ad"
    app.radio(key="model_where").set_value("Data directory").run()
    assert "models/my_scvi" in app.selectbox(key="server_model").options
    app.selectbox(key="server_model").set_value("models/my_scvi").run()
    app.radio(key="model_cells").set_value("saved").run()
    app.button(key="open_model").click().run()
    assert_clean(app)
    assert "Opened 'my_scvi' as run" in texts(app.success) and len(store.list_runs()) == 2


def test_what_cannot_be_opened_says_why(app):
    upload_model(app, {"model.pt": (FIXTURES / "scvi" / "model.pt").read_bytes()})
    assert "saved without save_anndata=True" in texts(app.error)
    upload_model(app, {"notes.zip": zipped(Path(__file__).parent / "data" / "runs_before_one_house")})
    assert "should hold one saved model" in texts(app.error)
