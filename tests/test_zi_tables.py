"""Views of a zero-inflation table: filters, shares of genes called ZI, recovery of simulated truth."""

import pandas as pd
import pytest

from scvi_core import zi
from scvi_core.zi import CHECK_PREFIX, NOT_ZI, UNDETERMINED, ZI


@pytest.fixture
def table():
    return pd.DataFrame({
        "gene": ["CD3E", "cd8a", "MS4A1", "NKG7"],
        "mean_count": [0.5, 2.0, 3.0, 4.0],
        "is_zero_inflated": [True, True, False, True],
        "call": [UNDETERMINED, ZI, NOT_ZI, UNDETERMINED],
        CHECK_PREFIX + "call": [UNDETERMINED, NOT_ZI, NOT_ZI, ZI],
    })


def test_filter_by_name_mean_and_call(table):
    assert list(zi.filter_table(table, "cd")["gene"]) == ["CD3E", "cd8a"]
    assert list(zi.filter_table(table, min_mean=1)["gene"]) == ["cd8a", "MS4A1", "NKG7"]
    assert list(zi.filter_table(table, calls=[ZI, NOT_ZI])["gene"]) == ["cd8a", "MS4A1"]
    assert list(zi.filter_table(table, "(")["gene"]) == []  # not a regex: no error on odd input


def test_filter_where_autozi_and_the_check_disagree(table):
    assert list(zi.filter_table(table, disagreeing=True)["gene"]) == ["cd8a", "NKG7"]
    assert list(zi.filter_table(table, min_mean=3, disagreeing=True)["gene"]) == ["NKG7"]
    without_check = table.drop(columns=CHECK_PREFIX + "call")
    assert not zi.disagree(without_check).any()


def test_call_shares_overall_and_among_expressed(table):
    shares = zi.call_shares(table).set_index("genes")
    assert shares.loc["all genes", ["n_genes", "called_zi", "evidence_zi"]].tolist() == [4, 3, 1]
    assert shares.loc["all genes", "share_zi"] == pytest.approx(0.75)
    assert shares.loc["all genes", "share_evidence"] == pytest.approx(0.25)
    assert shares.loc["mean count > 1", ["n_genes", "called_zi"]].tolist() == [3, 2]


def test_recovery_counts_found_and_false_calls(table):
    truth = pd.Series({"CD3E": True, "cd8a": True, "MS4A1": True, "NKG7": False})
    assert zi.recovery(table, truth) == {"true_zi": 3, "found": 2, "found_evidence": 1, "true_nb": 1,
                                                 "false_calls": 1, "false_calls_evidence": 0}
