"""The extrapolation-error term (bayesmoe.discrepancy): distances, τ's likelihood, storage, and
what it does to predictions, comparisons and decisions.

Fits here are short (4 chains × 300-500 draws); the backtests inside them run at the module's
own defaults (2 chains × 300/300).
"""

import json

import numpy as np
import pandas as pd
import pytest
from markupsafe import escape as html_escape  # what Jinja2 escapes the report with
from scipy import stats

import bayesmoe
from bayesmoe.discrepancy import (TAU_GRID, Discrepancy, axes, backtest, beyond, default_prior, learn,
                                  fitted_ranges, posterior, tau_log_likelihood, sparsity_cuts)
from bayesmoe.laws import get_law
from bayesmoe.testing import fake_result, synthetic_runs
from bayesmoe.validation import extrapolation_holdout

SHORT = dict(num_chains=4, num_warmup=500, num_samples=500, progress=False, discrepancy="backtest")


def test_distance_is_signed_decades_beyond_the_fitted_range_per_axis():
    law = get_law("joint")
    runs = pd.DataFrame({"n_active": [1e6, 1e7], "tokens": [1e8, 1e9], "experts": [1.0, 16.0], "loss": 2.0})
    ranges = fitted_ranges(law, runs)
    assert axes(law) == ("n_active", "tokens", "experts", "scale")
    new = pd.DataFrame({"n_active": [1e8, 3e6, 1e5], "tokens": [1e9, 1e8, 1e8], "experts": [64.0, 4.0, 1.0]})
    e = beyond(law, ranges, new)
    np.testing.assert_allclose(e[0], [1.0, 0.0, np.log10(4), 1.0], atol=1e-12)  # N 10x, E 4x, N·D 10x
    np.testing.assert_allclose(e[1], [0.0, 0.0, 0.0, 0.0], atol=1e-12)  # inside along every axis
    np.testing.assert_allclose(e[2], [-1.0, 0.0, 0.0, -1.0], atol=1e-12)  # below: negative


def test_tau_likelihood_is_the_gaussian_marginal_per_cut():
    # Woodbury form against the dense multivariate normal, two cuts, random residuals
    rng = np.random.default_rng(0)
    rows = []
    for cut in (0.5, 0.8):
        for _ in range(7):
            e = rng.uniform(0, 1.5, 3)
            rows.append({"cut": cut, "residual": rng.normal(0, 0.05), "sd": rng.uniform(0.01, 0.03),
                         **{f"e_{a}": v for a, v in zip("xyz", e)}})
    table = pd.DataFrame(rows)
    taus = np.array([1e-3, 0.03, 0.2])
    got = tau_log_likelihood(table, "xyz", taus)
    for t, g in zip(taus, got):
        want = 0.0
        for _, part in table.groupby("cut"):
            e = part[["e_x", "e_y", "e_z"]].to_numpy()
            cov = np.diag(part["sd"].to_numpy() ** 2) + t * t * e @ e.T
            want += stats.multivariate_normal(np.zeros(len(part)), cov).logpdf(part["residual"].to_numpy())
        assert g == pytest.approx(want, rel=1e-9)


def test_tau_likelihood_counts_the_parameter_errors_a_cut_shares():
    # With noise sd and principal components the covariance is diag(noise²) + P Pᵀ + τ² E Eᵀ
    rng = np.random.default_rng(1)
    n = 9
    table = pd.DataFrame({"cut": 0.5, "residual": rng.normal(0, 0.03, n), "noise_sd": rng.uniform(0.01, 0.02, n),
                          "sd": 0.05, **{f"pc_{j}": rng.normal(0, 0.02, n) for j in range(3)},
                          **{f"e_{a}": rng.uniform(0, 1, n) for a in "xy"}})
    for t in (1e-3, 0.05):
        p = table[["pc_0", "pc_1", "pc_2"]].to_numpy()
        e = table[["e_x", "e_y"]].to_numpy()
        cov = np.diag(table["noise_sd"].to_numpy() ** 2) + p @ p.T + t * t * e @ e.T
        want = stats.multivariate_normal(np.zeros(n), cov).logpdf(table["residual"].to_numpy())
        assert tau_log_likelihood(table, "xy", [t])[0] == pytest.approx(want, rel=1e-9)


def test_delta_is_zero_inside_the_data_and_shared_between_configurations():
    res = fake_result("joint", seed=0)
    # a narrow prior, so 4000 draws pin the sd of δ to a few percent
    disc = posterior(res.law, res.runs, prior={"family": "lognormal", "mu": np.log(0.05), "sigma": 0.2})
    inside = res.runs[list(res.law.inputs)].iloc[:5]
    assert np.all(disc.delta(res.law, inside, (4, 100)) == 0.0)
    far = pd.DataFrame({"n_active": [1e12, 1e12], "tokens": [1e13, 1e13], "experts": [4.0, 8.0]})
    d = disc.delta(res.law, far, (4, 1000))
    # same N and D, both E inside the fitted range: identical δ in every draw
    assert res.runs["experts"].max() >= 8
    np.testing.assert_array_equal(d[..., 0], d[..., 1])
    # its spread is what τ's posterior and the distance imply
    dist = np.linalg.norm(disc.distance(res.law, far)[0])
    # sd of 4000 normal draws: relative standard error ~ 1/sqrt(2·4000) = 1.1 %; 5 % is 4.5 of them
    assert np.std(d[..., 0]) == pytest.approx(float(disc.sd(disc.distance(res.law, far))[0]), rel=0.05)
    assert dist > 1


@pytest.mark.filterwarnings("ignore::bayesmoe.errors.ConvergenceWarning")  # fake draws: R-hat is not the point
def test_discrepancy_round_trips_through_save_and_load(tmp_path):
    res = fake_result("joint", seed=0)
    bt = pd.DataFrame({"cut": [0.5, 0.5], "run": [1, 2], "group": ["all", "all"], "observed": [0.1, 0.2],
                       "predicted": [0.1, 0.25], "residual": [0.0, -0.05], "sd": [0.02, 0.02], "distance": [0.1, 0.5],
                       **{f"e_{a}": [0.1, 0.5] for a in axes(res.law)}})
    disc = posterior(res.law, res.runs, prior=default_prior(), backtest_table=bt)
    res.tree.attrs["discrepancy"] = disc.to_json()
    back = bayesmoe.load(res.save(tmp_path / "fit.nc")).discrepancy
    assert back.source == "backtest+prior" and back.axes == disc.axes
    np.testing.assert_allclose(back.weights, disc.weights)
    pd.testing.assert_frame_equal(back.backtest, bt, check_dtype=False)


def test_compare_at_one_scale_is_as_decisive_with_the_term():
    # Two configurations at the same N and D, E inside the fitted range, far beyond the fitted
    # compute: δ is the same for both, so P(A better) is the law's exactly; the difference in nats
    # scales with the common factor exp(δ), so its interval keeps the law's signs.
    res = fake_result("joint", seed=0)
    res.tree.attrs["discrepancy"] = posterior(res.law, res.runs, prior={"mu": np.log(0.1), "sigma": 0.3}).to_json()
    a = {"n_active": 1e11, "tokens": 2e12, "experts": 8}
    b = {"n_active": 1e11, "tokens": 2e12, "experts": 1}
    out = res.compare(a, b)
    assert out["p_a_better"] == out["p_a_better_law"]
    assert np.sign(out["diff_lo"]) == np.sign(out["law_diff_lo"])
    assert np.sign(out["diff_hi"]) == np.sign(out["law_diff_hi"])


def test_decision_and_odds_with_the_term():
    # The documented claim (docs/discrepancy.md): δ has mean 0, so the expected-loss decision moves
    # only through E[exp δ] = exp(Var δ / 2), equal for candidates at equal distance; P(E* = e)
    # spreads, because a draw's δ can reorder candidates at different distances beyond the data.
    res = fake_result("joint", seed=0)
    fitted_e = res.runs["experts"].max()
    opt_none = res.optimal_experts([1e21], experts=(1, 8, 256))
    res.tree.attrs["discrepancy"] = posterior(res.law, res.runs, prior={"mu": np.log(0.05), "sigma": 0.2}).to_json()
    res.__dict__.pop("discrepancy", None)
    opt = res.optimal_experts([1e21], experts=(1, 8, 256))
    ds = opt.dataset
    # law-only odds are the fit without the term's odds
    np.testing.assert_allclose(ds["p_experts_law"].values, opt_none.dataset["p_experts"].values)
    # the expected loss of each candidate changes by the lognormal factor of its δ only
    e_factor = (ds["loss_at"] / ds["loss_law_at"]).mean(("chain", "draw")).values[0]
    dist = ds["beyond"]  # per-axis distance of the chosen optimum: the 256-expert one lies beyond E
    assert 256 > fitted_e and float(dist.sel(axis="experts").values[0]) >= 0
    assert np.all(e_factor > 0.98) and np.all(e_factor < 1.1)
    # odds spread: entropy of P(E*) grows (or stays) with the term
    def entropy(p):
        p = p[p > 0]
        return -np.sum(p * np.log(p))
    assert entropy(ds["p_experts"].values[0]) >= entropy(ds["p_experts_law"].values[0]) - 1e-9
    summary = opt.summary()
    for a in axes(res.law):
        assert f"beyond_{a}" in summary
    assert "P(E* beyond fitted)" in summary and "E_beyond_fitted" in summary


def test_optimum_reports_distance_per_input_beyond_the_fitted_runs():
    # The user's case: a budget inside the fitted compute whose optimal D* lies beyond the largest
    # fitted token count must say so per input, not only in compute.
    shipped = bayesmoe.load("models/reference_joint.nc")
    opt = shipped.optimal_experts([1e13, 1e16], experts=(1, 4, 16, 64, 256))
    s = opt.summary()
    runs = shipped.runs
    d_star = s["D* median"].iloc[0]
    if d_star > runs["tokens"].max():
        assert s["beyond_tokens"].iloc[0] > 0
    assert s["extrapolation_decades"].iloc[1] > 1  # 1e16 is far beyond the fitted runs
    p256 = s["P(E*=256)"].iloc[1]
    assert bool(s["E_beyond_fitted"].iloc[1]) == (p256 >= 0.1 or s["E_decision"].iloc[1] > 64)


@pytest.mark.extended  # CI's extended pass (pytest -m extended): 2 hold-outs, 12-26 s each warm on 2 cores
@pytest.mark.filterwarnings("ignore::bayesmoe.errors.ConvergenceWarning")  # the joint fit's ESS: see below
@pytest.mark.parametrize("law, n_runs", [("chinchilla", 150), ("joint", 120)])
def test_law_true_table_gets_almost_no_discrepancy(law, n_runs):
    # Simulated from the law itself: the backtests find nothing the law misses, so τ's posterior
    # falls well below its prior, and the 90 % new-run interval of the held-out runs widens by at
    # most 25 % over the law-only band (the bar). bench/bench_discrepancy_simulated.py's
    # "law-chinchilla" and "law-joint" cases, seed 1 (2026-12-02): width ratios 1.12 and 1.10.
    # The joint fit at 4 × 500/500 fails its ESS check; kept with on_bad_fit="warn", it still runs
    # its backtests (it once fell back to the prior: ratio 2.12).
    runs = synthetic_runs(law, n_runs=n_runs, noise_sd=0.01, seed=1)
    ho = extrapolation_holdout(runs, law=law, by="compute", quantile=0.8,
                               fit_kwargs={**SHORT, "on_bad_fit": "warn"}, seed=0)
    disc = ho.fit.discrepancy
    assert disc.source == "backtest+prior"
    prior_median = float(np.exp(default_prior()["mu"]))
    assert disc.tau_quantiles([0.5])[0] < prior_median
    law_only = ho.fit.predict(ho.table[list(ho.fit.law.inputs)], kind="new_run", discrepancy=False)
    w_law = (law_only.quantile(0.95, ("chain", "draw")) - law_only.quantile(0.05, ("chain", "draw"))).values
    assert np.median(ho.table["width90"].to_numpy() / w_law) <= 1.25


@pytest.mark.extended  # CI's extended pass (pytest -m extended): 8 tables, 30 s warm on 2 cores
def test_misspecified_tables_reach_nominal_coverage_with_the_term_only():
    # Chinchilla runs with an N·D interaction the law lacks (0.01·ln(N/N0)·ln(D/D0) in ln loss,
    # bench/bench_discrepancy_simulated.py's "nd-interaction" case), held out above the 80 %
    # compute quantile, seeds 1-8 (30 held-out runs each): the law-only band misses most held-out
    # runs (its errors are systematic in compute); with the term the 90 % interval covers within
    # 10 points of nominal, pooled over the eight tables. Pooled, not per table: one table's 30
    # runs share one draw of the law's error, so its coverage scatters far more than a binomial's
    # (measured over these seeds: 57-97 % with the term); the single-seed version of this test sat
    # on its bar (seed 1: 24 of 30 before the noise trend, 22 of 30 after it). Measured with the
    # noise trend (session 22, docs/validation/discrepancy_simulated_trend.csv): pooled 84.2 %
    # (202 of 240) with the term, 35.4 % law-only; without the trend 80.8 % and 39.2 %.
    import sys
    from pathlib import Path

    import jax

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from bench_discrepancy_simulated import chinchilla_variant

    covered = covered_law = held = 0
    for seed in range(1, 9):
        ho = extrapolation_holdout(chinchilla_variant("nd-interaction", seed=seed), law="chinchilla", by="compute",
                                   quantile=0.8, fit_kwargs={**SHORT, "on_bad_fit": "warn"}, seed=0)
        s = ho.summary
        covered += round(s["coverage_90"] * s["n_held"])
        covered_law += round(s["coverage_90_law"] * s["n_held"])
        held += s["n_held"]
        jax.clear_caches()  # each table compiles anew (as the bench does): keeps LLVM's memory bounded
    assert covered_law / held < 0.8, (covered_law, held)
    assert 0.8 <= covered / held <= 1.0, (covered, held)


@pytest.mark.extended  # CI's extended pass (pytest -m extended): 6 tables, 85-135 s on 2 cores
def test_moe_size_ladder_extrapolated_to_a_new_size_reaches_nominal_coverage_with_the_term_only():
    # The shape of the real MoE table issue 14 opened with (six active sizes, E = 1 ... 512; fit
    # the sizes up to 370M, predict the 1.3B runs), simulated from the joint law plus the same
    # N·D interaction the law lacks (bench/bench_discrepancy_simulated.py's "moe-nd-interaction"),
    # seeds 1-6, 20 held-out runs each. Pooled for the reason given above. Measured at 4 × 500/500
    # (session 23, docs/validation/discrepancy_simulated_trend.csv): 90.8 % (109 of 120) with the
    # term, 50.8 % law-only.
    import sys
    from pathlib import Path

    import jax

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from bench_discrepancy_simulated import moe_ladder_variant

    covered = covered_law = held = 0
    for seed in range(1, 7):
        ho = extrapolation_holdout(moe_ladder_variant("moe-nd-interaction", seed), law="joint", by="n_active",
                                   quantile=0.8, fit_kwargs={**SHORT, "on_bad_fit": "warn"}, seed=0)
        s = ho.summary
        assert set(ho.table["n_active"]) == {1.3e9}  # the 1.3B size, and only it, is predicted
        covered += round(s["coverage_90"] * s["n_held"])
        covered_law += round(s["coverage_90_law"] * s["n_held"])
        held += s["n_held"]
        jax.clear_caches()
    assert covered_law / held < 0.8, (covered_law, held)
    assert 0.8 <= covered / held <= 1.0, (covered, held)


@pytest.mark.filterwarnings("ignore::bayesmoe.errors.ConvergenceWarning")  # short chains; identity is the point
def test_the_term_leaves_the_posterior_of_the_law_untouched():
    # δ is zero at every fitted run, so it cannot enter the likelihood: the draws of θ are the same
    # with and without it (which is why SBC of θ is unaffected), and only new-run predictions
    # beyond the data change.
    runs = synthetic_runs("chinchilla", n_runs=40, noise_sd=0.01, seed=0)
    kw = dict(law="chinchilla", num_chains=2, num_warmup=150, num_samples=100, progress=False, seed=0,
              on_bad_fit="warn")
    with_term = bayesmoe.fit(runs, discrepancy="prior", **kw)
    without = bayesmoe.fit(runs, discrepancy="none", **kw)
    for p in with_term.law.params:
        np.testing.assert_array_equal(with_term.posterior[p].values, without.posterior[p].values)
    assert with_term.discrepancy.source == "prior" and without.discrepancy.source == "none"
    inside = runs[["n_active", "tokens"]].iloc[:3]
    a = with_term.predict(inside, kind="new_run", seed=1).values
    b = with_term.predict(inside, kind="new_run", seed=1, discrepancy=False).values
    np.testing.assert_array_equal(a, b)  # inside the data: no δ
    far = pd.DataFrame({"n_active": [1e12], "tokens": [1e14]})
    a = with_term.predict(far, kind="new_run", seed=1).values
    b = with_term.predict(far, kind="new_run", seed=1, discrepancy=False).values
    assert np.std(np.log(a)) > np.std(np.log(b))


def test_a_kept_failed_fit_learns_tau_from_its_backtests_and_a_rejected_one_from_the_prior():
    # 2 chains × 100 draws cannot reach bulk ESS 400, so the fit fails its diagnostics. Kept with
    # on_bad_fit="warn" it is meant for use and runs its backtests like any fit (before this, a
    # kept failed fit silently fell back to the prior: the joint law-true hold-out of
    # bench_discrepancy_simulated.py got τ's prior median 0.028 instead of its backtests' 0.011).
    # Rejected, it skips them: err.result carries τ from the prior alone.
    runs = synthetic_runs("chinchilla", n_runs=40, noise_sd=0.01, seed=0)
    kw = dict(law="chinchilla", num_chains=2, num_warmup=150, num_samples=100, progress=False, seed=0,
              discrepancy="backtest")
    with pytest.warns(bayesmoe.ConvergenceWarning):
        kept = bayesmoe.fit(runs, on_bad_fit="warn", **kw)
    assert kept.tree.attrs["convergence"] == "failed"
    assert kept.discrepancy.source == "backtest+prior"
    assert kept.discrepancy.backtest["cut"].nunique() == 3
    with pytest.raises(bayesmoe.ConvergenceError) as info:
        bayesmoe.fit(runs, on_bad_fit="raise", **kw)
    rejected = info.value.result
    assert rejected.tree.attrs["convergence"] == "failed"
    assert rejected.discrepancy.source == "prior" and rejected.discrepancy.backtest is None
    assert kept.discrepancy.note == ""
    assert rejected.discrepancy.note == "the fit failed its convergence checks, so its backtests were not run"


@pytest.mark.filterwarnings("ignore::bayesmoe.errors.ConvergenceWarning")  # 2 × 50 draws: the note is the point
def test_a_fit_told_by_the_environment_to_skip_backtests_says_so(monkeypatch):
    monkeypatch.setenv("BAYESMOE_DISCREPANCY", "prior")
    runs = synthetic_runs("chinchilla", n_runs=40, noise_sd=0.01, seed=0)
    fit = bayesmoe.fit(runs, law="chinchilla", num_chains=2, num_warmup=50, num_samples=50, progress=False,
                       on_bad_fit="warn")
    assert fit.discrepancy.note == "the environment sets BAYESMOE_DISCREPANCY=prior"


def test_the_term_says_why_it_has_no_backtests(tmp_path):
    # τ from the prior alone is the user's to know, and why: a table too small to backtest (no
    # fit is run here: learn() decides before fitting), or discrepancy='prior' asked for
    law = get_law("chinchilla")
    runs = synthetic_runs("chinchilla", n_runs=12, noise_sd=0.01, seed=0)
    disc = learn(runs, law)
    assert disc.source == "prior" and disc.backtest is None
    need = 2 * (len(law.params) + 3)
    assert disc.note == (f"the table has 12 runs (backtests of 'chinchilla' need at least {need}), so τ comes "
                         "from the prior alone")
    # 30 runs, but at 3 sizes × 1 token count, seeds apart: 3 scales
    seeded = pd.DataFrame({"n_active": np.repeat([1e7, 1e8, 1e9], 10), "tokens": 2e10, "loss": 3.0,
                           "seed": np.tile(np.arange(10), 3)})
    assert learn(seeded, law).note == ("the table has 3 distinct scales, size × tokens (they need 6), so τ comes "
                                       "from the prior alone")
    assert Discrepancy.from_json(disc.to_json()).note == disc.note and disc.summary()["note"] == disc.note
    assert learn(runs, law, mode="prior").note == "discrepancy='prior' was asked for"
    raw = json.loads(disc.to_json())
    del raw["note"]  # a file saved before session 24
    assert Discrepancy.from_json(json.dumps(raw)).note == ""
    assert "note" not in learn(runs, law, mode="none").summary()
    # the report says it beside the growth rate and under the empty backtest figure
    fit = fake_result("chinchilla", runs=runs, num_draws=50)
    fit.tree.attrs["discrepancy"] = disc.to_json()
    fit.__dict__.pop("discrepancy", None)
    html = fit.report(tmp_path / "r.html").read_text()
    trust = html[html.index('id="trust"'):]
    note = str(html_escape(disc.note))
    assert f"No backtests: {note}." in trust and f"No backtests to show: {note}." in trust


def _distill():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "validation"))
    import distill_discrepancy

    return distill_discrepancy


def test_distilled_prior_is_the_population_predictive_and_does_not_collapse():
    # distill_discrepancy.fit_population: the prior of a new table's ln τ is the predictive of a
    # lognormal population of the tables' τ, with μ and σ integrated out (not a point estimate).
    fit_population = _distill().fit_population
    lt = np.log(TAU_GRID)

    def sharp(tau, sd=0.05):  # a table whose backtests pin τ down
        return -0.5 * ((lt - np.log(tau)) / sd) ** 2

    # Twelve tables agreeing on τ = 0.03: the predictive sits there and is narrow.
    agree = fit_population({i: sharp(0.03) for i in range(12)})
    assert abs(agree["mu"] - np.log(0.03)) < 0.05
    assert agree["sigma"] < 0.3
    # Two tables a decade apart: centred between them, and wider than their own spread (half
    # the gap, 1.15 in ln τ), since two tables say little about the population's μ and σ.
    two = fit_population({0: sharp(0.01), 1: sharp(0.1)})
    assert abs(two["mu"] - np.log(np.sqrt(0.01 * 0.1))) < 0.1
    assert two["sigma"] > 0.5 * np.log(10)
    # Five tables that only bound τ from above (flat below 0.03): the population's spread is not
    # identified, so it stays near its half-normal(1) hyperprior instead of collapsing to the
    # grid's floor as a type-II maximum-likelihood estimate does.
    bound = np.where(lt < np.log(0.03), 0.0, -0.5 * ((lt - np.log(0.03)) / 0.2) ** 2)
    loose = fit_population({i: bound for i in range(5)})
    assert loose["sigma"] > 0.5


@pytest.mark.parametrize("law, groups", [pytest.param("joint", None, marks=pytest.mark.extended),
                                         ("chinchilla", {"g1": {}, "g2": {"e": 1.9}})])
def test_a_padded_masked_subset_has_the_subsets_own_log_density(law, groups):
    # fit and the backtests give the sampler its data as arguments, padded to a bucket length
    # with the padding masked (the backtests: every cut in one program). The log density (and
    # gradient) must be that of the model built on the subset alone, at any parameter values;
    # the one-group joint law and a two-group hierarchical fit (c derived per group from each
    # group's lowest-loss run).
    import jax
    from numpyro.infer.util import initialize_model

    from bayesmoe.data import validate_runs
    from bayesmoe.inference import _init
    from bayesmoe.models import build_model, make_design, padded_args, padded_length
    from bayesmoe.priors import resolve_priors

    law = get_law(law)
    spec = resolve_priors(law, "literature")
    runs = validate_runs(synthetic_runs(law, n_runs=40, seed=2, groups=groups), required=law.inputs + ("loss",))
    key = runs["n_active"] * runs["tokens"]
    subsets = [runs.loc[(key <= key.groupby(runs["group"]).transform("quantile", q)).to_numpy()] for q in (0.5, 0.8)]
    designs = [make_design(s, law) for s in subsets]
    length = padded_length(designs[1].n_runs + 1)  # a bucket past the longest subset sets the shapes
    padded = build_model(law, spec, designs[1], n_runs=length)
    args, init = padded_args(law, padded, designs, length)
    rng = np.random.default_rng(0)
    for i, (sub, design) in enumerate(zip(subsets, designs)):
        own = build_model(law, spec, design)
        start = {k: v[i] for k, v in init.items()}
        assert start.keys() == own.init_values.keys()
        for k, v in own.init_values.items():
            np.testing.assert_allclose(start[k], v, rtol=1e-6)
        log_loss = design.log_loss.astype(np.float32)
        one = jax.tree.map(lambda v: v[i], args)
        info, own_pe, _, _ = initialize_model(jax.random.PRNGKey(i), own, init_strategy=_init(values=own.init_values),
                                              model_kwargs={"log_loss": log_loss})
        _, padded_pe, _, _ = initialize_model(jax.random.PRNGKey(i), padded, init_strategy=_init(values=start),
                                              model_args=one)
        # move every unconstrained coordinate a little off the start
        z = {n: v + 0.1 * rng.standard_normal(np.shape(v)).astype(np.float32) for n, v in info.z.items()}
        assert np.isfinite(float(own_pe(z)))
        assert float(padded_pe(z)) == pytest.approx(float(own_pe(z)), rel=1e-5, abs=1e-3)
        g_own, g_pad = jax.grad(own_pe)(z), jax.grad(padded_pe)(z)
        for n in z:
            np.testing.assert_allclose(g_pad[n], g_own[n], rtol=1e-4, atol=1e-3)


@pytest.mark.extended  # CI runs it after the default suite: pytest -m extended
def test_backtests_of_a_hierarchical_fit_with_shared_parameters_predict_each_group():
    # Only e has group values here; α, β, a, b are one value for all groups (shape (chain, draw),
    # not (chain, draw, group)). Every held-out run is predicted from its own group's parameters:
    # the two groups differ in e by 0.3 nats of loss, far more than the 1 % noise.
    law = get_law("chinchilla")
    runs = synthetic_runs(law, n_runs=40, seed=3, groups={"low": {"e": 1.6}, "high": {"e": 1.9}})
    table = backtest(runs, law, fit_kwargs={"pooled": ["e"], "num_warmup": 200, "num_samples": 100, "seed": 1})
    key = runs["n_active"] * runs["tokens"]
    above = sum(int((key[runs.group == g] > np.quantile(key[runs.group == g], q)).sum())
                for q in (0.5, 0.65, 0.8) for g in ("low", "high"))
    assert len(table) == above and set(table["group"]) == {"low", "high"}
    assert np.all(np.isfinite(table[["predicted", "sd", "noise_sd"]].to_numpy()))
    # the law is right and each group's e is its own: residuals are noise-sized, not 0.1-0.2 nats
    assert table["residual"].abs().median() < 0.03, table.groupby("group")["residual"].describe()


def test_sparsity_cuts_need_four_expert_counts_and_a_law_that_takes_them():
    joint, chinchilla = get_law("joint"), get_law("chinchilla")
    runs = pd.DataFrame({"n_active": 1e8, "tokens": 2e9, "experts": [1, 4, 16, 64, 64], "loss": 3.0})
    assert sparsity_cuts(joint, runs) == [("experts", 16.0)]
    assert sparsity_cuts(joint, runs.iloc[1:]) == []  # three counts: the fit below would see two
    assert sparsity_cuts(chinchilla, runs) == []


@pytest.mark.parametrize("jump", [pytest.param(0.0, marks=pytest.mark.extended), 0.1],
                         ids=["law-true", "break-at-the-largest-E"])
def test_a_sparsity_backtest_fits_below_the_largest_expert_count_and_sees_a_break_there(jump):
    # E ∈ {1, ..., 32}: the cut fits E ≤ 16 and predicts the 22 runs at E = 32, 0.30 decades
    # beyond. With the law true the residuals are noise and parameter error (predictive sd
    # ~0.009 here) and τ stays below the prior's median (0.027); with every E = 32 run 0.1 nats
    # worse than the law (an MoE gain that stops; the compute cuts, which fit some E = 32 runs,
    # would partly absorb it) the residuals show the jump and τ moves to about 0.1 / 0.3 per
    # decade. Tolerances: 0.03 is ~3 predictive sds.
    law = get_law("joint")
    runs = synthetic_runs(law, n_runs=120, noise_sd=0.01, seed=0)
    top = runs["experts"] == runs["experts"].max()
    runs.loc[top, "loss"] *= np.exp(jump)
    table = backtest(runs, law, cuts=(), fit_kwargs={"num_warmup": 300, "num_samples": 200, "seed": 0})
    assert table[["axis", "cut"]].drop_duplicates().values.tolist() == [["experts", 16.0]]
    assert sorted(table["run"]) == sorted(runs.index[top])  # the hold-out is the largest E only
    np.testing.assert_allclose(table["e_experts"], np.log10(32 / 16), rtol=1e-6)
    assert abs(table["residual"].mean() - jump) < 0.03
    lo, med, _ = posterior(law, runs, backtest_table=table).tau_quantiles((0.05, 0.5, 0.95))
    prior_median = float(np.exp(default_prior()["mu"]))
    if jump:
        assert lo > prior_median
    else:
        assert med < prior_median
