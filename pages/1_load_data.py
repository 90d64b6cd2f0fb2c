"""Load data: get counts in (demo, upload, server data directory, public download), see what they are, and prepare
them for the model. Widgets and layout only: files are read by a bounded process (``dashboard.reading``, with
``scvi_core``'s readers) from the session's folder; checking, summarising and preparing live in ``scvi_core``; the
result goes to the session's Workspace (``st.session_state["workspace"]``)."""

import plotly.graph_objects as go
import streamlit as st

from dashboard import settings
from dashboard.reading import reading_service
from scvi_core import io, preprocess
from scvi_core.counts import CountsError

ERRORS = (io.DataLoadError, CountsError, preprocess.PreparationError)
SOURCES = ["Demo data", "Upload files", "Data directory", "Public dataset (download)"]
ORIENTATIONS = ["auto", io.CELLS_BY_GENES, io.GENES_BY_CELLS]

workspace = st.session_state["workspace"]
reading_service().start()  # the reader's imports take seconds: done before the first Read


@st.cache_resource(max_entries=2, show_spinner="Preparing the demo data…")
def demo(size: str):
    return io.demo_dataset(size), []


def read_bounded(paths, orientation: str):
    """Read in a process of its own (:mod:`dashboard.reading`), showing how it goes; nothing is cached: what a
    session reads belongs to it, in its folder."""
    shown = st.empty()
    try:
        return reading_service().read(paths, workspace.folder.ready(), orientation,
                                      on_progress=lambda progress: shown.info(progress.text(),
                                                                               icon=":material/hourglass_top:"))
    finally:
        shown.empty()


@st.cache_resource(max_entries=2, show_spinner="Opening the file on disk…")
def open_server_file_on_disk(path: str, modified: float, size: int):
    """A file too large to load, opened on disk (its counts are read chunk by chunk, nothing is loaded); cached by
    path, modification time and size, so a changed file is opened again."""
    return io.open_on_disk(path)


def orientation_choice() -> str:
    return st.radio("Orientation of .csv/.tsv tables", ORIENTATIONS, horizontal=True, key="orientation",
                    format_func=lambda o: "guess from the names" if o == "auto" else o)


def choose_source():
    """Show the chosen source's widgets; return (name, adata, notices) when the user asked to load something."""
    source = st.radio("Where is your data?", SOURCES, horizontal=True, key="source")
    if source == "Demo data":
        size = st.selectbox("Dataset", list(io.DEMO_CHOICES), key="demo_size",
                            format_func=lambda s: io.DEMO_CHOICES[s]["label"])
        st.caption(io.DEMO_CHOICES[size]["caption"])
        if st.button("Load demo data", type="primary", key="load_demo"):
            return io.DEMO_CHOICES[size]["name"], *demo(size)
    elif source == "Upload files":
        limit = st.get_option("server.maxUploadSize")
        files = st.file_uploader(
            "An .h5ad, a 10x .h5, a 10x matrix (matrix.mtx, features.tsv, barcodes.tsv: all three, or one .zip), "
            "or a .csv/.tsv table (optionally .gz)", type=io.UPLOAD_EXTENSIONS, accept_multiple_files=True,
            key="upload")
        st.caption(f"Up to {limit:,} MB per file. Bigger files: copy them into the server's data directory "
                   f"({settings.data_dir()}) and open them from 'Data directory'.")
        orientation = orientation_choice()
        if files and st.button("Read uploaded files", type="primary", key="read_upload"):
            io.check_upload_size(max(f.size for f in files), limit)
            name = files[0].name if len(files) == 1 else "10x matrix (" + ", ".join(f.name for f in files) + ")"
            paths = workspace.folder.store_upload([(f.name, f.getbuffer()) for f in files])
            return name, *read_bounded(paths, orientation)
    elif source == "Data directory":
        folder = settings.data_dir()
        found = io.list_data_files(folder)
        on_disk_above = settings.on_disk_above_bytes()
        st.caption(f"Files in {folder} (set SCVI_DASHBOARD_DATA_DIR to use another folder). Nothing is uploaded. "
                   f".h5ad files over {on_disk_above / 2**20:,.0f} MB are opened on disk and trained on as they are, "
                   f"without loading them ({settings.ON_DISK_ABOVE_ENV}).")
        picked = st.selectbox("File", found, key="server_file", placeholder="no .h5ad/.h5 files found")
        typed = st.text_input("…or a path inside the data directory", key="server_path")
        orientation = orientation_choice()
        if st.button("Open", type="primary", key="open_server_file"):
            path = io.resolve_data_path(typed or picked or "", folder)
            stat = path.stat()
            if path.name.lower().endswith(".h5ad") and stat.st_size > on_disk_above:
                return path.name, *open_server_file_on_disk(str(path), stat.st_mtime, stat.st_size)
            return path.name, *read_bounded([path], orientation)
    else:
        st.caption("PBMC 3k from 10x Genomics via scanpy: needs an internet connection.")
        if st.button("Download PBMC 3k", type="primary", key="download_pbmc3k"):
            with st.spinner("Downloading…"):
                return "PBMC 3k", io.load_pbmc3k(settings.data_dir() / "downloads"), []
    return None


def show_counts_choice():
    adata = workspace.original
    places = ["X" if p is None else p for p in preprocess.counts_locations(adata)]  # "X" stands for None
    current = workspace.counts_layer or "X"
    chosen = st.selectbox("Raw counts are in", places, index=places.index(current), key=f"counts_place_{id(adata)}",
                          format_func=lambda p: p if p == "X" else ".raw" if p == "raw" else f"layer '{p}'")
    if chosen != current:
        workspace.choose_counts(None if chosen == "X" else chosen)
    if workspace.counts_problem:
        st.error(workspace.counts_problem)


def histogram(values, title: str, x_label: str):
    bins = preprocess.histogram(values)
    figure = go.Figure(go.Bar(x=(bins["left"] + bins["right"]) / 2, y=bins["cells"], width=bins["right"] - bins["left"],
                              marker_color="#1f6f8b"))
    figure.update_layout(title=title, xaxis_title=x_label, yaxis_title="cells", height=300,
                         margin=dict(l=10, r=10, t=40, b=10))
    st.plotly_chart(figure, width="stretch")


def show_summary(summary: preprocess.DatasetSummary):
    st.subheader("Summary")
    cells, genes, zeros, median = st.columns(4)
    cells.metric("Cells", f"{summary.n_cells:,}")
    genes.metric("Genes", f"{summary.n_genes:,}")
    zeros.metric("Zeros", f"{summary.sparsity:.1%}")
    median.metric("Median counts per cell", f"{summary.median_counts_per_cell:,.0f}")
    empty = int((summary.counts_per_cell == 0).sum())
    if empty:
        st.info(f"{empty:,} cells have no counts; 'Minimum counts per cell' below removes them.")
    left, right = st.columns(2)
    with left:
        histogram(summary.counts_per_cell, "Counts per cell", "total counts")
    with right:
        histogram(summary.genes_per_cell, "Genes per cell", "detected genes")
    left, right = st.columns(2)
    left.markdown("**Most expressed genes**")
    left.dataframe(summary.top_genes, hide_index=True, height=300, column_config={
        "total counts": st.column_config.NumberColumn(format="localized"),
        "% of all counts": st.column_config.NumberColumn(format="%.2f")})
    right.markdown("**Cell annotations (obs columns)**")
    if summary.obs_columns.empty:
        right.caption("This dataset has no cell annotations.")
    else:
        right.dataframe(summary.obs_columns, hide_index=True)


def show_preparation():
    adata, summary = workspace.original, workspace.summary
    st.subheader("Prepare for the model")
    candidates = preprocess.key_candidates(adata)
    batch_guess, labels_guess = preprocess.suggest_keys(candidates)
    options = [None, *candidates]
    if workspace.on_disk:
        st.info("This file is opened on disk: the model trains on all its cells and genes as they are. Cell and gene "
                "filters and highly variable genes are skipped, as they would need the whole matrix in memory; "
                "prepare the file beforehand if it needs them.", icon=":material/hard_drive:")
    with st.form("prepare"):
        if not workspace.on_disk:
            c1, c2, c3, c4 = st.columns(4)
            min_counts = c1.number_input("Minimum counts per cell", min_value=0, value=1, key="min_counts")
            min_genes = c2.number_input("Minimum genes per cell", min_value=0, value=0, key="min_genes")
            min_cells = c3.number_input("Minimum cells per gene", min_value=0, value=3, key="min_cells")
            n_top = c4.number_input("Highly variable genes (0 = all)", min_value=0, key="n_top_genes",
                                    value=2000 if summary.n_genes > 2000 else 0)
        c1, c2 = st.columns(2)
        batch_key = c1.selectbox("Batch key", options, index=options.index(batch_guess), key="batch_key",
                                 format_func=lambda c: "none (one batch)" if c is None else c)
        labels_key = c2.selectbox("Label key (known cell types, optional)", options, key="labels_key",
                                  index=options.index(labels_guess), format_func=lambda c: "none" if c is None else c)
        flagged = summary.obs_columns[summary.obs_columns["categorical"] & ~summary.obs_columns["usable as key"]]
        if not flagged.empty:
            st.caption("Not offered as keys: " + "; ".join(f"{r.column} ({r.note})" for r in flagged.itertuples()))
        submitted = st.form_submit_button("Prepare data", type="primary")
    if submitted and workspace.on_disk:
        prepared, _ = preprocess.prepare_on_disk(adata, summary, workspace.counts_layer, batch_key=batch_key,
                                                 labels_key=labels_key)
        workspace.set_prepared(prepared, batch_key, labels_key)
    elif submitted:
        with st.spinner("Filtering and selecting genes…"):
            prepared, _ = preprocess.prepare(
                adata, workspace.counts_layer, min_counts=int(min_counts), min_genes=int(min_genes),
                min_cells=int(min_cells), n_top_genes=int(n_top) or None, batch_key=batch_key, labels_key=labels_key)
        workspace.set_prepared(prepared, batch_key, labels_key)
    if workspace.prepared is not None:
        st.success(f"Prepared {workspace.prepared.n_obs:,} cells × {workspace.prepared.n_vars:,} genes for the model "
                   f"(batch key: {workspace.batch_key or 'none'}, label key: {workspace.labels_key or 'none'}).")
        for notice in workspace.prepared.uns.get("preparation_notices", []):
            st.caption(notice)
        st.page_link("pages/2_model.py", label="Next: choose a model", icon=":material/neurology:")


st.title("Load data")
st.caption("Start here: load raw counts, check what they are, and prepare them for scVI or AutoZI. "
           "No data at hand? The demo is one click.")
try:
    loaded = choose_source()
    if loaded:
        with st.spinner("Checking and summarising the counts…"):
            workspace.load(*loaded)
except ERRORS as err:
    st.error(str(err))

if workspace.original is not None:
    st.divider()
    st.markdown(f"### {workspace.dataset_name}")
    for notice in workspace.notices:
        st.info(notice)
    show_counts_choice()
    if workspace.summary is not None:
        show_summary(workspace.summary)
    if workspace.counts_problem is None:
        try:
            show_preparation()
        except ERRORS as err:
            st.error(str(err))
