"""Gene detail: the expected count histograms against scipy and against the model's own zero-inflation table."""

import numpy as np
import pytest
from scipy import stats

from dashboard.runs import RunStore
from scvi_core.zi import _gene_detail as gene_detail
from scvi_core.zi import CHECK_PREFIX


def test_bins_pool_high_counts_but_keep_zero_alone():
    assert list(gene_detail.bin_starts(np.array([0, 1, 2, 3]))) == [0, 1, 2, 3, 4, 5]
    starts = gene_detail.bin_starts(np.arange(1000), max_bins=10)
    assert starts[0] == 0 and starts[1] == 1 and len(starts) <= 10
    assert gene_detail.bin_labels(np.array([0, 1, 3, 5])) == ["0", "1–2", "3–4", "≥5"]


def test_observed_histogram_counts_every_cell_once():
    starts = np.array([0, 1, 3, 5])
    shares = gene_detail.observed_histogram(np.array([0, 0, 1, 2, 3, 4, 9, 100]), starts)
    assert shares == pytest.approx([2 / 8, 2 / 8, 2 / 8, 2 / 8])


def test_expected_histograms_match_scipy_for_a_hand_built_case():
    mu, theta, pi = np.array([2.0, 5.0]), np.array([3.0, 0.5]), np.array([0.0, 0.4])
    starts = np.arange(8)  # unit bins 0..6 and the tail ≥ 7
    nb, zinb = gene_detail.expected_histograms(mu, theta, pi, starts)
    p = theta / (theta + mu)
    by_cell = np.array([[stats.nbinom.pmf(k, theta[i], p[i]) for k in range(7)] for i in range(2)])
    tails = np.array([stats.nbinom.sf(6, theta[i], p[i]) for i in range(2)])
    assert nb[:7] == pytest.approx(by_cell.mean(0))
    assert nb[7] == pytest.approx(tails.mean())
    zinb_by_cell = (1 - pi)[:, None] * by_cell
    zinb_by_cell[:, 0] += pi
    assert zinb[:7] == pytest.approx(zinb_by_cell.mean(0))
    assert nb.sum() == pytest.approx(1.0) and zinb.sum() == pytest.approx(1.0)
    assert np.all(nb >= 0) and np.all(zinb >= 0)


def test_delta_densities_are_the_beta_pdfs():
    table = gene_detail.delta_densities(0.2, 0.9, 0.5, 0.5, points=50)
    assert table["posterior"].to_numpy() == pytest.approx(stats.beta.pdf(table["delta"], 0.2, 0.9))
    assert table["prior"].to_numpy() == pytest.approx(stats.beta.pdf(table["delta"], 0.5, 0.5))
    assert table["delta"].between(0, 1, inclusive="neither").all()


def test_gene_detail_agrees_with_the_zero_inflation_table(finished_runs):
    store = RunStore(finished_runs["root"])
    run_id = finished_runs["AUTOZI"]
    model = store.load_model(run_id)
    table = store.read_zero_inflation(run_id)
    row = table.iloc[3].to_dict()
    detail = gene_detail.gene_detail(model, row)
    hist = detail.histogram
    assert hist[["observed", "expected_nb", "expected_zinb"]].sum().to_numpy() == pytest.approx([1, 1, 1], abs=1e-6)
    zero = hist.iloc[0]
    assert zero["count"] == "0"
    assert zero["observed"] == pytest.approx(row["observed_zero_fraction"])
    assert zero["expected_nb"] == pytest.approx(row["expected_zero_fraction_nb"], rel=1e-4)
    assert zero["expected_zinb"] == pytest.approx(row["expected_zero_fraction_zinb"], rel=1e-4)
    assert detail.gene == row["gene"] and detail.group is None


def test_gene_detail_draws_the_checks_own_refits(finished_runs):
    """The check's lines are the fits that made its call (the table row's), around the expected counts, not the
    decoder's: at zero they are the NB and ZINB zero probabilities of those parameters (scipy), averaged over the
    cells; they differ from AutoZI's lines and sum to one. Without the check there are no check lines."""
    store = RunStore(finished_runs["root"])
    model = store.load_model(finished_runs["AUTOZI"])
    table = store.read_zero_inflation(finished_runs["AUTOZI"])
    row = table.loc[table[CHECK_PREFIX + "excess_zero_fraction"].idxmax()].to_dict()
    assert row[CHECK_PREFIX + "excess_zero_fraction"] > 0.1
    hist = gene_detail.gene_detail(model, row).histogram
    assert hist[["check_nb", "check_zinb"]].sum().to_numpy() == pytest.approx([1, 1], abs=1e-6)
    fit = gene_detail.fitted_parameters(model, row["gene"])
    check = {k: row[CHECK_PREFIX + k] for k in ("nb_scale", "dispersion", "zinb_scale", "zinb_dispersion",
                                                  "excess_zero_fraction")}
    mu, theta = check["nb_scale"] * fit["expected"], check["dispersion"]
    nb_zero = stats.nbinom.pmf(0, theta, theta / (theta + mu)).mean()
    mu, theta, pi = check["zinb_scale"] * fit["expected"], check["zinb_dispersion"], check["excess_zero_fraction"]
    zinb_zero = pi + (1 - pi) * stats.nbinom.pmf(0, theta, theta / (theta + mu)).mean()
    zero = hist.iloc[0]
    assert (zero["check_nb"], zero["check_zinb"]) == pytest.approx((nb_zero, zinb_zero), rel=1e-4)
    assert np.abs(hist["check_zinb"] - hist["expected_zinb"]).max() > 1e-3
    plain = {k: v for k, v in row.items() if not k.startswith(CHECK_PREFIX)}
    assert "check_nb" not in gene_detail.gene_detail(model, plain).histogram.columns


def test_gene_detail_refuses_an_scvi_model(finished_runs):
    store = RunStore(finished_runs["root"])
    model = store.load_model(finished_runs["SCVI"])
    with pytest.raises(ValueError, match="AutoZI"):
        gene_detail.gene_detail(model, {"gene": "gene_00000"})
