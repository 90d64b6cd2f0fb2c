"""The Training page's charts: one run's −ELBO curves (with the epoch whose weights were kept), and several runs'
validation curves overlaid."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

LOSS_AXIS = "−ELBO per cell (lower is better)"


def loss_figure(history, show_terms: bool, kept_epoch: int | None = None) -> go.Figure:
    """−ELBO curves; a dashed line marks the epoch whose weights were kept when it is not the last (early stopping
    restored the best one)."""
    terms = {"elbo": "−ELBO"}
    if show_terms:
        terms |= {"reconstruction_loss": "reconstruction", "kl_local": "KL"}
    figure = go.Figure()
    for term, name in terms.items():
        for split, dash in (("train", "solid"), ("validation", "dot")):
            column = f"{term}_{split}"
            if column in history and history[column].notna().any():
                figure.add_scatter(x=history["epoch"], y=history[column], mode="lines+markers", marker_size=4,
                                   name=f"{name}, {split} cells", line_dash=dash)
    figure.update_layout(height=360, xaxis_title="epoch", yaxis_title=LOSS_AXIS, margin=dict(l=10, r=10, t=30, b=10),
                         yaxis_type="log" if show_terms else "linear")
    if not show_terms and len(history) >= 5:
        figure.update_yaxes(range=zoomed_range(history))
    if kept_epoch is not None and kept_epoch < int(history["epoch"].max()):
        figure.add_vline(x=kept_epoch, line_dash="dash", line_color="#2e7d32",
                         annotation_text=f"weights of epoch {kept_epoch} kept", annotation_position="top left")
    return figure


def zoomed_range(history) -> list[float]:
    """The first epochs' loss is several times the rest and would flatten the curve; the y range is set by the
    second half of training, where progress is judged (the autoscale button shows everything)."""
    columns = [c for c in ("elbo_train", "elbo_validation") if c in history]
    later = history[columns].iloc[len(history) // 2:]
    low, high = float(history[columns].min().min()), float(later.max().max())
    margin = (high - low) or 1.0
    return [low - 0.05 * margin, high + margin]


def overlay_figure(histories: dict[str, pd.DataFrame], differences: list[str]) -> go.Figure:
    """Validation curves (training when there is no validation) of several runs (``histories`` by run id), named by
    what differs in their settings (``differences``, in the same order)."""
    figure = go.Figure()
    for (run_id, history), difference in zip(histories.items(), differences, strict=True):
        if history.empty:
            continue
        has_validation = "elbo_validation" in history and history["elbo_validation"].notna().any()
        column = "elbo_validation" if has_validation else "elbo_train"
        figure.add_scatter(x=history["epoch"], y=history[column], mode="lines",
                           name=f"{run_id[-6:]}: {difference or 'same settings'} ({column.split('_')[1]})")
    figure.update_layout(height=380, xaxis_title="epoch", yaxis_title=LOSS_AXIS, margin=dict(l=10, r=10, t=30, b=10),
                         legend=dict(orientation="h", y=-0.25))
    return figure

