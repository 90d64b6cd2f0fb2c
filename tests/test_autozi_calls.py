"""δ's posterior given AutoZI's fitted networks (scvi_core/zi/_delta_posterior.py): the grid quadrature and the
coordinate update of q(δ) against independent computations, the per-entry likelihood ratio, and the model's
per-group posterior and tables."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import integrate, optimize, special, stats

from scvi_core import AUTOZI, simulate
from scvi_core import distributions as D
from scvi_core.zi._delta_posterior import (
    FIT_GRID_SIZE,
    best_beta,
    delta_grid,
    entry_log_ratio,
    grid_centres,
    grid_log_likelihood,
    summarize,
)
from scvi_core.zi import CHECK_PREFIX, COUNTS_METHOD, POSTERIOR_METHODS


def _posterior(log_ratio, alpha, beta, size=400):
    delta, log_mass = delta_grid(alpha, beta, size)
    log_lik = grid_log_likelihood(torch.as_tensor(log_ratio, dtype=torch.float32), delta).numpy()
    return summarize(log_lik, log_mass, delta)


@pytest.mark.parametrize("prior", [(0.5, 0.5), (0.3, 0.7), (2.0, 1.0)])
def test_grid_posterior_matches_quadrature(prior):
    """Hand-made per-entry likelihoods (log ZINB − log NB per cell, a few genes): P(ZI) and the posterior mean of δ
    against scipy.integrate.quad of Beta(δ; α, β) · Π_n [δ + (1 − δ)·exp(r_n)]."""
    rng = np.random.default_rng(0)
    ratios = np.stack([rng.normal(shift, 0.3, size=40) for shift in (-0.05, -0.01, 0.0, 0.01, 0.03)], axis=1)
    post = _posterior(ratios, *prior)
    a, b = prior

    def density(d, g, power=0):
        return d ** power * stats.beta.pdf(d, a, b) * np.exp(np.log(d + (1 - d) * np.exp(ratios[:, g])).sum())

    for g in range(ratios.shape[1]):
        quad = lambda lo, hi, power=0: integrate.quad(density, lo, hi, args=(g, power), limit=200)[0]  # noqa: E731
        below, above = quad(0, 0.5), quad(0.5, 1)
        assert post["prob_zero_inflated"][g] == pytest.approx(below / (below + above), abs=2e-3)
        mean = (quad(0, 0.5, 1) + quad(0.5, 1, 1)) / (below + above)
        assert post["mean"][g] == pytest.approx(mean, abs=2e-3)


def test_grid_posterior_is_the_exact_beta_posterior_in_the_limit():
    """Entries only the NB can explain (ZINB ≪ NB) contribute δ, entries only the ZINB can explain (1 − δ): with
    n₁ and n₂ of them the posterior is exactly Beta(α + n₁, β + n₂)."""
    a, b = 0.5, 0.5
    for n_nb, n_zinb in [(0, 0), (1, 0), (0, 2), (3, 2), (8, 9)]:
        column = np.r_[np.full(n_nb, -40.0), np.full(n_zinb, 40.0), [0.0]]
        post = _posterior(column[:, None], a, b)
        exact = stats.beta(a + n_nb, b + n_zinb)
        assert post["prob_zero_inflated"][0] == pytest.approx(exact.cdf(0.5), abs=1e-4)
        assert post["mean"][0] == pytest.approx(exact.mean(), abs=1e-4)
        assert post["alpha"][0] == pytest.approx(a + n_nb, rel=2e-3)  # moment matching recovers the Beta
        assert post["beta"][0] == pytest.approx(b + n_zinb, rel=2e-3)


def _elbo(ratios, alpha, beta, prior=(0.5, 0.5)):
    """E_{Beta(α, β)}[Σ_n log(δ + (1 − δ)·e^{r_n})] − KL(Beta(α, β) ‖ prior): the expectation by adaptive quadrature
    with the Beta's algebraic end-point weight (independent of the grid), the KL in the textbook closed form."""
    def log_lik(d):
        with np.errstate(divide="ignore"):  # quadrature may touch δ = 1, where log(1 − δ) = −∞ is right
            return np.logaddexp(np.log(d), np.log1p(-d) + ratios).sum()
    norm = np.exp(special.betaln(alpha, beta))
    expectation = integrate.quad(log_lik, 0, 1, weight="alg", wvar=(alpha - 1, beta - 1), limit=200)[0] / norm
    a0, b0 = prior
    kl = (special.betaln(a0, b0) - special.betaln(alpha, beta) + (alpha - a0) * special.digamma(alpha)
          + (beta - b0) * special.digamma(beta) + (a0 - alpha + b0 - beta) * special.digamma(alpha + beta))
    return expectation - kl


def test_the_coordinate_update_maximises_the_elbo_in_q_delta():
    """best_beta against a continuous maximisation of the ELBO's δ part by quadrature (Nelder–Mead on logit α, β):
    for genes whose cells lean ZI, NB, or not at all, its Beta reaches the same ELBO within 0.05 nats and the same
    P(ZI) within 0.03; a flat likelihood gives back the prior exactly; a start that is better is kept."""
    rng = np.random.default_rng(3)
    genes = [np.log(rng.uniform(2.0, 4.0, 40)),      # zeros the NB does not expect: towards ZI
             np.log1p(-rng.uniform(0.0, 0.02, 400)),  # positive counts, floored dropout: towards NB
             np.concatenate([np.log(rng.uniform(1.0, 1.6, 20)), np.log1p(-rng.uniform(0.0, 0.03, 60))])]
    delta = grid_centres(FIT_GRID_SIZE)
    log_lik = np.array([np.logaddexp(np.log(delta)[:, None], np.log1p(-delta)[:, None] + r[None, :]).sum(1)
                        for r in genes])
    alpha, beta = best_beta(log_lik, 0.5, 0.5, scale=1.0)
    for g, ratios in enumerate(genes):
        def negative(logits, ratios=ratios):
            a, b = 1 / (1 + np.exp(-logits))
            return -_elbo(ratios, a, b)
        own = np.log([alpha[g], beta[g]]) - np.log1p(-np.array([alpha[g], beta[g]]))
        found = min((optimize.minimize(negative, start, method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-4})
                     for start in (own, [0.0, 0.0])), key=lambda r: r.fun)
        a_star, b_star = 1 / (1 + np.exp(-found.x))
        assert _elbo(ratios, alpha[g], beta[g]) >= -found.fun - 0.05
        assert stats.beta.cdf(0.5, alpha[g], beta[g]) == pytest.approx(stats.beta.cdf(0.5, a_star, b_star), abs=0.03)
    assert stats.beta.cdf(0.5, alpha[0], beta[0]) > 0.9 > 0.5 > stats.beta.cdf(0.5, alpha[1], beta[1])
    flat = best_beta(np.zeros((1, FIT_GRID_SIZE)), 0.3, 0.8, scale=1.0)
    assert (float(flat[0][0]), float(flat[1][0])) == (0.3, 0.8)
    start = (np.array([a_star]), np.array([b_star]))
    kept = best_beta(log_lik[-1:], 0.5, 0.5, scale=1.0, start=start)
    assert (float(kept[0][0]), float(kept[1][0])) == pytest.approx((a_star, b_star), rel=1e-2)


def test_no_evidence_returns_the_prior_exactly():
    for prior in [(0.5, 0.5), (0.3, 0.7)]:
        post = _posterior(np.zeros((50, 3)), *prior)
        np.testing.assert_allclose(post["prob_zero_inflated"], stats.beta.cdf(0.5, *prior), atol=1e-6)
        np.testing.assert_allclose(post["log10_bayes_factor"], 0.0, atol=1e-6)  # float32 entries


def test_entry_log_ratio_is_log_zinb_minus_log_nb():
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.poisson(2.0, size=(30, 8)), dtype=torch.float32)
    mu = torch.as_tensor(rng.gamma(2.0, 1.0, size=(30, 8)), dtype=torch.float32)
    theta = torch.as_tensor(rng.gamma(3.0, 1.0, size=8), dtype=torch.float32)
    pi = torch.as_tensor(rng.uniform(0.01, 0.9, size=(30, 8)), dtype=torch.float32)
    zinb = D.log_zinb(x, mu, theta, torch.log(pi) - torch.log1p(-pi))
    assert entry_log_ratio(x, mu, theta, pi) == pytest.approx(zinb - D.log_nb(x, mu, theta), abs=1e-4)


def test_the_grid_is_chunked_without_changing_the_sum():
    ratios = torch.as_tensor(np.random.default_rng(2).normal(0, 1, size=(37, 5)), dtype=torch.float32)
    delta, _ = delta_grid(0.5, 0.5, 40)
    whole = grid_log_likelihood(ratios, delta)
    assert grid_log_likelihood(ratios, delta, chunk_entries=7 * 5 * 40) == pytest.approx(whole.numpy(), abs=1e-9)


def test_per_batch_posterior_uses_each_batch_cells_and_all_cells_without_a_validation_split():
    adata = simulate(n_cells=300, n_genes=40, seed=4)
    AUTOZI.setup_anndata(adata, batch_key="batch")
    model = AUTOZI(adata, zero_inflation="gene-batch", n_hidden=32)
    model.train(max_epochs=3, batch_size=64, train_size=1.0, early_stopping=False)
    post = model.get_delta_posterior()
    assert post["prob_zero_inflated"].shape == (40, 2)
    assert post["n_cells"].tolist() == np.bincount(model.data.batch_codes, minlength=2).tolist()
    table = model.get_zero_inflation_table(posterior="grid")
    assert table.attrs["posterior"].endswith("all cells") and len(table) == 80
    assert table.attrs["evidence_cells"] == 300
    first = table[table["batch"] == model.registry.batch_categories[0]]
    assert first["prob_zero_inflated"].to_numpy() == pytest.approx(post["prob_zero_inflated"][:, 0])
    assert np.isfinite(table[["alpha_posterior", "beta_posterior", "log10_bayes_factor"]].to_numpy()).all()
    # Only batch 0's cells: batch 1's δ sees no counts and keeps its prior.
    only_first = model.get_delta_posterior(indices=np.flatnonzero(model.data.batch_codes == 0))
    np.testing.assert_allclose(only_first["log10_bayes_factor"][:, 1], 0.0, atol=1e-9)
    assert only_first["prob_zero_inflated"][:, 0] == pytest.approx(post["prob_zero_inflated"][:, 0], abs=1e-9)


def test_grid_table_judges_held_out_cells_and_the_default_is_autozis_trained_posterior():
    adata = simulate(n_cells=300, n_genes=40, seed=5)
    AUTOZI.setup_anndata(adata)
    model = AUTOZI(adata, n_hidden=32)
    model.train(max_epochs=3, batch_size=64, early_stopping=False)
    grid = model.get_zero_inflation_table(posterior="grid")
    assert grid.attrs["posterior"].endswith("held-out cells")
    assert grid.attrs["evidence_cells"] == len(model.validation_indices) == 30
    default = model.get_zero_inflation_table()
    assert default.attrs["posterior"] == "variational q(δ) as trained"
    params = model.get_alphas_betas()
    alpha, beta = params["alpha_posterior"], params["beta_posterior"]
    assert default["alpha_posterior"].to_numpy() == pytest.approx(alpha)  # q(δ) as trained
    assert default["prob_zero_inflated"].to_numpy() == pytest.approx(stats.beta.cdf(0.5, alpha, beta))
    assert list(default.columns) == list(grid.columns)
    assert default.attrs["methods"]["prob_zero_inflated"] == POSTERIOR_METHODS["variational"]
    assert grid.attrs["methods"]["prob_zero_inflated"].startswith("AutoZI: δ's exact posterior on a grid")
    assert default.attrs["methods"][CHECK_PREFIX + "call"].startswith("NB vs ZINB check")
    assert default.attrs["methods"]["mean_count"] == COUNTS_METHOD
    # the check is the same in both tables, and can be left out
    check_bf = CHECK_PREFIX + "log10_bayes_factor"
    pd.testing.assert_series_equal(default[check_bf], grid[check_bf])
    assert not any(c.startswith(CHECK_PREFIX) for c in model.get_zero_inflation_table(check=False).columns)
    with pytest.raises(ValueError, match="posterior must be"):
        model.get_zero_inflation_table(posterior="exact")
