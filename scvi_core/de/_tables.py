"""Reading a differential-expression table: direction of each call, filters, marker lists, dot-plot values, and
recovery of known truth on simulated data.

Why separate from :mod:`scvi_core.de._questions` (which answers and stores questions): these are the views a user asks
of a finished table, and they work on a stored table without the model.

Conventions (those of ``model.differential_expression``, change mode, either method): ``lfc_*`` is the log2 fold
change of group 1 over group 2 (positive = higher in group 1); ``proba_de`` is the larger of the posterior
probabilities ``proba_up`` = P(LFC ≥ δ) and ``proba_down`` = P(LFC ≤ −δ); ``bayes_factor`` is the natural-log
posterior odds of DE (not a p-value), signed by that direction; the call is the column ``is_de_fdr_<target>``. A gene
called DE is "up" when P(LFC ≥ δ) is the larger tail, "down" otherwise (tables kept before the tails were stored:
by the sign of the mean LFC).

Genes expressed in almost no cell of either group can have a large LFC with wide posteriors; the views filter them
by the share of cells expressing the gene in the group where it is higher (``non_zeros_proportion1`` / ``2``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._calls import log_odds, rank
from ._differential_expression import METHOD_TITLES

UP, DOWN, NOT_DE = "up", "down", "not DE"
DEFAULT_MIN_PCT = 10.0
"""Default minimal % of cells expressing a gene (in the group where it is higher) for the table and marker lists."""


def call_column(table: pd.DataFrame) -> str:
    """The name of the DE call column, e.g. ``is_de_fdr_0.05``."""
    columns = [c for c in table.columns if str(c).startswith("is_de_fdr_")]
    if not columns:
        raise ValueError("This table has no DE call column (is_de_fdr_…): it was not computed in change mode.")
    return columns[0]


def is_up(table: pd.DataFrame) -> np.ndarray:
    """Per gene, whether its evidence says higher in group 1: the larger tail (the mean LFC's sign on tables kept
    before the tails were stored, or where both tails are equal)."""
    lfc_up = table["lfc_mean"].to_numpy() > 0
    if "proba_up" not in table.columns:
        return lfc_up
    up, down = table["proba_up"].to_numpy(), table["proba_down"].to_numpy()
    return np.where(up == down, lfc_up, up > down)


def directions(table: pd.DataFrame) -> pd.Series:
    """``up`` / ``down`` for the genes called DE (by :func:`is_up`), ``not DE`` for the others."""
    called = table[call_column(table)].astype(bool).to_numpy()
    up = is_up(table)
    return pd.Series(np.where(called, np.where(up, UP, DOWN), NOT_DE), index=table.index, name="direction")


def pct_higher(table: pd.DataFrame) -> pd.Series:
    """% of cells expressing the gene in the group where its mean LFC says it is higher."""
    pct1, pct2 = table["non_zeros_proportion1"] * 100, table["non_zeros_proportion2"] * 100
    return pd.Series(np.where(table["lfc_mean"].to_numpy() > 0, pct1, pct2), index=table.index, name="pct_higher")


def posterior_qvalues(block: pd.DataFrame) -> pd.Series:
    """Per gene, the smallest posterior expected FDR of a call set containing it: sets are the genes of highest
    ``proba_de``, and a set's expected FDR is the mean of their ``proba_not_de`` (the change-mode FDR control).
    A gene is called at FDR target t exactly when its value is ≤ t. For one comparison's rows."""
    order = np.argsort(-block["proba_de"].to_numpy(), kind="stable")
    running = np.cumsum(block["proba_not_de"].to_numpy()[order]) / np.arange(1, len(order) + 1)
    q = np.minimum.accumulate(running[::-1])[::-1]
    out = np.empty(len(block))
    out[order] = q
    return pd.Series(out, index=block.index, name="posterior_fdr")


def method_of(table: pd.DataFrame) -> str:
    """The method that made a table (``"scvi"`` or ``"group-mean"``); tables kept before there were two methods were
    made by the group-mean test."""
    return str(table["method"].iloc[0]) if "method" in table.columns and len(table) else "group-mean"


def method_title(table: pd.DataFrame) -> str:
    return METHOD_TITLES[method_of(table)]


def shown_table(block: pd.DataFrame) -> pd.DataFrame:
    """The columns a user reads, one row per gene (``gene`` a column), ranked: direction, LFC, P(DE), signed Bayes
    factor, the log-odds of DE (unsigned, the volcano's other y), posterior FDR, % expressing and mean denoised
    expression (per 10,000 counts) in each group, and the method that made the table (so a download says it)."""
    block = rank(block)
    return pd.DataFrame({
        "gene": block.index.astype(str),
        "comparison": block["comparison"].to_numpy(),
        "direction": directions(block).to_numpy(),
        "lfc_mean": block["lfc_mean"].to_numpy(),
        "lfc_std": block["lfc_std"].to_numpy(),
        "proba_de": block["proba_de"].to_numpy(),
        "bayes_factor": block["bayes_factor"].to_numpy(),
        "log_odds": log_odds(block["proba_de"].to_numpy()),
        "posterior_fdr": posterior_qvalues(block).to_numpy(),
        "pct1": block["non_zeros_proportion1"].to_numpy() * 100,
        "pct2": block["non_zeros_proportion2"].to_numpy() * 100,
        "expr1": block["scale1"].to_numpy() * 1e4,
        "expr2": block["scale2"].to_numpy() * 1e4,
        "raw_mean1": block["raw_mean1"].to_numpy(),
        "raw_mean2": block["raw_mean2"].to_numpy(),
        "method": method_of(block),
    })


def informative_lfc_limit(shown: pd.DataFrame, delta: float, min_pct: float = DEFAULT_MIN_PCT) -> float:
    """How far the fold changes of the genes that carry information reach: the largest |LFC| among genes called DE
    or expressed in at least ``min_pct`` % of the cells of the group where they are higher (at least 2δ, and 1).
    Genes seen in almost no cell may have larger, meaningless fold changes; they should not set a chart's axis."""
    higher = np.where(shown["lfc_mean"] > 0, shown["pct1"], shown["pct2"])
    informative = (shown["direction"] != NOT_DE).to_numpy() | (higher >= min_pct)
    reach = float(shown["lfc_mean"].abs()[informative].max()) if informative.any() else 0.0
    return max(reach, 2 * delta, 1.0)


def filter_table(shown: pd.DataFrame, search: str = "", direction: str = "both", min_pct: float = 0.0,
                 called_only: bool = False) -> pd.DataFrame:
    """Rows of a :func:`shown_table` whose gene contains ``search`` (case-insensitive), in the chosen
    ``direction`` (``up``, ``down`` or ``both``; higher in group 1 or in group 2, whether called DE or not),
    expressed in at least ``min_pct`` % of the cells of the group where the gene is higher, and called DE when
    ``called_only``."""
    keep = shown["gene"].astype(str).str.contains(search.strip(), case=False, regex=False)
    if direction == UP:
        keep &= shown["lfc_mean"] > 0
    elif direction == DOWN:
        keep &= shown["lfc_mean"] <= 0
    if min_pct > 0:
        higher = np.where(shown["lfc_mean"] > 0, shown["pct1"], shown["pct2"])
        keep &= higher >= min_pct
    if called_only:
        keep &= shown["direction"] != NOT_DE
    return shown[keep.to_numpy()]


def blocks(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The table split by comparison, in the order the comparisons were asked."""
    return {name: table[table["comparison"] == name] for name in pd.unique(table["comparison"])}


def top_markers(table: pd.DataFrame, n: int, min_pct: float = DEFAULT_MIN_PCT) -> dict[str, list[str]]:
    """Per group 1 of each comparison, its ``n`` best markers: genes higher in the group (LFC > 0), expressed in at
    least ``min_pct`` % of its cells, ranked by P(DE) then LFC. Called genes come first; when fewer than ``n`` are
    called the list is completed with the next best, so every group shows ``n`` genes."""
    out = {}
    for block in blocks(table).values():
        up = block[(block["lfc_mean"] > 0) & (block["non_zeros_proportion1"] * 100 >= min_pct)]
        called = up[call_column(up)].astype(bool).to_numpy()
        ranked = pd.concat([rank(up[called]), rank(up[~called])])
        out[str(block["group1"].iloc[0])] = [str(g) for g in ranked.index[:n]]
    return out


def dot_plot_data(table: pd.DataFrame, markers: dict[str, list[str]]) -> pd.DataFrame:
    """One row per (group, marker gene) of a markers table: % of the group's cells expressing the gene, its mean
    denoised expression there (per 10,000 counts, from the group's own comparison: ``scale1``), that expression
    scaled per gene to its highest group (``scaled``, 1 there) and the LFC of the group against the rest. Genes in
    the order of ``markers`` (each once), groups in the order of the table."""
    genes = list(dict.fromkeys(g for listed in markers.values() for g in listed))
    rows = []
    for block in blocks(table).values():
        group = str(block["group1"].iloc[0])
        part = block[~block.index.duplicated()].reindex(genes)
        rows.append(pd.DataFrame({"group": group, "gene": genes, "pct": part["non_zeros_proportion1"].to_numpy() * 100,
                                  "expression": part["scale1"].to_numpy() * 1e4, "lfc": part["lfc_mean"].to_numpy()}))
    if not rows:
        return pd.DataFrame(columns=["group", "gene", "pct", "expression", "scaled", "lfc"])
    data = pd.concat(rows, ignore_index=True)
    highest = data.groupby("gene")["expression"].transform("max")
    data.insert(4, "scaled", data["expression"] / highest.where(highest > 0))
    return data


def truth_recovery(block: pd.DataFrame, true_lfc: pd.Series, delta: float) -> dict[str, int]:
    """Against a simulation's true log2 fold changes of one comparison: how many truly DE genes (|true LFC| ≥ δ)
    were called (``found`` of ``true_de``), how many calls were of genes that are not (``false_calls`` of
    ``called``), and how many called genes went the wrong way (``wrong_direction``)."""
    truth = true_lfc.reindex(block.index.astype(str)).to_numpy(dtype=float)
    known = ~np.isnan(truth)
    is_true = known & (np.abs(np.nan_to_num(truth)) >= delta)
    called = block[call_column(block)].astype(bool).to_numpy() & known
    wrong_way = called & is_true & (np.sign(block["lfc_mean"].to_numpy()) != np.sign(np.nan_to_num(truth)))
    return {"true_de": int(is_true.sum()), "found": int((called & is_true).sum()), "called": int(called.sum()),
            "false_calls": int((called & ~is_true).sum()), "wrong_direction": int(wrong_way.sum()),
            "genes": int(known.sum())}


def sample_cells(labels: np.ndarray, groups: list[str], per_group: int, seed: int = 0) -> np.ndarray:
    """Up to ``per_group`` cells of each group (a seeded random sample, sorted within the group), concatenated in
    the order of ``groups``: the columns of a marker heatmap, which cannot draw every cell of a large dataset."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=str)
    parts = []
    for group in groups:
        cells = np.flatnonzero(labels == group)
        parts.append(np.sort(rng.choice(cells, per_group, replace=False)) if len(cells) > per_group else cells)
    return np.concatenate(parts) if parts else np.array([], dtype=np.int64)
