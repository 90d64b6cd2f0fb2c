"""The decision rules both methods share, as scvi-tools states them: the posterior-expected-FDR selection of DE genes,
δ estimated from the data, the log Bayes factor, and the order a table is read in."""

from __future__ import annotations

import numpy as np
import pandas as pd

EPS = 1e-8  # scvi-tools' guard inside the logarithms of the Bayes factor


def fdr_calls(proba_de: np.ndarray, fdr_target: float) -> np.ndarray:
    """The largest set of top genes by proba_de whose posterior expected FDR, mean(1 − proba_de), is ≤ fdr_target.
    Sorted descending, the running mean of 1 − p can only grow, so that set is a prefix."""
    order = np.argsort(-proba_de, kind="stable")
    expected_fdr = np.cumsum(1.0 - proba_de[order]) / np.arange(1, len(order) + 1)
    n_called = int(np.sum(expected_fdr <= fdr_target))
    calls = np.zeros(len(proba_de), dtype=bool)
    calls[order[:n_called]] = True
    return calls


def estimate_delta(lfc: np.ndarray, seed: int = 0) -> float:
    """δ from the data (as scvi-tools' ``delta=None``): a 3-component Gaussian mixture of the genes' LFCs,
    δ = max(0.1, 0.6 · mean(|lowest component mean|, |highest component mean|))."""
    from sklearn.mixture import GaussianMixture

    means = GaussianMixture(n_components=3, random_state=seed).fit(lfc.reshape(-1, 1)).means_.ravel()
    return float(max(0.1, 0.6 * (abs(means.min()) + abs(means.max())) / 2))


def log_odds(p: np.ndarray) -> np.ndarray:
    """ln(p + ε) − ln(1 − p + ε): scvi-tools' ``bayes_factor`` of a probability (posterior odds, not a p-value)."""
    return np.log(p + EPS) - np.log(1.0 - p + EPS)


def change_columns(proba_up: np.ndarray, proba_down: np.ndarray) -> dict[str, np.ndarray]:
    """Change mode's decision columns from the two tails P(LFC ≥ δ) and P(LFC ≤ −δ): ``proba_de`` = the larger
    (scvi-tools' three-hypothesis test), ``proba_not_de``, and ``bayes_factor`` = its log odds times the sign of
    P(up) − P(down) (positive: higher in group 1; 0 when the tails are equal), as scvi-tools signed it up to 1.3;
    1.4 reports the log odds unsigned."""
    proba_de = np.maximum(proba_up, proba_down)
    sign = np.sign(proba_up - proba_down)
    return {"proba_de": proba_de, "proba_not_de": 1.0 - proba_de, "bayes_factor": sign * log_odds(proba_de),
            "proba_up": proba_up, "proba_down": proba_down}


def vanilla_columns(proba_m1: np.ndarray) -> dict[str, np.ndarray]:
    """Vanilla mode's columns from P(group 1 > group 2): ``proba_m1``, ``proba_m2`` and their signed log odds."""
    return {"proba_m1": proba_m1, "proba_m2": 1.0 - proba_m1, "bayes_factor": log_odds(proba_m1)}


def with_group_columns(table: pd.DataFrame, scales: tuple, pc, delta: float | None, raw: tuple,
                       n_cells: tuple[int, int]) -> pd.DataFrame:
    """The columns both methods end a comparison's table with: ``scale1/2`` (the groups' mean ρ), ``pseudocounts``,
    ``delta`` (change mode), the raw-count statistics of each group and the cells used (``n_cells1/2``)."""
    table["scale1"], table["scale2"] = scales
    table["pseudocounts"] = pc
    if delta is not None:
        table["delta"] = delta
    for name in ("raw_mean", "non_zeros_proportion", "raw_normalized_mean"):
        table[f"{name}1"], table[f"{name}2"] = raw[0][name], raw[1][name]
    table["n_cells1"], table["n_cells2"] = n_cells
    return table


def moderated_lfc(table: pd.DataFrame) -> pd.Series:
    """log2(scale1 + c) − log2(scale2 + c), c the larger of the test's pseudocount and the median gene's expression
    in the comparison: the fold change of the groups' mean expression, damped where a gene is barely expressed. The
    order of genes with the same P(DE): without the damping a gene seen in a few cells of one group only (scVI's
    pseudocount is ~10⁻⁹) would top a list of markers above the well-expressed ones a biologist looks for."""
    damping = np.maximum(table["pseudocounts"], np.median(np.r_[table["scale1"], table["scale2"]]))
    return np.log2(table["scale1"] + damping) - np.log2(table["scale2"] + damping)


def rank(table: pd.DataFrame, by: str = "proba_de") -> pd.DataFrame:
    """One comparison's rows, most convincing first: by ``by`` (P(DE)) to the 3 decimals a table shows, then by the
    size of the moderated LFC, so that among near-certain genes the larger changes of expressed genes come first."""
    key = pd.DataFrame({"p": table[by].round(3).to_numpy(), "lfc": moderated_lfc(table).abs().to_numpy()})
    return table.iloc[key.sort_values(["p", "lfc"], ascending=False, kind="stable").index.to_numpy()]
