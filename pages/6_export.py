"""Export: take a run home — an annotated ``.h5ad`` for scanpy, CSV tables, the trained model as a zip that
``scvi_core`` loads or one in scvi-tools' layout, and the Python code that reproduces the run. Widgets only: everything is built by
``dashboard.export``, on demand when a download button is clicked (large files are never built for nothing)."""

import streamlit as st

from dashboard import export, groups
from ui import results

NO_DE = ""


def choose_differential(run_id: str):
    """The differential-expression answer to include: one of those kept with the run (default: the one last shown
    on the Differential expression page, else the newest), or none."""
    kept = {m["key"]: m for m in results.kept_answers(run_id)}
    if not kept:
        st.caption("No differential-expression answer yet: the Differential expression page computes them.")
        return None
    options = [*kept, NO_DE]
    shown = st.session_state.get(results.DE_SHOWN)
    default = shown[1] if shown and shown[0] == run_id and shown[1] in kept else options[0]
    key = st.selectbox("Differential expression to include", options, index=options.index(default),
                       key=f"export_de_{run_id}",
                       format_func=lambda k: "none" if k == NO_DE else
                       f"{kept[k]['title']} · δ {kept[k]['settings']['delta']:g} · {kept[k]['created']}",
                       help="Answers kept with this run (computed on the Differential expression page).")
    return None if key == NO_DE else results.stored_answer(run_id, key)


def main():
    run_id, adata = results.page("Export")
    if run_id is None:
        return
    store, config = results.store(), results.config(run_id)
    with_umap = st.checkbox("Include the UMAP and Leiden clusters (computed now if not yet)", value=True,
                            key="export_umap")
    emb = results.run_embedding(run_id) if with_umap else None
    saved = results.saved_groups(run_id)
    table = results.zero_inflation_table(run_id)
    threshold, min_bf = results.zi_decision()
    differential = choose_differential(run_id)

    def annotated():
        """Built only when a download is clicked (outside the script run: no Streamlit calls in here)."""
        return export.annotated_adata(adata, store.read_latent(run_id), run_id, config, emb, saved, table,
                                      differential)

    st.subheader("AnnData for scanpy")
    written = ["`obsm['X_scVI']` (latent space)"]
    if with_umap:
        params = results.embedding_params()
        written += [f"`obsm['X_umap']`, `obs['leiden']` ({params.n_neighbors} neighbours, resolution "
                    f"{params.resolution:g})"]
    if saved:
        written.append(", ".join(f"`obs['{groups.obs_column(name)}']`" for name in saved) + " (saved groups)")
    if config.get("model") == "AUTOZI":
        written.append(f"`var['autozi_*']`: AutoZI's zero-inflation answer and the counts (calls at P(ZI) > "
                       f"{threshold:g}, evidence ≥ {min_bf:g}); `var['nb_zinb_check_*']`: the NB vs ZINB check beside "
                       "it; `uns['autozi_zero_inflation']`: which method made each column, the prior, the threshold")
    de_groupby = None
    if differential is not None:
        obs = adata.obs.assign(leiden=emb.leiden) if emb is not None else adata.obs
        de_groupby = export.de_groupby_name(obs, differential)
        written.append(f"`uns['scvi_de']` ({differential.question.title()}: the whole table), "
                       f"`uns['rank_genes_groups']` by `obs['{de_groupby}']` for scanpy "
                       f"(`sc.pl.rank_genes_groups_dotplot(adata)`; its scores and p-values are posterior "
                       "quantities, explained in its `params['note']`)")
    written.append("`uns['scvi_dashboard']`: run id, configuration, package versions")
    counts_file = export.counts_file(adata)
    counts = "raw counts in X" if counts_file is None else \
        f"without X (the counts stay in `{counts_file}`, the same cells in the same order)"
    st.markdown(f"{adata.n_obs:,} cells × {adata.n_vars:,} genes, {counts}, with:\n" +
                "\n".join(f"- {line}" for line in written))
    st.download_button("Download .h5ad", lambda: export.h5ad_bytes(annotated()), file_name=f"scvi_run_{run_id}.h5ad",
                       mime="application/x-hdf5", type="primary", icon=":material/download:", key="download_h5ad")

    st.subheader("Tables (CSV)")
    c1, c2 = st.columns(2)
    c1.download_button("Cells: annotations, UMAP, latent coordinates", lambda: export.cells_table(annotated()).to_csv(
        index=False), file_name=f"cells_{run_id}.csv", mime="text/csv", icon=":material/table:", key="download_cells")
    if table is not None:
        c2.download_button("Zero-inflation table", table.to_csv(index=False), file_name=f"zero_inflation_{run_id}.csv",
                           mime="text/csv", icon=":material/table:", key="download_zi")
    if differential is not None:
        (c2 if table is None else c1).download_button(
            "Differential expression table", differential.table.to_csv(), file_name=f"de_{run_id}_full.csv",
            mime="text/csv", icon=":material/table:", key="download_de")

    st.subheader("Trained model")
    left, right = st.columns(2)
    left.download_button("Download the model (.zip)", lambda: export.model_zip_bytes(store.model_dir(run_id)),
                         file_name=f"model_{run_id}.zip", mime="application/zip", icon=":material/download:",
                         key="download_model")
    model_name = config.get("model", "SCVI")
    left.caption(f"For scvi_core: `scvi_core.model.load_model('model_{run_id}.zip', adata)` on the exported data "
                 f"(or unzip it and call `{model_name}.load('model_{run_id}', adata)`).")
    folder = f"scvi_tools_model_{run_id}"
    right.download_button("Download for scvi-tools (.zip)",
                          lambda: export.scvi_tools_model_zip(store.load_model(run_id), folder),
                          file_name=f"{folder}.zip", mime="application/zip", icon=":material/download:",
                          key="download_scvi_tools_model")
    right.caption(f"scvi-tools' own layout: unzip it, then in scvi-tools 1.x "
                  f"`scvi.model.{model_name}.load('{folder}', adata)` on the exported .h5ad, and go on from there "
                  "(scANVI, query mapping).")

    st.subheader("Reproduce this run in Python")
    st.code(export.reproduce_snippet(config, adata, f"scvi_run_{run_id}.h5ad", differential, de_groupby,
                                     model_folder=f"model_{run_id}"), language="python")


try:
    main()
except (ValueError, KeyError, OSError) as err:
    st.error(f"This run could not be exported: {err}")
