"""What a user takes home from a run, in the forms scanpy and scvi_core users expect.

- An ``.h5ad`` of the prepared data with the results written back where scanpy looks for them:
  ``obsm["X_scVI"]`` (latent), ``obsm["X_umap"]``, ``obs["leiden"]``, one boolean ``obs["group_<name>"]`` per saved
  group, the zero-inflation table as ``var["autozi_<column>"]`` columns (one set per batch / label in those modes),
  and in ``uns["scvi_dashboard"]`` the run id, its configuration (as JSON: h5ad cannot store None) and the package
  versions it ran with.
- A zip of the trained model (``config.json``, ``model.pt``, ``history.csv``) that :func:`load_model_zip` turns back
  into a model.
- A Python snippet that reproduces the run with ``scvi_core``, so the dashboard is never a dead end.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from .data import registry_of
from .embedding import Embedding
from .groups import obs_column
from .model import AUTOZI, SCVI

PACKAGES = ("torch", "numpy", "scipy", "pandas", "anndata", "scanpy", "umap-learn", "leidenalg", "igraph",
            "streamlit", "plotly")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a run depends on (missing ones are left out)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def zero_inflation_var_columns(table: pd.DataFrame, gene_names, group_key: str | None) -> pd.DataFrame:
    """The zero-inflation table as ``var`` columns ``autozi_<column>``, aligned to ``gene_names``; in per-batch /
    per-label modes one set per group, ``autozi_<column>_<group>``."""
    values = [c for c in table.columns if c not in ("gene", group_key)]
    if group_key is None or group_key not in table.columns:
        wide = table.set_index("gene")[values].add_prefix("autozi_")
    else:
        wide = table.pivot(index="gene", columns=group_key, values=values)
        wide.columns = [f"autozi_{column}_{group}" for column, group in wide.columns]
    return wide.reindex(pd.Index(gene_names, dtype=str))


def annotated_adata(adata: ad.AnnData, latent: np.ndarray, run_id: str, config: dict,
                    embedding: Embedding | None = None, groups: dict[str, np.ndarray] | None = None,
                    zero_inflation: pd.DataFrame | None = None, group_key: str | None = None) -> ad.AnnData:
    """A copy of the run's prepared data with every result written back (see the module docstring).
    ``embedding`` must cover every cell; ``group_key`` names the table's batch / label column in those modes."""
    out = adata.copy()
    out.obsm["X_scVI"] = np.asarray(latent, dtype=np.float32)
    if embedding is not None:
        if len(embedding.cells) != out.n_obs:
            raise ValueError("Export the embedding of every cell, not of a group.")
        out.obsm["X_umap"] = embedding.umap
        out.obs["leiden"] = pd.Categorical(embedding.leiden, categories=sorted(set(embedding.leiden), key=int))
    for name, cells in (groups or {}).items():
        member = np.zeros(out.n_obs, dtype=bool)
        member[cells] = True
        out.obs[obs_column(name)] = member
    if zero_inflation is not None:
        columns = zero_inflation_var_columns(zero_inflation, out.var_names, group_key)
        for column in columns:
            out.var[column] = columns[column].to_numpy()
    out.uns["scvi_dashboard"] = {"run_id": run_id, "config": json.dumps(config, default=str),
                                 "versions": package_versions()}
    return out


def cells_table(annotated: ad.AnnData) -> pd.DataFrame:
    """One row per cell of an :func:`annotated_adata`: its obs columns, UMAP coordinates and latent coordinates."""
    table = annotated.obs.copy()
    for key, prefix in (("X_umap", "UMAP"), ("X_scVI", "scVI")):
        if key in annotated.obsm:
            for i, column in enumerate(np.asarray(annotated.obsm[key]).T, start=1):
                table[f"{prefix}_{i}"] = column
    return table.rename_axis("cell").reset_index()


def h5ad_bytes(adata: ad.AnnData) -> bytes:
    """The AnnData as the bytes of an ``.h5ad`` file (compressed), for a download button."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.h5ad"
        adata.write_h5ad(path, compression="gzip")
        return path.read_bytes()


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
    have the genes it was trained on: ``scvi_core.export.load_model_zip("model.zip", adata)``."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        if not {"config.json", "model.pt"} <= names:
            raise ValueError("This zip holds no scvi_core model: config.json and model.pt must be at its top level.")
        archive.extractall(folder, members=["config.json", "model.pt", *({"history.csv"} & names)])
        kind = json.loads((Path(folder) / "config.json").read_text()).get("model")
        models = {"SCVI": SCVI, "AUTOZI": AUTOZI}
        if kind not in models:
            raise ValueError(f"This zip holds a {kind!r} model; scvi_core knows {sorted(models)}.")
        return models[kind].load(folder, adata)


def reproduce_snippet(config: dict, adata: ad.AnnData, data_file: str = "scvi_dashboard_export.h5ad") -> str:
    """Python code that trains the same model on the exported data with ``scvi_core``: the run's model, settings and
    training parameters, and the registration (counts layer, batch and label keys) recorded in ``adata``."""
    model = config.get("model", "SCVI")
    registry = registry_of(adata)
    setup = {k: v for k, v in (("layer", registry.layer), ("batch_key", registry.batch_key),
                                ("labels_key", registry.labels_key)) if v is not None}
    lines = [
        "import anndata as ad",
        f"from scvi_core import {model}",
        "",
        f"adata = ad.read_h5ad({data_file!r})  # raw counts in X, as the dashboard prepared them",
        f"{model}.setup_anndata(adata{''.join(f', {k}={v!r}' for k, v in setup.items())})",
        f"model = {model}(adata{''.join(f', {k}={v!r}' for k, v in (config.get('model_params') or {}).items())})",
        f"model.train({', '.join(f'{k}={v!r}' for k, v in (config.get('train_params') or {}).items())})",
        'adata.obsm["X_scVI"] = model.get_latent_representation()',
    ]
    if model == "AUTOZI":
        lines.append("table = model.get_zero_inflation_table()  # P(ZI), evidence and call per gene")
    lines.append('model.save("my_model")  # reload with ' + f'{model}.load("my_model", adata)')
    return "\n".join(lines) + "\n"
