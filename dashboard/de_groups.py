"""Where the groups of a differential-expression question come from, as the dashboard offers them: the Leiden
clusters of the run's UMAP, an obs column of categories, a saved group of cells, or "the rest"; and the truth known
of simulated data. Decisions only (no Streamlit): the page draws the choices, this says what each choice means."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from scvi_core.data import true_lfc
from scvi_core.de import REST, column_labels, groupable_columns, sort_groups

__all__ = ["LEIDEN", "SAVED", "REST_SOURCE", "TRUTH_COLUMN", "groupable_columns", "group_values", "group_cells",
           "pair_groupby", "known_truth"]

LEIDEN, SAVED, REST_SOURCE = "leiden", "saved", "rest"
"""Sources of a group besides ``obs:<column>``: Leiden clusters, saved groups, every other cell."""
TRUTH_COLUMN = "cell_type"  # the simulator's cell types, whose true fold changes are known


def group_values(source: str, obs: pd.DataFrame, leiden: Callable[[], np.ndarray], saved: dict) -> list[str]:
    """The groups a source offers (``leiden()`` gives each cell's cluster, computed only when asked)."""
    if source == LEIDEN:
        return sort_groups(leiden())
    if source == SAVED:
        return list(saved)
    return sort_groups(column_labels(obs[source.removeprefix("obs:")]))


def group_cells(source: str, value: str, obs: pd.DataFrame, leiden: Callable[[], np.ndarray],
                saved: dict) -> tuple[str, np.ndarray]:
    """The name a group is shown under, and its cells."""
    if source == LEIDEN:
        return f"cluster {value}", np.flatnonzero(leiden() == value)
    if source == SAVED:
        return value, saved[value]
    return value, np.flatnonzero(column_labels(obs[source.removeprefix("obs:")]) == value)


def pair_groupby(source1: str, source2: str) -> str:
    """What a pair question's groups are named after: the column both come from (or A's, against the rest), else
    "groups" (two sources, or saved groups)."""
    same = source1 == source2 or source2 == REST_SOURCE
    return source1.removeprefix("obs:") if same and source1 != SAVED else "groups"


def known_truth(adata, groupby: str, group1: str, group2: str) -> pd.Series | None:
    """The simulated true log2 fold changes of a comparison when its groups are the simulator's cell types."""
    if "simulation" not in adata.uns or groupby != TRUTH_COLUMN:
        return None
    try:
        return true_lfc(adata, group1, None if group2 == REST else group2)
    except ValueError:
        return None
