"""Differential expression: which genes tell these cells apart. Two questions, one click each — the markers of every
cluster (one-vs-rest) or group A against group B (or the rest) — answered by scVI's change mode (the default) or
by this project's test of the groups' means, kept with the run, and read through a volcano plot, a filterable
table, a marker dot plot and heatmap, and one gene's expression per group. Widgets and layout only: the questions and their stored answers are
``scvi_core.de_results``, the readings of a table ``scvi_core.de_views``, the charts ``ui/de_figures.py``."""

import numpy as np
import pandas as pd
import streamlit as st

from scvi_core import de_results, de_views, embedding, groups
from scvi_core.data import registry_of
from scvi_core.de_results import MARKERS, PAIR, REST, DESettings, Question
from scvi_core.differential import METHOD_TITLES
from scvi_core.simulate import true_lfc
from ui import de_figures, results

MARKERS_Q, PAIR_Q = "Markers of every cluster", "Compare two groups"
LEIDEN, SAVED, REST_SOURCE = "leiden", "saved", "rest"
SETTING_DEFAULTS = {"de_method": "scvi", "de_delta": 0.25, "de_fdr": 0.05, "de_batch": False, "de_max_cells": 1000,
                    "de_n_samples": 5000, "de_seed": 0}
CONTROLS = ["de_question", "de_groupby", "de_a_source", "de_a_value", "de_b_source", "de_b_value",
            *SETTING_DEFAULTS]
VIEW_DEFAULTS = {"de_search": "", "de_direction": "both", "de_min_pct": de_views.DEFAULT_MIN_PCT,
                 "de_called_only": False, "de_y": "proba_de", "de_top_n": 5, "de_dot_colour": "expression",
                 "de_gene_kind": "violin"}
METHOD_QUESTIONS = {
    "scvi": "Is a random cell of A at least δ above (or below) a random cell of B? Cells that vary a lot within a "
            "group count against a call. The method of scVI's papers, as scvi-tools computes it: cite it as scVI DE.",
    "group-mean": "Is A's mean expression at least δ above (or below) B's? Calls more genes, since a clear "
                  "difference of means counts even when cells vary. Cells are the replicates: right for clusters, "
                  "not for donors or conditions. This project's own test.",
}
HEATMAP_CELLS_PER_GROUP = 60
TRUTH_COLUMN = "cell_type"  # the simulator's cell types, whose true fold changes are known


# ---- putting the question ----------------------------------------------------------------------------------------
def embedding_cached(run_id: str, n_cells: int) -> bool:
    return embedding.cache_path(results.store().results_dir(run_id), results.embedding_params(), None,
                                n_cells).exists()


def leiden(run_id: str) -> np.ndarray:
    """Leiden cluster of every cell, at the Latent space page's settings (computed once per run and settings)."""
    return np.asarray(results.run_embedding(run_id).leiden, dtype=str)


def restore_controls(run_id: str, adata, columns: list[str]) -> None:
    """On opening the page on a run, put the question last answered for this run (so its answer shows again, also
    after a restart), or the defaults. Later the widgets keep what the user sets."""
    if st.session_state.get("de_for_run") == run_id and "de_question" in st.session_state:
        return
    st.session_state["de_for_run"] = run_id
    kept = de_results.saved(results.store().results_dir(run_id))
    first_source = LEIDEN if embedding_cached(run_id, adata.n_obs) or not columns else f"obs:{columns[0]}"
    values = {"de_question": MARKERS_Q, "de_groupby": LEIDEN, "de_a_source": first_source, "de_a_value": None,
              "de_b_source": REST_SOURCE, "de_b_value": None, **SETTING_DEFAULTS}
    if kept:
        values.update({"de_method": de_results.stored_settings(kept[0]).method, **kept[0].get("controls", {})})
    put_controls(values)


def put_controls(values: dict) -> None:
    for key in CONTROLS:
        if key in values:
            st.session_state[key] = values[key]


def pick(container, label: str, options: list, key: str, **kwargs):
    """A selectbox whose remembered value is dropped when it is no longer an option (other run, other column)."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = options[0]
    return container.selectbox(label, options, key=key, **kwargs)


def source_label(source: str) -> str:
    return {LEIDEN: "Leiden cluster", SAVED: "Saved group", REST_SOURCE: "The rest of the cells"}.get(
        source, source.removeprefix("obs:"))


def group_values(run_id: str, adata, source: str, saved: dict) -> list[str]:
    if source == LEIDEN:
        return de_results.sort_groups(leiden(run_id))
    if source == SAVED:
        return list(saved)
    return de_results.sort_groups(de_results.column_labels(adata.obs[source.removeprefix("obs:")]))


def group_cells(run_id: str, adata, source: str, value: str, saved: dict) -> tuple[str, np.ndarray]:
    """The name a group is shown under, and its cells."""
    if source == LEIDEN:
        return f"cluster {value}", np.flatnonzero(leiden(run_id) == value)
    if source == SAVED:
        return value, saved[value]
    return value, np.flatnonzero(de_results.column_labels(adata.obs[source.removeprefix("obs:")]) == value)


def markers_question(run_id: str, adata, columns: list[str]) -> tuple[Question, np.ndarray | None]:
    """The grouping to find markers of, and its labels (None: Leiden clusters not computed yet — on the click)."""
    groupby = pick(st, "Groups", [LEIDEN, *columns], "de_groupby",
                   format_func=lambda o: "Leiden clusters (as on the Latent space page)" if o == LEIDEN else o,
                   help="Every group is compared with all the other cells (one-vs-rest).")
    question = Question(MARKERS, groupby)
    if groupby != LEIDEN:
        return question, de_results.column_labels(adata.obs[groupby])
    if not embedding_cached(run_id, adata.n_obs):
        st.caption("The Leiden clusters of this run are computed when you click (once per run and clustering "
                   "settings; the Latent space page shows them).")
        return question, None
    return question, leiden(run_id)


def pair_question(run_id: str, adata, columns: list[str], saved: dict) -> tuple[Question | None, np.ndarray | None]:
    """Group A and group B (or the rest), and the labels they give the cells; (None, None) after saying why two
    groups cannot be compared (the same group twice, overlapping groups, …)."""
    sources = [LEIDEN, *(f"obs:{c}" for c in columns), *([SAVED] if saved else [])]
    chosen = {}
    for side, extra in (("a", []), ("b", [REST_SOURCE])):
        st.markdown(f"**Group {side.upper()}**")
        c1, c2 = st.columns(2)
        source = pick(c1, f"Group {side.upper()}: from", extra + sources, f"de_{side}_source", format_func=source_label,
                      label_visibility="collapsed")
        if source == REST_SOURCE:
            chosen[side] = (source, None)
            continue
        values = group_values(run_id, adata, source, saved)
        if not values:
            st.error(f"{source_label(source)} offers no group: choose another source for group {side.upper()}.")
            return None, None
        if side == "b" and source == chosen["a"][0] and st.session_state.get("de_b_value") not in values:
            st.session_state["de_b_value"] = next((v for v in values if v != chosen["a"][1]), values[0])
        chosen[side] = (source, pick(c2, f"Group {side.upper()}", values, f"de_{side}_value",
                                     label_visibility="collapsed",
                                     format_func=(lambda v: f"cluster {v}") if source == LEIDEN else str))
    if not saved:
        st.caption("Groups lassoed on the Latent space page and saved there are offered here too.")
    name1, cells1 = group_cells(run_id, adata, *chosen["a"], saved)
    name2, cells2 = (None, None) if chosen["b"][0] == REST_SOURCE else group_cells(run_id, adata, *chosen["b"], saved)
    try:
        labels = de_results.pair_labels(adata.n_obs, name1, cells1, name2, cells2)
    except ValueError as err:
        st.error(str(err))
        return None, None
    same = chosen["a"][0] == chosen["b"][0] or chosen["b"][0] == REST_SOURCE
    groupby = chosen["a"][0].removeprefix("obs:") if same and chosen["a"][0] != SAVED else "groups"
    return Question(PAIR, groupby, name1, name2), labels


def settings_controls(adata) -> DESettings:
    for key, value in SETTING_DEFAULTS.items():
        st.session_state.setdefault(key, value)
    batch_key = registry_of(adata).batch_key
    method = st.radio("Method", list(METHOD_TITLES), key="de_method", horizontal=True, format_func=METHOD_TITLES.get,
                      help="scVI's change mode compares single cells' expression drawn from the model (scvi-tools' "
                           "method); the group-mean test compares the groups' mean expression. Equations: "
                           "docs/models.md.")
    st.caption(METHOD_QUESTIONS[method])
    c1, c2, c3, c4 = st.columns(4)
    delta = c1.number_input(
        "Minimal log2 fold change δ", 0.0, 5.0, step=0.05, key="de_delta",
        help="A gene is differentially expressed when its log2 fold change is likely at least δ in either direction "
             "(0.25: about 19% higher or lower). δ = 0 would call tiny differences that large groups make certain.")
    fdr = c2.number_input(
        "FDR target", 0.001, 0.5, step=0.01, format="%.3f", key="de_fdr",
        help="The genes called DE are the largest set whose expected share of false calls (the mean of their "
             "posterior probability of not being DE) is at most this.")
    max_cells = c3.number_input(
        "Cells per group (at most)", 10, 1_000_000, step=100, key="de_max_cells",
        help="Larger groups are subsampled (seeded) to this many cells: faster, and about 1,000 cells already pin "
             "down a group's mean expression. The table says how many cells were used.")
    batch = False
    if batch_key:
        batch = c4.checkbox(
            "Batch correction", key="de_batch",
            help=f"Decode every cell under each batch of '{batch_key}' and average, so both groups are compared as if "
                 "measured in the same batches: a batch unevenly spread across the groups then does not show up as "
                 "DE. Slower (once per batch); worth it when the groups' batch make-up differs.")
    else:
        c4.caption("Batch correction: this run has no batch key.")
    with st.expander("Advanced: posterior samples, seed"):
        a1, a2 = st.columns(2)
        n_samples = a1.number_input(
            "Posterior samples", 10, 100_000, step=500, key="de_n_samples",
            help="scVI change mode: paired draws of single cells' expression (scvi-tools' default 5,000). Group-mean "
                 "test: draws of each group's mean, at most 1,000 (more gives the same table), from which P(DE) is "
                 "exact. Fewer is faster and rougher.")
        seed = a2.number_input("Random seed", 0, 2**31 - 1, step=1, key="de_seed", help="Same seed, same table.")
    return DESettings(method=str(method), delta=float(delta), fdr_target=float(fdr), batch_correction=bool(batch),
                      max_cells_per_group=int(max_cells), n_samples=int(n_samples), seed=int(seed))


def compute(run_id: str, question: Question, settings: DESettings, labels: np.ndarray) -> de_results.Answer:
    n = len(de_results.comparisons(question, labels))
    text = (f"Finding the markers of {n} groups" if question.kind == MARKERS else f"Comparing {question.title()}")
    bar = st.progress(0.0, text=f"{text}: drawing from the model's posterior…")

    def progress(done: int, total: int):
        bar.progress(done / total, text=f"{text}: {done} of {total} comparison{'s' if total > 1 else ''} done…")

    controls = {key: st.session_state.get(key) for key in CONTROLS}
    answer = de_results.answer_and_save(results.model(run_id), results.store().results_dir(run_id), question,
                                        settings, labels, progress, controls)
    bar.empty()
    return answer


def kept_answers(run_id: str, current: str | None):
    """The answers kept with this run: show one again (its question and settings are put back) or delete it."""
    folder = results.store().results_dir(run_id)
    kept = de_results.saved(folder)
    if not kept:
        return
    with st.expander(f"Answers kept with this run ({len(kept)})"):
        listing = pd.DataFrame([{
            "question": m["title"], "method": METHOD_TITLES[de_results.stored_settings(m).method],
            "δ": m["settings"]["delta"], "FDR": m["settings"]["fdr_target"],
            "batch correction": m["settings"]["batch_correction"],
            "cells per group": m["settings"]["max_cells_per_group"],
            "computed": m["created"], "seconds": m.get("seconds"), "shown": m["key"] == current} for m in kept])
        st.dataframe(listing, hide_index=True)
        by_key = {m["key"]: m for m in kept}
        c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
        key = pick(c1, "Answer", list(by_key), "de_kept", format_func=lambda k: f"{by_key[k]['title']} · "
                   f"δ {by_key[k]['settings']['delta']:g} · {by_key[k]['created']}")
        controls = {"de_method": de_results.stored_settings(by_key[key]).method, **by_key[key].get("controls", {})}
        c2.button("Show it", key="de_show_kept", on_click=put_controls, args=(controls,))
        c3.button("Delete it", key="de_delete_kept", on_click=de_results.delete, args=(folder, key))


@st.cache_data(max_entries=8, show_spinner=False)
def stored_answer(folder: str, key: str) -> de_results.Answer:
    """Read once per answer, not on every rerun (a key names one immutable answer)."""
    return de_results.load(folder, key)


# ---- reading the answer ------------------------------------------------------------------------------------------
def view_state(key: str):
    """A view widget's value (its default until first drawn): read before the widget, so clicks and filters agree."""
    return st.session_state.setdefault(key, VIEW_DEFAULTS[key])


def display_name(question: Question, group: str) -> str:
    return f"cluster {group}" if question.kind == MARKERS and question.groupby == LEIDEN and group != REST else group


def truth_for(adata, question: Question, group1: str, group2: str) -> pd.Series | None:
    """The simulated true log2 fold changes of this comparison when its groups are the simulator's cell types."""
    if "simulation" not in adata.uns or question.groupby != TRUTH_COLUMN:
        return None
    try:
        return true_lfc(adata, group1, None if group2 == REST else group2)
    except ValueError:
        return None


def truth_section(block: pd.DataFrame, truth: pd.Series, delta: float):
    found = de_views.truth_recovery(block, truth, delta)
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


def table_section(answer: de_results.Answer, shown: pd.DataFrame, filtered: pd.DataFrame, name1: str, name2: str,
                  table_key: str, file_stem: str):
    c1, c2, c3, c4 = st.columns([2, 2, 1, 1], vertical_alignment="bottom")
    c1.text_input("Search genes", key="de_search", placeholder="part of a gene name")
    c2.radio("Direction", ["both", de_views.UP, de_views.DOWN], key="de_direction", horizontal=True,
             format_func={"both": "both", de_views.UP: f"higher in {name1}", de_views.DOWN: f"higher in {name2}"}.get)
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


@st.cache_data(max_entries=8, show_spinner="Decoding the markers' expression in a sample of cells…")
def cells_expression(root: str, run_id: str, cells: tuple, genes: tuple) -> pd.DataFrame:
    """Denoised expression (per 10,000 counts) of ``genes`` in ``cells``, rows in the order of ``cells``."""
    model = results.run_model(root, run_id)
    values = model.get_normalized_expression(indices=np.asarray(cells), gene_list=list(genes), library_size=1e4,
                                             return_numpy=True)
    return pd.DataFrame(values, columns=list(genes))


def markers_section(run_id: str, answer: de_results.Answer, min_pct: float):
    st.subheader("Markers of each group")
    view_state("de_top_n")
    view_state("de_dot_colour")
    c1, c2 = st.columns(2)
    n = c1.slider("Genes per group", 1, 20, key="de_top_n")
    colour = c2.radio("Dot colour", ["expression", "lfc"], key="de_dot_colour", horizontal=True,
                      format_func={"expression": "mean denoised expression", "lfc": "log2 FC vs the rest"}.get,
                      help="Mean denoised expression is scaled per gene (1 = the group where it is highest), as "
                           "scanpy's dot plots do, so each marker's groups stand out whatever its level.")
    markers = de_views.top_markers(answer.table, int(n), min_pct)
    data = de_views.dot_plot_data(answer.table, markers)
    data["group"] = data["group"].map(lambda g: display_name(answer.question, g))
    st.plotly_chart(de_figures.dot_plot(data, colour), key="de_dot_plot")
    st.caption(f"The {int(n)} best markers of each group: higher in the group than in the rest, expressed in at least "
               f"{min_pct:g}% of its cells (the table's filter), called DE first. Dot size: % of the group's cells "
               "expressing the gene.")
    order = de_results.sort_groups(answer.labels)
    cells = de_views.sample_cells(answer.labels, order, HEATMAP_CELLS_PER_GROUP)
    genes = tuple(dict.fromkeys(g for listed in markers.values() for g in listed))
    if not genes:
        return
    expression = cells_expression(str(results.store().root), run_id, tuple(int(c) for c in cells), genes)
    names = np.array([display_name(answer.question, g) for g in answer.labels[cells]])
    st.plotly_chart(de_figures.heatmap(expression, names, [display_name(answer.question, g) for g in order]),
                    key="de_heatmap")


def gene_section(run_id: str, answer: de_results.Answer, shown: pd.DataFrame, name1: str, name2: str):
    st.subheader("Gene view")
    genes = list(shown["gene"])
    c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
    gene = pick(c1, "Gene", genes, "de_gene", help="Or click a point of the volcano or a row of the table.")
    view_state("de_gene_kind")
    kind = c2.radio("Plot", ["violin", "box"], key="de_gene_kind", horizontal=True)
    row = shown[shown["gene"] == gene].iloc[0]
    verdict = {de_views.UP: f"**higher in {name1}**", de_views.DOWN: f"**higher in {name2}**",
               de_views.NOT_DE: "**not called DE**"}[row["direction"]]
    st.markdown(f"**{gene}**: log2 fold change {row['lfc_mean']:+.2f} ± {row['lfc_std']:.2f} ({name1} over {name2}), "
                f"P(DE) = {row['proba_de']:.3f} → {verdict}. Expressed in {row['pct1']:.0f}% of {name1}'s cells and "
                f"{row['pct2']:.0f}% of {name2}'s.")
    order = de_results.sort_groups(answer.labels) if answer.question.kind == MARKERS else \
        [g for g in (answer.question.group1, answer.question.group2 or REST)]
    values = results.denoised(run_id, gene)
    names = [display_name(answer.question, g) for g in order]
    labels = np.array([display_name(answer.question, g) if g else "" for g in answer.labels])
    st.plotly_chart(de_figures.gene_by_group(values, labels, names, gene, kind), key="de_gene_plot")
    if st.button(f"Colour the UMAP by {gene}", key="de_colour_umap", icon=":material/scatter_plot:",
                 help="Opens the Latent space page with the cells coloured by this gene's denoised expression."):
        st.session_state.update(colour_by="gene", colour_gene=gene, colour_kind="denoised (model)")
        st.switch_page("pages/4_latent_space.py")


def show_answer(run_id: str, adata, answer: de_results.Answer):
    st.session_state[results.DE_SHOWN] = (run_id, answer.key)
    question, settings = answer.question, answer.settings
    blocks = de_views.blocks(answer.table)
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
    truth = truth_for(adata, question, group1, group2)
    if truth is not None:
        truth_section(block, truth, settings.delta)

    shown = de_views.shown_table(block)
    filtered = de_views.filter_table(shown, view_state("de_search"), view_state("de_direction"),
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


def main():
    st.title("Differential expression")
    run_id = results.choose_run()
    if run_id is None:
        return
    adata = results.adata(run_id)
    registry = registry_of(adata)
    columns = de_results.groupable_columns(adata.obs, (registry.labels_key, registry.batch_key))
    saved = groups.read_groups(results.store().results_dir(run_id))
    restore_controls(run_id, adata, columns)
    kind = st.radio("Question", [MARKERS_Q, PAIR_Q], key="de_question", horizontal=True,
                    captions=["Each cluster or category against all other cells: what makes it distinct.",
                              "Group A against group B, or against the rest: clusters, categories or saved groups."])
    if kind == MARKERS_Q:
        question, labels = markers_question(run_id, adata, columns)
    else:
        question, labels = pair_question(run_id, adata, columns, saved)
    settings = settings_controls(adata)
    folder = results.store().results_dir(run_id)
    key = None if labels is None else de_results.stored_key(folder, question, settings, labels)
    answer = None if key is None else stored_answer(str(folder), key)
    label = "Find markers" if kind == MARKERS_Q else "Compare"
    clicked = st.button(label, type="primary", key="de_run", disabled=answer is not None or question is None,
                        help="Already answered: shown below." if answer is not None else
                        "Draws from the model's posterior; the answer is kept with the run.")
    if question is None:
        return
    if clicked and answer is None:
        if labels is None:
            labels = leiden(run_id)
        answer = compute(run_id, question, settings, labels)
    kept_answers(run_id, answer.key if answer else None)
    if answer is None:
        st.info(f"Not computed yet for these groups and settings: click **{label}**.")
        return
    show_answer(run_id, adata, answer)


try:
    main()
except (ValueError, KeyError, OSError) as err:
    st.error(f"Differential expression could not be shown: {err}")
