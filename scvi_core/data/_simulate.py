"""Simulated count data with known ground truth.

Why: the dashboard's demo needs data without a download, and the tests need data where the right answer is known
(cell types for the latent space, batches for batch correction, and which genes are zero-inflated for AutoZI).

Generative process (per gene g, cell n of type t and batch b):

    mean_ng   = library_n * softmax_g(base_g + type_effect_tg + batch_effect_bg)
    x_ng      ~ NB(mean_ng, theta_g)
    x_ng      = 0 with probability pi_g for the zero-inflated genes (pi_g = 0 for the others)

Zeros of other shapes than AutoZI's constant per-gene dropout (off by default), so that a zero-inflation call is
also judged on data its own model did not generate:

- ``cell_type_zi_fraction`` of the genes drop out only in some cell types (pi_tg > 0 in 1 … T−1 random types, 0 in
  the others): zero inflation that follows the cell type;
- ``silent_fraction`` of the genes are plain NB but off (mean 0) in 1 … T−1 random cell types: zero-rich, not
  zero-inflated.

The ground truth is stored in ``var["is_zero_inflated"]``, ``var["zero_kind"]`` (one of ``ZERO_KINDS``),
``var["true_dropout"]`` (averaged over the equally likely types), ``var["true_dispersion"]``,
``obs["cell_type"]`` and ``obs["batch"]``. For differential expression, ``var["true_expression_<type>"]`` holds each
type's expected normalised expression: the expected share of a cell's counts that gene g takes, zero inflation
included, averaged over the (equally likely) batches,

    E_b[ (1 − pi_g) · softmax_g(logits_tbg) / Σ_g' (1 − pi_g') · softmax_g'(logits_tbg') ],

the quantity that both a model's normalised expression and counts / library size estimate (a zero-inflated gene
loses the same share of its counts in every type, which shifts every other gene's share a little). ``var[
"true_lfc_<type>"]`` is its log2 fold change against the average of the other types (one-vs-rest, types being equally
likely); :func:`true_lfc` gives any other comparison.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp


ENTRIES_PER_BLOCK = 2_000_000  # cells are drawn in blocks of this many entries, so memory stays ~100 MB
NB, NB_SILENT, CONSTANT_DROPOUT, CELL_TYPE_DROPOUT = "NB", "NB silent in some types", "constant dropout", \
    "cell-type dropout"
ZERO_KINDS = (NB, NB_SILENT, CONSTANT_DROPOUT, CELL_TYPE_DROPOUT)


def simulate(
    n_cells: int = 2000,
    n_genes: int = 500,
    n_cell_types: int = 4,
    n_batches: int = 2,
    zi_fraction: float = 0.3,
    dropout_range: tuple[float, float] = (0.2, 0.5),
    dispersion_range: tuple[float, float] = (2.0, 20.0),
    mean_library_size: float = 3000.0,
    batch_effect: float = 0.3,
    cell_type_zi_fraction: float = 0.0,
    cell_type_dropout_range: tuple[float, float] | None = None,
    silent_fraction: float = 0.0,
    seed: int = 0,
) -> ad.AnnData:
    """Return an AnnData of raw counts (int32 CSR) with known cell types, batches and zero-inflated genes.

    ``zi_fraction`` of the genes get extra (structural) zeros with a per-gene rate drawn uniformly from
    ``dropout_range``; the rest are plain negative binomial. Dispersions ``theta_g`` are log-uniform in
    ``dispersion_range`` (larger = less over-dispersed). ``cell_type_zi_fraction`` and ``silent_fraction`` of the
    other genes get the zeros of the module docstring (rates of the former from ``cell_type_dropout_range``, by
    default ``dropout_range``); with both at 0 the data are what they were before these options existed, seed for
    seed.
    """
    if n_cells < 1 or n_genes < 1 or n_cell_types < 1 or n_batches < 1:
        raise ValueError("n_cells, n_genes, n_cell_types and n_batches must all be at least 1.")
    fractions = {"zi_fraction": zi_fraction, "cell_type_zi_fraction": cell_type_zi_fraction,
                 "silent_fraction": silent_fraction}
    for name, value in fractions.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1]; got {value}.")
    if sum(fractions.values()) > 1.0:
        raise ValueError(f"The gene fractions add up to more than 1: {fractions}.")
    if (cell_type_zi_fraction or silent_fraction) and n_cell_types < 2:
        raise ValueError("Cell-type-specific zeros need at least 2 cell types.")
    rng = np.random.default_rng(seed)

    base = rng.normal(0.0, 1.2, size=n_genes)
    type_effect = rng.normal(0.0, 1.0, size=(n_cell_types, n_genes)) * (rng.random((n_cell_types, n_genes)) < 0.3)
    batch_shift = rng.normal(0.0, batch_effect, size=(n_batches, n_genes))
    theta = np.exp(rng.uniform(*np.log(dispersion_range), size=n_genes))
    is_zi = np.zeros(n_genes, dtype=bool)
    is_zi[rng.choice(n_genes, size=int(round(zi_fraction * n_genes)), replace=False)] = True
    dropout = np.where(is_zi, rng.uniform(*dropout_range, size=n_genes), 0.0)

    cell_type = rng.integers(0, n_cell_types, size=n_cells)
    batch = rng.integers(0, n_batches, size=n_cells)
    library = np.exp(rng.normal(np.log(mean_library_size), 0.3, size=n_cells))

    kind = np.where(is_zi, CONSTANT_DROPOUT, NB).astype(object)
    type_dropout = np.broadcast_to(dropout, (n_cell_types, n_genes)).copy()  # pi_tg
    silent = np.zeros((n_cell_types, n_genes), dtype=bool)
    if cell_type_zi_fraction or silent_fraction:
        other = np.random.default_rng([seed, 1])  # a stream of its own keeps the default data unchanged
        free = other.permutation(np.flatnonzero(~is_zi))
        n_type_zi, n_silent = (int(round(f * n_genes)) for f in (cell_type_zi_fraction, silent_fraction))
        for genes, name in ((free[:n_type_zi], CELL_TYPE_DROPOUT), (free[n_type_zi:n_type_zi + n_silent], NB_SILENT)):
            kind[genes] = name
            for g in genes:
                types = other.choice(n_cell_types, size=other.integers(1, n_cell_types), replace=False)
                if name == CELL_TYPE_DROPOUT:
                    type_dropout[types, g] = other.uniform(*(cell_type_dropout_range or dropout_range))
                else:
                    silent[types, g] = True
        is_zi = np.isin(kind, [CONSTANT_DROPOUT, CELL_TYPE_DROPOUT])
        dropout = type_dropout.mean(axis=0)

    logits = np.where(silent, -np.inf, base[None, :] + type_effect) + batch_shift[:, None, :]  # (batch, type, gene)
    rows_per_block = max(1, ENTRIES_PER_BLOCK // n_genes)
    blocks = []
    for start in range(0, n_cells, rows_per_block):
        cells = slice(start, start + rows_per_block)
        block_logits = logits[batch[cells], cell_type[cells]]
        mean = library[cells, None] * _softmax(block_logits)
        # NB as a Gamma-Poisson mixture: rate ~ Gamma(shape=theta, scale=mean/theta).
        counts = rng.poisson(rng.gamma(theta[None, :], mean / theta[None, :]))
        counts[rng.random(counts.shape) < type_dropout[cell_type[cells]]] = 0
        blocks.append(sp.csr_matrix(counts.astype(np.int32)))

    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical([f"type_{t + 1}" for t in cell_type]),
            "batch": pd.Categorical([f"batch_{b + 1}" for b in batch]),
        },
        index=[f"cell_{i:06d}" for i in range(n_cells)],
    )
    var = pd.DataFrame(
        {"is_zero_inflated": is_zi, "zero_kind": pd.Categorical(kind, categories=ZERO_KINDS),
         "true_dropout": dropout, "true_dispersion": theta},
        index=[f"gene_{j:05d}" for j in range(n_genes)],
    )
    type_names = [f"type_{t + 1}" for t in range(n_cell_types)]
    kept = _softmax(logits) * (1.0 - type_dropout)  # (batch, cell type, gene)
    expression = (kept / kept.sum(axis=-1, keepdims=True)).mean(axis=0)  # (cell type, gene)
    for t, name in enumerate(type_names):
        var[f"{TRUE_EXPRESSION}{name}"] = expression[t]
    for name in type_names:
        var[f"true_lfc_{name}"] = _log2_ratio(var, [name], [n for n in type_names if n != name])
    adata = ad.AnnData(X=sp.vstack(blocks, format="csr"), obs=obs, var=var)
    adata.uns["simulation"] = {
        "n_cell_types": n_cell_types,
        "n_batches": n_batches,
        "zi_fraction": zi_fraction,
        "dropout_range": list(dropout_range),
        "dispersion_range": list(dispersion_range),
        "mean_library_size": mean_library_size,
        "batch_effect": batch_effect,
        "cell_type_zi_fraction": cell_type_zi_fraction,
        "cell_type_dropout_range": list(cell_type_dropout_range or dropout_range),
        "silent_fraction": silent_fraction,
        "seed": seed,
    }
    return adata


TRUE_EXPRESSION = "true_expression_"


def _softmax(logits: np.ndarray) -> np.ndarray:
    freq = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return freq / freq.sum(axis=-1, keepdims=True)


def _log2_ratio(var: pd.DataFrame, types1: list[str], types2: list[str]) -> np.ndarray:
    """log2 of the mean expected expression of types1 over that of types2 (types equally likely)."""
    mean1 = var[[TRUE_EXPRESSION + t for t in types1]].to_numpy().mean(axis=1)
    mean2 = var[[TRUE_EXPRESSION + t for t in types2]].to_numpy().mean(axis=1)
    with np.errstate(divide="ignore"):  # a gene silent in every type of one side: an infinite fold change
        return np.log2(mean1) - np.log2(mean2)


def true_lfc(adata: ad.AnnData, group1: str | list[str], group2: str | list[str] | None = None) -> pd.Series:
    """The true log2 fold change, by gene, of the expected normalised expression of simulated cell type(s)
    ``group1`` over ``group2`` (``None``: every other type), the answer a differential-expression call should find.
    Raises ValueError for data that were not simulated or an unknown type."""
    types = [c[len(TRUE_EXPRESSION):] for c in adata.var.columns if c.startswith(TRUE_EXPRESSION)]
    if not types:
        raise ValueError("These data carry no simulated truth (var['true_expression_<type>'] columns).")
    types1 = [group1] if isinstance(group1, str) else list(group1)
    types2 = [t for t in types if t not in types1] if group2 is None else (
        [group2] if isinstance(group2, str) else list(group2))
    unknown = sorted(set(types1 + types2) - set(types))
    if unknown:
        raise ValueError(f"Unknown simulated cell type(s) {unknown}; the types are {types}.")
    if not types2:
        raise ValueError("There is no other cell type to compare with.")
    return pd.Series(_log2_ratio(adata.var, types1, types2), index=adata.var_names, name="true_lfc")
