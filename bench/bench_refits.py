"""Refits of a growing table in one process (a run-design campaign's shape): shared sampler programs
against one compiled sampler per table.

    PYTHONPATH=. .venv/bin/python bench/bench_refits.py                  # joint law, 8 refits, ~5 min
    PYTHONPATH=. .venv/bin/python bench/bench_refits.py --law chinchilla --refits 4

``bayesmoe.fit`` gives the sampler its table as arguments, padded to
``bayesmoe.models.padded_length`` (16, 24, 32, 48, 64, 96, ... runs), and keeps the compiled
programs per law, priors, groups and padded length (``inference.run_nuts_batched``'s
``program_key``). Two arms, each in its own fresh ``BAYESMOE_CACHE_DIR`` (so both start cold), on
the same tables: a start of ``--start`` runs of ``bayesmoe.testing.synthetic_runs``, then one run
more per refit (``--refits`` refits), 2 chains × 300/300 as ``bench_design_campaigns.py``'s fits,
no extrapolation-error term (``discrepancy="none"``), the same seed per refit:

- ``shared``: ``fit`` as shipped;
- ``per table``: the baseline, as before the change: no padding (``padded_length`` is the
  identity, so every run count is its own program) and nothing kept between fits.

It prints each refit's wall seconds per arm and the totals, and checks that both arms' posterior
medians of every parameter agree to within Monte-Carlo error: both are exact samplers of one
posterior (the padding is masked out), with different draws.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings

import numpyro

numpyro.set_host_device_count(2)

import jax  # noqa: E402
import numpy as np  # noqa: E402

import bayesmoe  # noqa: E402
from bayesmoe import inference, models  # noqa: E402
from bayesmoe.testing import synthetic_runs  # noqa: E402


def run_arm(name: str, tables, law: str) -> tuple[list[float], list]:
    from jax.experimental.compilation_cache import compilation_cache

    os.environ["BAYESMOE_CACHE_DIR"] = tempfile.mkdtemp(prefix=f"bench-refits-{name.replace(' ', '-')}-")
    jax.config.update("jax_compilation_cache_dir", os.environ["BAYESMOE_CACHE_DIR"] + "/jax")
    # JAX opens its persistent cache once per process: without a reset the second arm would
    # keep reading and writing the first arm's folder
    compilation_cache.reset_cache()
    jax.clear_caches()
    inference._PROGRAMS.clear()
    seconds, fits = [], []
    for i, table in enumerate(tables):
        if name == "per table":
            inference._PROGRAMS.clear()
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits.append(bayesmoe.fit(table, law=law, num_chains=2, num_warmup=300, num_samples=300, seed=i,
                                     progress=False, discrepancy="none", on_bad_fit="warn", max_extensions=0))
        seconds.append(time.perf_counter() - t0)
        print(f"  {name:<9} refit {i}: {len(table)} runs, {seconds[-1]:.1f} s", flush=True)
    shutil.rmtree(os.environ["BAYESMOE_CACHE_DIR"], ignore_errors=True)
    return seconds, fits


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--law", default="joint")
    ap.add_argument("--start", type=int, default=40)
    ap.add_argument("--refits", type=int, default=8)
    a = ap.parse_args(argv)
    full = synthetic_runs(a.law, n_runs=a.start + a.refits, seed=0)
    tables = [full.iloc[:a.start + i] for i in range(a.refits)]
    print(f"{a.law}: {a.refits} refits of {a.start}..{a.start + a.refits - 1} runs "
          f"(padded lengths {sorted({models.padded_length(len(t)) for t in tables})}), 2 chains x 300/300")

    shared, fits_shared = run_arm("shared", tables, a.law)
    from bayesmoe import fitting

    bucket = fitting.padded_length
    fitting.padded_length = lambda n: n  # fit pads to its own run count: no table shares a program
    try:
        per_table, fits_own = run_arm("per table", tables, a.law)
    finally:
        fitting.padded_length = bucket

    print("\n| refit | runs | shared (s) | per table (s) |\n|---|---|---|---|")
    for i, t in enumerate(tables):
        print(f"| {i} | {len(t)} | {shared[i]:.1f} | {per_table[i]:.1f} |")
    print(f"| total | | **{sum(shared):.1f}** | **{sum(per_table):.1f}** |")
    print(f"\nper table / shared: {sum(per_table) / sum(shared):.1f}x over {a.refits} refits")

    worst = 0.0
    for fs, fo in zip(fits_shared, fits_own):
        post_s, post_o = fs.tree["posterior"], fo.tree["posterior"]
        for p in fs.law.params:
            if p not in post_s:
                continue
            xs, xo = post_s[p].values.ravel(), post_o[p].values.ravel()
            sd = 0.5 * (xs.std() + xo.std())
            if sd > 0:
                worst = max(worst, abs(np.median(xs) - np.median(xo)) / sd)
    # each median from 600 correlated draws: Monte-Carlo error ~0.05-0.1 sd; the difference of two
    # ~0.1, so a few tenths over a table of refits x parameters is chance, not a bias
    print(f"largest |difference of posterior medians| between the arms: {worst:.2f} posterior sd")
    return 0


if __name__ == "__main__":
    sys.exit(main())
