"""Training as a service: any session submits runs, a queue orders them, worker processes train them.

Why this shape: the dashboard is shared (a demo room, a lab server), so a second Start must wait its turn rather be
refused, and no run may take the server down. Runs are queued in a SQLite table (:mod:`dashboard.job_queue`), each
trains in its own process (:mod:`dashboard.worker`), and one dispatcher thread per server process hands queued runs
to free slots (``SCVI_DASHBOARD_TRAINING_SLOTS``: one per GPU, else one per few cores,
:func:`dashboard.settings.training_slots`), watches the workers' memory, and turns a worker that died into a failed
run with the reason in words. While a slot is free, a spare worker is kept started with its imports done, so that a
run begins at once (none is started while every slot trains: its imports would take CPU from
training). Everything the pages show comes from the run folders and the queue table, so every session, a
reloaded tab, and a restarted server see the same runs; after a restart, queued runs start and a run whose worker
went away with the old server is shown as interrupted with what it kept.

Pages get the service of the configured runs directory with :func:`dashboard.services.service_for` (one per
directory and process; runs train on a Dask cluster instead with :mod:`dashboard.cluster`).
"""

from __future__ import annotations

import heapq
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import anndata as ad
import pandas as pd

from scvi_core.io import working_copy
from scvi_core.model import MODELS

from . import config as cfg
from . import estimates, settings
from .job_queue import JobQueue
from .processes import is_running, process_tree_resident_bytes
from .runs import DONE_STATES, RunStore, now
from .worker import STOP_SIGNAL

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[1]
POLL_SECONDS = 0.25
QUEUE_FILE = "queue.sqlite3"
WORKER_BASE_BYTES = 500 * 2**20
"""Memory of a worker process with nothing to train but its imports (Python, torch, anndata): the peak of a run on
2,000 × 500 cells was 494 MB (benchmarks/worker_memory.py)."""
CLAIM_GRACE_SECONDS = 60
"""A job claimed by another server process gets this long to record its worker's pid before it counts as lost."""
INTERRUPTED = ("Interrupted: the dashboard server stopped while this run was training, and its training process "
               "ended with it, so no model was saved. The epochs it finished are in its history; start a new run.")


class MemoryBudgetError(ValueError):
    """A run cannot fit in the memory a training process may use on this server. The message gives both figures
    and what to change."""


class TrainingService:
    """Submits, cancels, stops and watches the training runs stored under ``runs_dir``."""

    cluster: str | None = None
    """Where runs train when it is not this server: a Dask cluster
    (:class:`dashboard.cluster.ClusterTrainingService`)."""

    def __init__(self, runs_dir: str | Path, slots: int | None = None, memory_budget: int | None = None):
        self.store = RunStore(runs_dir)
        self.queue = JobQueue(self.store.root / QUEUE_FILE)
        self.problem: str | None = None
        """Why queued runs cannot start now, in words, for a banner (None when they can)."""
        self._start_backend(slots, memory_budget)
        self._wake, self._closed = threading.Event(), threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._dispatch_forever, daemon=True, name="training-dispatcher")
        self._thread.start()

    def _start_backend(self, slots: int | None, memory_budget: int | None) -> None:
        """This server's worker processes: how many slots, their memory, threads and devices."""
        self.slots = settings.training_slots() if slots is None else slots
        self.memory_budget = settings.worker_memory_bytes(self.slots) if memory_budget is None else memory_budget
        self.gpus = settings.gpu_count()
        self.devices = settings.devices_per_run()
        self.threads = settings.worker_threads(self.slots)
        self.memory_limit_origin = f"on this server (set by {settings.WORKER_MEMORY_ENV})"
        estimates.start_calibration(self.threads)  # before any page asks for an estimate
        self._workers: dict[str, subprocess.Popen] = {}
        self._over_budget: dict[str, int] = {}
        self._spare: subprocess.Popen | None = None
        self._in_use = False
        """Whether this process has been asked to train (:meth:`warm_up`): only then is a spare worker kept, so that
        a server that is only browsed starts none."""

    # ---- what sessions do ---------------------------------------------------------------------------------------
    def submit(self, config: dict, adata: ad.AnnData, dataset_name: str | None = None, batch_key: str | None = None,
               labels_key: str | None = None, owner: str | None = None) -> str:
        """Check ``config`` and the memory it needs, store a new run (settings and data) and queue it. Returns the
        run id. Raises ``ValueError`` for settings that cannot work (:func:`dashboard.config.validate`) and
        :class:`MemoryBudgetError` for a run too large for this server."""
        problems = cfg.validate(config, adata.n_obs, adata.n_vars, batch_key, labels_key).errors
        if problems:
            raise ValueError(" ".join(problems))
        self.check_memory(config, adata)
        adata = working_copy(adata)
        MODELS[config["model"]].setup_anndata(adata, batch_key=batch_key, labels_key=labels_key)
        record = {**config, "setup": {"batch_key": batch_key, "labels_key": labels_key}, "dataset_name": dataset_name,
                  "owner": owner}
        expected = self.estimate(config, adata.n_obs, adata.n_vars).expected_seconds
        run_id = self.store.create(record, adata)
        self.queue.enqueue(run_id, owner, expected)
        self.warm_up()
        self._wake.set()
        return run_id

    @property
    def place(self) -> str:
        """Where runs train, for a sentence: "this server" (a cluster names itself)."""
        return "this server"

    def device_label(self) -> str:
        """Where a run trains, for a person: "this server's CPU", "this server's 2 GPUs", "this server's 1 GPU (2
        data-parallel GPUs per run)"."""
        parallel = f" ({self.devices} data-parallel {'GPUs' if self.gpus else 'processes'} per run)"
        label = f"{self.gpus} GPU{'s' if self.gpus > 1 else ''}" if self.gpus else "CPU"
        return f"{self.place}'s {label}" + (parallel if self.devices > 1 else "")

    def estimate(self, config: dict, n_cells: int, n_genes: int) -> estimates.Estimate:
        """How long ``config`` will take on this server's workers (:func:`dashboard.estimates.estimate`)."""
        return estimates.estimate(self.store, config, n_cells, n_genes, self.threads, self.devices, self.cluster)

    def memory_needed(self, config: dict, adata: ad.AnnData) -> int:
        """Expected peak memory of a run: a data-parallel run's processes each hold their own copy of counts in
        memory (they are sent to each process), so its peak is one process's times the devices."""
        return self.devices * estimates.peak_memory_bytes(WORKER_BASE_BYTES, adata, config)

    def check_memory(self, config: dict, adata: ad.AnnData) -> None:
        """Refuse, with the figures and what to change, a run whose expected peak exceeds the worker budget."""
        need = self.memory_needed(config, adata)
        if self.memory_budget is not None and need > self.memory_budget:
            processes = f" ({self.devices} data-parallel processes)" if self.devices > 1 else ""
            raise MemoryBudgetError(
                f"This run needs about {estimates.format_bytes(need)} of memory{processes}, but a training run may "
                "use at most "
                f"{estimates.format_bytes(self.memory_budget)} {self.memory_limit_origin}. Train on fewer cells or "
                "genes (Load data → Prepare data: filters, highly variable genes) or with a smaller batch size.")

    def warm_up(self) -> None:
        """Keep a spare worker started from now on (its imports take a few seconds), because a run is likely to
        come: the Model and Training pages call this."""
        if not self._in_use:
            self._in_use = True
            self._wake.set()

    def cancel(self, run_id: str) -> bool:
        """Take a queued run out of the queue (it is kept, as cancelled); False once it has started."""
        if not self.queue.cancel(run_id):
            return False
        self.store.write_status(run_id, state="cancelled", message="Cancelled before it started.", ended=now())
        return True

    def stop(self, run_id: str) -> bool:
        """Ask a running run to stop after its current minibatch; it keeps and saves the model trained so far.
        False when it is not running. The signal goes out on the dispatcher's next tick, once the worker has said
        it is training (it then handles the signal instead of dying of it)."""
        if self.queue.request_stop(run_id) is None:
            return False
        self._wake.set()
        return True

    # ---- what pages read --------------------------------------------------------------------------------------------
    def status(self, run_id: str) -> dict:
        return self.store.read_status(run_id)

    def history(self, run_id: str) -> pd.DataFrame:
        return self.store.read_history(run_id)

    def list_runs(self) -> pd.DataFrame:
        return self.store.list_runs()

    def is_stopping(self, run_id: str) -> bool:
        job = self.queue.get(run_id)
        return job is not None and job.state == "running" and job.stop_requested

    def active_run_ids(self) -> list[str]:
        """Runs training now, then runs waiting, in the order they will start. A run whose status says it has
        ended is not among them, even before the dispatcher frees its slot: the pages follow the run folders."""
        return [job.run_id for job in self.queue.running() + self.queue.waiting()
                if self.store.read_status(job.run_id).get("state") not in DONE_STATES]

    def queue_position(self, run_id: str) -> tuple[int, int] | None:
        """(1-based place, number waiting) of a queued run; None when it is not waiting."""
        waiting = [job.run_id for job in self.queue.waiting()]
        return (waiting.index(run_id) + 1, len(waiting)) if run_id in waiting else None

    def wait_seconds(self, run_id: str) -> float | None:
        """Expected seconds until a queued run starts: the running runs' expected time left, then the runs ahead of
        it, each taking the first slot to come free. None when it is not waiting."""
        waiting = self.queue.waiting()
        place = next((i for i, job in enumerate(waiting) if job.run_id == run_id), None)
        if place is None:
            return None
        clock = time.time()
        free_at = [clock + max(0.0, (job.estimate_seconds or 0.0) - (clock - (job.started or clock)))
                   for job in self.queue.running()]  # each running run's estimate minus the time it has run
        free_at += [clock] * max(0, max(self.slots, 1) - len(free_at))  # a cluster with no worker yet: one to come
        heapq.heapify(free_at)
        for job in waiting[:place]:
            heapq.heappush(free_at, heapq.heappop(free_at) + (job.estimate_seconds or 0.0))
        return max(0.0, free_at[0] - clock)

    def queue_rows(self, owner: str) -> list[dict]:
        """One row per run training or waiting, in the order they run: whose it is (``owner``'s or another
        session's), model, dataset, state, place in the queue and when it starts."""
        rows = []
        for run_id in self.active_run_ids():
            status, config = self.status(run_id), self.store.read_config(run_id)
            if status.get("state") not in ("queued", "running"):
                continue  # ended a moment ago; the dispatcher frees its slot on its next tick
            place, wait = self.queue_position(run_id), self.wait_seconds(run_id)
            rows.append({"run": run_id, "whose": "yours" if config.get("owner") == owner else "another session",
                         "model": cfg.MODEL_NAMES.get(config["model"]), "dataset": config.get("dataset_name"),
                         "state": status.get("state"),
                         "place": "training" if place is None else f"{place[0]} of {place[1]}",
                         "starts": "now" if wait is None else cfg.format_duration(wait)})
        return rows

    def wait(self, run_id: str, timeout: float = 300.0) -> dict:
        """Block until ``run_id`` has ended (for scripts and tests); its final status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status(run_id)
            job = self.queue.get(run_id)
            if status.get("state") in DONE_STATES and (job is None or job.state == "done"):
                return status
            time.sleep(0.1)
        raise TimeoutError(f"Run {run_id} did not end within {timeout:.0f} s.")

    def close(self) -> None:
        """Stop dispatching and end the spare worker (runs training now carry on and are found again later)."""
        self._closed.set()
        self._wake.set()
        self._thread.join(5)
        with self._lock:
            self._stop_backend()

    def _stop_backend(self) -> None:
        if self._spare is not None:
            self._spare.kill()
            self._spare.wait()
            self._spare = None

    # ---- the dispatcher ---------------------------------------------------------------------------------------------
    def _dispatch_forever(self) -> None:
        while not self._closed.is_set():
            try:
                with self._lock:
                    self._tick()
            except Exception:  # noqa: BLE001 - e.g. the runs folder vanished; try again, never end the thread
                log.exception("Training dispatcher")
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()

    def _tick(self) -> None:
        self._reap()
        self._deliver_stops()
        while (job := self.queue.claim(self.slots)) is not None:
            self._launch(job.run_id, job.slot)
        idle_slot = len(self.queue.running()) < self.slots
        if self._in_use and idle_slot and (self._spare is None or self._spare.poll() is not None):
            self._spare = self._spawn()

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "dashboard.worker", str(self.store.root), str(self.threads)],
                                stdin=subprocess.PIPE, cwd=PROJECT_ROOT, text=True, start_new_session=True)

    def _launch(self, run_id: str, slot: int) -> None:
        """Hand ``run_id`` to the spare worker (a new one if it is gone), on the slot's GPU when there are GPUs."""
        device = device_for_slot(slot, self.gpus, self.devices)
        self.store.write_status(run_id, state="running", message="Starting the training process…", slot=slot)
        for _ in range(3):
            worker, self._spare = (self._spare if self._spare and self._spare.poll() is None else self._spawn()), None
            try:
                worker.stdin.write(f"{run_id} {device} {self.devices}\n")
                worker.stdin.close()
                break
            except (BrokenPipeError, OSError):
                worker.kill()
        self.queue.set_pid(run_id, worker.pid)
        self._workers[run_id] = worker

    def _deliver_stops(self) -> None:
        for job in self.queue.running():
            if job.stop_requested and job.pid and self.store.read_status(job.run_id).get("pid") == job.pid:
                try:
                    os.kill(job.pid, STOP_SIGNAL)
                except ProcessLookupError:
                    pass  # it has just ended; the reaper closes it

    def _reap(self) -> None:
        """Close the runs whose worker has ended: this process's workers by their exit code, and those started by
        another (or an earlier) server process once their process is gone. Workers over budget are killed."""
        for run_id, worker in list(self._workers.items()):
            code = worker.poll()
            if code is None:
                self._check_memory(run_id, worker)
                continue
            del self._workers[run_id]
            self._close(run_id, self._crash_message(run_id, code))
        for job in self.queue.running():
            if job.run_id in self._workers or _worker_alive(job.pid):
                continue
            if job.pid is None and time.time() - (job.started or 0) < CLAIM_GRACE_SECONDS:
                continue
            self._close(job.run_id, INTERRUPTED, state="interrupted")

    def _check_memory(self, run_id: str, worker: subprocess.Popen) -> None:
        used = process_tree_resident_bytes(worker.pid)  # with a data-parallel run's other processes
        if used > self.memory_budget:
            self._over_budget[run_id] = used
            worker.kill()

    def _close(self, run_id: str, message: str, state: str = "failed") -> None:
        """The run's worker is gone: unless it recorded how its run ended, record ``message``; free its slot."""
        if self.store.read_status(run_id).get("state") not in DONE_STATES:
            self.store.write_status(run_id, state=state, message=message, ended=now())
        self.queue.finish(run_id)

    def _crash_message(self, run_id: str, code: int) -> str:
        if run_id in self._over_budget:
            used = self._over_budget.pop(run_id)
            return (f"The training process used {estimates.format_bytes(used)} of memory, more than the "
                    f"{estimates.format_bytes(self.memory_budget)} a run may use on this server, and was stopped. "
                    "Train on fewer cells or genes or with a smaller batch size. The epochs it finished are in its "
                    "history.")
        if code == -signal.SIGKILL:
            return ("The training process was killed, probably because the machine ran out of memory: try fewer "
                    "cells, genes or a smaller batch size. The epochs it finished are in its history.")
        if code < 0:
            return (f"The training process crashed ({signal.Signals(-code).name}). The epochs it finished are in its "
                    "history; start the run again, and if it crashes again, look at the server's log.")
        return (f"The training process ended unexpectedly (exit code {code}) before finishing the run; the server's "
                "log says why. The epochs it finished are in its history.")


def device_for_slot(slot: int, gpus: int, devices: int = 1) -> str:
    """Each slot's worker trains on its own GPU (slots beyond the GPUs share them in turn); without GPUs, the CPU.
    A data-parallel run (``devices`` > 1) trains on GPUs 0 … devices − 1 ("cuda")."""
    if not gpus:
        return "cpu"
    return "cuda" if devices > 1 else f"cuda:{slot % gpus}"


def _worker_alive(pid: int | None) -> bool:
    """Whether ``pid`` is a running training worker (not a recycled pid of another program)."""
    if pid is None:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"dashboard.worker" in cmdline and is_running(pid)
