"""Extrapolation hold-out and PSIS-LOO law comparison (bayesmoe.validation).

The real-table hold-out reads Epoch's digitised Chinchilla runs in place from ../shared/data and
is skipped where that folder is absent. Fits are short (4 chains × 300/300; the Epoch table's at
500/1000, below): these tests check the machinery and bars derived below, not the published numbers
(docs/validation.md has those).
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesmoe
from bayesmoe.testing import TRUTH, fake_result, synthetic_runs
from bayesmoe.validation import compare_laws, extrapolation_holdout

SHORT = dict(num_chains=4, num_warmup=300, num_samples=300, progress=False)


def _epoch_runs(shared_data):
    raw = pd.read_csv(shared_data / "epoch-chinchilla" / "svg_extracted_data.csv")
    runs = pd.DataFrame({"n_active": raw["Model Size"],
                         "tokens": raw["Training FLOP"] / (6 * raw["Model Size"]), "loss": raw["loss"]})
    return runs.drop(index=runs["loss"].nlargest(5).index).reset_index(drop=True)  # as Epoch did


# The Epoch fit at 300/300 failed R-hat on fit seeds 1 and 2 (1.013-1.016, bulk ESS 371-457; seed 0
# passed at 1.007-1.012 depending on the parametrisation): too few draws for the 1.01 bar, in both
# the derived-c and the log-ratio coordinates. At 500/1000, seeds 0-3: R-hat <= 1.003, ESS >= 1700.
EPOCH_DRAWS = {**SHORT, "num_warmup": 500, "num_samples": 1000}

# For the tests of code paths (which runs are held out, which fit is hierarchical, that every
# held-out run gets a finite prediction and interval), not of any number the draws estimate: none
# of their assertions changes with the number of chains or draws, so they run the fewest that
# still make a posterior with more than one chain (was 4 x 200/200: 27 s and 58 s on 2 cores).
PATHS_ONLY = dict(num_chains=2, num_warmup=100, num_samples=100, progress=False, on_bad_fit="warn")


@pytest.fixture(scope="module")
def epoch_holdout(shared_data):
    runs = _epoch_runs(shared_data)
    return runs, extrapolation_holdout(runs, law="chinchilla", by="compute", quantile=0.8,
                                       fit_kwargs=EPOCH_DRAWS)


def test_epoch_holdout_splits_by_compute(epoch_holdout):
    runs, ho = epoch_holdout
    compute = 6 * runs["n_active"] * runs["tokens"]
    expected_held = compute > np.quantile(compute, 0.8)  # recomputed here, independently
    assert sorted(ho.table.index) == sorted(runs.index[expected_held])
    assert ho.summary["n_fit"] == int((~expected_held).sum()) and ho.summary["n_held"] == int(expected_held.sum())
    assert ho.fit.tree["observed_data"].sizes["run"] == ho.summary["n_fit"]
    # ordered: every held-out run used more compute than every fitted one
    assert compute[expected_held].min() > compute[~expected_held].max()


def test_epoch_holdout_table_is_consistent(epoch_holdout):
    _, ho = epoch_holdout
    t = ho.table
    assert (t["lo90"] <= t["lo50"]).all() and (t["lo50"] <= t["hi50"]).all() and (t["hi50"] <= t["hi90"]).all()
    np.testing.assert_allclose(t["error"], t["predicted"] - t["loss"])
    assert ho.summary["max_abs_error"] == pytest.approx(t["error"].abs().max())
    assert ho.summary["rmse"] == pytest.approx(float(np.sqrt((t["error"] ** 2).mean())))
    for k in (50, 90):
        inside = (t["loss"] >= t[f"lo{k}"]) & (t["loss"] <= t[f"hi{k}"])
        assert ho.summary[f"coverage_{k}"] == pytest.approx(inside.mean())
    assert ho.summary["coverage_50"] <= ho.summary["coverage_90"]


def test_epoch_holdout_law_beats_no_law(epoch_holdout):
    # Without a law, the best guess for a larger-compute run is the lowest loss already seen;
    # a fitted law that extrapolates at all must do better on the held-out runs.
    runs, ho = epoch_holdout
    seen_min = runs.drop(index=ho.table.index)["loss"].min()
    baseline_rmse = float(np.sqrt(((ho.table["loss"] - seen_min) ** 2).mean()))
    assert ho.summary["rmse"] < baseline_rmse
    assert ho.summary["diagnostics_ok"], ho.fit.diagnostics.problems


def test_holdout_calibrated_when_the_law_is_right():
    # Simulated from the Chinchilla law itself (1 % Gaussian noise on ln loss): intervals of a new
    # run should cover at their nominal rate. Counts outside the central 99.8 % of Binomial(n, p)
    # would mean the machinery (split, predictive draws, quantiles) is wrong, not the law.
    runs = synthetic_runs("chinchilla", n_runs=150, noise_sd=0.01, seed=3)
    # 4 x 300/300 left sigma's R-hat at 1.013 with this seed (as in the LOO test below)
    draws = {**SHORT, "num_warmup": 500, "num_samples": 500}
    ho = extrapolation_holdout(runs, law="chinchilla", by="compute", quantile=0.75, fit_kwargs=draws)
    n = ho.summary["n_held"]
    for level in (0.5, 0.9):  # the law-only band: what this test checks is the machinery
        k = int(ho.table[f"in{int(level * 100)}_law"].sum())
        lo, hi = stats.binom.ppf([0.001, 0.999], n, level)
        assert lo <= k <= hi, (level, k, n)


def test_holdout_rejects_bad_input():
    runs = synthetic_runs("chinchilla", n_runs=40, seed=0)
    with pytest.raises(ValueError, match="not a column"):
        extrapolation_holdout(runs, law="chinchilla", by="budget")
    with pytest.raises(ValueError, match="quantile must be in"):
        extrapolation_holdout(runs, law="chinchilla", quantile=1.5)
    with pytest.raises(ValueError, match="0 to hold out"):
        extrapolation_holdout(runs, law="chinchilla", threshold=1e40)
    with pytest.raises(ValueError, match="runs to fit"):
        extrapolation_holdout(runs, law="chinchilla", threshold=0.0)
    with pytest.raises(ValueError, match="per_group"):
        extrapolation_holdout(runs, law="chinchilla", threshold=1e20, per_group=True)


@pytest.mark.extended  # CI runs it after the default suite: pytest -m extended
def test_compare_laws_prefers_the_true_law():
    # Simulated from Chinchilla with beta = 0.366; the rival fixes beta = 0.2, which bends the
    # data term the wrong way over the design's two decades of D. Its ELPD must be lower by more
    # than two standard errors of the difference (a one-sided ~98 % statement).
    truth = TRUTH["chinchilla"]
    runs = synthetic_runs("chinchilla", n_runs=60, noise_sd=0.01, seed=1)
    draws = {**SHORT, "num_warmup": 500, "num_samples": 500}  # 300/300 left sigma's R-hat at 1.011
    right = bayesmoe.fit(runs, law="chinchilla", seed=0, **draws)
    wrong = bayesmoe.fit(runs, law="chinchilla", priors={"beta": 0.2}, seed=0, **draws)
    assert truth["beta"] > 0.3
    table = compare_laws({"true": right, "beta fixed at 0.2": wrong})
    assert list(table.index) == ["true", "beta fixed at 0.2"]
    assert table.loc["beta fixed at 0.2", "elpd_diff"] > 2 * table.loc["beta fixed at 0.2", "dse"]
    assert set(table.columns) >= {"elpd", "se", "p_loo", "elpd_diff", "dse", "weight", "n_k_bad", "pareto_k_max"}
    assert (table["n_runs"] == len(runs)).all()


def test_compare_laws_rejects_bad_input():
    a = fake_result("chinchilla", runs=synthetic_runs("chinchilla", n_runs=30, seed=0))
    b = fake_result("chinchilla", runs=synthetic_runs("chinchilla", n_runs=30, seed=1))
    with pytest.raises(ValueError, match="at least two"):
        compare_laws({"a": a})
    with pytest.raises(ValueError, match="different runs"):
        compare_laws({"a": a, "b": b})
    with pytest.raises(ValueError, match="no log_likelihood"):
        compare_laws({"a": a, "a again": a})
    with pytest.raises(TypeError, match="expected a FitResult"):
        compare_laws({"a": a, "b": "not a fit"})


@pytest.mark.filterwarnings("ignore::bayesmoe.errors.ConvergenceWarning")  # short chains: the paths are the point
def test_holdout_with_seed_replicates_on_both_sides_of_the_cut():
    # The review's crash: the shipped table's 0.7 compute quantile falls inside a block of
    # replicated configurations (repeated seeds), which predict() used to reject as duplicates.
    runs = pd.read_csv("data/reference_runs.csv").query("granularity == 1").reset_index(drop=True)
    compute = 6 * runs["n_active"] * runs["tokens"]
    key = ["n_active", "tokens", "experts"]
    cut = compute.quantile(0.7)
    reps = runs[runs.duplicated(key, keep=False)]
    rep_compute = 6 * reps["n_active"] * reps["tokens"]
    assert (rep_compute <= cut).any() and (rep_compute > cut).any()  # replicates on both sides
    # the crash was in predict(), which the backtests never call: τ from its prior is enough here
    ho = extrapolation_holdout(runs, law="joint", quantile=0.7, fit_kwargs={**PATHS_ONLY, "discrepancy": "prior"})
    assert len(ho.table) == int((compute > cut).sum())
    assert ho.table.index.is_unique and ho.table[["in50", "in90", "in90_law"]].notna().all().all()


@pytest.mark.filterwarnings("ignore::bayesmoe.errors.ConvergenceWarning")  # short chains: the paths are the point
def test_holdout_ordered_by_a_law_input():
    # "fit up to 370M active parameters, predict the 1.3B runs": ordering by an input of the law
    # used to crash when the scored table got the ordering column a second time
    runs = synthetic_runs("chinchilla", n_runs=40, noise_sd=0.01, seed=3)
    cut = float(runs["n_active"].quantile(0.8))
    ho = extrapolation_holdout(runs, law="chinchilla", by="n_active", quantile=0.8,
                               fit_kwargs={**PATHS_ONLY, "discrepancy": "prior"})
    assert sorted(ho.table.index) == sorted(runs.index[runs["n_active"] > cut])
    assert list(ho.table.columns).count("n_active") == 1
    assert np.allclose(ho.table["n_active"], runs.loc[ho.table.index, "n_active"])
    assert ho.summary["by"] == "n_active" and ho.summary["threshold"] == pytest.approx(cut)


def _two_setups(seed: int = 0) -> pd.DataFrame:
    a = synthetic_runs("chinchilla", n_runs=30, noise_sd=0.01, seed=seed).assign(group="a")
    b = synthetic_runs("chinchilla", n_runs=30, noise_sd=0.01, seed=seed + 1).assign(group="b")
    b["loss"] *= 1.05  # another setup: a 5 % higher loss level
    return pd.concat([a, b], ignore_index=True)


@pytest.mark.extended  # CI runs it after the default suite: pytest -m extended
@pytest.mark.filterwarnings("ignore::bayesmoe.errors.ConvergenceWarning")
def test_holdout_per_group_pooled_and_unseen_group_paths():
    # The code paths behind the Porian and IsoFLOP results: per-group quantiles (hierarchical),
    # one pooled law, and a group with no fitted run (predicted as a new, unseen setup).
    runs = _two_setups()
    draws = PATHS_ONLY
    per_group = extrapolation_holdout(runs, law="chinchilla", per_group=True, quantile=0.8, fit_kwargs=draws)
    held = per_group.table
    compute = 6 * runs["n_active"] * runs["tokens"]
    for g in ("a", "b"):  # each group's own top 20 % is held out
        mine = runs["group"] == g
        want = compute[mine] > compute[mine].quantile(0.8)
        assert sorted(held.index[held["group"] == g]) == sorted(runs.index[mine][want.to_numpy()])
    assert per_group.fit.hierarchical and set(per_group.fit.groups) == {"a", "b"}
    pooled = extrapolation_holdout(runs, law="chinchilla", per_group=True, quantile=0.8, hierarchical=False,
                                   fit_kwargs=draws)
    assert not pooled.fit.hierarchical and len(pooled.table) == len(held)
    assert set(pooled.table["group"]) == {"a", "b"}  # the output keeps each run's group
    # group b entirely above a global threshold: no fitted run of b, predicted as a new setup
    shifted = runs.copy()
    is_b = shifted["group"] == "b"
    cut = float(compute[~is_b].max())
    shifted.loc[is_b, "tokens"] *= 2 * cut / float(compute[is_b].min())  # every b run above every a run
    unseen = extrapolation_holdout(shifted, law="chinchilla", threshold=cut, fit_kwargs=draws)
    assert set(unseen.table["group"]) == {"b"} and unseen.fit.groups == ("a",)
    assert np.isfinite(unseen.table["predicted"]).all()
