"""Training on a Dask cluster: the training service's second backend, chosen with ``SCVI_DASHBOARD_CLUSTER``.

Why Dask: the web server often sits on a small VM or an HPC login node while the GPUs are elsewhere, and the field
already runs Dask there (``dask worker`` on a GPU box, dask-jobqueue's Slurm / PBS / SGE / LSF jobs, Kubernetes).
The queue, the run folders and every page stay as they are (:mod:`dashboard.service`); only where a run trains
changes:

- **one run = one Dask task** (:func:`dashboard.worker.train_on_dask_worker`), pinned to a worker that trains
  nothing else, so a worker trains one run at a time with all its threads (its GPU, when it advertises the Dask
  resource ``GPU``: the task then asks for ``{"GPU": 1}`` and trains on ``cuda``). The dispatcher hands a queued run
  to a free worker, so the queue keeps its order, its places and its waits, with a slot per worker of the cluster;
- **no automatic retries**: a run whose worker goes away (killed, out of memory, a batch job at its walltime) is
  failed once with the reason, and a task the scheduler starts again anyway refuses to train twice;
- **the runs folder is the record**, on a file system the dashboard and the workers share: the worker reads the
  run's ``data.h5ad`` (or the on-disk atlas its config names) there and writes its status, history and model there,
  as a local worker does, so progress, curves and results need no other channel and nothing large passes through
  the scheduler. Stop is a Dask ``Event`` the task polls (within a second);
- **faults are states**: a scheduler that cannot be reached is a banner (:attr:`TrainingService.problem`) while
  queued runs wait, and they start when it is back; a dashboard restart finds the runs the cluster still trains
  (tasks are ``fire_and_forget``: they do not belong to the web process).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from . import cluster_file, settings
from .runs import DONE_STATES
from .service import CLAIM_GRACE_SECONDS, TrainingService
from .worker import STOP_EVENT_PREFIX, train_on_dask_worker

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 3.0
RECONNECT_EVERY_S = 5.0
MEMORY_SHARE = 0.9
"""Of a worker's memory limit, what a run may plan to use: Dask's nanny restarts a worker at 95% of its limit."""
TASK_PREFIX = "scvi-dashboard-run-"
WORKER_GONE = ("The Dask worker training this run ({worker}) went away: it was killed, ran out of memory (Dask "
               "restarts a worker that passes 95% of its memory limit) or its batch job reached its walltime. The "
               "epochs it finished are in its history; the run was not restarted. Start it again, with fewer cells "
               "or genes or a smaller batch size if memory was the reason.")
TASK_LOST = ("The cluster no longer has this run (its scheduler restarted, or the task was cancelled outside the "
             "dashboard). The epochs it finished are in its history; start it again.")


def task_key(run_id: str) -> str:
    return TASK_PREFIX + run_id


def advertises_gpu(worker: dict) -> bool:
    """Whether a worker (its entry in the scheduler's info) offers the Dask resource ``GPU``: runs there ask for one
    and train on ``cuda``."""
    return bool(worker.get("resources", {}).get("GPU"))


class ClusterTrainingService(TrainingService):
    """The training service with runs trained on the Dask cluster ``cluster``: a scheduler's address, or a YAML or
    TOML file that describes a dask-jobqueue cluster (:mod:`dashboard.cluster_file`)."""

    def __init__(self, runs_dir: str | Path, cluster: str):
        self.cluster = cluster
        super().__init__(runs_dir)

    def _start_backend(self, slots: int | None, memory_budget: int | None) -> None:
        """Nothing is known of the cluster before the dispatcher connects: no slot yet, no memory limit."""
        self.slots, self.memory_budget, self.threads, self.devices, self.gpus = 0, None, 1, 1, 0
        self.memory_limit_origin = (f"on a worker of the cluster ({MEMORY_SHARE:.0%} of the smallest worker's memory "
                                    "limit, `dask worker --memory-limit`)")
        self._client = None
        self._jobqueue = None
        """The dask-jobqueue cluster this process started from a cluster file (its scheduler runs here), and how it
        scales (:func:`dashboard.cluster_file.jobs_wanted`)."""
        self._scale: dict = {}
        self._workers: dict[str, dict] = {}
        self._futures: dict[str, object] = {}
        self._stops_sent: set[str] = set()
        self._connect_after = 0.0

    def device_label(self) -> str:
        """Where runs train, for a person: "the Dask cluster at tcp://…: 2 workers (1 thread each)", or "…: 2 GPU
        workers"."""
        where = self.place
        if not self._workers:
            return f"{where} (no worker has joined yet)"
        n = len(self._workers)
        if self.gpus:
            return f"{where}: {n} GPU worker{'s' if n > 1 else ''}"
        threads = f"{self.threads} thread{'s' if self.threads > 1 else ''}"
        return f"{where}: {n} worker{'s' if n > 1 else ''} ({threads} each)"

    @property
    def place(self) -> str:
        return f"the Dask cluster at {self.cluster}"

    def warm_up(self) -> None:
        """Workers of a cluster are started by the cluster, not by a page."""

    def _stop_backend(self) -> None:
        """Disconnect; runs on the cluster carry on (but a jobqueue cluster started by this process ends)."""
        if self._client is not None:
            self._client.close(timeout=CONNECT_TIMEOUT_S)
        if self._jobqueue is not None:
            self._jobqueue.close()

    # ---- the dispatcher ---------------------------------------------------------------------------------------------
    def _tick(self) -> None:
        client = self._connected()
        if client is None:
            return
        try:
            self._look_at_cluster(client)
            if self._jobqueue is not None:
                self._ask_for_jobs()
            self._reap(client)
            self._deliver_stops()
            busy = {self.store.read_status(job.run_id).get("worker") for job in self.queue.running()}
            free = [address for address in self._workers if address not in busy]
            while free and (job := self.queue.claim(len(self._workers))) is not None:
                self._launch(client, job.run_id, job.slot, free.pop(0))
        except (OSError, TimeoutError) as err:  # the scheduler went away between two calls
            self._lost(err)

    def _connected(self):
        """The client of the cluster, connecting (again) when there is none; None while it cannot be reached, with
        :attr:`problem` saying so."""
        if self._client is not None and self._client.status == "running":
            return self._client
        if self._client is not None:
            self._lost(OSError("the connection to its scheduler was closed"))
        if time.monotonic() < self._connect_after:
            return None
        from distributed import Client  # noqa: PLC0415 - only a cluster backend needs distributed

        try:
            if cluster_file.is_cluster_file(self.cluster):
                if self._jobqueue is None:
                    system, options, self._scale = cluster_file.read(self.cluster)
                    self._jobqueue = cluster_file.build(system, options)
                address = self._jobqueue
            else:
                address = self.cluster
            self._client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except Exception as err:  # noqa: BLE001 - any failure to reach or start a cluster is a banner, not a crash
            self._lost(err)
            return None
        return self._client

    def _lost(self, err: Exception) -> None:
        self.problem = (f"The cluster at {self.cluster} is not reachable ({err}). Queued runs wait and start when it "
                        "is back; runs already training there go on as long as their workers do. Check that its "
                        f"scheduler runs and that this server can reach it, or unset {settings.CLUSTER_ENV} to "
                        "train on this server.")
        if self._client is not None:
            client, self._client = self._client, None
            try:
                client.close(timeout=1)
            except Exception:  # noqa: BLE001 - it is gone already
                pass
        self._workers, self._futures, self._stops_sent = {}, {}, set()  # a new client asks the cluster afresh
        self.slots = 0
        self._connect_after = time.monotonic() + RECONNECT_EVERY_S

    def _look_at_cluster(self, client) -> None:
        """The workers now: a slot each; the threads, GPUs and memory limit a run gets there."""
        # asked of the scheduler itself: Client.scheduler_info returns the client's cache, which its own refresh
        # every few seconds replaces with one that lists no worker (distributed 2026.8), and a run whose worker was
        # missing from one look was failed as if that worker had died
        self._workers = client.sync(client.scheduler.identity, n_workers=-1)["workers"]
        self.slots = len(self._workers)
        workers = list(self._workers.values())
        self.threads = min((w["nthreads"] for w in workers), default=1)
        self.gpus = sum(map(advertises_gpu, workers))
        limits = [w["memory_limit"] for w in workers if w.get("memory_limit")]
        self.memory_budget = int(MEMORY_SHARE * min(limits)) if limits else None
        self.problem = None if workers else (
            f"The cluster at {self.cluster} has no worker yet: queued runs wait until one joins (a `dask worker "
            "…` started, or a batch job of the cluster running).")

    def _ask_for_jobs(self) -> None:
        """Keep as many batch jobs as the cluster file says for the runs training and waiting now."""
        demand = len(self.queue.running()) + len(self.queue.waiting())
        current = len(self._jobqueue.worker_spec)
        wanted = cluster_file.jobs_wanted(self._scale, demand, current)
        if wanted != current:
            self._jobqueue.scale(jobs=wanted)

    def _launch(self, client, run_id: str, slot: int, worker: str) -> None:
        from distributed import fire_and_forget  # noqa: PLC0415

        gpu = advertises_gpu(self._workers[worker])
        self.store.write_status(run_id, state="running", message="Starting on the cluster…", slot=slot,
                                cluster=self.cluster, worker=worker)
        future = client.submit(train_on_dask_worker, str(self.store.root), run_id, "cuda" if gpu else "cpu",
                               key=task_key(run_id), workers=[worker], allow_other_workers=False, pure=False,
                               retries=0, resources={"GPU": 1} if gpu else None)
        fire_and_forget(future)  # it trains on even if this web process ends
        self._futures[run_id] = future

    def _deliver_stops(self) -> None:
        from distributed import Event  # noqa: PLC0415

        for job in self.queue.running():
            if job.stop_requested and job.run_id not in self._stops_sent:
                Event(STOP_EVENT_PREFIX + job.run_id, client=self._client).set()
                self._stops_sent.add(job.run_id)

    def _reap(self, client) -> None:
        """Close the runs that have ended: by their own status, by their task's error, or because their worker left
        the cluster; a run this process did not submit (before a restart) is closed once the cluster no longer
        has its task."""
        processing = {key for keys in client.processing().values() for key in keys}
        for job in self.queue.running():
            status, future = self.store.read_status(job.run_id), self._futures.get(job.run_id)
            worker, late = status.get("worker"), time.time() - (job.started or 0) > CLAIM_GRACE_SECONDS
            if status.get("state") in DONE_STATES:
                self._end(job.run_id)
            elif future is not None and future.status == "error":
                self._end(job.run_id, f"The cluster could not train this run: {future.exception()}")
            elif worker is None:  # claimed by another dashboard process that has not handed it over yet
                if late:
                    self._end(job.run_id, TASK_LOST, state="interrupted")
            elif worker not in self._workers:
                self._end(job.run_id, WORKER_GONE.format(worker=worker))
            elif future is None and task_key(job.run_id) not in processing and late:
                self._end(job.run_id, TASK_LOST, state="interrupted")

    def _end(self, run_id: str, message: str | None = None, state: str = "failed") -> None:
        """Free ``run_id``'s slot, recording ``message`` unless its status says how it ended (its task is then
        cancelled, so that the scheduler never starts it again), and forget its task and its stop event."""
        from distributed import Event, Future  # noqa: PLC0415

        future = self._futures.pop(run_id, None)
        if message is None:
            self.queue.finish(run_id)
        else:
            self._client.cancel([future or Future(task_key(run_id), client=self._client)], force=True)
            self._close(run_id, message, state)
        if run_id in self._stops_sent:
            self._stops_sent.discard(run_id)
            Event(STOP_EVENT_PREFIX + run_id, client=self._client).clear()
