"""Where the dashboard finds its files, read from environment variables.

Why a module: the data directory decides what the Load data page may open from the server (and refuses anything
outside it), and the runs directory is where training runs are stored. Both are read at call time so that tests
and deployments can point them elsewhere without restarting Python.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from scvi_core.io import available_memory_bytes

DATA_DIR_ENV = "SCVI_DASHBOARD_DATA_DIR"
RUNS_DIR_ENV = "SCVI_DASHBOARD_RUNS_DIR"
DEMO_ENV = "SCVI_DASHBOARD_DEMO"
CACHE_DIR_ENV = "SCVI_DASHBOARD_CACHE_DIR"


def data_dir() -> Path:
    """The folder whose files can be opened without uploading (default ``./data``), resolved to an absolute path."""
    return Path(os.environ.get(DATA_DIR_ENV, "data")).expanduser().resolve()


def runs_dir() -> Path:
    """The folder where training runs are kept (default ``./runs``), resolved to an absolute path."""
    return Path(os.environ.get(RUNS_DIR_ENV, "runs")).expanduser().resolve()


def cache_dir() -> Path:
    """What the dashboard measures about this machine (the training speed calibration), default
    ``~/.cache/scvi-dashboard``."""
    return Path(os.environ.get(CACHE_DIR_ENV, "~/.cache/scvi-dashboard")).expanduser().resolve()


def start_with_demo() -> bool:
    """Whether a new dashboard session opens with the quick demo loaded and prepared (default yes, so that
    ``streamlit run app.py`` is ready to train at once; ``SCVI_DASHBOARD_DEMO=0`` opens empty)."""
    return os.environ.get(DEMO_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


ON_DISK_ABOVE_ENV = "SCVI_DASHBOARD_BACKED_ABOVE_MB"


def on_disk_above_bytes() -> int:
    """.h5ad files of the data directory larger than this (``SCVI_DASHBOARD_BACKED_ABOVE_MB``, 0: all) are opened on
    disk, summarised and trained on chunk by chunk, never loaded whole. Default: a fifth of the available memory,
    since a run on data in memory holds about four times its count matrix (``dashboard.estimates``), so a larger file
    could not train within the default memory guard."""
    megabytes = _number(ON_DISK_ABOVE_ENV, "megabytes")
    if megabytes is None:
        return int(0.2 * available_memory_bytes())
    return int(max(megabytes, 0.0) * 2**20)


SLOTS_ENV = "SCVI_DASHBOARD_TRAINING_SLOTS"
WORKER_MEMORY_ENV = "SCVI_DASHBOARD_WORKER_MEMORY_GB"
WORKER_THREADS_ENV = "SCVI_DASHBOARD_WORKER_THREADS"
DEVICES_PER_RUN_ENV = "SCVI_DASHBOARD_DEVICES_PER_RUN"
CLUSTER_ENV = "SCVI_DASHBOARD_CLUSTER"


def cluster() -> str | None:
    """Where runs train (``SCVI_DASHBOARD_CLUSTER``): unset, in worker processes of this server; a scheduler's
    address (``tcp://host:8786``) or a YAML/TOML file describing a dask-jobqueue cluster, on that Dask cluster
    (:mod:`dashboard.cluster`)."""
    return os.environ.get(CLUSTER_ENV, "").strip() or None


def gpu_count() -> int:
    import torch  # noqa: PLC0415 - only the service needs torch here; reading paths must stay light

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


THREADS_PER_SLOT = 4
"""CPU threads that one training run puts to good use on the default layer sizes: torch's speed-up flattens after a
few threads (benchmarks/train_speed.py --threads), so a machine with many cores trains several runs at once, each
with about this many threads, rather than one run with all of them."""
MEMORY_PER_SLOT = 4 * 2**30
"""Memory each CPU slot should have at least (the memory guard is shared by the slots): more slots than this
allows would refuse runs that one slot could train."""


def training_slots() -> int:
    """How many runs train at once (``SCVI_DASHBOARD_TRAINING_SLOTS``): by default one per GPU (per
    :func:`devices_per_run` GPUs); without a GPU, one per :data:`THREADS_PER_SLOT` cores beyond the one left to
    the pages, as far as :data:`MEMORY_PER_SLOT` allows, and at least one (a 2-core machine keeps one slot)."""
    slots = _whole_number(SLOTS_ENV)
    if slots is not None:
        return slots
    if gpu_count():
        return max(1, gpu_count() // devices_per_run())
    by_cores = (len(os.sched_getaffinity(0)) - 1) // THREADS_PER_SLOT
    return max(1, min(by_cores, int(0.8 * available_memory_bytes()) // MEMORY_PER_SLOT))


def devices_per_run() -> int:
    """On how many devices one run trains, data-parallel (``SCVI_DASHBOARD_DEVICES_PER_RUN``): ``all`` gives each
    run every GPU of the machine, a number that many (CPU processes sharing the cores where there is no GPU);
    default 1. It pays only for large data (see ``scvi_core.data_parallel``)."""
    if os.environ.get(DEVICES_PER_RUN_ENV, "").strip().lower() == "all":
        return max(1, gpu_count())
    return _whole_number(DEVICES_PER_RUN_ENV) or 1


def worker_threads(slots: int) -> int:
    """CPU threads of one training process (``SCVI_DASHBOARD_WORKER_THREADS``): by default the machine's cores but
    one, shared by the slots. The core left over keeps the pages responsive, and it keeps training's speed steady:
    torch's threads wait for each other at every operation, so on 2 cores a browser tab or a page computing a UMAP
    on the second core made a 2-thread run up to 10× slower, while a 1-thread run kept its speed (it is about 35%
    slower than 2 threads on an idle machine; benchmarks/live_view_cost.py)."""
    threads = _whole_number(WORKER_THREADS_ENV)
    if threads is not None:
        return threads
    return max(1, (len(os.sched_getaffinity(0)) - 1) // slots)


def _number(name: str, unit: str) -> float | None:
    """The environment variable ``name`` as a number of ``unit``; None when it is not set."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of {unit} (got {value!r}).") from None


def _whole_number(name: str) -> int | None:
    """The environment variable ``name`` as a whole number ≥ 1; None when it is not set."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    if not (value.isdigit() and int(value) >= 1):
        raise ValueError(f"{name} must be a whole number of at least 1 (got {value!r}).")
    return int(value)


def worker_memory_bytes(slots: int) -> int:
    """The most memory one training process may use (``SCVI_DASHBOARD_WORKER_MEMORY_GB``): by default 80% of the
    memory the machine has available when the service starts, shared by the slots."""
    gigabytes = _number(WORKER_MEMORY_ENV, "gigabytes")
    if gigabytes is not None:
        return int(gigabytes * 2**30)
    return int(0.8 * available_memory_bytes() / slots)


READER_MEMORY_ENV = "SCVI_DASHBOARD_READER_MEMORY_GB"
READ_TIMEOUT_ENV = "SCVI_DASHBOARD_READ_TIMEOUT_S"
SESSIONS_DIR_ENV = "SCVI_DASHBOARD_SESSIONS_DIR"
READERS_AT_ONCE = 2
"""Files read at the same time (other sessions' reads wait their turn): each reader may use a share of the memory
guard, so that two of them together stay within what one training process may use."""


def reader_memory_bytes() -> int:
    """The most memory reading one file may take above the reader's imports (``SCVI_DASHBOARD_READER_MEMORY_GB``):
    by default the memory guard of a training process (:func:`worker_memory_bytes`) shared by the readers that
    may run at once."""
    gigabytes = _number(READER_MEMORY_ENV, "gigabytes")
    if gigabytes is None:
        return worker_memory_bytes(training_slots()) // READERS_AT_ONCE
    return int(gigabytes * 2**30)


def read_timeout_seconds() -> float:
    """How long reading one file may take before it is stopped (``SCVI_DASHBOARD_READ_TIMEOUT_S``, default 600 s)."""
    seconds = _number(READ_TIMEOUT_ENV, "seconds")
    return 600.0 if seconds is None else seconds


def sessions_dir() -> Path:
    """Where each browser session keeps its uploads and what was read from them (``SCVI_DASHBOARD_SESSIONS_DIR``,
    default a folder in the system's temporary directory); a session's folder goes when the session ends."""
    default = Path(tempfile.gettempdir()) / "scvi-dashboard-sessions"
    return Path(os.environ.get(SESSIONS_DIR_ENV, default)).expanduser().resolve()
