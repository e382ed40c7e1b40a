"""What the extrapolation-error term costs when the law is right, and buys when it is wrong.

    PYTHONPATH=. .venv/bin/python bench/bench_discrepancy_simulated.py            # every case, ~25 min on 2 cores
    PYTHONPATH=. .venv/bin/python bench/bench_discrepancy_simulated.py --cases law-chinchilla
    PYTHONPATH=. .venv/bin/python bench/bench_discrepancy_simulated.py --out docs/validation/discrepancy_simulated.csv

Each case simulates a table (seeds fixed), runs the ordered hold-out (fit at or below the 80 %
compute quantile, 4 chains × 500/500, the fit's own backtests and the shipped prior), and prints
per case and seed: 90 % coverage with the term and without it (the law-only band of the same
posterior), the median 90 % width with and without, their ratio, and τ's posterior median.

Cases:
- ``law-chinchilla``: the Chinchilla law at its published values, 1 % noise (150 runs).
- ``law-joint``: the joint law at the paper's values on its 120-run design, 1 % noise.
- ``broken-power-law``: Chinchilla whose data exponent steepens by 0.1 above 1e10 tokens.
- ``nd-interaction``: Chinchilla plus 0.01·ln(N/N0)·ln(D/D0) in ln loss (an N·D interaction the
  law lacks), N0, D0 the design's centre.
- ``moe-ladder-law``, ``moe-nd-interaction``, ``moe-broken-n``: an MoE size ladder (six active
  sizes 25M-1.3B, E = 1, 2, ..., 512, D/N = 20 and 60: 120 runs), the joint law at the paper's
  values, with the same N·D interaction, or with the active-parameter term steepening above 3e8
  (:func:`moe_ladder_variant`); ordered by active parameters, so the fit sees sizes up to 370M
  and predicts the 20 runs at 1.3B, the shape of a real MoE table held out of this repository
  (issue 14: its 1.3B runs were covered 0 of 10 without the term).

The issue's bars: on law-true tables the median width grows by at most 25 %; on misspecified ones
the term brings 90 % coverage within 10 points of nominal and the law-only band misses it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bayesmoe.discrepancy import use_cpu_devices  # noqa: E402  (no JAX start: numpy and pandas)

use_cpu_devices()  # a CPU device per chain (the backtests': all at once), before JAX starts

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bayesmoe import laws  # noqa: E402
from bayesmoe.testing import TRUTH, design_grid, synthetic_runs  # noqa: E402
from bayesmoe.validation import extrapolation_holdout  # noqa: E402

DRAWS = dict(num_chains=4, num_warmup=500, num_samples=500, progress=False, on_bad_fit="warn")


def chinchilla_variant(kind: str, seed: int, n_runs: int = 150) -> pd.DataFrame:
    t = TRUTH["chinchilla"]
    runs = design_grid("chinchilla", n_runs=n_runs, seed=seed)
    n, d = runs["n_active"].to_numpy(), runs["tokens"].to_numpy()
    data_term = t["b"] / d ** t["beta"]
    log_extra = 0.0
    if kind == "broken-power-law":
        data_term = data_term * np.where(d > 1e10, (d / 1e10) ** -0.1, 1.0)
    elif kind == "nd-interaction":
        n0, d0 = np.exp(np.mean(np.log(n))), np.exp(np.mean(np.log(d)))
        log_extra = 0.01 * np.log(n / n0) * np.log(d / d0)
    loss = (t["e"] + t["a"] / n ** t["alpha"] + data_term) * np.exp(log_extra)
    runs["loss"] = loss * np.exp(np.random.default_rng(seed).normal(0.0, 0.01, len(runs)))
    return runs


#: The MoE size ladder: six active sizes, E from 1 to 512, two token budgets per size and E;
#: fitted up to 370M active parameters, the 1.3B size predicted.
MOE_SIZES = (2.5e7, 5e7, 1e8, 1.9e8, 3.7e8, 1.3e9)
MOE_EXPERTS = tuple(float(2 ** k) for k in range(10))
MOE_TOKENS_PER_PARAM = (20.0, 60.0)


def moe_ladder_variant(kind: str, seed: int) -> pd.DataFrame:
    """The joint law at the paper's values on the MoE size ladder, 1 % noise, and variants the
    law lacks: ``moe-nd-interaction`` (0.01·ln(N/N0)·ln(D/D0) in ln loss, as ``nd-interaction``)
    and ``moe-broken-n`` (the active-parameter term steepens, × (N/3e8)^-0.05 above 3e8: a break
    just below the largest fitted size, -0.3 % of loss there and -2 % at the predicted 1.3B, which
    the backtests inside the fitted sizes barely see)."""
    if kind not in ("law", "moe-nd-interaction", "moe-broken-n"):
        raise ValueError(f"unknown MoE ladder variant {kind!r}")
    design = pd.DataFrame([{"n_active": n, "tokens": n * r, "experts": e}
                           for n in MOE_SIZES for e in MOE_EXPERTS for r in MOE_TOKENS_PER_PARAM])
    runs = synthetic_runs("joint", design=design, noise_sd=0.0, seed=seed)
    n, d = runs["n_active"].to_numpy(), runs["tokens"].to_numpy()
    log_loss = np.log(runs["loss"].to_numpy())
    if kind == "moe-nd-interaction":
        n0, d0 = np.exp(np.mean(np.log(n))), np.exp(np.mean(np.log(d)))
        log_loss = log_loss + 0.01 * np.log(n / n0) * np.log(d / d0)
    elif kind == "moe-broken-n":
        t = TRUTH["joint"]
        e_hat = np.asarray(laws.e_hat(runs["experts"].to_numpy(), t["e_start"], t["e_max"]))
        n_term = t["a"] * e_hat ** t["delta"] * n ** (t["alpha"] + t["gamma"] * np.log(e_hat))
        loss = np.exp(log_loss) + n_term * (np.where(n > 3e8, (n / 3e8) ** -0.05, 1.0) - 1.0)
        log_loss = np.log(loss)
    runs["loss"] = np.exp(log_loss + np.random.default_rng(seed).normal(0.0, 0.01, len(runs)))
    return runs


# case: (law, table of a seed, the hold-out's ordering column)
CASES = {
    "law-chinchilla": ("chinchilla", lambda s: synthetic_runs("chinchilla", n_runs=150, noise_sd=0.01, seed=s),
                       "compute"),
    "law-joint": ("joint", lambda s: synthetic_runs("joint", n_runs=120, noise_sd=0.01, seed=s), "compute"),
    "broken-power-law": ("chinchilla", lambda s: chinchilla_variant("broken-power-law", s), "compute"),
    "nd-interaction": ("chinchilla", lambda s: chinchilla_variant("nd-interaction", s), "compute"),
    "moe-ladder-law": ("joint", lambda s: moe_ladder_variant("law", s), "n_active"),
    "moe-nd-interaction": ("joint", lambda s: moe_ladder_variant("moe-nd-interaction", s), "n_active"),
    "moe-broken-n": ("joint", lambda s: moe_ladder_variant("moe-broken-n", s), "n_active"),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    ap.add_argument("--out", help="also write the rows to this CSV (rows of the same case and seed replaced)")
    ap.add_argument("--priors", default=None,
                    help="a JSON object of prior overrides for every fit, e.g. '{\"sigma_trend\": 0}' (one noise "
                         "scale for every run, the model before session 21); recorded in the rows")
    args = ap.parse_args(argv)
    fit_kwargs = {**DRAWS, **({"priors": json.loads(args.priors)} if args.priors else {})}
    rows = []
    for case in args.cases:
        law, make, by = CASES[case]
        for seed in args.seeds:
            t0 = time.perf_counter()
            ho = extrapolation_holdout(make(seed), law=law, by=by, quantile=0.8, fit_kwargs=fit_kwargs, seed=0)
            s, t = ho.summary, ho.table
            rows.append({"case": case, "seed": seed, "by": by, "n_held": s["n_held"], "cov90": s["coverage_90"],
                         "cov90_law": s["coverage_90_law"], "w90": s["median_width_90"],
                         "w90_law": s["median_width_90_law"],
                         "width_ratio": float(np.median(t["width90"] / t["width90_law"])),
                         "max_abs_error": s["max_abs_error"], "tau_median": s["discrepancy"]["tau_median"],
                         "diagnostics_ok": s["diagnostics_ok"], "priors": args.priors or "defaults",
                         "seconds": round(time.perf_counter() - t0)})
            print(rows[-1], flush=True)
            jax.clear_caches()  # each table size compiles anew; a long run ran out of memory (LLVM) without this
    table = pd.DataFrame(rows)
    if args.out:
        if Path(args.out).exists():
            old = pd.read_csv(args.out)
            if "priors" not in old:  # rows written before the column: the defaults of their day
                old["priors"] = "defaults"
            if "by" not in old:  # rows written before the MoE ladder: every earlier case ordered by compute
                old["by"] = "compute"
            old["by"] = old["by"].fillna("compute")
            key = ["case", "seed", "priors"]
            keep = ~old.set_index(key).index.isin(table.set_index(key).index)
            table = pd.concat([old[keep], table], ignore_index=True)
        table.to_csv(args.out, index=False)
    with pd.option_context("display.width", 200, "display.float_format", "{:.4g}".format):
        print(table.to_string(index=False))
        print(table.groupby("case")[["cov90", "cov90_law", "width_ratio", "tau_median"]].median().to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
