"""The charts of the Differential expression page: volcano, marker dot plot, marker heatmap, one gene per group.

Why plotly figures built here (no Streamlit): the page only lays them out, and tests can read the figures. Every
volcano point carries its gene name in ``customdata``, so a click on the chart tells the page which gene it was
(points are split into one trace per direction, and plotly numbers clicked points within their trace).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from scvi_core.de import DOWN, NOT_DE, UP, informative_lfc_limit

DIRECTION_COLOURS = {UP: "#c0392b", DOWN: "#1f6fb4", NOT_DE: "#b3b6b7"}
MARGIN = dict(l=10, r=10, t=50, b=10)
LOG_ODDS_CLIP = 12.0
"""ln odds beyond ±12 (P(DE) within 6e-6 of 0 or 1) are drawn at the edge: the draws cannot tell them apart."""


def volcano(shown: pd.DataFrame, delta: float, group1: str, group2: str, y: str = "proba_de",
            highlight: str | None = None) -> go.Figure:
    """x: mean log2 fold change of ``group1`` over ``group2``; y: P(DE) (``y="proba_de"``) or the log-odds of DE
    (``y="log_odds"``); dashed lines at ±δ. The x axis reaches as far as the genes that carry information
    (:func:`scvi_core.de.informative_lfc_limit`); genes beyond are drawn at its edge, their hover giving the
    real value. One trace per direction (up, down, not DE); hover names the gene and the % of cells expressing it in
    each group. ``shown``: a :func:`scvi_core.de.shown_table`."""
    counts = shown["direction"].value_counts()
    fig = go.Figure()
    values = shown[y].clip(-LOG_ODDS_CLIP, LOG_ODDS_CLIP) if y == "log_odds" else shown[y]
    limit = 1.05 * informative_lfc_limit(shown, delta)
    x = shown["lfc_mean"].clip(-limit, limit)
    names = {UP: f"up in {group1}", DOWN: f"up in {group2}", NOT_DE: "not DE"}
    for direction in (NOT_DE, DOWN, UP):
        part = shown["direction"] == direction
        rows = shown[part]
        fig.add_trace(go.Scattergl(
            x=x[part], y=values[part], mode="markers", name=f"{names[direction]} ({int(part.sum()):,})",
            customdata=np.stack([rows["gene"], rows["pct1"], rows["pct2"], rows["proba_de"], rows["lfc_mean"]],
                                axis=1),
            marker=dict(color=DIRECTION_COLOURS[direction], size=6 if direction == NOT_DE else 7,
                        opacity=0.5 if direction == NOT_DE else 0.85),
            hovertemplate=("<b>%{customdata[0]}</b><br>log2 FC %{customdata[4]:.2f}<br>P(DE) %{customdata[3]:.3f}<br>"
                           f"expressed in %{{customdata[1]:.0f}}% of {group1}, %{{customdata[2]:.0f}}% of {group2}"
                           "<extra></extra>")))
    for x in (-delta, delta):
        fig.add_vline(x, line_dash="dash", line_color="#566573", line_width=1)
    if highlight is not None and highlight in set(shown["gene"]):
        row = shown[shown["gene"] == highlight].iloc[0]
        value = float(np.clip(row[y], -LOG_ODDS_CLIP, LOG_ODDS_CLIP)) if y == "log_odds" else float(row[y])
        fig.add_annotation(x=float(np.clip(row["lfc_mean"], -limit, limit)), y=value, text=highlight, showarrow=True,
                           arrowhead=2,
                           bgcolor="rgba(255, 255, 255, 0.85)")
    title = (f"{group1} vs {group2}: {int(counts.get(UP, 0)):,} genes up, {int(counts.get(DOWN, 0)):,} down "
             f"(|log2 FC| ≥ {delta:g} likely)")
    fig.update_layout(
        title=title, height=480, margin=MARGIN, plot_bgcolor="white", hovermode="closest", clickmode="event+select",
        xaxis=dict(title=f"log2 fold change ({group1} / {group2})", zeroline=True, zerolinecolor="#d5d8dc",
                   gridcolor="#eaeded", range=[-1.03 * limit, 1.03 * limit]),
        yaxis=dict(title="P(DE)" if y == "proba_de" else "log-odds of DE (ln)", gridcolor="#eaeded",
                   range=[-0.03, 1.03] if y == "proba_de" else None),
        legend=dict(orientation="h", y=-0.18, itemsizing="constant"))
    return fig


def clicked_gene(selection) -> str | None:
    """The gene of the first point of a ``st.plotly_chart`` selection of a :func:`volcano` (None if nothing)."""
    points = (selection or {}).get("points", []) if isinstance(selection, dict) else getattr(selection, "points", [])
    for point in points:
        data = point.get("customdata")
        if data is not None:
            return str(np.ravel(data)[0])
    return None


def dot_plot(data: pd.DataFrame, colour: str = "expression") -> go.Figure:
    """Groups (rows) × marker genes (columns): dot size = % of the group's cells expressing the gene, colour = mean
    denoised expression scaled per gene to its highest group (``colour="expression"``, as scanpy's
    ``standard_scale="var"``; the hover gives it per 10,000 counts) or the LFC against the rest (``colour="lfc"``).
    ``data``: a :func:`scvi_core.de.dot_plot_data`."""
    genes = list(dict.fromkeys(data["gene"]))
    groups = list(dict.fromkeys(data["group"]))
    size = 4 + 18 * np.sqrt(np.clip(data["pct"].fillna(0).to_numpy(), 0, 100) / 100)
    if colour == "lfc":
        values = data["lfc"].to_numpy()
        limit = float(np.nanmax(np.abs(values))) if len(values) else 1.0
        marker = dict(color=values, colorscale="RdBu_r", cmin=-limit, cmax=limit,
                      colorbar=dict(title=dict(text="log2 FC vs rest", side="right"), thickness=14))
        label = "log2 FC %{marker.color:.2f}"
    else:
        marker = dict(color=data["scaled"].to_numpy(), colorscale="Reds", cmin=0, cmax=1,
                      colorbar=dict(title=dict(text="mean expression<br>(scaled per gene)", side="right"),
                                    thickness=14))
        label = "mean expression %{customdata[1]:.3g} per 10k"
    fig = go.Figure(go.Scatter(
        x=data["gene"], y=data["group"], mode="markers", customdata=np.stack([data["pct"], data["expression"]], axis=1),
        marker={**marker, "size": size, "line": dict(width=0.5, color="#7b7d7d")},
        hovertemplate=f"%{{x}} in %{{y}}<br>%{{customdata[0]:.0f}}% of cells express it<br>{label}<extra></extra>"))
    fig.update_layout(
        title="Top markers of each group (dot size: % of cells expressing)", plot_bgcolor="white", margin=MARGIN,
        height=max(260, 60 + 34 * len(groups)),
        xaxis=dict(categoryorder="array", categoryarray=genes, tickangle=-60, showgrid=True, gridcolor="#f2f3f4"),
        yaxis=dict(title="group", categoryorder="array", categoryarray=groups[::-1], type="category", showgrid=True,
                   gridcolor="#f2f3f4"))
    return fig


def heatmap(expression: pd.DataFrame, groups: np.ndarray, group_order: list[str]) -> go.Figure:
    """Cells (columns, sorted by group) × genes (rows): denoised expression standardised per gene (z-score over the
    cells shown), so each gene's high and low groups stand out whatever its level. ``expression``: cells × genes,
    ``groups``: the group of each row of ``expression``."""
    groups = np.asarray(groups, dtype=str)
    order = np.concatenate([np.flatnonzero(groups == g) for g in group_order]) if len(groups) else np.array([], int)
    values = np.log1p(expression.to_numpy(dtype=float)[order])
    z = (values - values.mean(axis=0)) / np.maximum(values.std(axis=0), 1e-6)
    sorted_groups = groups[order]
    fig = go.Figure(go.Heatmap(
        z=z.T, x=np.arange(len(order)), y=list(expression.columns), colorscale="RdBu_r", zmid=0, zmin=-2.5, zmax=2.5,
        customdata=np.tile(sorted_groups, (expression.shape[1], 1)),
        colorbar=dict(title=dict(text="z-score of<br>log expression", side="right"), thickness=14),
        hovertemplate="%{y} in a cell of %{customdata}<br>z = %{z:.2f}<extra></extra>"))
    ticks, position = [], 0
    for g in group_order:
        size = int((sorted_groups == g).sum())
        if size:
            ticks.append((position + size / 2, g))
            if position:
                fig.add_vline(position - 0.5, line_color="black", line_width=1)
            position += size
    fig.update_layout(
        title="Marker genes in single cells (denoised, a sample of each group)", margin=MARGIN, plot_bgcolor="white",
        height=max(320, 80 + 14 * expression.shape[1]),
        xaxis=dict(tickvals=[t[0] for t in ticks], ticktext=[t[1] for t in ticks], title="cells, by group"),
        yaxis=dict(autorange="reversed", tickfont=dict(size=10)))
    return fig


def gene_by_group(values: np.ndarray, groups: np.ndarray, group_order: list[str], gene: str,
                  kind: str = "violin") -> go.Figure:
    """One gene's denoised expression (per 10,000 counts) in each group, as violins (with their box) or boxes."""
    groups = np.asarray(groups, dtype=str)
    fig = go.Figure()
    for i, group in enumerate(group_order):
        part = values[groups == group]
        colour = ["#c0392b", "#1f6fb4", "#7d3c98", "#117a65", "#b9770e", "#2e4053"][i % 6]
        if kind == "box":
            fig.add_trace(go.Box(y=part, name=group, marker_color=colour, boxpoints=False))
        else:
            fig.add_trace(go.Violin(y=part, name=group, line_color=colour, box_visible=True, meanline_visible=True,
                                    points=False, spanmode="hard"))
    fig.update_layout(title=f"{gene}: denoised expression per group", yaxis_title="per 10,000 counts",
                      height=380, margin=MARGIN, showlegend=False, plot_bgcolor="white",
                      yaxis=dict(gridcolor="#eaeded", rangemode="tozero"))
    return fig
