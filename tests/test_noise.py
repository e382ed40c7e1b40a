"""The noise scale's trend in compute (bayesmoe.noise)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

import bayesmoe
from bayesmoe import noise
from bayesmoe.errors import PriorError
from bayesmoe.laws import get_law
from bayesmoe.priors import resolve_priors
from bayesmoe.testing import synthetic_runs

TREND_PRIOR = {"sigma_trend": {"dist": "normal", "loc": 0.0, "scale": 0.5}}


def _table(n_active, tokens):
    return pd.DataFrame({"n_active": np.asarray(n_active, float), "tokens": np.asarray(tokens, float)})


def test_run_scale_is_sigma_at_the_centre_and_held_at_the_fitted_edge_beyond():
    fitted = _table([1e6, 1e7, 1e8], [1e8, 1e9, 1e10])  # log10 compute 14.78, 16.78, 18.78
    u = noise.log10_compute({k: fitted[k].to_numpy() for k in noise.INPUTS})
    sigma, trend = np.array([0.02, 0.03]), np.array([-0.5, 0.2])  # two draws
    at = _table([1e7, 1e8, 1e10, 1e4], [1e9, 1e10, 1e12, 1e6])  # centre, top, 4 decades beyond, below
    s = noise.run_scale(sigma, trend, fitted, at)
    assert s.shape == (2, 4)
    np.testing.assert_allclose(s[:, 0], sigma)  # the centre: σ itself
    np.testing.assert_allclose(s[:, 1], sigma * np.exp(trend * (u.max() - u.mean())))
    np.testing.assert_allclose(s[:, 2], s[:, 1])  # beyond the fitted runs: held at their top
    np.testing.assert_allclose(s[:, 3], sigma * np.exp(trend * (u.min() - u.mean())))
    # a fit without the site: σ for every row
    np.testing.assert_array_equal(noise.run_scale(sigma, None, fitted, at), np.broadcast_to(sigma[:, None], (2, 4)))


def test_the_trend_is_a_default_prior_site_for_laws_with_n_and_d():
    spec = resolve_priors("chinchilla")
    assert spec[noise.TREND].dist == "normal" and spec[noise.TREND].args == {"loc": 0.0, "scale": 0.5}
    # fixed at 0: the model before the trend, the same spec (so the same programs and draws)
    former = resolve_priors("chinchilla", {noise.TREND: 0})
    assert noise.TREND not in former
    assert {k: v for k, v in spec.items() if k != noise.TREND} == former
    # a law that does not read tokens has no compute to trend along
    law = dataclasses.replace(get_law("chinchilla"), inputs=("n_active",))
    with pytest.raises(PriorError, match="sigma_trend.*needs a law with inputs"):
        resolve_priors(law, TREND_PRIOR)


@pytest.fixture(scope="module")
def shrinking_noise():
    # Chinchilla law, 120 runs over 5.7 decades of compute, noise on ln L with sd 0.03 at the
    # smallest runs falling to 0.003 at the largest (η = ln(0.1) / 5.7 = −0.41 per decade), the
    # shape of Porian et al.'s tables (docs/validation/residual_scale.csv: −0.43 to −0.75).
    rng = np.random.default_rng(3)
    runs = synthetic_runs("chinchilla", n_runs=120, noise_sd=0.0, seed=3)
    u = noise.log10_compute({k: runs[k].to_numpy() for k in noise.INPUTS})
    eta = np.log(0.1) / (u.max() - u.min())
    runs["loss"] = runs["loss"] * np.exp(0.03 * np.exp(eta * (u - u.min())) * rng.standard_normal(len(runs)))
    fit = bayesmoe.fit(runs, law="chinchilla", num_chains=2, num_warmup=500, num_samples=500,
                       seed=0, progress=False, discrepancy="none")
    return runs, u, eta, fit


def test_a_fit_recovers_a_noise_that_shrinks_with_compute_and_predicts_with_it(shrinking_noise):
    # Seeds 3, 4, 5 of this table (/tmp script, session 21): medians −0.36, −0.27, −0.31 against
    # −0.41, −0.37, −0.36, posterior sd ≈ 0.06; hence the 99 % interval for "covers the truth".
    runs, u, eta, fit = shrinking_noise
    assert noise.TREND in fit.param_names
    trend = fit.posterior[noise.TREND].values.ravel()
    lo, hi = np.quantile(trend, [0.005, 0.995])
    assert lo < eta < hi and hi < -0.1  # covers the truth and is clearly below 0
    # the new-run band follows the noise: narrow at the largest run, wide at the smallest (the
    # fit without the trend: 5-95 % widths 0.046 and 0.039, ratio 0.85; with it 0.108 and 0.014)
    ends = runs.iloc[[int(np.argmin(u)), int(np.argmax(u))]]
    band = fit.predict(ends[["n_active", "tokens"]], kind="new_run")
    width = np.diff(np.log(band.quantile([0.05, 0.95], dim=("chain", "draw")).values), axis=0)[0]
    assert width[1] < 0.4 * width[0]


def test_run_design_and_a_saved_fit_use_each_runs_noise_scale(shrinking_noise, tmp_path):
    from scipy import stats

    from bayesmoe.design import _draws

    runs, u, _, fit = shrinking_noise
    d = _draws(fit, max_draws=50)
    table = runs.iloc[[0, 1, 2]]
    post = fit.tree["posterior"]
    want = noise.run_scale(post["sigma"].values.ravel()[d.index], post[noise.TREND].values.ravel()[d.index],
                           fit.runs, table)
    # a fit's own anchor is its runs' centre, so the default centre is the model's
    np.testing.assert_allclose(noise.run_scale(post["sigma"].values.ravel()[d.index],
                                               post[noise.TREND].values.ravel()[d.index], fit.runs, table, fit.anchor),
                               want, rtol=1e-9)
    np.testing.assert_allclose(d.scale(table), want)
    y = np.log(table["loss"].to_numpy())[None, :]
    mean = d.log_mean(table, discrepancy=False)
    np.testing.assert_allclose(d.log_lik(y, mean, table),
                               stats.t.logpdf(y, df=d.nu[:, None], loc=mean, scale=want), rtol=1e-6)
    path = tmp_path / "trend.nc"
    fit.save(path)
    again = bayesmoe.load(path)
    assert noise.TREND in again.param_names
    new = runs.iloc[[0, 60]][["n_active", "tokens"]]
    np.testing.assert_allclose(again.predict(new, kind="new_run", seed=1).values, fit.predict(new, kind="new_run", seed=1).values)


def test_outlying_runs_names_a_run_the_law_does_not_fit_and_no_clean_one(tmp_path):
    # A posterior pinned at the truth (no NUTS): on 60 runs with 1 % Gaussian noise no residual
    # comes near the Bonferroni bound (Student-t(4) at a two-sided 0.05 / 60: 7.3 σ; the largest
    # here is 2.7 σ); one loss raised by 30 % (ln 1.3 = 26 σ) is named, and only it.
    from scipy import stats

    from bayesmoe.testing import fake_result

    runs = synthetic_runs("chinchilla", n_runs=60, noise_sd=0.01, seed=0)
    clean = fake_result("chinchilla", runs=runs, rel_sd=0.0, num_draws=100)
    res = noise.run_residuals(clean)
    assert res.index.equals(clean.runs.index) and (res["noise_sd"] > 0).all()
    assert np.abs(res["z"]).max() < stats.t.ppf(1 - 0.05 / 120, 4)
    assert noise.outlying_runs(clean).empty
    bad = runs.copy()
    bad.loc[7, "loss"] *= 1.3
    result = fake_result("chinchilla", runs=bad, rel_sd=0.0, num_draws=100)
    flagged = noise.outlying_runs(result)
    assert list(flagged.index) == [7] and flagged.loc[7, "z"] > 20
    assert flagged.loc[7, "predicted"] == pytest.approx(runs.loc[7, "loss"], rel=0.05)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        noise.outlying(res, level=1.0)
    result.report(tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert "Runs the law fits worst" in html and "1 of the 60 lies further out" in html
    card = result.model_card()
    assert "## Runs the law fits worst" in card and "1 of the 60 lies further out" in card
    worst = noise.worst_runs(noise.run_residuals(result))
    assert len(worst) == 5 and worst.index[0] == 7 and list(worst["beyond the noise"]) == [True] + [False] * 4
    assert "None lies further out" in clean.model_card()


def test_a_run_beyond_the_noise_makes_the_verdict_amber_and_names_it():
    # the same tables as above, with draws that move (rel_sd > 0), so the diagnostics pass
    from bayesmoe.testing import fake_result
    from bayesmoe.verdict import verdict

    runs = synthetic_runs("chinchilla", n_runs=60, noise_sd=0.01, seed=0)
    clean = verdict(fake_result("chinchilla", runs=runs, rel_sd=0.001, num_draws=500))
    assert clean.level == "green" and "no fitted run beyond the fitted noise" in clean.reasons[0]
    runs.loc[7, "loss"] *= 1.3
    bad = verdict(fake_result("chinchilla", runs=runs, rel_sd=0.001, num_draws=500))
    assert bad.level == "amber" and bad.reasons == (bad.reasons[0],)
    assert bad.reasons[0].startswith("1 of 60 fitted runs lies beyond") and "(run 7 at +26.8 σ)" in bad.reasons[0]
