"""Where the dashboard finds its files, read from environment variables.

Why a module: the data directory decides what the Load data page may open from the server (and refuses anything
outside it), and the runs directory is where training runs are stored. Both are read at call time so that tests
and deployments can point them elsewhere without restarting Python.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "SCVI_DASHBOARD_DATA_DIR"
RUNS_DIR_ENV = "SCVI_DASHBOARD_RUNS_DIR"
DEMO_ENV = "SCVI_DASHBOARD_DEMO"


def data_dir() -> Path:
    """The folder whose files can be opened without uploading (default ``./data``), resolved to an absolute path."""
    return Path(os.environ.get(DATA_DIR_ENV, "data")).expanduser().resolve()


def runs_dir() -> Path:
    """The folder where training runs are kept (default ``./runs``), resolved to an absolute path."""
    return Path(os.environ.get(RUNS_DIR_ENV, "runs")).expanduser().resolve()


def start_with_demo() -> bool:
    """Whether a new dashboard session opens with the quick demo loaded and prepared (default yes, so that
    ``streamlit run app.py`` is ready to train at once; ``SCVI_DASHBOARD_DEMO=0`` opens empty)."""
    return os.environ.get(DEMO_ENV, "1").strip().lower() not in ("0", "false", "no", "off")
