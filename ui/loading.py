"""Getting data in, as the Load data page shows it: the demos and server files opened once per server (Streamlit
caches of read-only sources), a file read by the bounded reader with its progress on the page, and the summary's
histograms."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboard import data_sources, model_opening
from dashboard.reading import reading_service
from dashboard.workspace import Workspace
from scvi_core.data import histogram as bins_of
from scvi_core.io import open_on_disk


@st.cache_resource(max_entries=2, show_spinner="Preparing the demo data…")
def demo(size: str):
    """A demo dataset, made once per server; sessions never modify it (preparation works on a copy)."""
    return data_sources.demo_dataset(size), []


@st.cache_resource(max_entries=2, show_spinner="Opening the file on disk…")
def server_file_on_disk(path: str, modified: float, size: int):
    """A file too large to load, opened on disk (its counts are read chunk by chunk, nothing is loaded); cached by
    path, modification time and size, so a changed file is opened again."""
    return open_on_disk(path)


def read_bounded(workspace: Workspace, paths, orientation: str):
    """Read in a process of its own (:mod:`dashboard.reading`), showing how it goes; nothing is cached: what a
    session reads belongs to it, in its folder."""
    return _showing_progress(lambda report: reading_service().read(paths, workspace.folder.ready(), orientation,
                                                                    on_progress=report))


def open_model(workspace: Workspace, model, name: str, on_loaded_data: bool):
    """Open a saved model as a run in a process of its own (:func:`dashboard.model_opening.open_as_run`), showing
    how it goes."""
    return _showing_progress(lambda report: model_opening.open_as_run(model, name, workspace, on_loaded_data,
                                                                      on_progress=report))


def _showing_progress(work):
    """``work(report)``, where ``report`` shows a reader's progress on the page until it returns."""
    shown = st.empty()
    try:
        return work(lambda progress: shown.info(progress.text(), icon=":material/hourglass_top:"))
    finally:
        shown.empty()


def histogram(values, title: str, x_label: str) -> go.Figure:
    """Cells binned by ``values`` (50 bars, not one point per cell)."""
    bins = bins_of(values)
    figure = go.Figure(go.Bar(x=(bins["left"] + bins["right"]) / 2, y=bins["cells"], width=bins["right"] - bins["left"],
                              marker_color="#1f6f8b"))
    figure.update_layout(title=title, xaxis_title=x_label, yaxis_title="cells", height=300,
                         margin=dict(l=10, r=10, t=40, b=10))
    return figure
