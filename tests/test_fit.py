"""NUTS fits on simulated tables: recovery, hierarchy, diagnostics. Seeds fixed throughout."""

import json
from collections import Counter

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.stats import binom

import bayesmoe
from bayesmoe.testing import TRUTH, interval_contains, synthetic_runs

FAST = dict(num_chains=4, num_warmup=500, num_samples=500, seed=0, progress=False)
# For tests of what a fit's posterior is made of (which sites, which dims, a fixed value held in
# every draw), not of what its draws estimate: none of their assertions changes with the number of
# chains or draws, so they run short chains and keep a fit that misses the convergence bars
# (was FAST: 4 x 500/500).
STRUCTURE = dict(num_chains=2, num_warmup=100, num_samples=100, seed=0, progress=False, on_bad_fit="warn")
_short = pytest.mark.filterwarnings("ignore::bayesmoe.errors.ConvergenceWarning")


# Recovery is a claim about calibration, so it is tested as one. If every central 95 % interval
# were calibrated, each (parameter, data set) would miss its truth with probability 0.05; counting
# the misses over n such intervals as independent gives Binomial(n, 0.05), and the bound below is
# its 99.9 % quantile: a calibrated fitter exceeds it about once in a thousand designs. Two
# caveats, both making the bound lenient rather than strict: misses within one fit are positively
# correlated (posterior correlations), which fattens the tail beyond the binomial; and for a
# fixed truth (not drawn from the prior) coverage is frequentist, only near 95 %. A systematic bias
# (one parameter missed on most seeds) still exceeds it once several seeds are pooled: the slow
# test below. Per fit, the diagnostics and zero divergences are asserted without slack.
# Demanding that *every* interval hold the truth, as this test once did, fails a calibrated
# fitter with probability 1 - 0.95^n (0.40 for the joint law's 10 parameters).
RECOVERY_LEVEL = 0.999


def miss_bound(n_intervals: int) -> int:
    """99.9 % quantile of Binomial(n_intervals, 0.05): the most misses calibration explains."""
    return int(binom.ppf(RECOVERY_LEVEL, n_intervals, 0.05))


def recovery_misses(law: str, seeds) -> tuple[dict, int]:
    """Fit each seed's table at FAST; assert clean diagnostics; return misses and interval count."""
    misses, n = {}, 0
    for seed in seeds:
        runs = synthetic_runs(law, noise_sd=0.01, seed=seed)
        result = bayesmoe.fit(runs, law=law, **{**FAST, **RECOVERY_DRAWS.get(law, {})})
        assert result.diagnostics.ok, (seed, result.diagnostics.problems)
        assert result.diagnostics.divergences == 0, seed
        assert result.tree.attrs["target_accept"] == result.law.target_accept  # fit's one-group default
        assert set(result.law.params) <= set(result.posterior.data_vars)
        names = [p for p in result.law.params if p not in ("e_max",)]  # E_max: prior-dominated for E <= 32
        misses[seed] = interval_contains(result, TRUTH[law], prob=0.95, names=names)
        n += len(names)
    return misses, n


# Settings per law, measured over seeds 1-8 with bench/recovery_seeds.py (c_rel prior
# N(-1.0, 0.7)). joint: at FAST seed 3 gave tail ESS 362 against the 400 diagnostics demand (1000
# draws: ESS >= 1059). fine_grained and sparsity sample at their laws' target_accept of 0.95
# (bayesmoe.laws: at 0.8 some seeds diverge or fail R-hat) with fit's default 1000 warmup
# iterations: at 0.8, 500 warmup / 2000 draws, fine_grained seed 2 gave R-hat 1.019; at 1000/1000,
# seeds 1-8 R-hat <= 1.010, 0 divergences. sparsity at 1000/1000 seed 6 gave R-hat 1.023; at
# 1000/2000 seeds 1-8 R-hat <= 1.007, bulk ESS >= 926. The irreducible loss of both is placed
# mostly by its prior on these grids, and the chains travel along that long direction slowly.
# chinchilla: at FAST, seed 1 gave R-hat 1.011 (bulk ESS 1069) on a second host with the same
# versions (an AMD EPYC with AVX-512; the draws depend on the CPU XLA compiles for); with fit's
# default 1000 warmup iterations 1.006 (1000/1000: 1.003).
RECOVERY_DRAWS = {"joint": dict(num_samples=1000), "chinchilla": dict(num_warmup=1000),
                  "fine_grained": dict(num_warmup=1000, num_samples=1000),
                  "sparsity": dict(num_warmup=1000, num_samples=2000)}
LAWS_RECOVERED = ["joint", "fine_grained", "sparsity", "chinchilla"]


# the joint law is the README's; the other two seed laws run in CI's extended pass
@pytest.mark.parametrize("law", [pytest.param(law, marks=pytest.mark.extended) if law in ("fine_grained", "sparsity")
                                 else law for law in LAWS_RECOVERED])
def test_recovery_misses_within_binomial_bound(law):
    """~1 % noise on a realistic grid, one data set: clean diagnostics, and no more 95 % intervals
    miss the truth than calibration explains (for 5-10 parameters: at most 3-4)."""
    misses, n = recovery_misses(law, seeds=(1,))
    assert sum(map(len, misses.values())) <= miss_bound(n), misses


@pytest.mark.slow
@pytest.mark.parametrize("law", LAWS_RECOVERED)
def test_recovery_misses_within_binomial_bound_over_seeds(law):
    """The same over four data sets (20-40 intervals: at most 5-7 misses in all), and no one
    parameter missed on more seeds than Binomial(4, 0.05) explains (2; P(3 or 4) = 4.8e-4 per
    parameter, under 0.5 % over a law's 10 parameters): that catches a bias the total hides."""
    seeds = (1, 2, 3, 4)
    misses, n = recovery_misses(law, seeds=seeds)
    assert sum(map(len, misses.values())) <= miss_bound(n), misses
    per_param = Counter(p for m in misses.values() for p in m)
    assert max(per_param.values(), default=0) <= int(binom.ppf(RECOVERY_LEVEL, len(seeds), 0.05)), misses


# The two hierarchical fits (five setups whose N exponents differ, and five alike) are built in
# tests/conftest.py, session-scoped; the end of this file predicts from, summarises and saves the
# 'differ' one. Why 60 runs per group, target_accept 0.99 and 1000 draws is said there.
_hier = pytest.mark.filterwarnings("ignore::bayesmoe.errors.ConvergenceWarning")


@_hier
def test_hierarchical_recovers_distinct_group_exponents(hier_differ):
    groups, result = hier_differ
    alpha = result.posterior["alpha"]
    assert alpha.dims == ("chain", "draw", "group")
    for g, over in groups.items():
        lo, hi = alpha.sel(group=g).quantile([0.025, 0.975]).values
        assert lo < over["alpha"] < hi, (g, lo, hi)
    diff = (alpha.sel(group="g4") - alpha.sel(group="g0")).values
    assert np.quantile(diff, 0.025) > 0  # the 0.1 gap is resolved


# The 'alike' fit costs about 45-100 s on 2 cores: CI runs this test after the default suite
# (pytest -m extended), which keeps the default under 15 minutes.
@pytest.mark.extended
@_hier
def test_hierarchical_shrinks_alike_groups(hier_differ, hier_alike):
    _, alike = hier_alike
    _, differ = hier_differ
    # Alike groups put each spread's posterior near 0 with a long upper tail, where the data pin
    # every group and non-centred offsets form a funnel: on an AMD EPYC host this fit (seed 0)
    # has 8 divergent transitions, at the high end of e's spread, and 4 of seeds 0-11 have 1-8
    # (2 of 12 without the noise trend; target_accept 0.995 and half-centred offsets do not cure
    # it, a tighter prior on that spread does: docs/validation.md, "Alike groups"). It passes on the Intel hosts of
    # sessions 15-21. Whatever the host, nothing else may fail, and divergences placed at all
    # (bayesmoe.inference.divergence_tails: one or two may sit nowhere unusual) must include
    # the high end of a spread across groups, which is what the message then tells the user.
    diag = alike.diagnostics
    assert len(diag.problems) == (diag.divergences > 0), diag.problems  # divergences, or nothing
    if diag.divergence_sites:
        assert any(s.endswith("_tau") and side == "upper" for s, side in diag.divergence_sites.items()), diag.problems
    a = alike.posterior["alpha"]
    spread_alike = np.abs((a.sel(group="g4") - a.sel(group="g0")).values)
    # alike groups are pooled: their difference stays well inside the 0.1 that the other fit resolves
    assert np.quantile(spread_alike, 0.95) < 0.05
    assert float(alike.posterior["alpha_tau"].median()) < float(differ.posterior["alpha_tau"].median())


@_hier
def test_hierarchical_fit_passes_diagnostics(hier_differ):
    _, result = hier_differ
    assert result.diagnostics.ok, result.diagnostics.problems


@_short
def test_one_group_is_the_plain_model():
    runs = synthetic_runs("chinchilla", n_runs=40, seed=3).assign(group="only")
    result = bayesmoe.fit(runs, law="chinchilla", **STRUCTURE)
    assert not result.hierarchical
    assert "group" not in result.posterior["alpha"].dims
    assert not any(v.endswith(("_tau", "_z")) for v in result.tree["posterior"].data_vars)


def test_bad_fit_raises_naming_parameters_and_warn_keeps_it():
    runs = synthetic_runs("chinchilla", n_runs=40, seed=4)
    tiny = dict(num_chains=2, num_warmup=20, num_samples=20, seed=0, progress=False)
    with pytest.raises(bayesmoe.ConvergenceError) as info:
        bayesmoe.fit(runs, law="chinchilla", **tiny)
    msg = str(info.value)
    # 2 chains x 20 draws cannot reach bulk ESS 200 (nor could 60: fit does not extend them): the
    # advice doubles what the fit did
    assert "ESS" in msg and "α" in msg and "num_warmup=40" in msg and "num_samples=40" in msg
    assert "on_bad_fit='warn'" in msg and "--" not in msg  # Python keywords for a Python caller
    kept = info.value.result  # the failed fit is not lost
    assert kept is not None and kept.failed and kept.tree.attrs["convergence"] == "failed"
    assert kept.warnings == [msg] and kept.posterior["alpha"].sizes["draw"] == 20
    assert "extended" not in kept.model_card()
    with pytest.warns(bayesmoe.ConvergenceWarning):
        result = bayesmoe.fit(runs, law="chinchilla", on_bad_fit="warn", **tiny)
    assert result.warnings and "ESS" in result.warnings[0]
    assert not result.diagnostics.ok


def test_a_fit_asked_to_sample_on_keeps_every_draw_and_says_so(monkeypatch):
    # fit's test of whether to extend (Diagnostics.worth_extending, tests/test_inference.py) is
    # replaced by "always": two extensions of 20 draws per chain, the same chains; the card says
    # so and the advice doubles the 60 draws the fit ended with
    from bayesmoe import fitting

    seen = []

    def always(posterior, diverging, *, sampled, most):
        seen.append((posterior["alpha"].shape, most, "alpha" in sampled))
        return True

    monkeypatch.setattr(fitting, "_worth_extending", always)
    runs = synthetic_runs("chinchilla", n_runs=40, seed=4)
    tiny = dict(num_chains=2, num_warmup=20, num_samples=20, seed=0, progress=False)
    with pytest.raises(bayesmoe.ConvergenceError) as info:
        bayesmoe.fit(runs, law="chinchilla", **tiny)
    assert seen == [((2, 20), 60, True), ((2, 40), 60, True)]
    kept = info.value.result
    assert kept.posterior["alpha"].sizes["draw"] == 60 and kept.diagnostics.num_draws == 60
    assert kept.tree["log_likelihood"]["log_loss"].sizes["draw"] == 60
    assert "num_samples=120" in str(info.value) and "sampling extended twice" in kept.model_card()
    assert json.loads(kept.tree.attrs["timings"])["extensions"] == 2


@pytest.mark.extended  # CI runs it after the default suite: pytest -m extended
def test_failed_hierarchical_fit_speaks_of_the_laws_parameters_and_not_of_what_it_did():
    # grouped table at target_accept 0.99: the advice must not suggest a group column or a
    # target_accept the fit already used, and must not name internal sites (alpha_z, level_tau)
    runs = synthetic_runs("chinchilla", n_runs=20, seed=4, groups={"a": {}, "b": {"alpha": 0.4}})
    with pytest.raises(bayesmoe.ConvergenceError) as info:
        bayesmoe.fit(runs, law="chinchilla", num_chains=2, num_warmup=20, num_samples=20, seed=0,
                     target_accept=0.99, progress=False)
    msg = str(info.value)
    sampled = info.value.result.sampled_sites
    assert any(s.endswith("_z") for s in sampled) and "level_tau" in sampled
    for internal in ("_z ", "_z,", "_tau", "_rel", "_level", "_centred", "log_loss_best"):
        assert internal not in msg, (internal, msg)
    assert "α" in msg and "target_accept" not in msg and "'group' column" not in msg


def test_same_seed_gives_bit_identical_draws_in_two_processes(tmp_path):
    # Two fresh processes, one seed: identical draws, bit for bit. The second process finds the
    # first one's programs in JAX's compilation cache (bayesmoe.compile_cache), so this also shows
    # that the cache does not change the draws.
    import os
    import subprocess
    import sys

    script = (
        "import sys, numpyro; numpyro.set_host_device_count(2)\n"
        "import numpy as np, bayesmoe\n"
        "from bayesmoe.testing import synthetic_runs\n"
        "r = bayesmoe.fit(synthetic_runs('chinchilla', n_runs=20, seed=1), law='chinchilla', num_chains=2,"
        " num_warmup=30, num_samples=30, seed=7, progress=False, on_bad_fit='warn')\n"
        "np.savez(sys.argv[1], **{k: v.values for k, v in r.tree['posterior'].data_vars.items()},"
        " diverging=r.tree['sample_stats']['diverging'].values)\n"
    )
    cache = tmp_path / "cache"
    env = {**os.environ, "BAYESMOE_CACHE_DIR": str(cache), "PYTHONWARNINGS": "ignore"}
    outs = [tmp_path / f"draws{i}.npz" for i in range(2)]
    for out in outs:
        subprocess.run([sys.executable, "-c", script, str(out)], check=True, env=env)
    assert any((cache / "jax").iterdir())  # the first process filled the cache
    first, second = np.load(outs[0]), np.load(outs[1])
    assert set(first.files) == set(second.files) and "alpha" in first.files
    for name in first.files:
        assert first[name].tobytes() == second[name].tobytes(), name


def test_fit_rejects_bad_arguments():
    runs = synthetic_runs("chinchilla", n_runs=20, seed=5)
    with pytest.raises(ValueError, match="on_bad_fit"):
        bayesmoe.fit(runs, law="chinchilla", on_bad_fit="ignore")
    with pytest.raises(ValueError, match="unknown law"):
        bayesmoe.fit(runs, law="kaplan")
    with pytest.raises(bayesmoe.DataValidationError, match="experts"):
        bayesmoe.fit(runs.drop(columns=[]), law="sparsity")  # needs n_total and experts
    with pytest.raises(bayesmoe.PriorError, match="unknown prior sites"):
        bayesmoe.fit(runs, law="chinchilla", priors={"alhpa": 0.3})


@pytest.mark.extended  # CI runs it after the default suite: pytest -m extended
@_short
def test_fixed_e_hat_parameters():
    # checks that fixing works, not convergence (R-hat 1.014 was measured here at 500 draws)
    runs = synthetic_runs("joint", n_runs=120, seed=6)
    result = bayesmoe.fit(runs, law="joint", priors={"e_start": 2.0732, "e_max": 290.4521}, **STRUCTURE)
    # every draw is the fixed value (compared per draw: a float32 std of a constant is not exactly 0)
    draws = result.posterior["e_start"].values
    assert np.all(draws == draws.flat[0])
    assert float(draws.flat[0]) == pytest.approx(2.0732, rel=1e-6)


@_short
def test_one_group_parameters_are_scalars_per_draw():
    runs = synthetic_runs("chinchilla", n_runs=40, seed=8)
    result = bayesmoe.fit(runs, law="chinchilla", **STRUCTURE)
    for name, var in result.posterior.data_vars.items():
        assert var.dims == ("chain", "draw"), (name, var.dims)


@_hier
def test_chains_start_where_the_density_is_finite():
    # A Chinchilla table drawn from the prior (SBC data set 15) whose prior-median parameters put
    # the reducible terms above the best run's loss. When the plain model derived c from sampled
    # scale levels, no start near the medians had finite density, and NumPyro, with chains in
    # parallel, left such chains stuck (measured: 250 divergent transitions, R-hat 1.53); the
    # uniform fallback of bayesmoe's starts fixed that, and it still serves hierarchical fits.
    # The plain model now samples log-ratios of c and the terms (bayesmoe.models), so its
    # density is finite at the medians whatever the table. The bars separate a stuck chain from a
    # working fit (measured: 0 divergences, R-hat < 1.01).
    from numpyro.infer.util import log_density

    from bayesmoe.laws import get_law
    from bayesmoe.models import build_model, make_design, share_sites
    from bayesmoe.priors import resolve_priors
    from bayesmoe.testing import design_grid
    from bayesmoe.validation import _reference, draw_from_prior

    law = get_law("chinchilla")
    # the priors SBC data set 15 was drawn from, before the noise's trend in compute (with it,
    # the draw takes one more key and is another table)
    spec = resolve_priors(law, {"sigma_trend": 0})
    design = design_grid(law, n_runs=100, seed=0)
    ref = _reference(law, design, 3.0, 2.2)
    truth, table = draw_from_prior(law, spec, design, ref, seed=15)
    model = build_model(law, spec, make_design(table.assign(group="sbc"), law, **ref))
    medians = {s: spec[s].args["loc"] for s in ("alpha", "beta")}
    medians["sigma"] = spec["sigma"].args["scale"] * 0.6745  # median of a half-normal
    medians.update(model.init_values)
    assert set(model.init_values) == {"log_loss_centre", *share_sites(law)}
    lp, _ = log_density(model, (), {"log_loss": np.log(table["loss"].to_numpy())}, medians)
    assert np.isfinite(lp)
    result = bayesmoe.fit(table, law=law, num_warmup=500, num_samples=250, seed=15, progress=False,
                          on_bad_fit="warn", unit_checks=False, reference=ref)
    assert result.diagnostics.divergences < 50 and result.diagnostics.max_rhat < 1.05, result.diagnostics.problems


@pytest.mark.extended  # CI runs it after the default suite: pytest -m extended
def test_an_exponent_no_group_can_inform_gets_no_group_offsets():
    # Each group one model size (checkpoints of one model at several token counts, as in the
    # ModuleFormer table): a group's own α only rescales its a·N^-α term by a constant, which its
    # level absorbs. α is then shared by all groups, and the fit says so; β, whose input varies
    # within every group, keeps its offsets. A table with sizes varying inside a group keeps both.
    import pandas as pd

    from bayesmoe.data import validate_runs
    from bayesmoe.fitting import _uninformed_offsets
    from bayesmoe.laws import get_law
    from bayesmoe.models import make_design
    from bayesmoe.priors import resolve_priors

    law = get_law("chinchilla")
    spec = resolve_priors(law, "literature")
    tokens = np.geomspace(1e9, 3e10, 6)
    one_size = pd.DataFrame([{"n_active": n, "tokens": d, "group": g}
                             for g, n in (("s", 1e8), ("m", 4e8), ("l", 1.6e9)) for d in tokens])
    runs = synthetic_runs("chinchilla", design=one_size, seed=0)
    runs["group"] = one_size["group"]

    def shared(table):
        return _uninformed_offsets(law, spec, make_design(validate_runs(table, required=law.inputs + ("loss",)), law))

    assert shared(runs) == ["alpha"]
    mixed = runs.copy()
    mixed.loc[mixed.index[::2], "n_active"] *= 2.0  # two sizes inside every group
    assert shared(mixed) == []
    with pytest.warns(bayesmoe.ConvergenceWarning):  # 20 draws: only the model's layout matters here
        result = bayesmoe.fit(runs, law="chinchilla", num_chains=1, num_warmup=20, num_samples=20, seed=0,
                              progress=False, on_bad_fit="warn", discrepancy="none")
    assert "alpha" not in result.pooled and "beta" in result.pooled
    assert any(n.startswith("α: one value for all groups") for n in json.loads(result.tree.attrs["table_notes"]))
    # and the irreducible loss and levels keep non-centred offsets there: a·N^-α is a constant
    # inside each group, which the group's own c cannot be told from (fitting._centred_spreads)
    assert json.loads(result.tree.attrs["centred_spreads"]) == []
    assert {"e_rel_z", "level_z"} <= set(result.tree["posterior"].data_vars)


def test_centre_samples_the_named_offsets_half_centred_and_rejects_what_it_cannot_centre(tmp_path):
    # fit(..., centre=...) is the caller's choice (the default stays non-centred: see
    # fitting._centred_spreads): the irreducible loss and the levels (any scale names them) get
    # half-centred offsets; the exponents keep theirs. Names it cannot centre are refused.
    runs = synthetic_runs("chinchilla", n_runs=20, seed=0, groups={"a": {}, "b": {"e": 1.6}})
    kw = dict(law="chinchilla", num_chains=1, num_warmup=20, num_samples=20, seed=0, progress=False,
              on_bad_fit="warn", discrepancy="none")
    with pytest.warns(bayesmoe.ConvergenceWarning):  # 20 draws: only the model's layout matters here
        centred = bayesmoe.fit(runs, centre=("e", "b"), **kw)
    assert json.loads(centred.tree.attrs["centred_spreads"]) == ["e_rel_tau", "level_tau"]
    sampled = set(centred.tree["posterior"].data_vars)
    assert {"e_rel_offset_decentered", "level_offset_decentered", "alpha_z"} <= sampled
    assert centred.describe_site("level_offset_decentered") == "a, b (groups' offsets)"
    assert centred.posterior["e"].dims == ("chain", "draw", "group")
    # the choice is on the model card and the report, in the law's words, and survives saving
    line = "half-centred for e; a, b (centre=...); the others non-centred (τ · z)"
    assert centred.group_offsets() == line and f"| groups' offsets | {line} |" in centred.model_card()
    from bayesmoe.report import _provenance

    assert ("groups' offsets", line) in _provenance(centred)
    path = tmp_path / "centred.nc"
    centred.save(path)
    with pytest.warns(bayesmoe.ConvergenceWarning):  # loading a failed fit says so
        assert bayesmoe.load(path).centred_spreads == ("e_rel_tau", "level_tau")
    from bayesmoe.fitting import _centred_spreads

    assert _centred_spreads(centred.law, centred.priors, None, "e", 2) == ("e_rel_tau",)  # one name as a string
    with pytest.raises(bayesmoe.InputError, match="irreducible loss 'e' and its scales"):
        bayesmoe.fit(runs, centre=("alpha",), **kw)
    with pytest.raises(bayesmoe.InputError, match="no group offsets"):
        bayesmoe.fit(runs, centre=("e",), pooled=["alpha", "beta"], **kw)
    with pytest.raises(bayesmoe.InputError, match="one group"):
        bayesmoe.fit(runs[runs["group"] == "a"].drop(columns="group"), centre=("e",), **kw)


def test_the_readme_table_converges_at_the_joint_laws_defaults():
    """The README's main job with nothing but the table, the law and a seed: fit's defaults (4 ×
    1000/1000; the joint law's slope coordinates, 8 start candidates and target_accept 0.95) pass
    every check. In the exponent coordinates the same fit diverged on 7 of 8 seeds at 0.8 and
    needed 0.99 (bench/screen_joint_nuts.py --table reference); this pins seed 0, the README's."""
    from pathlib import Path

    import pandas as pd

    table = pd.read_csv(Path(__file__).resolve().parents[1] / "data" / "reference_runs.csv")
    runs = table.query("granularity == 1 and split != 'heldout'")
    result = bayesmoe.fit(runs, law="joint", seed=0, progress=False, discrepancy="none")
    assert result.tree.attrs["target_accept"] == 0.95 and result.tree.attrs["start_candidates"] == 8
    assert "target_accept 0.95, each chain from the best of 8 start candidates |" in result.model_card()
    d = result.diagnostics
    assert d.divergences == 0 and d.ok, d.problems


def test_a_chain_stuck_in_a_negligible_mode_restarts_and_the_fit_converges():
    """Joint SBC data set 3 (prior draw 3 on the 120-run design grid, SBC's loss reference). In
    the joint law's exponent coordinates from prior-median starts (its defaults before session 20)
    with seed 3, two chains of four warm up in a second mode 125-126 nats worse, and without the
    restart the fit fails (R-hat 1.73, bulk ESS 6: measured with RESTART_NATS = inf). They restart
    from the best chain, the fit passes its checks, and its notes say so. In slope coordinates
    from one start every chain warmed up there (σ 0.14 against a true 0.048, R-hat 1.002: no
    check can see it); at the joint law's defaults, 8 start candidates, the fit ends in the
    better mode (with seed 3 one chain's candidates all miss it, and it restarts)."""
    import dataclasses
    import inspect

    from bayesmoe.laws import get_law
    from bayesmoe.priors import resolve_priors
    from bayesmoe.testing import design_grid
    from bayesmoe.validation import _reference, draw_from_prior, sbc

    law = get_law("joint")
    spec = resolve_priors(law, "literature")
    grid = design_grid(law, n_runs=120, seed=0)
    defaults = inspect.signature(sbc).parameters
    ref = _reference(law, grid, defaults["loss_ref"].default, defaults["loss_min"].default)
    truth, table = draw_from_prior(law, spec, grid, ref, seed=3)
    former = dataclasses.replace(law, own_exponents={}, slope_power=1.0, start_candidates=1, target_accept=0.99)
    kw = dict(priors=spec, progress=False, unit_checks=False, reference=ref, discrepancy="none")
    result = bayesmoe.fit(table, law=former, seed=3, **kw)
    restarts = json.loads(result.tree.attrs["timings"])["restarts"]
    assert [r["chain"] for r in restarts] == [1, 3] and all(r["gap_nats"] > 100 for r in restarts)
    assert result.diagnostics.ok, result.diagnostics.problems
    notes = json.loads(result.tree.attrs["table_notes"])
    assert any(n.startswith("sampler: restarted after warmup chain 1 from chain 0's state") for n in notes)
    assert "sampler: restarted after warmup" in result.model_card()
    now = bayesmoe.fit(table, law=law, seed=3, **kw)
    assert now.diagnostics.ok, now.diagnostics.problems
    # the mode the chains end in (a chain whose candidates all missed its basin restarts from one
    # that did): σ within its 90 % interval; the worse mode's σ is 3 times the truth
    lo, hi = np.quantile(now.tree["posterior"]["sigma"].values, [0.05, 0.95])
    assert lo < truth["sigma"] < hi


@pytest.mark.filterwarnings("ignore::bayesmoe.errors.ConvergenceWarning")  # 2 x 100 draws: a test of reuse
def test_a_second_table_of_one_padded_length_reuses_the_sampler_and_gets_its_own_draws():
    # fit gives the sampler its data as arguments, padded to models.padded_length (40 and 44
    # runs: both 48), so the second fit runs the programs compiled for the first. Nothing of the
    # first table may leak into them: the second fit's draws must be bit-identical to those of a
    # fit that compiled its own programs.
    from bayesmoe import inference
    from bayesmoe.laws import get_law
    from bayesmoe.models import padded_length

    law = get_law("chinchilla")
    first, second = synthetic_runs(law, n_runs=40, seed=1), synthetic_runs(law, n_runs=44, seed=2)
    assert padded_length(len(first)) == padded_length(len(second))
    kw = dict(law=law, num_chains=2, num_warmup=100, num_samples=100, progress=False, discrepancy="none", seed=3,
              on_bad_fit="warn")
    inference._PROGRAMS.clear()
    bayesmoe.fit(first, **kw)
    kept = dict(inference._PROGRAMS)
    assert len(kept) == 1
    reused = bayesmoe.fit(second, **kw)
    assert inference._PROGRAMS.keys() == kept.keys()
    assert all(inference._PROGRAMS[k] is kept[k] for k in kept)  # the same compiled programs
    inference._PROGRAMS.clear()
    own = bayesmoe.fit(second, **kw)
    for name, value in own.tree["posterior"].data_vars.items():
        np.testing.assert_array_equal(reused.tree["posterior"][name].values, value.values, err_msg=name)
    np.testing.assert_array_equal(reused.tree["log_likelihood"]["log_loss"].values,
                                  own.tree["log_likelihood"]["log_loss"].values)
    assert reused.tree["log_likelihood"].sizes["run"] == 44


# FitResult on a real (hierarchical) fit: predictions per group, summary and storage. These live
# here, not in tests/test_results.py, so that the session fixture hier_differ is fitted once per
# test worker (--dist loadfile gives each file to one worker).


@pytest.fixture(scope="module")
def real_fit(hier_differ):
    """A hierarchical Chinchilla fit: tests/conftest.py's five setups g0...g4 (N exponents
    0.30...0.40, equal loss at the design's centre N0 = 1.2e9): the hierarchical tests' 'differ'."""
    return hier_differ[1]


@_hier
def test_predict_known_group_and_new_setup(real_fit):
    new = pd.DataFrame({"n_active": [1e10], "tokens": [2e10]})  # 8.4 N0: the slopes have parted
    pa, pb = real_fit.predict(new, group="g0"), real_fit.predict(new, group="g4")
    assert float(pb.median()) < float(pa.median())  # group g4 has the steeper N exponent (0.40 vs 0.30)
    unseen = real_fit.predict(new, seed=1)
    # an unseen setup is less certain than either known one
    assert float(unseen.std()) > max(float(pa.std()), float(pb.std()))
    with pytest.raises(ValueError, match="unknown group"):
        real_fit.predict(new, group="zzz")


@_hier
def test_summary_has_medians_intervals_and_diagnostics(real_fit):
    table = real_fit.summary(ci_prob=0.9)
    for col in ("median", "eti90_lb", "eti90_ub", "r_hat", "ess_bulk", "ess_tail"):
        assert col in table.columns, table.columns
    assert any(i.startswith("alpha[") for i in table.index)
    assert "alpha_tau" in table.index


@_hier
def test_save_load_round_trip_is_exact(real_fit, tmp_path):
    path = real_fit.save(tmp_path / "fit.nc")
    back = bayesmoe.load(path)
    xr.testing.assert_identical(back.tree["posterior"].to_dataset(), real_fit.tree["posterior"].to_dataset())
    xr.testing.assert_identical(back.tree["sample_stats"].to_dataset(), real_fit.tree["sample_stats"].to_dataset())
    assert back.tree.attrs["priors"] == real_fit.tree.attrs["priors"]
    assert back.priors == real_fit.priors
    assert back.law is real_fit.law and back.groups == real_fit.groups
    pd.testing.assert_frame_equal(back.runs, real_fit.runs)
    new = pd.DataFrame({"n_active": [3e8], "tokens": [6e9]})
    np.testing.assert_array_equal(back.predict(new, group="g0").values, real_fit.predict(new, group="g0").values)


@_hier
def test_load_refuses_tampered_table_and_foreign_files(real_fit, tmp_path):
    path = real_fit.save(tmp_path / "fit.nc")
    with h5py.File(path, "r+") as f:
        f["constant_data/loss"][0] = f["constant_data/loss"][0] * 1.01
    with pytest.raises(bayesmoe.LoadError, match=r"do not hash .*constant_data.*\(loss\)"):
        bayesmoe.load(path)
    other = tmp_path / "other.nc"
    xr.Dataset({"x": ("i", [1.0])}).to_netcdf(other, engine="h5netcdf")
    with pytest.raises(bayesmoe.LoadError, match="schema"):
        bayesmoe.load(other)
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"not a netcdf file")
    with pytest.raises(bayesmoe.LoadError, match="not a readable"):
        bayesmoe.load(junk)
