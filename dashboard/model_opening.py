"""Opening a model trained elsewhere as a run: a scvi-tools model folder (or a zip of one, or this dashboard's own
export), on the cells saved with it or on the data loaded in the session, becomes a finished run like any other, so
that Latent space, Zero-inflation, Differential expression and Export work on it unchanged.

Why a run: the results pages, the Export page and a server restart all know runs, so a model that becomes one needs
nothing of its own anywhere else. Why in a reader process (:mod:`dashboard.reading`): ``model.pt`` and
``adata.h5ad`` are files a user sent, which are read within the same memory and time limits as any data file,
never in the web server. :func:`stage` runs there and writes the run into a runs folder of its own; the server then
moves it into the runs directory (:meth:`dashboard.runs.RunStore.adopt`).

Nothing is unpickled beyond what scvi-tools writes (:func:`scvi_core.model.load_model`), and a zip gives up only the
model's own files, within :mod:`scvi_core.io`'s limits.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anndata as ad

from scvi_core.data import CountsError, Registry, get_counts
from scvi_core.io import DataLoadError
from scvi_core.model import describe, opened

from . import settings
from .reading import ReadProgress, reading_service
from .runs import RunStore, now
from .workspace import Workspace

OPENED_FROM = "opened_from"
"""config.json's record of a run that was opened rather than trained here: {"name", "format"}."""
MODEL_ERRORS = (ValueError, FileNotFoundError, CountsError, DataLoadError)
"""What opening a model raises with a message for the user."""


def aligned(adata: ad.AnnData, gene_names: list[str], registry: Registry,
            counts_place: str | None) -> tuple[ad.AnnData, list[str]]:
    """The loaded data as a saved model reads them: its genes in its order (the data may have more), the counts
    (at ``counts_place``: None for X, a layer, "raw") where it reads them, its batch and label columns checked.
    Returns the AnnData and what was changed, in words."""
    positions = adata.var_names.get_indexer(gene_names)
    missing = [gene for gene, position in zip(gene_names, positions, strict=True) if position < 0]
    if missing:
        raise ValueError(
            f"The loaded data lack {len(missing):,} of the model's {len(gene_names):,} genes (e.g. "
            f"{', '.join(missing[:5])}): open the model on the data it was trained on, or on its own adata.h5ad.")
    for role, key in (("batches", registry.batch_key), ("cell labels", registry.labels_key)):
        if key is not None and key not in adata.obs.columns:
            raise ValueError(f"The model was trained with {role} in the obs column '{key}', which the loaded data "
                             "lack: load data with that column, or open the model on its own adata.h5ad.")
    counts = get_counts(adata, counts_place)[:, positions]
    data = ad.AnnData(X=counts, obs=adata.obs.copy(), var=adata.var.iloc[positions].copy())
    notices = []
    if len(gene_names) < adata.n_vars:
        notices.append(f"The model reads {len(gene_names):,} of the loaded data's {adata.n_vars:,} genes: the others "
                       "are left out of this run.")
    if registry.layer is not None:
        data.layers[registry.layer] = data.X
    if registry.layer != counts_place:
        notices.append(f"The counts ({_place(counts_place)}) are given to the model where it reads them "
                       f"({_place(registry.layer)}).")
    return data, notices


def _place(layer: str | None) -> str:
    return "X" if layer is None else ".raw" if layer == "raw" else f"layer '{layer}'"


def stage(request: dict) -> dict:
    """In a reader process: open the model at ``request["model"]`` (a folder or a zip) on ``request["data"]`` (an
    .h5ad whose counts are at ``request["counts_place"]``) or, without it, on the cells saved with it; compute what
    the results pages show first; write it all as a finished run under ``request["runs"]``. The outcome:
    ``{"run": its folder, "notices": [...]}`` or ``{"error": message}``."""
    name = request["name"]
    try:
        with opened(request["model"]) as folder:
            saved = describe(folder)
            adata, notices = None, []
            if request.get("data"):
                adata, notices = aligned(ad.read_h5ad(request["data"]), saved.gene_names, saved.registry,
                                         request.get("counts_place"))
            model = saved.model_class.load(folder, adata)
    except MODEL_ERRORS as err:
        return {"error": f"'{name}' could not be opened: {err}"}
    store = RunStore(request["runs"])
    registry = model.registry
    config = {"model": type(model).__name__, "model_params": model.params, "train_params": {},
              "setup": {"batch_key": registry.batch_key, "labels_key": registry.labels_key},
              "dataset_name": request.get("dataset_name") or name,
              OPENED_FROM: {"name": name, "format": saved.format}}
    run_id = store.create(config, model.adata)
    store.save_model(run_id, model)
    store.write_history(run_id, model.history)
    store.save_results(run_id, model)
    epochs = len(model.history)
    trained = f", {epochs} epochs" if epochs else ""
    last = model.history["elbo_validation"].dropna() if "elbo_validation" in model.history else ()
    store.write_status(run_id, state="finished", epoch=epochs, epochs_done=epochs, max_epochs=epochs, ended=now(),
                       n_cells=model.adata.n_obs, n_genes=model.adata.n_vars,
                       final_elbo=float(last.iloc[-1]) if len(last) else None,
                       message=f"Opened from '{name}' ({saved.format} model trained elsewhere{trained}).")
    return {"run": str(store.path(run_id)), "notices": notices}


def opened_from(config: dict) -> dict | None:
    """{"name", "format"} of a run that was opened from a saved model, None for a run trained here."""
    return config.get(OPENED_FROM)


def uploaded_model(paths: list[Path]) -> Path:
    """What the uploaded files are as a saved model: one .zip, or the folder they were written to (model.pt and
    the files beside it)."""
    return paths[0] if len(paths) == 1 and paths[0].suffix.lower() == ".zip" else paths[0].parent


def open_as_run(model: str | Path, name: str, workspace: Workspace, on_loaded_data: bool,
                on_progress: Callable[[ReadProgress], None] | None = None) -> tuple[str, list[str]]:
    """Open the saved model at ``model`` (``name``: what the user calls it) as a finished run of the runs directory,
    on the session's loaded data or on the cells saved with it, in a bounded reader; the run becomes the session's
    current run. Returns its id and what was changed on the way; raises :class:`DataLoadError` in words."""
    data, counts_place = (workspace.loaded_file(), workspace.counts_layer) if on_loaded_data else (None, None)
    workspace.current_run_id, notices = reading_service().open_model(
        model, name, workspace.folder.ready(), RunStore(settings.runs_dir()), data, counts_place,
        dataset_name=workspace.dataset_name if on_loaded_data else name, on_progress=on_progress)
    return workspace.current_run_id, notices
