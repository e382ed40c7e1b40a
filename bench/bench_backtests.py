"""The discrepancy term's backtests: one compiled program for every cut, against one fit per cut.

``fit``'s default (``discrepancy="auto"``) learns τ from rolling-origin backtests: at the compute
quantiles 0.5, 0.65 and 0.8 it fits the runs below the cut (2 chains × 300/300, the main fit's
model, priors and ``target_accept``) and predicts the runs above. ``bayesmoe.discrepancy.backtest``
fits the three subsets together: padded to one length (the padding masked out of the
likelihood), sampled by one compiled program split over the CPU devices. The baseline is what it
replaced, one ``bayesmoe.fit`` per cut, with the same settings and seed.

Each (table, way, cache) is a fresh process: ``cold`` on an empty ``BAYESMOE_CACHE_DIR``, ``warm``
on the same folder again, so the persistent compile cache is what a user's second fit gets.
Printed per table and way: the wall time of the backtest fits, and per cut the posterior median
of every law parameter, so the two ways can be compared (same model and data, different
programs: they agree to Monte-Carlo error, the table prints the largest |Δ median| / posterior
sd).

    PYTHONPATH=. .venv/bin/python bench/bench_backtests.py                    # reference + Epoch, ~6 min
    PYTHONPATH=. .venv/bin/python bench/bench_backtests.py --tables reference # the shipped table only

Tables: ``reference`` (the shipped runs, joint law, G = 1, below the 80 % compute quantile as in
the hold-out), ``epoch`` (``../shared/data/epoch-chinchilla``, chinchilla law, same quantile;
skipped with a reason where absent).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load(table: str):
    import pandas as pd

    if table == "reference":
        runs = pd.read_csv(ROOT / "data" / "reference_runs.csv").query("granularity == 1")
        law = "joint"
    else:
        sys.path.insert(0, str(ROOT / "docs" / "validation"))
        from distill_discrepancy import real_tables

        runs, law = real_tables()[table]
    key = runs["n_active"] * runs["tokens"]
    return runs.loc[key <= key.quantile(0.8)].reset_index(drop=True), law


def one(table: str, way: str) -> dict:
    """Run in a child process: the backtest fits of ``table`` one ``way``; a JSON line."""
    from bayesmoe.discrepancy import use_cpu_devices

    use_cpu_devices()  # as the CLI
    import jax

    jax.local_device_count()  # fix the devices now: a later import may set them again
    import warnings

    import numpy as np

    import bayesmoe
    from bayesmoe.data import validate_runs
    from bayesmoe.discrepancy import BACKTEST_CUTS, _fit_subsets, order_key
    from bayesmoe.laws import get_law

    runs, law_name = load(table)
    law = get_law(law_name)
    table_ = validate_runs(runs, required=law.inputs + ("loss",))
    key = order_key(law, table_)
    masks = [(key <= np.quantile(key, q)).to_numpy() for q in BACKTEST_CUTS]
    settings = {"num_chains": 2, "num_warmup": 300, "num_samples": 300, "seed": 0}
    medians = []
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if way == "batched":
            posts, _ = _fit_subsets(table_, law, masks, settings)
            for post in posts:
                medians.append({p: [float(np.median(post[p])), float(np.std(post[p]))] for p in law.params})
        else:
            for m in masks:
                res = bayesmoe.fit(table_.loc[m], law=law, progress=False, on_bad_fit="warn", discrepancy="none",
                                   unit_checks=False, max_extensions=0, **settings)  # the backtests' draws, no more
                post = res.posterior
                medians.append({p: [float(post[p].median()), float(post[p].std())] for p in law.params})
    return {"table": table, "way": way, "seconds": time.perf_counter() - t0, "runs": len(table_),
            "medians": medians}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", nargs="+", default=["reference", "epoch"])
    ap.add_argument("--one", nargs=2, metavar=("TABLE", "WAY"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(one(*args.one)), flush=True)
        return 0
    rows = []
    for table in args.tables:
        if table != "reference" and not (ROOT.parent / "shared" / "data").is_dir():
            print(f"{table}: skipped (../shared/data is absent)")
            continue
        for way in ("per-cut fits", "batched"):
            with tempfile.TemporaryDirectory() as cache:
                env = {**os.environ, "BAYESMOE_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
                for state in ("cold", "warm"):
                    out = subprocess.run([sys.executable, __file__, "--one", table, way.split()[0]],
                                         env=env, capture_output=True, text=True, check=True).stdout
                    row = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
                    row["cache"] = state
                    row["way"] = way
                    rows.append(row)
                    print(f"  {table:<10} {way:<13} {state}: {row['seconds']:6.1f} s", flush=True)
    print()
    print("| table | runs | way | cold s | warm s | max abs Δ median / sd vs per-cut fits |")
    print("|---|---|---|---|---|---|")
    for table in dict.fromkeys(r["table"] for r in rows):
        base = next(r for r in rows if r["table"] == table and r["way"] == "per-cut fits" and r["cache"] == "cold")
        for way in ("per-cut fits", "batched"):
            cold = next(r for r in rows if r["table"] == table and r["way"] == way and r["cache"] == "cold")
            warm = next(r for r in rows if r["table"] == table and r["way"] == way and r["cache"] == "warm")
            gap = max(abs(a[p][0] - b[p][0]) / b[p][1] for a, b in zip(cold["medians"], base["medians"])
                      for p in b)
            print(f"| {table} | {cold['runs']} | {way} | {cold['seconds']:.1f} | {warm['seconds']:.1f} | "
                  f"{gap:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
