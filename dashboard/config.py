"""A training configuration as a plain, JSON-ready dict, and what the Model page needs to explain it.

Why plain dicts: the same object is shown by the Model page, kept in the Workspace, downloaded and loaded back as
JSON, written into every run's ``config.json`` and unpacked into the model constructor and ``train`` — so it holds
exactly the keyword arguments of ``SCVI`` / ``AUTOZI`` and of their ``train`` method, nothing else:

    {"model": "AUTOZI" | "SCVI", "model_params": {...constructor arguments...}, "train_params": {...train()...}}

Checks here speak the words of the Model page (not of the Python API) and run before any training starts, so a
setting that cannot work is explained and blocked instead of failing minutes later.
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass, field, fields

import numpy as np
from scipy import stats

from scvi_core.model import MODELS as LIBRARY_MODELS
from scvi_core.train import EARLY_STOPPING_PATIENCE, TrainSettings, default_max_epochs
from scvi_core.zi import prob_zero_inflated

MODEL_NAMES = {"AUTOZI": "AutoZI", "SCVI": "scVI"}
"""How the dashboard names each model to a person."""
MODELS = {
    "AUTOZI": "Which genes are zero-inflated, i.e. have more zeros than their expression level explains?",
    "SCVI": "A latent space of the cells for clustering and UMAP, batch correction, and denoised expression.",
}
MODES = ("gene", "gene-batch", "gene-label", "gene-cell")
LIKELIHOODS = ("zinb", "nb", "poisson")
CHOICES = {"dispersion": MODES, "zero_inflation": MODES, "gene_likelihood": LIKELIHOODS}

MODEL_PARAMS = {name: {p.name: p.default for p in inspect.signature(model).parameters.values() if p.name != "adata"}
                for name, model in LIBRARY_MODELS.items()}
"""Each model's arguments and their defaults, as the library defines them (its module's signature)."""
LIBRARY_LR = {name: model.default_lr for name, model in LIBRARY_MODELS.items()}
"""What train() uses without an lr (a file without one gets it): SCVI 5e-3 (with early stopping, the best held-out
fit in about a fifth of the epochs), AUTOZI 1e-3."""
TRAIN_PARAMS = {**{f.name: f.default for f in fields(TrainSettings) if f.name != "check_val_every_n_epoch"},
                "max_epochs": 400, "lr": LIBRARY_LR["SCVI"]}
"""The training settings a configuration holds, the library's defaults but a number of epochs and a rate (the
dashboard checks the validation cells every epoch: its curve and early stopping need them)."""
NULLABLE = {"alpha_prior", "beta_prior", "n_epochs_kl_warmup"}

PRESETS = {
    "quick": "Quick look (under a minute)",
    "standard": "Standard",
    "thorough": "Thorough",
}
QUICK_SECONDS = 40  # training time a quick look aims for, leaving room for start-up and saving under a minute
QUICK_MAX_EPOCHS = 100

# What the Quick look preset's length is chosen for, in cell × gene entries per second (training and validation
# passes, n_hidden=128, one layer): half of what benchmarks/train_speed.py measures on 2 quiet CPU cores. A preset's
# settings must not change from one run to the next, so this is a constant; the times the pages show are measured
# on the server (dashboard/estimates.py).
NOMINAL_ENTRIES_PER_SECOND = {"SCVI": 10e6, "AUTOZI": 8e6}


class ConfigError(ValueError):
    """A configuration file could not be used. The message says what is wrong in it."""


@dataclass
class Check:
    """What :func:`validate` found: ``errors`` block training, ``warnings`` are risky but allowed."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ---- building configurations ------------------------------------------------------------------------------------
def preset_train_params(model: str, preset: str, n_cells: int, n_genes: int) -> dict:
    """Training settings of a preset for data of this size.

    Every preset stops early, where the validation ELBO stops improving, and keeps the best epoch (what ``train()``
    does by default); ``max_epochs`` is the most it may take. quick: as many epochs as fit in about QUICK_SECONDS
    (at most QUICK_MAX_EPOCHS); standard: scVI's epoch heuristic with the library's patience; thorough: twice the
    epochs and twice the patience. scVI uses lr 5e-3 (the library's default: with early stopping it reaches the best
    held-out ELBO sooner than 1e-3, see benchmarks/time_to_quality.py), AutoZI the library's lr 1e-3: at the AutoZI
    paper's 1e-2 its P(ZI) called 4–8% of the droplet ERCC spike-ins zero-inflated on three of five controls (1e-3:
    none) and did no better on the simulated kinds of gene (benchmarks/autozi_accuracy.py), for ~3.5× the epochs."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    standard = default_max_epochs(n_cells)
    if preset == "quick":
        per_epoch = _nominal_seconds_per_epoch(model, MODEL_PARAMS[model], n_cells, n_genes)
        epochs = max(1, min(standard, QUICK_MAX_EPOCHS, int(QUICK_SECONDS / per_epoch)))
    else:
        epochs = standard if preset == "standard" else min(1000, 2 * standard)
    return {
        **TRAIN_PARAMS,
        "max_epochs": epochs,
        "lr": LIBRARY_LR[model],
        "batch_size": min(TRAIN_PARAMS["batch_size"], _n_train(n_cells, TRAIN_PARAMS["train_size"])),
        "early_stopping": True,
        "early_stopping_patience": EARLY_STOPPING_PATIENCE * (2 if preset == "thorough" else 1),
    }


def preset_config(model: str, preset: str, n_cells: int, n_genes: int) -> dict:
    """A complete configuration: the model's default architecture and the preset's training settings."""
    if model not in MODELS:
        raise ValueError(f"Unknown model {model!r}; choose one of {', '.join(MODELS)}.")
    return {"model": model, "model_params": dict(MODEL_PARAMS[model]),
            "train_params": preset_train_params(model, preset, n_cells, n_genes)}


HIGHER_MINIMAL_DROPOUT = 0.03
"""The minimal dropout the Zero-inflation page offers to train AutoZI again with when it calls expressed genes
zero-inflated that the NB vs ZINB check does not. At the AutoZI default 0.01 a gene switched off in some cell types
costs the ZINB component only 1% per expressing cell, and AutoZI called 80–83% of such simulated NB genes
zero-inflated; at 0.03, 13–15%, while finding 90–91% of the genes whose dropout follows the cell type (0.94–0.95 at
0.01) and 67–79% of those with a low constant dropout (72–75%), AUC 0.968–0.979 (0.942–0.943)
(benchmarks/autozi_accuracy.py --minimal-dropout, seeds 1 and 2, docs/models.md)."""


def with_higher_minimal_dropout(config: dict, n_cells: int, n_genes: int) -> dict | None:
    """An AutoZI run's configuration with the minimal dropout raised to ``HIGHER_MINIMAL_DROPOUT``, everything else
    as it was (what the run does not record, e.g. a model opened from scvi-tools: the defaults and the standard
    preset for data of this size); None when it is not AutoZI's or already that high."""
    model_params = {**MODEL_PARAMS["AUTOZI"], **config.get("model_params", {})}
    if config.get("model") != "AUTOZI" or model_params["minimal_dropout"] >= HIGHER_MINIMAL_DROPOUT:
        return None
    return {"model": "AUTOZI", "model_params": {**model_params, "minimal_dropout": HIGHER_MINIMAL_DROPOUT},
            "train_params": {**preset_train_params("AUTOZI", "standard", n_cells, n_genes),
                             **config.get("train_params", {})}}


def matching_preset(config: dict, n_cells: int, n_genes: int) -> str | None:
    """The preset whose training settings ``config`` has, or None when they were edited."""
    for preset in PRESETS:
        if config["train_params"] == preset_train_params(config["model"], preset, n_cells, n_genes):
            return preset
    return None


# ---- checking -------------------------------------------------------------------------------------------------
def validate(config: dict, n_cells: int, n_genes: int, batch_key: str | None, labels_key: str | None) -> Check:
    """Blocking problems and risky choices of ``config`` for prepared data of this size and these keys."""
    check = Check()
    model, m, t = config["model"], config["model_params"], config["train_params"]
    if model not in MODELS:
        check.errors.append(f"Unknown model {model!r}: choose AutoZI or scVI.")
        return check
    _check_architecture(m, n_genes, check)
    _check_modes(model, m, batch_key, labels_key, check)
    if model == "AUTOZI":
        _check_prior(m, check)
    _check_training(model, t, n_cells, check)
    return check


def _check_architecture(m: dict, n_genes: int, check: Check) -> None:
    for name, label in (("n_latent", "Latent dimensions"), ("n_hidden", "Hidden units"), ("n_layers", "Layers")):
        if not (_is_int(m[name]) and m[name] >= 1):
            check.errors.append(f"{label} must be a whole number of at least 1 (got {m[name]!r}).")
    if not (_is_number(m["dropout_rate"]) and 0 <= m["dropout_rate"] < 1):
        check.errors.append(f"Dropout must be at least 0 and below 1 (got {m['dropout_rate']!r}).")
    if _is_int(m["n_latent"]) and m["n_latent"] >= n_genes:
        check.warnings.append(f"{m['n_latent']} latent dimensions for {n_genes} genes: the latent space is meant to "
                              "be much smaller than the number of genes (10–30 is usual).")
    if _is_int(m["n_layers"]) and m["n_layers"] > 3:
        check.warnings.append("More than 3 layers rarely helps on count data and trains slower and less stably.")


def _check_modes(model: str, m: dict, batch_key: str | None, labels_key: str | None, check: Check) -> None:
    modes = {"dispersion": "Dispersion"}
    if model == "AUTOZI":
        modes["zero_inflation"] = "Zero-inflation granularity"
    if model == "SCVI" and m["gene_likelihood"] not in LIKELIHOODS:
        check.errors.append(f"Unknown likelihood {m['gene_likelihood']!r}; choose ZINB, NB or Poisson.")
    for name, label in modes.items():
        if m[name] not in MODES:
            check.errors.append(f"{label} {m[name]!r} is unknown; choose one of {', '.join(MODES)}.")
        elif m[name] == "gene-label" and labels_key is None:
            check.errors.append(f"{label} 'per gene × label' needs known cell labels, but no label key was chosen. "
                                "Pick a label key on the Load data page (Prepare data) or choose another setting.")
        elif m[name] == "gene-batch" and batch_key is None:
            check.errors.append(f"{label} 'per gene × batch' needs batches, but no batch key was chosen. "
                                "Pick a batch key on the Load data page (Prepare data) or choose another setting.")


def _check_prior(m: dict, check: Check) -> None:
    alpha, beta = m["alpha_prior"], m["beta_prior"]
    if (alpha is None) != (beta is None):
        check.errors.append("Give both prior parameters α and β, or learn both from the data.")
    elif alpha is not None and not (_is_number(alpha) and _is_number(beta) and alpha > 0 and beta > 0):
        check.errors.append(f"The prior parameters α and β must both be above 0 (got α={alpha}, β={beta}). "
                            "α = β = 0.5 is the AutoZI default.")
    if not (_is_number(m["minimal_dropout"]) and 0 <= m["minimal_dropout"] < 1):
        check.errors.append(f"Minimal dropout must be at least 0 and below 1 (got {m['minimal_dropout']!r}).")
    elif m["minimal_dropout"] > 0.2:
        check.warnings.append("A minimal dropout above 0.2 forces many zeros into every zero-inflated gene; "
                              "0.01 is the AutoZI default.")


def _check_training(model: str, t: dict, n_cells: int, check: Check) -> None:
    if not (_is_int(t["max_epochs"]) and t["max_epochs"] >= 1):
        check.errors.append(f"Epochs must be a whole number of at least 1 (got {t['max_epochs']!r}).")
    if not (_is_number(t["lr"]) and 0 < t["lr"] <= 1):
        check.errors.append(f"The learning rate must be above 0 and at most 1 (got {t['lr']!r}); "
                            "5e-3 is the default for scVI, 1e-3 for AutoZI.")
    elif t["lr"] > (0.02 if model == "AUTOZI" else 0.01):
        check.warnings.append(f"A learning rate of {t['lr']:g} is high: training may diverge (NaN). "
                              "5e-3 is the default for scVI, 1e-3 for AutoZI.")
    if not (_is_number(t["train_size"]) and 0 < t["train_size"] <= 1):
        check.errors.append("The validation fraction must be at least 0 and below 100%.")
        return
    n_train = _n_train(n_cells, t["train_size"])
    if n_train < 2:
        check.errors.append(f"Only {n_train} training cell(s): at least 2 are needed. Use a smaller validation "
                            "fraction or more cells.")
    if not (_is_int(t["batch_size"]) and t["batch_size"] >= 2):
        check.errors.append(f"The batch size must be a whole number of at least 2 (got {t['batch_size']!r}).")
    elif t["batch_size"] > n_train:
        check.errors.append(f"The batch size ({t['batch_size']:,}) is larger than the {n_train:,} training cells. "
                            f"Choose at most {n_train:,}.")
    patience = t["early_stopping_patience"]
    if t["early_stopping"] and not (_is_int(patience) and patience >= 1):
        check.errors.append(f"The patience of early stopping must be a whole number of epochs, at least 1 "
                            f"(got {patience!r}); {EARLY_STOPPING_PATIENCE} is the default.")
    if t["early_stopping"] and n_train >= n_cells:
        check.errors.append("Early stopping watches the validation cells, but the validation fraction is 0%. "
                            "Keep some cells for validation (10% is usual) or turn early stopping off.")
    elif n_train >= n_cells:
        check.warnings.append("With no validation cells there is no validation curve to judge overfitting.")
    warmup = t["n_epochs_kl_warmup"]
    if warmup is not None and not (_is_int(warmup) and warmup >= 0):
        check.errors.append(f"KL warm-up must be a whole number of epochs, 0 or more (got {warmup!r}).")
    elif warmup is not None and _is_int(t["max_epochs"]) and warmup > t["max_epochs"]:
        check.warnings.append(f"KL warm-up ({warmup} epochs) is longer than training ({t['max_epochs']} epochs); "
                              "it will be shortened to the number of epochs.")
    if not (_is_int(t["seed"]) and t["seed"] >= 0):
        check.errors.append(f"The random seed must be a whole number, 0 or more (got {t['seed']!r}).")
    if model == "AUTOZI" and not t["early_stopping"] and _is_int(t["max_epochs"]) and t["max_epochs"] > 100:
        check.warnings.append("Long AutoZI training without early stopping over-fits the dropout network, and AutoZI's "
                              "P(ZI) follows it: in benchmarks/autozi_accuracy.py, 200 epochs at lr 0.01 called about "
                              "30% of plain negative-binomial genes zero-inflated (none with early stopping). Turn on "
                              "early stopping, or read the NB vs ZINB check beside AutoZI's calls.")


def _n_train(n_cells: int, train_size: float) -> int:
    return min(n_cells, math.ceil(train_size * n_cells))


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool) and math.isfinite(value)


# ---- time ---------------------------------------------------------------------------------------------------------
def reference_width(m: dict) -> float:
    """Cost of an epoch relative to the default network (n_hidden 128, one layer), per cell × gene entry: the
    decoder, the largest layer, grows with the width and depth of the network."""
    return 0.5 + 0.5 * (m["n_hidden"] / 128) * m["n_layers"]


def _nominal_seconds_per_epoch(model: str, m: dict, n_cells: int, n_genes: int) -> float:
    return n_cells * n_genes * reference_width(m) / NOMINAL_ENTRIES_PER_SECOND[model]


def format_duration(seconds: float) -> str:
    """'about 40 s', 'about 3 min', 'about 1.5 h'."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 5400:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


# ---- the Beta prior of AutoZI ----------------------------------------------------------------------------------------
def beta_prior_curve(alpha: float, beta: float, n_points: int = 199) -> tuple[np.ndarray, np.ndarray]:
    """Points (δ, density) of the Beta(α, β) prior on δ, the probability that a gene is NOT zero-inflated. The ends
    are left out because the density is infinite there when α or β < 1."""
    delta = np.linspace(0, 1, n_points + 2)[1:-1]
    return delta, stats.beta.pdf(delta, alpha, beta)


def prior_prob_zero_inflated(alpha: float, beta: float) -> float:
    """P(zero-inflated) before seeing data: p(δ < 0.5) under Beta(α, β)."""
    return float(prob_zero_inflated(alpha, beta))


# ---- JSON -------------------------------------------------------------------------------------------------------
def to_json(config: dict) -> str:
    return json.dumps({key: config[key] for key in ("model", "model_params", "train_params")}, indent=2)


def from_json(text: str | bytes) -> dict:
    """Read a configuration file (one downloaded from the Model page, or a run's config.json). Missing settings take
    their default; unknown ones and values of the wrong kind are refused with a message naming them."""
    try:
        data = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"This is not a JSON configuration file ({err}).") from None
    if not isinstance(data, dict):
        raise ConfigError("A configuration file holds one JSON object with 'model', 'model_params' and "
                          "'train_params'.")
    model = data.get("model")
    if model not in MODELS:
        raise ConfigError(f"'model' must be one of {', '.join(MODELS)}; this file says {model!r}.")
    return {
        "model": model,
        "model_params": _read_section(data, "model_params", MODEL_PARAMS[model]),
        "train_params": _read_section(data, "train_params", {**TRAIN_PARAMS, "lr": LIBRARY_LR[model]}),
    }


def _read_section(data: dict, name: str, defaults: dict) -> dict:
    given = data.get(name, {})
    if not isinstance(given, dict):
        raise ConfigError(f"'{name}' must be a JSON object of settings.")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(f"Unknown setting(s) in '{name}': {', '.join(unknown)}. Known: {', '.join(defaults)}.")
    section = {**defaults, **given}
    for key, value in section.items():
        default = defaults[key]
        if value is None and key in NULLABLE:
            continue
        if isinstance(default, bool) or isinstance(default, str):
            ok = type(value) is type(default)
        elif isinstance(default, float):
            ok = _is_number(value)
            if ok:
                section[key] = float(value)
        else:  # whole numbers (and n_epochs_kl_warmup)
            ok = _is_int(value)
        if not ok:
            raise ConfigError(f"'{name}.{key}' has the wrong kind of value: {value!r}.")
        if key in CHOICES and value not in CHOICES[key]:
            raise ConfigError(f"'{name}.{key}' must be one of {', '.join(CHOICES[key])}; this file says {value!r}.")
    return section


# ---- comparing runs -------------------------------------------------------------------------------------------
SHORT_NAMES = {"alpha_prior": "α", "beta_prior": "β", "max_epochs": "epochs", "n_epochs_kl_warmup": "KL warm-up",
               "gene_likelihood": "likelihood", "zero_inflation": "ZI", "use_observed_lib_size": "observed library",
               "early_stopping_patience": "patience"}


def differences(configs: list[dict]) -> list[str]:
    """For each configuration, the settings that differ between them ('α=0.5, β=0.5'), to tell curves apart."""
    flat = [{"model": c["model"], **c.get("model_params", {}), **c.get("train_params", {})} for c in configs]
    keys = sorted({k for f in flat for k in f if len({repr(g.get(k)) for g in flat}) > 1})
    return [", ".join(f"{SHORT_NAMES.get(k, k)}={f.get(k)}" for k in keys) for f in flat]

