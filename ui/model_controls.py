"""The Model page's controls: their help texts in words a biologist can act on, the values that show a configuration,
the configuration they show now, and the prior on zero inflation drawn as a figure. Every control has a key
``cfg_<setting>`` (``dashboard.config`` says what the settings are and checks them)."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboard import config as cfg

HELP = {
    "n_latent": "How many numbers summarise each cell. 10 suits most datasets; 20–30 for very diverse tissues.",
    "n_hidden": "Width of the neural networks. 128 is the usual value; smaller is faster, larger fits more detail.",
    "n_layers": "Depth of the neural networks. 1 is the usual value; 2 for large, complex datasets.",
    "dropout_rate": "Share of network units switched off at random while training, against overfitting. 0.1 is usual.",
    "dispersion": "How the extra variability of each gene (beyond Poisson noise) is shared: one value per gene, or "
                  "one per gene in each batch, in each cell label, or in each cell.",
    "use_observed_lib_size": "Observed: each cell's sequencing depth is its total count (usual). Learned: the model "
                             "infers it, which can help when total counts are unreliable.",
    "gene_likelihood": "The count model for each gene. ZINB allows extra zeros, NB does not, Poisson has no extra "
                       "variability at all.",
    "zero_inflation": "For whom AutoZI decides 'zero-inflated or not': each gene once, or separately in each batch, "
                      "each cell label, or each cell.",
    "minimal_dropout": "The smallest share of extra zeros a zero-inflated gene is allowed. 0.01 is the AutoZI default "
                       "(paper, scvi-tools). At 0.01 AutoZI calls most genes that are switched off in some cell types "
                       "zero-inflated; 0.03 calls few of them, at the cost of finding fewer genes with a low dropout "
                       "(docs/models.md).",
    "learn_prior": "Empirical Bayes: fit α and β to the data instead of fixing them.",
    "prior": "Beta(α, β) prior on δ, the probability that a gene is NOT zero-inflated. α = β = 0.5 (default) says "
             "'probably clearly one or the other'; α < β leans towards zero-inflated, α > β against.",
    "max_epochs": "The most passes over all cells training may take; early stopping usually ends it sooner. The "
                  "default comes from the data size (scVI's rule: 400 up to 20,000 cells, fewer beyond).",
    "lr": "Step size of the optimiser. 5e-3 is the default for scVI (with early stopping; 1e-3 is the classic value, "
          "slower), 1e-3 for AutoZI (at 1e-2 its calls are less reliable on negative controls). Lower it if "
          "training diverges.",
    "batch_size": "Cells per training step. 128 is usual; must not exceed the number of training cells.",
    "validation_percent": "Cells held out to check the model on data it does not train on (the validation curve). "
                          "Early stopping watches them.",
    "early_stopping": "Stop where the fit to the validation cells is best: when their ELBO has not improved by "
                      "more than 0.1% for the patience below, training ends and the weights of the best epoch are "
                      "restored. On by default: longer training over-fits (and makes AutoZI over-call low-expression "
                      "genes as ZI). Off: train exactly the number of epochs above.",
    "early_stopping_patience": "How many epochs without a validation ELBO better by 0.1% early stopping waits "
                               "before it ends training (epochs of the KL warm-up do not count). 20 is the default; "
                               "Thorough waits 40.",
    "n_epochs_kl_warmup": "Epochs over which the KL term is phased in, which helps early training. Empty: 20 epochs "
                          "with early stopping (at most half of the epochs), else the first half of training.",
    "seed": "The same seed and settings give the same result.",
}


# ---- configuration ↔ controls ----------------------------------------------------------------------------------
def control_values(config: dict) -> dict:
    """The value of every control that shows ``config``."""
    model_params, train_params = config["model_params"], config["train_params"]
    values = {f"cfg_{k}": v for k, v in (model_params | train_params).items() if k != "train_size"}
    values["cfg_model"] = config["model"]
    values["cfg_validation_percent"] = round(100 * (1 - train_params["train_size"]), 2)
    if config["model"] == "AUTOZI":
        learned = model_params["alpha_prior"] is None
        values |= {"cfg_learn_prior": learned,
                   "cfg_alpha_prior": 0.5 if learned else model_params["alpha_prior"],
                   "cfg_beta_prior": 0.5 if learned else model_params["beta_prior"]}
    return values


def config_from_controls(model: str) -> dict:
    """The configuration the controls show now."""
    state = st.session_state
    model_params = {k: state[f"cfg_{k}"] for k in cfg.MODEL_PARAMS[model]}
    if model == "AUTOZI" and state["cfg_learn_prior"]:
        model_params |= {"alpha_prior": None, "beta_prior": None}
    train_params = {k: state[f"cfg_{k}"] for k in cfg.TRAIN_PARAMS if k != "train_size"}
    train_params["train_size"] = round(1 - state["cfg_validation_percent"] / 100, 4)
    return {"model": model, "model_params": model_params, "train_params": train_params}


def prior_figure(alpha: float, beta: float) -> go.Figure:
    """The Beta(α, β) prior's density, the part that says \"zero-inflated\" (δ < ½) shaded in its own colour."""
    delta, density = cfg.beta_prior_curve(alpha, beta)
    zi = delta < 0.5
    figure = go.Figure([
        go.Scatter(x=delta[zi], y=density[zi], fill="tozeroy", name="zero-inflated (δ < 0.5)", line_color="#c0392b"),
        go.Scatter(x=delta[~zi], y=density[~zi], fill="tozeroy", name="not zero-inflated", line_color="#1f6f8b"),
    ])
    figure.update_layout(title=f"Prior density Beta({alpha:g}, {beta:g})", height=260,
                         xaxis_title="δ = probability that a gene is NOT zero-inflated", yaxis_title="density",
                         yaxis_range=[0, min(float(density.max()) * 1.05, 8)], margin=dict(l=10, r=10, t=40, b=10),
                         legend=dict(orientation="h", y=-0.35))
    return figure

