"""Training runs on disk: every run is written as it happens, so that none is ever lost. This module is the one that
knows a run folder's whole layout; the modules that keep results in it (:mod:`dashboard.de_answers`,
:mod:`dashboard.groups`, :mod:`dashboard.embeddings`) are handed their place by :class:`RunStore`.

Why files rather than memory: a browser reload, a second tab or a server restart must find every run again
(running, finished, stopped or failed), and results pages must be able to reopen any finished run.

Layout of one run, ``<runs_dir>/<run_id>/`` (the queue's table is ``<runs_dir>/queue.sqlite3``,
:mod:`dashboard.job_queue`):

    config.json        what was asked for: {"model", "model_params", "train_params", "setup", "dataset_name", "owner",
                       "created"}; a run opened from a model trained elsewhere has no train_params and says where
                       it came from ("opened_from": {"name", "format"}, :mod:`dashboard.model_opening`)
    status.json        {"state", "message", "epoch", "epochs_done", "max_epochs", "cells_per_second", "started",
                        "ended", "final_elbo", "stop_reason", "kept_epoch", "best_epoch", "device", "slot", "pid",
                        "n_cells", "n_genes", "setup_seconds", "train_seconds", "wall_seconds",
                        "entries_per_second", "peak_memory_bytes", "cluster", "worker"}
                       state ∈ queued | running | finished | stopped | interrupted | failed | cancelled; once training
                       ends, stop_reason ∈ early_stopping | max_epochs | interrupted (``scvi_core.train.StopInfo``),
                       the message says why in words, kept_epoch is the epoch whose weights were saved and
                       final_elbo its validation −ELBO. The worker (:mod:`dashboard.worker`) writes it while it
                       trains; the service only before (queued, starting) and after (a crash, a cancel). A run
                       trained on a Dask cluster also names the cluster and its worker's address
                       (:mod:`dashboard.cluster`).
    history.csv        one row per finished epoch (rewritten every few seconds while training, and at the end)
    data.h5ad          the prepared AnnData the run trains on (raw counts in X, registration in uns). Data opened on
                       disk (a file too large to load) are not copied: config.json's "on_disk" names the file (and
                       layer) in the data directory and "registry" the registration, and the worker and the results
                       pages open that file on disk again
    model/             ``model.save()`` output once training ends (finished, stopped or interrupted)
    results/           latent.npy      the latent representation, cells × n_latent, once training ends
                       zero_inflation.csv and .json   AUTOZI's table, and what made each column
                       de/             differential-expression answers (:mod:`dashboard.de_answers`)
                       groups.json     named groups of cells (:mod:`dashboard.groups`)
                       embeddings/     UMAP and Leiden clusters (:mod:`dashboard.embeddings`)

Writes go through a temporary file and ``os.replace`` (:mod:`dashboard.atomic`) so a reader never sees half a
file.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from datetime import datetime, timezone
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from scvi_core.data import ON_DISK_KEY, SETUP_KEY
from scvi_core.io import is_opened_on_disk, reopen_on_disk
from scvi_core.model import AUTOZI, MODELS

from . import atomic

DONE_STATES = ("finished", "stopped", "interrupted", "failed", "cancelled")
_RUN_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")


def _new_run_id() -> str:
    return f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


ZERO_INFLATION_META = "zero_inflation.json"


class RunStore:
    """Read and write runs under one directory. Run ids are generated here and validated on every access, so a
    crafted id (e.g. from a URL) can never reach outside the runs directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, run_id: str) -> Path:
        if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
            raise KeyError(f"{run_id!r} is not a run id.")
        path = self.root / run_id
        if not path.is_dir():
            raise KeyError(f"No run {run_id!r} in {self.root}.")
        return path

    def create(self, config: dict, adata: ad.AnnData) -> str:
        """Start a run's folder: configuration, the data it trains on (or, on disk, where they are), and a 'queued'
        status."""
        run_id = _new_run_id()
        path = self.root / run_id
        (path / "results").mkdir(parents=True)
        on_disk = is_opened_on_disk(adata)
        if on_disk:
            config = {**config, "on_disk": adata.uns[ON_DISK_KEY], "registry": adata.uns[SETUP_KEY]}
        atomic.write_text(path / "config.json", json.dumps({**config, "created": now()}, indent=1, default=str))
        if not on_disk:
            adata.write_h5ad(path / "data.h5ad")
        self.write_status(run_id, state="queued", message="Waiting to start.")
        return run_id

    def adopt(self, folder: str | Path) -> str:
        """Move a run written elsewhere (a model opened in a reader process: :mod:`dashboard.model_opening`) into
        this store under a new id, whole: it appears in the run list complete or not at all."""
        run_id = _new_run_id()
        partial = self.root / f".{run_id}.part"
        shutil.copytree(folder, partial)
        partial.rename(self.root / run_id)
        shutil.rmtree(folder, ignore_errors=True)
        return run_id

    # ---- status, history, config ------------------------------------------------------------------------
    def write_status(self, run_id: str, **fields) -> dict:
        """Merge ``fields`` into status.json and return the new status."""
        status = self.read_status(run_id) if (self.root / run_id / "status.json").exists() else {}
        status.update(fields)
        atomic.write_text(self.path(run_id) / "status.json", json.dumps(status, indent=1, default=float))
        return status

    def read_status(self, run_id: str) -> dict:
        return json.loads((self.path(run_id) / "status.json").read_text())

    def read_config(self, run_id: str) -> dict:
        return json.loads((self.path(run_id) / "config.json").read_text())

    def write_history(self, run_id: str, history: pd.DataFrame) -> None:
        atomic.write_text(self.path(run_id) / "history.csv", history.to_csv(index=False))

    def read_history(self, run_id: str) -> pd.DataFrame:
        path = self.path(run_id) / "history.csv"
        return pd.read_csv(path) if path.exists() else pd.DataFrame()

    def list_runs(self) -> pd.DataFrame:
        """One row per run, newest first: id, dataset, model, state, epochs done, final validation ELBO."""
        rows = []
        folders = [p for p in self.root.iterdir() if _RUN_ID.match(p.name) and (p / "config.json").exists()]
        # Newest first by creation (config.json is written once); ids alone only order runs to the second.
        for path in sorted(folders, key=lambda p: ((p / "config.json").stat().st_mtime_ns, p.name), reverse=True):
            if not (path / "status.json").exists():
                continue
            try:
                status, config = self.read_status(path.name), self.read_config(path.name)
            except (OSError, ValueError):
                continue  # a run folder being created or damaged: not listable, never fatal
            rows.append(
                {
                    "run_id": path.name,
                    "created": config.get("created"),
                    "dataset": config.get("dataset_name"),
                    "model": config.get("model"),
                    "state": status.get("state"),
                    "epochs": status.get("epoch", 0),
                    "max_epochs": status.get("max_epochs"),
                    "final_elbo": status.get("final_elbo"),
                    "message": status.get("message", ""),
                }
            )
        return pd.DataFrame(rows, columns=["run_id", "created", "dataset", "model", "state", "epochs", "max_epochs",
                                           "final_elbo", "message"])

    # ---- data, model, results ---------------------------------------------------------------------------
    def load_adata(self, run_id: str) -> ad.AnnData:
        """The data the run trains on, registered; data on disk are opened on disk again, never loaded."""
        config = self.read_config(run_id)
        if "on_disk" not in config:
            return ad.read_h5ad(self.path(run_id) / "data.h5ad")
        adata = reopen_on_disk(config["on_disk"])
        adata.uns[SETUP_KEY] = config["registry"]
        return adata

    def save_model(self, run_id: str, model) -> None:
        model.save(self.model_dir(run_id), overwrite=True)

    def load_model(self, run_id: str, adata: ad.AnnData | None = None):
        """The trained model of a finished or stopped run, on ``adata`` (default: the run's own data)."""
        config = self.read_config(run_id)
        adata = self.load_adata(run_id) if adata is None else adata
        return MODELS[config["model"]].load(self.model_dir(run_id), adata)

    def has_model(self, run_id: str) -> bool:
        return (self.model_dir(run_id) / "model.pt").exists()

    def model_dir(self, run_id: str) -> Path:
        return self.path(run_id) / "model"

    def results_dir(self, run_id: str) -> Path:
        return self.path(run_id) / "results"

    def de_dir(self, run_id: str) -> Path:
        return self.results_dir(run_id) / "de"

    def groups_file(self, run_id: str) -> Path:
        return self.results_dir(run_id) / "groups.json"

    def embeddings_dir(self, run_id: str) -> Path:
        return self.results_dir(run_id) / "embeddings"

    def save_results(self, run_id: str, model) -> None:
        """What the results pages show first, computed once when training ends."""
        results = self.results_dir(run_id)
        np.save(results / "latent.npy", model.get_latent_representation())
        if isinstance(model, AUTOZI):
            self.save_zero_inflation(run_id, model.get_zero_inflation_table())

    def save_zero_inflation(self, run_id: str, table: pd.DataFrame) -> None:
        """The table as CSV, and beside it as JSON what made each column (``table.attrs``: the prior, the
        posterior, the methods), which a CSV cannot hold. The JSON is written last: a table without one is from
        before methods were recorded (:meth:`read_zero_inflation`)."""
        results = self.results_dir(run_id)
        atomic.write_text(results / "zero_inflation.csv", table.to_csv(index=False))
        atomic.write_text(results / ZERO_INFLATION_META, json.dumps(table.attrs, indent=1, default=float))

    def read_latent(self, run_id: str) -> np.ndarray:
        return np.load(self.results_dir(run_id) / "latent.npy")

    def read_zero_inflation(self, run_id: str) -> pd.DataFrame | None:
        """The saved table with its ``attrs`` (None for scVI runs). A table saved before the methods were recorded
        held the NB vs ZINB check under AutoZI's names: it is made again from the run's model and saved."""
        results = self.results_dir(run_id)
        path, meta = results / "zero_inflation.csv", results / ZERO_INFLATION_META
        if not path.exists():
            return None
        if not meta.exists() and self.has_model(run_id):
            self.save_zero_inflation(run_id, self.load_model(run_id).get_zero_inflation_table())
        table = pd.read_csv(path)
        if meta.exists():
            table.attrs.update(json.loads(meta.read_text()))
        return table


def where_it_trains(status: dict) -> str:
    """Where a run trains, for a person: "cpu (1 thread)", "cuda:0", "2 × cuda (data-parallel)",
    "cpu, 2 data-parallel processes (1 thread each)", "cuda, Dask worker tcp://…"; "" before a worker has it."""
    device, devices, threads = status.get("device"), status.get("devices", 1), status.get("threads")
    if not device:
        return ""
    if status.get("worker"):
        return f"{where_it_trains({**status, 'worker': None})}, Dask worker {status['worker']}"
    if devices > 1:
        if device != "cpu":
            return f"{devices} × {device} (data-parallel)"
        each = f" ({max(1, threads // devices)} thread{'s' if threads >= 2 * devices else ''} each)" if threads else ""
        return f"cpu, {devices} data-parallel processes{each}"
    return device + (f" ({threads} thread{'s' if threads > 1 else ''})" if device == "cpu" and threads else "")
