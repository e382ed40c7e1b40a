"""Distil the default prior of the discrepancy growth rate τ from the real tables in ../shared/data.

    PYTHONPATH=. .venv/bin/python docs/validation/distill_discrepancy.py            # backtests + prior
    PYTHONPATH=. .venv/bin/python docs/validation/distill_discrepancy.py --reuse    # prior from saved backtests

For every real table (one setup or source each: the shipped reference runs, Epoch's Chinchilla
runs, each Porian et al. setup, each Open-Athena IsoFLOP source) it runs bayesmoe's rolling-origin
backtests (`bayesmoe.discrepancy.backtest`: fit below compute quantiles 0.5, 0.65, 0.8, predict
every run above) on the table's runs at or below its 80 % compute quantile, exactly what the fit
inside the hold-out validation (run_discrepancy_holdout.py) runs, which writes the same files; the
top 20 % of each table, held out there, never enters the prior. Backtests go to
docs/validation/backtests/<table>.csv.
Each table then gives a log-likelihood curve of τ (`tau_log_likelihood`). The prior is the
predictive distribution of a new table's ln τ under a population model ln τ_t ~ N(mu, sigma)
(flat prior on mu, half-normal on sigma, the likelihood prod_t ∫ p(backtests_t | τ) N(ln τ; mu,
sigma) dln τ on a grid), summarised by its mean and sd; it is written to bayesmoe/discrepancy_prior.json, which ships in the
package. Leave-one-table-out priors (the prior each table would get from the others, which the
hold-out validation uses so that no table's runs inform its own prior) go to
docs/validation/discrepancy_prior_loto.json, with one for each union of run_holdout.py
(``porian-union``: the tables other than Porian's; ``isoflops-union``: other than the IsoFLOP
sources and Epoch, whose runs one source repeats).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bayesmoe.discrepancy import use_cpu_devices  # (no JAX start: numpy and pandas)

use_cpu_devices()  # one CPU device per chain (4 per fit, every backtest chain at once, as the CLI), before JAX starts

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.special import logsumexp  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_holdout import SHARED, epoch_table, isoflops_table, porian_table, reference_table  # noqa: E402

from bayesmoe.discrepancy import TAU_GRID, axes, backtest, tau_log_likelihood  # noqa: E402
from bayesmoe.laws import get_law  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "backtests"
PRIOR = ROOT / "bayesmoe" / "discrepancy_prior.json"
LOTO = Path(__file__).resolve().parent / "discrepancy_prior_loto.json"
#: Tables that hold the same runs: a leave-one-out prior leaves out the whole family.
FAMILY = {"isoflops-epochai_chinchilla__massivetext__chinchilla": "epoch"}
#: run_holdout.py's multi-table cases -> which distilled tables they contain.
UNIONS = {"porian-union": lambda k: k.startswith("porian-"),
          "isoflops-union": lambda k: k.startswith("isoflops-") or k == "epoch"}


def real_tables() -> dict[str, tuple[pd.DataFrame, str]]:
    """name -> (run table, law): one setup or source per table."""
    out = {"reference": (reference_table().drop(columns=["split"], errors="ignore"), "joint")}
    if not SHARED.exists():
        print(f"{SHARED} is absent: only the shipped reference table is used")
        return out
    out["epoch"] = (epoch_table(), "chinchilla")
    for name, part in porian_table().groupby("group"):
        out[f"porian-{name}"] = (part.drop(columns=["group", "budget"]).reset_index(drop=True), "chinchilla")
    for name, part in isoflops_table().groupby("group"):
        if len(part) >= 30:
            out[f"isoflops-{name}"] = (part.drop(columns=["group", "budget"]).reset_index(drop=True), "chinchilla")
    return out


def training_part(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs at or below the table's 80 % compute quantile (the hold-out validation's fit)."""
    compute = 6.0 * runs["n_active"] * runs["tokens"]
    return runs[compute <= np.quantile(compute, 0.8)]


#: Scale of the half-normal hyperprior on the population sd of ln τ (setups' growth rates differ
#: by a factor e ≈ 2.7 per sd; a few sd span the one to two orders of magnitude seen in practice).
SIGMA_SCALE = 1.0


def fit_population(curves: dict[str, np.ndarray]) -> dict:
    """The prior of a new table's ln τ: the population predictive.

    Each table's τ is drawn from a population, ln τ_t ~ N(μ, σ). The tables' backtest curves give
    the likelihood of (μ, σ), ∏_t ∫ p(backtests_t | τ) N(ln τ; μ, σ) d ln τ, on a grid; with a flat
    prior on μ and a half-normal(SIGMA_SCALE) prior on σ, a new table's ln τ has the predictive
    Σ w(μ, σ) N(μ, σ), summarised by its mean and sd (the lognormal ``mu``, ``sigma``). A point
    estimate of (μ, σ) (type-II maximum likelihood) collapses σ to the grid's floor when a handful
    of tables agree, a prior far too sure of an unseen table's τ (Gelman 2006 on group-level
    variances with few groups); integrating over σ keeps that uncertainty.
    """
    lt = np.log(TAU_GRID)
    step = lt[1] - lt[0]
    mus = np.linspace(np.log(1e-3), np.log(1.0), 141)
    sigmas = np.linspace(0.02, 3.0, 150)
    # ln N(ln τ; μ, σ) d ln τ on the grid, shape (μ, σ, ln τ)
    mu_, sd_ = mus[:, None, None], sigmas[None, :, None]
    logprior = -0.5 * ((lt - mu_) / sd_) ** 2 - np.log(sd_ * np.sqrt(2 * np.pi)) + np.log(step)
    logpost = -0.5 * (sigmas[None, :] / SIGMA_SCALE) ** 2 + sum(
        logsumexp(ll + logprior, axis=-1) for ll in curves.values())
    w = np.exp(logpost - logsumexp(logpost))
    m, s = np.meshgrid(mus, sigmas, indexing="ij")
    mean = float(np.sum(w * m))
    var = float(np.sum(w * (s ** 2 + m ** 2)) - mean ** 2)
    return {"family": "lognormal", "mu": round(mean, 4), "sigma": round(float(np.sqrt(var)), 4)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reuse", action="store_true", help="use backtest CSVs already written")
    ap.add_argument("tables", nargs="*", help="only these tables (default: all)")
    args = ap.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    tables = real_tables()
    names = args.tables or list(tables)
    curves, per_table = {}, {}
    for name in tables:
        path = OUT / f"{name}.csv"
        runs, law_name = tables[name]
        law = get_law(law_name)
        if name in names and not (args.reuse and path.exists()):
            t0 = time.perf_counter()
            bt = backtest(training_part(runs), law, fit_kwargs={"seed": 0})
            bt.to_csv(path, index=False)
            print(f"{name}: {len(runs)} runs, {len(bt)} backtest predictions, {time.perf_counter() - t0:.0f} s",
                  flush=True)
        if not path.exists():
            continue
        bt = pd.read_csv(path)
        ll = tau_log_likelihood(bt, axes(law))
        curves[name] = ll
        w = np.exp(ll - ll.max())
        cdf = np.cumsum(w / w.sum())
        per_table[name] = {"law": law_name, "runs": len(runs), "predictions": len(bt),
                           "tau_mle": float(TAU_GRID[np.argmax(ll)]),
                           "tau_flat_prior_90": [float(np.interp(q, cdf, TAU_GRID)) for q in (0.05, 0.5, 0.95)],
                           "rmse": float(np.sqrt(np.mean(bt["residual"] ** 2))),
                           "median_sd": float(bt["sd"].median())}
        print(name, {k: (np.round(v, 4).tolist() if isinstance(v, (float, list)) else v)
                     for k, v in per_table[name].items()}, flush=True)
    prior = fit_population(curves)
    prior.update({"source": "docs/validation/distill_discrepancy.py", "tables": sorted(curves),
                  "per_table": per_table})
    PRIOR.write_text(json.dumps(prior, indent=1) + "\n")
    print("prior:", {k: prior[k] for k in ("mu", "sigma")}, "tau median", round(float(np.exp(prior["mu"])), 4))
    loto = {}
    for name in curves:
        family = FAMILY.get(name, name)
        rest = {k: v for k, v in curves.items() if k != name and FAMILY.get(k, k) != family}
        loto[name] = fit_population(rest)
    # the unions of run_holdout.py (all Porian setups in one fit; all IsoFLOP sources, which include
    # Epoch's runs) get the prior of the tables outside the union
    for union, members in UNIONS.items():
        rest = {k: v for k, v in curves.items() if not members(k)}
        if len(rest) < len(curves):
            loto[union] = fit_population(rest)
    LOTO.write_text(json.dumps(loto, indent=1) + "\n")
    print("leave-one-table-out:", json.dumps(loto))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
