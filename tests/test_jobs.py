"""Background training with JobManager: real (tiny) runs that finish, stop, diverge, fail, are refused while busy,
and are found again by a fresh manager after a "restart"."""

import subprocess
import sys
import time

import pytest
import torch

from scvi_core import SCVI, simulate
from dashboard import config as cfg
from dashboard.jobs import INTERRUPTED, JobBusyError, JobManager, manager_for
from dashboard.runs import MODELS, RunStore


@pytest.fixture(scope="module")
def adata():
    return simulate(n_cells=300, n_genes=60, n_cell_types=3, seed=3)


@pytest.fixture
def manager(tmp_path):
    manager = JobManager(RunStore(tmp_path / "runs"))
    yield manager
    if manager.active_run_id():  # never leave a thread training after a failed test
        manager.stop(manager.active_run_id())
        manager.wait(30)


def tiny(model="AUTOZI", **train) -> dict:
    config = cfg.preset_config(model, "quick", 300, 60)
    config["model_params"] |= {"n_hidden": 16, "n_latent": 4}
    config["train_params"] |= {"max_epochs": 3, "batch_size": 64, **train}
    return config


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_run_finishes_and_is_written_to_disk(manager, adata):
    run_id = manager.start(tiny(), adata, "tiny", batch_key="batch")
    assert manager.active_run_id() == run_id
    manager.wait(60)
    assert manager.active_run_id() is None
    status = manager.status(run_id)
    assert status["state"] == "finished", status["message"]
    assert status["epoch"] == 3 and status["final_elbo"] > 0 and status["message"].startswith("Ran all 3 epochs")
    assert status["stop_reason"] == "max_epochs" and status["kept_epoch"] in (1, 2, 3)
    history = manager.history(run_id)
    assert list(history["epoch"]) == [1, 2, 3] and history["elbo_validation"].notna().all()
    store = manager.store
    assert store.read_config(run_id)["setup"] == {"batch_key": "batch", "labels_key": None}
    assert store.has_model(run_id) and store.read_latent(run_id).shape == (300, 4)
    assert len(store.read_zero_inflation(run_id)) == 60
    assert "_scvi_core" not in adata.uns  # the caller's AnnData is left as it was


def test_stop_ends_the_run_within_about_a_second_and_keeps_the_model(manager, adata):
    run_id = manager.start(tiny("SCVI", max_epochs=10_000), adata, "tiny")
    wait_for(lambda: len(manager.history(run_id)) >= 2)
    assert manager.status(run_id)["state"] == "running"
    assert manager.job(run_id).progress.max_epochs == 10_000
    began = time.monotonic()
    assert manager.stop(run_id) and manager.is_stopping(run_id)
    manager.wait(30)
    assert time.monotonic() - began < 2.0
    status = manager.status(run_id)
    assert status["state"] == "stopped" and "model trained so far was saved" in status["message"]
    assert status["message"].startswith("Stopped by you during epoch") and status["stop_reason"] == "interrupted"
    assert manager.store.has_model(run_id)
    model = manager.store.load_model(run_id)
    assert len(model.history) >= 2 and model.history["partial_epoch"].iloc[-1]


def test_an_early_stopped_run_says_why_and_keeps_the_best_epoch(manager, adata):
    run_id = manager.start(tiny("SCVI", max_epochs=300, lr=5e-2, early_stopping_patience=2, n_epochs_kl_warmup=1),
                           adata, "tiny")
    manager.wait(60)
    status, history = manager.status(run_id), manager.history(run_id)
    best = int(history.loc[history["elbo_validation"].idxmin(), "epoch"])
    assert status["state"] == "finished" and status["stop_reason"] == "early_stopping"
    assert status["kept_epoch"] == status["best_epoch"] == best and status["epoch"] == len(history) == best + 2
    assert status["message"] == (f"Stopped early at epoch {best + 2} of 300: the validation ELBO had not improved "
                                 f"for 2 epochs; the weights of epoch {best} (the best) were restored.")
    assert status["final_elbo"] == pytest.approx(history["elbo_validation"].iloc[best - 1])
    assert manager.list_runs().loc[0, "final_elbo"] == pytest.approx(status["final_elbo"])
    assert manager.store.load_model(run_id).stop_info.kept_epoch == best


def test_a_second_run_is_refused_while_one_trains(manager, adata):
    run_id = manager.start(tiny(max_epochs=10_000), adata)
    with pytest.raises(JobBusyError, match=f"already going \\(id {run_id}\\)"):
        manager.start(tiny(), adata)
    manager.stop(run_id)
    manager.wait(30)
    assert len(manager.list_runs()) == 1


def test_invalid_settings_are_refused_before_a_run_is_created(manager, adata):
    config = tiny()
    config["model_params"]["zero_inflation"] = "gene-label"
    with pytest.raises(ValueError, match="needs known cell labels"):
        manager.start(config, adata, batch_key="batch")
    assert manager.list_runs().empty


class PoisonedSCVI(SCVI):
    """Makes its weights NaN after the first epoch, as a diverging optimiser would."""

    def train(self, callback=None, **kwargs):
        def poison(event):
            callback(event)
            if event.kind == "epoch" and event.epoch == 1:
                with torch.no_grad():
                    next(self.module.parameters()).fill_(float("nan"))

        super().train(callback=poison, **kwargs)


class BrokenSCVI(SCVI):
    def train(self, **kwargs):
        raise RuntimeError("out of memory (simulated)")


def test_a_diverging_run_fails_with_advice_and_the_server_keeps_working(manager, adata, monkeypatch):
    monkeypatch.setitem(MODELS, "SCVI", PoisonedSCVI)
    run_id = manager.start(tiny("SCVI"), adata)
    manager.wait(60)
    status = manager.status(run_id)
    assert status["state"] == "failed"
    assert "diverged in epoch 2" in status["message"] and "smaller learning rate" in status["message"]
    assert len(manager.history(run_id)) == 1
    monkeypatch.setitem(MODELS, "SCVI", BrokenSCVI)
    run_id = manager.start(tiny("SCVI"), adata)
    manager.wait(60)
    assert manager.status(run_id)["message"] == "Training failed: out of memory (simulated)"
    monkeypatch.undo()
    run_id = manager.start(tiny("SCVI", max_epochs=1), adata)
    manager.wait(60)
    assert manager.status(run_id)["state"] == "finished"


def test_runs_are_found_again_after_a_restart(manager, adata, tmp_path):
    finished = manager.start(tiny(), adata, "tiny")
    manager.wait(60)
    store = manager.store
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout.strip()
    left_running = store.create(tiny(), adata)
    store.write_status(left_running, state="running", pid=int(dead_pid))

    restarted = JobManager(RunStore(tmp_path / "runs"))
    runs = restarted.list_runs().set_index("run_id")
    assert runs.loc[finished, "state"] == "finished" and runs.loc[finished, "final_elbo"] > 0
    assert runs.loc[left_running, "state"] == "failed" and runs.loc[left_running, "message"] == INTERRUPTED
    assert list(restarted.history(finished)["epoch"]) == [1, 2, 3]
    assert restarted.store.load_model(finished).is_trained


def test_a_run_left_running_by_this_process_without_a_job_is_interrupted(manager, adata):
    run_id = manager.store.create(tiny(), adata)  # "queued" with no pid, as after a crash between two writes
    assert manager.status(run_id)["state"] == "failed"


def test_one_manager_per_runs_directory(tmp_path):
    assert manager_for(tmp_path / "a") is manager_for(tmp_path / "a" / ".." / "a")
    assert manager_for(tmp_path / "a") is not manager_for(tmp_path / "b")
