"""Model: choose AutoZI or scVI and their settings, in words a biologist can act on.

Every control has a key ``cfg_<setting>``; the configuration (``dashboard.config``) is rebuilt from them on each run
and kept in the Workspace, so the Training page and a later visit find it. Presets and loaded JSON files set the
controls through callbacks (which run before the widgets are drawn). Checks run on every change: what cannot work
is shown here and blocks the Start button on the Training page.
"""

import plotly.graph_objects as go
import streamlit as st

from dashboard import config as cfg
from dashboard import settings
from dashboard.service import service_for

workspace = st.session_state["workspace"]

MODEL_NAMES = {"AUTOZI": "AutoZI", "SCVI": "scVI"}
MODE_NAMES = {"gene": "per gene", "gene-batch": "per gene × batch", "gene-label": "per gene × label",
              "gene-cell": "per gene × cell"}
LIKELIHOOD_NAMES = {"zinb": "ZINB (zero-inflated negative binomial)", "nb": "NB (negative binomial)",
                    "poisson": "Poisson"}
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
    "minimal_dropout": "The smallest share of extra zeros a zero-inflated gene is allowed. 0.01 is the AutoZI default.",
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


def show_config(config: dict) -> None:
    """Put ``config`` into the controls (from a callback: before they are drawn)."""
    st.session_state.update(control_values(config))
    workspace.model_config = config


def apply_preset(preset: str) -> None:
    show_config(cfg.preset_config(st.session_state["cfg_model"], preset, *shape()))


def change_model() -> None:
    """A new model starts from its own defaults (AutoZI and scVI train with different learning rates), keeping the
    preset that was chosen."""
    previous = workspace.model_config and cfg.matching_preset(workspace.model_config, *shape())
    apply_preset(previous or "standard")


def load_config_file() -> None:
    upload = st.session_state["config_upload"]
    st.session_state.pop("config_error", None)
    if upload is None:
        return
    try:
        show_config(cfg.from_json(upload.getvalue()))
    except cfg.ConfigError as err:
        st.session_state["config_error"] = f"{upload.name}: {err}"


def shape() -> tuple[int, int]:
    return workspace.prepared.n_obs, workspace.prepared.n_vars


# ---- sections -----------------------------------------------------------------------------------------------
def choose_model() -> str:
    return st.radio("What do you want to find out?", list(cfg.MODELS), key="cfg_model", on_change=change_model,
                    format_func=MODEL_NAMES.get, captions=list(cfg.MODELS.values()))


def presets(config: dict) -> None:
    current = cfg.matching_preset(config, *shape())
    columns = st.columns(len(cfg.PRESETS) + 1)
    for column, (preset, label) in zip(columns, cfg.PRESETS.items(), strict=False):
        column.button(label, key=f"preset_{preset}", on_click=apply_preset, args=(preset,), width="stretch",
                      type="primary" if preset == current else "secondary")
    columns[-1].caption("Presets set the training settings below for your data size. "
                        + ("Settings edited: no preset matches." if current is None else ""))


def prior_controls() -> None:
    st.markdown("**Prior on zero-inflation**")
    learned = st.checkbox("Learn the prior from the data (empirical Bayes)", key="cfg_learn_prior",
                          help=HELP["learn_prior"])
    left, right = st.columns([1, 2])
    alpha = left.number_input("α", step=0.1, format="%g", key="cfg_alpha_prior",
                              disabled=learned, help=HELP["prior"])
    beta = left.number_input("β", step=0.1, format="%g", key="cfg_beta_prior",
                             disabled=learned, help=HELP["prior"])
    if learned:
        right.caption("α and β are fitted during training. Before training, no gene is assumed to lean either way.")
    elif alpha > 0 and beta > 0:
        left.metric("Prior P(zero-inflated)", f"{cfg.prior_prob_zero_inflated(alpha, beta):.0%}",
                    help="The probability that a gene is zero-inflated before seeing any data: p(δ < 0.5). AutoZI's "
                         "P(ZI) = q(δ < 0.5) starts here for every gene; a gene whose counts carry little "
                         "information (rarely expressed) stays close to it, the others move as their counts say.")
        with right:
            prior_plot(alpha, beta)


def prior_plot(alpha: float, beta: float) -> None:
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
    st.plotly_chart(figure, width="stretch", key="prior_plot")


def model_controls(model: str) -> None:
    st.subheader("Likelihood and network")
    if model == "AUTOZI":
        prior_controls()
        left, right = st.columns(2)
        left.selectbox("Zero-inflation granularity", cfg.MODES, key="cfg_zero_inflation", format_func=MODE_NAMES.get,
                       help=HELP["zero_inflation"])
        right.number_input("Minimal dropout", step=0.01, format="%g",
                           key="cfg_minimal_dropout", help=HELP["minimal_dropout"])
    else:
        st.selectbox("Count model (likelihood)", cfg.LIKELIHOODS, key="cfg_gene_likelihood",
                     format_func=LIKELIHOOD_NAMES.get, help=HELP["gene_likelihood"])
    left, right = st.columns(2)
    left.selectbox("Dispersion", cfg.MODES, key="cfg_dispersion", format_func=MODE_NAMES.get,
                   help=HELP["dispersion"])
    right.radio("Library size (sequencing depth)", [True, False], key="cfg_use_observed_lib_size", horizontal=True,
                format_func=lambda observed: "observed" if observed else "learned",
                help=HELP["use_observed_lib_size"])
    c1, c2, c3, c4 = st.columns(4)
    c1.number_input("Latent dimensions", step=1, key="cfg_n_latent", help=HELP["n_latent"])
    c2.number_input("Hidden units", step=1, key="cfg_n_hidden", help=HELP["n_hidden"])
    c3.number_input("Layers", step=1, key="cfg_n_layers", help=HELP["n_layers"])
    c4.number_input("Dropout", step=0.05, format="%g", key="cfg_dropout_rate",
                    help=HELP["dropout_rate"])


def training_controls(config: dict) -> None:
    st.subheader("Training settings")
    n_cells, n_genes = shape()
    c1, c2, c3, c4 = st.columns(4)
    c1.number_input("Epochs", step=1, key="cfg_max_epochs", help=HELP["max_epochs"])
    c2.number_input("Learning rate", step=1e-4, format="%g", key="cfg_lr",
                    help=HELP["lr"])
    c3.number_input("Batch size", step=1, key="cfg_batch_size", help=HELP["batch_size"])
    c4.number_input("Random seed", step=1, key="cfg_seed", help=HELP["seed"])
    early = config["train_params"]["early_stopping"]
    c1, c2, c3, c4 = st.columns(4)
    c1.number_input("Validation cells (%)", step=5.0, format="%g", key="cfg_validation_percent",
              help=HELP["validation_percent"])
    c2.number_input("KL warm-up (epochs)", step=1, placeholder="20 epochs" if early else "half of training",
                    key="cfg_n_epochs_kl_warmup", help=HELP["n_epochs_kl_warmup"])
    c3.checkbox("Early stopping", key="cfg_early_stopping", help=HELP["early_stopping"])
    c4.number_input("Patience (epochs)", step=1, key="cfg_early_stopping_patience", disabled=not early,
                    help=HELP["early_stopping_patience"])
    default = cfg.preset_train_params(config["model"], "standard", n_cells, n_genes)["max_epochs"]
    service = service_for(settings.runs_dir())
    estimate = service.estimate(config, n_cells, n_genes)
    service.warm_up()  # a run is likely to come: have a worker ready (after the estimate, whose calibration it slows)
    duration = estimate.describe(early)
    epochs = config["train_params"]["max_epochs"]
    if early:
        st.caption(f"Default for {n_cells:,} cells: at most {default} epochs, ended by early stopping where the "
                   f"validation ELBO is best. This run on this server: {duration} (about "
                   f"{estimate.expected_epochs:.0f} epochs; measured from {estimate.source}).")
    else:
        st.caption(f"Default for {n_cells:,} cells: at most {default} epochs with early stopping. This run trains "
                   f"exactly {epochs} epochs: {duration} on this server (measured from {estimate.source}).")


def check(config: dict) -> bool:
    """Show what blocks training and what is risky; True when training may start."""
    result = cfg.validate(config, *shape(), workspace.batch_key, workspace.labels_key)
    for message in result.errors:
        st.error(message, icon=":material/block:")
    for message in result.warnings:
        st.warning(message)
    return not result.errors


def save_and_load(config: dict) -> None:
    st.subheader("Save or load these settings")
    left, right = st.columns(2)
    left.download_button("Download settings (JSON)", cfg.to_json(config), file_name="scvi-dashboard-settings.json",
                         mime="application/json", key="download_config", icon=":material/download:")
    right.file_uploader("Load settings (JSON)", type=["json"], key="config_upload", on_change=load_config_file,
                        help="A file downloaded here, or a run's config.json from the runs directory.")
    if "config_error" in st.session_state:
        right.error(st.session_state["config_error"])


def main() -> None:
    st.title("Model")
    if workspace.prepared is None:
        st.info("Load and prepare data first: the model is set up for the prepared cells and genes.")
        st.page_link("pages/1_load_data.py", label="Go to Load data", icon=":material/upload_file:")
        return  # not st.stop(): app.py still draws the sidebar after the page
    n_cells, n_genes = shape()
    st.caption(f"{workspace.dataset_name}: {n_cells:,} cells × {n_genes:,} genes · batch key: "
               f"{workspace.batch_key or 'none'} · label key: {workspace.labels_key or 'none'}")
    start = workspace.model_config or cfg.preset_config("AUTOZI", "standard", n_cells, n_genes)
    for key, value in control_values(start).items():
        st.session_state.setdefault(key, value)  # controls left on another page come back as configured
    model = choose_model()
    for key, value in control_values(cfg.preset_config(model, "standard", n_cells, n_genes)).items():
        st.session_state.setdefault(key, value)  # settings the other model did not have
    config = config_from_controls(model)
    presets(config)
    model_controls(model)
    training_controls(config)
    workspace.model_config = config
    if check(config):
        st.success("These settings can be trained.")
        st.page_link("pages/3_training.py", label="Next: start training", icon=":material/model_training:")
    save_and_load(config)


main()
