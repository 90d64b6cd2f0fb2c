"""A scvi-tools model opened in a real browser (issue 22): a zip of scvi-tools' AUTOZI folder (tests/data/scvi_tools)
uploaded on the Load data page becomes a run; its UMAP is drawn on the Latent space page; the Export page's
scvi-tools download is a folder that opens as the same model. Screenshots for the README."""

import zipfile
from pathlib import Path

import numpy as np

from scvi_core.model import load_model
from tests.browser.conftest import assert_no_exception, wait_until_idle
from tests.browser.test_browser_results import shoot
from tests.browser.test_browser_training import open_page

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "scvi_tools"


def test_an_uploaded_scvi_tools_model_reaches_its_umap_and_goes_back_to_scvi_tools(page, tmp_path):
    archive = tmp_path / "autozi_from_scvi_tools.zip"
    with zipfile.ZipFile(archive, "w") as opened:
        for path in (FIXTURES / "autozi").iterdir():
            opened.write(path, f"autozi/{path.name}")
    page.get_by_text("A trained model", exact=True).click()
    wait_until_idle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(archive))
    wait_until_idle(page)
    page.get_by_role("button", name="Open model").click()
    page.get_by_text("Opened 'autozi_from_scvi_tools.zip' as run").wait_for()
    wait_until_idle(page)
    assert_no_exception(page)
    shoot(page, "open_scvi_tools_model")

    page.get_by_test_id("stMainBlockContainer").get_by_role("link", name="Latent space").click()
    page.get_by_role("heading", name="Latent space (UMAP)").wait_for()
    page.locator(".js-plotly-plot").first.wait_for(timeout=120_000)
    wait_until_idle(page)
    assert_no_exception(page)
    assert "autozi_from_scvi_tools.zip" in page.get_by_role("combobox", name="Run").input_value()
    shoot(page, "open_scvi_tools_model_umap")

    open_page(page, "Export")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download for scvi-tools (.zip)").click()
    saved = tmp_path / "for_scvi_tools.zip"
    download.value.save_as(saved)
    with zipfile.ZipFile(saved) as back:
        assert [Path(n).name for n in back.namelist()] == ["model.pt"]
    again = load_model(saved, load_model(FIXTURES / "autozi").adata)
    np.testing.assert_allclose(again.get_latent_representation(),
                               np.load(FIXTURES / "autozi_expected.npz")["latent"], rtol=1e-5, atol=1e-6)
