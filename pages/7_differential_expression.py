"""Differential expression: which genes tell these cells apart. Two questions, one click each — the markers of every
cluster (one-vs-rest) or group A against group B (or the rest) — answered by scVI's change mode (the default) or
by this project's test of the groups' means, kept with the run, and read through a volcano plot, a filterable
table, a marker dot plot and heatmap, and one gene's expression per group. Widgets and layout only: putting the
question is ``ui.de_question``, reading the answer ``ui.de_answer``; the answers are kept by
``dashboard.de_answers`` and computed by ``scvi_core.de``."""

import streamlit as st

from dashboard.de_groups import groupable_columns
from ui import de_answer, de_question, results
from ui.de_controls import MARKERS_Q, PAIR_Q, restore_controls


def main():
    run_id, adata = results.page("Differential expression")
    if run_id is None:
        return
    registry = results.registry(run_id)
    columns = groupable_columns(adata.obs, (registry.labels_key, registry.batch_key))
    saved = results.saved_groups(run_id)
    restore_controls(run_id, columns)
    kind = st.radio("Question", [MARKERS_Q, PAIR_Q], key="de_question", horizontal=True,
                    captions=["Each cluster or category against all other cells: what makes it distinct.",
                              "Group A against group B, or against the rest: clusters, categories or saved groups."])
    if kind == MARKERS_Q:
        question, labels = de_question.markers_question(run_id, adata, columns)
    else:
        question, labels = de_question.pair_question(run_id, adata, columns, saved)
    settings = de_question.settings_controls(run_id)
    key = None if labels is None else results.kept_answer_key(run_id, question, settings, labels)
    answer = None if key is None else results.stored_answer(run_id, key)
    label = "Find markers" if kind == MARKERS_Q else "Compare"
    clicked = st.button(label, type="primary", key="de_run", disabled=answer is not None or question is None,
                        help="Already answered: shown below." if answer is not None else
                        "Draws from the model's posterior; the answer is kept with the run.")
    if question is None:
        return
    if clicked and answer is None:
        answer = de_question.compute(run_id, question, settings, results.leiden(run_id) if labels is None else labels)
    de_question.kept_answers(run_id, answer.key if answer else None)
    if answer is None:
        st.info(f"Not computed yet for these groups and settings: click **{label}**.")
        return
    de_answer.show_answer(run_id, adata, answer)


try:
    main()
except (ValueError, KeyError, OSError) as err:
    st.error(f"Differential expression could not be shown: {err}")
