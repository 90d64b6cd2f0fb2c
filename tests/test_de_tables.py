"""Reading a DE table (scvi_core.de) and the page's charts (ui/de_figures.py), on hand-made tables with the
columns of ``model.differential_expression``: directions, filters, the posterior FDR, marker lists, dot-plot
values, truth recovery."""

import json

import numpy as np
import pandas as pd
import pytest

from scvi_core import de
from ui import de_figures

GENES = ["up_strong", "up_rare", "down", "flat", "up_weak"]


def block(comparison="A vs rest", group1="A", lfc=(2.0, 3.0, -1.5, 0.05, 0.4), p=(0.999, 0.99, 0.98, 0.05, 0.6),
          called=(True, True, True, False, False), pct1=(0.8, 0.02, 0.3, 0.5, 0.6), pct2=(0.2, 0.0, 0.9, 0.5, 0.4)):
    p = np.asarray(p)
    return pd.DataFrame({
        "proba_de": p, "proba_not_de": 1 - p, "bayes_factor": np.log(p / (1 - p)), "lfc_mean": lfc,
        "lfc_median": lfc, "lfc_std": 0.2, "lfc_min": np.asarray(lfc) - 1, "lfc_max": np.asarray(lfc) + 1,
        "scale1": [1e-3, 1e-5, 2e-4, 5e-4, 3e-4], "scale2": [2e-4, 1e-6, 6e-4, 5e-4, 2e-4],
        "raw_mean1": 1.0, "raw_mean2": 1.0, "non_zeros_proportion1": pct1, "non_zeros_proportion2": pct2,
        "raw_normalized_mean1": 1.0, "raw_normalized_mean2": 1.0, "is_de_fdr_0.05": called, "delta": 0.25,
        "pseudocounts": 1e-6, "n_cells1": 50, "n_cells2": 150, "comparison": comparison, "group1": group1,
        "group2": "rest"}, index=pd.Index(GENES, name="gene"))


def markers_table():
    return pd.concat([block(), block("B vs rest", "B", lfc=(-2.0, 0.1, 1.5, 0.0, 0.8),
                                     called=(True, False, True, False, True), pct1=(0.1, 0.3, 0.9, 0.5, 0.7))])


def test_directions_follow_the_call_and_the_sign_of_the_fold_change():
    table = block()
    assert de.call_column(table) == "is_de_fdr_0.05"
    assert list(de.directions(table)) == ["up", "up", "down", "not DE", "not DE"]
    assert list(de.pct_higher(table)) == pytest.approx([80, 2, 90, 50, 60])
    with pytest.raises(ValueError, match="change mode"):
        de.call_column(table.drop(columns="is_de_fdr_0.05"))


def test_posterior_fdr_is_the_smallest_expected_fdr_of_a_top_set_holding_the_gene():
    table = block(p=(0.99, 0.97, 0.9, 0.2, 0.6))
    q = de.posterior_qvalues(table)
    # sets by P(DE): {0.99} 0.01, +0.97 → 0.02, +0.9 → 0.0467, +0.6 → 0.135, +0.2 → 0.268
    assert q.to_numpy() == pytest.approx([0.01, 0.02, 0.14 / 3, 1.34 / 5, 0.54 / 4])
    # calling every gene with q ≤ t is the change-mode rule (mean of 1 − P(DE) over the set ≤ t)
    assert list(q <= 0.05) == [True, True, True, False, False]


def test_shown_table_ranks_by_probability_then_fold_change_and_converts_units():
    shown = de.shown_table(block(p=(0.99, 0.99, 0.98, 0.05, 0.6)))
    # tie at 0.99: up_rare's LFC (3) is larger, but damped at the median gene's expression (2e-4) it is ~0, since it
    # is expressed at 1e-5: the well-expressed up_strong comes first
    assert list(shown["gene"]) == ["up_strong", "up_rare", "down", "up_weak", "flat"]
    row = shown.set_index("gene").loc["up_strong"]
    assert row["pct1"] == pytest.approx(80) and row["expr1"] == pytest.approx(10.0)  # per 10,000 counts
    assert row["direction"] == "up"


def test_direction_of_a_call_is_its_larger_tail():
    """A called gene is up when P(LFC ≥ δ) beats P(LFC ≤ −δ), whatever the sign of its mean LFC (a skewed posterior
    can have a mean of one sign and most of its mass beyond δ on the other); tables without the tails use the mean."""
    table = block(called=(True, True, True, True, False))
    table["proba_up"] = [0.999, 0.01, 0.0, 0.6, 0.3]
    table["proba_down"] = [0.0, 0.99, 0.98, 0.6, 0.3]
    assert list(de.directions(table)) == ["up", "down", "down", "up", "not DE"]  # equal tails: by the mean


def test_filters_search_direction_min_pct_and_calls():
    shown = de.shown_table(block())
    assert list(de.filter_table(shown, search="UP_")["gene"]) == ["up_strong", "up_rare", "up_weak"]
    assert set(de.filter_table(shown, direction="down")["gene"]) == {"down"}
    assert all(de.filter_table(shown, direction="up")["lfc_mean"] > 0)
    # up_rare is higher in A but expressed in 2% of A's cells: it must not top the list
    kept = de.filter_table(shown, min_pct=10)
    assert "up_rare" not in set(kept["gene"]) and "down" in set(kept["gene"])  # down: 90% of the rest
    assert set(de.filter_table(shown, called_only=True)["gene"]) == {"up_strong", "up_rare", "down"}
    assert len(de.filter_table(shown)) == 5


def test_top_markers_are_higher_in_the_group_expressed_and_called_first():
    markers = de.top_markers(markers_table(), 2, min_pct=10)
    assert markers == {"A": ["up_strong", "up_weak"], "B": ["down", "up_weak"]}
    assert de.top_markers(markers_table(), 1, min_pct=0)["A"] == ["up_strong"]  # called, P 0.999


def test_dot_plot_data_has_one_row_per_group_and_gene():
    table = markers_table()
    data = de.dot_plot_data(table, {"A": ["up_strong"], "B": ["down", "up_strong"]})
    assert len(data) == 4 and list(data["gene"][:2]) == ["up_strong", "down"]
    a = data[(data["group"] == "A") & (data["gene"] == "up_strong")].iloc[0]
    assert a["pct"] == pytest.approx(80) and a["expression"] == pytest.approx(10) and a["lfc"] == 2.0
    assert data.groupby("gene")["scaled"].max().eq(1).all()  # scaled per gene to its highest group
    b = data[(data["group"] == "B") & (data["gene"] == "down")].iloc[0]
    assert b["pct"] == pytest.approx(90) and b["lfc"] == 1.5


def test_truth_recovery_counts_found_false_and_wrong_way_calls():
    truth = pd.Series({"up_strong": 2.2, "up_rare": 0.1, "down": 1.0, "flat": 0.0, "up_weak": 0.6})
    found = de.truth_recovery(block(), truth, 0.25)
    # truly DE: up_strong, down, up_weak; called: up_strong, up_rare, down; down was called with the wrong sign
    assert found == {"true_de": 3, "found": 2, "called": 3, "false_calls": 1, "wrong_direction": 1, "genes": 5}


def test_sample_cells_keeps_group_order_and_caps_each_group():
    labels = np.array(["b"] * 10 + ["a"] * 3 + [""] * 2)
    cells = de.sample_cells(labels, ["a", "b"], 4)
    assert list(cells[:3]) == [10, 11, 12] and len(cells) == 7 and set(labels[cells[3:]]) == {"b"}
    assert np.array_equal(cells, de.sample_cells(labels, ["a", "b"], 4))  # seeded


def test_volcano_colours_directions_counts_them_and_carries_gene_names():
    shown = de.shown_table(block())
    fig = de_figures.volcano(shown, 0.25, "A", "rest", highlight="down")
    assert "2 genes up, 1 down" in fig.layout.title.text
    traces = {t.name: t for t in fig.data}
    assert traces["up in A (2)"].marker.color == de_figures.DIRECTION_COLOURS["up"]
    assert traces["up in rest (1)"].marker.color == de_figures.DIRECTION_COLOURS["down"]
    assert {str(row[0]) for row in traces["not DE (2)"].customdata} == {"flat", "up_weak"}
    assert [shape.x0 for shape in fig.layout.shapes] == [-0.25, 0.25]
    assert fig.layout.annotations[0].text == "down"
    assert de_figures.clicked_gene({"points": [{"customdata": ["up_rare", 2, 0, 0.99]}]}) == "up_rare"
    assert de_figures.clicked_gene({"points": []}) is None
    log_odds = de_figures.volcano(shown, 0.25, "A", "rest", y="log_odds")
    assert max(max(t.y) for t in log_odds.data) <= de_figures.LOG_ODDS_CLIP
    json.loads(fig.to_json())  # serialisable for the browser


def test_volcano_axis_follows_the_genes_that_carry_information():
    """A gene in 1% of the cells, not called, with |LFC| 12 is drawn at the edge of an axis set by the others (the
    called up_strong, 2, and the expressed flat / up_weak), its hover keeping the real value."""
    table = block(lfc=(2.0, -12.0, -1.5, 0.05, 0.4), called=(True, False, True, False, False),
                  pct1=(0.8, 0.01, 0.3, 0.5, 0.6), pct2=(0.2, 0.01, 0.9, 0.5, 0.4))
    shown = de.shown_table(table)
    assert de.informative_lfc_limit(shown, 0.25) == pytest.approx(2.0)
    fig = de_figures.volcano(shown, 0.25, "A", "rest")
    assert fig.layout.xaxis.range[1] == pytest.approx(1.03 * 1.05 * 2.0)
    rare = next(t for t in fig.data if "up_rare" in {str(row[0]) for row in t.customdata})
    position = [str(row[0]) for row in rare.customdata].index("up_rare")
    assert rare.x[position] == pytest.approx(-1.05 * 2.0) and float(rare.customdata[position][4]) == -12.0


def test_dot_plot_and_heatmap_figures():
    table = markers_table()
    data = de.dot_plot_data(table, de.top_markers(table, 2, min_pct=10))
    fig = de_figures.dot_plot(data, "lfc")
    assert list(fig.layout.xaxis.categoryarray) == ["up_strong", "up_weak", "down"]
    assert len(fig.data[0].marker.size) == 6 and fig.data[0].marker.colorscale
    expression = pd.DataFrame(np.arange(12.0).reshape(4, 3), columns=["g1", "g2", "g3"])
    heat = de_figures.heatmap(expression, np.array(["B", "A", "B", "A"]), ["A", "B"])
    assert np.asarray(heat.data[0].z).shape == (3, 4)
    assert list(heat.layout.xaxis.ticktext) == ["A", "B"]
    violin = de_figures.gene_by_group(np.arange(4.0), np.array(["B", "A", "B", "A"]), ["A", "B"], "g1")
    assert [t.name for t in violin.data] == ["A", "B"] and list(violin.data[0].y) == [1.0, 3.0]
