"""A saved model folder as one file: the zip the dashboard's Export page offers (``config.json``, ``model.pt``,
``history.csv`` at its top level), and the model rebuilt from it in a notebook."""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path

import anndata as ad

from ._autozi import AUTOZI
from ._scvi import SCVI

MODELS = {"SCVI": SCVI, "AUTOZI": AUTOZI}
"""The models by the name ``save`` writes in ``config.json``."""


def model_zip_bytes(model_dir: str | Path) -> bytes:
    """The saved model folder (``config.json``, ``model.pt``, ``history.csv``) as a zip, files at its top level."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(Path(model_dir).iterdir()):
            if path.is_file():
                archive.write(path, path.name)
    return buffer.getvalue()


def load_model_zip(source: str | Path | bytes, adata: ad.AnnData):
    """Rebuild the model in a zip made by :func:`model_zip_bytes` (a path or its bytes) on ``adata``, which must
    have the genes it was trained on: ``scvi_core.model.load_model_zip("model.zip", adata)``."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        if not {"config.json", "model.pt"} <= names:
            raise ValueError("This zip holds no scvi_core model: config.json and model.pt must be at its top level.")
        archive.extractall(folder, members=["config.json", "model.pt", *({"history.csv", "indices.npz"} & names)])
        kind = json.loads((Path(folder) / "config.json").read_text()).get("model")
        if kind not in MODELS:
            raise ValueError(f"This zip holds a {kind!r} model; scvi_core knows {sorted(MODELS)}.")
        return MODELS[kind].load(folder, adata)

