"""Ordered hold-outs on StepLaw's tables (Li et al. 2025), which nothing in bayesmoe was tuned on.

    PYTHONPATH=. .venv/bin/python docs/validation/run_steplaw.py          # both tables, about 3 min on 2 cores
    PYTHONPATH=. .venv/bin/python docs/validation/run_steplaw.py moe      # one

The distilled discrepancy prior (bayesmoe/discrepancy_prior.json) and every default were set
before these tables were first read (2026-12-03, session 19), so they are an out-of-sample check
of the extrapolation-error term on one dense and one real MoE table. Both are read in place from
../shared/data/steplaw-li2025 (cite-only: never copied here). A scaling-law table takes the best
(lr, bs) of each cell, by the paper's metric, the smoothed final training loss:

- ``dense``: 17 (N, D) cells, N (non-embedding parameters) 215M-1.07B, D 4B-100B; the Chinchilla
  law.
- ``moe``: 4 architectures (E = 8 or 88-89 experts, top-1 to top-3, 188M-1.24B active of ~2.15B
  total parameters) x 4 token budgets (2B-20B); the joint law on active parameters, tokens and
  the expert count. E and the active parameters move together here, so E's own effect rests on
  the prior.

Both: fit the runs at or below the 80 % compute quantile (6 N D), predict the rest, as in
docs/validation.md's 12-table hold-out (the joint law's 12 parameters need 13 fitted runs, so a
cut by tokens alone, 12 runs below 20B, is too few).

Every fit runs at ``fit``'s defaults (4 chains x 1000/1000, the law's target_accept, the term
learned from the fit's own backtests where the table is large enough, else its prior), seed 0.
Writes docs/validation/steplaw_holdout.csv (one row per held-out run and table) and prints the
summary rows of docs/validation.md.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from bayesmoe.discrepancy import use_cpu_devices  # noqa: E402  (no JAX start: numpy and pandas)

use_cpu_devices()  # a CPU device per chain (the backtests': all at once), before JAX starts

import pandas as pd  # noqa: E402

from bayesmoe.errors import ConvergenceWarning  # noqa: E402
from bayesmoe.validation import extrapolation_holdout  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STEPLAW = ROOT.parent / "shared" / "data" / "steplaw-li2025"
OUT = Path(__file__).resolve().parent / "steplaw_holdout.csv"


def best_per_cell(raw: pd.DataFrame, cell: list[str]) -> pd.DataFrame:
    """The run with the lowest smoothed loss of each cell (its best learning rate and batch size)."""
    return raw.loc[raw.groupby(cell)["smooth loss"].idxmin()].reset_index(drop=True)


def dense_table() -> pd.DataFrame:
    best = best_per_cell(pd.read_csv(STEPLAW / "dense_lr_bs_loss.csv"), ["N", "D"])
    return pd.DataFrame({"n_active": best["N"], "tokens": best["D"], "loss": best["smooth loss"]})


def moe_table() -> pd.DataFrame:
    best = best_per_cell(pd.read_csv(STEPLAW / "moe_lr_bs_loss.csv"), ["moe_name", "D"])
    return pd.DataFrame({"n_active": best["Na"], "n_total": best["N"], "tokens": best["D"],
                         "experts": best["nume"], "loss": best["smooth loss"],
                         "architecture": best["moe_name"]})


CASES = {
    "dense": (dense_table, dict(law="chinchilla", by="compute", quantile=0.8)),
    "moe": (moe_table, dict(law="joint", by="compute", quantile=0.8)),
}


def run(name: str, cases: dict = CASES) -> tuple[dict, pd.DataFrame]:
    """One case's hold-out at ``fit``'s defaults: its summary row and its per-run table."""
    make, how = cases[name]
    runs = make()
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        ho = extrapolation_holdout(runs, **how, fit_kwargs={"progress": False, "on_bad_fit": "warn"})
    s = ho.summary
    d = ho.fit.diagnostics
    row = {"table": name, "law": how["law"], "n_fit": s["n_fit"], "n_held": s["n_held"],
           "cov50": s["coverage_50"], "cov90": s["coverage_90"], "cov90_law": s["coverage_90_law"],
           "w90": s["median_width_90"], "w90_law": s["median_width_90_law"], "rmse": s["rmse"],
           "max_abs_error": s["max_abs_error"], "tau_median": s["discrepancy"]["tau_median"],
           "tau_source": s["discrepancy"].get("source"), "max_rhat": d.max_rhat, "divergences": d.divergences,
           "min_ess_bulk": d.min_ess_bulk, "diagnostics_ok": s["diagnostics_ok"],
           "convergence_warnings": sum(issubclass(w.category, ConvergenceWarning) for w in caught),
           "seconds": round(time.perf_counter() - t0, 1)}
    table = ho.table.assign(table=name)
    return row, table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cases", nargs="*", default=list(CASES), help=f"of {list(CASES)}")
    args = ap.parse_args(argv)
    if not STEPLAW.exists():
        print(f"{STEPLAW} is absent: nothing to run")
        return 0
    rows, tables = [], []
    for name in args.cases:
        row, table = run(name)
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
        rows.append(row)
        tables.append(table)
    keep = pd.read_csv(OUT) if OUT.exists() else pd.DataFrame(columns=["table"])
    keep = keep[~keep["table"].isin(args.cases)]
    pd.concat([keep, *tables], ignore_index=True).to_csv(OUT, index=False)
    print("\n" + markdown(rows))
    return 0


def markdown(rows: list[dict]) -> str:
    """docs/validation.md's rows for these cases."""
    lines = ["| table | law | fit / held out | 90 % covered, with the term | law only | 50 % covered "
             "| median 90 % width / RMSE | max abs error | τ median | diagnostics |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        diag = "ok" if r["diagnostics_ok"] else "**failed**"
        lines.append(f"| {r['table']} | {r['law']} | {r['n_fit']} / {r['n_held']} | {r['cov90']:.0%} | "
                     f"{r['cov90_law']:.0%} | {r['cov50']:.0%} | {r['w90'] / r['rmse']:.1f} | {r['max_abs_error']:.3f} "
                     f"| {r['tau_median']:.4f} ({r['tau_source']}) | {diag} (R-hat {r['max_rhat']:.3f}, "
                     f"{r['divergences']} divergences) |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
