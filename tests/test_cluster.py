"""Runs trained on a Dask cluster (a ``distributed.LocalCluster`` of two worker processes started by the test): two
sessions' runs train at the same time, Stop reaches a worker, a worker killed mid-run fails only its run, a scheduler
that goes away is a banner while queued runs wait, a restarted dashboard finds the cluster's runs again, and a
cluster file describes a Slurm cluster."""

import os
import signal
import textwrap
import time

import pytest

from dashboard import cluster_file, settings
from dashboard.cluster import TASK_LOST, WORKER_GONE, ClusterTrainingService
from dashboard.service import MemoryBudgetError
from dashboard.services import close_all, service_for
from scvi_core import simulate
from tests.browser.conftest import free_port
from tests.test_service import endless, tiny, training, wait_for

distributed = pytest.importorskip("distributed")
from distributed.client import SchedulerInfo  # noqa: E402 - after the skip when distributed is absent


@pytest.fixture(scope="module")
def adata():
    return simulate(n_cells=300, n_genes=60, n_cell_types=3, seed=3)


@pytest.fixture(scope="module")
def cluster():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    yield cluster
    cluster.close()


@pytest.fixture
def service(tmp_path, cluster):
    service = ClusterTrainingService(tmp_path / "runs", cluster.scheduler_address)
    wait_for(lambda: service.slots == len(cluster.scheduler_info["workers"]), 30)
    yield service
    for run_id in service.active_run_ids():  # never leave a run training on the cluster after a failed test
        service.cancel(run_id) or service.stop(run_id)
    service.close()


def test_the_workers_are_asked_of_the_scheduler_not_of_the_clients_cache(service, cluster):
    """The client refreshes its cache of the scheduler's identity every few seconds without the workers: a look at
    the cluster that read that cache saw none, and failed a training run as if its worker had died (twice in CI)."""
    client = service._connected()

    async def refresh_without_workers(n_workers=0):
        client._scheduler_identity = SchedulerInfo(await client.scheduler.identity(n_workers=0))

    client._update_scheduler_info = refresh_without_workers  # what the client's periodic refresh leaves behind
    assert client.scheduler_info()["workers"] == {}
    with service._lock:  # as the dispatcher looks
        service._look_at_cluster(client)
    assert set(service._workers) == set(cluster.scheduler_info["workers"]) and service.slots == 2


def worker_pid(cluster, address: str) -> int:
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        return client.run(os.getpid, workers=[address])[address]


def test_two_sessions_runs_train_at_the_same_time_on_two_workers(service, adata, cluster):
    before = service.estimate(tiny(max_epochs=30), 300, 60)
    assert before.source == "nominal figures until a run has finished on this cluster"
    first = service.submit(tiny(max_epochs=30), adata, "tiny", batch_key="batch", owner="ann")
    second = service.submit(tiny("SCVI", max_epochs=30), adata, "tiny", batch_key="batch", owner="bob")
    assert service.slots == 2 and "the Dask cluster at" in service.device_label()
    statuses = [service.wait(run_id, 180) for run_id in (first, second)]
    assert [s["state"] for s in statuses] == ["finished", "finished"], [s["message"] for s in statuses]
    assert {s["worker"] for s in statuses} == set(cluster.scheduler_info["workers"])  # one run on each worker
    assert statuses[0]["started"] <= statuses[1]["ended"] and statuses[1]["started"] <= statuses[0]["ended"]  # seconds
    assert all(s["pid"] != os.getpid() and s["threads"] == 1 and s["cluster"] == service.cluster for s in statuses)
    assert service.store.read_latent(first).shape == (300, 4)  # results written by the worker, in the runs folder
    assert service.active_run_ids() == []
    estimate = service.estimate(tiny(max_epochs=30), 300, 60)
    assert estimate.source == "1 recent AutoZI run on this cluster"


def test_a_run_larger_than_a_workers_memory_limit_is_refused(service, adata, cluster, monkeypatch):
    limits = [w["memory_limit"] for w in cluster.scheduler_info["workers"].values()]
    assert service.memory_budget == int(0.9 * min(limits))
    monkeypatch.setattr(service, "memory_needed", lambda config, data: service.memory_budget + 1)
    with pytest.raises(MemoryBudgetError, match="on a worker of the cluster .90% of the smallest worker's memory"):
        service.submit(tiny(), adata)
    assert service.list_runs().empty


def test_stop_reaches_the_worker_and_keeps_the_model(service, adata):
    run_id = service.submit(endless(), adata, "tiny", batch_key="batch")
    training(service, run_id, epochs=2)
    asked = time.monotonic()
    assert service.stop(run_id)
    status = service.wait(run_id, 60)
    assert status["state"] == "stopped" and time.monotonic() - asked < 10
    assert service.store.load_model(run_id).is_trained


def test_a_queued_run_waits_for_a_free_worker_and_can_be_cancelled(service, adata):
    busy = [service.submit(endless(), adata, "tiny", batch_key="batch") for _ in range(2)]
    queued = service.submit(tiny(), adata, "tiny", batch_key="batch")
    wait_for(lambda: all(service.status(run_id)["state"] == "running" for run_id in busy))
    assert service.status(queued)["state"] == "queued" and service.queue_position(queued) == (1, 1)
    assert service.wait_seconds(queued) is not None
    assert service.cancel(queued) and service.status(queued)["state"] == "cancelled"
    for run_id in busy:
        service.stop(run_id)
    assert [service.wait(run_id, 60)["state"] for run_id in busy] == ["stopped", "stopped"]


def test_a_worker_killed_mid_run_fails_only_that_run_and_the_next_one_trains(service, adata, cluster):
    doomed = service.submit(endless(), adata, "tiny", batch_key="batch")
    training(service, doomed)
    address = service.status(doomed)["worker"]
    os.kill(worker_pid(cluster, address), signal.SIGKILL)
    status = service.wait(doomed, 60)
    assert status["state"] == "failed" and status["message"] == WORKER_GONE.format(worker=address)
    assert len(service.history(doomed)) >= 1  # what it trained is kept
    wait_for(lambda: len(cluster.scheduler_info["workers"]) == 2, 60)  # the nanny starts a fresh worker
    after = service.submit(tiny(), adata, "tiny", batch_key="batch")
    assert service.wait(after, 120)["state"] == "finished"
    time.sleep(2 * 0.25)
    assert service.status(doomed)["message"] == WORKER_GONE.format(worker=address)  # it never ran a second time


def test_a_restarted_dashboard_finds_the_clusters_runs_again(tmp_path, adata, cluster):
    first = ClusterTrainingService(tmp_path / "runs", cluster.scheduler_address)
    wait_for(lambda: first.slots == 2, 30)
    run_id = first.submit(tiny(max_epochs=40), adata, "tiny", batch_key="batch")
    training(first, run_id)
    first.close()  # the web process goes; the run trains on
    second = ClusterTrainingService(tmp_path / "runs", cluster.scheduler_address)
    try:
        assert run_id in second.active_run_ids()
        status = second.wait(run_id, 120)
        assert status["state"] == "finished" and status["message"] != TASK_LOST
    finally:
        second.close()


def test_an_unreachable_scheduler_is_a_banner_and_queued_runs_wait_until_it_is_back(tmp_path, adata):
    def local_cluster(port):
        return distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                        scheduler_port=port)

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    gone = local_cluster(port)
    service = ClusterTrainingService(tmp_path / "runs", address)
    try:
        wait_for(lambda: service.slots == 1, 30)
        gone.close()
        run_id = service.submit(tiny(), adata, "tiny", batch_key="batch")  # accepted: it waits in the queue
        wait_for(lambda: service.problem is not None and "is not reachable" in service.problem, 30)
        assert service.problem.startswith(f"The cluster at {address} is not reachable")
        assert service.status(run_id)["state"] == "queued" and service.queue_position(run_id) == (1, 1)
        back = local_cluster(port)
        try:
            assert service.wait(run_id, 120)["state"] == "finished"
            assert service.problem is None
        finally:
            back.close()
    finally:
        service.close()


def test_the_environment_variable_picks_the_backend(tmp_path, monkeypatch, cluster):
    monkeypatch.setenv(settings.CLUSTER_ENV, cluster.scheduler_address)
    close_all()
    try:
        service = service_for(tmp_path / "runs")
        assert isinstance(service, ClusterTrainingService) and service.cluster == cluster.scheduler_address
    finally:
        close_all()
    monkeypatch.delenv(settings.CLUSTER_ENV)
    assert settings.cluster() is None


def test_a_cluster_file_describes_a_slurm_cluster(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(textwrap.dedent("""\
        slurm:
          cores: 8
          memory: 32GB
          walltime: "04:00:00"
          queue: gpu
          job_extra_directives: ["--gres=gpu:1"]
          worker_extra_args: ["--resources", "GPU=1"]
        adapt: {minimum_jobs: 0, maximum_jobs: 4}
        """))
    assert cluster_file.is_cluster_file(str(path))
    system, options, scale = cluster_file.read(path)
    assert system == "slurm" and options["processes"] == 1 and scale == {"adapt": {"minimum_jobs": 0,
                                                                                   "maximum_jobs": 4}}
    slurm = cluster_file.build(system, options)
    try:
        script = slurm.job_script()
    finally:
        slurm.close()
    for line in ("#SBATCH -p gpu", "#SBATCH --gres=gpu:1", "#SBATCH -t 04:00:00", "#SBATCH --cpus-per-task=8",
                 "--resources GPU=1", "--nthreads 8"):
        assert line in script, line
    adapt = {"adapt": {"minimum_jobs": 0, "maximum_jobs": 4}}
    assert [cluster_file.jobs_wanted(adapt, demand, 0) for demand in range(6)] == [0, 1, 2, 3, 4, 4]
    assert cluster_file.jobs_wanted(adapt, 1, 3) == 3  # a run still trains or waits: no job is cut
    assert cluster_file.jobs_wanted(adapt, 0, 3) == 0  # the queue is empty: every job goes
    assert cluster_file.jobs_wanted({"jobs": 2}, 5, 2) == 2
    toml = tmp_path / "cluster.toml"
    toml.write_text('jobs = 2\n[slurm]\ncores = 4\nmemory = "16GB"\n')
    assert cluster_file.read(toml) == ("slurm", {"processes": 1, "cores": 4, "memory": "16GB"}, {"jobs": 2})
    for text, words in (("kubernetes: {}\n", "must name one batch system"), ("slurm: [\n", "not valid YAML"),
                        ("- 1\n", "must hold a table")):
        path.write_text(text)
        with pytest.raises(ValueError, match=words):
            cluster_file.read(path)


def test_a_cluster_file_adapts_its_jobs_to_the_queue(tmp_path, adata):
    """The whole cluster-file path with dask-jobqueue's local batch system (each job a process here): no job while
    the queue is empty, one per run training or waiting, and none again once they are done."""
    path = tmp_path / "cluster.yaml"
    path.write_text("local:\n  cores: 1\n  memory: 2GB\nadapt: {minimum_jobs: 0, maximum_jobs: 2}\n")
    service = ClusterTrainingService(tmp_path / "runs", str(path))
    try:
        wait_for(lambda: service.problem is not None and "has no worker yet" in service.problem, 30)
        runs = [service.submit(tiny(), adata, "tiny", batch_key="batch") for _ in range(3)]
        wait_for(lambda: len(service._jobqueue.worker_spec) == 2, 30)  # two jobs for three runs: the most allowed
        statuses = [service.wait(run_id, 180) for run_id in runs]
        assert [s["state"] for s in statuses] == ["finished"] * 3, [s["message"] for s in statuses]
        assert len({s["worker"] for s in statuses}) == 2
        wait_for(lambda: len(service._jobqueue.worker_spec) == 0, 30)  # the queue is empty: the jobs go
    finally:
        service.close()
