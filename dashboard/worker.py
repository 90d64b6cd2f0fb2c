"""One training run in a process of its own: ``python -m dashboard.worker RUNS_DIR THREADS``, or as a task on a Dask
worker (:func:`train_on_dask_worker`).

Why a process per run: a crash, a segfault or an out-of-memory kill then ends one run, never the web server and
every session with it, and training does not share the server's interpreter (its lock and CPU) with the pages that
watch it. The service (:mod:`dashboard.service`) starts the process ahead of time, so that the imports (torch,
anndata) are done before a run is handed over; it then writes ``RUN_ID DEVICE DEVICES`` on the worker's stdin. The worker
trains that one run and exits, so that every run starts with a fresh process and gives its memory back.

What crosses the process boundary is files and signals only: the worker writes the run's ``status.json`` and
``history.csv`` (throttled, see below) and the service reads them; SIGUSR1 asks it to stop (it keeps and saves
the model trained so far), and a server that goes away (the worker's parent changes) interrupts it the same way.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import torch

from scvi_core.model import MODELS
from scvi_core.train import TrainingDivergedError, TrainingEvent

from . import settings
from .runs import RunStore, now  # torch and anndata load here, before a run is handed over

log = logging.getLogger(__name__)
STOP_SIGNAL = signal.SIGUSR1
STATUS_EVERY_S = 0.5
"""How often the progress in status.json is rewritten: twice per page refresh is enough to look live."""
HISTORY_EVERY_S = 2.0
"""How often history.csv is rewritten while training (and once at the end). The quick demo finishes an epoch every
few tens of milliseconds: rewriting the growing CSV after each would cost training time for a curve that the page
redraws only every few seconds."""
PARENT_CHECK_S = 1.0
STOP_POLL_S = 0.5


class Reporter:
    """The training callback: keeps the history and writes progress and history to the run folder, throttled."""

    def __init__(self, store: RunStore, run_id: str, n_genes: int):
        self.store, self.run_id, self.n_genes = store, run_id, n_genes
        self.rows: list[dict] = []
        self._status_at = self._history_at = 0.0

    def __call__(self, event: TrainingEvent) -> None:
        if event.kind == "epoch":
            self.rows.append(event.metrics)
        clock = time.monotonic()
        if clock - self._history_at >= HISTORY_EVERY_S and self.rows:
            self._history_at = clock
            self.write_history()
        if clock - self._status_at >= STATUS_EVERY_S:
            self._status_at = clock
            done = event.epoch - 1 + event.step / event.steps_per_epoch if event.kind == "progress" else event.epoch
            self.store.write_status(self.run_id, epoch=len(self.rows), epochs_done=done,
                                    cells_per_second=event.cells_per_second, train_seconds=event.elapsed_seconds,
                                    entries_per_second=event.cells_per_second * self.n_genes,
                                    updated=time.time())

    def write_history(self) -> None:
        self.store.write_history(self.run_id, pd.DataFrame(self.rows))


def train_run(store: RunStore, run_id: str, device: str, stop: threading.Event, devices: int = 1,
              watch_server: bool = True) -> None:
    """Train ``run_id`` on ``device`` (data-parallel on ``devices`` of them) until it ends or ``stop`` is set; every
    outcome ends in a final status.json (a crash is reported by the service). ``watch_server``: interrupt it when
    the server that started this process goes away (a Dask worker's run outlives the dashboard instead)."""
    server_gone, finished = threading.Event(), threading.Event()
    if watch_server:
        _watch_parent(stop, server_gone, finished)
    began = time.monotonic()
    config = store.read_config(run_id)
    train = config["train_params"]
    store.write_status(run_id, state="running", message="Loading the data and building the model…", started=now(),
                       pid=os.getpid(), device=device, devices=devices, epoch=0, max_epochs=train["max_epochs"])
    reporter = None
    try:
        adata = store.load_adata(run_id)
        reporter = Reporter(store, run_id, adata.n_vars)
        model = MODELS[config["model"]](adata, **config["model_params"])
        store.write_status(run_id, message="Training.", setup_seconds=time.monotonic() - began, n_cells=adata.n_obs,
                           n_genes=adata.n_vars, threads=torch.get_num_threads())
        model.train(**train, device=device, devices=devices, callback=reporter, stop_event=stop)
        store.write_history(run_id, model.history)
        store.write_status(run_id, message="Saving the model and its results…")
        store.save_model(run_id, model)
        store.save_results(run_id, model)
        info = model.stop_info
        train_seconds = float(model.history["seconds"].iloc[-1])
        state = "interrupted" if server_gone.is_set() else "stopped" if stop.is_set() else "finished"
        store.write_status(run_id, state=state, ended=now(), message=_end_message(info, server_gone.is_set()),
                           stop_reason=info.reason, kept_epoch=info.kept_epoch, best_epoch=info.best_epoch,
                           epoch=info.epochs, final_elbo=final_elbo(model.history, info.kept_epoch),
                           train_seconds=train_seconds, wall_seconds=time.monotonic() - began,
                           peak_memory_bytes=_peak_memory_bytes(), device=str(model.device))
    except TrainingDivergedError as err:
        _fail(store, run_id, reporter, str(err))
    except Exception as err:  # noqa: BLE001 - whatever happens, the run ends with a reason a person can read
        log.exception("Training run %s failed", run_id)
        _fail(store, run_id, reporter, f"Training failed: {err}")
    finally:
        finished.set()


def final_elbo(history: pd.DataFrame, epoch: int | None = None) -> float | None:
    """−ELBO per cell on validation cells (on training cells when there are none) of ``epoch`` (default: the last),
    the epoch whose weights the model keeps."""
    if history.empty:
        return None
    row = history.iloc[-1]
    if epoch is not None and (history["epoch"] == epoch).any():
        row = history[history["epoch"] == epoch].iloc[-1]
    value = row.get("elbo_validation")
    return float(row["elbo_train"] if value is None or pd.isna(value) else value)


def _end_message(info, server_gone: bool) -> str:
    """Why the run ended, in the words of :attr:`StopInfo.message`; a stopped run says its model was saved."""
    if server_gone:
        return (f"Interrupted: the dashboard server stopped during epoch {info.epochs} of {info.max_epochs}. The "
                "model trained so far was saved and can be opened; start a new run to train it fully.")
    return info.describe(kept="saved")


def _fail(store: RunStore, run_id: str, reporter: Reporter | None, message: str) -> None:
    if reporter is not None and reporter.rows:
        reporter.write_history()
    store.write_status(run_id, state="failed", message=message, ended=now())


def _watch_parent(stop: threading.Event, server_gone: threading.Event, finished: threading.Event) -> None:
    """Interrupt training when the server that started this process goes away (this process is then re-parented)."""
    parent = os.getppid()

    def watch():
        while not finished.is_set():
            if os.getppid() != parent:
                server_gone.set()
                stop.set()
            finished.wait(PARENT_CHECK_S)

    threading.Thread(target=watch, daemon=True, name="watch-server").start()


def _peak_memory_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


STOP_EVENT_PREFIX = "scvi-dashboard-stop-"
"""The Dask ``Event`` that asks a run on a cluster to stop is this prefix and the run's id."""


def train_on_dask_worker(runs_dir: str, run_id: str, device: str) -> None:
    """One run as a Dask task (:mod:`dashboard.cluster`): the same :func:`train_run` as a local worker, reading the
    run folder on the file system the dashboard and the workers share, with the worker's threads. Stop arrives as a
    Dask ``Event`` that a thread polls. A task the scheduler starts a second time (its first worker died) does not
    train again: the run is failed once, with the reason, never restarted silently."""
    from distributed import Event, get_client, get_worker  # noqa: PLC0415 - only a Dask worker imports it

    if not (Path(runs_dir) / run_id / "config.json").is_file():
        raise RuntimeError(f"this Dask worker ({socket.gethostname()}) cannot see the run's folder "
                           f"{runs_dir}/{run_id}: the runs folder must be on a file system shared by the dashboard "
                           f"and the workers, at the same path ({settings.RUNS_DIR_ENV})")
    store = RunStore(runs_dir)
    if store.read_status(run_id).get("pid") is not None:
        _fail(store, run_id, None, "The Dask worker training this run went away during training, and the cluster "
                                   "started it again on another worker; it is not trained twice. The epochs it "
                                   "finished are in its history; start a new run.")
        return
    torch.set_num_threads(get_worker().state.nthreads)
    stop, finished = threading.Event(), threading.Event()
    asked = Event(STOP_EVENT_PREFIX + run_id, client=get_client())  # the worker's client, for the polling thread

    def watch_stop():
        while not finished.is_set():
            try:
                if asked.is_set():
                    stop.set()
            except Exception as err:  # noqa: BLE001 - the scheduler is away for a moment: training goes on
                log.warning("Could not ask the scheduler whether run %s should stop: %s", run_id, err)
            finished.wait(STOP_POLL_S)

    threading.Thread(target=watch_stop, daemon=True, name="watch-stop").start()
    try:
        train_run(store, run_id, device, stop, watch_server=False)
    finally:
        finished.set()


def main(argv: list[str]) -> int:
    """Wait (imports done) for ``RUN_ID DEVICE DEVICES`` on stdin, train that run with ``THREADS`` CPU threads (on
    ``DEVICES`` devices, data-parallel), exit. An empty stdin: exit at once."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(process)d %(levelname)s %(message)s")
    torch.set_num_threads(int(argv[1]))
    stop = threading.Event()
    signal.signal(STOP_SIGNAL, lambda *_: stop.set())  # before the run arrives: a stop is never a kill
    line = sys.stdin.readline().split()
    if len(line) != 3:
        return 0
    run_id, device, devices = line
    train_run(RunStore(argv[0]), run_id, device, stop, int(devices))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
