"""Differential expression in a real browser, on the real PBMC demo (an scVI run trained for the test, 30 epochs):
find the markers of every Leiden cluster with one click, see the volcano and the table, pick a gene by clicking a
volcano point and by typing its name, download the table, and colour the UMAP by the gene. Screenshots for the
README: docs/screenshots/de_volcano.png and de_markers.png."""

import io
import re

import pandas as pd
import pytest

from dashboard import embeddings
from dashboard.runs import RunStore
from scvi_core import embedding
from scvi_core.datasets import pbmc_3batches
from tests.browser.conftest import SCREENSHOTS, assert_no_exception, wait_until_idle
from tests.browser.test_browser_results import choose, go_to
from tests.tiny_run import write_run

TITLE = "Differential expression"
POINT_AT_LARGEST_FOLD_CHANGE = """() => {
    const plot = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
    const layout = plot._fullLayout, box = plot.getBoundingClientRect();
    let best = null;
    for (const trace of plot._fullData) {
        trace.x.forEach((x, i) => {
            if (!best || x > best.x) best = {x: x, y: trace.y[i], gene: trace.customdata[i][0]};
        });
    }
    return {gene: best.gene, left: box.left + layout._size.l + layout.xaxis.d2p(best.x),
            top: box.top + layout._size.t + layout.yaxis.d2p(best.y)};
}"""


@pytest.fixture(scope="module")
def pbmc_run(dashboard):
    """A finished scVI run on the PBMC demo in the dashboard's runs directory, its default UMAP / Leiden cached
    (computed in this process, so the server does not compile numba for it)."""
    store = RunStore(dashboard.data_dir.parent / "runs")
    run_id = write_run(store.root, pbmc_3batches(), "SCVI", 30, "PBMC 3 batches (real)", model_params={}, lr=3e-3,
                       batch_size=256)
    embeddings.cached(store.embeddings_dir(run_id), store.read_latent(run_id), embedding.EmbeddingParams())
    return store, run_id


def shoot(page, name: str, locator, height: int = 1000):
    """A screenshot of the viewport with ``locator`` at its top (Streamlit scrolls inside its own container)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": height})
    locator.evaluate("element => element.scrollIntoView({block: 'start'})")
    page.mouse.move(0, 0)  # off the button just clicked, whose help tooltip would cover the page
    page.wait_for_timeout(700)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def test_markers_of_every_cluster_volcano_table_and_gene(page, pbmc_run, tmp_path):
    store, run_id = pbmc_run
    go_to(page, TITLE, run_id)
    page.get_by_text("Not computed yet").wait_for()
    page.get_by_text(re.compile("Is a random cell of A at least δ above")).wait_for()  # scVI's change mode, the default
    page.get_by_text("Advanced: posterior samples, seed").click()
    samples = page.get_by_role("spinbutton", name="Posterior samples")
    samples.fill("1000")
    samples.press("Enter")
    wait_until_idle(page)
    page.get_by_role("button", name="Find markers").click()
    volcano = page.locator(".js-plotly-plot").first
    page.get_by_text(re.compile(r"^cluster 0 vs rest: [0-9,]+ genes up, [0-9,]+ down")).wait_for(timeout=300_000)
    wait_until_idle(page)
    assert_no_exception(page)
    assert volcano.locator(".legendtext").count() in (2, 3)  # up / down / not DE: plotly leaves an empty one out
    page.get_by_text(re.compile(r"^[0-9,]+ of 2,000 genes, most convincing first")).wait_for()
    page.get_by_text(re.compile(r"^scVI change mode \(Boyeau et al\.\): δ = 0\.25")).wait_for()
    page.locator('[data-testid="stDataFrame"]').last.wait_for()
    shoot(page, "de_volcano", page.get_by_role("heading", name=TITLE), height=1700)  # the question, then its answer

    # the markers view: dot plot and heatmap of the top genes of every cluster
    page.get_by_text("Top markers of each group").wait_for()
    page.get_by_text("Marker genes in single cells").wait_for()
    assert_no_exception(page)
    shoot(page, "de_markers", page.get_by_role("heading", name="Markers of each group"), height=1500)
    page.set_viewport_size({"width": 1400, "height": 1000})

    # a click on the volcano's rightmost point picks that gene for the gene view
    volcano.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    point = page.evaluate(POINT_AT_LARGEST_FOLD_CHANGE)
    page.mouse.click(point["left"], point["top"])
    page.get_by_text(re.compile(rf"^{re.escape(point['gene'])}: log2 fold change \+")).wait_for()
    wait_until_idle(page)
    assert_no_exception(page)

    # typing a gene's name picks it too
    choose(page, "Gene", "MS4A1")
    page.get_by_text("MS4A1: denoised expression per group").wait_for()
    assert_no_exception(page)

    # the table downloads as shown
    with page.expect_download() as download:
        page.get_by_role("button", name="Download this table (CSV)").click()
    table = pd.read_csv(io.BytesIO(open(download.value.path(), "rb").read()))
    assert len(table) > 100 and {"gene", "lfc_mean", "proba_de", "pct1", "pct2"} <= set(table.columns)
    higher = table["pct1"].where(table["lfc_mean"] > 0, table["pct2"])
    assert (higher >= 10).all()  # the default filter: genes expressed in at least 10% of the group where higher

    # and the UMAP is coloured by the chosen gene on the Latent space page
    page.get_by_role("button", name="Colour the UMAP by MS4A1").click()
    page.get_by_role("heading", name="Latent space (UMAP)").wait_for()
    page.locator(".js-plotly-plot .colorbar").get_by_text("MS4A1 (denoised)").wait_for()
    assert_no_exception(page)
