"""Drawing and decoding cells for differential expression without a cells × genes array.

Each cell is encoded once (:func:`encode`: q(z | x_n) = Normal(mean_n, var_n)); its draws z ~ q(z | x_n) are then
as many as a method needs, each decoded (:func:`decode_latent`) to the decoder's last hidden layer h and the
log-partition log Σ_g exp(f_g(h)) of its softmax, from which ρ of any chunk of genes is exp(f_chunk(h) −
log-partition) (:func:`rho`). So memory grows with draws × hidden units, never with genes (30,000 genes cost no more
than 2,000), and the encoder, the costly half of the network, runs once per cell however many draws are taken."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..nn import Encoder

DECODE_BATCH = 1024


@dataclass
class CellPosteriors:
    """q(z | x_n) of some cells, in the order given: mean and variance (n, latent), and each cell's batch code (n,)."""

    mean: torch.Tensor
    var: torch.Tensor
    batch: torch.Tensor

    def sample(self, rows: torch.Tensor) -> torch.Tensor:
        """One fresh draw z ~ q(z | x_n) for each entry of ``rows`` (cell positions; repeats get draws of their own)."""
        return Encoder.sample(self.mean[rows], self.var[rows])

    def codes(self, rows: torch.Tensor, batch_code: int | None) -> torch.Tensor:
        """The batch each of ``rows`` is decoded under: its own (``batch_code`` None), or ``batch_code`` for all."""
        return self.batch[rows] if batch_code is None else torch.full_like(rows, batch_code)


def encode(model, data, cells: np.ndarray) -> CellPosteriors:
    """Encode ``cells`` once. Call under ``torch.no_grad()`` with the module in eval."""
    mean, var, batch_codes = [], [], []
    for batch in data.minibatches(cells, DECODE_BATCH, model.device):
        out = model.module.inference(batch)
        mean.append(out["z_mean"])
        var.append(out["z_var"])
        batch_codes.append(batch.batch)
    return CellPosteriors(torch.cat(mean), torch.cat(var), torch.cat(batch_codes))


def decode_latent(model, z: torch.Tensor, batch_codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The hidden layer (n, H) and the log-partition (n,) of draws ``z`` decoded under ``batch_codes`` (n,)."""
    module = model.module
    decoder = module.decoder
    hidden, log_partition = [], []
    for start in range(0, len(z), DECODE_BATCH):
        rows = slice(start, start + DECODE_BATCH)
        h = decoder.trunk(z[rows], module.batch_onehot(batch_codes[rows]))
        hidden.append(h)
        log_partition.append(torch.logsumexp(decoder.frequency(h), dim=-1))
    return torch.cat(hidden), torch.cat(log_partition)


def rho(frequency: torch.nn.Linear, hidden: torch.Tensor, log_partition: torch.Tensor, genes: slice) -> torch.Tensor:
    """ρ of every decoded row for a chunk of genes: (…, chunk), the leading shape of ``log_partition``."""
    logits = hidden @ frequency.weight[genes].T + frequency.bias[genes]
    return torch.exp(logits - log_partition[..., None])


def rho_by_gene(frequency: torch.nn.Linear, hidden: torch.Tensor, log_partition: torch.Tensor,
                genes: slice) -> torch.Tensor:
    """:func:`rho` of 2-D draws laid out gene by gene, (chunk, n): each gene's draws contiguous, so reductions over
    the draws (sums, medians) read memory in order."""
    logits = frequency.weight[genes] @ hidden.T + frequency.bias[genes, None]
    return torch.exp(logits - log_partition)
