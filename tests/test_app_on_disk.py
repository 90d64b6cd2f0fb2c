"""The dashboard on a file of the data directory too large to load: opened on disk, summarised in chunks, prepared
as it is, and trained by a worker that opens the file on disk too (AppTest)."""

import anndata as ad
import numpy as np
import pytest

from dashboard import settings
from dashboard.runs import RunStore
from scvi_core import simulate
from scvi_core.data import _ondisk as ondisk
from scvi_core.data import get_counts
from tests.test_app_differential_expression import array, charts
from tests.test_app_load_data import metrics, open_server_file, texts
from tests.test_app_model_training import assert_clean, poll, start, state_of, stop_everything, tiny_settings


def test_a_large_file_opens_on_disk_and_trains_as_it_is(app, data_dir, monkeypatch):
    monkeypatch.setenv(settings.ON_DISK_ABOVE_ENV, "0")  # every .h5ad counts as too large to load
    simulate(n_cells=400, n_genes=50, seed=3).write_h5ad(data_dir / "atlas.h5ad")
    at = open_server_file(app, "atlas.h5ad")
    assert_clean(at)
    assert "Opened on disk" in texts(at.info) and metrics(at)["Cells"] == "400"
    workspace = at.session_state["workspace"]
    assert workspace.on_disk and isinstance(get_counts(workspace.original), ondisk.DiskMatrix)
    assert "min_counts" not in [widget.key for widget in at.number_input]  # no filters for a file on disk
    at.button(key="FormSubmitter:prepare-Prepare data").click().run()
    assert_clean(at)
    assert "trains on all 400 cells × 50 genes as they are" in texts(at.caption)
    at.switch_page("pages/2_model.py").run()
    try:
        run_id = start(tiny_settings(at, epochs=2))
        poll(at, lambda a: "finished" in state_of(a), timeout=120)
    finally:
        stop_everything()
    store = RunStore(settings.runs_dir())
    config = store.read_config(run_id)
    assert config["on_disk"]["path"] == str((data_dir / "atlas.h5ad").resolve())
    assert not (store.path(run_id) / "data.h5ad").exists()  # the worker opened the file, no copy was made
    model = store.load_model(run_id)
    assert model.data.on_disk and model.is_trained
    np.testing.assert_array_equal(store.read_latent(run_id), model.get_latent_representation())
    counts = get_counts(ad.read_h5ad(data_dir / "atlas.h5ad")).toarray()

    at.switch_page("pages/4_latent_space.py").run()  # counts per cell and of one gene, read from the file
    at.selectbox(key="colour_by").set_value("counts").run()
    assert_clean(at)
    assert colour_values(at) == pytest.approx(counts.sum(axis=1)[chart_cells(at)])
    at.selectbox(key="colour_by").set_value("gene").run()
    at.selectbox(key="colour_gene").set_value("gene_00007").run()
    at.radio(key="colour_kind").set_value("raw counts").run()
    assert_clean(at)
    assert colour_values(at) == pytest.approx(counts[:, 7][chart_cells(at)])

    at.switch_page("pages/5_zero_inflation.py").run()
    assert_clean(at)
    assert config["model"] == "AUTOZI" and len(at.dataframe[0].value) == 50  # the table, one row per gene

    at.switch_page("pages/6_export.py").run()  # the results without X, and code that trains on the file itself
    assert_clean(at)
    assert f"without X (the counts stay in `{config['on_disk']['path']}`" in texts(at.markdown)
    snippet = at.code[0].value
    compile(snippet, "snippet", "exec")
    assert f"ad.read_h5ad({config['on_disk']['path']!r}, backed='r')" in snippet


def chart_cells(at) -> np.ndarray:
    """The cells of the UMAP's points, in the figure's order (customdata carries each point's cell index)."""
    return np.concatenate([array(trace["customdata"]) for trace in charts(at)[0]["data"]]).astype(int)


def colour_values(at) -> np.ndarray:
    return np.concatenate([array(trace["marker"]["color"]).astype(float) for trace in charts(at)[0]["data"]])
