"""The scVI model: its generative process, inference networks and loss, in one file.

Generative process for cell n with batch s_n (seed notation → code name):

    z_n  ~ Normal(0, I)                                   z            (n_latent)
    l_n  = log Σ_g x_ng            (observed, default)    log_library
         ~ Normal(l_μ[s_n], l_σ²[s_n])  (latent option)   library_log_means / library_log_vars
    ρ_n  = softmax(f_w(z_n, s_n))                         log_rho      (decoder "frequency" head)
    μ_ng = exp(l_n) · ρ_ng                                log_mu = log_library + log_rho
    θ_g  = exp(px_r_g)   (per gene / gene×batch / gene×label, or a decoder head for gene-cell)   theta
    π_ng = σ(f_h(z_n, s_n))                               zi_logits    (decoder "dropout_logits" head)
    x_ng ~ ZINB(μ_ng, θ_g, π_ng) | NB(μ_ng, θ_g) | Poisson(μ_ng)

Inference: q(z_n|x_n) = Normal(μ_z(log1p x_n), σ²_z(log1p x_n)), and q(l_n|x_n) likewise when the library is latent.
Per-cell loss terms: rec_n = −log p(x_n|z_n, l_n, s_n), KL_z,n, KL_l,n. The minibatch loss is
mean_n(rec_n + w·KL_z,n + KL_l,n) with the KL warm-up weight w.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import distributions as D
from ..data import Batch
from ..nn import Decoder, Encoder

LIKELIHOODS = ("zinb", "nb", "poisson")
DISPERSIONS = ("gene", "gene-batch", "gene-label", "gene-cell")


@dataclass
class LossTerms:
    """Per-cell reconstruction loss and local KL, and the (summed) global KL of one minibatch."""

    reconstruction: torch.Tensor  # (b,) −log p(x_n | z_n, l_n)
    kl_local: torch.Tensor  # (b,) KL_z,n + KL_l,n (unweighted)
    kl_z: torch.Tensor  # (b,) KL_z,n, the part the warm-up weight applies to
    kl_global: torch.Tensor  # scalar, 0 for scVI


class VAE(nn.Module):
    """scVI's variational autoencoder (see the module docstring for the equations)."""

    def __init__(
        self,
        n_genes: int,
        n_batch: int = 1,
        n_labels: int = 1,
        n_hidden: int = 128,
        n_latent: int = 10,
        n_layers: int = 1,
        dropout_rate: float = 0.1,
        dispersion: str = "gene",
        gene_likelihood: str = "zinb",
        use_observed_lib_size: bool = True,
        library_log_means: np.ndarray | None = None,
        library_log_vars: np.ndarray | None = None,
    ):
        super().__init__()
        if gene_likelihood not in LIKELIHOODS:
            raise ValueError(f"gene_likelihood must be one of {LIKELIHOODS}; got {gene_likelihood!r}.")
        if dispersion not in DISPERSIONS:
            raise ValueError(f"dispersion must be one of {DISPERSIONS}; got {dispersion!r}.")
        self.n_genes, self.n_batch, self.n_labels = n_genes, n_batch, n_labels
        self.dispersion, self.gene_likelihood = dispersion, gene_likelihood
        self.use_observed_lib_size = use_observed_lib_size

        self.z_encoder = Encoder(n_genes, n_latent, n_hidden, n_layers, dropout_rate)
        self.l_encoder = None if use_observed_lib_size else Encoder(n_genes, 1, n_hidden, 1, dropout_rate)
        self.decoder = Decoder(
            n_latent,
            n_genes,
            n_cov=n_batch if n_batch > 1 else 0,
            n_hidden=n_hidden,
            n_layers=n_layers,
            zero_inflated=self.needs_dropout_head,
            cell_dispersion=self.needs_dispersion and dispersion == "gene-cell",
        )
        columns = {"gene": (), "gene-batch": (n_batch,), "gene-label": (n_labels,)}.get(dispersion)
        # Only parameters the likelihood uses are built: data-parallel training (find_unused_parameters off) needs
        # every parameter to get a gradient at every step.
        per_gene = columns is not None and self.needs_dispersion
        self.px_r = nn.Parameter(torch.randn(n_genes, *columns)) if per_gene else None
        means = np.zeros(n_batch) if library_log_means is None else library_log_means
        variances = np.ones(n_batch) if library_log_vars is None else library_log_vars
        self.register_buffer("library_log_means", torch.as_tensor(means, dtype=torch.float32))
        self.register_buffer("library_log_vars", torch.as_tensor(variances, dtype=torch.float32))

    @property
    def needs_dropout_head(self) -> bool:
        return self.gene_likelihood == "zinb"

    @property
    def needs_dispersion(self) -> bool:
        """θ: the NB and ZINB have one, the Poisson none."""
        return self.gene_likelihood != "poisson"

    # ---- inference: q(z|x), q(l|x) ------------------------------------------------------------------------
    def inference(self, batch: Batch) -> dict[str, torch.Tensor]:
        encoded = torch.log1p(batch.x)
        z_mean, z_var, z = self.z_encoder(encoded)
        out = {"z_mean": z_mean, "z_var": z_var, "z": z, "log_library": batch.log_library}
        if self.l_encoder is not None:
            l_mean, l_var, log_library = self.l_encoder(encoded)
            out |= {"l_mean": l_mean[:, 0], "l_var": l_var[:, 0], "log_library": log_library[:, 0]}
        return out

    # ---- generative: p(x|z, l, s) ---------------------------------------------------------------------------
    def batch_onehot(self, batch_codes: torch.Tensor) -> torch.Tensor | None:
        if self.n_batch <= 1:
            return None
        return nn.functional.one_hot(batch_codes, self.n_batch).float()

    def generative(self, z, log_library, batch_codes, label_codes) -> dict[str, torch.Tensor]:
        log_rho, zi_logits, log_theta_cell = self.decoder(z, self.batch_onehot(batch_codes))
        log_mu = log_library[:, None] + log_rho
        if not self.needs_dispersion:
            theta = None
        elif self.dispersion == "gene":
            theta = torch.exp(self.px_r)
        elif self.dispersion == "gene-batch":
            theta = torch.exp(self.px_r.T[batch_codes])
        elif self.dispersion == "gene-label":
            theta = torch.exp(self.px_r.T[label_codes])
        else:
            theta = torch.exp(log_theta_cell)
        return {"log_rho": log_rho, "log_mu": log_mu, "theta": theta, "zi_logits": zi_logits}

    def log_norm(self, batch: Batch, theta: torch.Tensor) -> torch.Tensor:
        """Σ_g lnΓ(x_ng+θ) − lnΓ(θ) − lnΓ(x_ng+1) per cell. Only non-zero entries contribute; for a per-gene θ
        the lnΓ(θ) part is a product of the non-zero mask with lnΓ(θ_g), so it is evaluated G times, not per entry."""
        if theta.dim() == 1:
            theta_nz = theta.index_select(0, batch.cols)
            lgamma_theta = batch.x.clamp(max=1.0) @ D.lgamma(theta)  # x clamped at 1: the indicator of x > 0
        else:
            theta_nz = theta.reshape(-1).index_select(0, batch.flat_index())
            lgamma_theta = torch.segment_reduce(D.lgamma(theta_nz), "sum", lengths=batch.row_lengths)
        lgamma_x_theta = torch.segment_reduce(D.lgamma(batch.values + theta_nz), "sum", lengths=batch.row_lengths)
        return lgamma_x_theta - lgamma_theta - batch.log_factorial

    def log_likelihood(self, batch: Batch, gen: dict[str, torch.Tensor]) -> torch.Tensor:
        """log p(x_n | z_n, l_n, s_n) per cell."""
        if self.gene_likelihood == "poisson":
            return D.poisson_kernel_sum(batch.x, gen["log_mu"]) - batch.log_factorial
        zi_logits = gen["zi_logits"] if self.gene_likelihood == "zinb" else None
        kernel = D.nb_kernel_sum(batch.x, gen["log_mu"], gen["theta"], zi_logits=zi_logits)
        return kernel + self.log_norm(batch, gen["theta"])

    # ---- loss ------------------------------------------------------------------------------------------------
    def kl_library(self, inf: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        if self.l_encoder is None:
            return torch.zeros_like(batch.log_library)
        prior_mean = self.library_log_means[batch.batch]
        prior_var = self.library_log_vars[batch.batch]
        return D.kl_normal(inf["l_mean"][:, None], inf["l_var"][:, None], prior_mean[:, None], prior_var[:, None])

    def forward(self, batch: Batch) -> LossTerms:
        inf = self.inference(batch)
        gen = self.generative(inf["z"], inf["log_library"], batch.batch, batch.label)
        kl_z = D.kl_normal_standard(inf["z_mean"], inf["z_var"])
        return LossTerms(
            reconstruction=-self.log_likelihood(batch, gen),
            kl_local=kl_z + self.kl_library(inf, batch),
            kl_z=kl_z,
            kl_global=torch.zeros((), device=batch.x.device),
        )

    def loss(self, terms: LossTerms, kl_weight: float, n_obs: int) -> torch.Tensor:
        """The minibatch objective scVI minimises: mean_n(rec_n + w·KL_z,n + KL_l,n)."""
        kl_l = terms.kl_local - terms.kl_z
        return (terms.reconstruction + kl_weight * terms.kl_z + kl_l).mean()
