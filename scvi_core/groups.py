"""Named groups of cells (e.g. lassoed on the UMAP), kept with the run in ``results/groups.json``.

Why with the run: a group is a statement about *these* cells of *this* run ("the cluster I think is T cells"), so it
must survive a server restart, be offered again when the run is reopened, and travel into the export (one boolean
``obs`` column per group). Cells are stored as positions in the run's ``data.h5ad``, which never changes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

GROUPS_FILE = "groups.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.+-]{0,59}$")


class GroupError(ValueError):
    """A group that cannot be saved; the message says why, for the user."""


def read_groups(results_dir: str | Path) -> dict[str, np.ndarray]:
    """Every saved group of a run: name → sorted cell positions (empty when none was saved)."""
    path = Path(results_dir) / GROUPS_FILE
    if not path.exists():
        return {}
    return {name: np.asarray(cells, dtype=np.int64) for name, cells in json.loads(path.read_text()).items()}


def _write(results_dir: str | Path, groups: dict[str, np.ndarray]) -> None:
    path = Path(results_dir) / GROUPS_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({name: [int(c) for c in cells] for name, cells in groups.items()}))
    os.replace(tmp, path)


def save_group(results_dir: str | Path, name: str, cells, n_cells: int) -> np.ndarray:
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
    groups = read_groups(results_dir)
    groups[name] = cells
    _write(results_dir, groups)
    return cells


def delete_group(results_dir: str | Path, name: str) -> None:
    groups = read_groups(results_dir)
    groups.pop(name, None)
    _write(results_dir, groups)


def group_sizes(groups: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame({"group": list(groups), "cells": [len(c) for c in groups.values()]})


def obs_column(name: str) -> str:
    """The exported ``obs`` column of a group (boolean: is the cell in it)."""
    return f"group_{name}"
