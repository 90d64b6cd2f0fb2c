"""Smoke test in a real browser: load the demo, see the summary, prepare, visit every page, upload files. No page
may show a Streamlit exception. Screenshots for the README are saved to docs/screenshots/."""

from playwright.sync_api import expect

from tests import datafiles
from tests.browser.conftest import SCREENSHOTS, assert_no_exception, wait_until_idle

PAGES = {  # page title → README screenshot; None: another browser test takes it
    "Model": None,
    "Training": None,
    "Latent space (UMAP)": None,
    "Zero-inflation": None,
    "Differential expression": None,
    "Export": None,
}


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_demo_summary_and_every_page(page):
    # the app opens on the prepared quick demo: wait until its summary and charts are drawn, not their placeholders
    page.get_by_text("Median counts per cell").first.wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    wait_until_idle(page)
    assert_no_exception(page)
    screenshot(page, "start")
    page.get_by_role("button", name="Load demo data").click()
    page.get_by_text("Median counts per cell").first.wait_for()  # a rerun may briefly show it twice
    page.locator(".js-plotly-plot").first.wait_for()
    wait_until_idle(page)
    assert_no_exception(page)
    assert "Demo (quick)" in page.locator('[data-testid="stSidebar"]').inner_text()

    page.get_by_role("button", name="Prepare data").first.click()  # a rerun can briefly show the form twice
    page.get_by_text("Prepared 2,000 cells × 500 genes").first.wait_for()
    wait_until_idle(page)
    assert_no_exception(page)
    page.set_viewport_size({"width": 1400, "height": 2000})
    screenshot(page, "load_data")
    page.set_viewport_size({"width": 1400, "height": 1000})

    for title, name in PAGES.items():
        page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
        page.get_by_role("heading", name=title).wait_for()
        wait_until_idle(page)
        assert_no_exception(page)
        assert "Batch key: batch" in page.locator('[data-testid="stSidebar"]').inner_text()
        if name:
            screenshot(page, name)


def test_upload_in_the_browser(page, tmp_path):
    tiny = datafiles.tiny_counts()
    files = []
    for name, content in datafiles.mtx_files(tiny).items():
        (tmp_path / name).write_bytes(content)
        files.append(str(tmp_path / name))
    page.get_by_text("Upload files").click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(files)
    page.get_by_role("button", name="Read uploaded files").click()
    # The demo is loaded at start, so wait for the upload to replace it (not merely for a summary).
    expect(page.locator('[data-testid="stSidebar"]')).to_contain_text("30 × 12", timeout=60_000)
    page.get_by_text("Median counts per cell").first.wait_for()  # a rerun may briefly show it twice
    wait_until_idle(page)
    assert_no_exception(page)


def test_bad_upload_shows_a_message_in_the_browser(page, tmp_path):
    (tmp_path / "broken.h5ad").write_bytes(b"not an h5ad at all")
    page.get_by_text("Upload files").click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(tmp_path / "broken.h5ad"))
    page.get_by_role("button", name="Read uploaded files").click()
    page.locator('[data-testid="stAlert"]').filter(has_text="looks like a text file").wait_for()
    wait_until_idle(page)
    assert_no_exception(page)
    screenshot(page, "bad_upload")
