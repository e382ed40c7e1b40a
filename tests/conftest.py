"""Shared fixtures. JAX must see one CPU device per chain before anything imports it."""

import os

import tempfile  # noqa: E402

os.environ.setdefault("CI", "1")  # no progress bars in test logs
# Fits in tests use the shipped discrepancy prior without backtests (three extra refits per fit
# would triple the suite's time); tests of the backtests themselves ask for them explicitly
# (tests/test_discrepancy.py). Subprocesses (the CLI tests) inherit it.
os.environ.setdefault("BAYESMOE_DISCREPANCY", "prior")
# JAX's compilation cache (on by default, bayesmoe.compile_cache) goes to a fresh folder, not the
# user's cache directory; subprocesses inherit it
os.environ.setdefault("BAYESMOE_CACHE_DIR", tempfile.mkdtemp(prefix="bayesmoe-test-cache-"))

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
