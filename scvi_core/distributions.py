"""Count log-likelihoods (NB, ZINB, Poisson) and the Beta KL, written for speed on sparse data.

Every log-pmf is split into two parts:

    log p(x) = kernel(x; mu, theta[, pi])  +  norm(x; theta)
    norm(x; theta) = lnΓ(x + θ) − lnΓ(θ) − lnΓ(x + 1)

``norm`` is zero wherever x = 0, and it is the same for the NB and the ZINB (and for both AutoZI mixture
components, so it factors out of their log-sum-exp). The models therefore evaluate ``kernel`` densely and ``norm``
only on the non-zero entries of a minibatch; the lnΓ(x + 1) part does not depend on any parameter and is
precomputed once per cell. The ``log_nb`` / ``log_zinb`` / ``log_poisson`` functions give the full entrywise
log-pmf (used by tests and small computations).

Parameterisation (as in scVI): mean μ > 0, inverse dispersion θ > 0 (Var = μ + μ²/θ), and the zero-inflation
logit ℓ_π with π = σ(ℓ_π) the probability of an extra (structural) zero. ε = 1e-8 guards the logs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

EPS = 1e-8


def nb_parts(x: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two pieces of the NB kernel: log NB(0) = θ·log(θ/(θ+μ)) and the count term x·log(μ/(θ+μ)).
    AutoZI needs them for both of its mixture components, so they are computed once."""
    log_theta_mu = torch.log(theta + mu + EPS)
    return theta * (torch.log(theta + EPS) - log_theta_mu), x * (torch.log(mu + EPS) - log_theta_mu)


def nb_kernel(x: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """θ·log(θ/(θ+μ)) + x·log(μ/(θ+μ)): the NB log-pmf without its lnΓ terms."""
    log_nb_zero, count_term = nb_parts(x, mu, theta)
    return log_nb_zero + count_term


def zinb_kernel(x, mu, theta, zi_logits, parts: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """ZINB log-pmf without its lnΓ terms (``parts``: precomputed :func:`nb_parts`), π = σ(ℓ_π):

    x = 0:  log(π + (1−π)·NB(0))
    x > 0:  log(1−π) + NB kernel

    1−π is computed as σ(−ℓ_π), not by subtraction, so it keeps its precision when π is close to 1."""
    parts = parts if parts is not None else nb_parts(x, mu, theta)
    return zinb_kernel_from_dropout(x, parts, torch.sigmoid(zi_logits), torch.sigmoid(-zi_logits))


def blend(condition: torch.Tensor, if_true: torch.Tensor, if_false: torch.Tensor) -> torch.Tensor:
    """torch.where for finite values, written as arithmetic: several times faster on CPU, forward and backward."""
    return if_false + condition.to(if_false.dtype) * (if_true - if_false)


def _digamma(x: torch.Tensor) -> torch.Tensor:
    """ψ(x) for x > 0 to float32 precision with a fixed number of vectorised operations: three steps of the
    recurrence ψ(x) = ψ(x+1) − 1/x, then the asymptotic series. torch.digamma loops per element below 10 and is
    the slowest part of an NB gradient otherwise."""
    y = x + 3.0
    inv2 = 1.0 / (y * y)
    series = torch.log(y) - 0.5 / y - inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 / 240)))
    return series - (3 * x * x + 6 * x + 2) / (x * (x + 1) * (x + 2))


class _LogGamma(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.lgamma(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * _digamma(x)


def lgamma(x: torch.Tensor) -> torch.Tensor:
    """lnΓ(x) for x > 0 with a fast gradient (see :func:`_digamma`)."""
    return _LogGamma.apply(x)


def poisson_kernel(x: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """x·log μ − μ: the Poisson log-pmf without −lnΓ(x+1)."""
    return x * torch.log(mu + EPS) - mu


def nb_norm(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """lnΓ(x+θ) − lnΓ(θ) − lnΓ(x+1), the part of the NB/ZINB log-pmf that vanishes at x = 0."""
    return torch.lgamma(x + theta) - torch.lgamma(theta) - torch.lgamma(x + 1)


def log_nb(x, mu, theta):
    """Entrywise NB log-pmf."""
    return nb_kernel(x, mu, theta) + nb_norm(x, theta)


def log_zinb(x, mu, theta, zi_logits):
    """Entrywise ZINB log-pmf; σ(zi_logits) is the probability of an extra zero."""
    return zinb_kernel(x, mu, theta, zi_logits) + nb_norm(x, theta)


def log_poisson(x, mu):
    """Entrywise Poisson log-pmf."""
    return poisson_kernel(x, mu) - torch.lgamma(x + 1)


def sample_nb(mu: torch.Tensor, theta: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw NB counts as a Gamma–Poisson mixture (rate ~ Gamma(θ, θ/μ), clamped at 1e8 against overflow)."""
    rate = torch._standard_gamma(theta.expand_as(mu).contiguous()) * (mu / theta)
    return torch.poisson(rate.clamp(max=1e8), generator=generator)


def floored_dropout(zi_logits: torch.Tensor, minimal_dropout: float) -> torch.Tensor:
    """AutoZI's ZINB component keeps at least ``minimal_dropout`` extra zeros: π' = m + (1−m)·σ(ℓ). With m = 0 the
    ZINB would nest the NB and the NB-vs-ZINB question would be ill-posed."""
    return minimal_dropout + (1.0 - minimal_dropout) * torch.sigmoid(zi_logits)


def zinb_kernel_from_dropout(x: torch.Tensor, parts, dropout: torch.Tensor, keep: torch.Tensor | None = None):
    """ZINB log-pmf without its lnΓ terms, given the extra-zero probability π itself and, when known more precisely
    than 1 − π, ``keep`` = 1 − π (``parts``: :func:`nb_parts`). Written in probability space, which is cheaper than
    softplus-based logit forms: x = 0: log(π + (1−π)·NB(0));  x > 0: log(1−π) + NB kernel. (1e-30 keeps the logs
    finite where a probability underflows.)"""
    log_nb_zero, count_term = parts
    keep = 1.0 - dropout if keep is None else keep
    at_zero = torch.log(dropout + keep * torch.exp(log_nb_zero) + 1e-30)
    return blend(x > 0, log_nb_zero + count_term + torch.log(keep + 1e-30), at_zero)


def kl_beta(alpha_q, beta_q, alpha_p, beta_p) -> torch.Tensor:
    """KL(Beta(α_q, β_q) ‖ Beta(α_p, β_p)) in closed form, entrywise:

    lnB(α_p,β_p) − lnB(α_q,β_q) + (α_q−α_p)ψ(α_q) + (β_q−β_p)ψ(β_q) + (α_p−α_q+β_p−β_q)ψ(α_q+β_q)
    """

    def log_beta_fn(a, b):
        return torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)

    return (
        log_beta_fn(alpha_p, beta_p)
        - log_beta_fn(alpha_q, beta_q)
        + (alpha_q - alpha_p) * torch.digamma(alpha_q)
        + (beta_q - beta_p) * torch.digamma(beta_q)
        + (alpha_p - alpha_q + beta_p - beta_q) * torch.digamma(alpha_q + beta_q)
    )


def kl_normal_standard(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, var) ‖ N(0, 1)) summed over the last axis: Σ ½(var + mean² − 1 − log var)."""
    return 0.5 * (var + mean.pow(2) - 1.0 - torch.log(var)).sum(-1)


def kl_normal(mean_q, var_q, mean_p, var_p) -> torch.Tensor:
    """KL(N(mean_q, var_q) ‖ N(mean_p, var_p)) summed over the last axis."""
    return 0.5 * (torch.log(var_p / var_q) + (var_q + (mean_q - mean_p).pow(2)) / var_p - 1.0).sum(-1)
