"""Why AutoZI calls a gene zero-inflated (or not), and why the NB vs ZINB check does: what a biologist can check by
eye.

Three pieces for one gene (in one batch / label group in those modes):

- its observed count histogram beside the counts expected under the fits that made each call. AutoZI's two
  components come from the decoder at the posterior mean of each cell's z: per cell μ_ng, θ_g and the floored dropout
  π'_ng = m + (1 − m)·σ(h_g(z_n)); the expected share of cells with count k is the average over cells of
  NB(k; μ_ng, θ_g) and of π'_ng·[k = 0] + (1 − π'_ng)·NB(k; μ_ng, θ_g). The check's are its own refits
  (:mod:`scvi_core.zi._check`), as the table row keeps them: NB(ĉ·m_n, θ̂) and the ZINB with component mean
  ĉ'·m_n, θ̂' and one π̂ for all cells, m_n the model's expected count. High counts are pooled in wider bins
  (zero always alone) and the last bin collects every count ≥ K, so each column sums to 1. When the ZINB's zeros
  match the observed ones and the NB's fall short, the gene is zero-inflated;
- the posterior density of δ_g (the probability of the plain NB) against its prior: AutoZI's P(ZI) is the posterior
  mass below ½;
- its row of the zero-inflation table (both answers and their calls).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .. import distributions as D
from ._calls import CHECK_PREFIX
from ._check import CHECK_FITS

if TYPE_CHECKING:  # the model explained; imported for its name only, as the model imports this package
    from ..model import AUTOZI

MAX_BINS = 24
"""At most this many bars: zero alone, equal-width bins up to the 99th percentile, one bin for the rest."""


@dataclass
class GeneDetail:
    gene: str
    group: str | None
    histogram: pd.DataFrame
    """One row per count bin: ``count`` (label "0", "1", "2–3", …, "≥K"), ``observed``, AutoZI's ``expected_nb``
    and ``expected_zinb``, the check's ``check_nb`` and ``check_zinb`` when the table has it (shares of cells)."""
    delta: pd.DataFrame
    """``delta`` on a grid in (0, 1), the ``posterior`` and ``prior`` Beta densities there."""
    row: dict
    """The gene's row of the zero-inflation table."""


def bin_starts(counts: np.ndarray, max_bins: int = MAX_BINS) -> np.ndarray:
    """First count of each bin: 0 alone (the zeros are what the plot is about), then bins of equal width w from 1 up
    to the 99th percentile of ``counts`` (w = 1 for low counts), then one open bin "≥ last start"."""
    top = int(max(np.ceil(np.quantile(counts, 0.99)) if len(counts) else 0, 4))
    width = int(np.ceil(top / (max_bins - 2)))
    return np.concatenate([[0], np.arange(1, top + 1, width), [1 + width * int(np.ceil(top / width))]])


def bin_labels(starts: np.ndarray) -> list[str]:
    ends = starts[1:] - 1
    inner = [str(a) if a == b else f"{a}–{b}" for a, b in zip(starts[:-1], ends)]
    return inner + [f"≥{starts[-1]}"]


def observed_histogram(counts: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Share of cells whose count falls in each bin."""
    counts = np.asarray(counts, dtype=np.int64)
    bins = np.searchsorted(starts, counts, side="right") - 1
    return np.bincount(bins, minlength=len(starts)) / max(len(counts), 1)


def expected_histograms(mu, theta, pi, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expected share of cells in each bin under NB(μ_n, θ_n) and under the ZINB with extra-zero probability π_n,
    averaged over the cells n (one value per cell in each array). Bin shares are differences of the CDF at the
    bins' last counts: the ZINB's CDF is π + (1 − π)·F_NB."""
    mu, theta, pi = (np.asarray(a, dtype=np.float64)[None, :] for a in (mu, theta, pi))
    last_counts = starts[1:, None] - 1
    cdf = stats.nbinom.cdf(last_counts, theta, theta / (theta + mu))  # scipy's NB: n = θ, p = θ / (θ + μ)
    ones, zeros = np.ones_like(mu), np.zeros_like(mu)
    nb = np.diff(np.vstack([zeros, cdf, ones]), axis=0)
    zinb = np.diff(np.vstack([zeros, pi + (1 - pi) * cdf, ones]), axis=0)
    return nb.mean(axis=1), zinb.mean(axis=1)


def delta_densities(alpha: float, beta: float, alpha_prior: float, beta_prior: float, points: int = 400,
                    ) -> pd.DataFrame:
    """Posterior Beta(α, β) and prior densities of δ on a grid that avoids the (possibly infinite) end points."""
    delta = np.linspace(0.0025, 0.9975, points)
    return pd.DataFrame({"delta": delta, "posterior": stats.beta.pdf(delta, alpha, beta),
                         "prior": stats.beta.pdf(delta, alpha_prior, beta_prior)})


@torch.no_grad()
def fitted_parameters(model: "AUTOZI", gene: str, cells: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per cell (in the order of the returned ``cells``): the observed ``counts`` of ``gene``, the decoder's
    ``mu``, ``theta`` and floored dropout ``pi`` at the posterior mean of z, and the model's ``expected`` count
    (what the NB vs ZINB check fits around)."""
    g = int(model._gene_positions([gene])[0])
    parts = {key: [] for key in ("cells", "counts", "mu", "theta", "pi", "expected")}
    for batch in model._batches(indices=cells):
        inf = model.module.inference(batch)
        gen = model.module.generative(inf["z_mean"], inf["log_library"], batch.batch, batch.label)
        mu = torch.exp(gen["log_mu"][:, g])
        theta = gen["theta"].expand_as(gen["log_mu"])
        pi = D.floored_dropout(gen["zi_logits"], model.module.minimal_dropout)
        expected = model.expected_counts(batch, (inf, gen))
        for key, value in (("cells", batch.index), ("counts", batch.x[:, g]), ("mu", mu),
                           ("theta", theta[:, g]), ("pi", pi[:, g]), ("expected", expected[:, g])):
            parts[key].append(value.cpu().numpy())
    return {key: np.concatenate(values) for key, values in parts.items()}


def check_histograms(fit: dict[str, np.ndarray], row: dict, starts: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray] | None:
    """The NB vs ZINB check's two fits of this gene — the table row's, those that made its call — around the
    model's expected counts, as expected bin shares; None for a table made without the check."""
    if any(CHECK_PREFIX + key not in row for key in CHECK_FITS):
        return None

    def value(key):
        return float(row[CHECK_PREFIX + key]) * np.ones_like(fit["expected"])
    nb, _ = expected_histograms(value("nb_scale") * fit["expected"], value("dispersion"), 0 * fit["expected"], starts)
    _, zinb = expected_histograms(value("zinb_scale") * fit["expected"], value("zinb_dispersion"),
                                  value("excess_zero_fraction"), starts)
    return nb, zinb


def group_cells(model: "AUTOZI", group: str | None) -> np.ndarray | None:
    """The cells of one batch / label group (gene-batch / gene-label modes), or None for every cell."""
    if group is None:
        return None
    codes = model.data.batch_codes if model.module.zero_inflation == "gene-batch" else model.data.label_codes
    return np.flatnonzero(codes == model._group_names().index(group))


def gene_detail(model: "AUTOZI", row: dict) -> GeneDetail:
    """Everything the gene detail view shows for one row of the zero-inflation table (``gene``, the α / β
    posterior, the check's fits ``nb_zinb_check_*``, and the group column in per-batch / per-label modes)."""
    if not hasattr(model, "get_alphas_betas"):
        raise ValueError("Gene detail explains AutoZI's zero-inflation calls; this run is not an AutoZI model.")
    group = str(row[model.group_key]) if model.group_key and model.group_key in row else None
    fit = fitted_parameters(model, str(row["gene"]), group_cells(model, group))
    starts = bin_starts(fit["counts"])
    nb, zinb = expected_histograms(fit["mu"], fit["theta"], fit["pi"], starts)
    histogram = pd.DataFrame({
        "count": bin_labels(starts),
        "observed": observed_histogram(fit["counts"], starts),
        "expected_nb": nb,
        "expected_zinb": zinb,
    })
    check = check_histograms(fit, row, starts)
    if check is not None:
        histogram["check_nb"], histogram["check_zinb"] = check
    prior = model.get_alphas_betas()
    delta = delta_densities(float(row["alpha_posterior"]), float(row["beta_posterior"]),
                            float(prior["alpha_prior"][0]), float(prior["beta_prior"][0]))
    return GeneDetail(gene=str(row["gene"]), group=group, histogram=histogram, delta=delta, row=dict(row))
