"""Model: choose AutoZI or scVI and their settings, in words a biologist can act on.

Every control has a key ``cfg_<setting>``; the configuration (``dashboard.config``) is rebuilt from them on each run
and kept in the Workspace, so the Training page and a later visit find it. Presets and loaded JSON files set the
controls through callbacks (which run before the widgets are drawn). Checks run on every change: what cannot work
is shown here and blocks the Start button on the Training page.
"""

import streamlit as st

from dashboard import config as cfg
from dashboard import settings
from dashboard.services import service_for
from ui.model_controls import HELP, config_from_controls, control_values, prior_figure

workspace = st.session_state["workspace"]

MODE_NAMES = {"gene": "per gene", "gene-batch": "per gene × batch", "gene-label": "per gene × label",
              "gene-cell": "per gene × cell"}
LIKELIHOOD_NAMES = {"zinb": "ZINB (zero-inflated negative binomial)", "nb": "NB (negative binomial)",
                    "poisson": "Poisson"}


# ---- configuration ↔ controls ----------------------------------------------------------------------------------
def show_config(config: dict) -> None:
    """Put ``config`` into the controls (from a callback: before they are drawn)."""
    st.session_state.update(control_values(config))
    workspace.model_config = config


def apply_preset(preset: str) -> None:
    show_config(cfg.preset_config(st.session_state["cfg_model"], preset, *workspace.prepared_shape()))


def change_model() -> None:
    """A new model starts from its own defaults (AutoZI and scVI train with different learning rates), keeping the
    preset that was chosen."""
    previous = workspace.model_config and cfg.matching_preset(workspace.model_config, *workspace.prepared_shape())
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


# ---- sections -----------------------------------------------------------------------------------------------
def choose_model() -> str:
    return st.radio("What do you want to find out?", list(cfg.MODELS), key="cfg_model", on_change=change_model,
                    format_func=cfg.MODEL_NAMES.get, captions=list(cfg.MODELS.values()))


def presets(config: dict) -> None:
    current = cfg.matching_preset(config, *workspace.prepared_shape())
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
        right.plotly_chart(prior_figure(alpha, beta), width="stretch", key="prior_plot")


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
    n_cells, n_genes = workspace.prepared_shape()
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
    result = cfg.validate(config, *workspace.prepared_shape(), workspace.batch_key, workspace.labels_key)
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
    n_cells, n_genes = workspace.prepared_shape()
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
