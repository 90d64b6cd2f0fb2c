"""The Load data page through Streamlit's AppTest: demo, every upload format, server-side files, and every bad
input showing its message (never a traceback)."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import scanpy as sc
import scipy.sparse as sp
from streamlit import config

from scvi_core import io
from tests import datafiles


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def sidebar(at) -> str:
    return texts(at.sidebar.markdown)


def upload(at, files: dict[str, bytes]):
    at.radio(key="source").set_value("Upload files").run()
    at.file_uploader(key="upload").set_value([(n, c, "application/octet-stream") for n, c in files.items()]).run()
    at.button(key="read_upload").click().run()
    return at


def open_server_file(at, name: str):
    at.radio(key="source").set_value("Data directory").run()
    at.text_input(key="server_path").set_value(name).run()
    at.button(key="open_server_file").click().run()
    return at


def assert_clean(at):
    assert not at.exception, texts(at.exception)


def test_demo_loads_summarises_and_prepares(app):
    assert "nothing loaded yet" in sidebar(app)
    app.button(key="load_demo").click().run()
    assert_clean(app)
    assert metrics(app)["Cells"] == "2,000" and metrics(app)["Genes"] == "500"
    assert len(app.get("plotly_chart")) == 2
    assert "Demo (quick)" in sidebar(app) and "(not prepared)" in sidebar(app)
    assert app.selectbox(key="batch_key").value == "batch"
    assert app.selectbox(key="labels_key").value == "cell_type"
    app.button(key="FormSubmitter:prepare-Prepare data").click().run()
    assert_clean(app)
    assert "Prepared 2,000 cells × 500 genes" in texts(app.success)
    assert "**Batch key:** batch" in sidebar(app) and "**Label key:** cell_type" in sidebar(app)


def test_large_demo(app):
    app.selectbox(key="demo_size").set_value("large").run()
    app.button(key="load_demo").click().run()
    assert_clean(app)
    assert metrics(app)["Cells"] == "20,000" and "Demo (large)" in sidebar(app)


def tiny_uploads():
    tiny = datafiles.tiny_counts()
    return {
        "h5ad": {"tiny.h5ad": datafiles.h5ad_bytes(tiny)},
        "10x h5": {"filtered_feature_bc_matrix.h5": datafiles.tenx_h5_bytes(tiny)},
        "mtx triplet": datafiles.mtx_files(tiny),
        "mtx triplet, Cell Ranger 2": datafiles.mtx_files(tiny, compressed=False),
        "mtx zip": {"sample.zip": datafiles.zip_bytes(datafiles.mtx_files(tiny))},
        "csv": {"tiny.csv": datafiles.table_bytes(tiny)},
        "tsv.gz genes × cells": {"t.tsv.gz": datafiles.gzip_bytes(datafiles.table_bytes(tiny, "\t", True))},
    }


@pytest.mark.parametrize("kind", list(tiny_uploads()))
def test_every_upload_format(app, kind):
    upload(app, tiny_uploads()[kind])
    assert_clean(app)
    assert not app.error, texts(app.error)
    assert metrics(app)["Cells"] == str(datafiles.N_CELLS) and metrics(app)["Genes"] == str(datafiles.N_GENES)


@pytest.mark.parametrize("kind", ["h5ad", "10x_h5", "zip", "csv", "tsv_gz"])
def test_every_server_side_format(app, data_dir, kind):
    written = datafiles.write_all(data_dir, datafiles.tiny_counts())
    app.radio(key="source").set_value("Data directory").run()
    assert set(app.selectbox(key="server_file").options) == {p.name for p in written.values()}
    app.selectbox(key="server_file").set_value(written[kind].name).run()
    app.button(key="open_server_file").click().run()
    assert_clean(app)
    assert metrics(app)["Cells"] == str(datafiles.N_CELLS)


def test_table_orientation_can_be_overridden(app):
    tiny = datafiles.tiny_counts()
    app.radio(key="source").set_value("Upload files").run()
    app.radio(key="orientation").set_value(io.CELLS_BY_GENES).run()
    app.file_uploader(key="upload").set_value(("t.csv", datafiles.table_bytes(tiny, genes_by_cells=True), "text/csv"))
    app.run().button(key="read_upload").click().run()
    assert metrics(app)["Cells"] == str(datafiles.N_GENES)  # read as asked, even though it is the wrong way round


def bad_table(values) -> bytes:
    rows = ["cell,g1,g2,g3"] + [f"c{i},{','.join(str(v) for v in row)}" for i, row in enumerate(values)]
    return ("\n".join(rows) + "\n").encode()


BAD_UPLOADS = {
    "empty file": ({"x.h5ad": b""}, "is empty (0 bytes)"),
    "truncated h5ad": ({"x.h5ad": datafiles.h5ad_bytes(datafiles.tiny_counts())[:4000]}, "truncated or corrupt"),
    "csv with an .h5ad name": ({"x.h5ad": bad_table([[1, 2, 3]])}, "looks like a text file"),
    "text in the matrix": ({"t.csv": bad_table([[1, 2, 3], [4, "high", 6]])}, "'high' in row 'c1', column 'g2'"),
    "one mtx file only": ({"matrix.mtx.gz": b"x"}, "missing: features.tsv(.gz), barcodes.tsv(.gz)"),
    "corrupt zip": ({"x.zip": b"PK\x03\x04nonsense"}, "not a readable .zip"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_uploads_show_a_message(app, case):
    files, expected = BAD_UPLOADS[case]
    upload(app, files)
    assert_clean(app)
    assert expected in texts(app.error)
    assert "nothing loaded yet" in sidebar(app)


BAD_VALUES = {
    "negative": ([[1, -2, 3], [4, 5, 6]], "negative value (-2)"),
    "NaN": ([[1, "", 3], [4, 5, 6]], "missing or infinite values"),
    "non-integer": ([[1.37, 0.5, 2.2], [0.1, 1.5, 2.5]], "values look log-normalised"),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_values_that_are_not_counts_are_explained(app, case):
    values, expected = BAD_VALUES[case]
    upload(app, {"t.csv": bad_table(values)})
    assert_clean(app)
    assert expected in texts(app.error)
    assert not app.get("form"), "preparation must not be offered for data that are not counts"


def test_counts_are_found_in_a_layer_and_a_wrong_choice_is_explained(app):
    adata = datafiles.tiny_counts()
    adata.layers["counts"] = adata.X.copy()
    adata.X = sp.csr_matrix(np.log1p(adata.X.toarray()) + 0.37)
    upload(app, {"lognorm.h5ad": datafiles.h5ad_bytes(adata)})
    place = next(s for s in app.selectbox if s.key.startswith("counts_place"))
    assert place.value == "counts" and not app.error
    place.select_index(0).run()  # X
    assert "values look log-normalised" in texts(app.error)
    assert "choose the layer that holds raw counts" in texts(app.error)


def test_duplicate_names_are_made_unique_with_a_notice(app):
    tiny = datafiles.tiny_counts()
    names = list(tiny.var_names)
    names[2] = names[1]
    upload(app, {"dup.h5": datafiles.tenx_h5_bytes(tiny, names)})
    assert_clean(app)
    assert "duplicate gene names (e.g. 'Gene1') were made unique" in texts(app.info)


def test_nothing_left_after_filtering(app):
    app.button(key="load_demo").click().run()
    app.number_input(key="min_counts").set_value(10**8)
    app.button(key="FormSubmitter:prepare-Prepare data").click().run()
    assert_clean(app)
    assert "No cells left" in texts(app.error)
    assert "(not prepared)" in sidebar(app)


def test_upload_over_the_limit_is_refused(app):
    config.set_option("server.maxUploadSize", 1)
    try:
        upload(app, {"big.csv": b"x" * (2 * 1024**2)})
    finally:
        config.set_option("server.maxUploadSize", 4096)
    assert "over the limit of 1 MB" in texts(app.error) and "data directory" in texts(app.error)


@pytest.mark.parametrize("name", ["../outside.h5ad", "/etc/passwd"])
def test_server_paths_outside_the_data_directory_are_refused(app, data_dir, name):
    (data_dir.parent / "outside.h5ad").write_bytes(datafiles.h5ad_bytes(datafiles.tiny_counts()))
    open_server_file(app, name)
    assert_clean(app)
    assert "outside the data directory" in texts(app.error)


def test_100k_cells_from_the_data_directory(app, data_dir):
    datafiles.write_big_h5ad(data_dir / "big.h5ad")
    open_server_file(app, "big.h5ad")
    assert_clean(app)
    assert metrics(app)["Cells"] == "100,000"
    assert "barcode (too many categories (100,000)" in texts(app.caption)


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.mark.skipif(not SHARED.is_dir(), reason="real data in ../shared is not available")
def test_real_pbmc_batches_prepare_with_batch_aware_gene_selection(app, data_dir):
    shutil.copy(SHARED / "pbmc_3batches_10x" / "pbmc_3batches_10x.h5ad", data_dir)
    open_server_file(app, "pbmc_3batches_10x.h5ad")
    assert metrics(app)["Cells"] == "2,860" and metrics(app)["Genes"] == "11,221"
    assert "barcode (too many categories (2,860)" in texts(app.caption)
    assert app.selectbox(key="batch_key").value == "batch"
    assert app.number_input(key="n_top_genes").value == 2000
    app.button(key="FormSubmitter:prepare-Prepare data").click().run()
    assert_clean(app)
    assert "× 2,000 genes" in texts(app.success)
    assert "per batch of 'batch'" in texts(app.caption)


def test_wrong_extension_in_the_data_directory(app, data_dir):
    (data_dir / "counts.xlsx").write_bytes(b"PK\x03\x04")
    open_server_file(app, "counts.xlsx")
    assert "unsupported file type" in texts(app.error)


def test_public_download_offline_shows_a_message(app, monkeypatch):
    def offline():
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(sc.datasets, "pbmc3k", offline)
    app.radio(key="source").set_value("Public dataset (download)").run()
    app.button(key="download_pbmc3k").click().run()
    assert_clean(app)
    assert "seems to be offline" in texts(app.error)


PLACEHOLDERS = {
    "pages/2_model.py": "Load and prepare data first",
    "pages/3_training.py": "Configure a model first",
    "pages/4_latent_space.py": "train a model first",
    "pages/5_zero_inflation.py": "train a model first",
    "pages/6_export.py": "train a model first",
}


@pytest.mark.parametrize("page", list(PLACEHOLDERS))
def test_later_pages_say_what_is_needed_first(app, page):
    app.switch_page(page).run()
    assert_clean(app)
    assert PLACEHOLDERS[page] in texts(app.info)
    assert "nothing loaded yet" in sidebar(app)


def test_app_starts_on_the_prepared_demo(data_dir, monkeypatch, request):
    """By default a new session opens with the quick demo loaded and prepared, ready for the Model page."""
    monkeypatch.setenv("SCVI_DASHBOARD_DEMO", "1")
    app = request.getfixturevalue("app")
    assert_clean(app)
    assert "Demo (quick)" in sidebar(app) and "2,000 × 500" in sidebar(app) and "batch" in sidebar(app)
    assert "loaded and prepared" in texts(app.info)
    workspace = app.session_state["workspace"]
    assert workspace.prepared is not None and workspace.labels_key == "cell_type"
    app.switch_page("pages/2_model.py").run()
    assert_clean(app)
    assert "Load and prepare data first" not in texts(app.info)


def test_real_pbmc_demo_loads_with_batch_as_the_batch_key(app):
    """The shipped real dataset (no ../shared, no download) is offered under Demo data, with 'batch' pre-selected."""
    app.selectbox(key="demo_size").set_value("pbmc").run()
    assert "Real data" in texts(app.caption) and "No ground truth" in texts(app.caption)
    app.button(key="load_demo").click().run()
    assert_clean(app)
    assert not app.error, texts(app.error)
    assert metrics(app)["Cells"] == "2,860" and metrics(app)["Genes"] == "2,000"
    assert "PBMC 3 batches (real)" in sidebar(app) and "(not prepared)" in sidebar(app)
    assert app.selectbox(key="batch_key").value == "batch"
    assert app.selectbox(key="labels_key").value is None
    assert app.number_input(key="n_top_genes").value == 0  # already 2,000 selected genes: keep them all
    app.button(key="FormSubmitter:prepare-Prepare data").click().run()
    assert_clean(app)
    assert "Prepared 2,860 cells × 2,000 genes" in texts(app.success)
    assert "**Batch key:** batch" in sidebar(app) and "**Label key:** none" in sidebar(app)
