"""What-if: a per-run independent discrepancy ρ·|e_i| beside the shared random slope τ·b·e_i.

    PYTHONPATH=. .venv/bin/python docs/validation/whatif_independent.py    # about 4 minutes, writes whatif_independent.csv

Hypothesis (session 22): on the IsoFLOP tables the backtests' runs beyond a cut scatter more than
the fitted noise, run by run, and the shared slope b (3 axes) can absorb that only by growing τ,
which would make Llama 3's intervals 16 × its hold-out RMSE. The alternative model adds an
independent term, δ_i = b·e_i + ρ·|e_i|·z_i (z_i ~ N(0, 1)), so the backtest likelihood of each cut
becomes r ~ N(0, diag(noise² + ρ²|e|²) + P Pᵀ + τ² E Eᵀ). τ and ρ are learned on a 60 × 60 grid
from the committed backtests (docs/validation/backtests/) with each table's leave-one-table-out
prior on ln τ, and the same lognormal prior on ln ρ (a what-if, not a distilled prior).

Re-scoring is approximate and needs no refit: each held-out run's law-only new-run predictive is
taken as Normal(prediction, (width90_law / 3.29)²) in loss units (from
discrepancy_holdout_<table>.csv), δ's sd is sqrt(τ² + ρ²) · distance · loss, and the 90 % interval
is that mixture's over the (τ, ρ) posterior. The "shared" rows (ρ = 0) are the shipped model
under the same approximation: they must reproduce the table in docs/validation.md.
"""
import glob
import json
import os

import numpy as np
import pandas as pd
from scipy import optimize, stats

from bayesmoe.discrepancy import tau_log_likelihood

HERE = os.path.dirname(os.path.abspath(__file__))
TAU = np.geomspace(1e-4, 1.0, 60)
RHO = np.geomspace(1e-4, 1.0, 60)
Z90 = stats.norm.ppf(0.95)


def log_likelihood(table: pd.DataFrame, tau: np.ndarray, rho: float) -> np.ndarray:
    """ln p(backtests | τ, ρ) on the τ grid: the package's exact marginal per cut
    (:func:`bayesmoe.discrepancy.tau_log_likelihood`) with ρ²|e_i|² added to each run's noise
    variance, the independent term's."""
    axes = [c.removeprefix("e_") for c in table.columns if c.startswith("e_")]
    e2 = (table[[f"e_{a}" for a in axes]].to_numpy(float) ** 2).sum(axis=1)
    widened = table.assign(noise_sd=np.sqrt(table["noise_sd"].to_numpy(float) ** 2 + rho**2 * e2))
    return tau_log_likelihood(widened, axes, tau)


def grid_posterior(backtests: pd.DataFrame, prior: dict, rhos: np.ndarray) -> np.ndarray:
    """Weights on the (τ, ρ) grid: the backtests' likelihood times the lognormal prior on ln τ
    (and the same on ln ρ where ρ > 0)."""
    log_post = np.stack([log_likelihood(backtests, TAU, r) for r in rhos], axis=1)
    log_post += stats.norm.logpdf(np.log(TAU), prior["mu"], prior["sigma"])[:, None]
    if rhos.max() > 0:
        log_post += stats.norm.logpdf(np.log(rhos), prior["mu"], prior["sigma"])[None, :]
    w = np.exp(log_post - log_post.max())
    return w / w.sum()


def half_width_90(w: np.ndarray, sd: np.ndarray) -> float:
    """Half-width of the central 90 % of a zero-mean mixture of normals (weights w, sds sd)."""
    def excess(x):
        return float((w * stats.norm.cdf(x / sd)).sum()) - 0.95
    return optimize.brentq(excess, 0.0, 20 * float(sd.max()))


def score(holdout: pd.DataFrame, w: np.ndarray, rhos: np.ndarray) -> dict:
    """90 % coverage and median width / RMSE of the held-out runs under the (τ, ρ) posterior."""
    law_sd = holdout["width90_law"].to_numpy() / (2 * Z90)
    err = (holdout["loss"] - holdout["predicted"]).to_numpy()
    scale = (holdout["distance"] * holdout["loss"]).to_numpy()  # δ in ln loss, at the loss's scale
    var_delta = TAU[:, None] ** 2 + rhos[None, :] ** 2
    half = np.array([half_width_90(w, np.sqrt(law_sd[i] ** 2 + var_delta * scale[i] ** 2)) for i in range(len(err))])
    rmse = float(np.sqrt(np.mean(err**2)))
    return {"cov90": float(np.mean(np.abs(err) <= half)), "w_rmse": float(np.median(2 * half) / rmse)}


def main() -> int:
    priors = json.load(open(os.path.join(HERE, "discrepancy_prior_loto.json")))
    rows = []
    for path in sorted(glob.glob(os.path.join(HERE, "backtests", "*.csv"))):
        name = os.path.basename(path)[:-4]
        if name not in priors:
            continue
        backtests = pd.read_csv(path)
        holdout = pd.read_csv(os.path.join(HERE, f"discrepancy_holdout_{name}.csv"))
        rmse = float(np.sqrt(np.mean((holdout["loss"] - holdout["predicted"]) ** 2)))
        for model, rhos in (("shared", np.zeros(1)), ("shared+indep", RHO)):
            w = grid_posterior(backtests, priors[name], rhos)
            tau_w, rho_w = w.sum(axis=1), w.sum(axis=0)
            rows.append({"table": name, "model": model, "n": len(holdout), **score(holdout, w, rhos),
                         "tau": float(np.exp(tau_w @ np.log(TAU))),
                         "rho": float(np.exp(rho_w @ np.log(rhos))) if rhos.max() > 0 else 0.0,
                         "shipped_cov": float(holdout["in90"].mean()),
                         "shipped_w": float(holdout["width90"].median() / rmse)})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(os.path.join(HERE, "whatif_independent.csv"), index=False)
    print(table.round(3).to_string())
    for model, g in table.groupby("model"):
        pooled = (g["cov90"] * g["n"]).sum() / g["n"].sum()
        print(f"{model}: pooled 90 % covered {pooled:.3f}; tables within 80-97 %: "
              f"{int(g['cov90'].between(0.8, 0.97).sum())} of {len(g)}; width <= 4 x RMSE: {int((g['w_rmse'] <= 4).sum())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
