"""``model.differential_expression``: each comparison asked of the method chosen, the calls at the FDR target, and
the tables ranked and labelled. The methods themselves are ``_change_mode`` and ``_group_mean``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from . import _change_mode as change_mode
from . import _group_mean as group_mean
from ._calls import fdr_calls, rank
from ._groups import comparisons

METHODS = {"scvi": change_mode, "group-mean": group_mean}
"""Each method's name as the library, the stored answers and the export write it, and the module computing it."""
METHOD_TITLES = {"scvi": "scVI change mode (Boyeau et al.)", "group-mean": "group-mean test (this project's)"}
MODES = ("change", "vanilla")


def check_settings(method: str, mode: str, delta, fdr_target: float, n_samples: int, max_cells_per_group) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))} (scVI's change mode, or the test of "
                         f"the groups' means); got {method!r}.")
    if mode not in MODES:
        raise ValueError(f"mode must be 'change' or 'vanilla'; got {mode!r}.")
    if delta is not None and not (np.isfinite(delta) and delta >= 0):
        raise ValueError(f"delta is the smallest log2 fold change worth reporting: a number ≥ 0 (or None to "
                         f"estimate it from the data); got {delta!r}.")
    if not (isinstance(fdr_target, (int, float)) and 0 < fdr_target < 1):
        raise ValueError(f"fdr_target is a false discovery rate: a number between 0 and 1 (e.g. 0.05); "
                         f"got {fdr_target!r}.")
    if not (isinstance(n_samples, (int, np.integer)) and n_samples >= group_mean.Z_DRAWS):
        raise ValueError(f"n_samples must be a whole number ≥ {group_mean.Z_DRAWS} (5000 is a good default); got "
                         f"{n_samples!r}.")
    if max_cells_per_group is not None and not (isinstance(max_cells_per_group, (int, np.integer))
                                                and max_cells_per_group >= 2):
        raise ValueError(f"max_cells_per_group must be a whole number ≥ 2 (or None: every cell); got "
                         f"{max_cells_per_group!r}.")


def differential_expression(model, adata=None, groupby=None, group1=None, group2=None, idx1=None, idx2=None,
                            mode: str = "change", delta: float | None = 0.25, fdr_target: float = 0.05,
                            batch_correction: bool = False, n_samples: int = 5000,
                            max_cells_per_group: int | None = 1000, seed: int = 0, method: str = "scvi",
                            progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """See :meth:`scvi_core.model.BaseModel.differential_expression`."""
    if not model.is_trained:
        raise ValueError("Train the model first: differential expression reads the trained decoder.")
    check_settings(method, mode, delta, fdr_target, n_samples, max_cells_per_group)
    data = model._data_for(adata)
    obs = (model.adata if adata is None else adata).obs
    todo = comparisons(obs, groupby, group1, group2, idx1, idx2)
    n_batch = len(model.registry.batch_categories)
    batch_codes = list(range(n_batch)) if batch_correction and n_batch > 1 else [None]
    tables = []
    for i, comparison in enumerate(todo):
        table = METHODS[method].compare(model, data, comparison, mode=mode, delta=delta, batch_codes=batch_codes,
                                        n_samples=n_samples, max_cells_per_group=max_cells_per_group, seed=seed + i)
        if mode == "change":
            table[f"is_de_fdr_{fdr_target}"] = fdr_calls(table["proba_de"].to_numpy(), fdr_target)
        table["comparison"], table["group1"], table["group2"] = comparison.label, comparison.name1, comparison.name2
        table["method"] = method
        tables.append(rank(table, "proba_de" if mode == "change" else "proba_m1"))
        if progress is not None:
            progress(i + 1, len(todo))
    table = pd.concat(tables)
    table.index.name = "gene"
    return table
