"""Which cells a differential-expression call compares: obs categories, masks, positions or pandas query strings,
checked so that two empty, tiny or overlapping groups give a clear message instead of a meaningless table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Comparison:
    """Two disjoint sets of cells (positions in the AnnData) and how the result names them."""

    name1: str
    name2: str
    cells1: np.ndarray
    cells2: np.ndarray

    @property
    def label(self) -> str:
        return f"{self.name1} vs {self.name2}"


def _as_list(group) -> list[str]:
    return [str(group)] if isinstance(group, (str, int, np.integer)) else [str(g) for g in group]


def _mask(index, obs: pd.DataFrame, name: str) -> np.ndarray:
    """A boolean mask over the cells from a mask, integer positions or a pandas query of ``obs`` (scvi-tools' three
    ways of naming cells, e.g. ``"cell_type == 'B' & batch == 'b1'"``)."""
    n_cells = len(obs)
    if isinstance(index, str):
        try:
            selected = obs.query(index).index
        except Exception as err:  # pandas raises many kinds (SyntaxError, UndefinedVariableError, TypeError, …)
            raise ValueError(f"{name} = {index!r} is not a query of the obs columns ({err}). Columns: "
                             f"{', '.join(map(str, obs.columns)) or 'none'}.") from None
        return obs.index.isin(selected)
    values = np.asarray(index)
    if values.dtype == bool:
        if values.shape != (n_cells,):
            raise ValueError(f"{name} is a boolean mask of length {len(values)}, but the data have {n_cells} cells.")
        return values
    if values.size and not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{name} must be a boolean mask, integer cell positions or a query string; got "
                         f"{values.dtype} values.")
    if values.size and (values.min() < -n_cells or values.max() >= n_cells):
        raise ValueError(f"{name} holds cell positions outside 0 … {n_cells - 1}.")
    mask = np.zeros(n_cells, dtype=bool)
    mask[values] = True
    return mask


def comparisons(obs: pd.DataFrame, groupby=None, group1=None, group2=None, idx1=None, idx2=None) -> list[Comparison]:
    """The comparisons a call asks for: ``idx1`` (vs ``idx2`` or the rest), or each category of ``group1`` (None:
    every category of ``groupby``) vs ``group2`` (a category or list: their union; None: the rest)."""
    if idx1 is not None:
        mask1 = _mask(idx1, obs, "idx1")
        mask2 = ~mask1 if idx2 is None else _mask(idx2, obs, "idx2")
        return [_checked(Comparison("group1", "rest" if idx2 is None else "group2", *map(np.flatnonzero, (mask1, mask2))))]
    if groupby is None:
        raise ValueError("Say which cells to compare: groupby (an obs column) with group1 / group2, or idx1 / idx2.")
    if groupby not in obs.columns:
        raise ValueError(f"{groupby!r} is not an obs column. Columns: {', '.join(map(str, obs.columns)) or 'none'}.")
    labels = obs[groupby].astype(str).to_numpy()
    categories = list(obs[groupby].cat.categories.astype(str)) if hasattr(obs[groupby], "cat") else sorted(set(labels))
    categories = [c for c in categories if c in set(labels)]
    reference = None if group2 is None else _as_list(group2)
    targets = [c for c in categories if c not in (reference or [])] if group1 is None else _as_list(group1)
    unknown = sorted(set(targets + (reference or [])) - set(categories))
    if unknown:
        raise ValueError(f"No cells with {groupby} = {', '.join(unknown)}. Categories: {', '.join(categories)}.")
    out = []
    for target in targets:
        mask1 = labels == target
        mask2 = ~mask1 if reference is None else np.isin(labels, reference)
        name2 = "rest" if reference is None else " + ".join(reference)
        out.append(_checked(Comparison(target, name2, np.flatnonzero(mask1), np.flatnonzero(mask2))))
    return out


def _checked(c: Comparison) -> Comparison:
    for name, cells in ((c.name1, c.cells1), (c.name2, c.cells2)):
        if len(cells) == 0:
            raise ValueError(f"Group {name!r} has no cells: choose a group with at least 2 cells.")
        if len(cells) == 1:
            raise ValueError(f"Group {name!r} has a single cell: a comparison needs at least 2 cells per group.")
    shared = np.intersect1d(c.cells1, c.cells2)
    if len(shared):
        same = len(shared) == len(c.cells1) == len(c.cells2)
        raise ValueError(("Both groups are the same cells" if same else f"{len(shared)} cells are in both groups")
                         + ": compare two disjoint groups (or one group against the rest).")
    return c


def subsample(cells: np.ndarray, max_cells: int | None, rng: np.random.Generator) -> np.ndarray:
    """At most ``max_cells`` of the cells (a seeded sample; None: all), in increasing order."""
    if max_cells is not None and len(cells) > max_cells:
        return np.sort(rng.choice(cells, max_cells, replace=False))
    return np.sort(cells)
