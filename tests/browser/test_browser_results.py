"""Results pages in a real browser, on an AutoZI run trained for the test (600 cells × 100 genes, 40 epochs, ~5 s):
the UMAP chart is drawn, colours by a gene, a box selection becomes a saved group; the Zero-inflation page finds a
gene and opens its detail; the exported .h5ad and model zip download and load. Screenshots for the README."""

import re

import anndata as ad
import numpy as np
import pytest

from dashboard import embeddings, groups
from scvi_core import embedding
from scvi_core.model import load_model
from dashboard.runs import RunStore
from tests.browser.conftest import SCREENSHOTS, assert_no_exception, wait_until_idle
from tests.tiny_run import write_tiny_run

GENE = "gene_00054"  # a simulated zero-inflated gene (var["is_zero_inflated"])


@pytest.fixture(scope="module")
def demo_run(dashboard):
    """A finished AutoZI run in the dashboard's runs directory, its default UMAP cached (computed in this process,
    so the server does not compile numba a second time)."""
    store = RunStore(dashboard.data_dir.parent / "runs")
    run_id = write_tiny_run(store.root, "AUTOZI", n_cells=600, n_genes=100, max_epochs=40)
    embeddings.cached(store.embeddings_dir(run_id), store.read_latent(run_id), embedding.EmbeddingParams())
    return store, run_id


def go_to(page, title: str, run_id: str):
    """Open a results page from the sidebar and choose ``run_id`` in its run picker."""
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title).wait_for()
    wait_until_idle(page)
    picker = page.locator('[data-testid="stSelectbox"]').filter(has_text="Run").first
    if run_id not in picker.inner_text():
        picker.click()
        page.get_by_role("option", name=re.compile(run_id)).click()
        wait_until_idle(page)
    assert_no_exception(page)


def choose(page, label: str, option: str):
    """Pick ``option`` in a selectbox, typing it first (long option lists are virtualised)."""
    page.get_by_role("combobox", name=label, exact=True).click()
    page.keyboard.type(option)
    page.get_by_role("option", name=option, exact=True).click()
    wait_until_idle(page)


def shoot(page, name: str, full_page: bool = True):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def test_latent_space_chart_box_selection_and_gene_colour(page, demo_run):
    store, run_id = demo_run
    go_to(page, "Latent space (UMAP)", run_id)
    chart = page.locator(".js-plotly-plot").first
    chart.wait_for()
    assert chart.locator(".legendtext").count() >= 3  # one legend entry (trace) per Leiden cluster
    page.set_viewport_size({"width": 1400, "height": 1300})
    shoot(page, "latent_space", full_page=False)

    # box-select the left half of the plot area (coloured by cluster: one trace each), save it as a group
    chart.hover()
    chart.locator('[data-title="Box Select"]').click()
    area = chart.locator(".nsewdrag").first.bounding_box()
    page.mouse.move(area["x"] + 2, area["y"] + 2)
    page.mouse.down()
    page.mouse.move(area["x"] + area["width"] / 2, area["y"] + area["height"] - 2, steps=8)
    page.mouse.up()
    page.get_by_text(re.compile(r"^[1-9][0-9,]* cells selected\.$")).wait_for()
    wait_until_idle(page)
    page.get_by_label("Group name").fill("left half")
    page.get_by_role("button", name="Save selected cells as a group").click()
    page.get_by_text("Saved group 'left half'").wait_for()
    wait_until_idle(page)
    assert_no_exception(page)
    # the saved cells are exactly the leftmost ones: read from customdata, not from per-trace point indices
    saved = groups.read_groups(store.groups_file(run_id))["left half"]
    umap = embeddings.cached(store.embeddings_dir(run_id), store.read_latent(run_id), embedding.EmbeddingParams())
    x = umap.umap[:, 0]
    others = np.setdiff1d(np.arange(len(x)), saved)
    assert 0 < len(saved) < len(x) and x[saved].max() < x[others].min()

    choose(page, "Colour by", "A gene")
    choose(page, "Gene", GENE)
    page.locator(".js-plotly-plot .colorbar").get_by_text(f"{GENE} (denoised)").wait_for()
    assert_no_exception(page)


def test_zero_inflation_search_and_gene_detail(page, demo_run):
    _, run_id = demo_run
    go_to(page, "Zero-inflation", run_id)
    page.get_by_text("True ZI genes found").wait_for()
    page.locator('[data-testid="stDataFrame"]').first.wait_for()
    page.set_viewport_size({"width": 1400, "height": 1400})
    shoot(page, "zero_inflation", full_page=False)

    page.get_by_text("(the answer) asks").wait_for()  # what each of the two answers asks
    page.get_by_text("Disagreements only").click()
    wait_until_idle(page)
    page.get_by_text(re.compile(r"^\d+ of 100 rows")).wait_for()
    page.get_by_text("Disagreements only").click()
    wait_until_idle(page)
    page.get_by_text("100 of 100 rows").wait_for()

    page.get_by_label("Search genes").fill(GENE)
    page.get_by_label("Search genes").press("Enter")
    wait_until_idle(page)
    page.get_by_text("1 of 100 rows").wait_for()
    detail = page.get_by_role("heading", name="Gene detail")
    detail.scroll_into_view_if_needed()
    page.get_by_text(f"AutoZI's posterior of δ for {GENE}").wait_for()  # the call is AutoZI's own
    page.get_by_text(f"Counts of {GENE}").wait_for()
    page.get_by_text("check: ZINB").first.wait_for()  # the check's own refits are drawn beside AutoZI's
    assert page.get_by_role("combobox", name="Gene", exact=True).input_value() == GENE  # the box shows the gene
    assert_no_exception(page)
    page.set_viewport_size({"width": 1400, "height": 900})
    detail.evaluate("heading => heading.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(500)
    shoot(page, "gene_detail", full_page=False)


def test_export_downloads_load_back(page, demo_run, tmp_path):
    store, run_id = demo_run
    go_to(page, "Export", run_id)
    page.get_by_role("heading", name="Reproduce this run in Python").wait_for()
    shoot(page, "export")
    with page.expect_download(timeout=150_000) as download:  # the file is written on the click: slow on a busy machine
        page.get_by_role("button", name="Download .h5ad").click()
    path = tmp_path / "export.h5ad"
    download.value.save_as(path)
    exported = ad.read_h5ad(path)
    assert {"X_scVI", "X_umap"} <= set(exported.obsm) and "leiden" in exported.obs
    assert "autozi_prob_zero_inflated" in exported.var and exported.uns["scvi_dashboard"]["run_id"] == run_id
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the model (.zip)").click()
    download.value.save_as(tmp_path / "model.zip")
    model = load_model(tmp_path / "model.zip", store.load_adata(run_id))
    assert np.allclose(model.get_latent_representation(), exported.obsm["X_scVI"], atol=1e-5)
    assert_no_exception(page)
