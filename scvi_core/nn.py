"""Neural building blocks shared by scVI and AutoZI: a fully connected stack with covariate injection, the
Gaussian encoder q(z|x) and the decoder that maps z (and the batch) to gene frequencies and dropout logits.

Constants follow the original scVI implementation: BatchNorm momentum 0.01 and eps 1e-3, variance floor 1e-4.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.distributed as dist
from torch.distributed._functional_collectives import all_reduce  # differentiable (torch's own advice)

from .train import is_data_parallel

VAR_EPS = 1e-4


class BatchNorm(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics span every process of a data-parallel run, so that N processes of b
    cells each normalise (and step) exactly as one process of N·b cells would. torch's SyncBatchNorm does this on
    GPUs only; this one sums [Σx, Σx², n] over the processes with a differentiable all-reduce, on any backend.
    In one process, and in eval mode, it is BatchNorm1d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_data_parallel()):
            return super().forward(x)
        count = torch.full((1,), float(x.shape[0]), dtype=x.dtype, device=x.device)
        sums = all_reduce(torch.cat([x.sum(0), (x * x).sum(0), count]), "sum", dist.group.WORLD)
        width, n = x.shape[1], sums[-1]
        mean = sums[:width] / n
        var = sums[width : 2 * width] / n - mean * mean
        with torch.no_grad():  # as BatchNorm1d: the running variance is the unbiased one
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * n / (n - 1), self.momentum)
            self.num_batches_tracked += 1
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class FCLayers(nn.Module):
    """``n_layers`` × (Linear → BatchNorm → ReLU → Dropout). A one-hot covariate (e.g. the batch) is
    concatenated to the input of every Linear layer, so that each layer can correct for it."""

    def __init__(self, n_in: int, n_out: int, n_cov: int = 0, n_layers: int = 1, dropout_rate: float = 0.1):
        super().__init__()
        self.n_cov = n_cov
        dims = [n_in] + [n_out] * n_layers
        self.layers = nn.ModuleList(
            nn.ModuleDict(
                {
                    "linear": nn.Linear(d_in + n_cov, d_out),
                    "norm": BatchNorm(d_out, momentum=0.01, eps=1e-3),
                }
            )
            for d_in, d_out in zip(dims[:-1], dims[1:], strict=True)
        )
        self.dropout = nn.Dropout(dropout_rate) if dropout_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, cov: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            if self.n_cov:
                x = torch.cat([x, cov], dim=-1)
            x = self.dropout(torch.relu(layer["norm"](layer["linear"](x))))
        return x


class Encoder(nn.Module):
    """q(·|x) = Normal(mean(x), var(x)) with var = exp(·) + 1e-4; returns mean, var and a reparameterised sample."""

    def __init__(self, n_in: int, n_out: int, n_hidden: int, n_layers: int, dropout_rate: float):
        super().__init__()
        self.trunk = FCLayers(n_in, n_hidden, n_layers=n_layers, dropout_rate=dropout_rate)
        self.mean = nn.Linear(n_hidden, n_out)
        self.log_var = nn.Linear(n_hidden, n_out)

    def forward(self, x: torch.Tensor):
        h = self.trunk(x)
        mean = self.mean(h)
        var = torch.exp(self.log_var(h)) + VAR_EPS
        return mean, var, self.sample(mean, var)

    @staticmethod
    def sample(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """A reparameterised draw of Normal(mean, var)."""
        return mean + var.sqrt() * torch.randn_like(mean)


class Decoder(nn.Module):
    """From z_n (and the batch one-hot s_n) to log ρ_n = log softmax(f_w), the dropout logits f_h (only for
    zero-inflated likelihoods) and, for per-cell dispersion, log θ_n. Dropout is off in the decoder (as in scVI).
    Heads that the likelihood does not use are not built, so they cost no time."""

    def __init__(
        self,
        n_latent: int,
        n_genes: int,
        n_cov: int,
        n_hidden: int,
        n_layers: int,
        zero_inflated: bool,
        cell_dispersion: bool,
    ):
        super().__init__()
        self.trunk = FCLayers(n_latent, n_hidden, n_cov=n_cov, n_layers=n_layers, dropout_rate=0.0)
        self.frequency = nn.Linear(n_hidden, n_genes)
        self.dropout_logits = nn.Linear(n_hidden, n_genes) if zero_inflated else None
        self.log_dispersion = nn.Linear(n_hidden, n_genes) if cell_dispersion else None

    def forward(self, z: torch.Tensor, cov: torch.Tensor | None):
        h = self.trunk(z, cov)
        log_rho = torch.log_softmax(self.frequency(h), dim=-1)
        zi_logits = self.dropout_logits(h) if self.dropout_logits is not None else None
        log_theta = self.log_dispersion(h) if self.log_dispersion is not None else None
        return log_rho, zi_logits, log_theta
