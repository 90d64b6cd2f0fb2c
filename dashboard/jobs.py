"""Training in the background, one run at a time, every step written to the run store as it happens.

Why a process-wide manager with one worker thread: a CPU server trains one model at a time at full speed (two runs
would each take twice as long), the dashboard must stay responsive while it trains, and a job must outlive the
browser tab that started it (a reload reconnects to it by its run id). The worker only calls ``scvi_core`` and
writes files: it never touches Streamlit. Whatever goes wrong in it ends as a "failed" run with a message, never as
an exception in the server.

Pages get the manager of the configured runs directory with :func:`manager_for` (one per directory and process).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import pandas as pd

from . import config as cfg
from .runs import DONE_STATES, MODELS, RunStore, now
from scvi_core.train import TrainingDivergedError, TrainingEvent

log = logging.getLogger(__name__)
INTERRUPTED = ("Interrupted: the server stopped while this run was training. The epochs it finished are in its "
               "history, but no model was saved; start a new run.")


class JobBusyError(RuntimeError):
    """A run was requested while another is training."""


@dataclass
class Job:
    """A run being trained by this process: what the page reads between epoch ends."""

    run_id: str
    stop_event: threading.Event = field(default_factory=threading.Event)
    progress: TrainingEvent | None = None
    """The latest event from the training loop (within-epoch progress or an epoch's end); None before the first."""
    rows: list[dict] = field(default_factory=list)
    """The history so far, one dict per finished epoch."""
    thread: threading.Thread | None = None


class JobManager:
    """Starts, stops and watches training runs stored under ``store``."""

    def __init__(self, store: RunStore):
        self.store = store
        self._lock = threading.Lock()
        self._job: Job | None = None

    # ---- starting and stopping --------------------------------------------------------------------------------
    def start(self, config: dict, adata: ad.AnnData, dataset_name: str | None = None,
              batch_key: str | None = None, labels_key: str | None = None) -> str:
        """Check ``config``, store a new run (configuration and data) and train it in a background thread.
        Returns the run id. Raises :class:`JobBusyError` while another run trains and ``ValueError`` for settings
        that cannot work (the messages of :func:`dashboard.config.validate`)."""
        problems = cfg.validate(config, adata.n_obs, adata.n_vars, batch_key, labels_key).errors
        if problems:
            raise ValueError(" ".join(problems))
        with self._lock:
            if self._job is not None:
                raise JobBusyError(f"A training run is already going (id {self._job.run_id}); stop it or wait for "
                                   "it to finish. This server trains one model at a time.")
            adata = adata.copy()
            MODELS[config["model"]].setup_anndata(adata, batch_key=batch_key, labels_key=labels_key)
            record = {**config, "setup": {"batch_key": batch_key, "labels_key": labels_key},
                      "dataset_name": dataset_name}
            run_id = self.store.create(record, adata)
            self.store.write_status(run_id, pid=os.getpid())
            job = self._job = Job(run_id)
            job.thread = threading.Thread(target=self._train, args=(job, config, adata), daemon=True,
                                          name=f"training-{run_id}")
            job.thread.start()
        return run_id

    def stop(self, run_id: str) -> bool:
        """Ask the run to stop after its current minibatch; it keeps (and saves) the model trained so far.
        Returns False when ``run_id`` is not training here."""
        job = self._job
        if job is None or job.run_id != run_id:
            return False
        job.stop_event.set()
        return True

    def wait(self, timeout: float | None = None) -> None:
        """Block until the current run (if any) has ended; for scripts and tests."""
        job = self._job
        if job is not None and job.thread is not None:
            job.thread.join(timeout)

    # ---- watching ---------------------------------------------------------------------------------------------
    def active_run_id(self) -> str | None:
        job = self._job
        return None if job is None else job.run_id

    def job(self, run_id: str) -> Job | None:
        """The live job of ``run_id`` while it trains in this process, else None."""
        job = self._job
        return job if job is not None and job.run_id == run_id else None

    def is_stopping(self, run_id: str) -> bool:
        job = self.job(run_id)
        return job is not None and job.stop_event.is_set()

    def status(self, run_id: str) -> dict:
        """status.json of a run, with runs left "running" by a process that is gone marked as interrupted."""
        status = self.store.read_status(run_id)
        if status.get("state") not in DONE_STATES and self._orphaned(run_id, status):
            status = self.store.write_status(run_id, state="failed", message=INTERRUPTED, ended=now())
        return status

    def history(self, run_id: str) -> pd.DataFrame:
        """Per-epoch history: from memory while the run trains here (always current), else from history.csv."""
        job = self.job(run_id)
        return pd.DataFrame(list(job.rows)) if job is not None else self.store.read_history(run_id)

    def list_runs(self) -> pd.DataFrame:
        """:meth:`RunStore.list_runs`, after marking runs interrupted by a server restart as failed."""
        runs = self.store.list_runs()
        stale = runs[~runs["state"].isin(DONE_STATES)]
        for run_id in stale["run_id"]:
            self.status(run_id)
        return self.store.list_runs() if len(stale) else runs

    def _orphaned(self, run_id: str, status: dict) -> bool:
        """Not done, and no process trains it: not this one (no live job), and the one that started it is gone."""
        pid = status.get("pid")
        if pid == os.getpid() or pid is None:
            return self.job(run_id) is None
        return not _process_alive(pid)

    # ---- the worker -------------------------------------------------------------------------------------------
    def _train(self, job: Job, config: dict, adata: ad.AnnData) -> None:
        """Body of the worker thread. Every outcome ends in a final status; nothing escapes."""
        store, run_id, train = self.store, job.run_id, config["train_params"]
        try:
            store.write_status(run_id, state="running", message="Training.", started=now(), epoch=0,
                               max_epochs=train["max_epochs"])
            model = MODELS[config["model"]](adata, **config["model_params"])
            model.train(**train, callback=lambda event: self._on_event(job, event), stop_event=job.stop_event)
            store.write_history(run_id, model.history)
            stopped = job.stop_event.is_set()
            store.write_status(run_id, message="Saving the model and its results…")
            store.save_model(run_id, model)
            store.save_results(run_id, model)
            stop = model.stop_info
            store.write_status(run_id, state="stopped" if stopped else "finished", ended=now(),
                               message=_end_message(stop), stop_reason=stop.reason, kept_epoch=stop.kept_epoch,
                               best_epoch=stop.best_epoch, final_elbo=_final_elbo(model.history, stop.kept_epoch))
        except TrainingDivergedError as err:
            self._fail(job, str(err))
        except Exception as err:  # noqa: BLE001 - the worker must never take the server down
            log.exception("Training run %s failed", run_id)
            self._fail(job, f"Training failed: {err}")
        finally:
            with self._lock:
                self._job = None

    def _on_event(self, job: Job, event: TrainingEvent) -> None:
        job.progress = event
        if event.kind == "epoch":
            job.rows.append(event.metrics)
            self.store.write_history(job.run_id, pd.DataFrame(job.rows))
            self.store.write_status(job.run_id, epoch=event.epoch, cells_per_second=event.cells_per_second,
                                    final_elbo=_final_elbo(pd.DataFrame(job.rows)))

    def _fail(self, job: Job, message: str) -> None:
        try:
            if job.rows:
                self.store.write_history(job.run_id, pd.DataFrame(job.rows))
            self.store.write_status(job.run_id, state="failed", message=message, ended=now())
        except Exception:  # noqa: BLE001 - e.g. the runs directory vanished: log it, keep the server alive
            log.exception("Could not record the failure of run %s", job.run_id)


def _final_elbo(history: pd.DataFrame, epoch: int | None = None) -> float | None:
    """−ELBO per cell on validation cells (on training cells when there are none) of ``epoch`` (default: the last),
    the epoch whose weights the model keeps."""
    if history.empty:
        return None
    row = history.iloc[-1]
    if epoch is not None and (history["epoch"] == epoch).any():
        row = history[history["epoch"] == epoch].iloc[-1]
    value = row.get("elbo_validation")
    return float(row["elbo_train"] if value is None or pd.isna(value) else value)


def _end_message(stop) -> str:
    """Why the run ended, in the words of :attr:`StopInfo.message`; a stopped run says its model was saved."""
    if stop.reason == "interrupted":
        return (f"Stopped by you during epoch {stop.epochs} of {stop.max_epochs}; the model trained so far was "
                "saved.")
    return stop.message


def _process_alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except PermissionError:
        return True  # alive, owned by another user
    except (ProcessLookupError, ValueError, TypeError, OverflowError):
        return False  # gone, or a malformed pid
    return True


_MANAGERS: dict[Path, JobManager] = {}
_MANAGERS_LOCK = threading.Lock()


def manager_for(runs_dir: str | Path) -> JobManager:
    """The one JobManager of this process for ``runs_dir``, so that every page and browser session shares it."""
    root = Path(runs_dir).resolve()
    with _MANAGERS_LOCK:
        if root not in _MANAGERS:
            _MANAGERS[root] = JobManager(RunStore(root))
        return _MANAGERS[root]
