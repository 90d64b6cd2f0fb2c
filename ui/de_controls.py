"""The Differential expression page's controls as the session remembers them: the question and settings last put for a
run (put back when the page opens on it again, also after a restart), and the views' filters, read before their
widgets are drawn so that clicks and filters agree."""

from __future__ import annotations

import streamlit as st

from dashboard import de_answers
from dashboard.de_groups import LEIDEN, REST_SOURCE, SAVED
from scvi_core.de import DEFAULT_MIN_PCT, MARKERS, REST, Question
from ui import results

MARKERS_Q, PAIR_Q = "Markers of every cluster", "Compare two groups"
SETTING_DEFAULTS = {"de_method": "scvi", "de_delta": 0.25, "de_fdr": 0.05, "de_batch": False, "de_max_cells": 1000,
                    "de_n_samples": 5000, "de_seed": 0}
CONTROLS = ["de_question", "de_groupby", "de_a_source", "de_a_value", "de_b_source", "de_b_value",
            *SETTING_DEFAULTS]
VIEW_DEFAULTS = {"de_search": "", "de_direction": "both", "de_min_pct": DEFAULT_MIN_PCT,
                 "de_called_only": False, "de_y": "proba_de", "de_top_n": 5, "de_dot_colour": "expression",
                 "de_gene_kind": "violin"}


def restore_controls(run_id: str, columns: list[str]) -> None:
    """On opening the page on a run, put the question last answered for this run (so its answer shows again, also
    after a restart), or the defaults. Later the widgets keep what the user sets."""
    if st.session_state.get("de_for_run") == run_id and "de_question" in st.session_state:
        return
    st.session_state["de_for_run"] = run_id
    kept = results.kept_answers(run_id)
    first_source = LEIDEN if results.embedding_is_kept(run_id) or not columns else f"obs:{columns[0]}"
    values = {"de_question": MARKERS_Q, "de_groupby": LEIDEN, "de_a_source": first_source, "de_a_value": None,
              "de_b_source": REST_SOURCE, "de_b_value": None, **SETTING_DEFAULTS}
    if kept:
        values.update({"de_method": de_answers.stored_settings(kept[0]).method, **kept[0].get("controls", {})})
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


def view_state(key: str):
    """A view widget's value (its default until first drawn): read before the widget, so clicks and filters agree."""
    return st.session_state.setdefault(key, VIEW_DEFAULTS[key])


def display_name(question: Question, group: str) -> str:
    return f"cluster {group}" if question.kind == MARKERS and question.groupby == LEIDEN and group != REST else group
