"""How long and how much memory a run will take on this server, from what this server has measured.

Why measured rather than constant: the same run takes three times longer on a busy 2-core lab server than on a
quiet workstation, and a GPU changes everything. Time comes from the throughput of this server's recent runs of the
same model (every worker records its cells per second, its set-up and saving time), or, before the first run, from
a calibration on this machine (started in the background when the server starts), cached in the dashboard's cache folder. With early stopping the number of epochs is
not known in advance: it is taken from earlier runs of the same model on the same data with the same settings, else
from :data:`PRIOR_EXTRA_EPOCHS`, and the estimate also says the most the run can take.

Memory: a worker's peak is its interpreter with torch and anndata (``dashboard.service.WORKER_BASE_BYTES``), a few
copies of the count matrix (:data:`MATRIX_COPIES`) and the minibatch tensors (:data:`BYTES_PER_BATCH_ENTRY`), all
measured with ``benchmarks/worker_memory.py``.
"""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from scvi_core import simulate
from scvi_core.data import DiskMatrix, is_on_disk, resident_bytes

from . import config as cfg
from . import settings
from .config import reference_width
from .runs import MODELS, RunStore

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[1]
RECENT_RUNS = 5
LONG_RUN_SECONDS = 30 * 60
PRIOR_EXTRA_EPOCHS = {"SCVI": 40, "AUTOZI": 176}
"""Epochs an early-stopped run takes beyond its KL warm-up and patience when nothing similar has run here yet: what
the Standard preset took on the quick demo (scVI 80 epochs; AutoZI 216 at its lr 1e-3, 2026-12-03, with the 0.1% min
delta); the default runs of benchmarks/time_to_quality.py stop 28–48 epochs after warm-up and patience."""
WARMUP_EPOCHS = 20
PRIOR_OVERHEAD_SECONDS = 4.0
"""Seconds from Start to the end of a run spent outside its epochs (loading its data, building the model, saving it)
until a run has measured it here, besides the results computed at the end, which the calibration times (AutoZI's
zero-inflation table with its NB vs ZINB check: about 5.5–8 s on the quick demo): the first run on a new 2-core
server also waits for its worker's imports (4.2 s measured by benchmarks/live_view_cost.py; 1.3–2.1 s for the runs after it)."""
CALIBRATION_FILE = "calibration.json"
CALIBRATION_SHAPE = (2000, 500)  # the quick demo, the usual first run
CALIBRATION_EPOCHS = 24
BYTES_PER_BATCH_ENTRY = 100
"""Bytes of activations, gradients and likelihood terms per minibatch entry (cell × gene), n_hidden 128: batch 1024
against 128 on 20,000 × 1,000 cells added 87 MB (benchmarks/worker_memory.py)."""
MATRIX_COPIES = 4
"""The worker's peak grows by about four times the count matrix: the file read, the AnnData, the model's view and
its per-chunk conversions, the results computed at the end (50,000 × 2,000 cells: 331 MB matrix, 1.8 GB peak)."""


@dataclass(frozen=True)
class Throughput:
    """Training speed on this server: cell × gene entries per second at the reference width (both passes, training
    and validation), and the seconds a run spends outside its epochs (loading, building, saving)."""

    entries_per_second: float
    overhead_seconds: float
    source: str
    """Where the figures come from, for the page: "3 recent scVI runs on this server", "a calibration …"."""


@dataclass(frozen=True)
class Estimate:
    """Expected and longest wall time of one run, in seconds."""

    expected_seconds: float
    most_seconds: float
    expected_epochs: float
    source: str

    def describe(self, early_stopping: bool) -> str:
        """'about 40 s (at most 2 min)', for the pages."""
        expected = cfg.format_duration(self.expected_seconds)
        if not early_stopping or self.most_seconds <= 1.1 * self.expected_seconds:
            return expected
        return f"{expected} (at most {cfg.format_duration(self.most_seconds).removeprefix('about ')})"

    @property
    def warning(self) -> str | None:
        """A word of caution for a run longer than half an hour."""
        if self.expected_seconds <= LONG_RUN_SECONDS:
            return None
        return (f"This run would take {cfg.format_duration(self.expected_seconds)} on this server. Fewer epochs, fewer "
                "genes (Load data → highly variable genes) or the Quick look preset are faster.")


def throughput(store: RunStore, model: str, threads: int, devices: int = 1, cluster: str | None = None) -> Throughput:
    """From the last :data:`RECENT_RUNS` runs of ``model`` that trained where runs train now (this server, or the
    Dask cluster ``cluster``) with ``threads`` CPU threads on ``devices`` devices, else from the (one-device)
    calibration on this server, or nominal figures for a cluster."""
    rows = [r for r in recent_runs(store, model, limit=None)
            if r.get("threads") == threads and r.get("devices", 1) == devices and r.get("cluster") == cluster]
    rows = rows[:RECENT_RUNS]
    where = "this server" if cluster is None else "this cluster"
    if rows:
        speed = statistics.median(r["entries_per_second"] / reference_width(r["model_params"]) for r in rows)
        overhead = statistics.median(r["wall_seconds"] - r["train_seconds"] for r in rows)
        noun = "run" if len(rows) == 1 else "runs"
        return Throughput(speed, overhead, f"{len(rows)} recent {model_name(model)} {noun} on {where}")
    if cluster is None:
        return calibration(model, threads)
    # this server's calibration would say nothing of the cluster's workers, and would take this server's CPU (an
    # HPC login node is not for computing)
    return nominal(model, "until a run has finished on this cluster")


def nominal(model: str, why: str) -> Throughput:
    """The figures an estimate falls back on when nothing was measured where runs train; ``why`` says so."""
    return Throughput(cfg.NOMINAL_ENTRIES_PER_SECOND[model], PRIOR_OVERHEAD_SECONDS, f"nominal figures {why}")


def estimate(store: RunStore, config: dict, n_cells: int, n_genes: int, threads: int, devices: int = 1,
             cluster: str | None = None) -> Estimate:
    """The wall time of ``config`` on data of this size, from the throughput where runs train (this server, or the
    Dask cluster ``cluster``) with ``threads`` threads on ``devices`` devices."""
    speed = throughput(store, config["model"], threads, devices, cluster)
    train = config["train_params"]
    per_epoch = n_cells * n_genes * reference_width(config["model_params"]) / speed.entries_per_second
    epochs = expected_epochs(store, config, n_cells, n_genes)
    return Estimate(speed.overhead_seconds + epochs * per_epoch, speed.overhead_seconds + train["max_epochs"] * per_epoch,
                    epochs, speed.source)


def expected_epochs(store: RunStore, config: dict, n_cells: int, n_genes: int) -> float:
    """All of them without early stopping; with it, the median of earlier runs with the same settings on data of
    the same size, else warm-up + patience + :data:`PRIOR_EXTRA_EPOCHS`."""
    train = config["train_params"]
    if not train["early_stopping"]:
        return float(train["max_epochs"])
    same = [r["epoch"] for r in recent_runs(store, config["model"], limit=None)
            if r["model_params"] == config["model_params"] and r["train_params"] == train
            and (r["n_cells"], r["n_genes"]) == (n_cells, n_genes) and r["stop_reason"] != "interrupted"]
    if same:
        return float(statistics.median(same[:RECENT_RUNS]))
    warmup = WARMUP_EPOCHS if train["n_epochs_kl_warmup"] is None else train["n_epochs_kl_warmup"]
    extra = PRIOR_EXTRA_EPOCHS[config["model"]]
    return float(min(train["max_epochs"], warmup + train["early_stopping_patience"] + extra))


def recent_runs(store: RunStore, model: str, limit: int | None = RECENT_RUNS) -> list[dict]:
    """Runs of ``model`` that trained here to a saved model and recorded their speed, newest first."""
    runs = store.list_runs()
    rows = []
    for run_id in runs.loc[runs["model"].eq(model) & runs["state"].isin(("finished", "stopped")), "run_id"]:
        status = store.read_status(run_id)
        if not {"entries_per_second", "wall_seconds", "train_seconds"} <= set(status):
            continue
        config = store.read_config(run_id)
        rows.append({**status, "model_params": config["model_params"], "train_params": config["train_params"],
                     "n_cells": status.get("n_cells"), "n_genes": status.get("n_genes")})
        if limit is not None and len(rows) == limit:
            break
    return rows


def start_calibration(threads: int) -> None:
    """Calibrate ``threads``-thread training now, in the background, unless this machine has already: a service
    calls this when it starts, so that the calibration runs before anyone opens the Model page (timed while that
    page rendered in the browser it measured 60% of the speed runs then reached: the first estimate was 44% long)."""
    path = _calibration_path()
    with _CALIBRATION_LOCK:
        if _calibration_key("SCVI", threads) in _read_json(path) or (path, threads) in _CALIBRATIONS:
            return
        thread = threading.Thread(target=_run_calibration, args=(path, threads), daemon=True,
                                  name="speed-calibration")
        _CALIBRATIONS[path, threads] = thread
        thread.start()


def calibration(model: str, threads: int) -> Throughput:
    """A few seconds of each model on the quick demo's size with ``threads`` CPU threads, timed once per machine in
    a process of its own, as a worker trains (timed inside the web server it measured half the speed: the server's
    threads compete with it), and kept in the dashboard's cache folder. Waits for :func:`start_calibration`."""
    start_calibration(threads)
    path = _calibration_path()
    if (path, threads) in _CALIBRATIONS:
        _CALIBRATIONS[path, threads].join()
    figures = _read_json(path).get(_calibration_key(model, threads))
    if figures is None:  # never block a page on it: say that the figure is a guess
        return nominal(model, "(the speed calibration failed; the server's log says why)")
    return Throughput(figures["entries_per_second"], PRIOR_OVERHEAD_SECONDS + figures.get("results_seconds", 0.0),
                      f"a short calibration of {model_name(model)} on this server (no run has finished here yet)")


_CALIBRATIONS: dict[tuple[Path, int], threading.Thread] = {}
"""The calibration of each (cache file, threads) this process has started."""
_CALIBRATION_LOCK = threading.Lock()


def _calibration_path() -> Path:
    return settings.cache_dir() / CALIBRATION_FILE


def _calibration_key(model: str, threads: int) -> str:
    return f"{model} threads={threads}"


def _run_calibration(path: Path, threads: int) -> None:
    """Both models in one process (a second one later would compete with the spare worker the pages start)."""
    done = subprocess.run([sys.executable, "-m", "dashboard.estimates", str(threads)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        log.warning("The speed calibration failed:\n%s", done.stderr[-2000:])
        return
    with _CALIBRATION_LOCK:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_read_json(path) | json.loads(done.stdout.splitlines()[-1]), indent=1))


def _calibrate(model: str, threads: int) -> dict:
    """One model's part of the calibration process, ``python -m dashboard.estimates THREADS``."""
    n_cells, n_genes = CALIBRATION_SHAPE
    adata = simulate(n_cells=n_cells, n_genes=n_genes, seed=0)
    MODELS[model].setup_anndata(adata, batch_key="batch")
    fitted = MODELS[model](adata)
    torch.set_num_threads(threads)  # as the workers train
    fitted.train(max_epochs=CALIBRATION_EPOCHS, early_stopping=False, device="cpu")
    # The lower quartile of the epochs, the first (which warms torch up) left out: the first page view of a new
    # server, or a worker starting, slows some epochs and never speeds one up, while the fastest epoch is ~20% faster
    # than a run's typical one (quick demo: 0.073–0.089 s against a median of 0.095–0.103 s). Training and
    # validation passes see every cell once per epoch.
    epoch_seconds = float(np.quantile(np.diff(fitted.history["seconds"].to_numpy()), 0.25))
    with tempfile.TemporaryDirectory() as folder:  # the results a worker computes when training ends
        store, run_id = RunStore(folder), "00000000-000000-000000"
        (store.root / run_id / "results").mkdir(parents=True)
        start = time.perf_counter()
        store.save_results(run_id, fitted)
        results_seconds = time.perf_counter() - start
    return {"entries_per_second": n_cells * n_genes / epoch_seconds, "results_seconds": results_seconds,
            "measured": time.time()}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def model_name(model: str) -> str:
    return {"SCVI": "scVI", "AUTOZI": "AutoZI"}.get(model, model)


# ---- memory -------------------------------------------------------------------------------------------------------
def matrix_bytes(adata) -> int:
    """Bytes of the count matrix as the model holds it (CSR: values and column indices; dense: float32; on disk:
    what it keeps in memory, :func:`scvi_core.data.resident_bytes`)."""
    x = adata.X
    if is_on_disk(x):
        return resident_bytes(DiskMatrix(x))
    if hasattr(x, "nnz"):
        return int(x.nnz * (x.data.itemsize + x.indices.itemsize) + x.indptr.nbytes)
    return int(np.prod(x.shape) * max(np.asarray(x[:1]).itemsize, 4))


def peak_memory_bytes(base_bytes: int, adata, config: dict) -> int:
    """Expected peak memory of a worker training ``config`` on ``adata`` (see the module docstring)."""
    batch = min(config["train_params"]["batch_size"], adata.n_obs)
    activations = batch * adata.n_vars * reference_width(config["model_params"]) * BYTES_PER_BATCH_ENTRY
    return int(base_bytes + MATRIX_COPIES * matrix_bytes(adata) + activations)


def format_bytes(n: float) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


if __name__ == "__main__":
    print(json.dumps({_calibration_key(model, int(sys.argv[1])): _calibrate(model, int(sys.argv[1])) for model in MODELS}))
