"""FitResult: predictions, summaries, storage. Most use fake results (no NUTS); those on a real
hierarchical fit are in tests/test_fit.py, beside the fit they share."""

import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayesmoe
from bayesmoe.testing import TRUTH, fake_result, synthetic_runs


# The fits below serve only to exercise predictions and storage; whether they pass the convergence
# checks is not what these tests are about.
pytestmark = pytest.mark.filterwarnings("ignore::bayesmoe.errors.ConvergenceWarning")


def test_predict_mean_matches_law_at_truth():
    result = fake_result("joint", rel_sd=1e-6)
    new = pd.DataFrame({"N": [1e9], "D": [2e10], "E": [8]})
    pred = result.predict(new)
    assert pred.dims == ("chain", "draw", "run")
    assert float(pred.median()) == pytest.approx(2.508777, rel=1e-4)  # LAWS.md row 10


def test_predict_new_run_adds_noise_of_fitted_size():
    result = fake_result("chinchilla", rel_sd=1e-6, sigma=0.02, num_draws=2000)
    new = pd.DataFrame({"n_active": [1e9], "tokens": [2e10]})
    mean = result.predict(new)
    noisy = result.predict(new, kind="new_run", seed=3)
    log_ratio = np.log(noisy.values / mean.values).ravel()
    # Student-t(4) with scale 0.02 has sd 0.02·√2; 4000 draws give the sd to about ±5 %
    assert np.std(log_ratio) == pytest.approx(0.02 * np.sqrt(2), rel=0.15)
    with pytest.raises(ValueError, match="kind"):
        result.predict(new, kind="median")


def test_fake_result_round_trips(tmp_path):
    result = fake_result("joint")
    back = bayesmoe.load(result.save(tmp_path / "fake.nc"))
    assert float(back.posterior["alpha"].median()) == pytest.approx(TRUTH["joint"]["alpha"], rel=0.01)


def test_import_does_not_pull_torch():
    code = "import sys, bayesmoe, bayesmoe.testing; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow  # 1.5 min: a two-group joint fit; the chinchilla path is tests/test_fit.py::test_predict_known_group_and_new_setup
def test_new_setup_of_a_centred_law_uses_the_sampled_population_coordinate():
    """Joint law, two alike groups: a new setup's expected loss matches the known groups'.

    The joint law samples its exponents centred at the data; a new setup must draw around the
    population value of that coordinate (mixing it up with the paper-form value shifted alpha by
    gamma·ln Ê(x0): measured 2.581 against a truth of 2.509, 2.9 % off, here)."""
    runs = synthetic_runs("joint", n_runs=80, seed=11, groups={"a": {}, "b": {}})
    result = bayesmoe.fit(runs, law="joint", num_chains=2, num_warmup=300, num_samples=300, seed=0,
                          progress=False, on_bad_fit="warn")
    new = pd.DataFrame({"n_active": [1e9], "tokens": [2e10], "experts": [8]})
    truth = float(result.law.loss({k: np.float32(v) for k, v in TRUTH["joint"].items()},
                                  {k: np.asarray(new[k].to_numpy(), dtype="float32") for k in new})[0])
    known = float(result.predict(new, group="a").median())
    unseen = float(result.predict(new, seed=2).median())
    # 160 runs at 1 % noise pin the group's curve at an interior point to well under 1 %; a new
    # setup adds the groups' spread (alike here), so its median stays within 2 % of the truth
    assert known == pytest.approx(truth, rel=0.01)
    assert unseen == pytest.approx(truth, rel=0.02)


def test_stuck_chains_fail_the_diagnostics():
    # Chains that never move (every proposal rejected, as when a fit starts in a region it cannot
    # leave) have zero within-chain variance; arviz-stats returns NaN R-hat and ESS for them, which
    # must count as a failure (R-hat inf, ESS 0), not drop out of a max or min.
    from bayesmoe.inference import diagnose_arrays

    rng = np.random.default_rng(0)
    no_div = np.zeros((4, 1000), bool)
    stuck = np.repeat(np.array([[0.1], [0.2], [0.3], [0.4]]), 1000, axis=1)
    diag = diagnose_arrays({"alpha": stuck, "beta": rng.normal(size=(4, 1000))}, no_div, ["alpha", "beta"])
    assert not diag.ok and diag.max_rhat == np.inf and diag.min_ess_bulk < 400
    assert any("alpha (inf)" in p for p in diag.problems), diag.problems
    healthy = diagnose_arrays({"beta": rng.normal(size=(4, 1000))}, no_div, ["beta"])
    assert healthy.ok, healthy.problems


# ------------------------------------------------------------------ a saved file cannot lie
def _saved_fake(tmp_path):
    from bayesmoe.inference import diagnose

    result = fake_result("chinchilla", num_draws=300)
    result.diagnostics = diagnose(result.tree, result.sampled_sites)  # real numbers, R-hat not 1.0
    assert result.diagnostics.ok and result.diagnostics.max_rhat != 1.0
    result.tree.attrs["command"] = "bayesmoe fit runs.csv --law chinchilla"
    return result.save(tmp_path / "fit.nc")


def _halve_alpha(f):
    f["posterior/alpha"][...] = f["posterior/alpha"][...] * 0.5


def _rhat_one(f):
    import json

    diag = json.loads(f.attrs["diagnostics"])
    f.attrs["diagnostics"] = json.dumps({**diag, "max_rhat": 1.0})


def _diverge_200(f):
    flags = f["sample_stats/diverging"][...]
    flags.flat[:200] = 1
    f["sample_stats/diverging"][...] = flags


def _edit_priors(f):
    f.attrs["priors"] = f.attrs["priors"].replace('"alpha"', '"alpha" ', 1)


def _edit_command(f):
    f.attrs["command"] = "bayesmoe fit other.csv"


@pytest.mark.parametrize("edit, named", [
    (_halve_alpha, "group 'posterior' (alpha)"),
    (_rhat_one, "attribute 'diagnostics'"),
    (_diverge_200, "group 'sample_stats' (diverging)"),
    (_edit_priors, "attribute 'priors'"),
    (_edit_command, "attribute 'command'"),
])
def test_load_refuses_an_edited_file_naming_what_changed(tmp_path, edit, named):
    path = _saved_fake(tmp_path)
    bayesmoe.load(path)  # the unedited file loads
    with h5py.File(path, "r+") as f:
        edit(f)
    with pytest.raises(bayesmoe.LoadError, match="do not hash") as info:
        bayesmoe.load(path)
    assert named in str(info.value)


def test_load_recomputes_the_diagnostics_from_the_draws(tmp_path):
    # Someone who also rewrites the hashes still cannot make 200 divergences read as 0: the
    # summary comes from the stored draws, never from the stored `diagnostics` attribute.
    import json

    from bayesmoe.results import _content_hash, content_parts

    path = _saved_fake(tmp_path)
    tree = xr.open_datatree(path, engine="h5netcdf").load()
    tree["sample_stats"]["diverging"].data.flat[:200] = True  # in place: the node's own array
    assert int(tree["sample_stats"]["diverging"].sum()) == 200
    tree.attrs["diagnostics"] = json.dumps({**json.loads(tree.attrs["diagnostics"]), "divergences": 0})
    parts = content_parts(tree)
    tree.attrs["content_parts"], tree.attrs["content_sha256"] = json.dumps(parts), _content_hash(parts)
    forged = tmp_path / "forged.nc"
    tree.to_netcdf(forged, engine="h5netcdf")
    with pytest.warns(bayesmoe.ConvergenceWarning, match="200 divergent transitions"):
        back = bayesmoe.load(forged)
    assert back.diagnostics.divergences == 200 and back.failed


def test_old_schema_is_refused_with_the_way_out(tmp_path):
    path = _saved_fake(tmp_path)
    with h5py.File(path, "r+") as f:
        f.attrs["schema"] = "bayesmoe-fit/1"
    with pytest.raises(bayesmoe.LoadError, match="resave_schema1.py"):
        bayesmoe.load(path)


def test_shipped_and_saved_files_record_the_numerical_stack(tmp_path):
    import json

    result = fake_result("chinchilla")
    versions = json.loads(result.tree.attrs["versions"])
    for name in ("jax", "jaxlib", "numpyro", "arviz-base", "arviz-stats", "numpy", "xarray", "platform", "python"):
        assert versions[name] and versions[name] != "not installed", name
    back = bayesmoe.load(result.save(tmp_path / "fit.nc"))
    assert json.loads(back.tree.attrs["versions"]) == versions
    card = back.model_card()
    assert f"jaxlib {versions['jaxlib']}" in card and f"arviz-stats {versions['arviz-stats']}" in card


# ------------------------------------------------------------------ predict
def test_predict_is_labelled_and_takes_repeated_inputs():
    result = fake_result("joint", rel_sd=1e-6)
    # three seed replicates of one configuration and one other: inputs repeat, rows do not merge
    new = pd.DataFrame({"N": [1e9, 1e9, 1e9, 3e8], "D": [2e10, 2e10, 2e10, 6e9], "E": [8, 8, 8, 1]},
                       index=["s0", "s1", "s2", "small"])
    pred = result.predict(new)
    assert pred.dims == ("chain", "draw", "run") and pred.sizes["run"] == 4
    assert list(pred["run"].values) == ["s0", "s1", "s2", "small"]
    np.testing.assert_array_equal(pred["n_active"].values, [1e9, 1e9, 1e9, 3e8])
    np.testing.assert_array_equal(pred["experts"].values, [8, 8, 8, 1])
    assert pred["tokens"].dims == ("run",)
    np.testing.assert_array_equal(pred.sel(run="s0").values, pred.sel(run="s2").values)
    assert pred.attrs["units"] == "nats/token" and pred.attrs["kind"] == "mean"


@pytest.mark.parametrize("bad, message", [
    (pd.DataFrame({"n_active": [1e9, np.nan], "tokens": [2e10, 2e10], "experts": [8, 8]}), "missing"),
    (pd.DataFrame({"n_active": [1e9, -1.0], "tokens": [2e10, 2e10], "experts": [8, 8]}), "<= 0"),
    (pd.DataFrame({"n_active": [1e9], "experts": [8]}), "tokens"),
])
def test_predict_still_validates_its_inputs(bad, message):
    with pytest.raises(bayesmoe.DataValidationError, match=message):
        fake_result("joint").predict(bad)
