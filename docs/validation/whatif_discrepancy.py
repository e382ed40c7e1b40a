"""What-if for the extrapolation-error model: score alternative error models on the hold-out
table of docs/validation.md without refitting anything.

Each alternative adds one factor ``s`` to τ's model, learned from the same backtests (a 2-D grid
posterior over (s, τ), each table's leave-one-table-out population prior on τ, a lognormal prior
on s), and widens the hold-out fits' new-run draws with it:

* ``noise``: s scales the fitted run noise (heteroscedastic noise: runs beyond the cut may be
  more or less noisy than the fitted ones), r ~ N(0, s²·diag(noise²) + P Pᵀ + τ² E Eᵀ), and a
  new run is law + s·(σ·t_ν) + δ;
* ``params``: s scales the law's parameter spread (under misspecification the posterior is too
  sure of θ; a learned, sandwich-like inflation), r ~ N(0, diag(noise²) + s² P Pᵀ + τ² E Eᵀ),
  and a new run is mean + s·(law draw − mean) + σ·t_ν + δ;
* ``offset``: s is the sd of one shift shared by every run beyond the fitted range (a step at
  its edge), r ~ N(0, diag(noise²) + P Pᵀ + s² 1 1ᵀ + τ² E Eᵀ) per cut, and a new run beyond the
  range is law + noise + s·z₀ + δ (flat prior on ln s over the grid: ``--factor-sd`` is unused);
* ``scale`` and ``inputs``: one growth rate per kind of axis instead of one for all. The slope on
  the scale axis (size × tokens) has sd s·τ and the slopes on the law's inputs τ (``scale``), or
  the other way round (``inputs``): δ = b·e with b_a ~ N(0, τ_a²). In IsoFLOP tables the
  backtests' runs beyond the fitted N are the small-D ends of the top budgets' sweeps, where the
  law misfits, and one τ for all axes lends that slope to the scale axis (flat prior on ln s);
* ``excess``: no factor; the scale axis replaced by what it adds to the size and token axes,
  e_scale − e_n_active − e_tokens (a run beyond in N and D by x decades each lies about 2x
  beyond on the scale axis, so the shipped distance counts that extrapolation twice);
* ``none``: s = 1, the shipped model (reproduces the table's coverage and widths).

Reads ``docs/validation/backtests/<table>.csv``, ``docs/validation/discrepancy_holdout_<table>.csv``
and the hold-out fits in ``$BAYESMOE_HOLDOUT_FITS`` (default /tmp/bayesmoe_holdout_fits), which
``run_discrepancy_holdout.py`` writes (about 8 minutes on 2 cores when they are absent).

    PYTHONPATH=. .venv/bin/python docs/validation/whatif_discrepancy.py --model noise params
    ... whatif_discrepancy.py --model none noise params offset --out docs/validation/whatif_discrepancy.csv
    ... whatif_discrepancy.py --model scale inputs --out docs/validation/whatif_discrepancy.csv
    ... whatif_discrepancy.py --model excess --out docs/validation/whatif_discrepancy.csv
    ... whatif_discrepancy.py --evidence   # the backtests' own preference among distances
    ... whatif_discrepancy.py --slopes     # each backtest cut's slopes per axis
    ... whatif_discrepancy.py --ratio-residuals porian-owt2-tuned-const porian-rw-tuned-const
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import logsumexp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bayesmoe  # noqa: E402
from bayesmoe import noise as run_noise  # noqa: E402
from bayesmoe.discrepancy import TAU_GRID, tau_log_likelihood  # noqa: E402
from distill_discrepancy import FAMILY, fit_population  # noqa: E402

FITS = Path(os.environ.get("BAYESMOE_HOLDOUT_FITS", "/tmp/bayesmoe_holdout_fits"))
TAU = np.geomspace(1e-4, 3.0, 61)
FACTOR = {"none": np.array([1.0]), "noise": np.geomspace(0.4, 4.0, 21), "params": np.geomspace(0.5, 8.0, 25),
          "offset": np.geomspace(1e-4, 0.3, 25), "scale": np.geomspace(0.05, 4.0, 25),
          "inputs": np.geomspace(0.25, 20.0, 25), "excess": np.array([1.0])}

#: Models whose factor gets a flat prior on ln s over its grid (``--factor-sd`` unused).
FLAT = ("offset", "scale", "inputs")


def tables() -> list[str]:
    """The hold-out table's rows (discrepancy_holdout.csv), in its order."""
    return list(pd.read_csv(HERE / "discrepancy_holdout.csv")["table"])


def surface(model: str, bt: pd.DataFrame) -> np.ndarray:
    """ln p(backtests | s, τ), shape (factor, τ)."""
    axes = [c[2:] for c in bt.columns if c.startswith("e_")]
    pcs = [c for c in bt.columns if c.startswith("pc_")]
    out = []
    for s in FACTOR[model]:
        if model == "noise":
            scaled = bt.assign(noise_sd=bt["noise_sd"] * s)
        elif model == "offset":  # a constant column of P adds s² 1 1ᵀ to each cut's covariance
            scaled = bt.assign(pc_offset=np.where(bt["distance"] > 0, s, 0.0))
        elif model == "scale":  # the scale axis's slopes have sd s·τ, the inputs' τ
            scaled = bt.assign(e_scale=bt["e_scale"] * s)
        elif model == "inputs":  # the inputs' slopes have sd s·τ, the scale axis's τ
            scaled = bt.assign(**{f"e_{a}": bt[f"e_{a}"] * s for a in axes if a != "scale"})
        elif model == "excess":  # the scale axis less what the size and token axes already say
            scaled = bt.assign(e_scale=bt["e_scale"] - bt["e_n_active"] - bt["e_tokens"])
        else:
            scaled = bt.assign(**{c: bt[c] * s for c in pcs})
        out.append(tau_log_likelihood(scaled, axes, tau=TAU))
    return np.stack(out)


def score(model: str, factor_sd: float, seed: int = 0) -> tuple[pd.DataFrame, float]:
    names = tables()
    surf = {t: surface(model, pd.read_csv(HERE / "backtests" / f"{t}.csv")) for t in names}
    grid = FACTOR[model]
    log_prior_s = np.zeros(len(grid)) if model in FLAT else -0.5 * (np.log(grid) / factor_sd) ** 2
    rng = np.random.default_rng(seed)
    rows, covered = [], []
    for t in names:
        family = FAMILY.get(t, t)
        # the other tables' τ curves, s integrated out under its prior: the leave-one-out population
        curves = {k: np.interp(np.log(TAU_GRID), np.log(TAU), logsumexp(s + log_prior_s[:, None], axis=0))
                  for k, s in surf.items() if k != t and FAMILY.get(k, k) != family}
        prior = fit_population(curves)
        logp = surf[t] + log_prior_s[:, None] - 0.5 * ((np.log(TAU) - prior["mu"]) / prior["sigma"]) ** 2
        w = np.exp(logp - logp.max())
        w /= w.sum()
        ho = pd.read_csv(HERE / f"discrepancy_holdout_{t}.csv")
        fit = bayesmoe.load(FITS / f"{t}.nc")
        law = np.log(fit.predict(ho[list(fit.law.inputs)], kind="mean").values.reshape(-1, len(ho)))
        post = fit.tree["posterior"]
        # each draw's noise scale at each held-out run, the trend in compute included, as predict's
        sigma = run_noise.run_scale(post["sigma"].values, run_noise.posterior_trend(post), fit.runs, ho,
                                    fit.anchor).reshape(-1, len(ho))
        nu = post["nu"].values.ravel()
        si, ti = np.unravel_index(rng.choice(w.size, size=len(law), p=w.ravel()), w.shape)
        s, tau = grid[si][:, None], TAU[ti][:, None]
        distance = ho["distance"].to_numpy()
        if model in ("scale", "inputs", "excess"):  # the held-out runs' distance per axis
            one = ho["group"].iloc[0] if ho["group"].nunique() == 1 else None
            e = fit.discrepancy.distance(fit.law, ho, one if one in fit.discrepancy.ranges else None)
            assert np.allclose(np.linalg.norm(e, axis=1), distance, atol=1e-6), t
            names = list(fit.discrepancy.axes)
        if model == "excess":
            e[:, names.index("scale")] -= e[:, names.index("n_active")] + e[:, names.index("tokens")]
            distance = np.linalg.norm(e, axis=1)
        if model in ("scale", "inputs"):
            on_scale = np.array([a == "scale" for a in names])
            e_in, e_s = np.linalg.norm(e[:, ~on_scale], axis=1), np.abs(e[:, on_scale]).sum(axis=1)
            k = s if model == "scale" else 1.0
            j = s if model == "inputs" else 1.0
            distance = np.sqrt((j * e_in[None, :]) ** 2 + (k * e_s[None, :]) ** 2)
        noise = sigma * rng.standard_t(np.broadcast_to(nu[:, None], law.shape))
        if model == "noise":
            noise = s * noise
        if model == "params":
            law = law.mean(axis=0) + s * (law - law.mean(axis=0))
        if model == "offset":
            noise = noise + s * (distance > 0) * rng.standard_normal((len(law), 1))
        draws = law + noise + tau * np.broadcast_to(distance, law.shape) * rng.standard_normal(law.shape)
        lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
        y = np.log(ho["loss"].to_numpy())
        inside = (lo <= y) & (y <= hi)
        covered += list(inside)
        rmse = float(np.sqrt(np.mean((ho["loss"] - ho["predicted"]) ** 2)))
        rows.append({"table": t, "held out": len(ho), "90 % covered": inside.mean(),
                     "shipped": ho["in90"].mean(), "width / RMSE": np.median(np.exp(hi) - np.exp(lo)) / rmse,
                     "shipped width / RMSE": np.median(ho["width90"]) / rmse,
                     "s mean": float(np.sum(w.sum(axis=1) * grid)),
                     "τ median": float(TAU[np.searchsorted(np.cumsum(w.sum(axis=0)), 0.5)])})
    return pd.DataFrame(rows), float(np.mean(covered))


def distance_evidence() -> pd.DataFrame:
    """ln marginal likelihood of each table's backtests under a flat prior on ln τ over ``TAU``,
    per geometry of the distance, relative to the shipped one (``--evidence``): which distance do
    the backtests themselves prefer? Reads only docs/validation/backtests/."""
    out = {}
    for t in tables():
        bt = pd.read_csv(HERE / "backtests" / f"{t}.csv")
        axes = [c[2:] for c in bt.columns if c.startswith("e_")]
        other = [a for a in axes if a not in ("n_active", "tokens", "scale")]  # experts, where the law has it
        n, d, sc = bt["e_n_active"], bt["e_tokens"], bt["e_scale"]
        largest = np.maximum.reduce([n.abs(), d.abs(), sc.abs()]) * np.sign(n + d + sc)
        variants = {"shipped: N, D, N·D": (bt, axes),
                    "N, D, N·D − N − D (excess)": (bt.assign(e_scale=sc - n - d), axes),
                    "N, D only": (bt, ["n_active", "tokens", *other]),
                    "N·D only": (bt, ["scale", *other]),
                    "largest of N, D, N·D": (bt.assign(e_largest=largest), ["largest", *other])}
        out[t] = {k: float(logsumexp(tau_log_likelihood(b, a, tau=TAU)) - np.log(len(TAU)))
                  for k, (b, a) in variants.items()}
    df = pd.DataFrame(out).T
    return df.sub(df["shipped: N, D, N·D"], axis=0)


def cut_slopes() -> pd.DataFrame:
    """Each backtest cut's slopes b per axis, by generalised least squares on its residuals
    (weights 1 / sd², the law's predictive sd of each run): the slopes the random-slope term
    draws, as each cut saw them (``--slopes``). Reads only docs/validation/backtests/."""
    rows = []
    for t in tables():
        bt = pd.read_csv(HERE / "backtests" / f"{t}.csv")
        cols = [c for c in bt.columns if c.startswith("e_")]
        for (axis, cut), part in bt.groupby(["axis", "cut"]):
            e, r, w = part[cols].to_numpy(), part["residual"].to_numpy(), 1.0 / part["sd"].to_numpy() ** 2
            b = np.linalg.lstsq(e.T @ (e * w[:, None]), e.T @ (w * r), rcond=None)[0]
            rows.append({"table": t, "cut": f"{axis} {cut:g}", "runs": len(part),
                         **{f"b_{c[2:]}": v for c, v in zip(cols, b, strict=True)}})
    return pd.DataFrame(rows)


def ratio_residuals(names) -> pd.DataFrame:
    """The fitted runs' residuals (``bayesmoe.noise.run_residuals``) of these tables' hold-out
    fits, binned by tokens per parameter (six equal bins of log10 D/N): a misfit of the law's form
    inside the data shows as a pattern in the mean, which the noise absorbs (``--ratio-residuals``)."""
    frames = []
    for t in names:
        fit = bayesmoe.load(FITS / f"{t}.nc")
        res = run_noise.run_residuals(fit)
        ratio = np.log10(res["tokens"] / res["n_active"])
        g = res.groupby(pd.cut(ratio, 6), observed=True)
        frames.append(pd.DataFrame({"table": t, "tokens per parameter": [f"{10 ** b.left:.2g}-{10 ** b.right:.2g}"
                                                                          for b in g.groups],
                                    "runs": g.size().values, "mean residual": g["residual"].mean().values,
                                    "sd": g["residual"].std().values,
                                    "noise σ (median)": g["noise_sd"].median().values}))
    return pd.concat(frames, ignore_index=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs="+", choices=list(FACTOR), default=["none", "noise", "params"])
    ap.add_argument("--factor-sd", type=float, default=0.5, help="sd of the lognormal prior on s (default 0.5)")
    ap.add_argument("--out", type=Path, default=None,
                    help="also write every table's row per model to this CSV (rows of the same model and factor sd replaced)")
    ap.add_argument("--evidence", action="store_true",
                    help="print the backtests' marginal likelihood per geometry of the distance instead")
    ap.add_argument("--slopes", action="store_true",
                    help="print each backtest cut's slopes per axis (generalised least squares) instead")
    ap.add_argument("--ratio-residuals", nargs="+", metavar="TABLE", default=None,
                    help="print these tables' fitted residuals by tokens per parameter instead (hold-out fits)")
    args = ap.parse_args(argv)
    pd.set_option("display.width", 200)
    if args.ratio_residuals:
        print(ratio_residuals(args.ratio_residuals).round(3).to_string(index=False))
        return 0
    if args.slopes:
        print(cut_slopes().round(4).to_string(index=False))
        return 0
    if args.evidence:
        ev = distance_evidence()
        print("ln p(backtests | distance), flat prior on ln τ, relative to the shipped distance")
        print(ev.round(1).to_string())
        print("summed over the tables:\n" + ev.sum().round(1).to_string())
        return 0
    frames = []
    for model in args.model:
        df, pooled = score(model, args.factor_sd)
        frames.append(df.assign(model=model, factor_sd=args.factor_sd, pooled_covered=pooled))
        in_range = int(((df["90 % covered"] >= 0.8) & (df["90 % covered"] <= 0.97)).sum())
        sharp = int((df["width / RMSE"] <= 4).sum())
        prior = "flat prior on ln s" if model in FLAT else f"ln s ~ N(0, {args.factor_sd})"
        print(f"== {model} ({prior}): pooled 90 % covered {pooled:.1%}; "
              f"tables within 80-97 %: {in_range} of {len(df)}; width <= 4 x RMSE: {sharp} of {len(df)}")
        print(df.round(3).to_string(index=False))
    if args.out:
        new = pd.concat(frames, ignore_index=True)
        if args.out.exists():
            old = pd.read_csv(args.out)
            keep = ~old.set_index(["model", "factor_sd"]).index.isin(new.set_index(["model", "factor_sd"]).index)
            new = pd.concat([old[keep], new], ignore_index=True)
        new.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
