"""A finished training run on disk, made without the Training page, for the results pages' tests.

Why: the results pages only read runs (``RunStore``), so their tests need one finished run of each model; training
a tiny model for a few epochs takes about a second.
"""

from __future__ import annotations

from pathlib import Path

from scvi_core import AUTOZI, SCVI, simulate
from dashboard.runs import RunStore

MODEL_PARAMS = {"n_hidden": 32, "n_latent": 5}
TRAIN_PARAMS = {"max_epochs": 4, "lr": 1e-2, "batch_size": 128}


def write_tiny_run(root: str | Path, model_name: str = "AUTOZI", n_cells: int = 300, n_genes: int = 60,
                   max_epochs: int = 4, **model_params) -> str:
    """Simulate, train ``model_name`` briefly and store it under ``root`` as a finished run; return the run id.
    (40 epochs on 600 cells × 100 genes take about 5 s and already find the simulated zero-inflated genes.)
    ``model_params`` override the small default architecture (e.g. ``zero_inflation="gene-batch"``)."""
    return write_run(root, simulate(n_cells, n_genes, seed=1), model_name, max_epochs, "Demo (simulated)",
                     labels_key="cell_type", model_params={**MODEL_PARAMS, **model_params})


def write_run(root: str | Path, adata, model_name: str = "SCVI", max_epochs: int = 4, dataset_name: str = "test data",
              batch_key: str | None = "batch", labels_key: str | None = None, model_params: dict | None = None,
              **train_params) -> str:
    """Train ``model_name`` on ``adata`` (raw counts) and store it under ``root`` as a finished run; return its id.
    ``train_params`` override the tiny default training settings (e.g. ``batch_size=256``)."""
    model_class = {"AUTOZI": AUTOZI, "SCVI": SCVI}[model_name]
    model_class.setup_anndata(adata, batch_key=batch_key, labels_key=labels_key)
    store = RunStore(root)
    train_params = {**TRAIN_PARAMS, **train_params, "max_epochs": max_epochs}
    model_params = MODEL_PARAMS if model_params is None else model_params
    config = {"model": model_name, "model_params": model_params, "train_params": train_params,
              "setup": {"batch_key": batch_key, "labels_key": labels_key}, "dataset_name": dataset_name}
    run_id = store.create(config, adata)
    model = model_class(adata, **model_params)
    model.train(**train_params)
    store.write_history(run_id, model.history)
    store.save_model(run_id, model)
    store.save_results(run_id, model)
    store.write_status(run_id, state="finished", message="Finished.", epoch=max_epochs, max_epochs=max_epochs)
    return run_id
