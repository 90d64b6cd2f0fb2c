"""Turning AutoZI's posteriors of δ into decisions a biologist can read, and naming what made each column.

(The Beta forms below serve the trained q(δ) and the prior; for ``posterior="grid"`` the table computes P(ZI) and the
Bayes factor from δ's grid posterior in ``scvi_core/zi/_delta_posterior.py`` and calls them with ``zi_calls``.)

A zero-inflation table holds two answers side by side. AutoZI's own — P(ZI) = q(δ_g < ½) under the user's Beta(α, β)
prior, its Bayes factor and its call — in the unprefixed columns (``prob_zero_inflated``, ``log10_bayes_factor``,
``call``, ``is_zero_inflated``, ``alpha_posterior``, ``beta_posterior``); and the **NB vs ZINB check**
(:mod:`scvi_core.zi._check`) in the columns prefixed ``CHECK_PREFIX``. ``table.attrs["methods"]`` maps each
column to the method that made it (:func:`column_methods`).

Why: P(ZI) = q(δ_g < 0.5) alone misleads. A gene whose counts carry no information keeps its posterior near the
prior, and with the default prior Beta(0.5, 0.5) that is P(ZI) ≈ 0.5 — a value of 0.51 is not evidence of zero
inflation. So every gene also gets a Bayes factor: how much the data moved the odds of "zero-inflated" away from
the prior odds,

    log10 BF_g = log10[ q(δ_g < ½) / q(δ_g ≥ ½) ] − log10[ p(δ < ½) / p(δ ≥ ½) ],

and the evidence-aware call is "zero-inflated" / "not zero-inflated" only when P(ZI) is on that side of the
threshold *and* |log10 BF| reaches ``min_log10_bf`` (default 0.5: the data changed the odds at least ~3-fold,
"substantial" evidence on Jeffreys' scale); otherwise "undetermined". Evidence for "not zero-inflated" is weak by
nature (a ZINB with little dropout is almost an NB), so many NB genes end up "undetermined" rather than falsely
sure. On simulated data this keeps false ZI calls near 0 where P(ZI) > 0.5 alone makes about 10%. These functions take arrays, so a page can re-threshold a saved table without the model.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

ZI, NOT_ZI, UNDETERMINED = "zero-inflated", "not zero-inflated", "undetermined"
DEFAULT_MIN_LOG10_BF = 0.5

CHECK_PREFIX = "nb_zinb_check_"
AUTOZI_COLUMNS = ("alpha_posterior", "beta_posterior", "prob_zero_inflated", "log10_bayes_factor", "call",
                  "is_zero_inflated")
CHECK_COLUMNS = tuple(CHECK_PREFIX + c for c in ("prob_zero_inflated", "log10_bayes_factor", "excess_zero_fraction",
                                                 "call", "dispersion", "nb_scale", "zinb_scale", "zinb_dispersion"))
POSTERIOR_METHODS = {
    "variational": ("AutoZI: the trained variational posterior q(δ) = Beta(α, β), fitted to convergence given the "
                    "networks when training ended; P(ZI) = q(δ < ½)"),
    "grid": "AutoZI: δ's exact posterior on a grid given the fitted networks; P(ZI) = q*(δ < ½)",
}
CHECK_METHOD = ("NB vs ZINB check: an NB and a ZINB refitted per gene around the model's expected counts, compared by "
                "their Schwarz (BIC) Bayes factor, with the prior odds of the Beta(α, β) prior")
COUNTS_METHOD = "the gene's counts, and zeros expected by the fitted decoder at each cell's posterior mean"


def column_methods(columns, posterior: str) -> dict[str, str]:
    """Which method made each column of a zero-inflation table whose AutoZI columns come from ``posterior``."""
    def method(column):
        if column in AUTOZI_COLUMNS or column == "fraction_cells_zero_inflated":
            return POSTERIOR_METHODS[posterior]
        return CHECK_METHOD if column.startswith(CHECK_PREFIX) else COUNTS_METHOD
    return {c: method(c) for c in columns if c != "gene"}


def prob_zero_inflated(alpha, beta) -> np.ndarray:
    """q(δ < 0.5) for Beta(α, β): δ is the probability of the plain NB, so this is P(zero-inflated)."""
    return stats.beta.cdf(0.5, alpha, beta)


def log10_odds_zero_inflated(alpha, beta) -> np.ndarray:
    """log10 of q(δ < ½) / q(δ ≥ ½), computed from log-CDF and log-survival so that extreme odds stay finite."""
    return (stats.beta.logcdf(0.5, alpha, beta) - stats.beta.logsf(0.5, alpha, beta)) / np.log(10)


def log10_bayes_factor(alpha_post, beta_post, alpha_prior, beta_prior) -> np.ndarray:
    """How far the data moved the odds of zero inflation from the prior odds (positive: towards ZI)."""
    return log10_odds_zero_inflated(alpha_post, beta_post) - log10_odds_zero_inflated(alpha_prior, beta_prior)


def zi_calls(prob, log10_bf, threshold: float = 0.5, min_log10_bf: float = DEFAULT_MIN_LOG10_BF) -> np.ndarray:
    """Evidence-aware call per row: ZI, NOT_ZI or UNDETERMINED (see the module docstring)."""
    prob, log10_bf = np.asarray(prob), np.asarray(log10_bf)
    calls = np.full(prob.shape, UNDETERMINED, dtype=object)
    calls[(prob > threshold) & (log10_bf >= min_log10_bf)] = ZI
    calls[(prob <= threshold) & (log10_bf <= -min_log10_bf)] = NOT_ZI
    return calls


def apply_threshold(table, threshold: float = 0.5, min_log10_bf: float = DEFAULT_MIN_LOG10_BF):
    """Return a copy of a zero-inflation table with AutoZI's ``is_zero_inflated`` and ``call`` recomputed, and the
    check's call when the table has it."""
    table = table.copy()
    table["is_zero_inflated"] = table["prob_zero_inflated"] > threshold
    table["call"] = zi_calls(table["prob_zero_inflated"], table["log10_bayes_factor"], threshold, min_log10_bf)
    if CHECK_PREFIX + "prob_zero_inflated" in table.columns:
        table[CHECK_PREFIX + "call"] = zi_calls(table[CHECK_PREFIX + "prob_zero_inflated"],
                                                table[CHECK_PREFIX + "log10_bayes_factor"], threshold, min_log10_bf)
    table.attrs.update(threshold=threshold, min_log10_bf=min_log10_bf)
    return table
