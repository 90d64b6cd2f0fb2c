"""AutoZI: scVI whose likelihood lets each gene choose between a negative binomial and a zero-inflated one.

Convention (the reference implementation's, and the only one consistent with the decision rule):
**δ_g is the probability that gene g follows the plain NB, i.e. is NOT zero-inflated.**

    δ_g  ~ Beta(α, β)                          prior: alpha_prior / beta_prior (or learned: empirical Bayes)
    m_ng ~ Bernoulli(δ_g)                      one indicator per entry (marginalised, never sampled in training)
    π_ng = m_ng·Dirac(0) + (1 − m_ng)·Dirac(h_g(z_n))        (the seed's displayed equation has m the other way)
    x_ng ~ NB(μ_ng, θ_g)                 if m_ng = 1
           ZINB(μ_ng, θ_g, π'_ng)        if m_ng = 0,   π'_ng = m + (1 − m)·σ(h_g(z_n)),  m = minimal_dropout

    log p(x_ng | δ_g) = logaddexp( log δ_g + log NB(x_ng),  log(1 − δ_g) + log ZINB(x_ng) )
                      = log ZINB(x_ng; μ_ng, θ_g, dropout (1 − δ_g)·π'_ng)        (the same thing, computed so)

Variational posterior q(δ_g) = Beta(α_g, β_g) with α_g, β_g ∈ (0, c), c = max(1, α, β) (so U-shaped for the
default prior Beta(0.5, 0.5)), initialised at the prior. The posterior probability that gene g is zero-inflated is
**P(ZI) = q(δ_g < 0.5) = BetaCDF(0.5; α_g, β_g)**.

Granularity (``zero_inflation``): one δ per gene, per gene × batch, per gene × label, or per gene × cell. In the
"gene-cell" mode the Beta parameters are local variables, amortised by a linear map from z_n (the reference
refuses this mode), and their KL joins the per-cell terms.

Loss (unbiased estimate of the negative ELBO of the whole training set, as in the AutoZI paper):
    N_train · mean_n(rec_n + w·KL_z,n + KL_l,n [+ KL_δ,n]) + Σ KL(q(δ) ‖ p(δ))
One reparameterised δ sample per minibatch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import distributions as D
from ..data import Batch
from ._vae import VAE, LossTerms

ZERO_INFLATION_MODES = ("gene", "gene-batch", "gene-label", "gene-cell")
DELTA_CLAMP = 1e-7


def _logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)


class AutoZIVAE(VAE):
    """See the module docstring. Parameters named after the symbols: ``alpha_logit`` / ``beta_logit`` hold the
    posterior Beta(α_g, β_g); ``alpha_prior_logit`` / ``beta_prior_logit`` the learned prior (empirical Bayes)."""

    def __init__(
        self,
        n_genes: int,
        alpha_prior: float | None = 0.5,
        beta_prior: float | None = 0.5,
        minimal_dropout: float = 0.01,
        zero_inflation: str = "gene",
        **vae_kwargs,
    ):
        vae_kwargs.setdefault("gene_likelihood", "zinb")
        super().__init__(n_genes, **vae_kwargs)
        if zero_inflation not in ZERO_INFLATION_MODES:
            raise ValueError(f"zero_inflation must be one of {ZERO_INFLATION_MODES}; got {zero_inflation!r}.")
        if (alpha_prior is None) != (beta_prior is None):
            raise ValueError("Give both alpha_prior and beta_prior, or neither (None, None) to learn the prior.")
        if alpha_prior is not None and not (alpha_prior > 0 and beta_prior > 0):
            raise ValueError(f"alpha_prior and beta_prior must be > 0; got {alpha_prior}, {beta_prior}.")
        if not 0.0 <= minimal_dropout < 1.0:
            raise ValueError(f"minimal_dropout must lie in [0, 1); got {minimal_dropout}.")
        self.zero_inflation = zero_inflation
        self.minimal_dropout = minimal_dropout
        self.learn_prior = alpha_prior is None
        self.posterior_scale = 1.0 if self.learn_prior else max(1.0, alpha_prior, beta_prior)

        if self.learn_prior:
            self.alpha_prior_logit = nn.Parameter(torch.zeros(1))
            self.beta_prior_logit = nn.Parameter(torch.zeros(1))
            start_alpha = start_beta = 0.5
        else:
            self.register_buffer("prior", torch.tensor([alpha_prior, beta_prior], dtype=torch.float32))
            start_alpha, start_beta = alpha_prior / self.posterior_scale, beta_prior / self.posterior_scale
        start = [_logit(min(max(p, 1e-3), 1 - 1e-3)) for p in (start_alpha, start_beta)]

        if zero_inflation == "gene-cell":
            n_latent = self.z_encoder.mean.out_features
            self.delta_head = nn.Linear(n_latent, 2 * n_genes)
            nn.init.zeros_(self.delta_head.weight)
            with torch.no_grad():
                self.delta_head.bias.copy_(torch.tensor(start).repeat_interleave(n_genes))
        else:
            columns = {"gene": (), "gene-batch": (self.n_batch,), "gene-label": (self.n_labels,)}[zero_inflation]
            self.alpha_logit = nn.Parameter(torch.full((n_genes, *columns), start[0]))
            self.beta_logit = nn.Parameter(torch.full((n_genes, *columns), start[1]))

    @property
    def needs_dropout_head(self) -> bool:
        return True

    # ---- Beta prior and posterior ------------------------------------------------------------------------------
    def prior_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.learn_prior:
            return torch.sigmoid(self.alpha_prior_logit), torch.sigmoid(self.beta_prior_logit)
        return self.prior[0:1], self.prior[1:2]

    def posterior_params(self, z: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """α, β of q(δ): a (G,), (G, B) or (G, C) table, or (b, G) per cell from z in the gene-cell mode."""
        if self.zero_inflation == "gene-cell":
            alpha_logit, beta_logit = self.delta_head(z).chunk(2, dim=-1)
        else:
            alpha_logit, beta_logit = self.alpha_logit, self.beta_logit
        return self.posterior_scale * torch.sigmoid(alpha_logit), self.posterior_scale * torch.sigmoid(beta_logit)

    @torch.no_grad()
    def set_posterior_params(self, alpha: torch.Tensor, beta: torch.Tensor) -> None:
        """Set the global q(δ) = Beta(α, β) (shapes as :meth:`posterior_params` returns them)."""
        for param, value in ((self.alpha_logit, alpha), (self.beta_logit, beta)):
            share = (value / self.posterior_scale).clamp(1e-6, 1 - 1e-6).to(param)
            param.copy_(torch.log(share) - torch.log1p(-share))

    def kl_delta(self, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        alpha_p, beta_p = self.prior_params()
        return D.kl_beta(alpha, beta, alpha_p, beta_p)

    def per_cell(self, table: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Pick each cell's column of a (G,), (G, B) or (G, C) table → broadcastable to (b, G); per-cell (b, G)
        values (gene-cell mode) pass through unchanged."""
        if self.zero_inflation == "gene-batch":
            return table.T[batch.batch]
        if self.zero_inflation == "gene-label":
            return table.T[batch.label]
        return table

    # ---- likelihood ---------------------------------------------------------------------------------------------
    def mixture_log_likelihood(self, batch: Batch, gen: dict[str, torch.Tensor], delta: torch.Tensor):
        """Σ_g logaddexp(log δ + log NB, log(1−δ) + log ZINB_π') per cell; δ broadcastable to (b, G).

        The per-entry mixture of an NB and a ZINB with dropout π' is itself a ZINB with dropout (1−δ)·π' (expand
        both cases x = 0 and x > 0), which is how it is computed: one ZINB, no log-sum-exp."""
        dropout = (1.0 - delta) * D.floored_dropout(gen["zi_logits"], self.minimal_dropout)
        kernel = D.nb_kernel_sum(batch.x, gen["log_mu"], gen["theta"], dropout=dropout)
        return kernel + self.log_norm(batch, gen["theta"])

    def forward(self, batch: Batch) -> LossTerms:
        inf = self.inference(batch)
        gen = self.generative(inf["z"], inf["log_library"], batch.batch, batch.label)
        alpha, beta = self.posterior_params(inf["z"])
        delta = D.sample_beta(alpha, beta).clamp(DELTA_CLAMP, 1 - DELTA_CLAMP)
        kl_z = D.kl_normal_standard(inf["z_mean"], inf["z_var"])
        kl_local = kl_z + self.kl_library(inf, batch)
        kl_delta = self.kl_delta(alpha, beta)
        if self.zero_inflation == "gene-cell":
            kl_local, kl_global = kl_local + kl_delta.sum(-1), torch.zeros((), device=batch.x.device)
        else:
            kl_global = kl_delta.sum()
        return LossTerms(
            reconstruction=-self.mixture_log_likelihood(batch, gen, self.per_cell(delta, batch)),
            kl_local=kl_local,
            kl_z=kl_z,
            kl_global=kl_global,
        )

    def loss(self, terms: LossTerms, kl_weight: float, n_obs: int) -> torch.Tensor:
        """N_train · mean_n(rec_n + w·KL_z,n + other local KL) + KL_global."""
        local = terms.reconstruction + kl_weight * terms.kl_z + (terms.kl_local - terms.kl_z)
        return n_obs * local.mean() + terms.kl_global
