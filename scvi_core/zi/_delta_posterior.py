"""AutoZI's posterior of δ_g on a grid given the fitted networks: exactly (``summarize``), and as the Beta that
maximises AutoZI's ELBO given them (``best_beta``, the coordinate update that ends training). docs/models.md.

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
from scipy import special

GRID_SIZE = 400
FIT_GRID_SIZE = 128
"""Grid points of the coordinate update (``best_beta``): its cost is cells × genes × points."""
LOGIT_CANDIDATES = np.linspace(-10.0, 10.0, 61)
"""α and β searched by ``best_beta``: c·σ(ℓ) for these ℓ, so from 5·10⁻⁵·c to c in steps of 1/3 in logit."""
ROW_CHUNK = 4096


def grid_edges(size: int) -> np.ndarray:
    """The K + 1 cell edges in δ: equally spaced in u with δ = sin²(πu/2), the middle one at δ = ½ exactly."""
    if size < 2 or size % 2:
        raise ValueError(f"The grid needs an even number of points ≥ 2; got {size}.")
    edges = np.sin(np.pi * np.linspace(0.0, 1.0, size + 1) / 2) ** 2
    edges[0], edges[size // 2], edges[-1] = 0.0, 0.5, 1.0
    return edges


def grid_centres(size: int) -> np.ndarray:
    """The K cell centres in δ, midway in u between the edges of :func:`grid_edges`."""
    u_edges = np.linspace(0.0, 1.0, size + 1)
    return np.sin(np.pi * (u_edges[:-1] + u_edges[1:]) / 4) ** 2


def beta_masses(alpha, beta, edges: np.ndarray) -> np.ndarray:
    """The mass of Beta(α, β) in each grid cell, (…, K) for α, β of shape (…): CDF differences below ½ and
    survival-function differences above (no cancellation near 1)."""
    alpha, beta = np.asarray(alpha, dtype=np.float64)[..., None], np.asarray(beta, dtype=np.float64)[..., None]
    half = (len(edges) - 1) // 2
    below = np.diff(special.betainc(alpha, beta, edges[: half + 1]), axis=-1)
    above = -np.diff(special.betaincc(alpha, beta, edges[half:]), axis=-1)
    return np.clip(np.concatenate([below, above], axis=-1), 0.0, None)


def delta_grid(alpha_prior: float, beta_prior: float, size: int = GRID_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Grid centres δ_k (K,) and the log prior mass of each grid cell (K,). ``size`` must be even: cells
    0 … K/2 − 1 lie below δ = ½, the others above."""
    mass = beta_masses(alpha_prior, beta_prior, grid_edges(size))
    return grid_centres(size), np.log(np.clip(mass, 1e-300, None))


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


def best_beta(log_likelihood: np.ndarray, alpha_prior: float, beta_prior: float, scale: float,
              start: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The Beta(α, β), α, β ∈ (0, ``scale``), that maximises AutoZI's ELBO in q(δ_g) given the networks:

        F_g(α, β) = E_{Beta(α, β)}[ log p(x_g | δ) ] − KL( Beta(α, β) ‖ Beta(α₀, β₀) ),

    for each row of ``log_likelihood`` (…, K), log p(x_g | δ_k) at the grid centres of ``grid_edges(K)``; the
    expectation is the sum over the grid of each cell's exact Beta mass times the log-likelihood at its centre.
    Candidates: α, β = scale·σ(ℓ) for ℓ in ``LOGIT_CANDIDATES`` (61 × 61), the prior itself (so a flat likelihood
    returns the prior exactly) and each row's ``start`` (so the update never lowers F below the trained q(δ))."""
    log_likelihood = np.asarray(log_likelihood, dtype=np.float64)
    shape, size = log_likelihood.shape[:-1], log_likelihood.shape[-1]
    rows = log_likelihood.reshape(-1, size)
    rows = rows - rows.max(axis=1, keepdims=True)  # F's maximiser does not change; the sums keep their precision
    values = scale / (1.0 + np.exp(-LOGIT_CANDIDATES))
    alpha = np.concatenate([np.repeat(values, len(values)), [alpha_prior]])
    beta = np.concatenate([np.tile(values, len(values)), [beta_prior]])
    edges = grid_edges(size)
    masses, kl = beta_masses(alpha, beta, edges), _kl_beta(alpha, beta, alpha_prior, beta_prior)
    best, best_score = np.zeros(len(rows), dtype=int), np.zeros(len(rows))
    for start_row in range(0, len(rows), ROW_CHUNK):  # candidates × rows scores, a chunk of rows at a time
        chunk = slice(start_row, start_row + ROW_CHUNK)
        score = masses @ rows[chunk].T - kl[:, None]
        best[chunk] = np.argmax(score, axis=0)
        best_score[chunk] = score[best[chunk], np.arange(score.shape[1])]
    best_alpha, best_beta_ = alpha[best], beta[best]
    if start is not None:
        a0, b0 = (np.asarray(t, dtype=np.float64).reshape(-1) for t in start)
        own = (beta_masses(a0, b0, edges) * rows).sum(-1) - _kl_beta(a0, b0, alpha_prior, beta_prior)
        keep = own >= best_score
        best_alpha, best_beta_ = np.where(keep, a0, best_alpha), np.where(keep, b0, best_beta_)
    return best_alpha.reshape(shape), best_beta_.reshape(shape)


def _kl_beta(a1, b1, a2, b2) -> np.ndarray:
    """KL(Beta(a1, b1) ‖ Beta(a2, b2)) in closed form."""
    return (special.betaln(a2, b2) - special.betaln(a1, b1) + (a1 - a2) * special.digamma(a1)
            + (b1 - b2) * special.digamma(b1) + (a2 - a1 + b2 - b1) * special.digamma(a1 + b1))
