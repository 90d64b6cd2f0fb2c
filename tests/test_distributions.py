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


def _kernel_inputs(theta_per_cell: bool, seed: int = 0):
    """Counts with many zeros, log μ, θ and dropout logits for 5 cells × 7 genes (float64)."""
    rng = np.random.default_rng(seed)
    x = _t(rng.poisson(rng.gamma(0.5, 4.0, size=(5, 7))) * (rng.random((5, 7)) < 0.7))
    log_mu = _t(rng.normal(0.5, 1.5, size=(5, 7)))
    theta = _t(rng.gamma(2.0, 1.0, size=(5, 7) if theta_per_cell else 7) + 0.05)
    logits = _t(rng.normal(0.0, 2.0, size=(5, 7)))
    return x, log_mu, theta, logits


def _reference_kernel(x, mu, theta, zi_logits=None):
    """Σ_g (log-pmf − norm) per cell from the plain entrywise formulas."""
    log_pmf = D.log_nb(x, mu, theta) if zi_logits is None else D.log_zinb(x, mu, theta, zi_logits)
    return (log_pmf - D.nb_norm(x, theta)).sum(-1)



@pytest.mark.parametrize("theta_per_cell", [False, True], ids=["theta per gene", "theta per cell"])
@pytest.mark.parametrize("form", ["nb", "zinb logits", "zinb probability"])
def test_fast_kernel_matches_reference_values_and_gradients(form, theta_per_cell):
    """The hand-written gradient of nb_kernel_sum against autograd through the plain formulas, and its value."""
    x, log_mu, theta, logits = _kernel_inputs(theta_per_cell)
    leaves = [log_mu.requires_grad_(), theta.requires_grad_(), logits.requires_grad_()]

    def fast():
        if form == "nb":
            return D.nb_kernel_sum(x, log_mu, theta)
        if form == "zinb logits":
            return D.nb_kernel_sum(x, log_mu, theta, zi_logits=logits)
        return D.nb_kernel_sum(x, log_mu, theta, dropout=torch.sigmoid(logits))

    reference = _reference_kernel(x, torch.exp(log_mu), theta, None if form == "nb" else logits)
    np.testing.assert_allclose(fast().detach().numpy(), reference.detach().numpy(), rtol=1e-10)
    with torch.no_grad():  # evaluation skips the gradient
        np.testing.assert_allclose(fast().numpy(), reference.detach().numpy(), rtol=1e-10)
    weights = _t(np.linspace(0.5, 2.0, 5))  # a non-uniform upstream gradient
    got = torch.autograd.grad((weights * fast()).sum(), leaves, allow_unused=True)
    expected = torch.autograd.grad((weights * reference).sum(), leaves, allow_unused=True)
    for g, e in zip(got, expected, strict=True):
        if e is None:
            assert g is None or not g.abs().max() > 0
        else:
            np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-8, atol=1e-10)
    assert torch.autograd.gradcheck(lambda m, t: D.nb_kernel_sum(x, m, t, zi_logits=logits.detach()),
                                    (log_mu, theta))


def test_fast_kernel_stays_finite_at_extremes():
    """float32, the regime of training: π → 1 and → 0, θ tiny and huge, μ tiny and huge."""
    x = torch.tensor([[0.0, 1.0, 0.0, 250.0, 0.0, 3.0]])
    log_mu = torch.log(torch.tensor([[1e-6, 1e-6, 1e4, 1e4, 2.0, 2.0]])).requires_grad_()
    theta = torch.tensor([1e-4, 1e5, 1e-4, 1e5, 3.0, 3.0], requires_grad=True)
    logits = torch.tensor([[30.0, 30.0, -30.0, -30.0, 80.0, -80.0]], requires_grad=True)
    value = D.nb_kernel_sum(x, log_mu, theta, zi_logits=logits)
    value.sum().backward()
    assert torch.isfinite(value).all()
    assert all(torch.isfinite(t.grad).all() for t in (log_mu, theta, logits))
    reference = _reference_kernel(x.double(), torch.exp(log_mu.detach().double()), theta.detach().double(),
                                  logits.detach().double())
    np.testing.assert_allclose(value.detach().numpy(), reference.numpy(), rtol=1e-4)


def test_floored_dropout():
    logits = _t([-20.0, 0.0, 3.0])
    np.testing.assert_allclose(D.floored_dropout(logits, 0.01).numpy(), 0.01 + 0.99 * special.expit(logits.numpy()))


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
    gen = {"log_mu": torch.log(mu), "theta": theta, "zi_logits": logits}
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


def test_beta_sampler_matches_beta_distribution_and_its_gradient():
    """sample_beta against scipy's Beta (Kolmogorov–Smirnov) and its reparameterised gradient against the gradient
    of the exact mean: d E[δ]/dα = β/(α+β)² estimated by averaging the pathwise gradients."""
    torch.manual_seed(0)
    alpha = torch.full((40_000,), 0.3, dtype=torch.float64, requires_grad=True)
    beta = torch.full((40_000,), 0.8, dtype=torch.float64, requires_grad=True)
    draws = D.sample_beta(alpha, beta)
    assert stats.kstest(draws.detach().numpy(), stats.beta(0.3, 0.8).cdf).pvalue > 0.01
    draws.mean().backward()
    mean_grad_alpha = alpha.grad.sum().item()
    assert mean_grad_alpha == pytest.approx(0.8 / 1.1**2, rel=0.05)
