"""The UMAP scatter: WebGL points coloured by a category or a value, each carrying its cell's index.

Why the index in ``customdata``: with one trace per category (needed for a legend), plotly numbers selected points
within their trace, so a lasso's ``point_index`` is not a cell. The cell's position in the run's data travels with
every point instead, and selections are read from it (:func:`selected_cells`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from scvi_core.embedding import display_subsample

PALETTE = qualitative.Plotly + qualitative.D3 + qualitative.Set3 + qualitative.Dark24
MAX_CATEGORIES = 60


@dataclass
class Colouring:
    label: str
    """What the colour shows, e.g. "leiden" or "gene_00012 (denoised)"."""
    values: np.ndarray
    """One value per cell of the run."""
    categorical: bool


def figure(umap: np.ndarray, cells: np.ndarray, names: np.ndarray, colouring: Colouring, point_size: float,
           opacity: float, height: int = 620) -> go.Figure:
    """Scatter of ``umap`` rows (cells ``cells`` of the run, ``names`` their obs names) coloured by ``colouring``
    (whose ``values`` are indexed by cell). Hover shows the cell and its value."""
    values = colouring.values[cells]
    marker = dict(size=point_size, opacity=opacity)
    traces = []
    if colouring.categorical:
        categories = pd.Series(values).astype(str)
        order = _category_order(categories)
        for i, category in enumerate(order):
            members = np.flatnonzero(categories.to_numpy() == category)
            traces.append(go.Scattergl(
                x=umap[members, 0], y=umap[members, 1], mode="markers", name=category, customdata=cells[members],
                text=names[members], marker={**marker, "color": PALETTE[i % len(PALETTE)]},
                hovertemplate=f"%{{text}}<br>{colouring.label}: {category}<extra></extra>"))
    else:
        traces.append(go.Scattergl(
            x=umap[:, 0], y=umap[:, 1], mode="markers", customdata=cells, text=names, showlegend=False,
            marker={**marker, "color": values.astype(float), "colorscale": "Viridis",
                    "colorbar": dict(title=dict(text=colouring.label, side="right"), thickness=14)},
            hovertemplate=f"%{{text}}<br>{colouring.label}: %{{marker.color:.3g}}<extra></extra>"))
    fig = go.Figure(traces)
    fig.update_layout(
        height=height, dragmode="lasso", margin=dict(l=10, r=10, t=30, b=10), plot_bgcolor="white",
        legend=dict(title=dict(text=colouring.label), itemsizing="constant"), hovermode="closest",
        xaxis=dict(title="UMAP 1", showticklabels=False, showgrid=False, zeroline=False),
        yaxis=dict(title="UMAP 2", showticklabels=False, showgrid=False, zeroline=False))
    return fig


def _category_order(categories: pd.Series) -> list[str]:
    """Numeric-looking categories (Leiden clusters) in numeric order, others alphabetically."""
    unique = sorted(categories.unique())
    if all(c.lstrip("-").isdigit() for c in unique):
        return sorted(unique, key=int)
    return unique


def too_many_categories(values: np.ndarray) -> bool:
    """Colouring by a column with more categories than colours helps nobody (e.g. a cell barcode column)."""
    return pd.Series(values).nunique() > MAX_CATEGORIES


def selected_cells(selection) -> np.ndarray:
    """Cell positions of the points in a ``st.plotly_chart`` selection (from their ``customdata``)."""
    points = (selection or {}).get("points", []) if isinstance(selection, dict) else getattr(selection, "points", [])
    cells = [int(np.ravel(point["customdata"])[0]) for point in points if point.get("customdata") is not None]
    return np.unique(np.asarray(cells, dtype=np.int64))


def colouring_of_column(obs: pd.DataFrame, column: str) -> Colouring:
    """An obs column as colours: categories unless it holds numbers (booleans are categories)."""
    values = obs[column]
    categorical = not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
    return Colouring(column, values.to_numpy(), categorical)


def leiden_for_all(emb, n_cells: int) -> np.ndarray:
    """Cluster of each of the run's cells ("" for cells not in ``emb``), so colourings are always indexed by cell."""
    values = np.full(n_cells, "", dtype=object)
    values[emb.cells] = emb.leiden
    return values


def shown_cells(n_cells: int) -> np.ndarray:
    """Which of ``n_cells`` points are drawn: all up to the browser's limit, else a fixed random subsample."""
    return display_subsample(n_cells)


def selectable_columns(obs: pd.DataFrame, keys: tuple[str | None, ...]) -> list[str]:
    """The obs columns whose values can select cells: text or categories, and the batch / label ``keys``."""
    return [c for c in obs.columns if not pd.api.types.is_numeric_dtype(obs[c]) or c in keys]


def category_values(obs: pd.DataFrame, column: str, emb) -> tuple[np.ndarray, list[str]]:
    """Each cell's value of ``column`` as text ("leiden": its cluster in ``emb``), and the values present, clusters in
    numeric order."""
    values = leiden_for_all(emb, len(obs)) if column == "leiden" else obs[column].astype(str).to_numpy()
    present = sorted(set(values) - {""}, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))
    return values, present


def cells_with(values: np.ndarray, chosen: list[str]) -> np.ndarray:
    """Positions of the cells whose value is among ``chosen``."""
    return np.flatnonzero(np.isin(values, chosen))

