"""Real-browser fixtures: a ``streamlit run app.py`` server on a free port and Debian's headless Chromium.

Reusable by every browser test: ``dashboard`` (session-scoped server, its URL and data directory), ``browser``
(session-scoped Chromium) and ``page`` (a fresh browser tab, i.e. a fresh dashboard session, per test).
Without /usr/bin/chromium the tests are skipped, except in CI (env ``CI`` set), where that is a failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
]
SCREENSHOTS = ROOT / "docs" / "screenshots"


@dataclass
class Dashboard:
    url: str
    data_dir: Path
    sessions_dir: Path
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"streamlit did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (Debian package 'chromium')"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: browser tests are mandatory in CI.")
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="session")
def dashboard(tmp_path_factory) -> Dashboard:
    """``streamlit run app.py`` headless on a free localhost port, with its data and runs dirs in tmp."""
    with serve(tmp_path_factory.mktemp("dashboard")) as server:
        yield server


@contextmanager
def serve(tmp: Path, env: dict | None = None):
    """A dashboard server whose data, runs and sessions folders are in ``tmp``, with ``env`` added to its
    environment (e.g. a Dask cluster to train on); ended when the block ends."""
    (tmp / "data").mkdir()
    port = free_port()
    env = os.environ | {"SCVI_DASHBOARD_DATA_DIR": str(tmp / "data"), "SCVI_DASHBOARD_RUNS_DIR": str(tmp / "runs"),
                        "SCVI_DASHBOARD_SESSIONS_DIR": str(tmp / "sessions")} | (env or {})
    log = tmp / "streamlit.log"
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
               str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    with log.open("w") as log_file:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, log)
        yield Dashboard(url=url, data_dir=tmp / "data", sessions_dir=tmp / "sessions", log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, dashboard):
    """A new tab on the dashboard (a new Streamlit session), fully rendered: the sidebar's Workspace heading is
    drawn after the page, so once it shows, the first run is complete."""
    context, tab = open_session(browser, dashboard.url)
    yield tab
    context.close()


def open_session(browser, url: str, timeout_ms: int = 60_000):
    """A new browser context (its own cookies: a new Streamlit session) with one tab on ``url``, fully rendered."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(timeout_ms)
    tab.goto(url)
    tab.get_by_role("heading", name="Workspace").wait_for()
    wait_until_idle(tab)
    return context, tab


def wait_until_idle(page) -> None:
    """Wait until Streamlit has finished the current script run (its running indicator is gone)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=60_000)


def assert_no_exception(page) -> None:
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.first.inner_text()
