"""The Zero-inflation page's sections: the headline counts, the table with its filters, and one gene's detail (why
each answer calls it what it does). The numbers come from :mod:`scvi_core.zi`; the charts are :mod:`ui.zi_figures`."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import config as cfg
from scvi_core import zi
from scvi_core.zi import CHECK_FITS, CHECK_PREFIX, NOT_ZI, UNDETERMINED, ZI
from ui import results, zi_figures

CHECK = CHECK_PREFIX
CHECK_FIT_COLUMNS = {CHECK + key for key in CHECK_FITS}
SHOWN_COLUMNS = ["gene", "prob_zero_inflated", "log10_bayes_factor", "call", CHECK + "prob_zero_inflated",
                 CHECK + "log10_bayes_factor", CHECK + "call", CHECK + "excess_zero_fraction", "alpha_posterior",
                 "beta_posterior", "mean_count", "observed_zero_fraction", "expected_zero_fraction_nb",
                 "expected_zero_fraction_zinb"]
COLUMN_CONFIG = {
    "prob_zero_inflated": st.column_config.NumberColumn(
        "AutoZI P(ZI)", format="%.3f", help="AutoZI's answer: the posterior probability that the gene is "
                                            "zero-inflated, q(δ < ½), under your Beta(α, β) prior."),
    "log10_bayes_factor": st.column_config.NumberColumn(
        "AutoZI log10 BF", format="%.2f", help="How far the data moved AutoZI's odds of ZI from the prior's."),
    "call": st.column_config.TextColumn("AutoZI call", help="AutoZI's call: P(ZI) on one side of the threshold "
                                                            "and enough evidence, else undetermined."),
    CHECK + "prob_zero_inflated": st.column_config.NumberColumn(
        "check P(ZI)", format="%.3f", help="The NB vs ZINB check: an NB and a zero-inflated NB refitted to this "
                                           "gene around the model's expected counts, with the prior's odds."),
    CHECK + "log10_bayes_factor": st.column_config.NumberColumn(
        "check log10 BF", format="%.2f", help="The check's Schwarz Bayes factor of the ZINB against the NB."),
    CHECK + "call": st.column_config.TextColumn("check call", help="The NB vs ZINB check's call."),
    CHECK + "excess_zero_fraction": st.column_config.NumberColumn(
        "check π̂", format="%.3f", help="The check's share of cells with a zero the NB does not explain."),
    "alpha_posterior": st.column_config.NumberColumn("α", format="%.3f", help="AutoZI's q(δ) = Beta(α, β)."),
    "beta_posterior": st.column_config.NumberColumn("β", format="%.3f", help="AutoZI's q(δ) = Beta(α, β)."),
    "mean_count": st.column_config.NumberColumn("mean count", format="%.2f"),
    "observed_zero_fraction": st.column_config.NumberColumn("zeros observed", format="%.3f"),
    "expected_zero_fraction_nb": st.column_config.NumberColumn("zeros NB", format="%.3f"),
    "expected_zero_fraction_zinb": st.column_config.NumberColumn("zeros ZINB", format="%.3f"),
}
QUESTIONS = ("**AutoZI** (the answer) asks: given the whole model, in which the dropout may follow each cell's "
             "state, how probable is it that this gene's counts follow the zero-inflated component (δ < ½) "
             "rather than the plain negative binomial? **The NB vs ZINB check** asks: around the model's expected "
             "counts, does one extra-zero rate for all the gene's cells fit its counts better than none, by enough "
             "to pay for the extra parameter? They disagree most on genes that are off in some cell types (AutoZI "
             "may call them zero-inflated) and on zeros that follow the cell type (the check may miss them).")


def one_group(table: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """The table of one batch / label (chosen here) in those modes, and that column's name; else the table, None."""
    group_key = zi.group_column(table)
    if group_key:
        groups = list(pd.unique(table[group_key].astype(str)))
        group = st.selectbox(f"{group_key} (AutoZI fitted one δ per gene and {group_key})", groups, key="zi_group")
        table = table[table[group_key].astype(str) == group].reset_index(drop=True)
    return table, group_key


def overview(table: pd.DataFrame, adata, threshold: float):
    """The headline counts (checked against the truth of simulated data) and the overview charts."""
    shares = zi.call_shares(table)
    truth = adata.var["is_zero_inflated"] if "is_zero_inflated" in adata.var.columns else None
    summary(table, shares, truth, threshold)
    zi_figures.overview(table, shares, threshold)


def summary(table: pd.DataFrame, shares: pd.DataFrame, truth: pd.Series | None, threshold: float):
    """Headline counts by the evidence-aware call (the table's 'call' column, the scatter's colours); the plain
    rule P(ZI) > threshold, which also counts genes the data did not inform, is given beside each."""
    plain = f"with P(ZI) > {threshold:.2f}"
    columns = st.columns(4 if truth is not None else 2)
    for column, row in zip(columns, shares.itertuples()):
        column.metric(f"Zero-inflated, {row.genes}", f"{row.evidence_zi:,} of {row.n_genes:,}",
                      f"{row.called_zi:,} {plain}", delta_color="off", delta_arrow="off",
                      help="Called zero-inflated: P(ZI) above the threshold and enough evidence (the 'call' column). "
                           "The figure below it counts every gene above the threshold, undetermined ones included.")
    if truth is not None:
        found = zi.recovery(table, truth)
        columns[2].metric("True ZI genes found", f"{found['found_evidence']:,} of {found['true_zi']:,}",
                          f"{found['found']:,} {plain}", delta_color="off", delta_arrow="off",
                          help="Simulated ground truth, by the evidence-aware call (and by P(ZI) alone).")
        columns[3].metric("NB genes wrongly called ZI", f"{found['false_calls_evidence']:,} of {found['true_nb']:,}",
                          f"{found['false_calls']:,} {plain}", delta_color="off", delta_arrow="off",
                          help="Simulated ground truth, by the evidence-aware call (and by P(ZI) alone).")
        st.caption("This is simulated data with known zero-inflated genes, so the calls can be checked.")
    if CHECK + "call" in table.columns:
        n_check, n_disagree = int((table[CHECK + "call"] == ZI).sum()), int(zi.disagree(table).sum())
        st.caption(f"Calls above are AutoZI's. The NB vs ZINB check calls {n_check:,} genes zero-inflated; the two "
                   f"calls differ on {n_disagree:,} genes (filter them below).")


def minimal_dropout_advice(table: pd.DataFrame, run_id: str):
    """Where AutoZI calls expressed genes zero-inflated that the check does not, say what such genes may be and offer
    to train again with a higher minimal dropout (dashboard.config.HIGHER_MINIMAL_DROPOUT)."""
    n_genes = int(zi.autozi_only(table).sum())
    if n_genes == 0:
        return
    adata = results.adata(run_id)
    retrain = cfg.with_higher_minimal_dropout(results.config(run_id), adata.n_obs, adata.n_vars)
    if retrain is None:
        return
    floor = retrain["model_params"]["minimal_dropout"]
    st.info(f"AutoZI calls {n_genes:,} genes with mean count > 1 zero-inflated that the NB vs ZINB check does not "
            "(tick 'Disagreements only' below to list them). Two kinds of gene look like this: genes whose zeros "
            "follow the cell type (AutoZI's dropout can follow each cell's state; the check's single extra-zero rate "
            "misses them) and genes switched off in some cell types, which AutoZI cannot tell from dropout at its "
            "default minimal dropout of 0.01 (on simulated data it called most of them zero-inflated). With a "
            f"minimal dropout of {floor:g} it called few of those, found nearly as many genes whose zeros follow the "
            "cell type, and fewer with a low constant dropout (docs/models.md has the figures). Train again and "
            "compare the two runs' tables.")
    if st.button(f"Train AutoZI again with minimal dropout {floor:g}", key="retrain_minimal_dropout"):
        results.configure_on_run_data(run_id, retrain)


def table_section(table: pd.DataFrame, group_key: str | None, run_id: str) -> pd.DataFrame:
    """Search / filter the table, show it (a click on a row opens that gene's detail), offer it as CSV."""
    st.markdown(QUESTIONS)
    c1, c2, c3, c4 = st.columns([1.6, 0.9, 3, 1.3])  # the calls' three chips fit on one line
    search = c1.text_input("Search genes", key="zi_search", placeholder="part of a gene name")
    min_mean = c2.number_input("Mean count >", 0.0, value=0.0, step=0.5, key="zi_min_mean",
                               help="The AutoZI authors interpret only genes with mean count > 1.")
    calls = c3.multiselect("AutoZI calls", [ZI, UNDETERMINED, NOT_ZI], default=[ZI, UNDETERMINED, NOT_ZI],
                           key="zi_calls")
    disagreeing = c4.checkbox("Disagreements only", key="zi_disagree",
                              disabled=CHECK + "call" not in table.columns,
                              help="Genes whose AutoZI call and NB vs ZINB check call differ.")
    shown = zi.filter_table(table, search, min_mean, calls, disagreeing)
    columns = [c for c in SHOWN_COLUMNS if c in table.columns]  # the check: not in tables made without it
    columns = columns if group_key is None else [columns[0], group_key, *columns[1:]]
    st.caption(f"{len(shown):,} of {len(table):,} rows. Click a column to sort; click a row to see the gene's "
               "detail below.")
    event = st.dataframe(shown[columns], hide_index=True, column_config=COLUMN_CONFIG,
                         on_select="rerun", selection_mode="single-row", key="zi_table")
    rows = event.selection.rows if event else []
    if rows and st.session_state.get("zi_clicked") != shown.iloc[rows[0]]["gene"]:
        st.session_state["zi_clicked"] = st.session_state["zi_gene"] = shown.iloc[rows[0]]["gene"]
    st.download_button("Download this table (CSV)", shown.to_csv(index=False), file_name=f"zero_inflation_{run_id}.csv",
                       mime="text/csv", icon=":material/download:", key="zi_csv")
    return shown


def detail_section(run_id: str, table: pd.DataFrame, shown: pd.DataFrame, group_key: str | None):
    st.subheader("Gene detail")
    genes = list(shown["gene"].unique()) or list(table["gene"].unique())
    if st.session_state.get("zi_gene") not in genes:
        st.session_state["zi_gene"] = genes[0]  # set, not dropped: the browser would keep showing the old gene
    gene = st.selectbox("Gene", genes, key="zi_gene", help="Or click a row of the table.")
    row = table[table["gene"] == gene].iloc[0]
    keys = ["gene", "alpha_posterior", "beta_posterior", *(c for c in row.index if c in CHECK_FIT_COLUMNS)] + (
        [group_key] if group_key else [])
    detail = results.zi_gene_detail(run_id, tuple((k, row[k]) for k in keys))
    verdict = {ZI: "**zero-inflated**", NOT_ZI: "**not zero-inflated**", UNDETERMINED: "**undetermined**"}
    rule = "above" if row["is_zero_inflated"] else "not above"
    check = ""
    if CHECK + "call" in row.index:
        check = (f" The NB vs ZINB check: P(ZI) = {row[CHECK + 'prob_zero_inflated']:.3f}, log10 Bayes factor "
                 f"{row[CHECK + 'log10_bayes_factor']:+.2f} → {verdict[row[CHECK + 'call']]}; it finds "
                 f"{row[CHECK + 'excess_zero_fraction']:.1%} of cells with a zero beyond its NB's (π̂).")
    st.markdown(
        f"**{gene}**{f' in {group_key} {row[group_key]}' if group_key else ''}: AutoZI's P(ZI) = "
        f"{row['prob_zero_inflated']:.3f} ({rule} the threshold), log10 Bayes factor {row['log10_bayes_factor']:+.2f}"
        f" → {verdict[row['call']]}. Zeros: {row['observed_zero_fraction']:.1%} observed; AutoZI's negative "
        f"binomial expects {row['expected_zero_fraction_nb']:.1%}, its zero-inflated component "
        f"{row['expected_zero_fraction_zinb']:.1%}." + check)
    left, right = st.columns(2)
    left.plotly_chart(zi_figures.counts_figure(detail), key="zi_detail_counts")
    right.plotly_chart(zi_figures.delta_figure(detail, row), key="zi_detail_delta")
    st.caption("Left: share of cells at each count, observed and expected under the fits that made each call: "
               "AutoZI's two components (the decoder at each cell's posterior mean; solid) and the check's own NB "
               "and ZINB refitted around the model's expected counts (dotted). When the ZINB's zeros match the "
               "observed ones and the NB's fall short, the gene is zero-inflated. Right: AutoZI's posterior of δ "
               "(the probability of the plain NB) against your prior; its mass left of 0.5 is P(ZI).")

