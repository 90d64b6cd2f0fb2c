"""Zero inflation: AutoZI's answer per gene (P(ZI) = q(δ_g < ½) under the user's Beta(α, β) prior, and its call),
the NB vs ZINB check beside it under its own name, and what a biologist reads from them.

One concept per private file, re-exported here: ``_calls`` (from a posterior of δ to a call, and which method made
each column), ``_delta_posterior`` (δ's posterior on a grid given the fitted networks, and the Beta that ends
training), ``_check`` (the NB vs ZINB check), ``_tables`` (reading a finished table: filters, shares, recovery of a
known truth), ``_gene_detail`` (why one gene was called what it was). The model itself is
:class:`scvi_core.model.AUTOZI`.
"""

from ._calls import (
    CHECK_COLUMNS,
    CHECK_METHOD,
    CHECK_PREFIX,
    COUNTS_METHOD,
    DEFAULT_MIN_LOG10_BF,
    NOT_ZI,
    POSTERIOR_METHODS,
    UNDETERMINED,
    ZI,
    apply_threshold,
    column_methods,
    log10_bayes_factor,
    prob_zero_inflated,
    zi_calls,
)
from ._check import CHECK_FITS, gene_evidence
from ._gene_detail import GeneDetail, gene_detail
from ._tables import EXPRESSED_MEAN, autozi_only, call_shares, disagree, filter_table, group_column, recovery

__all__ = [
    "CHECK_COLUMNS", "CHECK_METHOD", "CHECK_PREFIX", "COUNTS_METHOD", "DEFAULT_MIN_LOG10_BF", "NOT_ZI",
    "POSTERIOR_METHODS", "UNDETERMINED", "ZI", "apply_threshold", "column_methods", "log10_bayes_factor",
    "prob_zero_inflated", "zi_calls",
    "CHECK_FITS", "gene_evidence",
    "GeneDetail", "gene_detail",
    "EXPRESSED_MEAN", "autozi_only", "call_shares", "disagree", "filter_table", "group_column", "recovery",
]
