"""The Zero-inflation page's charts: the overview of every gene's P(ZI), and one gene's counts and posterior of δ."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from scvi_core.zi import EXPRESSED_MEAN, NOT_ZI, UNDETERMINED, ZI, GeneDetail

CALL_COLOURS = {ZI: "#c0392b", UNDETERMINED: "#95a5a6", NOT_ZI: "#1f6f8b"}
PLOT_MARGIN = dict(l=10, r=10, t=40, b=10)


def overview(table: pd.DataFrame, shares: pd.DataFrame, threshold: float):
    """Three charts side by side: P(ZI) of all genes, P(ZI) against mean expression, the share called."""
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
    scatter.add_vline(EXPRESSED_MEAN, line_dash="dot", line_color="#7f8c8d")
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


def counts_figure(detail: GeneDetail) -> go.Figure:
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


def delta_figure(detail: GeneDetail, row: pd.Series) -> go.Figure:
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

