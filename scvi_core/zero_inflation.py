"""Turning AutoZI's posteriors of δ into decisions a biologist can read.

(The Beta forms below serve the trained q(δ) and the prior; for ``posterior="grid"`` the table computes P(ZI) and the
Bayes factor from δ's grid posterior in ``scvi_core/delta_posterior.py`` and calls them with ``zi_calls``.)

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
    """Return a copy of a zero-inflation table with ``is_zero_inflated`` and ``call`` recomputed."""
    table = table.copy()
    table["is_zero_inflated"] = table["prob_zero_inflated"] > threshold
    table["call"] = zi_calls(table["prob_zero_inflated"], table["log10_bayes_factor"], threshold, min_log10_bf)
    return table
