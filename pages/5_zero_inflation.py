"""Zero-inflation: AutoZI's per-gene answer (P(ZI) = q(δ < ½), evidence, call at a chosen threshold) with the NB vs
ZINB check beside it, its plots, a gene detail that shows *why* each calls a gene zero-inflated, and recovery of the
truth on simulated data. Widgets and layout only: the sections are ``ui.zero_inflation`` (the numbers from
``scvi_core.zi``), the charts ``ui.zi_figures``."""

import streamlit as st

from dashboard import config as cfg
from ui import results
from ui import zero_inflation as zi_view


def offer_autozi(run_id: str):
    """scVI runs: zero inflation is AutoZI's question; set one up on this run's data."""
    st.info("This run is an scVI model. Whether a gene is zero-inflated is an AutoZI question: AutoZI fits, for "
            "every gene, how likely its counts need extra zeros beyond a negative binomial.")
    if st.button("Configure an AutoZI model on this run's data", type="primary", key="configure_autozi"):
        adata = results.adata(run_id)
        results.configure_on_run_data(run_id, cfg.preset_config("AUTOZI", "standard", adata.n_obs, adata.n_vars))


def decision_controls():
    """Threshold on P(ZI) (the seed's rule: 0.5) and the evidence needed for the evidence-aware call."""
    threshold, min_bf = results.zi_decision()
    c1, c2 = st.columns(2)
    threshold = c1.slider("Call zero-inflated when P(ZI) >", 0.05, 0.95, threshold, 0.05, key="zi_threshold",
                          help="0.5 is AutoZI's decision rule.")
    min_bf = c2.number_input("Evidence needed (|log10 Bayes factor| ≥)", 0.0, 5.0, min_bf, 0.25, key="zi_min_bf",
                             help="For the evidence-aware 'call' column: below this the data did not move the "
                                  "prior enough, and the gene is 'undetermined'. 0.5 ≈ odds changed 3-fold.")
    st.session_state[results.ZI_DECISION] = (float(threshold), float(min_bf))


def main():
    run_id, adata = results.page("Zero-inflation")
    if run_id is None:
        return
    if results.config(run_id).get("model") != "AUTOZI":
        offer_autozi(run_id)
        return
    decision_controls()
    table, group_key = zi_view.one_group(results.zero_inflation_table(run_id))
    zi_view.overview(table, adata, results.zi_decision()[0])
    zi_view.minimal_dropout_advice(table, run_id)
    shown = zi_view.table_section(table, group_key, run_id)
    zi_view.detail_section(run_id, table, shown, group_key)


try:
    main()
except (ValueError, KeyError, OSError) as err:
    st.error(f"This run's zero-inflation results could not be shown: {err}")
