"""The group-mean test (``method="group-mean"``): the project's own estimator, beside scVI's change mode
(:mod:`~scvi_core.de._change_mode`) under its own name. It asks: is group A's **mean** normalised
expression at least δ (log2) above or below group B's? Not single cells but each group's mean is compared, so a
gene whose means differ clearly is called even when cells vary a lot within each group. **Cells are the replicates**:
right for the markers of clusters, pseudoreplication for donors or conditions (there, cells of one donor are not
independent and the calls are too many; compare pseudobulk samples instead). For gene g, with pseudocount pc:

1. The model's estimate. ρ̄_g = Σ_n w_n ρ_ng (library size 1), w ~ Dirichlet(1, …, 1) over the group's cells (the
   Bayesian bootstrap, Rubin 1981) and each ρ_n decoded from a draw z_n ~ q(z | x_n) (with batch correction: under
   every batch, averaged). m_g^(b) = log2(ρ̄1_g^(b) + pc) − log2(ρ̄2_g^(b) + pc).
2. Its error. The decoder's weights are point estimates, so these draws know nothing of how many counts a gene's
   estimate rests on, and are far too sure of barely detected genes. The counts' own estimate,
   c_g = log2(x̃1_g + pc) − log2(x̃2_g + pc), with x̃ the group's mean share x_ng / l_n plus one count's share
   1 / (n l̄) (a count the group could as well have had: a gene with no count in a group has a bounded LFC, not one
   set by pc), has a sampling variance v_g by the delta method from the variance of the mean share, at least its
   multinomial value (k + 1)(1 − x̄) / (n l̄)² for k counts in n cells of mean library l̄ (with batch correction:
   averaged over the batches both groups share, batch by batch). The decoder was fitted to those same counts, so its
   error inherits theirs and adds its own: with d_g the gap mean_b m_g − c_g, s_g² = v_g + mean(d²) over the genes
   of similar expression (ten bins).
3. Both estimates, weighted by their precision: centres x_g^(b) = a_g m_g^(b) + (1 − a_g) c_g,
   a_g = v_g / (v_g + s_g²), and, since their errors are correlated, the cautious spread σ_g = a_g s_g + (1 − a_g)√v_g.
   Since s_g² ≥ v_g, a_g ≤ ½: the model never weighs more than the counts. It weighs ½ where the decoder agrees with
   the counts of genes like g (d ≈ 0) and little where it does not; where the counts are few (v_g large) it weighs
   close to ½, never more.
4. Most genes barely change, and each gene's estimate is read in the light of all the others: adaptive shrinkage
   (:class:`Shrinkage`) with a prior Σ_k π_k N(0, τ_k²) on the true LFCs, fitted to the genes of the comparison,
   gives the posterior draws LFC_g^(b) = r x_g^(b) + √r σ_g ξ^(b). Noisy estimates of small changes are pulled
   towards 0; clear ones are left where they are.

The centres enter through their mean x̄_g and variance V_g over the draws b: the draws that follow scale k (gene g's
posterior weight of k: w_gk) have mean μ_gk = r x̄_g and variance s_gk² = r² V_g + r σ_g², taken as normal (the
centres are log ratios of means over many cells), so gene g's posterior is the normal mixture Σ_k w_gk N(μ_gk, s_gk²)
(:class:`NormalMixture`; k = 0 is a point mass at 0), and its probabilities are exact. Then (change mode):

    P(up) = P(LFC_g ≥ δ) = Σ_k w_gk Φ((μ_gk − δ) / s_gk),   P(down) = P(LFC_g ≤ −δ),   proba_de = max(P(up), P(down))
    bayes_factor = ± ln(proba_de / (1 − proba_de)), + when P(up) ≥ P(down)
    called DE   = the largest top set by proba_de whose posterior expected FDR, mean(1 − proba_de), is ≤ fdr_target

``mode="vanilla"`` gives P(LFC > 0) from the same posterior. The LFC summaries come from the same posterior built
with pc × 10⁻³ for the genes expressed in a group (pc compresses real fold changes of genes expressed in one group
only): ``lfc_mean`` and ``lfc_std`` are the mixture's, ``lfc_median``, ``lfc_min`` and ``lfc_max`` those of its
draws. The equations, the pseudocount and δ = None: ``docs/models.md``.

Memory stays bounded whatever the number of genes: the decoder's hidden layer and each cell's log-partition of the
softmax are kept (cells × hidden), and ρ is recomputed gene chunk by gene chunk, so no draws × G array exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import special

from ._calls import change_columns, estimate_delta, vanilla_columns, with_group_columns
from ._decoding import DECODE_BATCH, encode, rho
from ._groups import Comparison, subsample
from ._raw import NOT_EXPRESSED_MEAN, raw_statistics, rows, shares

Z_DRAWS = 5  # draws of z per cell; the model's group-mean draws are spread evenly over them
MODEL_DRAWS = 1000  # at most this many draws of the groups' means (n_samples beyond changes nothing): the probabilities
# and the LFC's mean and sd are exact given them, its median, min and max are over them
EXPRESSION_BINS = 10  # genes are binned by expression to estimate the decoder's error s²
PRIOR_SCALES = np.concatenate([[0.0], 0.025 * np.sqrt(2.0) ** np.arange(17)])  # τ_k of the shrinkage prior, log2:
# 0, then 0.025 … 6.4 by factors of √2
EFFECT_PSEUDOCOUNT = 1e-3  # LFC summaries of genes expressed in a group use pc × this: pc compresses the LFC of a
# gene expressed in one group only (true 4, reported 1.7), right for the test but not for the size of the effect
MIN_DECODER_VAR = 1e-4  # (0.01 in log2)²: the decoder is never taken as exact
GENE_CHUNK_ENTRIES = 250_000  # draws × genes per chunk (1 MB of float32 per array: they stay in cache)


# ---- posterior draws of the groups' mean expression -----------------------------------------------------------
class _Decoded:
    """One group's cells decoded ``Z_DRAWS`` times: the decoder's last hidden layer and each cell's log-partition
    log Σ_g exp(f_g), from which ρ of any gene chunk is exp(f_chunk − log-partition) (averaged over the batches
    decoded under, with batch correction). Also the posterior mean of ρ̄ for every gene (``scale``)."""

    def __init__(self, model, data, cells: np.ndarray, batch_codes: list[int | None]):  # codes share each z draw
        module = model.module
        decoder = module.decoder
        self.frequency = decoder.frequency
        hidden, log_partition = [], []  # per z draw: (n_codes, n, H) and (n_codes, n)
        scale = torch.zeros(data.n_genes, dtype=torch.float64)
        posteriors = encode(model, data, cells)  # once: each z draw below is a fresh sample of the same q(z | x_n)
        for _ in range(Z_DRAWS):
            h_draw, lp_draw = [[] for _ in batch_codes], [[] for _ in batch_codes]
            for start in range(0, len(cells), DECODE_BATCH):
                rows = torch.arange(start, min(start + DECODE_BATCH, len(cells)), device=posteriors.mean.device)
                z = posteriors.sample(rows)
                for i, code in enumerate(batch_codes):
                    h = decoder.trunk(z, module.batch_onehot(posteriors.codes(rows, code)))
                    logits = self.frequency(h)
                    lp = torch.logsumexp(logits, dim=-1)
                    scale += torch.exp(logits - lp[:, None]).sum(0).double().cpu()
                    h_draw[i].append(h)
                    lp_draw[i].append(lp)
            hidden.append(torch.stack([torch.cat(parts) for parts in h_draw]))
            log_partition.append(torch.stack([torch.cat(parts) for parts in lp_draw]))
        self.hidden, self.log_partition = hidden, log_partition
        self.scale = (scale / (Z_DRAWS * len(batch_codes) * len(cells))).numpy()

    def rho(self, draw: int, genes: slice) -> torch.Tensor:
        """ρ of every cell (rows) for a chunk of genes under z draw ``draw``: (n, chunk)."""
        return rho(self.frequency, self.hidden[draw], self.log_partition[draw], genes).mean(0)  # over the codes


@dataclass
class ShareMoments:
    """Each group's mean share x̃_g of the cells' libraries (plus one count's share) and the variance of that mean
    (at least multinomial's), per gene, averaged with equal weights over the strata (batches) both groups have (module
    docstring, 2). ``None`` fields: no stratum in common."""

    mean1: np.ndarray | None
    var1: np.ndarray | None
    mean2: np.ndarray | None
    var2: np.ndarray | None


def share_moments(matrix, cells1: np.ndarray, cells2: np.ndarray, strata1: np.ndarray,
                  strata2: np.ndarray) -> ShareMoments:
    """:class:`ShareMoments` of the two groups (give every cell the same stratum for a pooled comparison). They do
    not depend on the pseudocount, so one pass over the counts serves every :func:`count_lfc`."""
    shared = np.intersect1d(strata1, strata2)
    if shared.size == 0:
        return ShareMoments(None, None, None, None)
    moments = []
    for cells, strata in ((cells1, strata1), (cells2, strata2)):
        mean, var_of_mean = 0.0, 0.0
        for stratum in shared:
            counts = rows(matrix, cells[strata == stratum])
            block = shares(counts)
            n = block.shape[0]
            one_count = 1.0 / max(counts.sum(), 1.0)  # 1 / (n l̄): one count's share of the group's mean
            m = np.asarray(block.mean(axis=0)).ravel()
            var = np.maximum(np.asarray(block.multiply(block).mean(axis=0)).ravel() - m**2, 0.0) * n / max(n - 1, 1)
            var = np.maximum(var / n, (m + one_count) * (1 - m) * one_count)  # ≥ multinomial's, one more count
            mean, var_of_mean = mean + (m + one_count) / shared.size, var_of_mean + var / shared.size**2
        moments += [mean, var_of_mean]
    return ShareMoments(*moments)


def count_lfc(moments: ShareMoments, pc) -> tuple[np.ndarray, np.ndarray]:
    """The counts' own LFC of the groups' mean shares and its sampling variance (delta method), per gene, at
    pseudocount ``pc``. No stratum in common: (zeros, infinite variance)."""
    if moments.mean1 is None:
        return np.zeros(np.shape(pc)), np.full(np.shape(pc), np.inf)
    m1, v1, m2, v2 = moments.mean1, moments.var1, moments.mean2, moments.var2
    lfc = np.log2(m1 + pc) - np.log2(m2 + pc)
    variance = (v1 / (m1 + pc) ** 2 + v2 / (m2 + pc) ** 2) / np.log(2) ** 2
    return lfc, variance


def _bootstrap_weights(n_cells: int, n_samples: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Dirichlet(1, …, 1) weights over the cells, n_samples rows spread over the Z_DRAWS draws of z."""
    sizes = np.diff(np.linspace(0, n_samples, Z_DRAWS + 1).round().astype(int))
    out = []
    for size in sizes:
        w = -torch.log(torch.rand(int(size), n_cells, generator=generator).clamp_min(1e-12))  # Exp(1) = Gamma(1)
        out.append(w / w.sum(1, keepdim=True))
    return out


def _group_mean_draws(decoded: _Decoded, weights: list[torch.Tensor], genes: slice) -> torch.Tensor:
    """(n_samples, chunk) draws of the group's mean ρ̄ for a chunk of genes."""
    return torch.cat([w @ decoded.rho(k, genes) for k, w in enumerate(weights)])


def pseudocount(scale1: np.ndarray, scale2: np.ndarray, raw_mean1: np.ndarray, raw_mean2: np.ndarray) -> float:
    """The expression below which differences are noise: over the genes not expressed in a group (raw mean
    < 0.01 counts per cell), the 90% quantile of that group's mean ρ; the larger of the two groups' (≥ 1e-10)."""
    eps = [np.quantile(s[r < NOT_EXPRESSED_MEAN], 0.9) if np.any(r < NOT_EXPRESSED_MEAN) else 0.0
           for s, r in ((scale1, raw_mean1), (scale2, raw_mean2))]
    return float(max(1e-10, *eps))


def decoder_error_variance(lfc_model: np.ndarray, lfc_counts: np.ndarray, count_variance: np.ndarray,
                           expression: np.ndarray) -> np.ndarray:
    """s_g²: the decoder's error variance, the counts' own variance v_g (which the fit inherits) plus the mean squared
    gap between the model's and the counts' LFC among genes of similar ``expression`` (EXPRESSION_BINS quantile bins);
    ≥ MIN_DECODER_VAR. Genes whose counts say nothing (infinite variance) give no gap; the bin's mean is used."""
    edges = np.quantile(expression, np.linspace(0, 1, EXPRESSION_BINS + 1)[1:-1])
    bins = np.searchsorted(edges, expression)
    gap = (lfc_model - lfc_counts) ** 2
    informative = np.isfinite(count_variance)
    per_bin = np.array([gap[(bins == b) & informative].mean() if np.any((bins == b) & informative) else 0.0
                        for b in range(EXPRESSION_BINS)])
    own = np.where(informative, count_variance, 0.0)
    return np.maximum(own + per_bin[bins], MIN_DECODER_VAR)


# ---- one comparison ----------------------------------------------------------------------------------------------
def compare(model, data, comparison: Comparison, *, mode: str, delta: float | None,
            batch_codes: list[int | None], n_samples: int, max_cells_per_group: int | None, seed: int) -> pd.DataFrame:
    """One comparison's table (genes in the model's order; sorted by the caller)."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    cells1 = subsample(comparison.cells1, max_cells_per_group, rng)
    cells2 = subsample(comparison.cells2, max_cells_per_group, rng)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)  # the z draws
        model.module.eval()
        decoded1 = _Decoded(model, data, cells1, batch_codes)
        decoded2 = _Decoded(model, data, cells2, batch_codes)
        n_draws = min(n_samples, MODEL_DRAWS)
        weights1 = [w.to(model.device) for w in _bootstrap_weights(len(cells1), n_draws, generator)]
        weights2 = [w.to(model.device) for w in _bootstrap_weights(len(cells2), n_draws, generator)]
        raw1, raw2 = raw_statistics(data.matrix, comparison.cells1), raw_statistics(data.matrix, comparison.cells2)
        pc = pseudocount(decoded1.scale, decoded2.scale, raw1["raw_mean"], raw2["raw_mean"])
        strata = [data.batch_codes[c] if len(batch_codes) > 1 else np.zeros(len(c), int) for c in (cells1, cells2)]
        moments = share_moments(data.matrix, cells1, cells2, *strata)
        if moments.mean1 is None:  # no batch in common: only the model can compare them; judge its error pooled
            pooled = share_moments(data.matrix, cells1, cells2, np.zeros(len(cells1)), np.zeros(len(cells2)))
        else:
            pooled = None
        test = _Posterior(decoded1, decoded2, moments, pooled, pc)  # for the probabilities and the calls
        expressed = (raw1["raw_mean"] >= NOT_EXPRESSED_MEAN) | (raw2["raw_mean"] >= NOT_EXPRESSED_MEAN)
        effect_pc = np.where(expressed, pc * EFFECT_PSEUDOCOUNT, pc)  # per gene
        effect = _Posterior(decoded1, decoded2, moments, pooled, effect_pc)  # for the LFC summaries
        if delta is None and mode == "change":
            delta = estimate_delta(test.estimate, seed)
        test_centres, effect_centres, drawn = [], [], []  # per gene chunk
        chunk = max(1, GENE_CHUNK_ENTRIES // n_draws)
        for start in range(0, data.n_genes, chunk):
            genes = slice(start, min(start + chunk, data.n_genes))
            draws1 = _group_mean_draws(decoded1, weights1, genes)
            draws2 = _group_mean_draws(decoded2, weights2, genes)
            test_centres.append(_mean_and_var(test.centres(draws1, draws2, genes)))
            centres = effect.centres(draws1, draws2, genes)
            effect_centres.append(_mean_and_var(centres))
            drawn.append(_draw_summaries(effect.shrinkage.draws(centres, genes, generator)))
    probabilities = _probabilities(test.shrinkage.mixture(*np.concatenate(test_centres, axis=1)), mode, delta)
    lfc_mean, lfc_std = effect.shrinkage.mixture(*np.concatenate(effect_centres, axis=1)).moments()
    drawn = {name: np.concatenate([d[name] for d in drawn]) for name in drawn[0]}
    table = pd.DataFrame(probabilities, index=data.gene_names)
    table = table.assign(lfc_mean=lfc_mean, lfc_median=drawn["lfc_median"], lfc_std=lfc_std,
                         lfc_min=drawn["lfc_min"], lfc_max=drawn["lfc_max"])
    return with_group_columns(table, (decoded1.scale, decoded2.scale), pc, delta if mode == "change" else None,
                              (raw1, raw2), (len(cells1), len(cells2)))


class _Combination:
    """The precision-weighted combination of the model's LFC draws with the counts' estimate (module docstring, 3)."""

    def __init__(self, decoder_var: np.ndarray, lfc_counts: np.ndarray, count_var: np.ndarray):
        finite = np.isfinite(count_var)
        self.weight = np.ones_like(decoder_var)  # a_g; 1 where the counts say nothing
        self.weight[finite] = count_var[finite] / (count_var[finite] + decoder_var[finite])
        self.decoder_sd = np.sqrt(decoder_var)
        self.lfc_counts = np.where(np.isinf(count_var), 0.0, lfc_counts)
        self.count_sd = np.where(np.isinf(count_var), 0.0, np.sqrt(count_var))

    def mean(self, lfc_model: np.ndarray) -> np.ndarray:
        return self.weight * lfc_model + (1 - self.weight) * self.lfc_counts

    def sd(self) -> np.ndarray:
        """σ_g, at least √MIN_DECODER_VAR (a gene with no count in either group has v_g = 0 and a_g = 0)."""
        return np.maximum(self.weight * self.decoder_sd + (1 - self.weight) * self.count_sd, np.sqrt(MIN_DECODER_VAR))

    def centres(self, model_draws: torch.Tensor, genes: slice) -> torch.Tensor:
        """a_g · m_g^(b) + (1 − a_g) · c_g: the draws' centres, before their spread σ_g = :meth:`sd` is added."""
        a, c = (torch.as_tensor(x[genes]).to(model_draws) for x in (self.weight, self.lfc_counts))
        return a * model_draws + (1 - a) * c


class Shrinkage:
    """Adaptive shrinkage (Stephens 2017, "ash"): most genes barely change, and a gene's noisy estimate should be read
    in the light of all the others. The true LFCs get the prior Σ_k π_k N(0, τ_k²) over a fixed grid of scales τ_k
    (τ_0 = 0: no change at all), its weights π fitted by EM to the genes' estimates L_g ≈ N(LFC_g, σ_g²). Gene g's
    posterior is then the mixture over k, with weights ∝ π_k N(L_g; 0, σ_g² + τ_k²), of N(r_gk L_g, r_gk σ_g²),
    r_gk = τ_k² / (τ_k² + σ_g²). A draw is r x + √r σ_g ξ, with k drawn from those weights, x a centre of the
    combined estimate (:meth:`_Combination.centres`, mean L_g) and ξ ~ N(0, 1): its mean r L_g, its variance r σ_g²
    (:meth:`mixture`: the same in closed form)."""

    def __init__(self, estimate: np.ndarray, sd: np.ndarray, scales: np.ndarray = PRIOR_SCALES, iterations: int = 500):
        var = sd[:, None] ** 2 + scales[None, :] ** 2
        log_lik = -0.5 * (np.log(var) + estimate[:, None] ** 2 / var)
        lik = np.exp(log_lik - log_lik.max(axis=1, keepdims=True))
        self.prior = np.full(len(scales), 1.0 / len(scales))
        for _ in range(iterations):  # π_k ← mean_g of gene g's posterior weight of k, as two matrix-vector products
            previous = self.prior
            self.prior = previous * (lik.T @ (1.0 / (lik @ previous))) / len(estimate)
            if np.abs(self.prior - previous).max() < 1e-6:
                break
        post = self.prior * lik
        self.posterior = post / post.sum(axis=1, keepdims=True)  # (genes, K): which scale each gene's LFC follows
        self.ratio = scales[None, :] ** 2 / var  # r_gk
        self.sd = sd

    def mixture(self, centre_mean: np.ndarray, centre_var: np.ndarray) -> NormalMixture:
        """Each gene's posterior as the normal mixture its :meth:`draws` follow, given the mean x̄ and variance of its
        centres over the draws: component k is N(r x̄, r² Var(x) + r σ²), the mean and variance of r x + √r σ ξ
        (normal when the centres are; they are log ratios of means over many cells). k = 0 (τ = 0) is a point mass
        at 0."""
        mean = self.ratio * centre_mean[:, None]
        var = self.ratio**2 * centre_var[:, None] + self.ratio * self.sd[:, None] ** 2
        return NormalMixture(self.posterior, mean, np.sqrt(var))

    def draws(self, centres: torch.Tensor, genes: slice, generator: torch.Generator) -> torch.Tensor:
        """Posterior draws (n_draws, chunk) from the combined estimate's centres (n_draws, chunk)."""
        cumulative = torch.as_tensor(np.cumsum(self.posterior[genes], axis=1), dtype=torch.float32)  # (chunk, K)
        uniform = torch.rand(centres.shape[1], centres.shape[0], generator=generator)  # (chunk, n)
        component = torch.searchsorted(cumulative, uniform).clamp_(max=cumulative.shape[1] - 1)  # k of each draw
        ratio = torch.as_tensor(self.ratio[genes], dtype=torch.float32).gather(1, component).T.to(centres)
        sd = torch.as_tensor(self.sd[genes]).to(centres)
        noise = torch.randn(centres.shape, generator=generator).to(centres)
        return ratio * centres + torch.sqrt(ratio) * sd * noise


@dataclass
class NormalMixture:
    """Per gene (rows), the distribution Σ_k weight_k N(mean_k, sd_k²) over K components (columns); sd 0 is a point
    mass at the mean."""

    weight: np.ndarray
    mean: np.ndarray
    sd: np.ndarray

    def at_least(self, threshold: float) -> np.ndarray:
        """P(X ≥ threshold) per gene: the components' normal tails, weighted."""
        with np.errstate(divide="ignore", invalid="ignore"):
            tails = np.where(self.sd > 0, special.ndtr((self.mean - threshold) / self.sd), self.mean >= threshold)
        return np.clip((self.weight * tails).sum(axis=1), 0.0, 1.0)

    def negated(self) -> NormalMixture:
        """The distribution of −X."""
        return NormalMixture(self.weight, -self.mean, self.sd)

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """The mean and standard deviation per gene."""
        mean = (self.weight * self.mean).sum(axis=1)
        second = (self.weight * (self.sd**2 + self.mean**2)).sum(axis=1)
        return mean, np.sqrt(np.maximum(second - mean**2, 0.0))


class _Posterior:
    """The posterior of every gene's LFC at pseudocount ``pc``: the model's estimate combined with the counts'
    (module docstring, 1–3), then shrunk (4)."""

    def __init__(self, decoded1: _Decoded, decoded2: _Decoded, moments: ShareMoments,
                 pooled: ShareMoments | None, pc):
        """``moments``: the groups' share moments over the batches they share; ``pooled``: the same over all their
        cells, given when they share no batch (the decoder's error is then judged on them). ``pc``: one pseudocount,
        or one per gene."""
        self.pc = np.array(np.broadcast_to(np.asarray(pc, dtype=np.float64), decoded1.scale.shape))
        lfc_model = np.log2(decoded1.scale + self.pc) - np.log2(decoded2.scale + self.pc)
        expression = np.log(decoded1.scale + decoded2.scale)
        lfc_counts, count_var = count_lfc(moments, self.pc)
        judged_on = count_lfc(pooled, self.pc) if pooled is not None else (lfc_counts, count_var)
        decoder_var = decoder_error_variance(lfc_model, *judged_on, expression)
        self.combination = _Combination(decoder_var, lfc_counts, count_var)
        self.estimate = self.combination.mean(lfc_model)  # L_g
        self.shrinkage = Shrinkage(self.estimate, self.combination.sd())

    def centres(self, draws1: torch.Tensor, draws2: torch.Tensor, genes: slice) -> torch.Tensor:
        """(n_draws, chunk) centres x_g^(b) of the combined estimate from draws of the two groups' mean ρ̄."""
        pc = torch.as_tensor(self.pc[genes]).to(draws1)
        model_lfc = torch.log2(draws1 + pc) - torch.log2(draws2 + pc)
        return self.combination.centres(model_lfc, genes)


def _mean_and_var(draws: torch.Tensor) -> np.ndarray:
    """(2, chunk): each column's mean and variance (over the draws), float64."""
    return torch.stack([draws.mean(0), draws.var(0, unbiased=False)]).double().cpu().numpy()


def _probabilities(lfc: NormalMixture, mode: str, delta: float | None) -> dict[str, np.ndarray]:
    """Per gene, from its LFC's posterior: the change-mode columns from its two tails, or P(LFC > 0) (vanilla)."""
    if mode == "change":
        return change_columns(lfc.at_least(delta), lfc.negated().at_least(delta))
    return vanilla_columns(1.0 - lfc.negated().at_least(0.0))  # P(LFC > 0) = 1 − P(−LFC ≥ 0)


def _draw_summaries(lfc: torch.Tensor) -> dict[str, np.ndarray]:
    """Per gene of a chunk, the median, min and max of its LFC draws (n_draws, chunk)."""
    out = {"lfc_median": lfc.median(0).values, "lfc_min": lfc.min(0).values, "lfc_max": lfc.max(0).values}
    return {name: values.cpu().numpy().astype(np.float64) for name, values in out.items()}
