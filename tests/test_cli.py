"""The README's commands and the CLI, run as subprocesses with tiny NUTS settings."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "bayesmoe.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={"CI": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                               "BAYESMOE_CACHE_DIR": os.environ["BAYESMOE_CACHE_DIR"]})


def test_readme_main_job_fits_reference_table_holds_out_and_writes_card(tmp_path):
    out = tmp_path / "reference.nc"
    # the README's main job, with fewer draws
    proc = run_cli("fit", "data/reference_runs.csv", "--law", "joint", "--where", "granularity == 1",
                   "--holdout", "split == 'heldout'", "--target-accept", "0.99", "--out", str(out),
                   "--report", str(tmp_path / "reference.html"), "--flops", "1e13", "1e16",
                   "--num-warmup", "300", "--num-samples", "300", "--on-bad-fit", "warn")
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(ROOT / "data" / "reference_runs.csv")
    kept = int((table["granularity"] == 1).sum())
    held = int(((table["granularity"] == 1) & (table["split"] == "heldout")).sum())
    assert f"{kept} of {len(table)} rows kept, {len(table) - kept} left out" in proc.stdout
    assert f"{held} rows set aside, {kept - held} fitted" in proc.stdout
    assert "posterior summary" in proc.stdout and "max R-hat" in proc.stdout
    assert "held-out runs" in proc.stdout
    assert "recommendations" in proc.stdout and "E_decision" in proc.stdout
    html = (tmp_path / "reference.html").read_text()
    assert 'id="recommendations"' in html and 'id="fig-isoflop"' in html
    card = (tmp_path / "reference.md").read_text()
    assert "--holdout" in card and "## Held-out runs" in card and "## Priors" in card
    assert "libtpu" not in proc.stderr  # JAX's own logging stays out of the CLI's output
    again = run_cli("summary", str(out))
    assert again.returncode == 0, again.stderr
    assert "posterior summary" in again.stdout


def test_bad_query_exits_2_naming_the_columns(tmp_path):
    proc = run_cli("fit", "data/reference_runs.csv", "--where", "granularty == 1")
    assert proc.returncode == 2
    assert "--where 'granularty == 1' is not a valid query" in proc.stderr and "granularity" in proc.stderr
    proc = run_cli("fit", "data/reference_runs.csv", "--holdout", "split == 'nope'")
    assert proc.returncode == 2 and "matches no row" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_input_exits_2_with_message_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"N": [1e8, -1.0], "D": [1e10, 2e10], "L": [3.0, 2.9]}).to_csv(bad, index=False)
    proc = run_cli("fit", str(bad), "--law", "chinchilla")
    assert proc.returncode == 2
    assert "n_active: rows [1] are <= 0" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert run_cli("fit", str(tmp_path / "missing.csv")).returncode == 2
    assert run_cli("summary", str(tmp_path / "missing.nc")).returncode == 2


def test_readme_commands_are_the_ci_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = 'python3 -m venv .venv && .venv/bin/pip install -e ".[dev,runs,ray]" && .venv/bin/python -m pytest'
    assert test_cmd in readme and test_cmd in ci


def test_optimal_prints_the_decision_table_and_json():
    proc = run_cli("optimal", "models/reference_joint.nc", "--flops", "1e13", "1e19", "--experts", "1", "4", "16")
    assert proc.returncode == 0, proc.stderr
    assert "E_decision" in proc.stdout and "P(E*=16)" in proc.stdout
    assert "extrapolation: 1 budget(s)" in proc.stdout
    js = run_cli("optimal", "models/reference_joint.nc", "--flops", "1e13", "--json")
    assert js.returncode == 0, js.stderr
    rows = json.loads(js.stdout)
    assert rows[0]["flops"] == 1e13 and abs(sum(v for k, v in rows[0].items() if k.startswith("P(E*=")) - 1) < 1e-9
    bad = run_cli("optimal", "models/reference_joint.nc", "--flops", "-5")
    assert bad.returncode == 2 and "flops must be finite and > 0" in bad.stderr and "Traceback" not in bad.stderr
    mem = run_cli("optimal", "models/reference_joint.nc", "--flops", "1e13", "--memory-gb", "1e-9")
    assert mem.returncode == 2 and "no configuration fits" in mem.stderr


def test_validate_holdout_on_the_shipped_table(tmp_path):
    # The ordered hold-out on a real table, in CI: the shipped calibration runs (G = 1), fitted
    # below the 80 % compute quantile. docs/validation.md measured 18/18 held-out runs inside
    # their 90 % new-run intervals (4 x 500/500); the command's bar is the 85 %.
    table, fig = tmp_path / "holdout.csv", tmp_path / "holdout.png"
    proc = run_cli("validate", "holdout", "data/reference_runs.csv", "--law", "joint", "--where", "granularity == 1",
                   "--target-accept", "0.95", "--num-warmup", "300", "--num-samples", "300",
                   "--out", str(table), "--figure", str(fig))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    held = pd.read_csv(table, index_col=0)
    runs = pd.read_csv(ROOT / "data" / "reference_runs.csv").query("granularity == 1")
    compute = 6 * runs["n_active"] * runs["tokens"]
    assert len(held) == int((compute > compute.quantile(0.8)).sum())
    assert held["in90"].mean() >= 0.85 and "verdict: PASS" in proc.stdout
    # measured max 0.077 nats; 0.1 is 2.7 sds of one new run (sigma 0.025 on ln loss, loss ~1.5)
    assert held["abs_error"].max() < 0.1
    assert fig.stat().st_size > 10_000


def test_validate_rejects_bad_input(tmp_path):
    proc = run_cli("validate", "holdout", "data/reference_runs.csv", "--law", "joint", "--by", "budget")
    assert proc.returncode == 2 and "not a column" in proc.stderr
    proc = run_cli("validate", "sbc", "--datasets", "0")
    assert proc.returncode == 2 and "--datasets must be >= 1" in proc.stderr
    proc = run_cli("validate", "holdout", str(tmp_path / "missing.csv"))
    assert proc.returncode == 2 and "cannot read" in proc.stderr


def test_validate_compare_two_saved_fits(tmp_path):
    # The shipped fit against a copy of itself: equal ELPD, difference 0, names from the files.
    import shutil

    copy = tmp_path / "copy.nc"
    shutil.copy(ROOT / "models" / "reference_joint.nc", copy)
    proc = run_cli("validate", "compare", "models/reference_joint.nc", str(copy))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "elpd_diff" in lines[0] and "n_k_bad" in lines[0]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"reference_joint", "copy"}
    assert rows["reference_joint"][2] == rows["copy"][2]  # same ELPD
    proc = run_cli("validate", "compare", "models/reference_joint.nc")
    assert proc.returncode == 2 and "at least two" in proc.stderr


def test_failed_fit_is_saved_marked_failed_and_the_advice_is_in_flags(tmp_path):
    # 2 chains x 30 draws cannot reach bulk ESS 200: the convergence check fails every time
    import warnings

    import bayesmoe
    from bayesmoe.testing import synthetic_runs

    runs = tmp_path / "runs.csv"
    synthetic_runs("chinchilla", n_runs=20, seed=2).to_csv(runs, index=False)
    out, report = tmp_path / "failed.nc", tmp_path / "failed.html"
    proc = run_cli("fit", str(runs), "--law", "chinchilla", "--num-chains", "2", "--num-warmup", "30",
                   "--num-samples", "30", "--out", str(out), "--report", str(report))
    assert proc.returncode == 1, proc.stderr
    assert "did not converge" in proc.stderr and "Traceback" not in proc.stderr
    assert "--num-warmup 60" in proc.stderr and "--num-samples 60" in proc.stderr
    assert "--on-bad-fit warn" in proc.stderr and "--target-accept 0.95" in proc.stderr
    assert "num_warmup=" not in proc.stderr and "on_bad_fit=" not in proc.stderr
    assert "saved (marked as FAILED)" in proc.stdout
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = bayesmoe.load(out)
    assert any(issubclass(w.category, bayesmoe.ConvergenceWarning) for w in caught)
    assert result.failed and result.tree.attrs["convergence"] == "failed"
    assert "--num-warmup 60" in result.warnings[0]
    assert "**FAILED" in out.with_suffix(".md").read_text()
    assert report.stat().st_size > 10_000 and "did not converge" in report.read_text()
    summary = run_cli("summary", str(out))
    assert summary.returncode == 0 and "ConvergenceWarning" in summary.stderr


def test_help_and_bad_input_do_not_import_jax(tmp_path):
    # the fast path of bench/bench_cli_startup.py, as a property rather than a time
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"N": [1e8, -1.0], "D": [1e10, 2e10], "L": [3.0, 2.9]}).to_csv(bad, index=False)
    code = (
        "import sys\n"
        "from bayesmoe.cli import main\n"
        f"rc = main(['fit', {str(bad)!r}, '--law', 'joint'])\n"
        "assert rc == 2, rc\n"
        "heavy = [m for m in ('jax', 'numpyro', 'arviz_stats', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'jax' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "n_active: rows [1] are <= 0" in proc.stderr
