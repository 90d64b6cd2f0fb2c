"""Putting a differential-expression question on the page: the markers of every group or a pair of groups (where
the groups come from is :mod:`dashboard.de_groups`), the method and its settings, computing the answer with its
progress, and the answers kept with the run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import de_answers, de_groups
from dashboard.de_groups import LEIDEN, REST_SOURCE, SAVED
from scvi_core import de
from scvi_core.de import MARKERS, METHOD_TITLES, PAIR, DESettings, Question
from ui import results
from ui.de_controls import CONTROLS, SETTING_DEFAULTS, pick, put_controls, source_label

METHOD_QUESTIONS = {
    "scvi": "Is a random cell of A at least δ above (or below) a random cell of B? Cells that vary a lot within a "
            "group count against a call. The method of scVI's papers, as scvi-tools computes it: cite it as scVI DE.",
    "group-mean": "Is A's mean expression at least δ above (or below) B's? Calls more genes, since a clear "
                  "difference of means counts even when cells vary. Cells are the replicates: right for clusters, "
                  "not for donors or conditions. This project's own test.",
}


def markers_question(run_id: str, adata, columns: list[str]) -> tuple[Question, np.ndarray | None]:
    """The grouping to find markers of, and its labels (None: Leiden clusters not computed yet — on the click)."""
    groupby = pick(st, "Groups", [LEIDEN, *columns], "de_groupby",
                   format_func=lambda o: "Leiden clusters (as on the Latent space page)" if o == LEIDEN else o,
                   help="Every group is compared with all the other cells (one-vs-rest).")
    question = Question(MARKERS, groupby)
    if groupby != LEIDEN:
        return question, de.column_labels(adata.obs[groupby])
    if not results.embedding_is_kept(run_id):
        st.caption("The Leiden clusters of this run are computed when you click (once per run and clustering "
                   "settings; the Latent space page shows them).")
        return question, None
    return question, results.leiden(run_id)


def pair_question(run_id: str, adata, columns: list[str], saved: dict) -> tuple[Question | None, np.ndarray | None]:
    """Group A and group B (or the rest), and the labels they give the cells; (None, None) after saying why two
    groups cannot be compared (the same group twice, overlapping groups, …)."""
    sources = [LEIDEN, *(f"obs:{c}" for c in columns), *([SAVED] if saved else [])]

    def leiden():
        return results.leiden(run_id)

    chosen = {}
    for side, extra in (("a", []), ("b", [REST_SOURCE])):
        st.markdown(f"**Group {side.upper()}**")
        c1, c2 = st.columns(2)
        source = pick(c1, f"Group {side.upper()}: from", extra + sources, f"de_{side}_source", format_func=source_label,
                      label_visibility="collapsed")
        if source == REST_SOURCE:
            chosen[side] = (source, None)
            continue
        values = de_groups.group_values(source, adata.obs, leiden, saved)
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
    name1, cells1 = de_groups.group_cells(*chosen["a"], adata.obs, leiden, saved)
    name2, cells2 = (None, None) if chosen["b"][0] == REST_SOURCE else \
        de_groups.group_cells(*chosen["b"], adata.obs, leiden, saved)
    try:
        labels = de.pair_labels(adata.n_obs, name1, cells1, name2, cells2)
    except ValueError as err:
        st.error(str(err))
        return None, None
    groupby = de_groups.pair_groupby(chosen["a"][0], chosen["b"][0])
    return Question(PAIR, groupby, name1, name2), labels


def settings_controls(run_id: str) -> DESettings:
    for key, value in SETTING_DEFAULTS.items():
        st.session_state.setdefault(key, value)
    batch_key = results.registry(run_id).batch_key
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


def compute(run_id: str, question: Question, settings: DESettings, labels: np.ndarray) -> de_answers.Answer:
    n = len(de.question_comparisons(question, labels))
    text = (f"Finding the markers of {n} groups" if question.kind == MARKERS else f"Comparing {question.title()}")
    bar = st.progress(0.0, text=f"{text}: drawing from the model's posterior…")

    def progress(done: int, total: int):
        bar.progress(done / total, text=f"{text}: {done} of {total} comparison{'s' if total > 1 else ''} done…")

    controls = {key: st.session_state.get(key) for key in CONTROLS}
    answer = de_answers.answer_and_save(results.model(run_id), results.de_folder(run_id), question, settings, labels,
                                        progress, controls)
    bar.empty()
    return answer


def kept_answers(run_id: str, current: str | None):
    """The answers kept with this run: show one again (its question and settings are put back) or delete it."""
    kept = results.kept_answers(run_id)
    if not kept:
        return
    with st.expander(f"Answers kept with this run ({len(kept)})"):
        listing = pd.DataFrame([{
            "question": m["title"], "method": METHOD_TITLES[de_answers.stored_settings(m).method],
            "δ": m["settings"]["delta"], "FDR": m["settings"]["fdr_target"],
            "batch correction": m["settings"]["batch_correction"],
            "cells per group": m["settings"]["max_cells_per_group"],
            "computed": m["created"], "seconds": m.get("seconds"), "shown": m["key"] == current} for m in kept])
        st.dataframe(listing, hide_index=True)
        by_key = {m["key"]: m for m in kept}
        c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
        key = pick(c1, "Answer", list(by_key), "de_kept", format_func=lambda k: f"{by_key[k]['title']} · "
                   f"δ {by_key[k]['settings']['delta']:g} · {by_key[k]['created']}")
        controls = {"de_method": de_answers.stored_settings(by_key[key]).method, **by_key[key].get("controls", {})}
        c2.button("Show it", key="de_show_kept", on_click=put_controls, args=(controls,))
        c3.button("Delete it", key="de_delete_kept", on_click=de_answers.delete, args=(results.de_folder(run_id), key))
