"""Count log-likelihoods (NB, ZINB, Poisson) and the Beta KL, written for speed on sparse data.

Parameterisation (as in scVI): mean μ > 0, inverse dispersion θ > 0 (Var = μ + μ²/θ), and the zero-inflation
logit ℓ_π with π = σ(ℓ_π) the probability of an extra (structural) zero.

Every NB/ZINB log-pmf is split into two parts:

    log p(x) = kernel(x; μ, θ[, π])  +  norm(x; θ)
    norm(x; θ) = lnΓ(x + θ) − lnΓ(θ) − lnΓ(x + 1)

``norm`` is zero wherever x = 0, and it is the same for the NB and the ZINB, so the models evaluate it only on the
non-zero entries of a minibatch (the lnΓ(x + 1) part, which depends on no parameter, once per cell), and the
kernel densely with :func:`nb_kernel_sum`. That function computes its gradient together with its value (see
:class:`_NBKernelSum`), so this part of a training step makes about half as many passes over the (cells × genes)
arrays as autograd would; on a CPU those passes over memory cost more than the arithmetic.

``log_nb`` / ``log_zinb`` / ``log_poisson`` give the full entrywise log-pmf, written as plainly as the equations;
the tests check them against scipy and the fast path against them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TINY = 1e-30  # keeps logs and reciprocals finite where a probability underflows


# ---- entrywise log-pmfs, as written in the equations ---------------------------------------------------------
def log_nb_zero(mu: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """log NB(0; μ, θ) = θ·log(θ/(θ+μ)) = −θ·log(1 + μ/θ) (log1p keeps it exact when θ ≫ μ)."""
    return -theta * torch.log1p(mu / theta)


def nb_norm(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """lnΓ(x+θ) − lnΓ(θ) − lnΓ(x+1), the part of the NB/ZINB log-pmf that vanishes at x = 0."""
    return torch.lgamma(x + theta) - torch.lgamma(theta) - torch.lgamma(x + 1)


def log_nb(x, mu, theta):
    """Entrywise NB log-pmf: θ·log(θ/(θ+μ)) + x·log(μ/(θ+μ)) + norm(x; θ)."""
    return log_nb_zero(mu, theta) + torch.xlogy(x, mu / (theta + mu)) + nb_norm(x, theta)


def log_zinb(x, mu, theta, zi_logits):
    """Entrywise ZINB log-pmf, π = σ(ℓ_π):  x = 0: log(π + (1−π)·NB(0));  x > 0: log(1−π) + log NB(x)."""
    log_pi, log_one_minus_pi = F.logsigmoid(zi_logits), F.logsigmoid(-zi_logits)
    at_zero = torch.logaddexp(log_pi, log_one_minus_pi + log_nb_zero(mu, theta))
    return torch.where(x > 0, log_one_minus_pi + log_nb(x, mu, theta), at_zero)


def log_poisson(x, mu):
    """Entrywise Poisson log-pmf."""
    return torch.xlogy(x, mu) - mu - torch.lgamma(x + 1)


# ---- the fast path used in training --------------------------------------------------------------------------
def _nb_kernel(x, log_mu, theta, zi, zi_is_logits: bool, with_gradients: bool):
    """Σ_g kernel(x_ng) for each cell n, for the NB and the ZINB, and (``with_gradients``) its partial derivatives.

    With r = θ/(θ+μ), NB(0) = r^θ, π the extra-zero probability and W = P(the NB branch produced x | x), which is
    1 for x > 0 and (1−π)·NB(0) / (π + (1−π)·NB(0)) for x = 0 (W = 1 everywhere for the NB):

        kernel        = log(π + (1−π)·NB(0))                     x = 0
                        log(1−π) + θ·log r + x·log(μ/(θ+μ))      x > 0
        ∂/∂log μ      = r·(x − μ·W)
        ∂/∂θ          = W·(log r + 1 − r) − x/(θ+μ)
        ∂/∂ℓ_π        = 1 − W − π                                 (dropout given as logits ℓ_π)
        ∂/∂π          = (1 − NB(0)) / (π + (1−π)·NB(0))  at x = 0;   −1/(1−π)  at x > 0   (given as π)

    log r = −log(1 + μ/θ) stays exact when θ ≫ μ. The cases x = 0 / x > 0 are selected with ``lerp`` and the 0/1
    indicator of x > 0 (x clamped at 1, for counts): exact at both ends, and several times faster on a CPU than
    torch.where.
    """
    mu = torch.exp(log_mu)
    inv_theta = torch.reciprocal(theta)
    mu_over_theta = mu * inv_theta
    log_r = torch.log1p(mu_over_theta).neg_()
    log_nb_zero = theta * log_r
    nb_kernel = log_nb_zero + x * (log_mu - torch.log(theta) + log_r)
    if zi is None:
        kernel = nb_kernel
    else:
        positive = x.clamp(max=1.0)
        dropout, keep = (torch.sigmoid(zi), torch.sigmoid(-zi)) if zi_is_logits else (zi, 1.0 - zi)
        keep = keep.clamp_min(TINY)
        nb_zero = torch.exp(log_nb_zero)
        keep_nb_zero = keep * nb_zero
        total_zero = (dropout + keep_nb_zero).clamp_min_(TINY)
        # one log for both cases: log(π + (1−π)·NB(0)) at x = 0, log(1−π) (+ the NB kernel) at x > 0
        kernel = torch.log(torch.lerp(total_zero, keep, positive)) + positive * nb_kernel
    if not with_gradients:
        return kernel.sum(-1), None

    nb_weight, g_zi = 1.0, None
    if zi is not None:
        inv_total_zero = torch.reciprocal(total_zero)
        nb_weight = torch.maximum(keep_nb_zero * inv_total_zero, positive)
        if zi_is_logits:
            g_zi = 1.0 - nb_weight - dropout
        else:
            g_at_zero = (1.0 - nb_zero) * inv_total_zero
            g_zi = torch.lerp(g_at_zero, -torch.reciprocal(keep), positive)
    r = torch.reciprocal(1.0 + mu_over_theta)
    g_log_mu = r * (x - mu * nb_weight)
    g_theta = nb_weight * (log_r + mu_over_theta * r) - x * r * inv_theta
    return kernel.sum(-1), (g_log_mu, g_theta, g_zi)


class _NBKernelSum(torch.autograd.Function):
    """:func:`_nb_kernel` with its gradient computed in the forward pass. Why by hand: autograd would keep about
    twenty (cells × genes) intermediates alive and make about twice as many passes over such arrays in the backward
    pass as in the forward one; this backward pass only scales three saved arrays."""

    @staticmethod
    def forward(ctx, x, log_mu, theta, zi, zi_is_logits: bool):
        kernel, gradients = _nb_kernel(x, log_mu, theta, zi, zi_is_logits, with_gradients=True)
        ctx.save_for_backward(*gradients)
        ctx.theta_per_gene = theta.dim() == 1
        return kernel

    @staticmethod
    def backward(ctx, grad):
        g_log_mu, g_theta, g_zi = ctx.saved_tensors
        per_cell = grad[:, None]
        g_theta = grad @ g_theta if ctx.theta_per_gene else per_cell * g_theta
        return None, per_cell * g_log_mu, g_theta, None if g_zi is None else per_cell * g_zi, None


def nb_kernel_sum(x, log_mu, theta, zi_logits=None, dropout=None) -> torch.Tensor:
    """Σ_g kernel per cell of the NB (neither ``zi_logits`` nor ``dropout``) or of the ZINB whose extra-zero
    probability is σ(zi_logits) or ``dropout`` itself. x, log μ: (cells, genes); θ: (genes,) or (cells, genes).
    Without autograd (evaluation) the gradient is not computed."""
    if zi_logits is not None and dropout is not None:
        raise ValueError("Give the dropout as logits or as a probability, not both.")
    zi = zi_logits if zi_logits is not None else dropout
    is_logits = zi_logits is not None
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (log_mu, theta, zi)):
        return _NBKernelSum.apply(x, log_mu, theta, zi, is_logits)
    return _nb_kernel(x, log_mu, theta, zi, is_logits, with_gradients=False)[0]


def poisson_kernel_sum(x: torch.Tensor, log_mu: torch.Tensor) -> torch.Tensor:
    """Σ_g x·log μ − μ per cell: the Poisson log-pmf without −lnΓ(x+1)."""
    return (x * log_mu - torch.exp(log_mu)).sum(-1)


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


def sample_nb(mu: torch.Tensor, theta: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw NB counts as a Gamma–Poisson mixture (rate ~ Gamma(θ, θ/μ), clamped at 1e8 against overflow)."""
    rate = torch._standard_gamma(theta.expand_as(mu).contiguous()) * (mu / theta)
    return torch.poisson(rate.clamp(max=1e8), generator=generator)


def sample_beta(alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """A reparameterised draw from Beta(α, β), as X / (X + Y) with X ~ Gamma(α, 1), Y ~ Gamma(β, 1): the same
    construction torch's Beta uses through a Dirichlet, at about two thirds of its cost."""
    x = torch.distributions.Gamma(alpha, 1.0).rsample()
    y = torch.distributions.Gamma(beta, 1.0).rsample()
    return x / (x + y)


def floored_dropout(zi_logits: torch.Tensor, minimal_dropout: float) -> torch.Tensor:
    """AutoZI's ZINB component keeps at least ``minimal_dropout`` extra zeros: π' = m + (1−m)·σ(ℓ). With m = 0 the
    ZINB would nest the NB and the NB-vs-ZINB question would be ill-posed."""
    return minimal_dropout + (1.0 - minimal_dropout) * torch.sigmoid(zi_logits)


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
