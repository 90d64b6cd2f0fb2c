"""Fixtures shared by the dashboard tests: an AppTest of ``app.py`` with its data and runs directories in tmp.

Browser fixtures (a ``streamlit run`` server and headless Chromium) live in ``tests/browser/conftest.py``.
"""

from pathlib import Path

import pytest
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def close_training_services():
    """Every test's dashboard starts its own training service (a dispatcher thread, maybe a spare worker process):
    close them afterwards so that none outlives its test."""
    yield
    import sys

    if "dashboard.services" in sys.modules:
        sys.modules["dashboard.services"].close_all()


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """An empty server-side data directory (SCVI_DASHBOARD_DATA_DIR), and runs and sessions directories next to it."""
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("SCVI_DASHBOARD_DATA_DIR", str(folder))
    monkeypatch.setenv("SCVI_DASHBOARD_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("SCVI_DASHBOARD_SESSIONS_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv("SCVI_DASHBOARD_DEMO", "0")  # page tests start empty; test_app_starts_on_demo checks the default
    return folder


@pytest.fixture
def app(data_dir, monkeypatch) -> AppTest:
    """``app.py`` run once (it opens on the Load data page), ready for interaction.

    AppTest recomputes on every run whether the app uses the old ``pages/`` folder convention, and then runs page
    files without ``app.py`` (so no sidebar, no workspace set-up). A real server stops doing that once ``app.py``
    calls ``st.navigation``; the patch below makes AppTest behave the same way.
    """
    original_init = PagesManager.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)
    return new_app()


def new_app() -> AppTest:
    """A new session of ``app.py`` (its own session state), run once; the :func:`app` fixture sets up the rest."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    return at


@pytest.fixture(scope="session")
def finished_runs(tmp_path_factory) -> dict:
    """A runs directory with one finished AUTOZI run and one finished SCVI run (tiny models, trained once per test
    session), the AUTOZI run's default UMAP already cached: ``{"root": Path, "AUTOZI": run_id, "SCVI": run_id}``.
    Shared: tests that write into it (groups, embeddings) work on a copy, see :func:`runs_copy`."""
    from dashboard import embeddings
    from dashboard.runs import RunStore
    from scvi_core import embedding
    from tests.tiny_run import write_tiny_run

    root = tmp_path_factory.mktemp("finished_runs")
    runs = {"root": root, "AUTOZI": write_tiny_run(root, "AUTOZI"), "SCVI": write_tiny_run(root, "SCVI")}
    store = RunStore(root)
    embeddings.cached(store.embeddings_dir(runs["AUTOZI"]), store.read_latent(runs["AUTOZI"]),
                      embedding.EmbeddingParams())
    return runs


@pytest.fixture
def runs_copy(finished_runs, data_dir, tmp_path, monkeypatch) -> dict:
    """A private copy of :func:`finished_runs`, set as the dashboard's runs directory (SCVI_DASHBOARD_RUNS_DIR,
    replacing the empty one of :func:`data_dir`). Request it before ``app`` so the app starts with these runs."""
    import shutil

    root = tmp_path / "runs_copy"
    shutil.copytree(finished_runs["root"], root)
    monkeypatch.setenv("SCVI_DASHBOARD_RUNS_DIR", str(root))
    return {**finished_runs, "root": root}
