"""Likelihoods and KL terms against independent computations (scipy, numerical integration)."""

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats

from scvi_core import distributions as D
from scvi_core.module import AutoZIVAE

COUNTS = np.array([0, 1, 2, 5, 17, 100, 1_000, 100_000], dtype=np.float64)


def _grid(thetas, mus):
    x, theta, mu = np.meshgrid(COUNTS, thetas, mus, indexing="ij")
    return x.ravel(), theta.ravel(), mu.ravel()


def _t(a):
    return torch.as_tensor(a, dtype=torch.float64)


@pytest.mark.parametrize("thetas", [[1e-3, 0.05], [0.5, 3.0, 40.0], [1e4, 1e6]], ids=["tiny", "moderate", "huge"])
def test_nb_log_pmf_matches_scipy(thetas):
    x, theta, mu = _grid(thetas, [0.01, 1.0, 30.0, 5e4])
    expected = stats.nbinom.logpmf(x, theta, theta / (theta + mu))
    got = D.log_nb(_t(x), _t(mu), _t(theta)).numpy()
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-6, atol=1e-6)


def test_zinb_log_pmf_matches_mixture_formula():
    x, theta, mu = _grid([0.2, 5.0, 1e3], [0.1, 8.0, 2e3])
    logits = np.linspace(-6, 6, x.size)
    pi = special.expit(logits)
    expected = np.log(pi * (x == 0) + (1 - pi) * stats.nbinom.pmf(x, theta, theta / (theta + mu)))
    got = D.log_zinb(_t(x), _t(mu), _t(theta), _t(logits)).numpy()
    finite = np.isfinite(expected)
    assert finite.mean() > 0.7
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-6, atol=1e-6)


def test_poisson_log_pmf_matches_scipy():
    mu = np.array([0.01, 1.0, 50.0, 1e5])
    x, m = np.meshgrid(COUNTS, mu, indexing="ij")
    np.testing.assert_allclose(
        D.log_poisson(_t(x.ravel()), _t(m.ravel())).numpy(), stats.poisson.logpmf(x.ravel(), m.ravel()), rtol=1e-6
    )


def test_zinb_from_dropout_equals_logit_form():
    x = _t([0, 0, 3, 40, 0])
    mu, theta = _t([0.5, 20.0, 4.0, 30.0, 2.0]), _t([2.0, 0.3, 8.0, 1.0, 5.0])
    logits = _t([-20.0, 0.0, 3.0, -3.0, 8.0])
    parts = D.nb_parts(x, mu, theta)
    from_prob = D.zinb_kernel_from_dropout(x, parts, torch.sigmoid(logits))
    np.testing.assert_allclose(from_prob.numpy(), D.zinb_kernel(x, mu, theta, logits).numpy(), rtol=1e-6)
    floored = D.floored_dropout(logits, 0.01).numpy()
    np.testing.assert_allclose(floored, 0.01 + 0.99 * special.expit(logits.numpy()), rtol=1e-6)


def test_fast_lgamma_gradient_is_digamma():
    x = torch.tensor(np.geomspace(1e-3, 1e5, 60), dtype=torch.float64, requires_grad=True)
    D.lgamma(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), special.digamma(x.detach().numpy()), rtol=1e-6, atol=1e-6)
    x32 = torch.tensor(np.geomspace(1e-3, 1e5, 60), dtype=torch.float32)
    np.testing.assert_allclose(D._digamma(x32).numpy(), special.digamma(x32.numpy()), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("q, p", [((0.3, 0.6), (0.5, 0.5)), ((0.9, 0.05), (0.5, 0.5)), ((2.0, 5.0), (0.7, 0.2))])
def test_beta_kl_matches_numerical_integration(q, p):
    def integrand(d):
        return stats.beta.pdf(d, *q) * (stats.beta.logpdf(d, *q) - stats.beta.logpdf(d, *p))

    expected = sum(integrate.quad(integrand, lo, hi, limit=200)[0] for lo, hi in [(0, 0.5), (0.5, 1)])
    got = D.kl_beta(*(_t(v) for v in (*q, *p))).item()
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_normal_kls_match_closed_forms():
    mean, var = _t([[0.3, -1.2]]), _t([[0.5, 2.0]])
    expected = sum(
        np.log(1 / np.sqrt(v)) + (v + m**2) / 2 - 0.5 for m, v in zip(mean[0].numpy(), var[0].numpy(), strict=True)
    )
    assert D.kl_normal_standard(mean, var).item() == pytest.approx(expected)
    assert D.kl_normal(mean, var, _t([[0.0, 0.0]]), _t([[1.0, 1.0]])).item() == pytest.approx(expected)


class _Batch:
    """The few Batch fields the likelihood reads."""

    def __init__(self, x):
        self.x = x
        rows, cols = torch.nonzero(x, as_tuple=True)
        self.cols, self.values = cols, x[rows, cols]
        self.row_lengths = torch.bincount(rows, minlength=x.shape[0])
        self.flat_index = lambda: rows * x.shape[1] + cols
        self.log_factorial = torch.lgamma(x + 1).sum(-1)
        self.size = x.shape[0]


def test_delta_convention_delta_one_is_nb_delta_zero_is_floored_zinb():
    """δ is the probability of the plain NB: δ → 1 gives the NB likelihood, δ → 0 the floored ZINB."""
    torch.manual_seed(0)
    module = AutoZIVAE(n_genes=4, minimal_dropout=0.01)
    x = torch.tensor([[0.0, 3.0, 0.0, 12.0], [5.0, 0.0, 1.0, 0.0]])
    mu = torch.tensor([[2.0, 4.0, 0.5, 10.0], [6.0, 0.2, 1.5, 3.0]])
    theta = torch.tensor([1.5, 3.0, 0.7, 10.0])
    logits = torch.tensor([[0.5, -1.0, 2.0, -4.0], [0.0, 1.0, -2.0, 3.0]])
    gen = {"mu": mu, "theta": theta, "zi_logits": logits}
    batch = _Batch(x)
    nb = D.log_nb(x, mu, theta).sum(-1)
    zinb = D.log_zinb(x, mu, theta, special.logit(D.floored_dropout(logits, 0.01))).sum(-1)
    as_nb = module.mixture_log_likelihood(batch, gen, torch.full((4,), 1 - 1e-7))
    as_zinb = module.mixture_log_likelihood(batch, gen, torch.full((4,), 1e-7))
    np.testing.assert_allclose(as_nb.numpy(), nb.numpy(), rtol=1e-5)
    np.testing.assert_allclose(as_zinb.numpy(), zinb.numpy(), rtol=1e-5)
    assert not np.allclose(nb.numpy(), zinb.numpy())
    half = module.mixture_log_likelihood(batch, gen, torch.full((4,), 0.5))
    per_entry = np.logaddexp(
        np.log(0.5) + D.log_nb(x, mu, theta).numpy(),
        np.log(0.5) + D.log_zinb(x, mu, theta, special.logit(D.floored_dropout(logits, 0.01))).numpy(),
    ).sum(-1)
    np.testing.assert_allclose(half.numpy(), per_entry, rtol=1e-5)
