"""Named groups of cells (e.g. lassoed on the UMAP), kept with the run in its groups file (:meth:`RunStore.groups_file
<dashboard.runs.RunStore.groups_file>`).

Why with the run: a group is a statement about *these* cells of *this* run ("the cluster I think is T cells"), so it
must survive a server restart, be offered again when the run is reopened, and travel into the export (one boolean
``obs`` column per group). Cells are stored as positions in the run's ``data.h5ad``, which never changes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from . import atomic

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.+-]{0,59}$")


class GroupError(ValueError):
    """A group that cannot be saved; the message says why, for the user."""


def read_groups(path: Path) -> dict[str, np.ndarray]:
    """Every saved group of a run (``path``: its groups file): name → sorted cell positions (empty when none was
    saved)."""
    if not path.exists():
        return {}
    return {name: np.asarray(cells, dtype=np.int64) for name, cells in json.loads(path.read_text()).items()}


def _write(path: Path, groups: dict[str, np.ndarray]) -> None:
    atomic.write_text(path, json.dumps({name: [int(c) for c in cells] for name, cells in groups.items()}))


def save_group(path: Path, name: str, cells, n_cells: int) -> np.ndarray:
    """Save (or replace) the group ``name`` holding ``cells`` (positions among the run's ``n_cells``); return them
    sorted and without repeats."""
    name = (name or "").strip()
    if not _NAME.match(name):
        raise GroupError("Name the group with up to 60 letters, digits, spaces or _ . + -, starting with a letter or "
                         f"digit; {name!r} is not such a name.")
    cells = np.unique(np.asarray(cells, dtype=np.int64))
    if cells.size == 0:
        raise GroupError("Select at least one cell (lasso or box on the chart, or pick clusters) before saving.")
    if cells[0] < 0 or cells[-1] >= n_cells:
        raise GroupError(f"Cell positions must lie between 0 and {n_cells - 1}; these do not belong to this run.")
    groups = read_groups(path)
    groups[name] = cells
    _write(path, groups)
    return cells


def delete_group(path: Path, name: str) -> None:
    groups = read_groups(path)
    groups.pop(name, None)
    _write(path, groups)


def group_sizes(groups: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame({"group": list(groups), "cells": [len(c) for c in groups.values()]})


def obs_column(name: str) -> str:
    """The exported ``obs`` column of a group (boolean: is the cell in it)."""
    return f"group_{name}"
