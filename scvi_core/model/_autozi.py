"""AUTOZI: which genes are zero-inflated? The user-facing AutoZI model and its zero-inflation table.

δ_g is the probability that gene g is NOT zero-inflated (it weights the plain NB); AutoZI's answer, the table's
default, is P(ZI) = q(δ_g < 0.5) under the trained q(δ) and the user's Beta(α, β) prior. Beside it the table carries
the NB vs ZINB check (``scvi_core/zi/_check.py``), a per-gene refit that asks a different question under its own
column names; ``get_delta_posterior()`` computes δ's exact posterior on a grid given the fitted networks, on
held-out cells (``scvi_core/zi/_delta_posterior.py``; docs/models.md, "δ's grid posterior"), opt-in in the table.
See ``scvi_core/module/_autozivae.py`` for the equations and ``scvi_core/zi/_calls.py`` for the calls.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .. import distributions as D
from ..module import AutoZIVAE
from ..zi._delta_posterior import (
    FIT_GRID_SIZE,
    GRID_SIZE,
    best_beta,
    delta_grid,
    entry_log_ratio,
    grid_centres,
    grid_log_likelihood,
    summarize,
)
from ..zi._check import CHECK_FITS, MAX_CELLS, gene_evidence
from ..zi._calls import (
    AUTOZI_COLUMNS,
    CHECK_COLUMNS,
    CHECK_PREFIX,
    DEFAULT_MIN_LOG10_BF,
    POSTERIOR_METHODS,
    apply_threshold,
    column_methods,
    log10_bayes_factor,
    log10_odds_zero_inflated,
    prob_zero_inflated,
)
from ._base import BaseModel

MAX_FIT_CELLS = 3000
"""Training cells that judge the coordinate update of q(δ) (a seeded sample beyond that; cost cells × genes × grid)."""


class AUTOZI(BaseModel):
    """AutoZI (Clivio et al., 2019) on an AnnData registered with ``AUTOZI.setup_anndata``.

    Arguments (keyword, defaults from :class:`~scvi_core.module.AutoZIVAE` and the VAE it extends): those of SCVI
    but ``gene_likelihood``, and ``alpha_prior=0.5``, ``beta_prior=0.5``, ``minimal_dropout=0.01``,
    ``zero_inflation="gene"``. ``alpha_prior`` / ``beta_prior``: the Beta prior on δ_g (both ``None``: learned from
    the data). They are honoured as given in every ``zero_inflation`` mode ("gene", "gene-batch", "gene-label",
    "gene-cell").

    >>> AUTOZI.setup_anndata(adata)
    >>> model = AUTOZI(adata)
    >>> model.train(max_epochs=200, lr=1e-2)
    >>> table = model.get_zero_inflation_table()   # one row per gene: P(ZI) = q(δ < ½), Bayes factor, call, ...
    """

    module_class = AutoZIVAE
    fixed_module_args = ("gene_likelihood",)  # AutoZI's mixture is of an NB and a ZINB
    starts_at_gene_shares = True

    @property
    def group_key(self) -> str | None:
        """The obs column whose categories each get their own δ (gene-batch / gene-label modes)."""
        return {"gene-batch": self.registry.batch_key, "gene-label": self.registry.labels_key}.get(
            self.module.zero_inflation
        )

    def _group_codes(self, data) -> np.ndarray:
        """Each cell's δ group: its batch (gene-batch), its label (gene-label), else 0."""
        return {"gene-batch": data.batch_codes, "gene-label": data.label_codes}.get(
            self.module.zero_inflation, np.zeros(data.n_cells, dtype=np.int64))

    def _group_names(self) -> list[str]:
        mode = self.module.zero_inflation
        if mode == "gene-batch":
            return self.registry.batch_categories
        if mode == "gene-label":
            return self.registry.label_categories
        return ["all"]

    # ---- posterior of δ ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def get_alphas_betas(self, as_numpy: bool = True, adata=None, indices=None) -> dict:
        """The variational posterior q(δ) = Beta(α, β) as trained (as scvi-tools returns it) and the prior:
        ``alpha_posterior`` / ``beta_posterior`` of shape (G,), (G, n_batch) or (G, n_labels), or (cells, G) in the
        gene-cell mode; ``alpha_prior`` / ``beta_prior``. The exact grid posterior given the fitted networks is
        :meth:`get_delta_posterior`."""
        self.module.eval()
        if self.module.zero_inflation == "gene-cell":
            alphas, betas = [], []
            for batch in self._batches(adata, indices):
                a, b = self.module.posterior_params(self.module.inference(batch)["z_mean"])
                alphas.append(a.cpu())
                betas.append(b.cpu())
            alpha, beta = torch.cat(alphas), torch.cat(betas)
        else:
            alpha, beta = (t.cpu() for t in self.module.posterior_params())
        alpha_prior, beta_prior = (t.detach().cpu() for t in self.module.prior_params())
        out = {"alpha_posterior": alpha, "beta_posterior": beta, "alpha_prior": alpha_prior, "beta_prior": beta_prior}
        return {k: v.detach().numpy() for k, v in out.items()} if as_numpy else out

    def evidence_indices(self) -> np.ndarray | None:
        """The cells whose counts judge NB against ZINB: the held-out (validation) cells of the last training, or
        None (every cell) when there were none (``train_size=1``, or a model loaded from disk)."""
        held_out = self.validation_indices
        return None if held_out is None or len(held_out) == 0 else np.asarray(held_out)

    @torch.no_grad()
    def get_delta_posterior(self, adata=None, indices=None, grid_size: int = GRID_SIZE) -> dict[str, np.ndarray]:
        """The posterior of δ per gene (× batch / label group) in closed form on a grid, given the fitted networks:
        q*(δ) ∝ Beta(δ; α, β) · Π_n [δ·NB(x_ng) + (1 − δ)·ZINB(x_ng)], each cell decoded at the posterior mean of z
        with its observed library. Judged on ``indices`` of ``adata`` (default: :meth:`evidence_indices` of the
        training AnnData); in the gene-batch / gene-label modes each group's δ on that group's cells.
        Returns ``prob_zero_inflated``, ``log10_bayes_factor``, ``log10_odds``, ``mean``, ``var``, the moment-matched
        ``alpha`` / ``beta`` (all (G, n_groups)), ``delta`` (grid), ``log_likelihood`` (G, n_groups, K) and
        ``n_cells`` (cells per group used). Not for the gene-cell mode (δ per cell: see :meth:`get_alphas_betas`)."""
        if self.module.zero_inflation == "gene-cell":
            raise ValueError("In the gene-cell mode δ is per cell; its posterior is the variational one.")
        if adata is None and indices is None:
            indices = self.evidence_indices()
        alpha_prior, beta_prior = (float(t[0]) for t in self.module.prior_params())
        delta, log_mass = delta_grid(alpha_prior, beta_prior, grid_size)
        log_lik, n_cells = self._grid_log_likelihood(delta, adata, indices)
        return summarize(log_lik, log_mass, delta) | {"delta": delta, "log_likelihood": log_lik, "n_cells": n_cells}

    def _grid_log_likelihood(self, delta: np.ndarray, adata=None, indices=None) -> tuple[np.ndarray, np.ndarray]:
        """Σ_n log[δ_k·NB(x_ng) + (1 − δ_k)·ZINB(x_ng)] (up to a δ-free term) over each group's cells among
        ``indices``, each decoded at the posterior mean of z: (G, n_groups, K), and the cells per group."""
        mode = self.module.zero_inflation
        log_lik = torch.zeros(len(self._group_names()), self.data.n_genes, len(delta), dtype=torch.float64)
        n_cells = np.zeros(len(self._group_names()), dtype=int)
        for batch in self._batches(adata, indices):
            inf = self.module.inference(batch)
            gen = self.module.generative(inf["z_mean"], inf["log_library"], batch.batch, batch.label)
            dropout = D.floored_dropout(gen["zi_logits"], self.module.minimal_dropout)
            ratio = entry_log_ratio(batch.x, torch.exp(gen["log_mu"]), gen["theta"], dropout)
            group = {"gene-batch": batch.batch, "gene-label": batch.label}.get(mode, torch.zeros_like(batch.batch))
            for g in torch.unique(group).tolist():
                rows = group == g
                log_lik[g] += grid_log_likelihood(ratio[rows], delta).cpu()
                n_cells[g] += int(rows.sum())
        return log_lik.permute(1, 0, 2).numpy(), n_cells

    def train(self, *args, **kwargs) -> None:
        """:meth:`BaseModel.train`, then q(δ) fitted to convergence given the trained networks
        (:meth:`fit_delta_posterior`): every gene's P(ZI) = q(δ < ½) is then an optimum of the ELBO, not wherever
        Adam had taken its Beta parameters when training stopped."""
        super().train(*args, **kwargs)
        if self.module.zero_inflation != "gene-cell":
            self.fit_delta_posterior()

    @torch.no_grad()
    def fit_delta_posterior(self, max_cells: int = MAX_FIT_CELLS, grid_size: int = FIT_GRID_SIZE, seed: int = 0
                            ) -> None:
        """The coordinate update of q(δ) given the networks: set each gene's (× group's) Beta(α, β) to the one that
        maximises the ELBO's δ part, E_q[Σ_n log(δ·NB + (1 − δ)·ZINB)] − KL(q(δ) ‖ p(δ)), over the training cells
        (each decoded at the posterior mean of z; at most ``max_cells`` of them, a seeded sample whose sum is scaled
        to the whole training set). See :func:`scvi_core.zi._delta_posterior.best_beta` and docs/models.md, "Training
        until q(δ) has learnt". Not for the gene-cell mode, where q(δ | z) is a network."""
        if self.module.zero_inflation == "gene-cell":
            raise ValueError("In the gene-cell mode q(δ | z) is a network; it is trained with the others.")
        trained_on = np.arange(self.data.n_cells) if self.train_indices is None else np.asarray(self.train_indices)
        cells = trained_on if len(trained_on) <= max_cells else np.sort(
            np.random.default_rng(seed).choice(trained_on, max_cells, replace=False))
        self.module.eval()
        log_lik, n_cells = self._grid_log_likelihood(grid_centres(grid_size), indices=cells)
        whole = np.bincount(self._group_codes(self.data)[trained_on], minlength=len(n_cells))  # what the sample is for
        log_lik = log_lik * (whole / np.maximum(n_cells, 1))[None, :, None]
        alpha_prior, beta_prior = (float(t[0]) for t in self.module.prior_params())
        alpha, beta = (t.cpu().numpy() for t in self.module.posterior_params())
        shape = alpha.shape
        alpha, beta = best_beta(log_lik.reshape(*shape, grid_size), alpha_prior, beta_prior,
                                self.module.posterior_scale, start=(alpha, beta))
        self.module.set_posterior_params(torch.as_tensor(alpha), torch.as_tensor(beta))

    @torch.no_grad()
    def expected_counts(self, batch, decoded: tuple[dict, dict] | None = None) -> torch.Tensor:
        """E[x_ng] under the fitted model at the posterior mean of z: μ_ng·(1 − (1 − δ̄_g)·π'_ng), δ̄ = E_q[δ].
        ``decoded``: the batch's inference and generative outputs at the posterior mean, when the caller has them."""
        if decoded is None:
            inf = self.module.inference(batch)
            decoded = inf, self.module.generative(inf["z_mean"], inf["log_library"], batch.batch, batch.label)
        inf, gen = decoded
        alpha, beta = self.module.posterior_params(inf["z_mean"])
        delta = self.module.per_cell(alpha / (alpha + beta), batch)
        dropout = D.floored_dropout(gen["zi_logits"], self.module.minimal_dropout)
        return torch.exp(gen["log_mu"]) * (1 - (1 - delta) * dropout)

    @torch.no_grad()
    def get_nb_zinb_check(self, adata=None, max_cells: int = MAX_CELLS, seed: int = 0) -> dict:
        """The NB vs ZINB check (:mod:`scvi_core.zi._check`), a second opinion beside AutoZI's posterior: an NB
        and a ZINB with the model's expected counts as mean, refitted per gene (× batch / label group, on that
        group's cells; at most ``max_cells`` of them, a seeded sample) and compared by their Schwarz Bayes factor.
        Returns ``log10_bayes_factor``, ``prob_zero_inflated`` (with the prior odds of the Beta(α, β) prior),
        ``excess_zero_fraction`` (π̂) and the two fits (``dispersion``, the NB's θ̂; ``nb_scale``, ``zinb_scale``,
        ``zinb_dispersion``: see :class:`~scvi_core.zi._check.GeneEvidence`), all (G, n_groups), and ``n_cells``.
        A group with no cells keeps the prior (Bayes factor 0). In the gene-cell mode one check per gene, on all
        cells."""
        data = self._data_for(adata)
        codes = self._group_codes(data)
        alpha_prior, beta_prior = (float(t[0]) for t in self.module.prior_params())
        prior_odds = float(log10_odds_zero_inflated(alpha_prior, beta_prior))
        rng = np.random.default_rng(seed)
        n_groups = len(self._group_names())
        out = {k: np.zeros((data.n_genes, n_groups)) for k in ("log10_bayes_factor", *CHECK_FITS)}
        out["prob_zero_inflated"] = np.full((data.n_genes, n_groups), 1.0 / (1.0 + 10.0 ** -prior_odds))
        n_cells = np.zeros(n_groups, dtype=int)
        for group in range(n_groups):
            cells = np.flatnonzero(codes == group)
            if len(cells) > max_cells:
                cells = np.sort(rng.choice(cells, max_cells, replace=False))
            if len(cells) == 0:
                continue
            parts = [(batch.x, self.expected_counts(batch)) for batch in self._batches(adata, cells)]
            evidence = gene_evidence(torch.cat([x for x, _ in parts]).cpu(), torch.cat([m for _, m in parts]).cpu())
            out["log10_bayes_factor"][:, group] = evidence.log10_bayes_factor
            out["prob_zero_inflated"][:, group] = evidence.prob_zero_inflated(prior_odds)
            for key in CHECK_FITS:
                out[key][:, group] = getattr(evidence, key)
            n_cells[group] = evidence.n_cells
        return out | {"n_cells": n_cells}

    @torch.no_grad()
    def get_zero_inflation_table(
        self, threshold: float = 0.5, min_log10_bf: float = DEFAULT_MIN_LOG10_BF, adata=None,
        posterior: str = "variational", check: bool = True,
    ) -> pd.DataFrame:
        """One row per gene (per gene × batch / label in those modes).

        **AutoZI's answer** (the seed's): ``alpha_posterior``, ``beta_posterior`` of q(δ) = Beta(α, β),
        ``prob_zero_inflated`` P(ZI) = q(δ < ½), ``log10_bayes_factor`` (how far the data moved the odds from the
        Beta(α, β) prior's), ``call`` (zero-inflated / not zero-inflated / undetermined) and ``is_zero_inflated``
        (P(ZI) > threshold). ``posterior="variational"`` (default): the trained q(δ), as AutoZI and scvi-tools
        answer; ``posterior="grid"``: δ's exact posterior on a grid given the fitted networks
        (:meth:`get_delta_posterior`), judged on the held-out cells of training (all cells of ``adata`` when one is
        given, or when there are none), ``alpha_posterior`` / ``beta_posterior`` then the Beta of its mean and
        variance. In the gene-cell mode q(δ | z_n) is per cell: α, β and P(ZI) are averaged over cells and
        ``fraction_cells_zero_inflated`` is added (``posterior="grid"`` is not available there).

        **The NB vs ZINB check** (``check=True``; :meth:`get_nb_zinb_check`), a different question under its own
        name: ``nb_zinb_check_prob_zero_inflated``, ``nb_zinb_check_log10_bayes_factor``,
        ``nb_zinb_check_excess_zero_fraction`` (π̂), ``nb_zinb_check_call``, and its fits (``…_dispersion``,
        ``…_nb_scale``, ``…_zinb_scale``, ``…_zinb_dispersion``, which the gene detail draws).

        Counts: ``mean_count``, ``observed_zero_fraction``, the zero fractions expected under the fitted NB and
        under the fitted ZINB component (averaged over the group's cells, at the posterior mean of z), ``n_cells``.
        ``table.attrs``: the prior, threshold, ``posterior``, ``evidence_cells`` (cells that judged AutoZI's
        posterior) and ``methods`` (column → the method that made it)."""
        if posterior not in POSTERIOR_METHODS:
            raise ValueError(f"posterior must be one of {', '.join(map(repr, POSTERIOR_METHODS))}; got {posterior!r}.")
        if posterior == "grid" and self.module.zero_inflation == "gene-cell":
            raise ValueError("In the gene-cell mode δ is per cell: only the variational posterior exists.")
        stats = self._zero_statistics(threshold, adata)
        groups = self._group_names()
        n_genes, n_groups = self.data.n_genes, len(groups)
        params = self.get_alphas_betas()
        alpha_prior, beta_prior = float(params["alpha_prior"][0]), float(params["beta_prior"][0])
        if self.module.zero_inflation == "gene-cell":
            n_cells = np.maximum(stats["n_cells"], 1)
            alpha, beta = stats["alpha_sum"] / n_cells, stats["beta_sum"] / n_cells
            prob = np.where(stats["n_cells"] > 0, stats["prob_sum"] / n_cells, prob_zero_inflated(alpha_prior,
                                                                                                  beta_prior))
            odds = np.log10(np.clip(prob, 1e-300, None)) - np.log10(np.clip(1 - prob, 1e-300, None))
            bf = odds - log10_odds_zero_inflated(alpha_prior, beta_prior)
            how, evidence_cells = "variational q(δ | z), averaged over all cells", int(stats["n_cells"].sum())
        elif posterior == "variational":
            alpha = params["alpha_posterior"].reshape(n_genes, n_groups)
            beta = params["beta_posterior"].reshape(n_genes, n_groups)
            prob = prob_zero_inflated(alpha, beta)
            bf = log10_bayes_factor(alpha, beta, alpha_prior, beta_prior)
            how, evidence_cells = "variational q(δ) as trained", int(stats["n_cells"].sum())
        else:
            post = self.get_delta_posterior(adata=adata, indices=None if adata is None else np.arange(adata.n_obs))
            alpha, beta = post["alpha"], post["beta"]
            prob, bf = post["prob_zero_inflated"], post["log10_bayes_factor"]
            held_out = adata is None and self.evidence_indices() is not None
            how = f"grid posterior given the fitted networks, {'held-out' if held_out else 'all'} cells"
            evidence_cells = int(post["n_cells"].sum())
        n_cells = np.maximum(stats["n_cells"], 1)
        columns = {
            "gene": np.repeat(self.data.gene_names, n_groups),
            "alpha_posterior": alpha.ravel(),
            "beta_posterior": beta.ravel(),
            "prob_zero_inflated": prob.ravel(),
            "log10_bayes_factor": bf.ravel(),
        }
        if check:
            checked = self.get_nb_zinb_check(adata)
            for key in ("prob_zero_inflated", "log10_bayes_factor", *CHECK_FITS):
                columns[CHECK_PREFIX + key] = checked[key].ravel()
        table = pd.DataFrame(columns | {
            "mean_count": (stats["count_sum"] / n_cells).ravel(),
            "observed_zero_fraction": (stats["zeros"] / n_cells).ravel(),
            "expected_zero_fraction_nb": (stats["nb_zero"] / n_cells).ravel(),
            "expected_zero_fraction_zinb": (stats["zinb_zero"] / n_cells).ravel(),
            "n_cells": np.broadcast_to(stats["n_cells"], (n_genes, n_groups)).ravel(),
        })
        if self.module.zero_inflation == "gene-cell":
            table["fraction_cells_zero_inflated"] = (stats["cells_zi"] / n_cells).ravel()
        table = apply_threshold(table, threshold, min_log10_bf)
        first = [c for c in (*AUTOZI_COLUMNS, *CHECK_COLUMNS) if c in table.columns]
        table = table[["gene", *first, *(c for c in table.columns if c != "gene" and c not in first)]]
        table.attrs.update(alpha_prior=alpha_prior, beta_prior=beta_prior, zero_inflation=self.module.zero_inflation,
                           posterior=how, evidence_cells=evidence_cells,
                           methods=column_methods(table.columns, posterior))
        if n_groups > 1:
            table.insert(1, self.group_key or "group", np.tile(groups, n_genes))
        return table

    def _zero_statistics(self, threshold: float, adata) -> dict[str, np.ndarray]:
        """Per (gene, group) sums over cells: counts, observed zeros, expected NB / ZINB zeros, and in the
        gene-cell mode α, β, P(ZI) and cells with P(ZI) > threshold."""
        n_groups = len(self._group_names())
        shape = (self.data.n_genes, n_groups)
        sums = {k: np.zeros(shape) for k in ("count_sum", "zeros", "nb_zero", "zinb_zero", "alpha_sum", "beta_sum",
                                             "prob_sum", "cells_zi")}
        n_cells = np.zeros(n_groups)
        mode = self.module.zero_inflation
        for batch in self._batches(adata):
            group = {"gene-batch": batch.batch, "gene-label": batch.label}.get(mode, torch.zeros_like(batch.batch))
            inf = self.module.inference(batch)
            gen = self.module.generative(inf["z_mean"], inf["log_library"], batch.batch, batch.label)
            nb_zero = torch.exp(D.log_nb_zero(torch.exp(gen["log_mu"]), gen["theta"]))
            pi = D.floored_dropout(gen["zi_logits"], self.module.minimal_dropout)
            per_cell = {
                "count_sum": batch.x,
                "zeros": (batch.x == 0).float(),
                "nb_zero": nb_zero,
                "zinb_zero": pi + (1 - pi) * nb_zero,
            }
            if mode == "gene-cell":
                alpha, beta = self.module.posterior_params(inf["z_mean"])
                prob = torch.as_tensor(prob_zero_inflated(alpha.cpu().numpy(), beta.cpu().numpy()))
                per_cell |= {"alpha_sum": alpha, "beta_sum": beta, "prob_sum": prob, "cells_zi": (prob > threshold)}
            group_cpu = group.cpu()
            for key, value in per_cell.items():
                summed = torch.zeros(n_groups, value.shape[1], dtype=torch.float64)
                summed.index_add_(0, group_cpu, value.double().cpu())
                sums[key] += summed.T.numpy()
            n_cells += np.bincount(group_cpu.numpy(), minlength=n_groups)
        sums["n_cells"] = n_cells[None, :]
        return sums

    # ---- likelihood with δ, for the marginal likelihood and sampling -------------------------------------------
    def _sample_delta(self, z: torch.Tensor, sample_shape=()) -> tuple[torch.Tensor, torch.distributions.Beta]:
        alpha, beta = self.module.posterior_params(z)
        q = torch.distributions.Beta(alpha, beta)
        return q.sample(sample_shape).clamp(1e-7, 1 - 1e-7), q

    def _log_px(self, batch, gen, inf) -> torch.Tensor:
        """Gene-cell mode: δ_n is local, so its importance ratio p(δ)/q(δ|z) joins the per-cell weight."""
        delta, q = self._sample_delta(inf["z"])
        alpha_p, beta_p = self.module.prior_params()
        ratio = torch.distributions.Beta(alpha_p, beta_p).log_prob(delta) - q.log_prob(delta)
        return self.module.mixture_log_likelihood(batch, gen, delta) + ratio.sum(-1)

    @torch.no_grad()
    def get_marginal_ll(self, adata=None, indices=None, n_mc_samples: int = 100) -> float:
        """Importance-sampling estimate of log p(X) / N (higher is better). With a global δ the estimate is made for
        the whole dataset at once (one δ draw shared by all cells per sample, as δ couples them):
        log p(X) ≈ logsumexp_k[Σ_n log w_nk + Σ_g log p(δ_k)/q(δ_k)] − log K."""
        if self.module.zero_inflation == "gene-cell":
            return super().get_marginal_ll(adata, indices, n_mc_samples)
        deltas, q = self._sample_delta(None, (n_mc_samples,))
        alpha_p, beta_p = self.module.prior_params()
        totals = (torch.distributions.Beta(alpha_p, beta_p).log_prob(deltas) - q.log_prob(deltas))
        totals = totals.reshape(n_mc_samples, -1).sum(-1).double()
        n_cells = 0
        for batch in self._batches(adata, indices):
            for k in range(n_mc_samples):
                delta = self.module.per_cell(deltas[k], batch)
                log_px = lambda b, gen, inf, d=delta: self.module.mixture_log_likelihood(b, gen, d)  # noqa: E731
                totals[k] += self._log_importance_weight(batch, log_px).sum().double()
            n_cells += batch.size
        return float((torch.logsumexp(totals, 0) - np.log(n_mc_samples)) / n_cells)

    def _sample_counts(self, batch, gen, inf) -> torch.Tensor:
        """Respects δ: each entry follows the NB with probability δ_g (m_ng ~ Bernoulli(δ_g)), else the ZINB
        component with its floored dropout."""
        delta, _ = self._sample_delta(inf["z"])
        delta = self.module.per_cell(delta, batch)
        x = D.sample_nb(torch.exp(gen["log_mu"]), gen["theta"])
        pi = D.floored_dropout(gen["zi_logits"], self.module.minimal_dropout)
        follows_nb = torch.rand_like(x) < delta
        extra_zero = torch.rand_like(x) < pi
        return torch.where(~follows_nb & extra_zero, 0.0, x)
