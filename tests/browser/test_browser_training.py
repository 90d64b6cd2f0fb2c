"""Training in a real browser: configure a quick run on the demo, start it, watch the curve gain points, reload the
tab mid-run and find the job still going, stop it, and find it in the run list. Saves the Model and Training
screenshots for the README."""

import re

from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS, assert_no_exception, open_session, wait_until_idle

CURVE_POINTS = """() => {
    const plot = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
    return plot && plot._fullData && plot._fullData.length ? plot._fullData[0].x.length : 0;
}"""


def screenshot(page, name: str, height: int = 2000) -> None:
    """Streamlit scrolls inside its own container, so a tall viewport is what shows the whole page."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": height})
    page.wait_for_timeout(500)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1000})


def open_page(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title, exact=True).wait_for()
    wait_until_idle(page)
    assert_no_exception(page)


def curve_points(page) -> int:
    return page.evaluate(CURVE_POINTS)


def wait_for_points(page, more_than: int, timeout_ms: int = 90_000) -> int:
    page.wait_for_function(f"({CURVE_POINTS})() > {more_than}", timeout=timeout_ms)
    return curve_points(page)


def test_quick_training_live_curve_reload_stop_and_run_list(page):
    page.get_by_role("button", name="Load demo data").click()
    page.get_by_text("Median counts per cell").first.wait_for()  # a rerun may briefly show it twice
    wait_until_idle(page)
    page.get_by_role("button", name="Prepare data").click()
    page.get_by_text("Prepared 2,000 cells × 500 genes").first.wait_for()
    wait_until_idle(page)

    open_page(page, "Model")
    epochs = page.get_by_label("Epochs", exact=True)
    standard_epochs = epochs.input_value()
    page.get_by_role("button", name="Quick look (under a minute)").click()
    expect(epochs).not_to_have_value(standard_epochs)
    wait_until_idle(page)
    epochs.fill("300")  # long enough to reload and stop it mid-way
    epochs.press("Enter")
    wait_until_idle(page)
    page.get_by_text("These settings can be trained.").wait_for()
    early_stopping = page.get_by_role("checkbox", name="Early stopping")
    assert early_stopping.is_checked()  # every preset stops early
    # this run must last long enough to reload the page and stop it mid-way
    page.locator('[data-testid="stCheckbox"]').filter(has_text="Early stopping").locator("label").first.click()
    expect(early_stopping).not_to_be_checked()
    wait_until_idle(page)
    page.locator(".js-plotly-plot").first.wait_for()  # the Beta prior
    assert_no_exception(page)
    screenshot(page, "model")

    open_page(page, "Training")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text(re.compile(r"Epoch \d+ of 300")).wait_for()
    first = wait_for_points(page, 1)
    second = wait_for_points(page, first)  # the curve grows while it trains, without any click
    assert second > first
    assert "run=" in page.url
    assert_no_exception(page)
    wait_for_points(page, 8)
    page.wait_for_timeout(11_000)  # one refresh of the All runs table (10 s): the screenshot shows its row training
    screenshot(page, "training")

    page.reload()  # a new browser session: the run id in the URL reconnects to the running job
    page.get_by_role("heading", name="Training", exact=True).wait_for()
    page.get_by_role("heading", name=re.compile(r"Run .*: running")).wait_for()
    after_reload = wait_for_points(page, 8)
    wait_for_points(page, after_reload)  # still training, still updating

    page.get_by_role("button", name="Stop").click()
    page.get_by_role("heading", name=re.compile(r"Run .*: stopped")).wait_for(timeout=60_000)
    page.get_by_text("the model trained so far was saved").first.wait_for()
    wait_until_idle(page)
    assert_no_exception(page)
    run_id = re.search(r"run=([0-9a-f-]+)", page.url).group(1)
    page.reload()  # the run list as a fresh visit finds it
    page.get_by_role("heading", name=re.compile(r"Run .*: stopped")).wait_for()
    page.wait_for_function(f"""() => {{
        const picker = document.querySelector('input[aria-label="Open a run"]');
        return picker && picker.value.startsWith('{run_id}') && picker.value.includes('stopped');
    }}""")


def configure(page, epochs: int, early_stopping: bool = True) -> None:
    """On the Model page of a session that opened on the prepared demo: the quick preset with ``epochs``."""
    open_page(page, "Model")
    page.get_by_role("button", name="Quick look (under a minute)").click()
    wait_until_idle(page)
    epochs_input = page.get_by_label("Epochs", exact=True)
    epochs_input.fill(str(epochs))
    epochs_input.press("Enter")
    wait_until_idle(page)
    if not early_stopping:
        page.locator('[data-testid="stCheckbox"]').filter(has_text="Early stopping").locator("label").first.click()
        expect(page.get_by_role("checkbox", name="Early stopping")).not_to_be_checked()
        wait_until_idle(page)
    page.get_by_text("These settings can be trained.").wait_for()


def test_two_browser_sessions_both_start_the_second_waits_then_trains(browser, dashboard):
    sessions = [open_session(browser, dashboard.url) for _ in range(2)]
    first, second = (tab for _, tab in sessions)
    try:
        configure(first, 3000, early_stopping=False)
        configure(second, 5)
        open_page(first, "Training")
        first.get_by_role("button", name="Start training").click()
        first.get_by_role("heading", name=re.compile(r"Run .*: running")).wait_for()

        open_page(second, "Training")
        second.get_by_text(re.compile(r"1 run is training or waiting on this server")).wait_for()
        second.get_by_role("button", name="Add to the queue").click()
        second.get_by_role("heading", name=re.compile(r"Run .*: queued")).wait_for()
        second.get_by_text("Waiting in the queue: number 1 of 1").wait_for()
        second.get_by_role("heading", name="Training queue").wait_for()
        assert_no_exception(second)
        screenshot(second, "training_queue", height=1400)

        first.get_by_role("button", name="Stop").click()
        first.get_by_role("heading", name=re.compile(r"Run .*: stopped")).wait_for(timeout=60_000)
        second.get_by_role("heading", name=re.compile(r"Run .*: finished")).wait_for(timeout=90_000)
        second.get_by_text("Ran all 5 epochs").first.wait_for()
        assert_no_exception(second)
    finally:
        for context, _ in sessions:
            context.close()
