"""Differential expression: the change-mode arithmetic on hand-made posteriors, group handling, seeds, bad input, and
on simulated data with known fold changes, that the calls find the truly DE genes."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score

from scvi_core import AUTOZI, SCVI, simulate
from scvi_core import de
from scvi_core.de import _change_mode as change_mode
from scvi_core.de import _group_mean as gm
from scvi_core.data import true_lfc


# ---- arithmetic on hand-made posteriors ----------------------------------------------------------------------
def test_change_mode_probabilities_from_the_posterior_mixture():
    """Gene 0: LFC ~ 0.3·(no change: exactly 0) + 0.7·N(0.5, 0.3²) (mostly up); gene 1: N(−1, 0.2²) (down); gene 2:
    N(0, 0.1²) (no change). proba_de = max(P(LFC ≥ δ), P(LFC ≤ −δ)) against scipy's normal tails and the frequencies
    of many draws; the mean and sd against those draws; vanilla's P(LFC > 0) leaves the exact 0 out."""
    weight = np.array([[0.3, 0.7], [0.0, 1.0], [0.0, 1.0]])
    mean = np.array([[0.0, 0.5], [0.0, -1.0], [0.0, 0.0]])
    sd = np.array([[0.0, 0.3], [0.0, 0.2], [0.0, 0.1]])
    posterior = gm.NormalMixture(weight, mean, sd)
    locs, scales, share = np.array([0.5, -1.0, 0.0]), np.array([0.3, 0.2, 0.1]), np.array([0.7, 1.0, 1.0])
    for delta in (0.25, 0.0):
        at_zero = (1 - share) * (delta == 0)  # the point mass is ≥ 0 and ≤ 0
        up = share * stats.norm.sf(delta, locs, scales) + at_zero
        down = share * stats.norm.cdf(-delta, locs, scales) + at_zero
        np.testing.assert_allclose(gm._probabilities(posterior, "change", delta)["proba_de"], np.maximum(up, down))
    vanilla = gm._probabilities(posterior, "vanilla", None)["proba_m1"]
    np.testing.assert_allclose(vanilla, share * stats.norm.sf(0.0, locs, scales))
    # the same from draws of the mixture
    rng = np.random.default_rng(0)
    n = 400_000
    moved = rng.random((n, 3)) < share
    lfc = np.where(moved, rng.normal(locs, scales, (n, 3)), 0.0)
    proba_de = np.maximum((lfc >= 0.25).mean(0), (lfc <= -0.25).mean(0))
    np.testing.assert_allclose(gm._probabilities(posterior, "change", 0.25)["proba_de"], proba_de, atol=0.005)
    np.testing.assert_allclose(vanilla, (lfc > 0).mean(0), atol=0.005)
    lfc_mean, lfc_std = posterior.moments()
    np.testing.assert_allclose(lfc_mean, lfc.mean(0), atol=0.005)
    np.testing.assert_allclose(lfc_std, lfc.std(0), atol=0.005)


def test_lfc_median_min_and_max_of_the_draws():
    rng = np.random.default_rng(0)
    lfc = np.stack([rng.normal(0.5, 0.3, 1001), rng.normal(-1.0, 0.2, 1001)], axis=1)
    out = gm._draw_summaries(torch.as_tensor(lfc))
    np.testing.assert_allclose(out["lfc_median"], np.median(lfc, 0))
    np.testing.assert_allclose(out["lfc_min"], lfc.min(0))
    np.testing.assert_allclose(out["lfc_max"], lfc.max(0))


def test_counts_estimate_and_its_variance():
    """The counts' LFC of mean shares (plus one count's share 1 / total counts of the group), and its delta-method
    variance against a bootstrap of the cells; a gene without a count gets the sampling variance of one count."""
    rng = np.random.default_rng(0)
    counts = rng.poisson(np.r_[5.0, 1.0, 0.2, 20.0], (600, 4)) + np.eye(4, dtype=int)[rng.integers(0, 4, 600)]
    cells1, cells2 = np.arange(0, 300), np.arange(300, 600)
    counts[cells1, 0] *= 2
    shares = counts / counts.sum(1, keepdims=True)

    def share_mean(cells):
        return shares[cells].mean(0) + 1.0 / counts[cells].sum()

    lfc, variance = gm.count_lfc(gm.share_moments(counts, cells1, cells2, np.zeros(300), np.zeros(300)), 1e-9)
    np.testing.assert_allclose(lfc, np.log2(share_mean(cells1)) - np.log2(share_mean(cells2)), rtol=1e-6)
    boot = [np.log2(shares[rng.choice(cells1, 300)].mean(0)) - np.log2(shares[rng.choice(cells2, 300)].mean(0))
            for _ in range(2000)]
    np.testing.assert_allclose(variance, np.var(boot, axis=0), rtol=0.15)
    # stratified: each group's mean is the plain average of its per-batch means over the batches both groups have
    strata1, strata2 = np.repeat([0, 1], 150), np.r_[np.zeros(200), np.ones(50), np.full(50, 2)]
    lfc_b, _ = gm.count_lfc(gm.share_moments(counts, cells1, cells2, strata1, strata2), 1e-9)
    mean1 = (share_mean(cells1[strata1 == 0]) + share_mean(cells1[strata1 == 1])) / 2
    mean2 = (share_mean(cells2[strata2 == 0]) + share_mean(cells2[strata2 == 1])) / 2
    np.testing.assert_allclose(lfc_b, np.log2(mean1) - np.log2(mean2), rtol=1e-6)
    # a gene seen 3 times in group 1 and never in group 2: a bounded LFC, log2((3 + 1) / 1) at equal totals, with
    # the variance of counts (1/4 + 1/1) / ln(2)², however small the pseudocount
    sparse = np.zeros((600, 2), dtype=int)
    sparse[:, 1] = 10
    sparse[[0, 1, 2], 0] = 1
    sparse[[0, 1, 2], 1] = 9
    lfc_s, var_s = gm.count_lfc(gm.share_moments(sparse, cells1, cells2, np.zeros(300), np.zeros(300)), 1e-12)
    assert lfc_s[0] == pytest.approx(2.0, abs=0.01)
    assert var_s[0] == pytest.approx((1 / 4 + 1) / np.log(2) ** 2, rel=0.05)
    none_shared = gm.count_lfc(gm.share_moments(counts, cells1, cells2, np.zeros(300), np.ones(300)), np.full(4, 1e-9))
    assert np.isinf(none_shared[1]).all()


def test_decoder_error_and_the_combination_of_both_estimates():
    rng = np.random.default_rng(0)
    expression = np.repeat(np.arange(10.0), 50)
    counts_lfc = rng.normal(0, 1, 500)
    gap = np.repeat(np.linspace(0.05, 0.5, 10), 50) * rng.choice([-1, 1], 500)  # |gap| fixed within each bin
    count_var = np.full(500, 0.01)
    decoder_var = gm.decoder_error_variance(counts_lfc + gap, counts_lfc, count_var, expression)
    np.testing.assert_allclose(decoder_var, count_var + gap**2)
    # the combined estimate: centres a·m + (1 − a)·c and spread a·s + (1 − a)·√v, a = v / (v + s²)
    combination = gm._Combination(np.array([0.04, 0.01]), np.array([1.0, -0.5]), np.array([0.01, 0.09]))
    model_draws = torch.full((10, 2), 0.2, dtype=torch.float64)
    a = np.array([0.01 / 0.05, 0.09 / 0.10])
    centres = combination.centres(model_draws, slice(0, 2)).numpy()
    np.testing.assert_allclose(centres, np.broadcast_to(a * 0.2 + (1 - a) * np.array([1.0, -0.5]), (10, 2)))
    np.testing.assert_allclose(combination.sd(), a * np.array([0.2, 0.1]) + (1 - a) * np.array([0.1, 0.3]))
    # a gene with no count in either group (v = 0, so a = 0) still has a spread, and its posterior is finite
    silent = gm._Combination(np.array([1e-4]), np.array([0.0]), np.array([0.0]))
    assert silent.sd().tolist() == [pytest.approx(0.01)]
    assert np.isfinite(gm.Shrinkage(np.array([0.0, 2.0]), np.array([silent.sd()[0], 0.1])).posterior).all()
    only_model = gm._Combination(np.array([0.04]), np.array([0.0]), np.array([np.inf]))
    assert only_model.weight.tolist() == [1.0]


def test_shrinkage_learns_how_many_genes_do_not_change_and_shrinks_their_noise():
    """70% of genes unchanged, 30% with LFC ~ N(0, 2²), each measured with sd 0.3: the fitted prior puts ~70% of its
    mass at τ ≤ 0.3 (scales this noise cannot tell from 0) and none between 0.3 and 1, an estimate near 0 is pulled
    to 0, a large one is barely moved; the draws follow the posterior, and so does its closed form (the mixture)."""
    rng = np.random.default_rng(0)
    truth = np.where(rng.random(4000) < 0.7, 0.0, rng.normal(0, 2, 4000))
    sd = np.full(4000, 0.3)
    shrinkage = gm.Shrinkage(truth + rng.normal(0, 0.3, 4000), sd)
    assert shrinkage.prior[gm.PRIOR_SCALES <= 0.3].sum() == pytest.approx(0.7, abs=0.03)
    assert shrinkage.prior[(gm.PRIOR_SCALES > 0.3) & (gm.PRIOR_SCALES < 1)].sum() < 0.01
    probe = gm.Shrinkage(np.array([0.1, 3.0]), np.array([0.3, 0.3]))
    probe.prior, probe.posterior, probe.ratio = shrinkage.prior, None, None  # the fitted prior, two new genes
    var = 0.09 + gm.PRIOR_SCALES**2
    post = shrinkage.prior * np.exp(-0.5 * np.array([[0.1], [3.0]]) ** 2 / var) / np.sqrt(var)
    post /= post.sum(1, keepdims=True)
    ratio = gm.PRIOR_SCALES**2 / var
    expected_mean = (post * ratio * np.array([[0.1], [3.0]])).sum(1)
    probe.posterior, probe.ratio = post, np.tile(ratio, (2, 1))
    centres = torch.as_tensor(np.broadcast_to(np.array([0.1, 3.0]), (40000, 2)).copy())
    draws = probe.draws(centres, slice(0, 2), torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_allclose(draws.mean(0), expected_mean, atol=0.01)
    assert abs(draws[:, 0].mean()) < 0.05 and draws[:, 1].mean() == pytest.approx(3.0, abs=0.1)
    # the large estimate follows (almost only) the largest scales: its posterior variance is r σ²
    second = ratio[-1] * 0.09
    assert draws[:, 1].var() == pytest.approx(second, rel=0.1)
    # centres that vary (as the model's draws do): the closed-form posterior against the draws' frequencies
    centres = torch.as_tensor(rng.normal([0.1, 3.0], [0.05, 0.2], (40000, 2)))
    draws = probe.draws(centres, slice(0, 2), torch.Generator().manual_seed(1)).numpy()
    mixture = probe.mixture(centres.mean(0).numpy(), centres.var(0, unbiased=False).numpy())
    for delta in (0.05, 0.25, 2.8):
        np.testing.assert_allclose(mixture.at_least(delta), (draws >= delta).mean(0), atol=0.01)
        np.testing.assert_allclose(mixture.negated().at_least(delta), (draws <= -delta).mean(0), atol=0.01)
    lfc_mean, lfc_std = mixture.moments()
    np.testing.assert_allclose(lfc_mean, draws.mean(0), atol=0.01)
    np.testing.assert_allclose(lfc_std, draws.std(0), rtol=0.02)


def test_fdr_selection_on_a_known_list():
    """Sorted p = .99 .98 .95 .90 .60 .20: running mean of 1 − p is .01 .015 .02667 .04 .112 …; at 0.05 the top 4."""
    p = np.array([0.60, 0.99, 0.20, 0.95, 0.98, 0.90])
    calls = de.fdr_calls(p, 0.05)
    assert calls.tolist() == [False, True, False, True, True, True]
    assert de.fdr_calls(p, 0.011).tolist() == [False, True, False, False, False, False]
    assert not de.fdr_calls(np.array([0.5, 0.4]), 0.05).any()


def test_estimated_delta_follows_the_modes_of_the_fold_changes():
    rng = np.random.default_rng(0)
    lfc = np.concatenate([rng.normal(0, 0.2, 600), rng.normal(3, 0.3, 200), rng.normal(-3, 0.3, 200)])
    assert 1.2 <= de.estimate_delta(lfc) <= 6
    assert de.estimate_delta(rng.normal(0, 0.01, 500)) == pytest.approx(0.1)  # the floor


def test_pseudocount_comes_from_genes_not_expressed_in_a_group():
    scale1 = np.array([1e-2, 1e-6, 2e-6, 3e-6, 4e-6])
    raw1 = np.array([5.0, 0.0, 0.001, 0.0, 0.005])
    scale2, raw2 = np.array([1e-2, 1e-2, 1e-2, 1e-2, 1e-2]), np.ones(5)  # every gene expressed in group 2
    assert gm.pseudocount(scale1, scale2, raw1, raw2) == pytest.approx(np.quantile(scale1[1:], 0.9))
    assert gm.pseudocount(scale2, scale2, raw2, raw2) == 1e-10  # nothing unexpressed: the floor


def test_raw_statistics_against_a_direct_computation():
    rng = np.random.default_rng(0)
    counts = rng.poisson(1.0, (30, 5))
    counts[0] = 0
    counts[0, 0] = 3
    cells = np.array([0, 4, 7, 9])
    out = de.raw_statistics(counts, cells)
    block = counts[cells]
    np.testing.assert_allclose(out["raw_mean"], block.mean(0))
    np.testing.assert_allclose(out["non_zeros_proportion"], (block > 0).mean(0))
    np.testing.assert_allclose(out["raw_normalized_mean"], (block / block.sum(1, keepdims=True) * 1e4).mean(0))


def test_scvi_change_mode_columns_from_paired_draws():
    """scVI's change mode on hand-made paired draws of ρ: the tails (≥ δ, strictly < −δ), proba_de, vanilla's
    P(ρ1 > ρ2) and the LFC summaries at pc × 10⁻³, against numpy on the same draws."""
    rng = np.random.default_rng(0)
    rho1 = rng.dirichlet(np.r_[1000.0, 100.0, 5.0, 10.0], 4000).astype(np.float32)
    rho2 = rng.dirichlet(np.r_[400.0, 100.0, 60.0, 10.0], 4000).astype(np.float32)
    pc, delta = 1e-4, 0.25
    by_gene = [torch.as_tensor(np.ascontiguousarray(r.T)) for r in (rho1, rho2)]  # (genes, draws), as decoded
    out = change_mode._chunk_columns(*by_gene, pc, delta, "change")
    lfc = np.log2(rho1 + pc) - np.log2(rho2 + pc)
    np.testing.assert_allclose(out["proba_up"], (lfc >= delta).mean(0), atol=1e-6)
    np.testing.assert_allclose(out["proba_down"], (lfc < -delta).mean(0), atol=1e-6)
    effect = np.log2(rho1 + pc * 1e-3) - np.log2(rho2 + pc * 1e-3)
    for name, expected in (("lfc_mean", effect.mean(0)), ("lfc_median", np.median(effect, 0)),
                           ("lfc_std", effect.std(0)), ("lfc_min", effect.min(0)), ("lfc_max", effect.max(0))):
        np.testing.assert_allclose(out[name], expected, rtol=1e-4, atol=1e-4, err_msg=name)
    vanilla = change_mode._chunk_columns(*by_gene, pc, None, "vanilla")
    np.testing.assert_allclose(vanilla["proba_m1"], (rho1 > rho2).mean(0))
    columns = de._calls.change_columns(out["proba_up"], out["proba_down"])
    assert columns["bayes_factor"][0] > 3 and columns["bayes_factor"][2] < -3  # gene 0 up, gene 2 down


def test_scvi_pseudocount_rule():
    """Over the genes a group does not express (raw mean < 0.01), the 90% quantile of their largest ρ, the larger of
    the two groups', divided by the number of genes; 1e-10 when every gene is expressed."""
    max1, max2 = np.linspace(1e-6, 1e-3, 10), np.linspace(2e-6, 2e-3, 10)
    raw1, raw2 = np.r_[np.zeros(5), np.ones(5)], np.ones(10)
    assert change_mode.pseudocount(max1, max2, raw1, raw2) == pytest.approx(np.quantile(max1[:5], 0.9) / 10)
    raw2 = np.r_[np.ones(5), np.zeros(5)]
    assert change_mode.pseudocount(max1, max2, raw1, raw2) == pytest.approx(np.quantile(max2[5:], 0.9) / 10)
    assert change_mode.pseudocount(max1, max2, np.ones(10), np.ones(10)) == 1e-10


def test_scvi_draws_are_the_groups_aggregate_posterior(tiny_model):
    """The mean of a group's draws (``scale1``) is the mean over its cells of E[ρ_n] under q(z | x_n), computed here
    through the model's own get_normalized_expression with many samples per cell."""
    obs = tiny_model.adata.obs
    cells = np.flatnonzero(obs["cell_type"] == "type_1")
    table = tiny_model.differential_expression(idx1=cells, n_samples=20_000, max_cells_per_group=None)
    per_cell = tiny_model.get_normalized_expression(indices=cells, n_samples=200, deterministic=False,
                                                    return_numpy=True)  # averaged over the samples
    expected = per_cell.mean(axis=0)
    observed = table["scale1"].reindex(tiny_model.adata.var_names).to_numpy()
    np.testing.assert_allclose(observed, expected, rtol=0.03)
    assert (table["n_cells1"] == len(cells)).all()


def test_query_strings_name_the_same_cells_as_masks(tiny_model):
    obs = tiny_model.adata.obs
    by_query = tiny_model.differential_expression(idx1="cell_type == 'type_1' & batch == 'batch_1'",
                                                  idx2="cell_type == 'type_2'", n_samples=200, seed=4)
    mask1 = ((obs["cell_type"] == "type_1") & (obs["batch"] == "batch_1")).to_numpy()
    by_mask = tiny_model.differential_expression(idx1=mask1, idx2=(obs["cell_type"] == "type_2").to_numpy(),
                                                 n_samples=200, seed=4)
    pd.testing.assert_frame_equal(by_query, by_mask)
    with pytest.raises(ValueError, match="is not a query of the obs columns"):
        tiny_model.differential_expression(idx1="tissue == 'liver'")


# ---- groups, shapes, seeds, bad input -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model():
    adata = simulate(n_cells=300, n_genes=40, seed=3)
    SCVI.setup_anndata(adata, batch_key="batch")
    model = SCVI(adata, n_hidden=16)
    model.train(max_epochs=3)
    return model


def test_markers_of_every_group_are_one_vs_rest(tiny_model):
    table = tiny_model.differential_expression(groupby="cell_type", n_samples=100)
    counts = tiny_model.adata.obs["cell_type"].value_counts()
    assert list(table["comparison"].unique()) == [f"{t} vs rest" for t in sorted(counts.index)]
    assert table.groupby("comparison").size().eq(40).all()
    for group, block in table.groupby("group1"):
        assert set(block.index) == set(tiny_model.adata.var_names)
        assert (block["group2"] == "rest").all()
        assert block["n_cells1"].iloc[0] == counts[group] and block["n_cells2"].iloc[0] == 300 - counts[group]
        shown = block["proba_de"].round(3)  # ranked by P(DE) as a table shows it, then by the size of the change
        assert shown.is_monotonic_decreasing
        assert all(tied.is_monotonic_decreasing for _, tied in de.moderated_lfc(block).abs().groupby(shown))
    required = {"proba_de", "proba_not_de", "bayes_factor", "lfc_mean", "lfc_median", "lfc_std", "lfc_min", "lfc_max",
                "scale1", "scale2", "raw_mean1", "raw_mean2", "non_zeros_proportion1", "non_zeros_proportion2",
                "raw_normalized_mean1", "raw_normalized_mean2", "is_de_fdr_0.05", "delta", "pseudocounts"}
    assert required <= set(table.columns)
    np.testing.assert_allclose(table["proba_de"] + table["proba_not_de"], 1.0)
    p = table["proba_de"]
    np.testing.assert_allclose(p, np.maximum(table["proba_up"], table["proba_down"]))
    sign = np.sign(table["proba_up"] - table["proba_down"])  # signed as scvi-tools 1.3 signed it
    np.testing.assert_allclose(table["bayes_factor"], sign * (np.log(p + 1e-8) - np.log(1 - p + 1e-8)))
    assert (table["method"] == "scvi").all()
    np.testing.assert_allclose(table.groupby("comparison")["scale1"].sum(), 1.0, rtol=1e-4)  # ρ̄ sums to 1


def test_groups_by_list_masks_and_positions_agree(tiny_model):
    obs = tiny_model.adata.obs
    by_name = tiny_model.differential_expression(groupby="cell_type", group1="type_1", group2=["type_2", "type_3"],
                                                 n_samples=100, seed=5)
    mask1 = (obs["cell_type"] == "type_1").to_numpy()
    mask2 = obs["cell_type"].isin(["type_2", "type_3"]).to_numpy()
    by_mask = tiny_model.differential_expression(idx1=mask1, idx2=mask2, n_samples=100, seed=5)
    by_position = tiny_model.differential_expression(idx1=np.flatnonzero(mask1), idx2=np.flatnonzero(mask2),
                                                     n_samples=100, seed=5)
    assert by_name["comparison"].iloc[0] == "type_1 vs type_2 + type_3"
    columns = ["proba_de", "lfc_mean", "scale1", "raw_mean2"]
    pd.testing.assert_frame_equal(by_mask[columns], by_position[columns])
    pd.testing.assert_frame_equal(by_name[columns], by_mask[columns])


def test_same_seed_same_table_and_subsampling_is_reported(tiny_model):
    kwargs = dict(groupby="cell_type", group1="type_2", n_samples=200, max_cells_per_group=50)
    first = tiny_model.differential_expression(seed=1, **kwargs)
    pd.testing.assert_frame_equal(first, tiny_model.differential_expression(seed=1, **kwargs))
    other = tiny_model.differential_expression(seed=2, **kwargs)
    assert not np.allclose(first.loc[other.index, "lfc_mean"], other["lfc_mean"])
    assert (first["n_cells1"] == 50).all() and (first["n_cells2"] == 50).all()
    # the group-mean test makes at most MODEL_DRAWS draws of the groups' means: more samples, the same table
    capped = dict(kwargs, n_samples=gm.MODEL_DRAWS, method="group-mean")
    pd.testing.assert_frame_equal(tiny_model.differential_expression(seed=1, **capped),
                                  tiny_model.differential_expression(seed=1, **dict(capped, n_samples=5000)))


def test_delta_none_vanilla_mode_and_batch_correction(tiny_model):
    estimated = tiny_model.differential_expression(groupby="cell_type", group1="type_1", delta=None, n_samples=100)
    assert estimated["delta"].nunique() == 1 and estimated["delta"].iloc[0] >= 0.1
    vanilla = tiny_model.differential_expression(groupby="cell_type", group1="type_1", mode="vanilla", n_samples=100)
    assert {"proba_m1", "proba_m2", "bayes_factor"} <= set(vanilla.columns) and "proba_de" not in vanilla.columns
    np.testing.assert_allclose(vanilla["proba_m1"] + vanilla["proba_m2"], 1.0)
    assert vanilla["proba_m1"].round(3).is_monotonic_decreasing
    up = vanilla["lfc_mean"] > 0.5
    assert (vanilla.loc[up, "proba_m1"] > 0.5).all()
    corrected = tiny_model.differential_expression(groupby="cell_type", group1="type_1", batch_correction=True,
                                                   n_samples=100)
    assert corrected["proba_de"].between(0, 1).all()


def test_batch_correction_of_groups_that_share_no_batch(tiny_model):
    """Each group in a batch of its own: only the model can compare them, its error judged on the pooled counts."""
    batch = tiny_model.adata.obs["batch"].to_numpy()
    table = tiny_model.differential_expression(idx1=batch == "batch_1", idx2=batch == "batch_2",
                                               batch_correction=True, n_samples=100)
    assert np.isfinite(table[["proba_de", "lfc_mean", "lfc_std"]].to_numpy()).all()
    assert table["proba_de"].between(0, 1).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(groupby="tissue"), "'tissue' is not an obs column"),
        (dict(groupby="cell_type", group1="type_9"), "No cells with cell_type = type_9"),
        (dict(), "Say which cells to compare"),
        (dict(idx1=np.zeros(300, bool)), "has no cells"),
        (dict(idx1=[0]), "has a single cell"),
        (dict(idx1=[0, 1, 2], idx2=[0, 1, 2]), "Both groups are the same cells"),
        (dict(idx1=[0, 1, 2], idx2=[2, 3]), "1 cells are in both groups"),
        (dict(idx1=[0, 1, 900]), "outside 0 … 299"),
        (dict(idx1=np.ones(10, bool)), "length 10"),
        (dict(groupby="cell_type", delta=-0.1), "delta is the smallest log2 fold change"),
        (dict(groupby="cell_type", fdr_target=0.0), "fdr_target is a false discovery rate"),
        (dict(groupby="cell_type", fdr_target=1.5), "fdr_target is a false discovery rate"),
        (dict(groupby="cell_type", mode="bayes"), "mode must be"),
        (dict(groupby="cell_type", method="t-test"), "method must be one of"),
        (dict(groupby="cell_type", n_samples=0), "n_samples must be"),
        (dict(groupby="cell_type", max_cells_per_group=1), "max_cells_per_group must be"),
    ],
)
def test_bad_input_is_a_clear_value_error(tiny_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_model.differential_expression(**kwargs)


def test_an_untrained_model_is_refused():
    adata = simulate(n_cells=100, n_genes=20, seed=0)
    SCVI.setup_anndata(adata)
    with pytest.raises(ValueError, match="Train the model first"):
        SCVI(adata).differential_expression(groupby="cell_type")


# ---- against the truth --------------------------------------------------------------------------------------------
def test_simulated_truth_matches_the_counts():
    """true_lfc is what the counts themselves show given enough cells (shares of the library, ZI included)."""
    adata = simulate(n_cells=6000, n_genes=200, seed=2)
    counts = adata.X.toarray().astype(float)
    shares = counts / counts.sum(1, keepdims=True)
    types = adata.obs["cell_type"].to_numpy()
    observed = np.log2(shares[types == "type_1"].mean(0)) - np.log2(shares[types == "type_3"].mean(0))
    truth = true_lfc(adata, "type_1", "type_3")
    expressed = counts.mean(0) > 2
    assert np.median(np.abs(observed - truth)[expressed]) < 0.05
    one_vs_rest = true_lfc(adata, "type_2")
    np.testing.assert_allclose(one_vs_rest, adata.var["true_lfc_type_2"])
    with pytest.raises(ValueError, match="Unknown simulated cell type"):
        true_lfc(adata, "type_7")


@pytest.mark.parametrize("model_class", [SCVI, AUTOZI])
def test_calls_on_simulated_data_find_the_true_de_genes(model_class):
    """Both methods on one model: scVI's change mode keeps the FDP of its calls at the target, the group-mean test
    finds more of the truly DE genes."""
    adata = simulate(n_cells=1500, n_genes=200, seed=7)
    model_class.setup_anndata(adata, batch_key="batch")
    model = model_class(adata)
    model.train(max_epochs=60, lr=1e-2 if model_class is AUTOZI else 1e-3)
    for method, min_tpr, max_fdp in (("scvi", 0.4, 0.05), ("group-mean", 0.5, 0.15)):
        table = model.differential_expression(groupby="cell_type", group1="type_1", group2="type_2",
                                              n_samples=1000, method=method)
        truth = true_lfc(adata, "type_1", "type_2").loc[table.index]
        is_de = (truth.abs() >= 0.25).to_numpy()
        calls = table["is_de_fdr_0.05"].to_numpy()
        assert roc_auc_score(is_de, table["proba_de"]) >= 0.85, method
        assert calls.sum() >= min_tpr * is_de.sum(), method
        assert (calls & ~is_de).sum() / calls.sum() <= max_fdp, method
