"""Time and memory estimates from what this server measured: recent runs' throughput, the epochs that runs with the
same settings took, the calibration before any run, and the memory a run needs."""

import json
import time

import numpy as np
import pytest
import scipy.sparse as sp

from dashboard import config as cfg
from dashboard import estimates, settings
from dashboard.runs import RunStore
from dashboard.service import TrainingService
from scvi_core import simulate


def config(model="SCVI", **train):
    config = cfg.preset_config(model, "standard", 1000, 200)
    config["train_params"] |= train
    return config


def fake_run(store, config, state="finished", **status):
    """A run folder whose status holds what a worker records at the end (no training: the figures are the test's)."""
    adata = simulate(n_cells=20, n_genes=10, seed=0)
    run_id = store.create(config, adata)
    store.write_status(run_id, state=state, n_cells=1000, n_genes=200, **status)
    return run_id


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


def test_throughput_is_the_median_of_recent_runs_of_the_same_model(store):
    for speed, wall in ((4e6, 12.0), (6e6, 13.0), (5e6, 20.0)):
        fake_run(store, config(), entries_per_second=speed, train_seconds=10.0, wall_seconds=wall, epoch=50, threads=1)
    fake_run(store, config("AUTOZI"), entries_per_second=1e6, train_seconds=10.0, wall_seconds=11.0, epoch=50,
             threads=1)
    fake_run(store, config(), state="failed", entries_per_second=1.0, train_seconds=1.0, wall_seconds=1.0, threads=1)
    fake_run(store, config(), entries_per_second=9e9, train_seconds=1.0, wall_seconds=1.0, threads=8)  # other threads
    measured = estimates.throughput(store, "SCVI", threads=1)
    assert measured.entries_per_second == pytest.approx(5e6)
    assert measured.overhead_seconds == pytest.approx(3.0)  # median of 2, 3 and 10 s
    assert measured.source == "3 recent scVI runs on this server"


def test_expected_time_uses_the_epochs_of_runs_with_the_same_settings(store):
    same = config(max_epochs=400)
    for epochs in (70, 90, 80):
        fake_run(store, same, entries_per_second=2e6, train_seconds=10.0, wall_seconds=12.0, epoch=epochs,
                 stop_reason="early_stopping", threads=1)
    estimate = estimates.estimate(store, same, 1000, 200, threads=1)
    per_epoch = 1000 * 200 / 2e6
    assert estimate.expected_epochs == 80
    assert estimate.expected_seconds == pytest.approx(2.0 + 80 * per_epoch)
    assert estimate.most_seconds == pytest.approx(2.0 + 400 * per_epoch)
    assert estimate.describe(early_stopping=True) == "about 10 s (at most 42 s)"
    other = config(max_epochs=400, lr=1e-3)  # other settings: warm-up + patience + the prior's extra epochs
    assert estimates.expected_epochs(store, other, 1000, 200) == 20 + 20 + estimates.PRIOR_EXTRA_EPOCHS["SCVI"]
    fixed = config(max_epochs=123, early_stopping=False)
    assert estimates.expected_epochs(store, fixed, 1000, 200) == 123


def test_calibration_runs_once_per_machine_and_is_cached(store, tmp_path, monkeypatch):
    monkeypatch.setenv(settings.CACHE_DIR_ENV, str(tmp_path / "cache"))
    first = estimates.throughput(store, "AUTOZI", threads=1)
    assert first.entries_per_second > 1e5 and "calibration" in first.source
    cached = json.loads((tmp_path / "cache" / estimates.CALIBRATION_FILE).read_text())
    cached["AUTOZI threads=1"]["entries_per_second"] = 123.0  # a second call must read the file, not measure again
    (tmp_path / "cache" / estimates.CALIBRATION_FILE).write_text(json.dumps(cached))
    assert estimates.throughput(store, "AUTOZI", threads=1).entries_per_second == 123.0


def test_memory_estimate_counts_the_matrix_and_the_minibatch():
    x = sp.random(500, 300, density=0.1, format="csr", dtype=np.float32, random_state=0)
    adata = simulate(n_cells=500, n_genes=300, seed=0)
    adata.X = x
    assert estimates.matrix_bytes(adata) == x.data.nbytes + x.indices.nbytes + x.indptr.nbytes
    small = estimates.peak_memory_bytes(0, adata, config(batch_size=128))
    assert small == estimates.MATRIX_COPIES * estimates.matrix_bytes(adata) + 128 * 300 * estimates.BYTES_PER_BATCH_ENTRY
    assert estimates.peak_memory_bytes(0, adata, config(batch_size=256)) > small
    adata.X = x.toarray()
    assert estimates.matrix_bytes(adata) == 500 * 300 * 4
    assert estimates.format_bytes(3 * 2**30) == "3.0 GB" and estimates.format_bytes(5 * 2**20) == "5 MB"


def test_a_new_service_calibrates_in_the_background_before_any_estimate(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.CACHE_DIR_ENV, str(tmp_path / "cache"))
    service = TrainingService(tmp_path / "runs", slots=1)
    try:
        path = tmp_path / "cache" / estimates.CALIBRATION_FILE
        deadline = time.monotonic() + 120
        while not path.exists() and time.monotonic() < deadline:  # nobody asked for an estimate
            time.sleep(0.2)
        cached = json.loads(path.read_text())
        assert {f"SCVI threads={service.threads}", f"AUTOZI threads={service.threads}"} <= cached.keys()
        speed = estimates.throughput(service.store, "SCVI", service.threads)
        assert speed.entries_per_second == cached[f"SCVI threads={service.threads}"]["entries_per_second"]
        # AutoZI's end-of-run zero-inflation evidence takes seconds, the latent space of scVI a few milliseconds:
        # both are part of the first run's estimate
        autozi = cached[f"AUTOZI threads={service.threads}"]
        assert autozi["results_seconds"] > 1.0 > cached[f"SCVI threads={service.threads}"]["results_seconds"]
        overhead = estimates.throughput(service.store, "AUTOZI", service.threads).overhead_seconds
        assert overhead == pytest.approx(estimates.PRIOR_OVERHEAD_SECONDS + autozi["results_seconds"])
    finally:
        service.close()
