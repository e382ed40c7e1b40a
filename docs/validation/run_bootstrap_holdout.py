"""The field's usual intervals on the extrapolation-error hold-outs: Huber + L-BFGS-B + bootstrap.

    PYTHONPATH=. .venv/bin/python docs/validation/run_bootstrap_holdout.py            # every table (~20 min)
    PYTHONPATH=. .venv/bin/python docs/validation/run_bootstrap_holdout.py epoch      # some tables

For every table of run_discrepancy_holdout.py (one setup or source each), the same split: the
held-out runs are those of its `discrepancy_holdout_<table>.csv` (the top 20 % of compute), the
rest are fitted. The fit is bench/bench_holdout_vs_bootstrap.py's baseline, imported, not copied:
Huber loss (δ = 1e-3) on ln L, L-BFGS-B from a grid of starts (joint: 64; Chinchilla: Hoffmann et
al.'s 4500), 1000 bootstrap refits over runs. Two interval rows per table:

* ``bootstrap, params only``: percentiles of the refits' predictions (parameter uncertainty);
* ``bootstrap + residual``: each refit's prediction plus a resampled training residual of that
  refit (10 per refit): the field's counterpart of a new-run interval.

Writes docs/validation/bootstrap_holdout.csv (one row per table and method; a rerun replaces its
rows), which `run_discrepancy_holdout.py --markdown` adds to the docs' table.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the bench: one thread per L-BFGS-B

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "bench"))

import jax  # noqa: E402
import pandas as pd  # noqa: E402
from bench_holdout_vs_bootstrap import BASELINES, LEVELS, run_baseline, scores  # noqa: E402
from distill_discrepancy import real_tables  # noqa: E402

from bayesmoe.data import validate_runs  # noqa: E402

OUT = HERE / "bootstrap_holdout.csv"


def run(name: str, runs: pd.DataFrame, law_name: str) -> list[dict]:
    spec = BASELINES[law_name]
    held_path = HERE / f"discrepancy_holdout_{name}.csv"
    held_index = pd.read_csv(held_path, index_col=0).index
    table = validate_runs(runs, required=spec.law.inputs + ("loss",), unit_checks=False)
    is_held = table.index.isin(held_index)
    fitted, held = table.loc[~is_held], table.loc[held_index]
    t0 = time.perf_counter()
    base = run_baseline(spec, fitted, held, num_starts=spec.default_starts, num_bootstrap=1000,
                        residual_draws=10, huber_delta=1e-3, seed=0)
    observed = held["loss"].to_numpy(dtype="float64")
    rows = []
    for label, method in (("params", "bootstrap, params only"), ("residual", "bootstrap + residual")):
        s = scores(observed, base["predicted"], {lv: base["intervals"][(label, lv)] for lv in LEVELS})
        lo, hi = base["intervals"][(label, 0.9)]
        inside = (observed >= lo) & (observed <= hi)
        rows.append({"table": name, "law": law_name, "method": method, "n_fit": len(fitted), "n_held": len(held),
                     "cov50": s["coverage_50"], "cov90": s["coverage_90"], "w90": s["width90_median"],
                     "w90_over_rmse": s["width90_median"] / s["rmse"], "max_abs_error": s["max_abs_error"],
                     "rmse": s["rmse"], "covered90": int(inside.sum()),
                     "bootstrap_failures": base["bootstrap_failures"], "seconds": round(time.perf_counter() - t0, 1)})
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    return rows


def main(argv=None) -> int:
    names = list(argv if argv is not None else sys.argv[1:])
    tables = real_tables()
    for name in names or list(tables):
        if not (HERE / f"discrepancy_holdout_{name}.csv").exists():
            print(f"skipping {name}: run run_discrepancy_holdout.py {name} first", file=sys.stderr)
            continue
        runs, law = tables[name]
        rows = pd.DataFrame(run(name, runs, law))
        old = pd.read_csv(OUT) if OUT.exists() else pd.DataFrame()
        if len(old):
            old = old[old["table"] != name]
        pd.concat([old, rows], ignore_index=True).to_csv(OUT, index=False)
        jax.clear_caches()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
