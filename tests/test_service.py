"""Training as a service: real (tiny) runs in worker processes, queued by several sessions, cancelled, stopped across
the process boundary, killed, interrupted by a server restart, and refused or stopped by the memory guard."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch

from dashboard import config as cfg
from dashboard import settings, worker
from dashboard.runs import MODELS, RunStore, where_it_trains
from dashboard.processes import process_tree_resident_bytes
from dashboard.service import INTERRUPTED, MemoryBudgetError, TrainingService, device_for_slot
from dashboard.services import service_for
from scvi_core import SCVI, simulate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def adata():
    return simulate(n_cells=300, n_genes=60, n_cell_types=3, seed=3)


@pytest.fixture
def service(tmp_path):
    service = TrainingService(tmp_path / "runs", slots=1)
    yield service
    for run_id in service.active_run_ids():  # never leave a worker training after a failed test
        service.cancel(run_id) or service.stop(run_id)
    for job in service.queue.running():
        if job.pid:
            os.kill(job.pid, signal.SIGKILL)
    service.close()


def tiny(model="AUTOZI", **train) -> dict:
    config = cfg.preset_config(model, "quick", 300, 60)
    config["model_params"] |= {"n_hidden": 16, "n_latent": 4}
    config["train_params"] |= {"max_epochs": 3, "batch_size": 64, **train}
    return config


def endless(model="SCVI") -> dict:
    return tiny(model, max_epochs=100_000, early_stopping=False)


def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def training(service, run_id, epochs=1):
    """Wait until ``run_id``'s worker has said it trains and has written ``epochs`` epochs of history."""
    wait_for(lambda: service.status(run_id).get("pid") and len(service.history(run_id)) >= epochs)


def test_a_run_trains_in_its_own_process_and_is_written_to_disk(service, adata):
    run_id = service.submit(tiny(), adata, "tiny", batch_key="batch", owner="ann")
    status = service.wait(run_id, 120)
    assert status["state"] == "finished", status["message"]
    assert status["pid"] != os.getpid() and status["device"] == "cpu" and status["threads"] == service.threads
    assert status["message"].startswith("Ran all 3 epochs")
    assert status["n_cells"] == 300 and status["entries_per_second"] > 0 and status["peak_memory_bytes"] > 0
    assert list(service.history(run_id)["epoch"]) == [1, 2, 3]
    assert service.store.read_config(run_id)["owner"] == "ann"
    model = service.store.load_model(run_id)
    assert model.is_trained and model.stop_info.reason == "max_epochs"
    assert service.store.read_latent(run_id).shape == (300, 4)
    assert service.active_run_ids() == []


def test_runs_of_several_sessions_wait_their_turn_and_all_finish_in_order(service, adata):
    run_ids = [service.submit(tiny("SCVI", max_epochs=2), adata, owner=f"session {i}") for i in range(4)]
    wait_for(lambda: service.status(run_ids[0])["state"] == "running")
    if service.status(run_ids[1])["state"] == "queued":  # the first may already be done on a fast machine
        assert service.queue_position(run_ids[-1])[0] == service.queue_position(run_ids[1])[0] + 2
        waits = [service.wait_seconds(run_id) for run_id in run_ids[1:]]
        assert waits == sorted(waits) and waits[-1] > 0
    statuses = [service.wait(run_id, 180) for run_id in run_ids]
    assert [s["state"] for s in statuses] == ["finished"] * 4
    starts = [service.queue.get(run_id).started for run_id in run_ids]
    assert starts == sorted(starts)
    for earlier, later in zip(statuses, statuses[1:]):  # one slot: a run starts only once the one before ended
        assert earlier["ended"] <= later["started"]


def test_a_queued_run_can_be_cancelled_and_a_running_one_stopped_across_the_process_boundary(service, adata):
    running = service.submit(endless(), adata)
    queued = service.submit(tiny(), adata)
    training(service, running, epochs=2)
    assert service.queue_position(queued) == (1, 1)
    assert not service.cancel(running)  # started: only Stop ends it
    assert service.cancel(queued) and service.status(queued)["state"] == "cancelled"
    assert service.queue_position(queued) is None and not service.cancel(queued)

    asked = time.monotonic()
    assert service.stop(running) and service.is_stopping(running)
    status = service.wait(running, 60)
    assert time.monotonic() - asked < 5  # within about a second, plus saving the model
    assert status["state"] == "stopped" and status["stop_reason"] == "interrupted"
    assert status["message"].startswith("Stopped by you during epoch")
    assert service.store.load_model(running).is_trained
    time.sleep(1)
    assert service.status(queued)["state"] == "cancelled"  # it never started


def test_a_killed_worker_fails_with_the_reason_and_the_next_run_still_trains(service, adata):
    doomed = service.submit(endless(), adata)
    after = service.submit(tiny(), adata)
    training(service, doomed)
    os.kill(service.status(doomed)["pid"], signal.SIGKILL)  # what the kernel's out-of-memory killer does
    status = service.wait(doomed, 60)
    assert status["state"] == "failed"
    assert "killed, probably because the machine ran out of memory" in status["message"]
    assert "fewer cells" in status["message"] and len(service.history(doomed)) >= 1
    assert service.wait(after, 120)["state"] == "finished"


SERVER = textwrap.dedent("""
    import sys, time
    from dashboard.service import TrainingService
    from tests.test_service import endless, tiny
    from scvi_core import simulate
    service = TrainingService(sys.argv[1], slots=1)
    adata = simulate(n_cells=300, n_genes=60, n_cell_types=3, seed=3)
    print(service.submit(endless(), adata), service.submit(tiny(), adata), flush=True)
    time.sleep(600)
""")


def test_after_a_server_restart_the_training_run_is_interrupted_and_the_queued_one_starts(tmp_path):
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(tmp_path / "runs")], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE)
    was_training, was_queued = server.stdout.readline().split()
    store = RunStore(tmp_path / "runs")
    wait_for(lambda: (store.path(was_training) / "history.csv").exists(), timeout=90)
    server.kill()  # the server dies without a chance to clean up
    server.wait()
    restarted = TrainingService(tmp_path / "runs", slots=1)
    try:
        status = restarted.wait(was_training, 60)
        assert status["state"] == "interrupted" and "server stopped during epoch" in status["message"]
        assert restarted.store.has_model(was_training)  # what it had learnt was kept
        assert restarted.wait(was_queued, 120)["state"] == "finished"
    finally:
        restarted.close()


def test_a_run_whose_worker_died_with_the_server_is_shown_as_interrupted(tmp_path, adata):
    store = RunStore(tmp_path / "runs")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    service = TrainingService(tmp_path / "runs", slots=1)
    service.close()  # no dispatcher: set up the row of a run that a previous server was training
    run_id = store.create(tiny(), adata)
    service.queue.enqueue(run_id, None)
    service.queue.claim(1)
    service.queue.set_pid(run_id, int(gone.stdout))
    store.write_status(run_id, state="running", pid=int(gone.stdout))
    restarted = TrainingService(tmp_path / "runs", slots=1)
    try:
        status = restarted.wait(run_id, 30)
        assert status["state"] == "interrupted" and status["message"] == INTERRUPTED
    finally:
        restarted.close()


def test_the_memory_guard_refuses_a_run_that_cannot_fit(tmp_path, adata):
    service = TrainingService(tmp_path / "runs", slots=1, memory_budget=100 * 2**20)
    try:
        with pytest.raises(MemoryBudgetError, match=r"needs about \d+ MB of memory, but a training run may use at "
                                                    r"most 100 MB on this server \(set by SCVI_DASHBOARD_WORKER_MEMORY_GB\)\. "
                                                    r"Train on fewer cells"):
            service.submit(tiny(), adata)
        assert service.list_runs().empty
    finally:
        service.close()


def test_the_memory_guard_counts_every_process_of_a_data_parallel_run(tmp_path, adata, monkeypatch):
    """Each process of a data-parallel run holds its own copy of the counts in memory."""
    monkeypatch.setenv(settings.DEVICES_PER_RUN_ENV, "2")
    service = TrainingService(tmp_path / "runs", slots=1, memory_budget=2**40)
    try:
        one_process = service.memory_needed(tiny(), adata) // 2
        service.memory_budget = int(1.5 * one_process)  # enough for one process, not for two
        with pytest.raises(MemoryBudgetError, match=r"needs about .* of memory \(2 data-parallel processes\)"):
            service.submit(tiny(), adata)
    finally:
        service.close()
    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(300 * 2**20); time.sleep(60)"])
    try:
        time.sleep(2)
        assert process_tree_resident_bytes(child.pid) > 290 * 2**20
        assert process_tree_resident_bytes(os.getpid()) - process_tree_resident_bytes(child.pid) > 100 * 2**20  # torch
    finally:
        child.kill()


def test_a_worker_that_outgrows_its_budget_is_stopped_with_that_message(service, adata):
    run_id = service.submit(endless(), adata)
    training(service, run_id)
    service.memory_budget = 50 * 2**20  # the worker already uses more (torch alone takes over 200 MB)
    status = service.wait(run_id, 30)
    assert status["state"] == "failed"
    assert "more than the 50 MB a run may use on this server, and was stopped" in status["message"]


def test_invalid_settings_are_refused_before_a_run_is_created(service, adata):
    config = tiny()
    config["model_params"]["zero_inflation"] = "gene-label"
    with pytest.raises(ValueError, match="needs known cell labels"):
        service.submit(config, adata, batch_key="batch")
    assert service.list_runs().empty


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


def test_the_worker_turns_divergence_and_errors_into_failed_runs_with_advice(tmp_path, adata, monkeypatch):
    """The worker's body, run in this process so that the models can be replaced by failing ones."""
    store = RunStore(tmp_path)
    adata = adata.copy()
    SCVI.setup_anndata(adata)
    monkeypatch.setitem(MODELS, "SCVI", PoisonedSCVI)
    run_id = store.create(tiny("SCVI"), adata)
    worker.train_run(store, run_id, "cpu", threading.Event())
    status = store.read_status(run_id)
    assert status["state"] == "failed"
    assert "diverged in epoch 2" in status["message"] and "smaller learning rate" in status["message"]
    assert len(store.read_history(run_id)) == 1
    monkeypatch.setitem(MODELS, "SCVI", BrokenSCVI)
    run_id = store.create(tiny("SCVI"), adata)
    worker.train_run(store, run_id, "cpu", threading.Event())
    assert store.read_status(run_id)["message"] == "Training failed: out of memory (simulated)"


def test_slots_and_devices(monkeypatch):
    monkeypatch.setenv(settings.SLOTS_ENV, "3")
    assert settings.training_slots() == 3
    monkeypatch.setenv(settings.SLOTS_ENV, "zero")
    with pytest.raises(ValueError, match="whole number of at least 1"):
        settings.training_slots()
    monkeypatch.delenv(settings.SLOTS_ENV)
    real_gpu_count = settings.gpu_count
    monkeypatch.setattr(settings, "gpu_count", lambda: 0)
    monkeypatch.setattr(settings, "available_memory_bytes", lambda: 64 * 2**30)
    cores = {2: 1, 4: 1, 9: 2, 16: 3, 32: 7}  # one core for the pages, then THREADS_PER_SLOT cores per slot
    for n, slots in cores.items():
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=n: set(range(n)))
        assert settings.training_slots() == slots, n
    assert settings.worker_threads(7) == 4  # 32 cores: 7 runs at once with 4 threads each
    monkeypatch.setattr(settings, "available_memory_bytes", lambda: 12 * 2**30)  # 9.6 GB guard: two 4 GB slots
    assert settings.training_slots() == 2
    monkeypatch.setattr(settings, "gpu_count", lambda: 2)
    assert settings.training_slots() == 2  # one per GPU, whatever the cores
    monkeypatch.setattr(settings, "gpu_count", real_gpu_count)
    assert [device_for_slot(slot, 2) for slot in range(3)] == ["cuda:0", "cuda:1", "cuda:0"]
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert settings.worker_threads(1) == 15 and settings.worker_threads(4) == 3  # one core left to the pages
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert settings.worker_threads(1) == 1
    monkeypatch.setenv(settings.WORKER_THREADS_ENV, "2")
    assert settings.worker_threads(1) == 2
    assert device_for_slot(0, 0) == "cpu"
    assert settings.devices_per_run() == 1
    monkeypatch.setenv(settings.DEVICES_PER_RUN_ENV, "all")
    assert settings.devices_per_run() == max(1, torch.cuda.device_count())
    monkeypatch.setenv(settings.DEVICES_PER_RUN_ENV, "4")
    assert settings.devices_per_run() == 4 and device_for_slot(0, 4, devices=4) == "cuda"


def test_a_run_can_train_data_parallel_on_several_processes(tmp_path, adata, monkeypatch):
    monkeypatch.setenv(settings.DEVICES_PER_RUN_ENV, "2")  # no GPU here: two gloo processes on the CPU
    service = TrainingService(tmp_path / "runs", slots=1)
    try:
        run_id = service.submit(tiny("SCVI"), adata, "tiny", batch_key="batch")
        status = service.wait(run_id, 180)
        assert status["state"] == "finished", status["message"]
        assert status["devices"] == 2 and status["device"] == "cpu"
        assert where_it_trains(status).startswith("cpu, 2 data-parallel processes")
        assert list(service.history(run_id)["epoch"]) == [1, 2, 3]
        assert service.store.load_model(run_id).get_latent_representation().shape == (300, 4)
    finally:
        service.close()


def test_one_service_per_runs_directory(tmp_path):
    assert service_for(tmp_path / "a") is service_for(tmp_path / "a" / ".." / "a")
    assert service_for(tmp_path / "a") is not service_for(tmp_path / "b")
