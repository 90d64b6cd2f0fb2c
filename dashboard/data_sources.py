"""Where the dashboard's data come from, and its rules for them: the built-in demos it offers, the data directory
(files on the server, never outside it) and the upload limit. The readers themselves are :mod:`scvi_core.io`'s."""

from __future__ import annotations

from pathlib import Path

import anndata as ad

from scvi_core import CountsError, simulate
from scvi_core.data import PreparationError
from scvi_core.datasets import load_pbmc3k, pbmc_3batches
from scvi_core.io import CELLS_BY_GENES, GENES_BY_CELLS, TABLE_SUFFIXES, DataLoadError

from . import settings

LOAD_ERRORS = (DataLoadError, CountsError, PreparationError)
"""What loading or preparing data raises with a message for the user (the page shows it, never a traceback)."""
ORIENTATIONS = ["auto", CELLS_BY_GENES, GENES_BY_CELLS]
"""How a .csv/.tsv table may be read: guessed from its names, or as the user says."""
UPLOAD_EXTENSIONS = ["h5ad", "h5", "zip", "mtx", "gz", "csv", "tsv", "txt"]
"""What the upload widget accepts (it matches the last suffix only, so ".gz" covers every gzipped file)."""
MODEL_UPLOAD_EXTENSIONS = ["zip", "pt", "h5ad", "json", "csv", "npz"]
"""A saved model: a zip of its folder, or the folder's files (scvi-tools: model.pt, adata.h5ad; this library's
Export: config.json, model.pt, history.csv, indices.npz)."""
SERVER_FILE_SUFFIXES = (".h5ad", ".h5", ".zip", *TABLE_SUFFIXES, *(s + ".gz" for s in TABLE_SUFFIXES))
DEMO_DATASETS = {
    "quick": {"n_cells": 2000, "n_genes": 500, "seed": 0},
    "large": {"n_cells": 20000, "n_genes": 1000, "seed": 1},
}
"""Simulation settings of the simulated demos."""
REAL_DEMOS = {"pbmc": pbmc_3batches}
"""Real demo datasets shipped inside the package (see :mod:`scvi_core.datasets`): readers, no download."""
_SIMULATED = "Simulated counts with known answers: 4 cell types, 2 batches, 30% zero-inflated genes."
DEMO_CHOICES = {
    "quick": {"label": "quick: 2,000 cells × 500 genes (simulated)", "name": "Demo (quick)", "caption": _SIMULATED},
    "large": {"label": "large: 20,000 cells × 1,000 genes (simulated, ≈5 s)", "name": "Demo (large)",
              "caption": _SIMULATED},
    "pbmc": {"label": "PBMC, 3 batches — real 10x blood cells: 2,860 cells × 2,000 genes",
             "name": "PBMC 3 batches (real)",
             "caption": "Real data: human blood cells (PBMC) from three public 10x Genomics datasets, one batch each "
                        "(different donors and chemistries), raw counts of 2,000 highly variable genes. No ground "
                        "truth: there are no cell-type labels, but its clusters show textbook blood-cell markers "
                        "(CD3E, MS4A1, LYZ, NKG7, …). Shipped with the app, no download."},
}
"""What the Load data page offers under "Demo data": the choice's label, the name shown once it is loaded, and a
caption saying what it is. Keys are those of :data:`DEMO_DATASETS` and :data:`REAL_DEMOS`."""


def demo_dataset(size: str) -> ad.AnnData:
    """A demo dataset, no download needed. ``size`` is a key of :data:`DEMO_CHOICES`: "quick" and "large" are
    simulated counts with ground truth (cell types, two batches, known zero-inflated genes; ≈ 2,000 cells in a
    fraction of a second, ≈ 20,000 cells in about five seconds), "pbmc" is real PBMC counts in three batches read
    from the package (:func:`scvi_core.datasets.pbmc_3batches`)."""
    if size in REAL_DEMOS:
        return REAL_DEMOS[size]()
    return simulate(**DEMO_DATASETS[size])


def list_data_files(data_dir: str | Path) -> list[str]:
    """Files in the data directory (and its sub-folders) that can be opened, as paths relative to it. Links that
    lead outside the directory are left out, as :func:`resolve_data_path` would refuse them."""
    root = Path(data_dir).resolve()
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.name.lower().endswith(SERVER_FILE_SUFFIXES):
            continue
        if path.is_file() and path.resolve().is_relative_to(root):
            found.append(relative.as_posix())
    return found


def list_model_sources(data_dir: str | Path) -> list[str]:
    """Saved models in the data directory, as paths relative to it: folders holding a ``model.pt``, and .zip
    files (a zip of a model folder; one that holds data instead says so when opened)."""
    root = Path(data_dir).resolve()
    if not root.is_dir():
        return []
    folders = [p.parent for p in root.rglob("model.pt")]
    zips = [p for p in root.rglob("*") if p.name.lower().endswith(".zip") and p.is_file()]
    return sorted(p.relative_to(root).as_posix() for p in [*folders, *zips]
                  if p.resolve().is_relative_to(root) and not any(part.startswith(".") for part in
                                                                  p.relative_to(root).parts))


def resolve_data_path(name: str, data_dir: str | Path, model: bool = False) -> Path:
    """Return the absolute path of ``name`` inside ``data_dir``, refusing anything that leads outside it
    (absolute paths, ``..``, links) so that the dashboard cannot be used to read arbitrary server files. A file;
    with ``model``, a saved model's folder (holding ``model.pt``) or a file."""
    root = Path(data_dir).resolve()
    if not root.is_dir():
        raise DataLoadError(
            f"The data directory {root} does not exist. Create it and put .h5ad or .h5 files there, or point the "
            "environment variable SCVI_DASHBOARD_DATA_DIR to another folder."
        )
    if not name or not name.strip():
        raise DataLoadError("No file name was given. Pick a file from the data directory.")
    candidate = (root / name.strip()).resolve()
    if not candidate.is_relative_to(root):
        raise DataLoadError(
            f"'{name}' is outside the data directory {root}; only files inside it can be opened. Copy the file "
            "into the data directory first."
        )
    if model and (candidate / "model.pt").is_file():
        return candidate
    if not candidate.is_file():
        what = "saved model (a folder with model.pt, or a .zip)" if model else "file"
        raise DataLoadError(f"There is no {what} '{name}' in the data directory {root}.")
    return candidate


def check_upload_size(n_bytes: int, limit_mb: int) -> None:
    """Refuse an upload above the server's limit, pointing to the data directory for big files."""
    if n_bytes > limit_mb * 1024 * 1024:
        raise DataLoadError(
            f"The upload is {n_bytes / 1024**2:,.0f} MB, over the limit of {limit_mb:,} MB. Put big files in the "
            "server's data directory instead and open them from 'Data directory'."
        )


def opens_on_disk(path: Path) -> bool:
    """Whether a data-directory file is opened on disk rather than read: an .h5ad over the size the settings give
    (:func:`dashboard.settings.on_disk_above_bytes`), which would not fit in memory beside its training."""
    return path.name.lower().endswith(".h5ad") and path.stat().st_size > settings.on_disk_above_bytes()


def download_pbmc3k() -> ad.AnnData:
    """PBMC 3k from 10x Genomics, kept in the data directory's ``downloads`` folder."""
    return load_pbmc3k(settings.data_dir() / "downloads")

