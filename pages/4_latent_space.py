"""Latent space: UMAP and Leiden clusters of the cells on the learned latent space (``X_scVI``), coloured by any
annotation, cluster, batch, counts per cell or gene; lasso cells into named groups and re-embed a group on its own.
Widgets and layout only: the embedding and the groups are kept with the run (``dashboard.embeddings``,
``dashboard.groups``, through ``ui.results``), the figure and its colourings are ``ui.umap_figure``."""

import streamlit as st

from dashboard import groups
from ui import results
from ui.umap_figure import (
    Colouring,
    category_values,
    cells_with,
    colouring_of_column,
    figure,
    leiden_for_all,
    selectable_columns,
    selected_cells,
    shown_cells,
    too_many_categories,
)

SELECT_BY_CHART, SELECT_BY_CATEGORY = "lasso or box on the chart", "clusters or annotations"


def settings_form():
    """Neighbours / UMAP / Leiden settings, kept for the session (the Export page uses the same)."""
    current = results.embedding_params()
    with st.expander("Neighbours, UMAP and clustering settings"):
        with st.form("embedding_settings"):
            c1, c2, c3 = st.columns(3)
            n_neighbors = c1.number_input("Neighbours (k)", 2, 200, current.n_neighbors, key="n_neighbors")
            min_dist = c2.number_input("UMAP min_dist", 0.0, 1.0, current.min_dist, 0.05, key="min_dist")
            resolution = c3.number_input("Leiden resolution", 0.05, 5.0, current.resolution, 0.1, key="resolution",
                                         help="Higher: more, smaller clusters.")
            if st.form_submit_button("Recompute"):
                results.set_embedding_params(int(n_neighbors), float(min_dist), float(resolution))
                st.rerun()
        st.caption("Neighbours are found on the model's latent space (`use_rep='X_scVI'`), then UMAP and Leiden "
                   "(scanpy). Each result is cached with the run, so switching back is instant.")


def choose_colouring(run_id: str, adata, emb) -> Colouring:
    registry = results.registry(run_id)
    keys = [k for k in (registry.batch_key, registry.labels_key) if k]
    columns = keys + [c for c in adata.obs.columns if c not in keys]
    options = ["leiden", *[f"obs:{c}" for c in columns], "counts", "gene"]
    names = {"leiden": "Leiden clusters", "counts": "Counts per cell", "gene": "A gene"}
    c1, c2, c3 = st.columns([2, 2, 2])
    choice = c1.selectbox("Colour by", options, key="colour_by",
                          format_func=lambda o: names.get(o, o.removeprefix("obs:")))
    if choice == "leiden":
        return Colouring("leiden", leiden_for_all(emb, adata.n_obs), True)
    if choice == "counts":
        return Colouring("counts per cell", results.counts(run_id), False)
    if choice == "gene":
        gene = c2.selectbox("Gene", list(adata.var_names), key="colour_gene")
        kind = c3.radio("Expression", ["denoised (model)", "raw counts"], key="colour_kind", horizontal=True,
                        help="Denoised: the model's normalised expression per 10,000 counts, which fills in "
                             "dropouts; raw: the observed counts.")
        if kind == "raw counts":
            return Colouring(f"{gene} (counts)", results.counts(run_id, gene), False)
        return Colouring(f"{gene} (denoised)", results.denoised(run_id, gene), False)
    return colouring_of_column(adata.obs, choice.removeprefix("obs:"))


def chart(emb, adata, colouring: Colouring, key: str):
    """Draw the UMAP of ``emb`` (a stated subsample above the drawing limit) and return the selected cells."""
    if colouring.categorical and too_many_categories(colouring.values[emb.cells]):
        st.warning(f"{colouring.label} has more than 60 different values: choose a column with fewer categories.")
        return selected_cells(None)
    shown = shown_cells(len(emb.cells))
    if len(shown) < len(emb.cells):
        st.caption(f"Showing a random {len(shown):,} of {len(emb.cells):,} cells so the browser stays responsive; "
                   "neighbours, UMAP, clusters and groups use every cell.")
    size, opacity, fmt = st.session_state.get("point_size", 5), st.session_state.get("opacity", 0.8), \
        st.session_state.get("image_format", "png")
    cells = emb.cells[shown]
    fig = figure(emb.umap[shown], cells, adata.obs_names.to_numpy()[cells], colouring, size, opacity)
    event = st.plotly_chart(fig, key=key, on_select="rerun", selection_mode=("lasso", "box"),
                            config={"displaylogo": False, "toImageButtonOptions": {"format": fmt, "scale": 2,
                                                                                     "filename": "umap"}})
    return selected_cells(event.selection if event else None)


def display_controls():
    c1, c2, c3 = st.columns(3)
    c1.slider("Point size", 1, 15, 5, key="point_size")
    c2.slider("Opacity", 0.1, 1.0, 0.8, 0.05, key="opacity")
    c3.radio("Chart download format (camera icon)", ["png", "svg"], horizontal=True, key="image_format",
             format_func=str.upper)


def category_selection(run_id: str, adata, emb):
    """Cells whose cluster / annotation is among the chosen values (an alternative to drawing a lasso)."""
    registry = results.registry(run_id)
    columns = ["leiden", *selectable_columns(adata.obs, (registry.batch_key, registry.labels_key))]
    c1, c2 = st.columns([1, 2])
    column = c1.selectbox("Column", columns, key="select_column")
    values, present = category_values(adata.obs, column, emb)
    chosen = c2.multiselect("Values", present, key=f"select_values_{column}")
    return cells_with(values, chosen)


def groups_section(run_id: str, adata, selected, by_category):
    folder = results.store().groups_file(run_id)
    cells = selected if by_category is None else by_category
    hint = " Use the lasso or box tool of the chart's toolbar to select cells." if by_category is None else ""
    st.caption(f"**{len(cells):,} cells selected.**{hint if not len(cells) else ''}")
    with st.form("save_group", clear_on_submit=True, border=False):
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        name = c1.text_input("Group name", key="group_name", placeholder="e.g. T cells")
        if c2.form_submit_button("Save selected cells as a group"):
            try:
                saved = groups.save_group(folder, name, cells, adata.n_obs)
                st.success(f"Saved group '{name.strip()}' ({len(saved):,} cells) with the run.")
            except groups.GroupError as err:
                st.error(str(err))
    saved_groups = groups.read_groups(folder)
    if not saved_groups:
        st.caption("No saved groups yet. Groups are kept with the run and exported as obs columns.")
        return saved_groups
    st.dataframe(groups.group_sizes(saved_groups), hide_index=True, width="content")
    c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
    group = c1.selectbox("Group", list(saved_groups), key="group_action")
    if c2.button("Re-embed this group", type="primary", key="reembed",
                 help="A new UMAP and Leiden clustering of just these cells, on the same latent space."):
        st.session_state["reembedded"] = (run_id, group)
    if c3.button("Delete group", key="delete_group"):
        groups.delete_group(folder, group)
        st.rerun()
    return saved_groups


def reembedded_section(run_id: str, adata, colouring: Colouring, saved_groups: dict):
    chosen = st.session_state.get("reembedded")
    if not chosen or chosen[0] != run_id or chosen[1] not in saved_groups:
        return
    name = chosen[1]
    st.subheader(f"Group '{name}' re-embedded")
    try:
        sub = results.run_embedding(run_id, saved_groups[name])
    except ValueError as err:
        st.error(str(err))
        return
    if colouring.label == "leiden":
        colouring = Colouring("leiden (within group)", leiden_for_all(sub, adata.n_obs), True)
    st.caption(f"{len(sub.cells):,} cells, {len(set(sub.leiden))} Leiden clusters within the group.")
    chart(sub, adata, colouring, key=f"umap_group_{run_id}_{name}")


def main():
    run_id, adata = results.page("Latent space (UMAP)")
    if run_id is None:
        return
    settings_form()
    emb = results.run_embedding(run_id)
    colouring = choose_colouring(run_id, adata, emb)
    selected = chart(emb, adata, colouring, key=f"umap_{run_id}")
    display_controls()
    st.subheader("Groups of cells")
    source = st.radio("Select cells by", [SELECT_BY_CHART, SELECT_BY_CATEGORY], horizontal=True, key="select_by")
    by_category = category_selection(run_id, adata, emb) if source == SELECT_BY_CATEGORY else None
    saved_groups = groups_section(run_id, adata, selected, by_category)
    reembedded_section(run_id, adata, colouring, saved_groups)


try:
    main()
except (ValueError, KeyError, OSError) as err:
    st.error(f"This run's results could not be shown: {err}")
