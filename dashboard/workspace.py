"""The one place where the dashboard keeps what a user has loaded, prepared, configured and trained.

Why: every page needs part of this (the Model page trains on the prepared data, the sidebar shows what is loaded,
Export writes results), and state spread over loose ``st.session_state`` keys drifts apart. ``app.py`` creates one
:class:`Workspace` per browser session in ``st.session_state["workspace"]``; pages read and update its fields.
It is plain Python (no Streamlit) so that it can be tested and used from a notebook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anndata as ad

from scvi_core.data import (
    ON_DISK_KEY,
    CountsError,
    DatasetSummary,
    counts_locations,
    inspect_counts,
    key_candidates,
    prepare,
    prepare_on_disk,
    registry_of,
    suggest_keys,
)
from scvi_core.io import is_opened_on_disk, working_copy

from .session_folder import SessionFolder

DEMO_NAME = "Demo (quick)"
LOADED_FILE = "loaded.h5ad"


@dataclass
class Workspace:
    """Everything one dashboard session works on. Fields later in the list depend on earlier ones; replacing the
    dataset (:meth:`load`) clears everything that was derived from the previous one."""

    dataset_name: str | None = None
    """Shown to the user: a file name, "Demo (quick)", … None until something is loaded."""
    original: ad.AnnData | None = None
    """The AnnData as loaded. Never modified: preparation always works on a copy."""
    counts_layer: str | None = None
    """Where ``original`` keeps its raw counts: None for X, "raw" for ``.raw``, or a layer name."""
    counts_problem: str | None = None
    """Why ``counts_layer`` does not hold raw counts (shown to the user), or None when it does."""
    summary: DatasetSummary | None = None
    """Summary of ``original``'s matrix at ``counts_layer`` (kept here so that reruns do not recompute it)."""
    prepared: ad.AnnData | None = None
    """What the model trains on: filtered cells, selected genes, raw counts in X. None until prepared."""
    batch_key: str | None = None
    """obs column of ``prepared`` holding the batch of each cell, or None (a single batch)."""
    labels_key: str | None = None
    """obs column of ``prepared`` holding known cell labels, or None."""
    notices: list[str] = field(default_factory=list)
    """Plain-language notes about what loading changed (duplicate names, guessed orientation, …). Notes about
    preparation travel with the prepared data, in ``prepared.uns["preparation_notices"]``."""
    model_config: dict[str, Any] | None = None
    """Model settings chosen on the Model page (model kind and hyper-parameters); None until configured."""
    current_run_id: str | None = None
    """Id of the latest training run (stored under the runs directory); None before any training."""

    def load(self, name: str, adata: ad.AnnData, notices: list[str]) -> None:
        """Replace the dataset, resetting every other field (they were derived from the previous one), and use the
        first place that holds raw counts (X, a layer, .raw); when none does, X, whose problem is then shown. Each
        place is read once (its check and summary in one pass), which matters for a file opened on disk."""
        self.__dict__.update(vars(Workspace(dataset_name=name, original=adata, notices=list(notices))))
        inspected = {}
        for place in counts_locations(adata):  # X first
            inspected[place] = _inspect(adata, place)
            if inspected[place][1] is None:
                self._use_counts(place, *inspected[place])
                return
        self._use_counts(None, *inspected[None])

    def choose_counts(self, layer: str | None) -> None:
        """Use ``layer`` (None = X, "raw", or a layer name) as the counts: check it, summarise it, and drop any
        preparation made from another matrix."""
        self._use_counts(layer, *_inspect(self.original, layer))

    def _use_counts(self, layer: str | None, summary: DatasetSummary | None, problem: str | None) -> None:
        self.counts_layer, self.summary, self.counts_problem = layer, summary, problem
        self.set_prepared(None, None, None)

    @property
    def folder(self) -> SessionFolder:
        """This session's folder on disk (its upload, what was read from files), made on first use (see
        :meth:`use_folder`) and removed with the session. Not a field: :meth:`load` keeps it."""
        if "_folder" not in self.__dict__:
            self.use_folder(SessionFolder())
        return self.__dict__["_folder"]

    def use_folder(self, folder: SessionFolder) -> None:
        """Keep this session's files in ``folder`` (``app.py`` names it after the browser session)."""
        self.__dict__["_folder"] = folder

    @property
    def on_disk(self) -> bool:
        """Whether the loaded data stay on disk (a file too large to load, :func:`scvi_core.io.open_on_disk`)."""
        return self.original is not None and is_opened_on_disk(self.original)

    def start_with_demo(self, demo: ad.AnnData) -> None:
        """Open on the quick demo, loaded and prepared with the Load data page's defaults (batch and cell-type keys
        set), so that a new user can train at once."""
        self.load(DEMO_NAME, demo, ["The quick demo (simulated, with known answers) is loaded and prepared, so you "
                                    "can go straight to Model. Load your own data above to replace it."])
        prepared, _ = prepare(demo, None, n_top_genes=None, batch_key="batch", labels_key="cell_type")
        self.set_prepared(prepared, "batch", "cell_type")

    def loaded_file(self) -> Path:
        """The loaded data as an .h5ad file that another process can read: the file opened on disk, or a copy written
        into the session's folder."""
        if self.on_disk:
            return Path(self.original.uns[ON_DISK_KEY]["path"])
        path = self.folder.ready() / LOADED_FILE
        self.original.write_h5ad(path)
        return path

    def prepared_shape(self) -> tuple[int, int]:
        """Cells × genes of the prepared data (presets and checks depend on them)."""
        return self.prepared.n_obs, self.prepared.n_vars

    def counts_places(self) -> list[str | None]:
        """Where the loaded data could hold counts: None (X), each layer, "raw" for ``.raw``."""
        return counts_locations(self.original)

    def key_choices(self) -> tuple[list[str], str | None, str | None]:
        """The obs columns offered as batch or label key, and the ones pre-selected by their usual names."""
        candidates = key_candidates(self.original)
        return (candidates, *suggest_keys(candidates))

    def prepare(self, batch_key: str | None, labels_key: str | None, *, min_counts: int = 1, min_genes: int = 0,
                min_cells: int = 3, n_top_genes: int | None = None) -> None:
        """Prepare the loaded data for the model: filters and highly variable genes in memory; for data opened on
        disk, which cannot be filtered without loading them, the file's cells and genes as they are (the filter
        arguments are then not used)."""
        if self.on_disk:
            prepared, _ = prepare_on_disk(self.original, self.summary, self.counts_layer, batch_key=batch_key,
                                          labels_key=labels_key)
        else:
            prepared, _ = prepare(self.original, self.counts_layer, min_counts=min_counts, min_genes=min_genes,
                                  min_cells=min_cells, n_top_genes=n_top_genes, batch_key=batch_key,
                                  labels_key=labels_key)
        self.set_prepared(prepared, batch_key, labels_key)

    def use_run_data(self, name: str, adata: ad.AnnData) -> None:
        """Work on the data a run trained on (already prepared and registered), e.g. to train another model on them;
        nothing changes when they are already what is prepared (same shape)."""
        if self.prepared is not None and self.prepared.shape == adata.shape:
            return
        registry = registry_of(adata)
        self.load(name, working_copy(adata), [])
        self.set_prepared(working_copy(adata), registry.batch_key, registry.labels_key)

    def set_prepared(self, prepared: ad.AnnData | None, batch_key: str | None, labels_key: str | None) -> None:
        """Store newly prepared data; a model configured or trained on earlier data no longer applies."""
        self.prepared, self.batch_key, self.labels_key = prepared, batch_key, labels_key
        self.model_config, self.current_run_id = None, None

    def status(self) -> dict[str, str]:
        """Short lines for the sidebar: what is loaded, prepared, configured and running."""
        if self.original is None:
            return {"Data": "nothing loaded yet"}
        shown = self.prepared if self.prepared is not None else self.original
        lines = {
            "Data": self.dataset_name or "unnamed",
            "Cells × genes": f"{shown.n_obs:,} × {shown.n_vars:,}" + ("" if self.prepared is not None else " (not prepared)"),
        }
        if self.prepared is not None:
            lines["Batch key"] = self.batch_key or "none"
            lines["Label key"] = self.labels_key or "none"
        model = self.model_config.get("model", "configured") if self.model_config else "not configured"
        lines["Model"] = str(model)
        lines["Training"] = f"run {self.current_run_id}" if self.current_run_id else "no run yet"
        return lines


def _inspect(adata: ad.AnnData, layer: str | None) -> tuple[DatasetSummary | None, str | None]:
    """The summary and counts problem at ``layer``; no summary when there is no matrix there (the problem says so)."""
    try:
        return inspect_counts(adata, layer)
    except CountsError as err:
        return None, str(err)
