"""Simulation-based calibration (bayesmoe.validation.sbc): the small version that runs in CI (extended tier).

The full checks (200 data sets, docs/validation.md) take an hour each; this one fits 20 prior
draws of the Chinchilla law in two vectorised batches with short chains. Its bar is
``sbc_check`` at a family-wise false-alarm rate of 1 %: each of the 6 parameters × (4 coverage
levels + 1 rank-uniformity test) must sit inside its Bonferroni band, centred on what a calibrated
model's interval of 100 draws covers (``expected_coverage``: 0.882 at 90 %). At n = 20 the bands
are wide (90 %: [0.55, 1.00]; 50 %: [0.10, 0.85]), so this test tells a working fitter from a
broken one (a sign or centring slip, a simulator that does not draw from the fitted prior, a
reference point that moves the posterior) rather than resolving a few points of coverage. Its
power, for a normal posterior whose centre is off by k of its own sds: the 90 % interval then
covers the truth with probability 0.36 at k = 2, and 20 such data sets leave the 90 % band with
probability 0.93 from that one cell alone; at k = 1 (coverage 0.74) only 0.02.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesmoe.laws import get_law
from bayesmoe.priors import resolve_priors
from bayesmoe.testing import design_grid
from bayesmoe.validation import _reference, draw_from_prior, sbc, sbc_check

# The settings of the full check (docs/validation/run_sbc.py): these 20 data sets are the first 20
# of the documented 200. (A cheaper variant, 60 runs and 4 x 300/200, failed one cell on these
# same 20 prior draws: alpha's 80 % interval covered 8/20, band [0.45, 1]; the full settings give
# 12/20. Over all 200 data sets alpha is calibrated: docs/validation.md.)
SMALL = dict(n_datasets=20, n_runs=100, num_chains=4, num_warmup=500, num_samples=250, thin=10,
             batch_size=10, progress=False)
# The resumption and CLI tests need a CSV, not a calibrated one: four short fits of small tables
# (about 25 s, against 140 s for SMALL), so that the default suite keeps under 15 minutes and the
# calibration check itself runs in CI's extended tier.
TINY = dict(n_datasets=4, n_runs=40, num_chains=2, num_warmup=100, num_samples=50, thin=5, batch_size=4,
            progress=False)
TINY_FLAGS = ["--datasets", "4", "--runs", "40", "--num-chains", "2", "--num-warmup", "100", "--num-samples", "50",
              "--thin", "5", "--batch-size", "4"]


@pytest.fixture(scope="module")
def small_sbc(tmp_path_factory):
    out = tmp_path_factory.mktemp("sbc") / "sbc_chinchilla.csv"
    return out, sbc("chinchilla", out=out, **SMALL)


@pytest.fixture(scope="module")
def tiny_sbc(tmp_path_factory):
    out = tmp_path_factory.mktemp("sbc") / "sbc_chinchilla_tiny.csv"
    return out, sbc("chinchilla", out=out, **TINY)


@pytest.mark.extended  # CI runs it after the default suite (pytest -m extended): 20 fits, about 140 s
def test_small_sbc_chinchilla_is_calibrated(small_sbc):
    _, table = small_sbc
    assert len(table) == 20 and sorted(table["dataset"]) == list(range(20))
    assert (table["draws"] == 100).all()  # 4 chains x 250 draws, every 10th
    assert table["started"].all()  # every chain of every data set found a finite start
    check = sbc_check(table)
    assert check.passed, str(check)
    assert set(check.coverage.index) == {"a", "alpha", "b", "beta", "e", "sigma", "sigma_trend"}
    # ranks lie in [0, draws]; coverage flags agree with the ranks they summarise
    ranks = table.filter(like="rank_").to_numpy()
    assert ranks.min() >= 0 and ranks.max() <= 100
    for p in check.coverage.index:  # inside the central 50 % of 100 draws: about 25-75 draws below
        inside = table.loc[table[f"cover50_{p}"], f"rank_{p}"]
        assert inside.between(20, 80).all(), (p, inside.tolist())


def test_sbc_resumes_and_refuses_other_settings(tiny_sbc):
    out, table = tiny_sbc
    assert len(table) == 4 and (table["draws"] == 20).all()  # 2 chains x 50 draws, every 5th
    again = sbc("chinchilla", out=out, **TINY)  # every data set is already in the file: no fit
    pd.testing.assert_frame_equal(again, table)
    with pytest.raises(ValueError, match="another setting"):
        sbc("chinchilla", out=out, **{**TINY, "thin": 2})
    with pytest.raises(ValueError, match="another setting"):
        sbc("joint", out=out, **TINY)
    # the review's case: another table size, prior, seed or target_accept must not resume either
    other_accept = 0.95 if get_law("chinchilla").target_accept != 0.95 else 0.99  # not the law's default
    for change in ({"n_runs": 30}, {"seed": 1}, {"target_accept": other_accept}, {"priors": {"alpha": 0.3}}):
        with pytest.raises(ValueError, match="another setting"):
            sbc("chinchilla", out=out, **{**TINY, **change})
    # a file of an older bayesmoe, without the recorded settings, is refused rather than mixed
    old = out.with_name("old.csv")
    pd.read_csv(out).drop(columns=["prior_sha256", "n_runs"]).to_csv(old, index=False)
    with pytest.raises(ValueError, match="not recorded"):
        sbc("chinchilla", out=old, **TINY)


def test_sbc_check_passes_uniform_ranks_and_fails_overconfident_ones():
    # Tables built from ranks alone: uniform ranks (a calibrated model) must pass at n = 200;
    # ranks of an over-confident posterior (the truth in the outer 10 % three times as often as
    # it should be) must fail, naming the parameter.
    rng = np.random.default_rng(0)
    n, draws = 200, 100

    def table(ranks):
        out = {"draws": np.full(n, draws)}
        for p, r in ranks.items():
            out[f"rank_{p}"] = r
            q = r / draws
            for level in (0.5, 0.8, 0.9, 0.95):
                out[f"cover{int(level * 100)}_{p}"] = (q >= (1 - level) / 2) & (q <= (1 + level) / 2)
        return pd.DataFrame(out)

    uniform = {p: rng.integers(0, draws + 1, n) for p in ("alpha", "beta")}
    assert sbc_check(table(uniform)).passed
    tails = rng.random(n) < 0.3
    over = np.where(tails, rng.choice([0, 1, 2, 98, 99, 100], n), rng.integers(5, 96, n))
    check = sbc_check(table({"alpha": uniform["alpha"], "beta": over}))
    assert not check.passed
    assert all(line.startswith("beta") for line in check.failures) and check.failures
    with pytest.raises(ValueError, match="no ranks"):
        sbc_check(table(uniform), ["gamma"])


def test_prior_draws_follow_the_fitted_prior():
    # The simulator must draw from exactly the prior the fit uses: alpha's draws against its
    # literature prior N(0.34, 0.1) (Kolmogorov-Smirnov, p > 0.001: a false alarm 1 in 1000).
    law = get_law("chinchilla")
    design = design_grid(law, n_runs=20, seed=0)
    ref = _reference(law, design, 3.0, 2.2)
    alphas = [draw_from_prior(law, "literature", design, ref, seed=i)[0]["alpha"] for i in range(150)]
    prior = resolve_priors(law, "literature")["alpha"].args
    assert stats.kstest(alphas, "norm", args=(prior["loc"], prior["scale"])).pvalue > 1e-3


def test_cli_validate_sbc_reads_the_table_and_draws_the_figures(tiny_sbc, tmp_path):
    # Every data set is already in the CSV, so the command only checks and draws; its exit code
    # is the verdict (0 pass, 1 fail).
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out, table = tiny_sbc
    fig = tmp_path / "ranks.png"
    proc = subprocess.run(
        [sys.executable, "-m", "bayesmoe.cli", "validate", "sbc", "--law", "chinchilla", *TINY_FLAGS,
         "--out", str(out),
         "--figure", str(fig)],
        capture_output=True, text=True, cwd=root, env={"CI": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})
    passed = sbc_check(table).passed
    assert proc.returncode == (0 if passed else 1), proc.stderr
    assert f"SBC over 4 data sets: {'PASS' if passed else 'FAIL'}" in proc.stdout
    bad = int(((table["divergences"] > 0) | ~(table["max_rhat"] <= 1.05) | ~table["started"]).sum())
    assert f"fits with divergences or R-hat > 1.05: {bad} of 4" in proc.stdout
    assert fig.stat().st_size > 10_000 and (tmp_path / "ranks_coverage.png").stat().st_size > 10_000


def test_rows_with_new_columns_do_not_misalign_an_older_csv(tmp_path):
    from bayesmoe.validation import _append_row

    out = tmp_path / "old.csv"
    pd.DataFrame([{"dataset": 0, "rank_alpha": 5}]).to_csv(out, index=False)
    _append_row(out, {"dataset": 1, "rank_alpha": 7})
    _append_row(out, {"dataset": 2, "started": True, "rank_alpha": 9})
    table = pd.read_csv(out)
    assert table["rank_alpha"].tolist() == [5, 7, 9] and table["dataset"].tolist() == [0, 1, 2]
    assert table["started"].isna().tolist() == [True, True, False]
