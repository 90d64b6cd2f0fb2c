"""Registering an AnnData with the models (``setup_anndata``): where its counts are, and the integer codes of its
batch and label columns, recorded in ``adata.uns["_scvi_core"]`` (scvi-tools' ``setup_anndata``, by the same name).

Why a module of its own: the registration is read by the models, the data loader, the export and the dashboard's
runs, none of which needs the loader's minibatch machinery.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ._counts import CountsError, check_counts, get_counts

SETUP_KEY = "_scvi_core"


@dataclass
class Registry:
    """What ``setup_anndata`` recorded: where the counts are and how covariates map to integer codes."""

    layer: str | None = None
    batch_key: str | None = None
    labels_key: str | None = None
    batch_categories: list[str] = field(default_factory=lambda: ["0"])
    label_categories: list[str] = field(default_factory=lambda: ["0"])

    def to_uns(self) -> dict:
        """h5ad cannot store None, so unset keys are simply left out."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_uns(cls, record: dict) -> Registry:
        return cls(
            layer=record.get("layer"),
            batch_key=record.get("batch_key"),
            labels_key=record.get("labels_key"),
            batch_categories=[str(c) for c in record["batch_categories"]],
            label_categories=[str(c) for c in record["label_categories"]],
        )


def _categories(adata, key: str | None, role: str) -> list[str]:
    if key is None:
        return ["0"]
    if key not in adata.obs.columns:
        columns = ", ".join(map(repr, adata.obs.columns)) or "none"
        raise CountsError(f"{role}_key {key!r} is not a column of adata.obs. Available columns: {columns}.")
    column = adata.obs[key]
    if column.isna().any():
        raise CountsError(
            f"obs[{key!r}] has {int(column.isna().sum())} missing values. Give every cell a {role} "
            "(e.g. fill with 'unknown') or choose another column."
        )
    if isinstance(column.dtype, pd.CategoricalDtype):
        present = set(column.astype(str))
        return [str(c) for c in column.cat.categories if str(c) in present]
    return sorted(column.astype(str).unique())


def setup_anndata(adata, layer: str | None = None, batch_key: str | None = None, labels_key: str | None = None):
    """Check that ``adata`` holds raw counts (in X, ``layers[layer]`` or ``.raw`` with ``layer="raw"``) and record
    the batch / label columns in ``adata.uns["_scvi_core"]``. Nothing else of ``adata`` is modified.

    Raises :class:`~scvi_core.data.CountsError` for non-count data (NaN, negative, non-integer values), cells
    with no counts, a missing layer or obs column, or missing covariate values; the message says what to do.
    """
    matrix = get_counts(adata, layer)
    check_counts(matrix, adata.obs_names, adata.var_names)
    registry = Registry(
        layer=layer,
        batch_key=batch_key,
        labels_key=labels_key,
        batch_categories=_categories(adata, batch_key, "batch"),
        label_categories=_categories(adata, labels_key, "labels"),
    )
    adata.uns[SETUP_KEY] = registry.to_uns()
    return registry


def registry_of(adata) -> Registry:
    if SETUP_KEY not in adata.uns:
        raise CountsError("This AnnData is not registered yet: call SCVI.setup_anndata(adata, ...) first.")
    return Registry.from_uns(adata.uns[SETUP_KEY])


def codes_of(adata, key: str | None, categories: list[str], role: str) -> np.ndarray:
    if key is None:
        return np.zeros(adata.n_obs, dtype=np.int64)
    values = adata.obs[key].astype(str).to_numpy()
    lookup = {c: i for i, c in enumerate(categories)}
    unknown = sorted(set(values) - lookup.keys())
    if unknown:
        raise CountsError(
            f"obs[{key!r}] has {role} values the model was not trained with: {unknown[:5]}. Known: {categories}."
        )
    return np.fromiter((lookup[v] for v in values), dtype=np.int64, count=len(values))
