"""Zero-inflation: AutoZI's per-gene answer (P(ZI) = q(δ < ½), evidence, call at a chosen threshold) with the NB vs
ZINB check beside it, its plots, a gene detail that shows *why* each calls a gene zero-inflated, and recovery of the
truth on simulated data. Widgets and layout only: the numbers come from ``scvi_core.zero_inflation``,
``scvi_core.zi_summary`` and ``scvi_core.gene_detail``."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import config as cfg
from scvi_core import gene_detail, zi_summary
from scvi_core.data import registry_of
from scvi_core.io import working_copy
from scvi_core.zero_inflation import CHECK_PREFIX, NOT_ZI, UNDETERMINED, ZI
from scvi_core.zi_evidence import CHECK_FITS
from ui import results

CALL_COLOURS = {ZI: "#c0392b", UNDETERMINED: "#95a5a6", NOT_ZI: "#1f6f8b"}
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
PLOT_MARGIN = dict(l=10, r=10, t=40, b=10)


def offer_autozi(run_id: str):
    """scVI runs: zero inflation is AutoZI's question; set one up on this run's data."""
    st.info("This run is an scVI model. Whether a gene is zero-inflated is an AutoZI question: AutoZI fits, for "
            "every gene, how likely its counts need extra zeros beyond a negative binomial.")
    if st.button("Configure an AutoZI model on this run's data", type="primary", key="configure_autozi"):
        workspace = st.session_state["workspace"]
        adata = results.adata(run_id)
        if workspace.prepared is None or workspace.prepared.shape != adata.shape:
            registry = registry_of(adata)
            workspace.load(results.config(run_id).get("dataset_name") or f"run {run_id}", working_copy(adata), [])
            workspace.set_prepared(working_copy(adata), registry.batch_key, registry.labels_key)
        workspace.model_config = cfg.preset_config("AUTOZI", "standard", adata.n_obs, adata.n_vars)
        st.switch_page("pages/2_model.py")


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
        found = zi_summary.recovery(table, truth)
        columns[2].metric("True ZI genes found", f"{found['found_evidence']:,} of {found['true_zi']:,}",
                          f"{found['found']:,} {plain}", delta_color="off", delta_arrow="off",
                          help="Simulated ground truth, by the evidence-aware call (and by P(ZI) alone).")
        columns[3].metric("NB genes wrongly called ZI", f"{found['false_calls_evidence']:,} of {found['true_nb']:,}",
                          f"{found['false_calls']:,} {plain}", delta_color="off", delta_arrow="off",
                          help="Simulated ground truth, by the evidence-aware call (and by P(ZI) alone).")
        st.caption("This is simulated data with known zero-inflated genes, so the calls can be checked.")
    if CHECK + "call" in table.columns:
        n_check, n_disagree = int((table[CHECK + "call"] == ZI).sum()), int(zi_summary.disagree(table).sum())
        st.caption(f"Calls above are AutoZI's. The NB vs ZINB check calls {n_check:,} genes zero-inflated; the two "
                   f"calls differ on {n_disagree:,} genes (filter them below).")


def plots(table: pd.DataFrame, shares: pd.DataFrame, threshold: float):
    left, middle, right = st.columns([2, 3, 2])
    hist = go.Figure(go.Histogram(x=table["prob_zero_inflated"], xbins=dict(start=0, end=1, size=0.05),
                                  marker_color="#1f6f8b"))
    hist.add_vline(threshold, line_dash="dash", line_color="#c0392b")
    hist.update_layout(title="P(ZI) of all genes", xaxis_title="P(ZI)", yaxis_title="genes", height=320,
                       margin=PLOT_MARGIN, bargap=0.05)
    left.plotly_chart(hist, key="zi_hist")
    scatter = go.Figure()
    for call, colour in CALL_COLOURS.items():
        part = table[table["call"] == call]
        scatter.add_trace(go.Scattergl(
            x=part["mean_count"].clip(lower=1e-3), y=part["prob_zero_inflated"], mode="markers", name=call,
            text=part["gene"], marker=dict(color=colour, size=6, opacity=0.8),
            hovertemplate="%{text}<br>mean count %{x:.3g}<br>P(ZI) %{y:.3f}<extra></extra>"))
    scatter.add_hline(threshold, line_dash="dash", line_color="#c0392b")
    scatter.add_vline(zi_summary.EXPRESSED_MEAN, line_dash="dot", line_color="#7f8c8d")
    scatter.update_layout(title="P(ZI) against mean expression", xaxis_title="mean count (log scale)",
                          yaxis_title="P(ZI)", xaxis_type="log", height=320, margin=PLOT_MARGIN,
                          legend=dict(orientation="h", y=-0.25))
    middle.plotly_chart(scatter, key="zi_scatter")
    bars = go.Figure()
    for name, share_column, colour in (("called ZI", "share_evidence", "#c0392b"),
                                       (f"P(ZI) > {threshold:.2f}", "share_zi", "#e6a8a0")):
        share = shares[share_column]
        bars.add_trace(go.Bar(x=shares["genes"], y=share, name=name, marker_color=colour, textposition="auto",
                              text=[f"{s:.0%}" if s == s else "–" for s in share]))
    bars.update_layout(title="Share of genes called ZI", yaxis_tickformat=".0%", yaxis_range=[0, 1], height=320,
                       margin=PLOT_MARGIN, barmode="group", legend=dict(orientation="h", y=-0.25))
    right.plotly_chart(bars, key="zi_share")


def table_section(table: pd.DataFrame, group_key: str | None, run_id: str) -> pd.DataFrame:
    """Search / filter the table, show it (a click on a row opens that gene's detail), offer it as CSV."""
    st.markdown(QUESTIONS)
    c1, c2, c3, c4 = st.columns([2, 1, 2, 1.4])
    search = c1.text_input("Search genes", key="zi_search", placeholder="part of a gene name")
    min_mean = c2.number_input("Mean count >", 0.0, value=0.0, step=0.5, key="zi_min_mean",
                               help="The AutoZI authors interpret only genes with mean count > 1.")
    calls = c3.multiselect("AutoZI calls", [ZI, UNDETERMINED, NOT_ZI], default=[ZI, UNDETERMINED, NOT_ZI],
                           key="zi_calls")
    disagreeing = c4.checkbox("Disagreements only", key="zi_disagree",
                              disabled=CHECK + "call" not in table.columns,
                              help="Genes whose AutoZI call and NB vs ZINB check call differ.")
    shown = zi_summary.filter_table(table, search, min_mean, calls, disagreeing)
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


@st.cache_data(max_entries=64, show_spinner="Computing the gene's expected counts…")
def detail_for(root: str, run_id: str, row: tuple) -> gene_detail.GeneDetail:
    """Cached per run and table row (gene, group, α, β, the check's fits): the decoder pass over the cells is the
    slow part."""
    return gene_detail.gene_detail(results.run_model(root, run_id), dict(row))


def detail_section(run_id: str, table: pd.DataFrame, shown: pd.DataFrame, group_key: str | None):
    st.subheader("Gene detail")
    genes = list(shown["gene"].unique()) or list(table["gene"].unique())
    if st.session_state.get("zi_gene") not in genes:
        st.session_state["zi_gene"] = genes[0]  # set, not dropped: the browser would keep showing the old gene
    gene = st.selectbox("Gene", genes, key="zi_gene", help="Or click a row of the table.")
    row = table[table["gene"] == gene].iloc[0]
    keys = ["gene", "alpha_posterior", "beta_posterior", *(c for c in row.index if c in CHECK_FIT_COLUMNS)] + (
        [group_key] if group_key else [])
    detail = detail_for(str(results.store().root), run_id, tuple((k, row[k]) for k in keys))
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
    left.plotly_chart(count_figure(detail), key="zi_detail_counts")
    right.plotly_chart(delta_figure(detail, row), key="zi_detail_delta")
    st.caption("Left: share of cells at each count, observed and expected under the fits that made each call: "
               "AutoZI's two components (the decoder at each cell's posterior mean; solid) and the check's own NB "
               "and ZINB refitted around the model's expected counts (dotted). When the ZINB's zeros match the "
               "observed ones and the NB's fall short, the gene is zero-inflated. Right: AutoZI's posterior of δ "
               "(the probability of the plain NB) against your prior; its mass left of 0.5 is P(ZI).")


def count_figure(detail: gene_detail.GeneDetail) -> go.Figure:
    hist = detail.histogram
    fig = go.Figure([
        go.Bar(x=hist["count"], y=hist["observed"], name="observed", marker_color="#95a5a6"),
        go.Scatter(x=hist["count"], y=hist["expected_nb"], name="AutoZI: NB", mode="lines+markers",
                   line=dict(color="#1f6f8b")),
        go.Scatter(x=hist["count"], y=hist["expected_zinb"], name="AutoZI: ZINB", mode="lines+markers",
                   line=dict(color="#c0392b")),
    ])
    if "check_nb" in hist.columns:
        fig.add_scatter(x=hist["count"], y=hist["check_nb"], name="check: NB", mode="lines",
                        line=dict(color="#1f6f8b", dash="dot"))
        fig.add_scatter(x=hist["count"], y=hist["check_zinb"], name="check: ZINB", mode="lines",
                        line=dict(color="#c0392b", dash="dot"))
    fig.update_layout(title=f"Counts of {detail.gene}", xaxis_title="count", yaxis_title="share of cells",
                      yaxis_tickformat=".0%", height=360, margin=PLOT_MARGIN, xaxis_type="category",
                      legend=dict(x=0.98, y=0.98, xanchor="right", bgcolor="rgba(255, 255, 255, 0.8)"))
    return fig


def delta_figure(detail: gene_detail.GeneDetail, row: pd.Series) -> go.Figure:
    """Linear axis, so the shaded area reads as probability; Beta densities with α or β < 1 rise without bound at
    the edges, so the axis stops at twice the highest density away from them."""
    delta = detail.delta
    inner = delta[delta["delta"].between(0.05, 0.95)]
    top = max(2.0, 2 * float(inner[["posterior", "prior"]].to_numpy().max()))
    left = delta[delta["delta"] < 0.5]
    fig = go.Figure([
        go.Scatter(x=left["delta"], y=left["posterior"], fill="tozeroy", mode="none",
                   name="P(ZI): mass below 0.5",
                   fillcolor="rgba(192, 57, 43, 0.25)", hoverinfo="skip"),
        go.Scatter(x=delta["delta"], y=delta["posterior"], name=f"posterior Beta({row['alpha_posterior']:.2f}, "
                   f"{row['beta_posterior']:.2f})", line=dict(color="#c0392b")),
        go.Scatter(x=delta["delta"], y=delta["prior"], name="prior", line=dict(color="#7f8c8d", dash="dot")),
    ])
    fig.add_vline(0.5, line_dash="dash", line_color="#1b2631")
    fig.update_layout(title=f"AutoZI's posterior of δ for {detail.gene}", xaxis_title="δ (probability of the plain NB)",
                      yaxis_title="density", yaxis_range=[0, top], height=360, margin=PLOT_MARGIN,
                      legend=dict(orientation="h", y=-0.3))
    return fig


def main():
    st.title("Zero-inflation")
    run_id = results.choose_run()
    if run_id is None:
        return
    if results.config(run_id).get("model") != "AUTOZI":
        offer_autozi(run_id)
        return
    decision_controls()
    table = results.zero_inflation_table(run_id)
    group_key = zi_summary.group_column(table)
    if group_key:
        groups = list(pd.unique(table[group_key].astype(str)))
        group = st.selectbox(f"{group_key} (AutoZI fitted one δ per gene and {group_key})", groups, key="zi_group")
        table = table[table[group_key].astype(str) == group].reset_index(drop=True)
    var = results.adata(run_id).var
    truth = var["is_zero_inflated"] if "is_zero_inflated" in var.columns else None
    threshold = results.zi_decision()[0]
    shares = zi_summary.call_shares(table)
    summary(table, shares, truth, threshold)
    plots(table, shares, threshold)
    shown = table_section(table, group_key, run_id)
    detail_section(run_id, table, shown, group_key)


try:
    main()
except (ValueError, KeyError, OSError) as err:
    st.error(f"This run's zero-inflation results could not be shown: {err}")
