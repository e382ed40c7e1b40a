"""Ordered hold-outs on every real table, with and without the extrapolation-error term.

    PYTHONPATH=. .venv/bin/python docs/validation/run_discrepancy_holdout.py           # every table
    PYTHONPATH=. .venv/bin/python docs/validation/run_discrepancy_holdout.py epoch     # some tables
    PYTHONPATH=. .venv/bin/python docs/validation/run_discrepancy_holdout.py --rescore # saved fits, current priors
    PYTHONPATH=. .venv/bin/python docs/validation/run_discrepancy_holdout.py --epoch-1e21 # Epoch cut at 1e21 FLOPs
    PYTHONPATH=. .venv/bin/python docs/validation/run_discrepancy_holdout.py --markdown # the docs' table
                                  # (with bootstrap + residual rows where run_bootstrap_holdout.py ran)

Per table (one setup or source each, as in distill_discrepancy.py): fit on the runs at or below the
80 % compute quantile (fit's defaults: 4 chains × 1000/1000, seed 0; the fit's own backtests run inside those runs
only), predict the runs above. The discrepancy prior of each table is its leave-one-table-out
prior (docs/validation/discrepancy_prior_loto.json: distilled from the other tables only), so no
held-out run informs its own interval. Rows per table: bayesmoe with the term, the same posterior
without it (the law-only band), and split-conformal on the fit's backtest residuals. Writes
docs/validation/discrepancy_holdout.csv (one row per table, rerun rows replaced) and
docs/validation/discrepancy_holdout_<table>.csv (every held-out run). The hold-out fits are kept in
$BAYESMOE_HOLDOUT_FITS (default /tmp/bayesmoe_holdout_fits): the discrepancy prior enters only τ's
posterior, so `--rescore` recomputes every interval from them with the current leave-one-out
priors without refitting.

``--epoch-1e21`` is the issue's second Epoch row: fit the runs below 1e21 FLOPs, predict the 23
above (Epoch's own leave-one-table-out prior; its row goes to discrepancy_holdout_extra.csv, not
into the pooled 12-table figure, since its runs are Epoch's again).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

from bayesmoe.discrepancy import use_cpu_devices  # noqa: E402  (no JAX start: numpy and pandas)

use_cpu_devices()  # a CPU device per chain (the backtests': all at once), before JAX starts

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from distill_discrepancy import LOTO, real_tables  # noqa: E402

import bayesmoe  # noqa: E402
from bayesmoe.discrepancy import posterior  # noqa: E402
from bayesmoe.errors import ConvergenceWarning  # noqa: E402
from bayesmoe.validation import extrapolation_holdout, score_holdout  # noqa: E402

OUT = Path(__file__).resolve().parent
SUMMARY = OUT / "discrepancy_holdout.csv"
FITS = Path(os.environ.get("BAYESMOE_HOLDOUT_FITS", "/tmp/bayesmoe_holdout_fits"))
DRAWS = dict(progress=False, on_bad_fit="warn")  # fit's defaults; a fit that fails its checks is kept and its row says so


def run(name: str, runs: pd.DataFrame, law: str, prior: dict, rescore: bool = False,
        quantile: float = 0.8) -> dict:
    t0 = time.perf_counter()
    FITS.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        if rescore:
            fitted = bayesmoe.load(FITS / f"{name}.nc")
            fitted.tree.attrs["discrepancy"] = posterior(fitted.law, fitted.runs, prior=prior,
                                                         backtest_table=fitted.discrepancy.backtest).to_json()
            fitted.__dict__.pop("discrepancy", None)
            ho = score_holdout(fitted, runs, by="compute", quantile=quantile)
        else:
            ho = extrapolation_holdout(runs, law=law, by="compute", quantile=quantile,
                                       fit_kwargs={**DRAWS, "discrepancy_prior": prior})
            ho.fit.save(FITS / f"{name}.nc")
    seconds = time.perf_counter() - t0
    t = ho.table
    t.to_csv(OUT / f"discrepancy_holdout_{name}.csv")
    if not rescore and ho.fit.discrepancy.backtest is not None:  # the distillation reads these
        (OUT / "backtests").mkdir(exist_ok=True)
        ho.fit.discrepancy.backtest.to_csv(OUT / "backtests" / f"{name}.csv", index=False)
    s = ho.summary
    disc = s["discrepancy"]
    row = {"table": name, "law": law, "n_fit": s["n_fit"], "n_held": s["n_held"],
           "max_abs_error": s["max_abs_error"], "rmse": s["rmse"],
           "cov50": s["coverage_50"], "cov90": s["coverage_90"], "w90": s["median_width_90"],
           "cov50_law": s["coverage_50_law"], "cov90_law": s["coverage_90_law"], "w90_law": s["median_width_90_law"],
           "cov90_conformal": s.get("coverage_90_conformal"), "w90_conformal": s.get("median_width_90_conformal"),
           "tau_median": disc["tau_median"], "tau_lo90": disc["tau_lo90"], "tau_hi90": disc["tau_hi90"],
           "prior_mu": prior["mu"], "prior_sigma": prior["sigma"],
           "median_distance": float(t["distance"].median()), "max_distance": float(t["distance"].max()),
           "diagnostics_ok": s["diagnostics_ok"], "max_rhat": s["max_rhat"], "divergences": s["divergences"],
           "convergence_warnings": len([w for w in caught if issubclass(w.category, ConvergenceWarning)]),
           "seconds": round(seconds, 1)}
    row["w90_over_rmse"] = row["w90"] / row["rmse"]
    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    return row


def replace_row(path: Path, row: dict) -> pd.DataFrame:
    """Write ``row`` into the CSV at ``path`` in place of that table's earlier row; return the file's rows.
    Read just before writing: another process may write to the same file."""
    rows = pd.read_csv(path) if path.exists() else pd.DataFrame()
    rows = pd.concat([rows[rows["table"] != row["table"]] if len(rows) else rows, pd.DataFrame([row])],
                     ignore_index=True)
    rows.to_csv(path, index=False)
    return rows


def binomial_line(held: pd.DataFrame, level: float = 0.9, band: float = 0.95) -> str:
    """Each table's covered count against Binomial(n, level), as if its runs were independent
    (they are not: a table's held-out runs share one draw of the law's error, so real counts
    scatter more): how many lie inside the central ``band``, and how many tables cover every run
    against how many calibrated intervals would (a Poisson-binomial tail over the tables)."""
    from scipy import stats

    per = held.groupby("table", sort=False)["in90"].agg(["sum", "size"])
    lo, hi = stats.binom.ppf([(1 - band) / 2, 1 - (1 - band) / 2], per["size"].to_numpy()[:, None], level).T
    inside = int(((per["sum"] >= lo) & (per["sum"] <= hi)).sum())
    p_all = level ** per["size"].to_numpy(float)
    k = int((per["sum"] == per["size"]).sum())
    dist = np.array([1.0])
    for q in p_all:  # Poisson-binomial: how many tables cover every run
        dist = np.convolve(dist, [1 - q, q])
    return (f"Against Binomial(n, {level:g}) per table: covered count inside the central {band:.0%} band on "
            f"{inside} of {len(per)}; {k} tables cover every held-out run, where calibrated intervals would "
            f"give {p_all.sum():.2f} on average (P(≥ {k}) = {dist[k:].sum():.3f}).")


def markdown() -> str:
    """The tables of docs/validation.md from the saved results."""
    rows = pd.read_csv(SUMMARY)
    boot_path = OUT / "bootstrap_holdout.csv"  # run_bootstrap_holdout.py
    boot = pd.read_csv(boot_path) if boot_path.exists() else pd.DataFrame(columns=["table", "method"])
    boot = boot[boot["method"] == "bootstrap + residual"].set_index("table")
    lines = ["| table | law | fit / held out | method | 50 % covered | 90 % covered | median 90 % width | "
             "width / RMSE | max abs error | RMSE | τ median (90 %) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    held_all = []
    for _, r in rows.iterrows():
        t = pd.read_csv(OUT / f"discrepancy_holdout_{r['table']}.csv")
        held_all.append(t.assign(table=r["table"]))
        conformal_50 = t["in50_conformal"].mean() if "in50_conformal" in t else float("nan")
        for method, c50, c90, w in (("with the term", r["cov50"], r["cov90"], r["w90"]),
                                    ("law only", r["cov50_law"], r["cov90_law"], r["w90_law"]),
                                    ("split-conformal", conformal_50, r["cov90_conformal"], r["w90_conformal"])):
            first = method == "with the term"
            name = r["table"] if r.get("diagnostics_ok", True) else (
                f"{r['table']} (**fit failed its checks**: R-hat {r.max_rhat:.3f}, {int(r.divergences)} divergences)")
            lines.append(
                f"| {name if first else ''} | {r['law'] if first else ''} | "
                f"{f'{int(r.n_fit)} / {int(r.n_held)}' if first else ''} | {method} | {c50:.0%} | {c90:.0%} | "
                f"{w:.3f} | {w / r['rmse']:.1f} | {f'{r.max_abs_error:.3f}' if first else ''} | "
                f"{f'{r.rmse:.3f}' if first else ''} | "
                f"{f'{r.tau_median:.3g} ({r.tau_lo90:.2g}-{r.tau_hi90:.2g})' if first else ''} |")
        if r["table"] in boot.index:  # its own point fit, so its own errors
            b = boot.loc[r["table"]]
            lines.append(f"|  |  |  | bootstrap + residual | {b.cov50:.0%} | {b.cov90:.0%} | {b.w90:.3f} | "
                         f"{b.w90_over_rmse:.1f} | {b.max_abs_error:.3f} | {b.rmse:.3f} |  |")
    held = pd.concat(held_all)
    lines.append("")
    lines.append(f"Pooled over {rows['table'].nunique()} tables ({len(held)} held-out runs): 90 % covered "
                 f"{held['in90'].mean():.1%} with the term, {held['in90_law'].mean():.1%} law only, "
                 f"{held['in90_conformal'].mean():.1%} split-conformal; 50 %: {held['in50'].mean():.1%}, "
                 f"{held['in50_law'].mean():.1%}, {held['in50_conformal'].mean():.1%}.")
    in_band = int(((rows["cov90"] >= 0.8) & (rows["cov90"] <= 0.97)).sum())
    sharp = int((rows["w90"] <= 4 * rows["rmse"]).sum())
    failed = rows.loc[~rows["diagnostics_ok"].astype(bool), "table"].tolist()
    lines.append(f"Per table, with the term: 90 % covered within 80–97 % on {in_band} of {len(rows)}; median 90 % "
                 f"width ≤ 4 × RMSE on {sharp} of {len(rows)}. Fits that failed their convergence checks: "
                 f"{', '.join(failed) if failed else 'none'}.")
    lines.append(binomial_line(held))
    if len(boot):
        lines.append(f"Bootstrap + residual, pooled over the {len(boot)} tables it was run on "
                     f"({int(boot['n_held'].sum())} held-out runs): 90 % covered "
                     f"{boot['covered90'].sum() / boot['n_held'].sum():.1%}.")
    return "\n".join(lines)


def main(argv=None) -> int:
    names = list(argv if argv is not None else sys.argv[1:])
    if names == ["--markdown"]:
        print(markdown())
        return 0
    rescore = "--rescore" in names
    if "--epoch-1e21" in names:
        runs, law = real_tables()["epoch"]
        compute = 6.0 * runs["n_active"] * runs["tokens"]
        # the quantile whose cut is the largest run below 1e21 FLOPs (extrapolation_holdout fits
        # the runs at or below the quantile of compute)
        quantile = float((compute < 1e21).mean())
        loto = json.loads(LOTO.read_text())
        replace_row(OUT / "discrepancy_holdout_extra.csv",
                    run("epoch-1e21", runs, law, loto["epoch"], rescore=rescore, quantile=quantile))
        return 0
    names = [n for n in names if n != "--rescore"]
    tables = real_tables()
    loto = json.loads(LOTO.read_text()) if LOTO.exists() else {}
    rows = pd.read_csv(SUMMARY) if SUMMARY.exists() else pd.DataFrame()
    for name in names or list(tables):
        runs, law = tables[name]
        prior = loto.get(name) or {k: v for k, v in bayesmoe.discrepancy.default_prior().items()
                                    if k in ("family", "mu", "sigma")}
        rows = replace_row(SUMMARY, run(name, runs, law, prior, rescore=rescore))
    held = pd.concat([pd.read_csv(OUT / f"discrepancy_holdout_{n}.csv").assign(table=n) for n in rows["table"]])
    print(f"\npooled over {rows['table'].nunique()} tables, {len(held)} held-out runs: 90 % covers "
          f"{held['in90'].mean():.1%} (law-only {held['in90_law'].mean():.1%}"
          + (f", conformal {held['in90_conformal'].mean():.1%}" if "in90_conformal" in held else "") + ")")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
