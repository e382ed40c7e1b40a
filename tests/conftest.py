"""Shared fixtures. JAX must see one CPU device per chain before anything imports it."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("CI", "1")  # no progress bars in test logs
# Fits in tests use the shipped discrepancy prior without backtests (three extra refits per fit
# would triple the suite's time); tests of the backtests themselves ask for them explicitly
# (tests/test_discrepancy.py). Subprocesses (the CLI tests) inherit it.
os.environ.setdefault("BAYESMOE_DISCREPANCY", "prior")
# JAX's compilation cache (on by default, bayesmoe.compile_cache) goes to a fresh folder, not the
# user's cache directory; subprocesses (and xdist's workers) inherit it, and the process that made
# it removes it at exit
if "BAYESMOE_CACHE_DIR" not in os.environ:
    os.environ["BAYESMOE_CACHE_DIR"] = tempfile.mkdtemp(prefix="bayesmoe-test-cache-")
    atexit.register(shutil.rmtree, os.environ["BAYESMOE_CACHE_DIR"], ignore_errors=True)

import numpyro  # noqa: E402

numpyro.set_host_device_count(4)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: third-party tables read in place; absent on a user's machine."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (it is not shipped with bayesmoe)")
    return SHARED_DATA


# Five setups whose N exponents differ (0.30 ... 0.40) and five alike. As real setups do, the
# groups that differ share their loss at the design's centre and differ in slope: a is moved with
# alpha so that a·N0^-alpha is the same for every group (changing alpha alone would also move the
# loss level by a factor 8 at 1B parameters). 60 runs per group: alone, 30 runs at 1 % noise give
# alpha = 0.40 an interval of ±0.15, too wide for any model to resolve a 0.1 gap.
# Hierarchical fits run at the default target_accept of 0.99 (see bayesmoe.fit); at 0.8-0.95 these
# tables gave 1-4 divergences in the tails of the spreads (at 0.99 the alike fit still has 1-8 on
# 4 of 12 seeds on an AMD host: tests/test_fit.py::test_hierarchical_shrinks_alike_groups). At 4
# chains x 500/500 the 'differ' fit's R-hat sat at the 1.01 bar (1.0090-1.0101, bulk ESS 477-508
# over two builds of the same model, fit seed 0); 1000 draws: R-hat 1.0033, ESS 1127 (seed 0),
# 1.0031 and 1236 (seed 2). tests/test_fit.py checks recovery and diagnostics on the 'differ' fit
# and shrinkage on both (extended tier), and predicts, summarises and saves the 'differ' one; only
# that file uses them (one worker fits them once).
# 500 warmup iterations then passed on one host and gave the 'differ' fit 2 divergent transitions on
# another (Intel Xeon, 2026-12-02; R-hat 1.004, ESS 1361): fit's default warmup, 1000.
HIER_DRAWS = dict(num_chains=4, num_warmup=1000, num_samples=1000, seed=0, progress=False)
HIER_ALPHAS = [0.30, 0.325, 0.35, 0.375, 0.40]
HIER_TABLE_SEED = 2


def _hierarchical_fit(groups: dict):
    import bayesmoe  # imported when a test first asks for a fit, as the test modules do
    from bayesmoe.testing import TRUTH, synthetic_runs

    runs = synthetic_runs("chinchilla", TRUTH["chinchilla"], n_runs=60, noise_sd=0.01, seed=HIER_TABLE_SEED,
                          groups=groups)
    return groups, bayesmoe.fit(runs, law="chinchilla", on_bad_fit="warn", **HIER_DRAWS)


@pytest.fixture(scope="session")
def hier_differ():
    """Chinchilla law, five setups g0...g4 of 60 runs, N exponents 0.30...0.40: (groups, fit)."""
    import numpy as np

    from bayesmoe.testing import TRUTH, synthetic_runs

    base = TRUTH["chinchilla"]
    n0 = float(np.exp(np.log(synthetic_runs("chinchilla", n_runs=60, seed=HIER_TABLE_SEED)["n_active"]).mean()))
    return _hierarchical_fit({f"g{i}": {"alpha": a, "a": base["a"] * n0 ** (a - base["alpha"])}
                              for i, a in enumerate(HIER_ALPHAS)})


@pytest.fixture(scope="session")
def hier_alike():
    """Chinchilla law, five alike setups g0...g4 of 60 runs: (groups, fit)."""
    return _hierarchical_fit({f"g{i}": {} for i in range(5)})


# The longest files first (measured, `--durations`): with `--dist loadfile` each of the two
# workers takes the next whole file, so starting with the long ones lets both finish together.
_LONGEST_FIRST = ("test_fit.py", "test_cli.py", "test_validation.py", "test_discrepancy.py", "test_docs.py",
                  "test_design.py", "test_report.py", "test_sbc.py", "test_results.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its order
