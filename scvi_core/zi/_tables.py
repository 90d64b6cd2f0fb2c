"""Reading a zero-inflation table: filters, the share of genes called zero-inflated, and recovery of known truth.

Why separate from :mod:`scvi_core.zi._calls` (which makes the calls): these are the views a user asks of a
finished table, and they work on a saved CSV without the model. "Called zero-inflated" here is the seed's decision
rule, ``is_zero_inflated`` = P(ZI) > threshold; the evidence-aware ``call`` column is counted beside it.

The AutoZI authors advise interpreting only genes with mean count > 1: for rarely expressed genes, NB and ZINB
predict almost the same zeros and the posterior stays near the prior.
"""

from __future__ import annotations

import pandas as pd

from ._calls import CHECK_PREFIX, NOT_ZI, ZI

EXPRESSED_MEAN = 1.0


def group_column(table: pd.DataFrame) -> str | None:
    """The batch / label column of a per-batch / per-label table (right after ``gene``), or None."""
    return table.columns[1] if table.columns[1] != "alpha_posterior" else None


def disagree(table: pd.DataFrame) -> pd.Series:
    """Rows where AutoZI's call and the NB vs ZINB check's differ (all False for a table without the check)."""
    column = CHECK_PREFIX + "call"
    return table["call"] != table[column] if column in table.columns else pd.Series(False, index=table.index)


def autozi_only(table: pd.DataFrame) -> pd.Series:
    """Expressed genes (mean count > 1) that AutoZI calls zero-inflated and the NB vs ZINB check calls not: zeros
    that follow the cell type (AutoZI's dropout h_g(z_n) finds them, the check's one π per gene misses them) and genes
    switched off in some cell types (AutoZI's model cannot tell them from dropout there) both look like this
    (docs/models.md). All False for a table without the check."""
    column = CHECK_PREFIX + "call"
    if column not in table.columns:
        return pd.Series(False, index=table.index)
    return (table["mean_count"] > EXPRESSED_MEAN) & (table["call"] == ZI) & (table[column] == NOT_ZI)


def filter_table(table: pd.DataFrame, search: str = "", min_mean: float = 0.0, calls: list[str] | None = None,
                 disagreeing: bool = False) -> pd.DataFrame:
    """Rows whose gene name contains ``search`` (case-insensitive), with mean count > ``min_mean`` (when > 0),
    when ``calls`` is given whose AutoZI call is one of them, and with ``disagreeing`` only those where the check
    calls otherwise."""
    keep = table["gene"].astype(str).str.contains(search.strip(), case=False, regex=False)
    if min_mean > 0:
        keep &= table["mean_count"] > min_mean
    if calls is not None:
        keep &= table["call"].isin(calls)
    if disagreeing:
        keep &= disagree(table)
    return table[keep]


def call_shares(table: pd.DataFrame) -> pd.DataFrame:
    """Genes called zero-inflated among all genes and among genes with mean count > 1: one row each with
    ``genes``, ``n_genes``, ``evidence_zi`` / ``share_evidence`` (evidence-aware calls) and ``called_zi`` /
    ``share_zi`` (P(ZI) > threshold)."""
    rows = []
    expressed = table[table["mean_count"] > EXPRESSED_MEAN]
    for name, part in (("all genes", table), (f"mean count > {EXPRESSED_MEAN:g}", expressed)):
        n = len(part)
        called, evidence = int(part["is_zero_inflated"].sum()), int((part["call"] == ZI).sum())
        rows.append({"genes": name, "n_genes": n, "evidence_zi": evidence, "called_zi": called,
                     "share_evidence": evidence / n if n else float("nan"),
                     "share_zi": called / n if n else float("nan")})
    return pd.DataFrame(rows)


def recovery(table: pd.DataFrame, truth: pd.Series) -> dict[str, int]:
    """Against known truth (``truth``: gene name → is zero-inflated, e.g. the simulator's ``var``): how many truly
    zero-inflated genes were called (``found`` of ``true_zi``) and how many NB genes were wrongly called
    (``false_calls`` of ``true_nb``), by P(ZI) > threshold and by the evidence-aware call."""
    is_true = table["gene"].astype(str).map(truth.astype(bool)).fillna(False).to_numpy(dtype=bool)
    called = table["is_zero_inflated"].to_numpy(dtype=bool)
    evidence = (table["call"] == ZI).to_numpy()
    return {"true_zi": int(is_true.sum()), "found": int((called & is_true).sum()),
            "found_evidence": int((evidence & is_true).sum()), "true_nb": int((~is_true).sum()),
            "false_calls": int((called & ~is_true).sum()), "false_calls_evidence": int((evidence & ~is_true).sum())}
