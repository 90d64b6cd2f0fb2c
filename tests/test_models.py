"""SCVI and AUTOZI end to end on small simulated data: training, results, persistence, stopping, divergence."""

import threading

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats
import torch

from scvi_core import AUTOZI, SCVI, TrainingDivergedError, simulate
from scvi_core.zi import ZI

QUICK = {"max_epochs": 2, "batch_size": 64}


@pytest.fixture(scope="module")
def small():
    adata = simulate(n_cells=300, n_genes=60, n_cell_types=3, seed=3)
    adata.obs["label"] = adata.obs["cell_type"]
    return adata


def _registered(adata, cls=SCVI, **keys):
    adata = adata.copy()
    cls.setup_anndata(adata, **keys)
    return adata


@pytest.mark.parametrize("likelihood", ["zinb", "nb", "poisson"])
@pytest.mark.parametrize("dispersion", ["gene", "gene-batch", "gene-label", "gene-cell"])
def test_scvi_every_likelihood_and_dispersion_trains_without_nan(small, likelihood, dispersion):
    adata = _registered(small, batch_key="batch", labels_key="label")
    model = SCVI(adata, gene_likelihood=likelihood, dispersion=dispersion, n_hidden=32)
    model.train(**QUICK)
    assert len(model.history) == 2
    assert np.isfinite(model.history.drop(columns="partial_epoch").to_numpy(dtype=float)).all()
    latent = model.get_latent_representation()
    assert latent.shape == (300, 10) and np.isfinite(latent).all()


@pytest.mark.parametrize("zero_inflation", ["gene", "gene-batch", "gene-label", "gene-cell"])
@pytest.mark.parametrize("dispersion", ["gene", "gene-batch", "gene-label", "gene-cell"])
def test_autozi_every_mode_trains_without_nan(small, zero_inflation, dispersion):
    adata = _registered(small, AUTOZI, batch_key="batch", labels_key="label")
    model = AUTOZI(adata, zero_inflation=zero_inflation, dispersion=dispersion, n_hidden=32)
    model.train(**QUICK)
    assert np.isfinite(model.history["elbo_validation"]).all()
    table = model.get_zero_inflation_table()
    groups = {"gene-batch": 2, "gene-label": 3}.get(zero_inflation, 1)
    assert len(table) == 60 * groups
    assert table["prob_zero_inflated"].between(0, 1).all()


def test_latent_library_uses_per_batch_prior(small):
    adata = _registered(small, batch_key="batch")
    model = SCVI(adata, use_observed_lib_size=False)
    logs = np.log(np.asarray(adata.X.sum(1)).ravel())
    first = adata.obs["batch"].to_numpy() == "batch_1"
    assert model.module.library_log_means[0].item() == pytest.approx(logs[first].mean(), rel=1e-5)
    assert model.module.library_log_vars[0].item() == pytest.approx(logs[first].var(), rel=1e-4)
    model.train(**QUICK)
    assert (model.history["kl_local_train"] > 0).all()


def test_history_has_train_and_validation_and_warmup_reaches_one(small):
    adata = _registered(small)
    model = SCVI(adata, n_hidden=32)
    model.train(max_epochs=6, batch_size=64)
    for mode in ("train", "validation"):
        for term in ("elbo", "reconstruction_loss", "kl_local", "kl_global"):
            assert f"{term}_{mode}" in model.history
    elbo = model.history["elbo_train"]
    recomposed = model.history["reconstruction_loss_train"] + model.history["kl_local_train"]
    np.testing.assert_allclose(elbo, recomposed, rtol=1e-6)
    assert model.history["kl_weight"].iloc[-1] == 1.0
    assert model.history["kl_weight"].is_monotonic_increasing
    assert len(model.train_indices) == 270 and len(model.validation_indices) == 30


def test_same_seed_same_history(small):
    histories = []
    for _ in range(2):
        model = AUTOZI(_registered(small, AUTOZI), n_hidden=32)
        model.train(max_epochs=3, batch_size=64, seed=7)
        histories.append(model.history.drop(columns="seconds"))
    assert histories[0].equals(histories[1])


def test_scvi_starts_its_decoder_as_scvi_tools_does_and_autozi_at_the_gene_shares(small):
    """SCVI's frequency bias is torch's default draw, U(±1/√n_hidden), as in scvi-tools (a start of our own moved the
    trained models and their DE answers away from scvi-tools'); AUTOZI's starts at each gene's log share of the
    counts, so that an all-zero gene starts at ρ ≈ 0."""
    counts = np.asarray(small.X.sum(axis=0)).ravel()
    log_shares = np.log(counts / counts.sum() + 1e-8)
    scvi_bias = SCVI(_registered(small), n_hidden=32).module.decoder.frequency.bias.detach().numpy()
    assert np.abs(scvi_bias).max() <= 1 / np.sqrt(32)
    assert abs(stats.spearmanr(scvi_bias, log_shares)[0]) < 0.4
    autozi_bias = AUTOZI(_registered(small, AUTOZI), n_hidden=32).module.decoder.frequency.bias.detach().numpy()
    np.testing.assert_allclose(autozi_bias, log_shares, rtol=1e-5, atol=1e-5)


def test_the_seed_draws_the_initial_weights_of_a_first_training(small):
    """As scvi-tools' seed does: a first train(seed=s) starts from weights drawn from s (lr 1e-9 keeps them
    there), the same for every model of those settings, and other seeds start elsewhere; a second train() goes on
    from the weights reached."""
    def started_from(seed):
        model = SCVI(_registered(small), n_hidden=32)
        model.train(max_epochs=1, batch_size=64, lr=1e-9, early_stopping=False, seed=seed)
        return model, {name: p.detach().clone() for name, p in model.module.named_parameters()}

    def drawn(seed):
        torch.manual_seed(seed)
        return dict(SCVI(_registered(small), n_hidden=32)._build_module().named_parameters())

    for seed in (0, 5):
        model, weights = started_from(seed)
        for name, expected in drawn(seed).items():
            torch.testing.assert_close(weights[name], expected.detach(), atol=1e-6, rtol=0)
    other = started_from(6)[1]
    assert not torch.allclose(weights["z_encoder.mean.weight"], other["z_encoder.mean.weight"])
    before = weights["z_encoder.mean.weight"]
    model.train(max_epochs=1, batch_size=64, lr=1e-9, early_stopping=False, seed=9)  # goes on: no new draw
    torch.testing.assert_close(model.module.z_encoder.mean.weight.detach(), before, atol=1e-6, rtol=0)


def test_elbo_signs_and_consistency(small):
    adata = _registered(small)
    model = SCVI(adata, n_hidden=32)
    model.train(max_epochs=3, batch_size=64)
    elbo, marginal = model.get_elbo(), model.get_marginal_ll(n_mc_samples=20)
    rec = model.get_reconstruction_error()["reconstruction_loss"]
    assert rec > 0 and elbo < 0
    assert -elbo >= rec  # the ELBO adds a non-negative KL to the reconstruction loss
    assert elbo <= marginal + 1e-3  # the importance-sampled log-likelihood is at least the bound (in expectation)
    azi = AUTOZI(_registered(small, AUTOZI), n_hidden=32)
    azi.train(max_epochs=2, batch_size=64)
    assert np.isfinite(azi.get_marginal_ll(n_mc_samples=5)) and azi.get_marginal_ll(n_mc_samples=5) < 0


def test_normalized_expression_deterministic_and_sums_to_library_size(small):
    adata = _registered(small, batch_key="batch")
    model = SCVI(adata, n_hidden=32)
    model.train(**QUICK)
    first = model.get_normalized_expression()
    np.testing.assert_allclose(first.sum(1), 1.0, rtol=1e-4)
    assert first.equals(model.get_normalized_expression())
    scaled = model.get_normalized_expression(library_size=1e4, gene_list=["gene_00003"], transform_batch="batch_2")
    assert scaled.shape == (300, 1)
    with pytest.raises(ValueError, match="Unknown batch"):
        model.get_normalized_expression(transform_batch="nope")
    # results follow the order of the indices asked for (minibatches once came back sorted, mislabelling rows)
    shuffled = np.random.default_rng(0).permutation(300)[:200]
    picked = model.get_normalized_expression(indices=shuffled)
    assert list(picked.index) == list(adata.obs_names[shuffled])
    np.testing.assert_allclose(picked.to_numpy(), first.to_numpy()[shuffled], rtol=1e-5)
    np.testing.assert_allclose(model.get_latent_representation(indices=shuffled),
                               model.get_latent_representation()[shuffled], rtol=1e-5, atol=1e-6)


def test_posterior_predictive_autozi_respects_delta(small):
    adata = _registered(small, AUTOZI)
    model = AUTOZI(adata, n_hidden=32)
    model.train(**QUICK)
    with torch.no_grad():  # force δ → 1 (plain NB): extra zeros must then vanish from the samples
        model.module.alpha_logit.fill_(12.0)
        model.module.beta_logit.fill_(-12.0)
        model.module.decoder.dropout_logits.bias.fill_(20.0)  # ZINB component: almost always a zero
    as_nb = model.posterior_predictive_sample(n_samples=3)
    with torch.no_grad():
        model.module.alpha_logit.fill_(-12.0)
        model.module.beta_logit.fill_(12.0)
    as_zinb = model.posterior_predictive_sample(n_samples=3)
    assert as_nb.shape == (300, 60, 3)
    assert (as_zinb == 0).mean() > 0.98 > (as_nb == 0).mean()


def test_save_load_round_trip_gives_same_latent(small, tmp_path):
    adata = _registered(small, AUTOZI, batch_key="batch")
    model = AUTOZI(adata, n_hidden=32, alpha_prior=0.3, beta_prior=0.7)
    model.train(**QUICK)
    model.save(tmp_path / "m")
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "m")
    fresh = small.copy()
    loaded = AUTOZI.load(tmp_path / "m", fresh)
    np.testing.assert_allclose(loaded.get_latent_representation(), model.get_latent_representation(), rtol=1e-6)
    assert loaded.history.shape == model.history.shape
    np.testing.assert_allclose(loaded.get_alphas_betas()["beta_prior"], [0.7])
    with pytest.raises(ValueError, match="genes do not match"):
        AUTOZI.load(tmp_path / "m", small[:, :50].copy())
    with pytest.raises(ValueError, match="not SCVI"):
        SCVI.load(tmp_path / "m", small.copy())


def test_stop_event_ends_training_within_one_minibatch(small):
    adata = _registered(small)
    model = SCVI(adata, n_hidden=32)
    stop = threading.Event()
    steps = []

    def callback(event):
        steps.append(event)

    class CountingStop:
        calls = 0

        def is_set(self):
            CountingStop.calls += 1
            if CountingStop.calls == 3:
                stop.set()
            return stop.is_set()

    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    model.train(max_epochs=50, batch_size=32, stop_event=CountingStop(), callback=callback)
    assert CountingStop.calls == 3  # stopped at the check right after the third minibatch
    assert len(model.history) == 1 and bool(model.history["partial_epoch"].iloc[0])
    assert model.is_trained
    changed = any(not torch.equal(before[k], v) for k, v in model.module.state_dict().items())
    assert changed  # the three minibatches of learning are kept


def test_callback_reports_epochs(small):
    events = []
    model = SCVI(_registered(small), n_hidden=32)
    model.train(max_epochs=3, batch_size=64, callback=events.append)
    epochs = [e for e in events if e.kind == "epoch"]
    assert [e.epoch for e in epochs] == [1, 2, 3]
    assert epochs[-1].metrics["elbo_validation"] == pytest.approx(model.history["elbo_validation"].iloc[-1])


def test_divergence_raises_and_keeps_last_good_weights(small):
    model = SCVI(_registered(small), n_hidden=32)

    def poison(event):
        if event.kind == "epoch" and event.epoch == 2:
            with torch.no_grad():
                model.module.decoder.frequency.weight.fill_(float("nan"))

    with pytest.raises(TrainingDivergedError, match="epoch 3"):
        model.train(max_epochs=5, batch_size=64, callback=poison)
    assert all(torch.isfinite(p).all() for p in model.module.parameters())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": 0}, "lr must be"),
        ({"lr": float("nan")}, "lr must be"),
        ({"batch_size": 1}, "batch_size must be"),
        ({"batch_size": 5000}, "larger than the 270 training cells"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"train_size": 1.5}, "train_size"),
        ({"early_stopping": True, "train_size": 1.0}, "validation cells"),
    ],
)
def test_absurd_training_settings_are_refused(small, kwargs, message):
    model = SCVI(_registered(small), n_hidden=32)
    with pytest.raises(ValueError, match=message):
        model.train(**kwargs)


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (SCVI, {"n_latent": 0}, "n_latent"),
        (SCVI, {"dropout_rate": 1.0}, "dropout_rate"),
        (SCVI, {"gene_likelihood": "negative_binomial"}, "gene_likelihood"),
        (SCVI, {"dispersion": "gene-label"}, "labels_key"),
        (AUTOZI, {"alpha_prior": 0.0}, "must be > 0"),
        (AUTOZI, {"alpha_prior": None}, "or neither"),
        (AUTOZI, {"zero_inflation": "cell"}, "zero_inflation must be"),
    ],
)
def test_absurd_model_settings_are_refused(small, cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(_registered(small, cls), **kwargs)


def test_sparse_input_is_not_copied(small):
    adata = _registered(small)
    assert sp.issparse(adata.X)
    model = SCVI(adata)
    assert model.data.matrix is adata.X


def test_dense_input_gives_same_result_as_sparse(small):
    sparse = _registered(small)
    dense = small.copy()
    dense.X = dense.X.toarray()
    SCVI.setup_anndata(dense)
    results = []
    for adata in (sparse, dense):
        model = SCVI(adata, n_hidden=32)
        model.train(max_epochs=2, batch_size=64, seed=1)
        results.append(model.history["elbo_validation"].to_numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5)


@pytest.mark.parametrize("zero_inflation", ["gene", "gene-batch", "gene-label", "gene-cell"])
def test_priors_move_prob_zero_inflation_in_expected_direction(small, zero_inflation):
    """Beta(α, β) with α < β puts prior mass on small δ, i.e. on zero inflation; asymmetric priors are honoured
    in every mode (the reference makes them symmetric in the gene mode)."""
    means = {}
    for name, (a, b) in {"towards_zi": (0.2, 0.9), "towards_nb": (0.9, 0.2)}.items():
        adata = _registered(small, AUTOZI, batch_key="batch", labels_key="label")
        model = AUTOZI(adata, n_hidden=32, alpha_prior=a, beta_prior=b, zero_inflation=zero_inflation)
        params = model.get_alphas_betas()
        assert (params["alpha_prior"][0], params["beta_prior"][0]) == pytest.approx((a, b))
        model.train(max_epochs=5, batch_size=64, lr=1e-2)
        means[name] = model.get_zero_inflation_table()["prob_zero_inflated"].mean()
    assert means["towards_zi"] > means["towards_nb"] + 0.1


def test_a_weakly_informed_genes_p_zi_is_the_users_prior(small):
    """The seed's P(ZI) = q(δ < ½) under the user's Beta(α, β): genes whose counts carry almost no information (a
    count in two cells) keep about the prior's P(ZI) — the figure the Model page shows — and so move with the
    prior in the direction it says, while the expressed genes' answers stay where their counts put them."""
    adata = small.copy()
    x = adata.X.toarray()
    rng = np.random.default_rng(0)
    weak = np.arange(5)
    x[:, weak] = 0
    x[rng.choice(len(x), 2, replace=False)[:, None], weak] = 1  # two counts per gene
    adata.X = sp.csr_matrix(x)
    results = {}
    for a, b in ((0.3, 0.9), (0.5, 0.5), (0.9, 0.3)):
        AUTOZI.setup_anndata(adata)
        model = AUTOZI(adata, n_hidden=32, alpha_prior=a, beta_prior=b)
        model.train(max_epochs=30, batch_size=64)
        table = model.get_zero_inflation_table()
        prior = stats.beta.cdf(0.5, a, b)
        results[(a, b)] = table["prob_zero_inflated"].to_numpy()[weak]
        assert results[(a, b)] == pytest.approx(np.full(len(weak), prior), abs=0.1)
        assert (table["call"].to_numpy()[weak] == "undetermined").all()
    assert (results[(0.3, 0.9)] > results[(0.5, 0.5)] + 0.2).all()
    assert (results[(0.5, 0.5)] > results[(0.9, 0.3)] + 0.2).all()


def test_default_training_ends_with_q_delta_learnt():
    """Issue 18: with ``train()`` defaults (lr 1e-3, early stopping) q(δ)'s Beta parameters used to end near where
    they started, at the prior (P(ZI) ≈ 0.5, most ZI genes not found). Training now ends with q(δ) fitted to
    convergence given the networks: P(ZI) is decided and the calls are right; fitting again changes nothing."""
    adata = simulate(n_cells=1500, n_genes=300, seed=11)
    AUTOZI.setup_anndata(adata, batch_key="batch")
    model = AUTOZI(adata)
    model.train()
    table = model.get_zero_inflation_table(check=False)
    expressed = table["mean_count"].to_numpy() > 1
    prob = table["prob_zero_inflated"].to_numpy()[expressed]
    truth = adata.var["is_zero_inflated"].to_numpy()[expressed]
    assert np.median(prob[truth]) > 0.9 and np.median(prob[~truth]) < 0.25  # decided, not left at 0.5
    called = table["call"].to_numpy()[expressed] == ZI
    assert called[truth].mean() >= 0.9 and called[~truth].mean() <= 0.05
    before = model.get_alphas_betas()["alpha_posterior"]
    model.fit_delta_posterior()
    assert model.get_alphas_betas()["alpha_posterior"] == pytest.approx(before, rel=1e-5)


def test_learned_prior_in_every_mode(small):
    for mode in ("gene", "gene-batch", "gene-label"):
        adata = _registered(small, AUTOZI, batch_key="batch", labels_key="label")
        model = AUTOZI(adata, alpha_prior=None, beta_prior=None, zero_inflation=mode, n_hidden=32)
        model.train(max_epochs=2, batch_size=64, lr=1e-2)
        prior = model.get_alphas_betas()
        assert prior["alpha_prior"][0] != pytest.approx(0.5, abs=1e-4)  # it was learned


def test_autozi_recovers_simulated_zero_inflated_genes():
    """Science bar: among genes with mean count > 1, ROC AUC ≥ 0.9, and the evidence-aware call finds ≥ 90% of the
    true ZI genes while calling at most 5% of the NB genes zero-inflated."""
    from sklearn.metrics import roc_auc_score

    adata = simulate(n_cells=1500, n_genes=300, seed=11)
    AUTOZI.setup_anndata(adata, batch_key="batch")
    model = AUTOZI(adata)
    model.train(max_epochs=60, lr=1e-2)
    table = model.get_zero_inflation_table()
    truth = adata.var["is_zero_inflated"].to_numpy()
    expressed = table["mean_count"].to_numpy() > 1
    t = truth[expressed]
    assert t.sum() >= 30 and (~t).sum() >= 100
    assert roc_auc_score(t, table["prob_zero_inflated"].to_numpy()[expressed]) >= 0.9
    called = table["call"].to_numpy()[expressed] == ZI
    assert called[t].mean() >= 0.9
    assert called[~t].mean() <= 0.05
    observed = table["observed_zero_fraction"].to_numpy()[expressed]
    assert np.mean(observed[t] - table["expected_zero_fraction_nb"].to_numpy()[expressed][t]) > 0.1


def test_gene_without_evidence_stays_at_prior_and_is_undetermined(small):
    """An all-zero gene says nothing about NB vs ZINB: its posterior must stay near the prior (P(ZI) ≈ 0.5) and the
    evidence-aware call must say so instead of calling it."""
    adata = small.copy()
    x = adata.X.toarray()
    x[:, 0] = 0
    adata.X = sp.csr_matrix(x)
    AUTOZI.setup_anndata(adata)
    model = AUTOZI(adata, n_hidden=32)
    model.train(max_epochs=20, batch_size=64, lr=1e-2)
    row = model.get_zero_inflation_table().iloc[0]
    assert row["gene"] == "gene_00000" and row["mean_count"] == 0
    assert abs(row["prob_zero_inflated"] - 0.5) < 0.05
    assert abs(row["log10_bayes_factor"]) < 0.2
    assert row["call"] == "undetermined"


def test_early_stopping_restores_the_best_epoch(small):
    import copy

    model = SCVI(_registered(small), n_hidden=32)
    snapshots = {}

    def keep(event):
        if event.kind == "epoch":
            snapshots[event.epoch] = copy.deepcopy(model.module.state_dict())

    model.train(max_epochs=300, batch_size=64, lr=5e-2, early_stopping=True, early_stopping_patience=3,
                n_epochs_kl_warmup=1, callback=keep)
    history = model.history
    assert len(history) < 300
    best = int(history.loc[history["elbo_validation"].idxmin(), "epoch"])
    assert len(history) == best + 3  # three epochs without improvement, then stop
    final = model.module.state_dict()
    assert all(torch.equal(final[k], v) for k, v in snapshots[best].items())
    assert not all(torch.equal(final[k], v) for k, v in snapshots[len(history)].items())
    assert (model.stop_info.reason, model.stop_info.kept_epoch, model.stop_info.best_epoch) == (
        "early_stopping", best, best)


@pytest.fixture(scope="module")
def default_run():
    """``train()`` with no arguments on a small simulation: it over-fits within a few hundred epochs."""
    import copy

    adata = simulate(n_cells=250, n_genes=60, n_cell_types=3, seed=5)
    SCVI.setup_anndata(adata, batch_key="batch")
    model = SCVI(adata)
    snapshots = {}

    def keep(event):
        if event.kind == "epoch":
            snapshots[event.epoch] = copy.deepcopy(model.module.state_dict())

    model.train(callback=keep)
    return model, snapshots


def test_default_training_stops_early_where_validation_is_best_and_says_why(default_run):
    from scvi_core.train import EARLY_STOPPING_MIN_DELTA, EARLY_STOPPING_PATIENCE, EARLY_STOPPING_WARMUP_EPOCHS

    model, snapshots = default_run
    history, stop = model.history, model.stop_info
    assert stop.reason == "early_stopping" and stop.early_stopping and stop.max_epochs == 400
    assert len(history) < 400 and stop.epochs == len(history)
    # the kept epoch is the best on the validation cells, and the patience ran out after it (after the warm-up)
    best = int(history.loc[history["elbo_validation"].idxmin(), "epoch"])
    assert stop.kept_epoch == stop.best_epoch == best
    warmed_up = int(history.loc[history["kl_weight"] >= 1.0, "epoch"].min())
    assert warmed_up == EARLY_STOPPING_WARMUP_EPOCHS + 1  # a warm-up of 20 epochs, not half of the 400
    # the patience runs from the last epoch that improved on the one before it by more than the min delta
    values, resets = history["elbo_validation"].to_numpy(), [0]
    for epoch, value in enumerate(values, start=1):
        reference = values[resets[-1] - 1]
        if resets == [0] or value < reference - EARLY_STOPPING_MIN_DELTA * abs(reference):
            resets.append(epoch)
    assert len(history) == max(resets[-1], warmed_up - 1) + EARLY_STOPPING_PATIENCE
    assert resets[-1] <= best
    final = model.module.state_dict()
    assert all(torch.equal(final[k], v) for k, v in snapshots[best].items())
    assert stop.message == (f"Stopped early at epoch {len(history)} of 400: the validation ELBO had not improved by "
                            f"more than 0.1% for {EARLY_STOPPING_PATIENCE} epochs; the weights of epoch {best} (the "
                            "best) were restored.")


def test_a_fixed_number_of_epochs_runs_them_all_and_keeps_the_last(small):
    import copy

    model = SCVI(_registered(small), n_hidden=32)
    last = {}
    model.train(max_epochs=30, batch_size=64, lr=5e-2, early_stopping=False,
                callback=lambda e: last.update(copy.deepcopy(model.module.state_dict())) if e.kind == "epoch" else None)
    assert len(model.history) == 30
    assert int(model.history.loc[model.history["kl_weight"] >= 1.0, "epoch"].min()) == 16  # warm-up: half of 30
    assert (model.stop_info.reason, model.stop_info.kept_epoch) == ("max_epochs", 30)
    assert model.stop_info.message == "Ran all 30 epochs (early stopping off)."
    assert all(torch.equal(model.module.state_dict()[k], v) for k, v in last.items())


def test_early_stopping_that_never_triggers_still_keeps_the_best_epoch(small):
    model = SCVI(_registered(small), n_hidden=32)
    model.train(max_epochs=12, batch_size=64, lr=5e-2, n_epochs_kl_warmup=1, early_stopping_patience=50)
    stop, history = model.stop_info, model.history
    best = int(history.loc[history["elbo_validation"].idxmin(), "epoch"])
    assert stop.reason == "max_epochs" and len(history) == 12 and stop.kept_epoch == best
    assert stop.message.startswith("Ran all 12 epochs")
    assert model.get_elbo(indices=model.validation_indices) == pytest.approx(
        -history["elbo_validation"].iloc[best - 1], rel=0.02)  # z is drawn, so the ELBO is a little noisy


def test_stop_info_is_saved_with_the_model(default_run, tmp_path):
    model, _ = default_run
    model.save(tmp_path / "m")
    loaded = SCVI.load(tmp_path / "m", model.adata.copy())
    assert loaded.stop_info == model.stop_info


def test_epoch_sums_hold_no_autograd_graph(small):
    """A running sum that required grad chained every step's graph to the next, so an epoch held all its graphs
    (about 0.9 GB over a 1M-cell epoch)."""
    from scvi_core.train._loop import _EpochSums

    model = SCVI(_registered(small), n_hidden=32)
    batch = next(model.data.minibatches(np.arange(64), 64, torch.device("cpu")))
    terms = model.module(batch)
    loss = model.module.loss(terms, 1.0, 300)
    loss.backward()
    sums = _EpochSums(torch.device("cpu"))
    sums.add(terms, loss)
    assert sums.values.grad_fn is None and not sums.values.requires_grad
    assert sums.values[3].item() == pytest.approx(loss.item())
