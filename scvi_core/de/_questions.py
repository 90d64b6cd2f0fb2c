"""The differential-expression questions the dashboard asks of a model, in the form a biologist puts them: the
markers of every group of a grouping (each against the rest of the cells, one-vs-rest), or group A against group B
(or against the rest). Groups travel as one label per cell (``""`` for cells in no group), which is also what the
export writes into ``obs`` so scanpy can plot the answer. :func:`answer` asks the model each comparison of a question
and returns one table; where answers are kept is the dashboard's business (``dashboard/de_answers.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

MARKERS, PAIR = "markers", "pair"
REST = "rest"
"""The name of "every other cell" as group B (scvi-tools' and scanpy's word)."""
MAX_GROUPS = 60
"""A markers question over more groups than this is almost surely a column of cell ids, not of clusters."""


@dataclass(frozen=True)
class DESettings:
    """What ``model.differential_expression`` is asked with (change mode). The defaults are scvi-tools'; ``method``
    is ``"scvi"`` (scVI's change mode) or ``"group-mean"`` (:mod:`scvi_core.de`)."""

    method: str = "scvi"
    delta: float = 0.25
    fdr_target: float = 0.05
    batch_correction: bool = False
    max_cells_per_group: int = 1000
    n_samples: int = 5000
    seed: int = 0


@dataclass(frozen=True)
class Question:
    """``markers``: every group of ``groupby`` against the rest. ``pair``: ``group1`` against ``group2`` (None: the
    rest). ``groupby`` names where the groups come from ("leiden", an obs column, or "groups" for a pair)."""

    kind: str
    groupby: str
    group1: str | None = None
    group2: str | None = None

    def title(self) -> str:
        if self.kind == MARKERS:
            return f"Markers of every {self.groupby} group"
        return f"{self.group1} vs {self.group2 or REST}"


# ---- groups -----------------------------------------------------------------------------------------------------
def sort_groups(names) -> list[str]:
    """Numeric-looking groups (Leiden clusters) in numeric order, others alphabetically."""
    names = sorted({str(n) for n in names} - {""})
    if names and all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return names


def groupable_columns(obs: pd.DataFrame, first: tuple[str | None, ...] = ()) -> list[str]:
    """The obs columns whose values are groups: categorical, text or boolean columns (and the batch / label keys
    ``first``, listed first) with 2 to MAX_GROUPS different values."""
    keys = [k for k in first if k and k in obs.columns]
    columns = []
    for column in keys + [c for c in obs.columns if c not in keys]:
        values = obs[column]
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if (column in keys or not numeric) and 2 <= values.nunique() <= MAX_GROUPS:
            columns.append(str(column))
    return columns


def pair_labels(n_cells: int, name1: str, cells1: np.ndarray, name2: str | None = None,
                cells2: np.ndarray | None = None) -> np.ndarray:
    """Labels of a pair question: ``name1`` for group A's cells, ``name2`` for group B's (None: every other cell is
    ``"rest"``), ``""`` for cells in neither. Raises ValueError, for the user, for groups that cannot be compared."""
    cells1 = np.unique(np.asarray(cells1, dtype=np.int64))
    if not len(cells1):
        raise ValueError(f"Group A ({name1}) has no cells: choose another group.")
    labels = np.full(n_cells, "" if name2 else REST, dtype=object)
    if name2:
        cells2 = np.unique(np.asarray(cells2, dtype=np.int64))
        if not len(cells2):
            raise ValueError(f"Group B ({name2}) has no cells: choose another group.")
        if name1 == name2:
            raise ValueError(f"Group A and group B are both {name1}: choose two different groups, or compare A "
                             "with the rest of the cells.")
        shared = np.intersect1d(cells1, cells2)
        if len(shared) == len(cells1) == len(cells2):
            raise ValueError(f"{name1} and {name2} are the same cells: choose two different groups.")
        if len(shared):
            raise ValueError(f"{name1} and {name2} share {len(shared):,} cells, so a difference between them would be "
                             "hard to read: choose groups that do not overlap, or compare A with the rest.")
        labels[cells2] = name2
    elif len(cells1) == n_cells:
        raise ValueError(f"{name1} holds every cell, so there is no rest to compare it with: choose a group B.")
    labels[cells1] = name1
    return labels.astype(str)


def column_labels(values) -> np.ndarray:
    """Labels of a markers question from a column of group names (missing values: in no group)."""
    series = pd.Series(values)
    return np.where(series.isna(), "", series.astype(str)).astype(str)


def question_comparisons(question: Question, labels: np.ndarray) -> list[tuple[str, str | None]]:
    """The comparisons a question asks, as (group 1, group 2 or None for the rest), in display order."""
    if question.kind == PAIR:
        return [(question.group1, question.group2)]
    groups = sort_groups(labels)
    if len(groups) < 2:
        raise ValueError(f"{question.groupby} has {len(groups)} group{'s' if len(groups) != 1 else ''}: markers need "
                         "at least two groups to compare. Choose another grouping.")
    if len(groups) > MAX_GROUPS:
        raise ValueError(f"{question.groupby} has {len(groups):,} different values: choose a column of clusters or "
                         f"cell types (at most {MAX_GROUPS} groups).")
    return [(group, None) for group in groups]


def masks(labels: np.ndarray, group1: str, group2: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of the two sides of a comparison; "the rest" is every *labelled* cell outside group 1."""
    first = labels == group1
    second = labels == group2 if group2 else (labels != group1) & (labels != "")
    return first, second


# ---- answering --------------------------------------------------------------------------------------------------
def answer(model, question: Question, settings: DESettings, labels: np.ndarray,
           progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Ask ``model`` every comparison of ``question`` (change mode, by ``settings.method``) and return the tables
    concatenated, with
    ``comparison`` ("B vs rest"), ``group1`` and ``group2`` naming the groups as the user chose them.
    ``progress(done, total)`` is told after each comparison. Raises ValueError (for the user) on bad groups.
    Comparison i is drawn with seed ``settings.seed + i``, as ``model.differential_expression(groupby=…)`` does, so
    a markers answer is the table that call gives on the same groups."""
    labels = np.asarray(labels, dtype=str)
    todo = question_comparisons(question, labels)
    blocks = []
    for done, (group1, group2) in enumerate(todo, start=1):
        idx1, idx2 = masks(labels, group1, group2)
        block = model.differential_expression(
            idx1=idx1, idx2=idx2, mode="change", method=settings.method, delta=settings.delta,
            fdr_target=settings.fdr_target,
            batch_correction=settings.batch_correction, n_samples=settings.n_samples,
            max_cells_per_group=settings.max_cells_per_group, seed=settings.seed + done - 1)
        block = block.copy()
        block["comparison"] = f"{group1} vs {group2 or REST}"
        block["group1"], block["group2"] = group1, group2 or REST
        blocks.append(block)
        if progress is not None:
            progress(done, len(todo))
    table = pd.concat(blocks)
    table.index.name = "gene"
    return table


