"""The training configuration: presets, checks in plain words, time estimates, JSON round trip, the Beta prior."""

import json

import numpy as np
import pytest
from scipy import integrate, stats

from dashboard import config as cfg

N_CELLS, N_GENES = 2000, 500


def autozi(**changes) -> dict:
    config = cfg.preset_config("AUTOZI", "standard", N_CELLS, N_GENES)
    for key, value in changes.items():
        section = "model_params" if key in config["model_params"] else "train_params"
        config[section][key] = value
    return config


def errors(config, batch_key="batch", labels_key="cell_type", n_cells=N_CELLS) -> str:
    return " ".join(cfg.validate(config, n_cells, N_GENES, batch_key, labels_key).errors)


@pytest.mark.parametrize("model", list(cfg.MODELS))
@pytest.mark.parametrize("preset", list(cfg.PRESETS))
def test_presets_are_valid_and_recognised(model, preset):
    config = cfg.preset_config(model, preset, N_CELLS, N_GENES)
    assert cfg.validate(config, N_CELLS, N_GENES, "batch", None).errors == []
    assert cfg.matching_preset(config, N_CELLS, N_GENES) == preset


def test_quick_preset_fits_in_a_minute_and_autozi_presets_train_at_the_librarys_rate():
    for model in cfg.MODELS:
        for n_cells in (300, 2000, 20000, 200_000):
            quick = cfg.preset_config(model, "quick", n_cells, 1000)
            epochs = quick["train_params"]["max_epochs"]
            seconds = epochs * n_cells * 1000 / cfg.NOMINAL_ENTRIES_PER_SECOND[model]  # default width
            assert seconds <= cfg.QUICK_SECONDS or epochs == 1
    standard = cfg.preset_config("AUTOZI", "standard", N_CELLS, N_GENES)["train_params"]
    assert standard["lr"] == cfg.LIBRARY_LR["AUTOZI"] == 1e-3 and standard["early_stopping"]
    assert cfg.preset_config("SCVI", "standard", N_CELLS, N_GENES)["train_params"]["lr"] == 5e-3
    thorough = cfg.preset_config("SCVI", "thorough", N_CELLS, N_GENES)["train_params"]
    assert thorough["max_epochs"] > standard["max_epochs"] and thorough["early_stopping"]
    assert thorough["early_stopping_patience"] == 2 * standard["early_stopping_patience"]


@pytest.mark.parametrize("model", list(cfg.MODELS))
@pytest.mark.parametrize("preset", list(cfg.PRESETS))
def test_every_preset_stops_early_as_train_does_by_default(model, preset):
    import inspect

    from scvi_core import SCVI

    train = cfg.preset_config(model, preset, N_CELLS, N_GENES)["train_params"]
    defaults = inspect.signature(SCVI.train).parameters
    assert train["early_stopping"] is defaults["early_stopping"].default is True
    assert cfg.TRAIN_PARAMS["early_stopping_patience"] == defaults["early_stopping_patience"].default
    from scvi_core import AUTOZI

    assert cfg.LIBRARY_LR == {"SCVI": SCVI.default_lr, "AUTOZI": AUTOZI.default_lr}


def test_edited_settings_match_no_preset():
    assert cfg.matching_preset(autozi(lr=3e-3), N_CELLS, N_GENES) is None


@pytest.mark.parametrize(
    ("changes", "keys", "message"),
    [
        ({"zero_inflation": "gene-label"}, ("batch", None), "needs known cell labels"),
        ({"dispersion": "gene-batch"}, (None, "cell_type"), "needs batches"),
        ({"alpha_prior": 0.0}, ("batch", None), "must both be above 0"),
        ({"beta_prior": -1.0}, ("batch", None), "must both be above 0"),
        ({"alpha_prior": None}, ("batch", None), "or learn both"),
        ({"batch_size": 5000}, ("batch", None), "larger than the 1,800 training cells"),
        ({"batch_size": 1}, ("batch", None), "at least 2"),
        ({"lr": 0.0}, ("batch", None), "learning rate must be above 0"),
        ({"max_epochs": 0}, ("batch", None), "Epochs must be"),
        ({"n_latent": 0}, ("batch", None), "Latent dimensions"),
        ({"dropout_rate": 1.0}, ("batch", None), "Dropout"),
        ({"minimal_dropout": 1.5}, ("batch", None), "Minimal dropout"),
        ({"train_size": 1.0, "early_stopping": True}, ("batch", None), "validation fraction is 0%"),
        ({"n_epochs_kl_warmup": -1}, ("batch", None), "KL warm-up"),
        ({"early_stopping_patience": 0}, ("batch", None), "patience of early stopping"),
    ],
)
def test_invalid_settings_are_blocked_in_plain_words(changes, keys, message):
    assert message in errors(autozi(**changes), *keys)


def test_risky_settings_warn_without_blocking():
    config = autozi(lr=0.5, early_stopping=False, max_epochs=400, n_epochs_kl_warmup=500)
    check = cfg.validate(config, N_CELLS, N_GENES, None, None)
    assert check.errors == []
    text = " ".join(check.warnings)
    assert "may diverge" in text and "without early stopping" in text and "shortened" in text


def test_learned_prior_is_valid():
    assert errors(autozi(alpha_prior=None, beta_prior=None)) == ""


def test_durations_in_words():
    assert cfg.format_duration(42) == "about 42 s" and cfg.format_duration(600) == "about 10 min"
    assert cfg.format_duration(3 * 3600) == "about 3.0 h"


def test_json_round_trip_and_defaults_for_missing_settings():
    config = autozi(alpha_prior=None, beta_prior=None, zero_inflation="gene-batch", seed=7)
    assert cfg.from_json(cfg.to_json(config)) == config
    partial = cfg.from_json('{"model": "SCVI", "train_params": {"lr": 0.002, "max_epochs": 10}}')
    assert partial["model_params"] == cfg.MODEL_PARAMS["SCVI"]
    assert partial["train_params"]["lr"] == 0.002 and partial["train_params"]["batch_size"] == 128
    # files written before early stopping was the default keep what they said; a missing patience takes the default
    old = cfg.from_json('{"model": "SCVI", "train_params": {"early_stopping": false}}')["train_params"]
    assert old["early_stopping"] is False
    assert old["early_stopping_patience"] == cfg.TRAIN_PARAMS["early_stopping_patience"]


def test_a_runs_config_json_loads_too():
    record = {**autozi(), "setup": {"batch_key": "batch"}, "dataset_name": "demo", "created": "today"}
    assert cfg.from_json(json.dumps(record)) == autozi()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not a JSON configuration file"),
        (b"\xff\xfe\x00", "not a JSON configuration file"),
        ("[1, 2]", "one JSON object"),
        ('{"model": "PCA"}', "'model' must be one of"),
        ('{"model": "SCVI", "model_params": {"n_latnet": 5}}', "Unknown setting(s) in 'model_params': n_latnet"),
        ('{"model": "SCVI", "train_params": {"max_epochs": "ten"}}', "'train_params.max_epochs'"),
        ('{"model": "SCVI", "train_params": {"early_stopping": 1}}', "'train_params.early_stopping'"),
        ('{"model": "SCVI", "model_params": []}', "must be a JSON object"),
    ],
)
def test_bad_config_files_are_refused_with_a_message(text, message):
    with pytest.raises(cfg.ConfigError) as err:
        cfg.from_json(text)
    assert message in str(err.value)


@pytest.mark.parametrize(("alpha", "beta"), [(0.5, 0.5), (1.0, 1.0), (2.0, 5.0), (5.0, 2.0)])
def test_beta_prior_curve_and_prior_probability_of_zero_inflation(alpha, beta):
    delta, density = cfg.beta_prior_curve(alpha, beta, n_points=2001)
    assert 0 < delta[0] and delta[-1] < 1 and np.isfinite(density).all()
    assert density == pytest.approx(stats.beta.pdf(delta, alpha, beta))
    mass_below_half = integrate.quad(lambda d: stats.beta.pdf(d, alpha, beta), 0, 0.5)[0]
    assert cfg.prior_prob_zero_inflated(alpha, beta) == pytest.approx(mass_below_half, abs=1e-6)


def test_prior_probability_follows_delta_meaning_not_zero_inflated():
    # δ is the probability of NOT being zero-inflated: mass near δ = 0 (α < β) means a high prior P(ZI).
    assert cfg.prior_prob_zero_inflated(1.0, 5.0) > 0.9
    assert cfg.prior_prob_zero_inflated(5.0, 1.0) < 0.1
    assert cfg.prior_prob_zero_inflated(0.5, 0.5) == pytest.approx(0.5)


def test_differences_name_only_what_changed():
    labels = cfg.differences([autozi(alpha_prior=0.5, beta_prior=0.5), autozi(alpha_prior=2.0, beta_prior=0.5)])
    assert labels == ["α=0.5", "α=2.0"]
