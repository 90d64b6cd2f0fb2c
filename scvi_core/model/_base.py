"""What SCVI and AUTOZI share as user-facing models: registration, training, results (save and load:
:mod:`._save_load`).

Sign conventions of the evaluation methods (stated because the reference's docstrings get them wrong):
- ``get_elbo()``: the evidence lower bound per cell, **higher is better** (a negative number):
  mean_n[log p(x_n|z_n) − KL_local,n] − KL_global / N.
- ``get_reconstruction_error()``: ``{"reconstruction_loss": mean_n[−log p(x_n|z_n)]}``, a positive negative
  log-likelihood, **lower is better**.
- ``get_marginal_ll()``: importance-sampled log p(x_n) per cell, **higher is better**.
"""

from __future__ import annotations

import inspect
import threading
import warnings
from collections.abc import Callable
from dataclasses import fields, replace
from functools import partial

import numpy as np
import pandas as pd
import torch

from .. import de
from .. import distributions as D
from ..data import CountData, registry_of, setup_anndata
from ..train import (
    StopInfo,
    TrainingEvent,
    TrainSettings,
    check_devices,
    evaluate,
    is_data_parallel,
    resolve_device,
    train_module,
    train_on_devices,
)
from ._save_load import SaveLoadMixin

RESULT_BATCH_SIZE = 1024


FILLED_FROM_DATA = ("n_genes", "n_batch", "n_labels", "library_log_means", "library_log_vars")
"""Arguments of a module that its model fills in from the registered data, not the user."""


def module_parameters(module_class: type, leave_out: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    """The keyword parameters of ``module_class`` and of the modules it extends (its ``**kwargs`` hand them on),
    base class first, less those filled in from the data and ``leave_out``: the one definition of a model's
    arguments and their defaults, which the model's signature shows."""
    found: dict[str, inspect.Parameter] = {}
    for cls in reversed(module_class.__mro__):
        if "__init__" not in vars(cls) or not issubclass(cls, torch.nn.Module) or cls is torch.nn.Module:
            continue
        for parameter in inspect.signature(cls.__init__).parameters.values():
            given_by_user = parameter.name not in (*FILLED_FROM_DATA, *leave_out)
            if parameter.default is not inspect.Parameter.empty and given_by_user:
                found[parameter.name] = parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY)
    return list(found.values())


def train_signature() -> inspect.Signature:
    """``BaseModel.train``'s signature as a user reads it: :class:`~scvi_core.train.TrainSettings`' fields, then
    where and how it runs."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    own = inspect.signature(BaseModel.train).parameters
    return inspect.Signature([own["self"],
                              *(inspect.Parameter(f.name, keyword, default=f.default, annotation=f.type)
                                for f in fields(TrainSettings)),
                              *(p for name, p in own.items() if name not in ("self", "settings"))])


class BaseModel(SaveLoadMixin):
    """Common API. Subclasses set ``module_class`` and ``latent_key`` and may add results. A model's arguments are
    its module's (:func:`module_parameters`: ``SCVI(adata, n_latent=…)`` builds ``VAE(n_genes, …, n_latent=…)``),
    less ``fixed_module_args``, which the model decides."""

    module_class: type
    fixed_module_args: tuple[str, ...] = ()
    latent_key = "X_scVI"
    default_lr = 1e-3
    """The learning rate of ``train()`` when none is given."""
    starts_at_gene_shares = False
    """Whether the decoder starts at each gene's average share of the counts (its frequency bias at log share)
    instead of torch's random bias: training then refines cell-to-cell differences instead of first learning gene
    means, and an all-zero gene starts, and stays, at ρ ≈ 0 (which keeps AutoZI from mistaking a not-yet-fitted
    mean for evidence of zero inflation). Off for SCVI: scvi-tools starts at random, and a start of our own moved
    the trained models, and so their DE answers, away from scvi-tools' (docs/models.md)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        adata = inspect.Parameter("adata", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        cls.__signature__ = inspect.Signature([adata, *module_parameters(cls.module_class, cls.fixed_module_args)])

    def __init__(self, adata, **params):
        arguments = inspect.signature(type(self)).bind(adata, **params)  # TypeError on an argument it does not take
        arguments.apply_defaults()
        self.adata = adata
        self.registry = registry_of(adata)
        self.data = CountData(adata, self.registry)
        self.params = {name: value for name, value in arguments.arguments.items() if name != "adata"}
        self.module = self._initial_module(seed=0)
        self._initial_seed = 0
        """The seed the untrained weights were drawn from: ``train(seed=…)`` draws them again from its own."""
        self.history = pd.DataFrame()
        self.stop_info: StopInfo | None = None
        """Why the last training ended (None before training)."""
        self.is_trained = False
        self.train_indices = self.validation_indices = None
        self.device = torch.device("cpu")

    def _initial_module(self, seed: int) -> torch.nn.Module:
        """The module with its weights drawn from ``seed``: the same settings and seed always start from the same
        weights (reproducible runs), and other seeds from other weights, as scvi-tools' seed does."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return self._build_module()

    def _check_params(self) -> None:
        """Refuse settings that cannot work, before any weight is built, saying what would."""
        p = self.params
        for name in ("n_hidden", "n_latent", "n_layers"):
            if not (isinstance(p[name], int) and p[name] >= 1):
                raise ValueError(f"{name} must be a whole number ≥ 1; got {p[name]!r}.")
        if not 0 <= p["dropout_rate"] < 1:
            raise ValueError(f"dropout_rate must lie in [0, 1); got {p['dropout_rate']!r}.")
        for name in ("dispersion", "zero_inflation"):
            if p.get(name) == "gene-label" and self.registry.labels_key is None:
                raise ValueError(f"{name}='gene-label' needs a labels_key: call setup_anndata(adata, labels_key=...).")
            if p.get(name) == "gene-batch" and self.registry.batch_key is None:
                raise ValueError(f"{name}='gene-batch' needs a batch_key: call setup_anndata(adata, batch_key=...).")

    def _build_module(self):
        self._check_params()
        n_batch, n_labels = len(self.registry.batch_categories), len(self.registry.label_categories)
        means, variances = self.data.library_prior(n_batch)
        module = self.module_class(
            self.data.n_genes,
            n_batch=n_batch,
            n_labels=n_labels,
            library_log_means=means,
            library_log_vars=variances,
            **self.params,
        )
        if not self.starts_at_gene_shares:
            return module
        totals = self.data.gene_totals()
        share = totals / totals.sum()
        with torch.no_grad():
            module.decoder.frequency.bias.copy_(torch.as_tensor(np.log(share + 1e-8), dtype=torch.float32))
        return module

    @classmethod
    def setup_anndata(cls, adata, layer: str | None = None, batch_key: str | None = None,
                      labels_key: str | None = None) -> None:
        """Check that ``adata`` holds raw counts and record where they are (see :func:`scvi_core.data.setup_anndata`)."""
        setup_anndata(adata, layer=layer, batch_key=batch_key, labels_key=labels_key)

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        state = "trained" if self.is_trained else "not trained"
        return f"{type(self).__name__}({settings}) on {self.data.n_cells} cells × {self.data.n_genes} genes, {state}"

    # ---- training -------------------------------------------------------------------------------------------
    def train(self, *, device: str = "auto", callback: Callable[[TrainingEvent], None] | None = None,
              stop_event: threading.Event | None = None, devices: int = 1, plan_kwargs: dict | None = None,
              **settings) -> None:
        """Fit the model. ``settings`` are :class:`~scvi_core.train.TrainSettings`' fields (its docstring says what
        each does; this method's signature lists them with their defaults).

        By default training stops on its own where the fit to held-out cells is best (early stopping restores the
        best epoch's weights, also when ``max_epochs`` is reached first). For a fixed number of epochs:
        ``train(max_epochs=N, early_stopping=False)``. ``lr=None``: the model's ``default_lr`` (SCVI 5e-3, which
        early stopping makes safe and fast; AUTOZI 1e-3). ``self.stop_info`` says why training ended (``.reason``,
        ``.kept_epoch``, ``.message``).
        ``callback(event)`` receives progress and per-epoch metrics; setting ``stop_event`` ends training within
        one minibatch, keeping the weights learnt so far. ``self.history`` holds one row per epoch.
        ``devices=N`` trains on N processes with DistributedDataParallel (N GPUs, or N CPU processes with
        ``device="cpu"``), ``batch_size`` cells each per step; it pays only for large data
        (:mod:`scvi_core.train._data_parallel`; ``python -m scvi_core.torchrun`` on a cluster).

        As in scvi-tools: ``plan_kwargs`` may give ``lr`` and ``n_epochs_kl_warmup``; ``train_size=1.0`` trains
        without validation cells, and then without early stopping unless it was asked for (a warning says so); a
        second ``train()`` goes on from the weights reached, its epochs appended to ``self.history``. ``seed``
        decides the cells held out, the minibatch order, the sampling noise and, in a first ``train()``, the initial
        weights (as scvi-tools' seed does: runs of different seeds then show how much the answer depends on it)."""
        plan = dict(plan_kwargs or {})
        unknown = set(plan) - {"lr", "n_epochs_kl_warmup"}
        if unknown:
            raise TypeError(f"plan_kwargs may hold lr and n_epochs_kl_warmup; got {sorted(unknown)}.")
        settings = {**plan, **settings}
        unknown = set(settings) - {f.name for f in fields(TrainSettings)}
        if unknown:
            raise TypeError(f"train() got unknown argument(s) {sorted(unknown)}; it takes "
                            f"{[f.name for f in fields(TrainSettings)]} and device, callback, stop_event, devices, "
                            "plan_kwargs.")
        asked_to_stop_early = "early_stopping" in settings
        settings = TrainSettings(**settings)
        settings = replace(settings, lr=self.default_lr if settings.lr is None else settings.lr)
        if settings.early_stopping and not asked_to_stop_early and settings.train_size >= 1:
            warnings.warn("train_size=1.0 leaves no validation cells, which early stopping watches: training runs "
                          "all max_epochs.", stacklevel=2)
            settings = replace(settings, early_stopping=False)
        if not self.is_trained and settings.seed != self._initial_seed:  # a first training draws its own start
            self.module.load_state_dict(self._initial_module(settings.seed).state_dict())
            self._initial_seed = settings.seed
        self.device = resolve_device(device)
        check_devices(devices, self.device)
        train = train_module if devices == 1 or is_data_parallel() else partial(train_on_devices, devices=devices)
        result = train(self.module, self.data, settings, device=self.device, callback=callback, stop_event=stop_event)
        if self.is_trained and not self.history.empty:  # a further train(): its epochs follow the earlier ones
            result.history["epoch"] += int(self.history["epoch"].max())
            self.history = pd.concat([self.history, result.history], ignore_index=True)
        else:
            self.history = result.history
        self.stop_info = result.stop
        self.train_indices, self.validation_indices = result.train_indices, result.validation_indices
        self.is_trained = True

    # ---- passes over the data -----------------------------------------------------------------------------
    def _data_for(self, adata) -> CountData:
        if adata is None or adata is self.adata:
            return self.data
        if list(map(str, adata.var_names)) != self.data.gene_names:
            raise ValueError("This AnnData has different genes (or gene order) than the one the model was trained on.")
        return CountData(adata, self.registry)

    def _batches(self, adata=None, indices=None):
        data = self._data_for(adata)
        indices = np.arange(data.n_cells) if indices is None else np.asarray(indices)
        self.module.eval()
        return data.minibatches(indices, RESULT_BATCH_SIZE, self.device)

    @torch.no_grad()
    def get_latent_representation(self, adata=None, indices=None, give_mean: bool = True) -> np.ndarray:
        """The posterior mean of z_n (or one sample with ``give_mean=False``): cells × n_latent.
        Store it as ``adata.obsm["X_scVI"]`` for scanpy's neighbours / UMAP."""
        out = []
        for batch in self._batches(adata, indices):
            inf = self.module.inference(batch)
            out.append((inf["z_mean"] if give_mean else inf["z"]).cpu().numpy())
        return np.concatenate(out)

    def _transform_codes(self, transform_batch) -> list[int | None]:
        if transform_batch is None:
            return [None]
        many = isinstance(transform_batch, list | tuple | np.ndarray | pd.Index)
        names = [str(b) for b in (transform_batch if many else [transform_batch])]  # categories are kept as text
        unknown = [b for b in names if b not in self.registry.batch_categories]
        if unknown:
            raise ValueError(f"Unknown batch {unknown}; known batches: {self.registry.batch_categories}.")
        return [self.registry.batch_categories.index(b) for b in names]

    @torch.no_grad()
    def get_normalized_expression(
        self,
        adata=None,
        indices=None,
        gene_list: list[str] | None = None,
        library_size: float | str = 1.0,
        n_samples: int = 1,
        transform_batch: str | list[str] | None = None,
        deterministic: bool = True,
        return_numpy: bool = False,
    ):
        """Denoised expression: ρ_n · library_size (rows sum to library_size over all genes), or the expected count
        μ_n with ``library_size="latent"``. Deterministic (decodes the posterior mean of z) unless
        ``deterministic=False``, which averages ``n_samples`` draws of z. ``transform_batch`` decodes every cell as if
        it came from the given batch(es) (averaged): batch-corrected expression."""
        data = self._data_for(adata)
        genes = np.arange(data.n_genes) if gene_list is None else self._gene_positions(gene_list)
        codes = self._transform_codes(transform_batch)
        draws = 1 if deterministic else n_samples
        out = []
        for batch in self._batches(adata, indices):
            total = 0.0
            for code in codes:
                batch_codes = batch.batch if code is None else torch.full_like(batch.batch, code)
                for _ in range(draws):
                    inf = self.module.inference(batch)
                    z = inf["z_mean"] if deterministic else inf["z"]
                    gen = self.module.generative(z, inf["log_library"], batch_codes, batch.label)
                    if library_size == "latent":
                        value = torch.exp(gen["log_mu"])
                    else:
                        value = torch.exp(gen["log_rho"]) * library_size
                    total = total + value[:, genes]
            out.append((total / (len(codes) * draws)).cpu().numpy())
        values = np.concatenate(out)
        if return_numpy:
            return values
        obs_names = self._obs_names(adata, indices)
        return pd.DataFrame(values, index=obs_names, columns=[self.data.gene_names[g] for g in genes])

    def _obs_names(self, adata, indices):
        names = (self.adata if adata is None else adata).obs_names
        return names if indices is None else names[np.asarray(indices)]

    def _gene_positions(self, gene_list) -> np.ndarray:
        lookup = {g: i for i, g in enumerate(self.data.gene_names)}
        missing = [g for g in gene_list if g not in lookup]
        if missing:
            raise ValueError(f"Genes not in the model: {missing[:5]}{' …' if len(missing) > 5 else ''}")
        return np.array([lookup[g] for g in gene_list], dtype=np.int64)

    # ---- differential expression ---------------------------------------------------------------------------
    def differential_expression(self, adata=None, groupby: str | None = None, group1=None, group2=None,
                                idx1=None, idx2=None, mode: str = "change", delta: float | None = 0.25,
                                fdr_target: float = 0.05, batch_correction: bool = False, n_samples: int = 5000,
                                max_cells_per_group: int | None = 1000, seed: int = 0, method: str = "scvi",
                                progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
        """Which genes differ between two groups of cells: a DataFrame indexed by gene (scvi-tools' columns).

        Groups: ``groupby`` (an obs column) with ``group1`` (a category or a list of categories, each compared in
        turn; None: every category, i.e. the markers of every cluster) against ``group2`` (a category or a list,
        taken together; None: all other cells), or ``idx1`` / ``idx2`` (boolean masks, cell positions or pandas
        query strings of obs such as ``"cell_type == 'B'"``; ``idx2`` None: the rest). Several comparisons are
        concatenated, with ``comparison``, ``group1``, ``group2`` columns.

        ``method="scvi"``: scVI's change mode as scvi-tools 1.4 computes it: paired posterior draws of single cells'
        normalised expression, "is a random cell of group 1 at least δ above or below one of group 2?".
        ``method="group-mean"``: this project's test of the groups' mean expression, "is group 1's mean at least δ
        above or below group 2's?" (cells are its replicates: for clusters, not for donors or conditions).

        ``mode="change"``: ``proba_de`` = max(P(LFC ≥ δ), P(LFC ≤ −δ)) (log2, positive = higher in group 1), those
        two tails as ``proba_up`` / ``proba_down``, and ``is_de_fdr_<fdr_target>`` calls the largest top set whose
        posterior expected FDR is ≤ ``fdr_target``; ``bayes_factor`` is the natural-log posterior odds of DE (not a
        p-value), signed by the larger tail. ``delta=None`` estimates δ from the data.
        ``mode="vanilla"``: ``proba_m1`` = P(group 1 > group 2) and its log odds, as in the original scVI.
        ``n_samples``: posterior draws (scvi-tools' 5,000; the group-mean test uses at most 1,000 and is exact given
        them). ``batch_correction=True`` decodes every cell under every batch, so both groups are compared under the
        same batches and a batch spread unevenly across them does not look like DE.
        Each group is subsampled (seeded) to ``max_cells_per_group`` cells (None: all; ``n_cells1`` / ``n_cells2``
        say how many were used); raw-count statistics use every cell. The same ``seed`` gives the same table.
        ``progress(done, total)`` is called after each comparison. The methods: :mod:`scvi_core.de`."""
        return de.differential_expression(
            self, adata, groupby, group1, group2, idx1, idx2, mode, delta, fdr_target, batch_correction, n_samples,
            max_cells_per_group, seed, method, progress)

    # ---- evaluation ---------------------------------------------------------------------------------------
    def _sums(self, adata, indices):
        data = self._data_for(adata)
        indices = np.arange(data.n_cells) if indices is None else np.asarray(indices)
        return evaluate(self.module, data, indices, self.device), len(indices)

    def get_elbo(self, adata=None, indices=None, return_mean: bool = True) -> float | np.ndarray:
        """Evidence lower bound per cell (higher is better); includes AutoZI's global KL divided by N.
        ``return_mean=False``: each cell's, in the order of ``indices``."""
        if not return_mean:
            reconstruction, kl_local, kl_global = self._per_cell_terms(adata, indices)
            return -(reconstruction + kl_local + kl_global / len(reconstruction))
        sums, n = self._sums(adata, indices)
        return -sums.metrics("eval", n)["elbo_eval"]

    def get_reconstruction_error(self, adata=None, indices=None,
                                 return_mean: bool = True) -> dict[str, float | np.ndarray]:
        """``{"reconstruction_loss": mean over cells of −log p(x_n | z_n)}``, as scvi-tools returns it: a positive
        number, lower is better. ``return_mean=False``: each cell's, in the order of ``indices``."""
        if not return_mean:
            return {"reconstruction_loss": self._per_cell_terms(adata, indices)[0]}
        sums, n = self._sums(adata, indices)
        return {"reconstruction_loss": sums.metrics("eval", n)["reconstruction_loss_eval"]}

    @torch.no_grad()
    def _per_cell_terms(self, adata, indices) -> tuple[np.ndarray, np.ndarray, float]:
        """Each cell's −log p(x_n | z_n) and local KL (one draw of z, as the means above use), and the global KL."""
        reconstruction, kl_local, kl_global = [], [], 0.0
        for batch in self._batches(adata, indices):
            terms = self.module(batch)
            reconstruction.append(terms.reconstruction.double().cpu().numpy())
            kl_local.append(terms.kl_local.double().cpu().numpy())
            kl_global = float(terms.kl_global)
        return np.concatenate(reconstruction), np.concatenate(kl_local), kl_global

    @torch.no_grad()
    def get_marginal_ll(self, adata=None, indices=None, n_mc_samples: int = 100) -> float:
        """Importance-sampling estimate of mean_n log p(x_n) with q(z|x) as proposal (higher is better):
        log p(x_n) ≈ logsumexp_k[log p(x_n|z_k) + log p(z_k) − log q(z_k|x_n)] − log K."""
        per_cell = []
        for batch in self._batches(adata, indices):
            weights = torch.stack([self._log_importance_weight(batch) for _ in range(n_mc_samples)])
            per_cell.append(torch.logsumexp(weights, 0) - np.log(n_mc_samples))
        return float(torch.cat(per_cell).mean())

    def _log_importance_weight(self, batch, log_px_fn=None) -> torch.Tensor:
        """log p(x_n|z) + log p(z) − log q(z|x_n) (+ the library's ratio when it is latent) for one z draw."""
        inf = self.module.inference(batch)
        gen = self.module.generative(inf["z"], inf["log_library"], batch.batch, batch.label)
        log_px = (log_px_fn or self._log_px)(batch, gen, inf)
        z, mean, var = inf["z"], inf["z_mean"], inf["z_var"]
        log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
        log_qz = torch.distributions.Normal(mean, var.sqrt()).log_prob(z).sum(-1)
        weight = log_px + log_pz - log_qz
        if self.module.l_encoder is not None:
            prior = torch.distributions.Normal(self.module.library_log_means[batch.batch],
                                               self.module.library_log_vars[batch.batch].sqrt())
            posterior = torch.distributions.Normal(inf["l_mean"], inf["l_var"].sqrt())
            weight = weight + prior.log_prob(inf["log_library"]) - posterior.log_prob(inf["log_library"])
        return weight

    def _log_px(self, batch, gen, inf) -> torch.Tensor:
        return self.module.log_likelihood(batch, gen)

    # ---- generation ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def posterior_predictive_sample(self, adata=None, indices=None, n_samples: int = 1,
                                    gene_list: list[str] | None = None) -> np.ndarray:
        """Counts drawn from p(x_n | z_n), z_n ~ q(z|x_n): cells × genes (× n_samples when n_samples > 1)."""
        genes = None if gene_list is None else torch.as_tensor(self._gene_positions(gene_list))
        out = []
        for batch in self._batches(adata, indices):
            draws = []
            for _ in range(n_samples):
                inf = self.module.inference(batch)
                gen = self.module.generative(inf["z"], inf["log_library"], batch.batch, batch.label)
                x = self._sample_counts(batch, gen, inf)
                draws.append(x if genes is None else x[:, genes])
            out.append(torch.stack(draws, -1).cpu().numpy())
        samples = np.concatenate(out)
        return samples[..., 0] if n_samples == 1 else samples

    def _sample_counts(self, batch, gen, inf) -> torch.Tensor:
        mu = torch.exp(gen["log_mu"])
        if self.module.gene_likelihood == "poisson":
            return torch.poisson(mu)
        x = D.sample_nb(mu, gen["theta"])
        if self.module.gene_likelihood == "zinb":
            x = torch.where(torch.rand_like(mu) < torch.sigmoid(gen["zi_logits"]), 0.0, x)
        return x

    # ---- persistence ----------------------------------------------------------------------------------------
BaseModel.train.__signature__ = train_signature()
