"""scVI's differential expression as published (Lopez et al. 2018; change mode: Boyeau et al. 2019, 2023) and as
scvi-tools 1.4 computes it (``method="scvi"``, the default). It asks: is a random cell of group A at least δ (log2)
above or below a random cell of group B? Single cells' normalised expression is compared, so the variation between
cells of a group counts against a call.

For each group G (cells n ∈ G, each group subsampled to ``max_cells_per_group``), and each batch b it is decoded
under (the cell's own batch; with batch correction every batch, n_samples / n_batches draws each):

1. The aggregate posterior. k = ⌊N_b / |G|⌋ + 1 draws z ~ q(z | x_n) per cell, ρ = softmax(f(z, b)) (library 1),
   and N_b of the k·|G| draws kept, uniformly with replacement: draws from (1/|G|) Σ_n q(z | x_n).
2. Pairs. Draw i of group A with draw i of group B, decoded under the same batch.
3. The pseudocount. Genes not expressed in a group (raw mean count < 0.01 over all its cells): the 90% quantile of
   their largest ρ over the group's draws; pc = max(10⁻¹⁰, max(eps_A, eps_B) / n_genes).
4. Change mode. LFC_i = log2(ρA_i + pc) − log2(ρB_i + pc); P(up) = mean_i [LFC_i ≥ δ], P(down) = mean_i [LFC_i < −δ],
   proba_de = max(P(up), P(down)), bayes_factor = sign(P(up) − P(down)) · (ln(proba_de + ε) − ln(1 − proba_de + ε))
   (signed as scvi-tools did up to 1.3; 1.4 leaves it unsigned), and the DE genes are the largest top set by
   proba_de whose posterior expected FDR, mean(1 − proba_de), is ≤ fdr_target. The LFC summaries (mean, median,
   std, min, max) are of log2(ρA_i + pc·10⁻³) − log2(ρB_i + pc·10⁻³), as scvi-tools reports them.
5. Vanilla mode. proba_m1 = mean_i [ρA_i > ρB_i], bayes_factor = ln(proba_m1 + ε) − ln(proba_m2 + ε).

scale1 / scale2 are the mean ρ of each group's draws. ``delta=None``: δ from the genes' mean LFC
(:func:`~scvi_core.de._calls.estimate_delta`). Memory: only the draws' hidden layers are kept
(:mod:`~scvi_core.de._decoding`); ρ is computed per gene chunk (:class:`PairedRho`: kept between passes
for a few thousand genes, recomputed beyond), in two passes (the pseudocount needs every gene's largest ρ before any
LFC), three with ``delta=None``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ._calls import change_columns, estimate_delta, vanilla_columns, with_group_columns
from ._decoding import decode_latent, encode, rho_by_gene
from ._groups import Comparison, subsample
from ._raw import NOT_EXPRESSED_MEAN, raw_statistics

PSEUDOCOUNT_QUANTILE = 0.9
EFFECT_PSEUDOCOUNT = 1e-3  # the LFC summaries use pc × this (scvi-tools: "to correctly estimate log-fold change")
GENE_CHUNK_ENTRIES = 1_000_000  # draws × genes per chunk (4 MB of float32 per array)
KEEP_ENTRIES = 10_000_000  # draws × genes of ρ kept between passes, per group (40 MB of float32)


@dataclass
class GroupDraws:
    """One group's draws from its aggregate posterior, in pairing order (batch code by batch code): the decoder's
    hidden layer (R, H) and log-partition (R,) of each, so ρ of a gene chunk, (chunk, R), is :meth:`rho`."""

    hidden: torch.Tensor
    log_partition: torch.Tensor
    frequency: torch.nn.Linear

    def rho(self, genes: slice) -> torch.Tensor:
        return rho_by_gene(self.frequency, self.hidden, self.log_partition, genes)


def sample_group(model, data, cells: np.ndarray, batch_codes: list[int | None], n_samples: int,
                 rng: np.random.Generator) -> GroupDraws:
    """``n_samples`` draws (n_samples / len(batch_codes) per code, at least one) of single cells' ρ (step 1). Of the
    k·|G| draws of step 1, only those kept are made: N_b positions among them, uniformly with replacement, each
    position one draw z ~ q(z | x_n) of its cell (a position kept twice, one draw twice), so the draws are those of
    step 1 and the encoder runs once per cell."""
    per_code = max(1, n_samples // len(batch_codes))
    k = per_code // len(cells) + 1
    posteriors = encode(model, data, cells)
    hidden, log_partition = [], []
    for code in batch_codes:
        positions, repeat = np.unique(rng.integers(0, k * len(cells), per_code), return_inverse=True)
        rows = torch.as_tensor(positions % len(cells), device=posteriors.mean.device)  # position = pass · |G| + cell
        h, lp = decode_latent(model, posteriors.sample(rows), posteriors.codes(rows, code))
        repeat = torch.as_tensor(repeat.reshape(-1), device=lp.device)
        hidden.append(h[repeat])
        log_partition.append(lp[repeat])
    return GroupDraws(torch.cat(hidden), torch.cat(log_partition), model.module.decoder.frequency)


def pseudocount(max_rho1: np.ndarray, max_rho2: np.ndarray, raw_mean1: np.ndarray, raw_mean2: np.ndarray) -> float:
    """Step 3: the level of ρ the model gives genes a group does not express, per gene of the table."""
    eps = [np.quantile(m[r < NOT_EXPRESSED_MEAN], PSEUDOCOUNT_QUANTILE) if np.any(r < NOT_EXPRESSED_MEAN) else 1e-10
           for m, r in ((max_rho1, raw_mean1), (max_rho2, raw_mean2))]
    return float(max(1e-10, max(eps) / len(max_rho1)))


class PairedRho:
    """The two groups' paired draws of ρ, gene chunk by gene chunk, each pass over the genes a loop over this. Kept
    after the first pass when both fit in ``KEEP_ENTRIES`` (2,000 genes × 5,000 draws: 80 MB), recomputed from the
    hidden layers otherwise (30,000 genes), so memory stays bounded and small tables are not decoded three times."""

    def __init__(self, group1: GroupDraws, group2: GroupDraws, n_genes: int):
        n_draws = len(group1.log_partition)
        size = max(1, GENE_CHUNK_ENTRIES // n_draws)
        self.groups = group1, group2
        self.chunks = [slice(start, min(start + size, n_genes)) for start in range(0, n_genes, size)]
        self.kept = [] if n_draws * n_genes <= KEEP_ENTRIES else None

    def __iter__(self):
        if self.kept:
            yield from self.kept
            return
        for genes in self.chunks:
            chunk = (genes, self.groups[0].rho(genes), self.groups[1].rho(genes))
            if self.kept is not None:
                self.kept.append(chunk)
            yield chunk


def _lfc(rho1: torch.Tensor, rho2: torch.Tensor, pc: float) -> torch.Tensor:
    return torch.log2(rho1 + pc) - torch.log2(rho2 + pc)


def _share(condition: torch.Tensor) -> torch.Tensor:
    """Per gene (row), the share of draws where ``condition`` holds."""
    return condition.sum(1, dtype=torch.int64).double() / condition.shape[1]


def _numpy(values: torch.Tensor) -> np.ndarray:
    return values.double().cpu().numpy()


def compare(model, data, comparison: Comparison, *, mode: str, delta: float | None,
            batch_codes: list[int | None], n_samples: int, max_cells_per_group: int | None,
            seed: int) -> pd.DataFrame:
    """One comparison's table, genes in the model's order (the caller ranks and labels it)."""
    rng = np.random.default_rng(seed)
    cells1 = subsample(comparison.cells1, max_cells_per_group, rng)
    cells2 = subsample(comparison.cells2, max_cells_per_group, rng)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)  # the z draws
        model.module.eval()
        group1 = sample_group(model, data, cells1, batch_codes, n_samples, rng)
        group2 = sample_group(model, data, cells2, batch_codes, n_samples, rng)
        raw1, raw2 = raw_statistics(data.matrix, comparison.cells1), raw_statistics(data.matrix, comparison.cells2)
        pairs = PairedRho(group1, group2, data.n_genes)
        scale1, max1, scale2, max2 = (np.zeros(data.n_genes) for _ in range(4))
        for g, rho1, rho2 in pairs:
            scale1[g], max1[g], scale2[g], max2[g] = map(_numpy, (rho1.mean(1), rho1.amax(1), rho2.mean(1),
                                                                  rho2.amax(1)))
        pc = pseudocount(max1, max2, raw1["raw_mean"], raw2["raw_mean"])
        if delta is None and mode == "change":
            delta = estimate_delta(np.concatenate([_numpy(_lfc(rho1, rho2, pc).mean(1)) for _, rho1, rho2 in pairs]),
                                   seed)
        columns = [_chunk_columns(rho1, rho2, pc, delta, mode) for _, rho1, rho2 in pairs]
    table = pd.DataFrame({name: np.concatenate([c[name] for c in columns]) for name in columns[0]},
                         index=data.gene_names)
    if mode == "change":
        decision = change_columns(table.pop("proba_up").to_numpy(), table.pop("proba_down").to_numpy())
    else:
        decision = vanilla_columns(table.pop("proba_m1").to_numpy())
    table = pd.DataFrame(decision, index=table.index).join(table)
    return with_group_columns(table, (scale1, scale2), pc, delta if mode == "change" else None, (raw1, raw2),
                              (len(cells1), len(cells2)))


def _chunk_columns(rho1: torch.Tensor, rho2: torch.Tensor, pc: float, delta: float | None,
                   mode: str) -> dict[str, np.ndarray]:
    """Steps 4–5 for a chunk of genes, from paired draws (chunk, R) of the two groups' ρ."""
    if mode == "change":
        lfc = _lfc(rho1, rho2, pc)
        out = {"proba_up": _share(lfc >= delta), "proba_down": _share(lfc < -delta)}
    else:
        out = {"proba_m1": _share(rho1 > rho2)}
    effect = _lfc(rho1, rho2, pc * EFFECT_PSEUDOCOUNT)
    std, mean = torch.std_mean(effect, dim=1, correction=0)
    low, high = torch.aminmax(effect, dim=1)
    out |= {"lfc_mean": mean, "lfc_median": _median(effect), "lfc_std": std, "lfc_min": low, "lfc_max": high}
    return {name: _numpy(values) for name, values in out.items()}


def _median(values: torch.Tensor) -> torch.Tensor:
    """numpy's median of each row (the mean of the two middle values when the count is even), from one partition
    around the lower middle and the least value above it: numpy's partition (torch's sort is slow), once rather
    than twice, done in place on ``values``, which the caller no longer needs."""
    rows = values.cpu().numpy()
    half = rows.shape[1] // 2
    if rows.shape[1] % 2:
        rows.partition(half, axis=1)
        return torch.from_numpy(rows[:, half].copy())
    rows.partition(half - 1, axis=1)
    return torch.from_numpy((rows[:, half - 1] + rows[:, half:].min(axis=1)) / 2)
