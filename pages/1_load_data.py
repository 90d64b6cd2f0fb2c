"""Load data: get counts in (demo, upload, server data directory, public download), see what they are, and prepare
them for the model. Widgets and layout only: files are read by a bounded process (``ui.loading``,
``dashboard.reading``) from the session's folder; where data come from is ``dashboard.data_sources``; checking,
summarising and preparing are the session's Workspace (``st.session_state["workspace"]``)."""

import streamlit as st

from dashboard import data_sources, model_opening, settings
from dashboard.reading import reading_service
from ui import loading, results

SOURCES = ["Demo data", "Upload files", "Data directory", "Public dataset (download)", "A trained model"]

workspace = st.session_state["workspace"]
reading_service().start()  # the reader's imports take seconds: done before the first Read


def orientation_choice() -> str:
    return st.radio("Orientation of .csv/.tsv tables", data_sources.ORIENTATIONS, horizontal=True, key="orientation",
                    format_func=lambda o: "guess from the names" if o == "auto" else o)


def choose_source():
    """Show the chosen source's widgets; return (name, adata, notices) when the user asked to load something."""
    source = st.radio("Where is your data?", SOURCES, horizontal=True, key="source")
    if source == "Demo data":
        choices = data_sources.DEMO_CHOICES
        size = st.selectbox("Dataset", list(choices), key="demo_size", format_func=lambda s: choices[s]["label"])
        st.caption(choices[size]["caption"])
        if st.button("Load demo data", type="primary", key="load_demo"):
            return choices[size]["name"], *loading.demo(size)
    elif source == "Upload files":
        limit = st.get_option("server.maxUploadSize")
        files = st.file_uploader(
            "An .h5ad, a 10x .h5, a 10x matrix (matrix.mtx, features.tsv, barcodes.tsv: all three, or one .zip), "
            "or a .csv/.tsv table (optionally .gz)", type=data_sources.UPLOAD_EXTENSIONS, accept_multiple_files=True,
            key="upload")
        st.caption(f"Up to {limit:,} MB per file. Bigger files: copy them into the server's data directory "
                   f"({settings.data_dir()}) and open them from 'Data directory'.")
        orientation = orientation_choice()
        if files and st.button("Read uploaded files", type="primary", key="read_upload"):
            data_sources.check_upload_size(max(f.size for f in files), limit)
            name = files[0].name if len(files) == 1 else "10x matrix (" + ", ".join(f.name for f in files) + ")"
            paths = workspace.folder.store_upload([(f.name, f.getbuffer()) for f in files])
            return name, *loading.read_bounded(workspace, paths, orientation)
    elif source == "Data directory":
        folder = settings.data_dir()
        found = data_sources.list_data_files(folder)
        on_disk_above = settings.on_disk_above_bytes()
        st.caption(f"Files in {folder} (set SCVI_DASHBOARD_DATA_DIR to use another folder). Nothing is uploaded. "
                   f".h5ad files over {on_disk_above / 2**20:,.0f} MB are opened on disk and trained on as they are, "
                   f"without loading them ({settings.ON_DISK_ABOVE_ENV}).")
        picked = st.selectbox("File", found, key="server_file", placeholder="no .h5ad/.h5 files found")
        typed = st.text_input("…or a path inside the data directory", key="server_path")
        orientation = orientation_choice()
        if st.button("Open", type="primary", key="open_server_file"):
            path = data_sources.resolve_data_path(typed or picked or "", folder)
            if data_sources.opens_on_disk(path):
                return path.name, *loading.server_file_on_disk(str(path), path.stat().st_mtime, path.stat().st_size)
            return path.name, *loading.read_bounded(workspace, [path], orientation)
    elif source == "A trained model":
        open_model()
    else:
        st.caption("PBMC 3k from 10x Genomics via scanpy: needs an internet connection.")
        if st.button("Download PBMC 3k", type="primary", key="download_pbmc3k"):
            with st.spinner("Downloading…"):
                return "PBMC 3k", data_sources.download_pbmc3k(), []
    return None


def open_model():
    """A model trained elsewhere (scvi-tools, or this dashboard's Export), opened as a finished run."""
    st.caption("An SCVI or AUTOZI model saved by scvi-tools 1.x (`model.save(folder)`, ideally with "
               "`save_anndata=True`), or downloaded from this dashboard's Export page. It opens as a finished run: "
               "Latent space, Zero-inflation, Differential expression and Export work on it.")
    where = st.radio("The model", ["Upload", "Data directory"], horizontal=True, key="model_where")
    if where == "Upload":
        files = st.file_uploader("A .zip of the model folder, or its files (model.pt, and adata.h5ad when it was "
                                 "saved with the data)", type=data_sources.MODEL_UPLOAD_EXTENSIONS,
                                 accept_multiple_files=True, key="model_upload")
    else:
        found = data_sources.list_model_sources(settings.data_dir())
        picked = st.selectbox(f"Model folder or .zip in {settings.data_dir()}", found, key="server_model",
                              placeholder="no model folders (with model.pt) or .zip files found")
    loaded = workspace.original is not None
    cells = st.radio("Cells to open it on", ["saved", "loaded"], horizontal=True, key="model_cells",
                     disabled=not loaded, format_func=lambda c: "its own adata.h5ad (saved with the model)"
                     if c == "saved" else f"the data loaded here ({workspace.dataset_name or 'none yet'})",
                     help="The loaded data must have the model's genes (others are left out) and its batch column.")
    ready = bool(files) if where == "Upload" else bool(picked)
    if st.button("Open model", type="primary", key="open_model", disabled=not ready):
        if where == "Upload":
            data_sources.check_upload_size(max(f.size for f in files), st.get_option("server.maxUploadSize"))
            paths = workspace.folder.store_upload([(f.name, f.getbuffer()) for f in files])
            model, name = model_opening.uploaded_model(paths), files[0].name
        else:
            model = data_sources.resolve_data_path(picked, settings.data_dir(), model=True)
            name = model.name
        run_id, notices = loading.open_model(workspace, model, name, on_loaded_data=loaded and cells == "loaded")
        st.session_state["opened_model"] = (run_id, name, notices)
    if st.session_state.get("opened_model"):
        run_id, name, notices = st.session_state["opened_model"]
        st.success(f"Opened '{name}' as run {run_id}.", icon=":material/check_circle:")
        for notice in notices:
            st.caption(notice)
        st.page_link("pages/4_latent_space.py", label="Latent space", icon=":material/scatter_plot:")
        if results.config(run_id)["model"] == "AUTOZI":
            st.page_link("pages/5_zero_inflation.py", label="Zero-inflation", icon=":material/exposure_zero:")
        st.page_link("pages/7_differential_expression.py", label="Differential expression",
                     icon=":material/compare_arrows:")
        st.page_link("pages/6_export.py", label="Export", icon=":material/download:")


def show_counts_choice():
    adata = workspace.original
    places = ["X" if p is None else p for p in workspace.counts_places()]  # "X" stands for None
    current = workspace.counts_layer or "X"
    chosen = st.selectbox("Raw counts are in", places, index=places.index(current), key=f"counts_place_{id(adata)}",
                          format_func=lambda p: p if p == "X" else ".raw" if p == "raw" else f"layer '{p}'")
    if chosen != current:
        workspace.choose_counts(None if chosen == "X" else chosen)
    if workspace.counts_problem:
        st.error(workspace.counts_problem)


def show_summary(summary):
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
    left.plotly_chart(loading.histogram(summary.counts_per_cell, "Counts per cell", "total counts"), width="stretch")
    right.plotly_chart(loading.histogram(summary.genes_per_cell, "Genes per cell", "detected genes"), width="stretch")
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
    summary = workspace.summary
    st.subheader("Prepare for the model")
    candidates, batch_guess, labels_guess = workspace.key_choices()
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
        workspace.prepare(batch_key, labels_key)
    elif submitted:
        with st.spinner("Filtering and selecting genes…"):
            workspace.prepare(batch_key, labels_key, min_counts=int(min_counts), min_genes=int(min_genes),
                              min_cells=int(min_cells), n_top_genes=int(n_top) or None)
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
except data_sources.LOAD_ERRORS as err:
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
        except data_sources.LOAD_ERRORS as err:
            st.error(str(err))
