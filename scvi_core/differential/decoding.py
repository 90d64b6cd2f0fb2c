"""Decoding cells for differential expression without a cells × genes array: one draw z ~ q(z | x_n) per cell, kept
as the decoder's last hidden layer h_n and the log-partition log Σ_g exp(f_g(h_n)) of its softmax, from which ρ of
any chunk of genes is exp(f_chunk(h_n) − log-partition). So memory grows with cells × hidden units, never with genes
(30,000 genes cost no more than 2,000), and each method recomputes ρ gene chunk by gene chunk."""

from __future__ import annotations

import numpy as np
import torch

DECODE_BATCH = 1024


def decode(model, data, cells: np.ndarray, batch_code: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One draw of z per cell (cells in the order given), decoded under ``batch_code`` (None: each cell's own batch):
    the hidden layer (n, H) and the log-partition (n,). Call under ``torch.no_grad()`` with the module in eval."""
    module = model.module
    decoder = module.decoder
    hidden, log_partition = [], []
    for batch in data.minibatches(cells, DECODE_BATCH, model.device):
        z = module.inference(batch)["z"]
        codes = batch.batch if batch_code is None else torch.full_like(batch.batch, batch_code)
        h = decoder.trunk(z, module.batch_onehot(codes))
        hidden.append(h)
        log_partition.append(torch.logsumexp(decoder.frequency(h), dim=-1))
    return torch.cat(hidden), torch.cat(log_partition)


def rho(frequency: torch.nn.Linear, hidden: torch.Tensor, log_partition: torch.Tensor, genes: slice) -> torch.Tensor:
    """ρ of every decoded row for a chunk of genes: (…, chunk), the leading shape of ``log_partition``."""
    logits = hidden @ frequency.weight[genes].T + frequency.bias[genes]
    return torch.exp(logits - log_partition[..., None])
