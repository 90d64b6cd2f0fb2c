"""AutoZI's posterior of δ_g in closed form on a grid, given the fitted networks (see docs/models.md, "The calls").

Why: the variational q(δ_g) = Beta(α_g, β_g) is stepped by Adam at the network's learning rate, so how far it has
moved — and hence P(ZI) and the call — depends on how long and how fast one trains, and late in training it follows a
decoder that over-fits zeros on the training cells. Given the fitted decoder, the exact posterior of one scalar δ_g is
cheap: with per-entry log-likelihoods under the plain NB and under the ZINB component (dropout π'_ng),

    log p(x_g | δ) = Σ_n logaddexp( log δ + log NB_ng,  log(1 − δ) + log ZINB_ng ),
    q*(δ_g) ∝ Beta(δ; α, β) · exp(log p(x_g | δ)),            P(ZI) = q*(δ_g < ½).

It has no step size and cannot drift with training length. The grid: K cells equally spaced in u with δ = sin²(πu/2)
(dense near 0 and 1, where the posterior piles up; for the default Beta(½, ½) prior it is exactly uniform in u), the
middle edge at δ = ½ exactly; each cell weighs its exact prior mass (Beta CDF differences) times the likelihood at its
centre, so a flat likelihood returns the prior exactly (P(ZI) of the prior, Bayes factor 0).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

GRID_SIZE = 400


def delta_grid(alpha_prior: float, beta_prior: float, size: int = GRID_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Grid centres δ_k (K,) and the log prior mass of each grid cell (K,). ``size`` must be even: cells
    0 … K/2 − 1 lie below δ = ½, the others above."""
    if size < 2 or size % 2:
        raise ValueError(f"The grid needs an even number of points ≥ 2; got {size}.")
    u_edges = np.linspace(0.0, 1.0, size + 1)
    edges = np.sin(np.pi * u_edges / 2) ** 2
    edges[0], edges[size // 2], edges[-1] = 0.0, 0.5, 1.0
    centres = np.sin(np.pi * (u_edges[:-1] + u_edges[1:]) / 4) ** 2
    # Prior mass of each cell from the CDF below ½ and the survival function above (no cancellation near 1).
    below = np.diff(stats.beta.cdf(edges[: size // 2 + 1], alpha_prior, beta_prior))
    above = -np.diff(stats.beta.sf(edges[size // 2:], alpha_prior, beta_prior))
    mass = np.concatenate([below, above])
    return centres, np.log(np.clip(mass, 1e-300, None))


def entry_log_ratio(x: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor, dropout: torch.Tensor) -> torch.Tensor:
    """log ZINB(x; μ, θ, π') − log NB(x; μ, θ) per entry: log(1 − π') where x > 0, and
    log(π' + (1 − π')·NB(0)) − log NB(0) where x = 0 (the lnΓ terms cancel)."""
    log_p0 = -theta * torch.log1p(mu / theta)
    zero = torch.logaddexp(torch.log(dropout), torch.log1p(-dropout) + log_p0) - log_p0
    return torch.where(x > 0, torch.log1p(-dropout), zero)


def grid_log_likelihood(log_ratio: torch.Tensor, delta: np.ndarray | torch.Tensor, chunk_entries: int = 1 << 24
                        ) -> torch.Tensor:
    """Σ_n log[δ_k + (1 − δ_k)·exp(r_ng)] for r = log ZINB − log NB of shape (cells, G) → (G, K), float64.

    This is log p(x_g | δ_k) − Σ_n log NB_ng: the δ-free part is dropped, which the posterior does not need.
    Cells are taken in chunks of about ``chunk_entries`` (cell, gene, grid point) triples to bound memory."""
    delta = torch.as_tensor(delta, dtype=torch.float64)
    log_d = torch.log(delta).to(log_ratio.dtype).to(log_ratio.device)
    log_1md = torch.log1p(-delta).to(log_ratio.dtype).to(log_ratio.device)
    n_cells, n_genes = log_ratio.shape
    step = max(1, chunk_entries // max(1, n_genes * len(delta)))
    total = torch.zeros(n_genes, len(delta), dtype=torch.float64, device=log_ratio.device)
    for start in range(0, n_cells, step):
        r = log_ratio[start:start + step, :, None]
        total += torch.logaddexp(log_d, log_1md + r).sum(0, dtype=torch.float64)
    return total


def summarize(log_likelihood: np.ndarray, log_prior_mass: np.ndarray, delta: np.ndarray) -> dict[str, np.ndarray]:
    """From log p(x | δ_k) (…, K) to the posterior's P(ZI) = q*(δ < ½), log10 posterior odds of ZI, log10 Bayes
    factor against the prior, mean and variance of δ, and the Beta with the same mean and variance
    (``alpha`` / ``beta``, for display: the calls use q* itself)."""
    log_post = np.asarray(log_likelihood, dtype=np.float64) + log_prior_mass
    half = log_post.shape[-1] // 2
    lo = np.logaddexp.reduce(log_post[..., :half], axis=-1)
    hi = np.logaddexp.reduce(log_post[..., half:], axis=-1)
    prior_odds = np.logaddexp.reduce(log_prior_mass[:half]) - np.logaddexp.reduce(log_prior_mass[half:])
    weights = np.exp(log_post - np.logaddexp(lo, hi)[..., None])
    mean = (weights * delta).sum(-1)
    var = np.clip((weights * (delta - mean[..., None]) ** 2).sum(-1), 1e-300, None)
    concentration = np.clip(mean * (1 - mean) / var - 1, 1e-6, None)
    return {
        "prob_zero_inflated": np.exp(lo - np.logaddexp(lo, hi)),
        "log10_odds": (lo - hi) / np.log(10),
        "log10_bayes_factor": (lo - hi - prior_odds) / np.log(10),
        "mean": mean,
        "var": var,
        "alpha": mean * concentration,
        "beta": (1 - mean) * concentration,
    }
