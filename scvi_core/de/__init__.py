"""Differential expression: which genes tell two groups of cells apart, from a fitted scVI or AutoZI model.

Two methods, each under the name of what it computes (equations: ``docs/models.md``):

- ``method="scvi"`` (the default): scVI's change mode as published and as scvi-tools 1.4 computes it
  (``_change_mode``): paired posterior draws of single cells' normalised expression. It answers "is a random cell
  of A at least δ above (or below) a random cell of B?".
- ``method="group-mean"``: this project's test of the groups' mean expression (``_group_mean``): a Bayesian
  bootstrap of each group's mean, combined with the counts' own estimate and shrunk. It answers "is A's mean at
  least δ above (or below) B's?". Cells are its replicates.

Both give scvi-tools' columns (``proba_de``, ``bayes_factor``, ``lfc_*``, ``scale1/2``, raw-count statistics,
``is_de_fdr_<target>``, ``comparison``, ``group1``, ``group2``) plus ``proba_up`` / ``proba_down`` (the two tails
the direction of a call is read from), ``n_cells1/2`` (cells used) and ``method``.

One concept per private file, re-exported here: ``_differential_expression`` (the call), ``_change_mode`` and
``_group_mean`` (the two methods), ``_decoding`` (drawing and decoding cells), ``_groups`` (which cells a call
compares), ``_raw`` (the counts' own statistics), ``_calls`` (the decision rules both share), ``_questions`` (the
questions the dashboard asks: markers of every group, or a pair), ``_tables`` (reading a finished table).
"""

from ._calls import estimate_delta, fdr_calls, log_odds, moderated_lfc, rank
from ._differential_expression import METHOD_TITLES, METHODS, MODES, check_settings, differential_expression
from ._groups import Comparison, comparisons
from ._questions import (
    MARKERS,
    MAX_GROUPS,
    PAIR,
    REST,
    DESettings,
    Question,
    answer,
    column_labels,
    groupable_columns,
    masks,
    pair_labels,
    question_comparisons,
    sort_groups,
)
from ._raw import raw_statistics
from ._tables import (
    DEFAULT_MIN_PCT,
    DOWN,
    NOT_DE,
    UP,
    blocks,
    call_column,
    directions,
    dot_plot_data,
    filter_table,
    informative_lfc_limit,
    is_up,
    method_of,
    method_title,
    pct_higher,
    posterior_qvalues,
    sample_cells,
    shown_table,
    top_markers,
    truth_recovery,
)

__all__ = [
    "estimate_delta", "fdr_calls", "log_odds", "moderated_lfc", "rank",
    "METHOD_TITLES", "METHODS", "MODES", "check_settings", "differential_expression",
    "Comparison", "comparisons",
    "MARKERS", "MAX_GROUPS", "PAIR", "REST", "DESettings", "Question", "answer", "column_labels",
    "groupable_columns", "masks", "pair_labels", "question_comparisons", "sort_groups",
    "raw_statistics",
    "DEFAULT_MIN_PCT", "DOWN", "NOT_DE", "UP", "blocks", "call_column", "directions", "dot_plot_data",
    "filter_table", "informative_lfc_limit", "is_up", "method_of", "method_title", "pct_higher",
    "posterior_qvalues", "sample_cells", "shown_table", "top_markers", "truth_recovery",
]
