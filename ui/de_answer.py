"""Reading a differential-expression answer on the page: the volcano, the filterable table, the markers' dot plot
and heatmap, one gene's expression per group, and how the calls compare with the truth of simulated data. The
readings of a table are :mod:`scvi_core.de`'s, the charts :mod:`ui.de_figures`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import de_answers, de_groups
from dashboard.de_groups import LEIDEN
from scvi_core import de
from scvi_core.de import MARKERS, METHOD_TITLES, PAIR, REST
from ui import de_figures, results
from ui.de_controls import display_name, pick, view_state

HEATMAP_CELLS_PER_GROUP = 60


def truth_section(block: pd.DataFrame, truth: pd.Series, delta: float):
    found = de.truth_recovery(block, truth, delta)
    c1, c2, c3 = st.columns(3)
    c1.metric("True DE genes found", f"{found['found']:,} of {found['true_de']:,}",
              help=f"Simulated ground truth: genes whose true |log2 fold change| is at least δ = {delta:g}, and how "
                   "many of them are called DE.")
    c2.metric("False calls", f"{found['false_calls']:,} of {found['called']:,} called",
              help="Genes called DE whose true |log2 fold change| is below δ.")
    c3.metric("Called in the wrong direction", f"{found['wrong_direction']:,}",
              help="Truly DE genes called with the opposite sign of fold change.")
    st.caption("This is simulated data with known fold changes between cell types, so the calls can be checked.")


def take_gene_click(volcano_key: str, table_key: str, shown_filtered: pd.DataFrame):
    """A click on a volcano point or a table row picks that gene for the gene view (once per new click)."""
    state = st.session_state.get(volcano_key)
    gene = de_figures.clicked_gene(state.get("selection") if state else None)
    if gene and st.session_state.get("de_volcano_clicked") != (volcano_key, gene):
        st.session_state["de_volcano_clicked"] = (volcano_key, gene)
        st.session_state["de_gene"] = gene
    table = st.session_state.get(table_key)
    rows = list(table.get("selection", {}).get("rows", [])) if table else []
    if rows and rows[0] < len(shown_filtered):
        gene = shown_filtered.iloc[rows[0]]["gene"]
        if st.session_state.get("de_table_clicked") != (table_key, gene):
            st.session_state["de_table_clicked"] = (table_key, gene)
            st.session_state["de_gene"] = gene


def column_config(name1: str, name2: str) -> dict:
    number = st.column_config.NumberColumn
    return {
        "gene": st.column_config.TextColumn("gene"),
        "direction": st.column_config.TextColumn("call", help=f"up: higher in {name1}; down: higher in {name2}; "
                                                            "not DE: not called at the FDR target."),
        "lfc_mean": number("log2 FC", format="%+.2f", help=f"Posterior mean log2 fold change, {name1} over {name2}."),
        "lfc_std": number("± (sd)", format="%.2f", help="Posterior standard deviation of the log2 fold change."),
        "proba_de": number("P(DE)", format="%.3f", help="Posterior probability that |log2 FC| ≥ δ."),
        "bayes_factor": number("log BF", format="%+.1f",
                               help=f"ln of P(DE) / P(not DE), the posterior odds (not a p-value), signed: + when the "
                                    f"evidence says higher in {name1}, − higher in {name2}."),
        "log_odds": None,
        "posterior_fdr": number("posterior FDR", format="%.3f",
                                help="Expected share of false calls if this gene and every gene with a higher P(DE) "
                                     "were called; the gene is called when this is ≤ the FDR target."),
        "pct1": number(f"% {name1}", format="%.0f%%", help=f"Share of {name1}'s cells with a count of this gene."),
        "pct2": number(f"% {name2}", format="%.0f%%", help=f"Share of {name2}'s cells with a count of this gene."),
        "expr1": number(f"{name1} (denoised)", format="%.3g", help="Mean denoised expression per 10,000 counts."),
        "expr2": number(f"{name2} (denoised)", format="%.3g", help="Mean denoised expression per 10,000 counts."),
        "raw_mean1": number(f"{name1} (mean count)", format="%.3g"),
        "raw_mean2": number(f"{name2} (mean count)", format="%.3g"),
    }


def table_section(answer: de_answers.Answer, shown: pd.DataFrame, filtered: pd.DataFrame, name1: str, name2: str,
                  table_key: str, file_stem: str):
    c1, c2, c3, c4 = st.columns([2, 2, 1, 1], vertical_alignment="bottom")
    c1.text_input("Search genes", key="de_search", placeholder="part of a gene name")
    c2.radio("Direction", ["both", de.UP, de.DOWN], key="de_direction", horizontal=True,
             format_func={"both": "both", de.UP: f"higher in {name1}", de.DOWN: f"higher in {name2}"}.get)
    c3.number_input("Min % expressing", 0.0, 100.0, step=5.0, key="de_min_pct",
                    help="Hide genes expressed in fewer than this % of the cells of the group where they are higher: "
                         "genes seen in almost no cell can show large but meaningless fold changes.")
    c4.checkbox("Called DE only", key="de_called_only")
    st.caption(f"{len(filtered):,} of {len(shown):,} genes, most convincing first (P(DE), then the size of the fold "
               "change). Click a column to sort, a row to see the gene below.")
    columns = [c for c in shown.columns if c not in ("comparison", "method")]  # the caption names the method
    st.dataframe(filtered[columns], hide_index=True, column_config=column_config(name1, name2), on_select="rerun",
                 selection_mode="single-row", key=table_key)
    d1, d2 = st.columns(2)
    d1.download_button("Download this table (CSV)", filtered.to_csv(index=False), file_name=f"{file_stem}.csv",
                       mime="text/csv", icon=":material/download:", key="de_csv")
    d2.download_button("Download every comparison, all columns (CSV)", answer.table.to_csv(),
                       file_name=f"{file_stem.split('__')[0]}_full.csv", mime="text/csv", icon=":material/table:",
                       key="de_csv_full")


def markers_section(run_id: str, answer: de_answers.Answer, min_pct: float):
    st.subheader("Markers of each group")
    view_state("de_top_n")
    view_state("de_dot_colour")
    c1, c2 = st.columns(2)
    n = c1.slider("Genes per group", 1, 20, key="de_top_n")
    colour = c2.radio("Dot colour", ["expression", "lfc"], key="de_dot_colour", horizontal=True,
                      format_func={"expression": "mean denoised expression", "lfc": "log2 FC vs the rest"}.get,
                      help="Mean denoised expression is scaled per gene (1 = the group where it is highest), as "
                           "scanpy's dot plots do, so each marker's groups stand out whatever its level.")
    markers = de.top_markers(answer.table, int(n), min_pct)
    data = de.dot_plot_data(answer.table, markers)
    data["group"] = data["group"].map(lambda g: display_name(answer.question, g))
    st.plotly_chart(de_figures.dot_plot(data, colour), key="de_dot_plot")
    st.caption(f"The {int(n)} best markers of each group: higher in the group than in the rest, expressed in at least "
               f"{min_pct:g}% of its cells (the table's filter), called DE first. Dot size: % of the group's cells "
               "expressing the gene.")
    order = de.sort_groups(answer.labels)
    cells = de.sample_cells(answer.labels, order, HEATMAP_CELLS_PER_GROUP)
    genes = tuple(dict.fromkeys(g for listed in markers.values() for g in listed))
    if not genes:
        return
    expression = results.cells_expression(run_id, cells, genes)
    names = np.array([display_name(answer.question, g) for g in answer.labels[cells]])
    st.plotly_chart(de_figures.heatmap(expression, names, [display_name(answer.question, g) for g in order]),
                    key="de_heatmap")


def gene_section(run_id: str, answer: de_answers.Answer, shown: pd.DataFrame, name1: str, name2: str):
    st.subheader("Gene view")
    genes = list(shown["gene"])
    c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
    gene = pick(c1, "Gene", genes, "de_gene", help="Or click a point of the volcano or a row of the table.")
    view_state("de_gene_kind")
    kind = c2.radio("Plot", ["violin", "box"], key="de_gene_kind", horizontal=True)
    row = shown[shown["gene"] == gene].iloc[0]
    verdict = {de.UP: f"**higher in {name1}**", de.DOWN: f"**higher in {name2}**",
               de.NOT_DE: "**not called DE**"}[row["direction"]]
    st.markdown(f"**{gene}**: log2 fold change {row['lfc_mean']:+.2f} ± {row['lfc_std']:.2f} ({name1} over {name2}), "
                f"P(DE) = {row['proba_de']:.3f} → {verdict}. Expressed in {row['pct1']:.0f}% of {name1}'s cells and "
                f"{row['pct2']:.0f}% of {name2}'s.")
    order = de.sort_groups(answer.labels) if answer.question.kind == MARKERS else \
        [g for g in (answer.question.group1, answer.question.group2 or REST)]
    values = results.denoised(run_id, gene)
    names = [display_name(answer.question, g) for g in order]
    labels = np.array([display_name(answer.question, g) if g else "" for g in answer.labels])
    st.plotly_chart(de_figures.gene_by_group(values, labels, names, gene, kind), key="de_gene_plot")
    if st.button(f"Colour the UMAP by {gene}", key="de_colour_umap", icon=":material/scatter_plot:",
                 help="Opens the Latent space page with the cells coloured by this gene's denoised expression."):
        st.session_state.update(colour_by="gene", colour_gene=gene, colour_kind="denoised (model)")
        st.switch_page("pages/4_latent_space.py")


def show_answer(run_id: str, adata, answer: de_answers.Answer):
    st.session_state[results.DE_SHOWN] = (run_id, answer.key)
    question, settings = answer.question, answer.settings
    blocks = de.blocks(answer.table)
    st.subheader(question.title() if question.kind == PAIR else
                 f"Markers of every {'Leiden cluster' if question.groupby == LEIDEN else question.groupby}")
    sizes = answer.meta.get("group_sizes", {})
    seconds = answer.meta.get("seconds")
    st.caption(f"{METHOD_TITLES[settings.method]}: δ = {settings.delta:g}, FDR target {settings.fdr_target:g}, "
               f"{'with' if settings.batch_correction else 'without'} batch correction, at most "
               f"{settings.max_cells_per_group:,} cells per group, {settings.n_samples:,} posterior samples, seed "
               f"{settings.seed}. Computed {answer.meta.get('created', '')}"
               f"{f' in {seconds:.1f} s' if seconds else ''}, kept with the run. {len(sizes)} groups, "
               f"{sum(sizes.values()):,} cells.")
    names = list(blocks)
    if question.kind == MARKERS:
        comparison = pick(st, "Group", names, "de_comparison",
                          format_func=lambda c: display_name(question, blocks[c]["group1"].iloc[0]) + " vs rest",
                          help="The group whose volcano and table are shown below.")
    else:
        comparison = names[0]
    block = blocks[comparison]
    group1, group2 = str(block["group1"].iloc[0]), str(block["group2"].iloc[0])
    name1, name2 = display_name(question, group1), display_name(question, group2)
    st.caption(f"{name1}: {int(block['n_cells1'].iloc[0]):,} cells used; {name2}: {int(block['n_cells2'].iloc[0]):,} "
               "cells used.")
    truth = de_groups.known_truth(adata, question.groupby, group1, group2)
    if truth is not None:
        truth_section(block, truth, settings.delta)

    shown = de.shown_table(block)
    filtered = de.filter_table(shown, view_state("de_search"), view_state("de_direction"),
                                     float(view_state("de_min_pct")), bool(view_state("de_called_only")))
    volcano_key, table_key = f"de_volcano_{answer.key}_{comparison}", f"de_table_{answer.key}_{comparison}"
    take_gene_click(volcano_key, table_key, filtered)

    view_state("de_y")
    y = st.radio("Vertical axis", ["proba_de", "log_odds"], key="de_y", horizontal=True,
                 format_func={"proba_de": "P(DE)", "log_odds": "log-odds of DE"}.get,
                 help="P(DE) saturates at 1 for clear genes; the log-odds (ln P(DE) / P(not DE)) spreads them out.")
    st.plotly_chart(de_figures.volcano(shown, settings.delta, name1, name2, y, st.session_state.get("de_gene")),
                    key=volcano_key, on_select="rerun", selection_mode="points",
                    config={"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2,
                                                                           "filename": "volcano"}})
    st.caption(f"Each dot is a gene. Red: called DE and higher in {name1}; blue: higher in {name2}; grey: not called. "
               f"Dashed lines: ±δ. Click a dot to see the gene below.")
    file_stem = f"de_{run_id}__{comparison.replace(' ', '_')}"
    table_section(answer, shown, filtered, name1, name2, table_key, file_stem)
    if question.kind == MARKERS:
        markers_section(run_id, answer, float(view_state("de_min_pct")))
    gene_section(run_id, answer, shown, name1, name2)
