"""The NB vs ZINB check: each gene's evidence of zero inflation from a per-gene refit around the fitted model's
expected counts. Not AutoZI's answer (that is q(δ_g < ½), :mod:`scvi_core.model._autozi`): a second opinion that the
zero-inflation table shows beside it, under its own column names (``nb_zinb_check_*``).

Why a second opinion: AutoZI's q(δ_g) is stepped by the optimiser alongside a dropout head that can learn the training
cells' zeros, so it moves with how long and how fast one trains, and with a mixture per entry (a ZINB whose dropout
is (1 − δ_g)·π'_ng) it cannot tell a gene that is off in some cell types from one whose zeros follow the cell type.
What training does get right early and keeps right is each cell's **expected count**: the question "does this gene
have more zeros than a negative binomial with that mean explains?" is then a two-model comparison per gene, with
nothing stepped at a learning rate. It assumes one extra-zero rate π_g for all of a gene's cells, so zeros that
follow the cell type are found less often than AutoZI finds them (docs/models.md has both methods' figures).

For gene g and the cells n = 1 … n_g that judge it (its group's cells; at most ``MAX_CELLS``, a seeded sample):

    m_ng = E[x_ng]  the fitted model's expected count (AutoZI: μ_ng·(1 − (1 − δ̄_g)·π'_ng), δ̄_g = α_g/(α_g + β_g))
    NB:    ℓ0_g = max_{c,θ}    Σ_n log NB(x_ng; c·m_ng, θ)
    ZINB:  ℓ1_g = max_{c,θ,π}  Σ_n log ZINB(x_ng; c·m_ng/(1 − π), θ, π)       (the same mean c·m_ng)
    ln BF_g ≈ ℓ1_g − ℓ0_g − ½·ln(1 + n_eff,g),  n_eff,g = Σ_n P_NB(x_ng > 0)   (Schwarz: one parameter more)
    P(ZI)_g = BF_g·o / (1 + BF_g·o),   o = p(δ < ½) / p(δ ≥ ½) under the Beta(α, β) prior

c_g lets the gene's level differ from the model's by a constant factor and θ_g is refitted in both models, so the two
differ by π_g only: the fraction of extra zeros, reported as ``excess_zero_fraction``. ZINB with π → 0 is the NB, so
ℓ1 ≥ ℓ0, and a gene whose zeros the NB explains gets ln BF ≈ −½·ln(1 + n_eff) (evidence *against* zero inflation,
growing with the cells), while a gene with extra zeros gains in ℓ1 − ℓ0 in proportion to the cells. Schwarz's
penalty counts the cells that inform π: those where the fitted NB expects a count (n_eff), so a gene that is zero
everywhere, whose zeros say nothing about π, gets BF = 1 and stays at the prior ("undetermined"). The prior odds enter
as in AutoZI's spike-and-slab (the default Beta(½, ½) gives o = 1), and the call is the usual evidence-aware one
(:func:`scvi_core.zi._calls.zi_calls`).

The NB is fitted again from the ZINB's optimum and the better NB kept, and ℓ1 − ℓ0 is taken in float64: otherwise
the ZINB's further progress on c and θ (which the NB can make too) passed for evidence, and droplet spike-ins without
a single zero were called zero-inflated. The fits are vectorised over genes (chunks of ``GENE_CHUNK``) and run with
L-BFGS on log c, log θ, logit π; the lnΓ(x + θ) − lnΓ(θ) part is summed over each gene's distinct counts with their
multiplicities, so the cost per iteration is a few operations per cell × gene.

The L-BFGS runs in float32 on the chunk's sum, and on nearly Poisson genes (the likelihood flat in θ) it could stop
far from a gene's optimum: θ left at the bound e¹² and π at its start, so that a ZINB's small π passed for evidence
(4 of 24 ERCC spike-ins called zero-inflated, whose float64 refits gain less than Schwarz's penalty). Each NB and
ZINB optimum is therefore polished gene by gene (:meth:`_ChunkFit.polish`): a few damped Newton steps in float64 on
(log c, φ = 1/θ, logit π), whose 2 × 2 or 3 × 3 Hessians are each gene's own (the chunk's sum is separable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MAX_CELLS = 3000
GENE_CHUNK = 512
LBFGS_ITERATIONS = 200
"""At most, per fit; most stop earlier, at ``TOLERANCE`` (after 50, a weakly expressed zero-inflated gene could still
be short of its evidence)."""
START_LOGIT_PI = -4.0
TOLERANCE = 1e-4
"""Of L-BFGS on the chunk's summed log-likelihood (gradient and change of the sum). Nearly Poisson genes could stop
well short of their optimum at any tolerance in float32: :meth:`_ChunkFit.polish` takes each gene the rest of the
way."""
THETA_RANGE = (-10.0, 12.0)
"""log θ is kept in this range: an NB with θ = e¹² is a Poisson for any count matrix, and θ = e⁻¹⁰ is all zeros."""
POLISH_ITERATIONS = 5
POLISH_STEPS = (1.0, 0.5, 0.25, 0.125, 1 / 16, 1 / 64, 1 / 256)
"""Fractions of each gene's Newton step tried; a gene keeps the best, or stays where it was if none is better."""
POLISH_TOLERANCE = 1e-4
"""Nats: once no gene's log-likelihood rises by more in a step, the polish stops."""
POLISH_START_MAX_LOG_THETA = 7.0
"""The polish starts from θ ≤ e⁷: nearer the e¹² bound float64 loses the Hessian in φ to cancellation (θ³ terms)."""


CHECK_FITS = ("excess_zero_fraction", "dispersion", "nb_scale", "zinb_scale", "zinb_dispersion")
"""The per-gene fits the zero-inflation table keeps, so that the gene detail draws what made the call."""


@dataclass
class GeneEvidence:
    """Per gene: ``log10_bayes_factor`` of ZINB against NB, ``excess_zero_fraction`` π̂_g, the refitted NB
    ``dispersion`` θ̂_g and ``n_cells`` that judged it; the two fits themselves, for drawing them: the NB's mean
    ``nb_scale``·m_n, and the ZINB's component mean ``zinb_scale``·m_n, dispersion ``zinb_dispersion`` and π̂."""

    log10_bayes_factor: np.ndarray
    excess_zero_fraction: np.ndarray
    dispersion: np.ndarray
    n_cells: int
    nb_scale: np.ndarray
    zinb_scale: np.ndarray
    zinb_dispersion: np.ndarray

    def prob_zero_inflated(self, prior_log10_odds: float) -> np.ndarray:
        """P(ZI) from the Bayes factor and the prior odds of zero inflation."""
        return 1.0 / (1.0 + 10.0 ** -(self.log10_bayes_factor + prior_log10_odds))


def gene_evidence(x: torch.Tensor, expected: torch.Tensor) -> GeneEvidence:
    """The evidence for each column of ``x`` (cells × genes counts) given ``expected`` (the model's E[x], same
    shape). See the module docstring."""
    n_cells, n_genes = x.shape
    log_bf, pi, theta, nb_scale, zinb_scale, zinb_theta = (np.zeros(n_genes) for _ in range(6))
    for start in range(0, n_genes, GENE_CHUNK):
        cols = slice(start, min(start + GENE_CHUNK, n_genes))
        fit = _ChunkFit(x[:, cols].float(), expected[:, cols].float().clamp_min(1e-8))  # float32: half the time
        with torch.enable_grad():  # callers are often inside no_grad (results of a trained model)
            nb = fit.maximise(zero_inflated=False)
            zinb = fit.maximise(zero_inflated=True, start=nb.params)
            # The NB again, from the ZINB's component (its mean c·m/(1 − π), its θ): the ZINB went on improving
            # c and θ from the NB's optimum, and that gain, which the NB can have too, is not evidence of extra zeros
            # (without this, spike-ins with no zero at all were called zero-inflated).
            log_c, log_theta, logit_pi = zinb.params
            again = fit.maximise(zero_inflated=False, start=[log_c - F.logsigmoid(-logit_pi), log_theta])
        exact = _ChunkFit(x[:, cols].double(), expected[:, cols].double().clamp_min(1e-8))  # differences of big sums
        zinb = exact.polish(zinb.params)
        log_c, log_theta, logit_pi = zinb.params
        # the NB polished from its own optimum and, as above, from the polished ZINB's component
        again = exact.polish([log_c - F.logsigmoid(-logit_pi), log_theta])
        nb = exact.polish(nb.params)
        better = again.log_lik >= nb.log_lik
        nb_log_lik = torch.where(better, again.log_lik, nb.log_lik)
        nb_params = [torch.where(better, a, b) for a, b in zip(again.params, nb.params, strict=True)]
        gain = zinb.log_lik - nb_log_lik
        explained = gain <= 0  # ZINB ⊃ NB: a shortfall is the optimiser's, and π̂ = 0 is the ZINB's optimum too
        gain = gain.clamp_min(0.0)
        occam = 0.5 * torch.log1p(exact.expected_nonzero(*nb_params))
        log_bf[cols] = ((gain - occam) / math.log(10)).cpu().numpy()
        pi[cols] = torch.where(explained, 0.0, torch.sigmoid(logit_pi)).cpu().numpy()
        theta[cols] = torch.exp(nb_params[1]).cpu().numpy()
        nb_scale[cols] = torch.exp(nb_params[0]).cpu().numpy()
        zinb_scale[cols] = torch.exp(log_c - F.logsigmoid(-logit_pi)).cpu().numpy()
        zinb_theta[cols] = torch.exp(log_theta).cpu().numpy()
    return GeneEvidence(log_bf, pi, theta, n_cells, nb_scale, zinb_scale, zinb_theta)


@dataclass
class _Maximum:
    log_lik: torch.Tensor  # (genes,)
    params: list[torch.Tensor]  # log c, log θ, logit π


class _ChunkFit:
    """The NB and ZINB likelihoods of a chunk of genes as functions of (log c, log θ, logit π) per gene."""

    def __init__(self, x: torch.Tensor, expected: torch.Tensor):
        self.x, self.log_m = x, torch.log(expected)
        self.is_zero = x == 0
        self.x_log_m = (x * self.log_m).sum(0)
        self.total = x.sum(0)
        # Each gene's optimum is the same whatever positive weight its log-likelihood gets in the chunk's sum; one
        # over its total count evens out the curvatures (a gene with 50× the counts has 50× the curvature), which
        # L-BFGS, with one step length for the whole chunk, needs to converge in few iterations.
        self.weight = 1.0 / self.total.clamp_min(1.0)
        self.n_positive = (~self.is_zero).sum(0).to(x.dtype)
        # Σ_n lnΓ(x_ng + θ) − lnΓ(θ) over the non-zero counts, as Σ_k count_gk·[lnΓ(k + θ_g) − lnΓ(θ_g)]
        # (gene, count) pairs as one float64 key, gene·(largest count + 1) + count: exact for counts, and a 1-d
        # unique sorts them in a few milliseconds where torch.unique(dim=1) on the pairs took 0.8 s (2,000 × 500)
        values = x[~self.is_zero].double()
        stride = float(values.max()) + 1.0 if len(values) else 1.0
        genes = torch.arange(x.shape[1], device=x.device).expand_as(x)[~self.is_zero]
        keys, multiplicity = torch.unique(genes * stride + values, return_counts=True)
        self.pair_gene = torch.div(keys, stride, rounding_mode="floor").long()
        self.pair_value = (keys - self.pair_gene * stride).to(x.dtype)
        self.multiplicity = multiplicity.to(x.dtype)

    def log_likelihood(self, log_c, log_theta, logit_pi=None) -> torch.Tensor:
        """Σ_n log NB / ZINB per gene, without Σ_n lnΓ(x_ng + 1) (the same in both). With μ_n the NB (component)
        mean, log NB(x) = log NB(0) + x·log μ − x·log(θ + μ) + lnΓ(x + θ) − lnΓ(θ) − lnΓ(x + 1)."""
        theta = torch.exp(log_theta)
        shift = log_c if logit_pi is None else log_c - F.logsigmoid(-logit_pi)  # log μ_n − log m_n: c, or c / (1 − π)
        log_theta_mean = torch.logaddexp(log_theta, shift + self.log_m)  # log(θ + μ_n)
        log_nb_zero = theta * (log_theta - log_theta_mean)  # log NB(0) = θ·log(θ / (θ + μ))
        lgamma = torch.lgamma(self.pair_value + theta[self.pair_gene]) - torch.lgamma(theta[self.pair_gene])
        norm = torch.zeros_like(theta).index_add(0, self.pair_gene, self.multiplicity * lgamma)
        counts = self.total * shift + self.x_log_m - (self.x * log_theta_mean).sum(0) + norm
        if logit_pi is None:
            return counts + log_nb_zero.sum(0)
        log_pi, log_keep = F.logsigmoid(logit_pi), F.logsigmoid(-logit_pi)
        at_zero = torch.logaddexp(log_pi, log_keep + log_nb_zero)  # log(π + (1 − π)·NB(0))
        return counts + self.n_positive * log_keep + torch.where(self.is_zero, at_zero, log_nb_zero).sum(0)

    def polish(self, found: list[torch.Tensor]) -> _Maximum:
        """``found`` (log c, log θ[, logit π] of a float32 fit of the same genes) in this fit's precision, each gene
        moved by up to ``POLISH_ITERATIONS`` damped Newton steps on (log c, φ = 1/θ[, logit π]), until no gene gains
        ``POLISH_TOLERANCE``: the step solves the gene's own Hessian, shifted where needed to be negative definite,
        and the largest fraction of it in ``POLISH_STEPS`` that raises the gene's likelihood is taken. A gene ends at
        the better of where it started and where the steps took it."""
        start = [p.to(self.x.dtype) for p in found]
        params = [start[0], torch.exp(-start[1].clamp(max=POLISH_START_MAX_LOG_THETA)), *start[2:]]
        phi_range = (math.exp(-THETA_RANGE[1]), math.exp(-THETA_RANGE[0]))

        def log_lik(p):
            return self.log_likelihood(p[0], -torch.log(p[1]), *p[2:])

        for _ in range(POLISH_ITERATIONS):
            with torch.enable_grad():
                leaves = [p.clone().requires_grad_() for p in params]
                value = log_lik(leaves)
                grads = torch.autograd.grad(value.sum(), leaves, create_graph=True)
                hessian = torch.stack([torch.stack(torch.autograd.grad(g.sum(), leaves, retain_graph=True), -1)
                                       for g in grads], -2).detach()  # genes × k × k: each gene's own block
            gradient = torch.stack([g.detach() for g in grads], -1)
            eye = torch.eye(len(params), dtype=gradient.dtype)
            finite = torch.isfinite(hessian).all(-1).all(-1) & torch.isfinite(gradient).all(-1)
            gradient = torch.where(finite[:, None], gradient, 0.0)  # a gene whose derivatives overflow stays put
            hessian = torch.where(finite[:, None, None], 0.5 * (hessian + hessian.transpose(-1, -2)), -eye)
            # Newton where the Hessian is negative definite (its negation has a Cholesky factor); elsewhere shifted
            # below zero by Gershgorin's bound on its largest eigenvalue (neither can fail, unlike an eigensolver)
            diagonal = hessian.diagonal(dim1=-2, dim2=-1)
            gershgorin = (diagonal + hessian.abs().sum(-1) - diagonal.abs()).amax(-1)
            definite = torch.linalg.cholesky_ex(-hessian).info == 0
            shift = torch.where(definite, 0.0, gershgorin.clamp_min(0.0)) + 1e-9 * diagonal.abs().amax(-1) + 1e-12
            step = torch.linalg.solve(hessian - shift[:, None, None] * eye, -gradient[..., None])[..., 0]
            best, best_value = params, value.detach()
            with torch.no_grad():
                for fraction in POLISH_STEPS:
                    tried = [p + fraction * step[:, j] for j, p in enumerate(params)]
                    tried[1] = tried[1].clamp(*phi_range)
                    tried_value = log_lik(tried)
                    better = tried_value > best_value
                    best = [torch.where(better, t, b) for t, b in zip(tried, best, strict=True)]
                    best_value = torch.where(better, tried_value, best_value)
            params = best
            if (best_value - value.detach()).max() < POLISH_TOLERANCE:
                break  # no gene moved by more than this (nats)
        with torch.no_grad():
            polished = [params[0], -torch.log(params[1]), *params[2:]]
            kept = self.log_likelihood(*start) > self.log_likelihood(*polished)
            final = [torch.where(kept, a, b) for a, b in zip(start, polished, strict=True)]
            return _Maximum(self.log_likelihood(*final), final)

    @torch.no_grad()
    def expected_nonzero(self, log_c, log_theta) -> torch.Tensor:
        """n_eff = Σ_n P(x_ng > 0) under the NB: the cells that can show a zero the NB does not expect."""
        log_theta_mean = torch.logaddexp(log_theta, log_c + self.log_m)
        return -torch.expm1(torch.exp(log_theta) * (log_theta - log_theta_mean)).sum(0)

    def maximise(self, zero_inflated: bool, start: list[torch.Tensor] | None = None) -> _Maximum:
        n_genes = self.x.shape[1]
        if start is None:
            start = [torch.zeros(n_genes, dtype=self.x.dtype), torch.zeros(n_genes, dtype=self.x.dtype)]
        params = [p.detach().clone().requires_grad_() for p in start[:2]]
        if zero_inflated:
            # π starts small, next to the NB it extends (a start from the zeros the NB leaves unexplained got
            # stuck where a small θ explains them, the NB's own optimum)
            params.append(torch.full((n_genes,), START_LOGIT_PI, dtype=self.x.dtype, requires_grad=True))
        optimizer = torch.optim.LBFGS(params, max_iter=LBFGS_ITERATIONS, line_search_fn="strong_wolfe",
                                      tolerance_grad=TOLERANCE, tolerance_change=TOLERANCE, history_size=20)

        def objective():
            optimizer.zero_grad()
            loss = -(self.log_likelihood(params[0], params[1].clamp(*THETA_RANGE), *params[2:]) * self.weight).sum()
            loss.backward()
            return loss

        optimizer.step(objective)
        with torch.no_grad():
            params[1].clamp_(*THETA_RANGE)
            return _Maximum(self.log_likelihood(params[0], params[1], *params[2:]), [p.detach() for p in params])
