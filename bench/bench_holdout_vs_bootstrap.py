"""Ordered hold-out, same split, same run: bayesmoe's NUTS against Huber + L-BFGS-B + bootstrap.

Issue "validation", item 4: wall time, interval width and hold-out coverage of bayesmoe and of
the field's usual method, on the same data in one process::

    python bench/bench_holdout_vs_bootstrap.py                       # reference and epoch
    python bench/bench_holdout_vs_bootstrap.py --cases reference     # one case
    python bench/bench_holdout_vs_bootstrap.py --quick               # smoke run, nothing written

Writes ``docs/validation/bootstrap_<case>.csv`` (one row per method; not with ``--quick`` unless
``--out`` is given), prints a table on stdout and progress on stderr.

Cases (tables loaded with ``docs/validation/run_holdout.py``'s own loaders)
---------------------------------------------------------------------------
* ``reference``: ``data/reference_runs.csv``, G = 1 rows (108), joint law, bayesmoe with
  ``target_accept=0.95`` (as ``run_holdout.py``).
* ``epoch``: Epoch's digitised Chinchilla runs (240), Chinchilla law. Read in place from
  ``../shared/data/epoch-chinchilla``; skipped with a message where ``../shared/data`` is absent.

The split is ``bayesmoe.validation.extrapolation_holdout``'s: runs ordered by compute
6·n_active·tokens, fitted on those at or below its 80 % quantile, the rest held out. The baseline
takes the fitted / held-out runs from the hold-out's own result (the index of ``ho.table`` in the
validated table) and asserts that its counts match ``ho.summary``.

What is measured, and how
-------------------------
All clocks are ``time.perf_counter`` wall time; imports and loading the tables are not counted.
The host is shared and noisy (2 cores): compare methods within one run of this script only.

bayesmoe (NUTS, float32, 4 chains on 4 host devices, literature priors)
    * *wall*: one ``extrapolation_holdout(runs, law=..., by="compute", quantile=0.8,
      fit_kwargs=...)`` call: validation, tracing, compilation, warmup, sampling, diagnostics and
      the predictions of the held-out runs. The first case in the process also pays JAX's
      first-use costs; NumPyro compiles anew on every fit anyway.
    * *point prediction*: posterior median of the law's expected loss (``ho.table.predicted``).
    * *intervals*: central 50 % / 90 % intervals of a new run (``kind="new_run"``: the fitted
      Student-t noise included), from the hold-out's table.
    * *exponent widths*: 5-95 % quantile range of the posterior draws of each exponent.

Baseline, the field's usual method (float64; the objective and L-BFGS-B settings of
``bench_joint_nuts_vs_bootstrap.py``, whose docstring explains them)
    * objective: sum over the fitted runs of Huber(predicted ln L - observed ln L), δ = 1e-3,
      where predicted ln L is ``bayesmoe.laws.get_law(law).log_loss`` (the very law bayesmoe
      fits), gradient from ``jax.grad`` of the jitted objective. Coordinates: scales and the
      irreducible loss as logs, exponents as they are.
      - joint: the 11 coordinates, bounds (E_start in [0.5, 30], E_max in [32, 1e5]) and start
        grid of ``bench_joint_nuts_vs_bootstrap`` (imported), 64 starts drawn from its grid.
      - chinchilla: (ln a, ln b, ln e, α, β), unbounded, starts from Hoffmann et al.'s grid as
        Besiroglu et al. 2024 used it: α, β ∈ {0, 0.5, ..., 2}, ln e ∈ {-1, -0.5, ..., 1},
        ln a, ln b ∈ {0, 5, ..., 25}: all 4500 points by default (``--num-starts`` draws fewer).
    * L-BFGS-B (``scipy.optimize.minimize``) with ``ftol=1e-15, gtol=1e-11, maxcor=30``,
      ``OPENBLAS_NUM_THREADS=1``; the lowest objective over the starts is the best fit.
    * bootstrap: ``--num-bootstrap`` (1000) nonparametric resamples of the fitted runs, as
      multinomial run weights, each refitted from the best fit. Refits that L-BFGS-B does not
      report as successful, or with a non-finite objective, are dropped (counted in the CSV).
    * *wall*: compile (first call of the jitted objective) + grid fits + bootstrap refits +
      predictions; each also reported on its own.
    * *point prediction*: the best fit's expected loss.
    * intervals of a held-out run's loss, two variants:
      - ``bootstrap, params only`` (the field's usual): the 25-75 % and 5-95 % percentiles, over
        the successful refits, of each refit's predicted expected loss. Parameter uncertainty
        only, no run-to-run noise.
      - ``bootstrap + residual``: a fairer interval for *a new run*: for each refit,
        ``--residual-draws`` (10) draws of exp(predicted ln L + r), r a training residual of that
        refit (observed - predicted ln L over its own resample, i.e. a fitted run drawn with the
        refit's multinomial weights); percentiles over all refits × draws. The residuals are the
        in-sample ones (not inflated for the fitted parameters: with 90 or 192 runs and 11 or
        5 parameters that would widen them by at most 6 %).
    * *exponent widths*: 5-95 % percentile range of the refits' exponent (the same for both
      variants).

Per method the CSV and the table give: wall time, the median over held-out runs of the 50 % and
90 % interval widths (hi - lo, nats of loss), coverage (share of held-out observed losses inside
the 50 % / 90 % intervals), max abs error and RMSE of the point prediction (nats), and the 90 %
width of each exponent (α, β; joint also γ, ζ, δ, ω).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads; see the docstring

from bayesmoe.discrepancy import use_cpu_devices  # noqa: E402  (no JAX start: numpy and pandas)

use_cpu_devices()  # a CPU device per chain (the backtests': all at once), before JAX starts

import argparse  # noqa: E402
import itertools  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.optimize  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "docs" / "validation"))

import bench_joint_nuts_vs_bootstrap as jb  # noqa: E402
import run_holdout as rh  # noqa: E402

from bayesmoe.data import validate_runs  # noqa: E402
from bayesmoe.errors import ConvergenceWarning  # noqa: E402
from bayesmoe.laws import Law, get_law  # noqa: E402
from bayesmoe.validation import HOLDOUT_LEVELS, extrapolation_holdout  # noqa: E402

OUT = REPO / "docs" / "validation"
log = jb.log
LEVELS = HOLDOUT_LEVELS  # (0.5, 0.9)


# ---------------------------------------------------------------------------------------------
# Baseline, generalised over the law
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    """What the baseline needs of a law: its coordinates, bounds, map to paper form and starts."""

    law: Law
    theta: tuple[str, ...]
    bounds: list
    to_params: Callable[[jax.Array], dict]
    starts: Callable[[int, int], np.ndarray]
    exponents: tuple[str, ...]
    default_starts: int

    def values(self, theta: np.ndarray) -> dict[str, float]:
        return {k: float(v) for k, v in zip(self.theta, theta)}


CHINCHILLA_THETA = ("log_a", "log_b", "log_e", "alpha", "beta")


def chinchilla_params(theta: jax.Array) -> dict[str, jax.Array]:
    p = dict(zip(CHINCHILLA_THETA, theta))
    return {"alpha": p["alpha"], "beta": p["beta"], "a": jnp.exp(p["log_a"]), "b": jnp.exp(p["log_b"]),
            "e": jnp.exp(p["log_e"])}


def hoffmann_grid(num_starts: int, seed: int) -> np.ndarray:
    """``num_starts`` distinct points of Hoffmann et al.'s grid (Besiroglu et al. 2024, §2)."""
    axes = {"log_a": np.arange(0, 30, 5.0), "log_b": np.arange(0, 30, 5.0),
            "log_e": np.arange(-1, 1.5, 0.5), "alpha": np.arange(0, 2.5, 0.5),
            "beta": np.arange(0, 2.5, 0.5)}
    grid = np.array(list(itertools.product(*(axes[k] for k in CHINCHILLA_THETA))), dtype="float64")
    rng = np.random.default_rng(seed)
    return grid[rng.choice(len(grid), size=min(num_starts, len(grid)), replace=False)]


BASELINES = {
    "joint": Baseline(get_law("joint"), jb.THETA, jb.BOUNDS, jb.paper_params, jb.grid_of_starts,
                      ("alpha", "beta", "gamma", "zeta", "delta", "omega"), 64),
    "chinchilla": Baseline(get_law("chinchilla"), CHINCHILLA_THETA, [(None, None)] * 5,
                           chinchilla_params, hoffmann_grid, ("alpha", "beta"), 4500),
}


def law_inputs(law: Law, runs: pd.DataFrame) -> dict[str, jax.Array]:
    return {k: jnp.asarray(runs[k].to_numpy(dtype="float64")) for k in law.inputs}


def run_baseline(spec: Baseline, fitted: pd.DataFrame, held: pd.DataFrame, *, num_starts: int,
                 num_bootstrap: int, residual_draws: int, huber_delta: float, seed: int) -> dict:
    """Grid of L-BFGS-B fits, warm-started bootstrap refits, predictions; all in float64."""
    law = spec.law
    with jax.enable_x64(True):
        x_fit, x_held = law_inputs(law, fitted), law_inputs(law, held)
        observed = jnp.asarray(np.log(fitted["loss"].to_numpy(dtype="float64")))

        def objective(theta, weights):
            residual = law.log_loss(spec.to_params(theta), x_fit) - observed
            return jnp.sum(weights * jb.huber(residual, huber_delta))

        value_and_grad = jax.jit(jax.value_and_grad(objective))

        def fun(theta, weights):
            value, grad = value_and_grad(jnp.asarray(theta), weights)
            return float(value), np.asarray(grad, dtype="float64")

        def lbfgs(theta0, weights):
            return scipy.optimize.minimize(fun, theta0, args=(weights,), jac=True, method="L-BFGS-B",
                                           bounds=spec.bounds, options=jb.LBFGS_OPTIONS)

        ones = jnp.ones(len(fitted), dtype=jnp.float64)
        starts = spec.starts(num_starts, seed)
        t0 = time.perf_counter()
        fun(starts[0], ones)  # trace + compile
        compile_s = time.perf_counter() - t0

        log(f"baseline: L-BFGS-B from {len(starts)} grid starts ({len(fitted)} runs)")
        t0 = time.perf_counter()
        with np.errstate(all="ignore"):
            fits = [lbfgs(s, ones) for s in starts]
        grid_s = time.perf_counter() - t0
        best = min((f for f in fits if np.isfinite(f.fun)), key=lambda f: f.fun)

        log(f"baseline: {num_bootstrap} bootstrap refits from the best fit")
        rng = np.random.default_rng(seed + 1)
        n = len(fitted)
        refits, weights = [], []
        t0 = time.perf_counter()
        for _ in range(num_bootstrap):
            counts = np.bincount(rng.integers(0, n, n), minlength=n).astype("float64")
            refits.append(lbfgs(best.x, jnp.asarray(counts)))
            weights.append(counts)
        bootstrap_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        ok = [i for i, r in enumerate(refits) if jb.refit_ok(r)]
        thetas = jnp.asarray(np.array([refits[i].x for i in ok]).reshape(len(ok), len(spec.theta)))
        predict = jax.jit(jax.vmap(lambda th, x: law.log_loss(spec.to_params(th), x), in_axes=(0, None)))
        boot_held = np.asarray(predict(thetas, x_held))  # (B, n_held) ln L
        boot_fit = np.asarray(predict(thetas, x_fit))  # (B, n_fit) ln L
        best_held = np.asarray(predict(jnp.asarray(best.x)[None], x_held))[0]
        # + residual: per refit, residual_draws residuals of its own resample
        resid = np.asarray(observed)[None, :] - boot_fit
        w = np.array([weights[i] for i in ok])
        picks = np.stack([rng.choice(n, size=residual_draws, p=wi / wi.sum()) for wi in w])  # (B, K)
        r = np.take_along_axis(resid, picks, axis=1)  # (B, K)
        noisy = (boot_held[:, None, :] + r[:, :, None]).reshape(-1, boot_held.shape[1])
        predict_s = time.perf_counter() - t0

    intervals = {}
    for label, draws in (("params", np.exp(boot_held)), ("residual", np.exp(noisy))):
        for level in LEVELS:
            lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
            intervals[(label, level)] = (lo, hi)
    exps = np.array([[spec.values(refits[i].x)[e] for e in spec.exponents] for i in ok])
    exp_width = {e: float(np.subtract(*np.quantile(exps[:, j], [0.95, 0.05]))) for j, e in enumerate(spec.exponents)}
    failures = len(refits) - len(ok)
    return {
        "num_starts": len(starts), "num_bootstrap": num_bootstrap, "residual_draws": residual_draws,
        "compile_s": compile_s, "grid_s": grid_s, "bootstrap_s": bootstrap_s, "predict_s": predict_s,
        "wall_s": compile_s + grid_s + bootstrap_s + predict_s,
        "grid_successes": sum(jb.refit_ok(f) for f in fits),
        "best_objective": float(best.fun), "best_fit": spec.values(best.x),
        "bootstrap_failures": failures,
        "failure_messages": pd.Series([str(r.message) for r in refits if not jb.refit_ok(r)]).value_counts().to_dict(),
        "median_refit_evaluations": float(np.median([r.nfev for r in refits])),
        "predicted": np.exp(best_held), "intervals": intervals, "exponent_width90": exp_width,
    }


# ---------------------------------------------------------------------------------------------
# One case
# ---------------------------------------------------------------------------------------------


def scores(observed: np.ndarray, predicted: np.ndarray, intervals: dict[float, tuple]) -> dict:
    err = predicted - observed
    out = {"max_abs_error": float(np.max(np.abs(err))), "rmse": float(np.sqrt(np.mean(err ** 2)))}
    for level in LEVELS:
        lo, hi = intervals[level]
        k = int(round(level * 100))
        out[f"width{k}_median"] = float(np.median(hi - lo))
        out[f"coverage_{k}"] = float(np.mean((observed >= lo) & (observed <= hi)))
    return out


def run_case(name: str, args) -> pd.DataFrame:
    table_fn, law_name, ho_kw, fit_kw = rh.CASES[name]
    runs = table_fn()
    spec = BASELINES[law_name]
    law = spec.law
    draws = {"num_chains": args.num_chains, "num_warmup": args.num_warmup, "num_samples": args.num_samples,
             "seed": args.seed}

    log(f"{name}: bayesmoe extrapolation_holdout, {law_name} law, {len(runs)} runs, "
        f"{args.num_chains} chains x ({args.num_warmup} warmup + {args.num_samples} draws)")
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        ho = extrapolation_holdout(runs, law=law_name, **ho_kw, seed=args.seed,
                                   fit_kwargs={**draws, **fit_kw, "on_bad_fit": "warn", "progress": False})
    nuts_s = time.perf_counter() - t0
    log(f"{name}: bayesmoe done in {nuts_s:.1f} s")

    # the same split: the hold-out's own held rows of the same validated table
    table = validate_runs(runs, required=law.inputs + ("loss",), unit_checks=False)
    is_held = table.index.isin(ho.table.index)
    fitted, held = table.loc[~is_held], table.loc[ho.table.index]
    assert (len(fitted), len(held)) == (ho.summary["n_fit"], ho.summary["n_held"]), "split mismatch"
    assert np.allclose(held["loss"].to_numpy(float), ho.table["loss"].to_numpy(float))
    observed = held["loss"].to_numpy(dtype="float64")

    base = run_baseline(spec, fitted, held, num_starts=args.num_starts or spec.default_starts,
                        num_bootstrap=args.num_bootstrap, residual_draws=args.residual_draws,
                        huber_delta=args.huber_delta, seed=args.seed)
    log(f"{name}: baseline done in {base['wall_s']:.1f} s")

    common = {"case": name, "law": law_name, "n_fit": len(fitted), "n_held": len(held),
              "threshold_compute": ho.summary["threshold"], "seed": args.seed}
    post = ho.fit.posterior
    nuts_exp = {e: float(np.subtract(*np.quantile(np.asarray(post[e].values, dtype="float64").ravel(), [0.95, 0.05])))
                for e in spec.exponents}
    d = ho.fit.diagnostics
    rows = [{
        **common, "method": "bayesmoe NUTS (new run)", "wall_s": nuts_s,
        **scores(observed, ho.table["predicted"].to_numpy(float),
                 {lv: (ho.table[f"lo{int(lv * 100)}"].to_numpy(float), ho.table[f"hi{int(lv * 100)}"].to_numpy(float))
                  for lv in LEVELS}),
        **{f"width90_{e}": v for e, v in nuts_exp.items()},
        "config": f"{args.num_chains} chains x {args.num_warmup}/{args.num_samples}"
                  + "".join(f", {k}={v}" for k, v in fit_kw.items()),
        "divergences": d.divergences, "max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk,
        "sigma_median": float(post["sigma"].median()),
        "convergence_warnings": sum(issubclass(w.category, ConvergenceWarning) for w in caught),
    }]
    for label, method in (("params", "bootstrap, params only"), ("residual", "bootstrap + residual")):
        rows.append({
            **common, "method": method, "wall_s": base["wall_s"],
            "compile_s": base["compile_s"], "grid_s": base["grid_s"], "bootstrap_s": base["bootstrap_s"],
            "predict_s": base["predict_s"],
            **scores(observed, base["predicted"], {lv: base["intervals"][(label, lv)] for lv in LEVELS}),
            **{f"width90_{e}": v for e, v in base["exponent_width90"].items()},
            "config": f"Huber delta={args.huber_delta:g} on ln L, L-BFGS-B from {base['num_starts']} starts "
                      f"({base['grid_successes']} converged), {base['num_bootstrap']} refits"
                      + (f", {base['residual_draws']} residual draws per refit" if label == "residual" else ""),
            "bootstrap_failures": base["bootstrap_failures"],
            "failure_messages": "; ".join(f"{k}: {v}" for k, v in base["failure_messages"].items()),
            "median_refit_evaluations": base["median_refit_evaluations"],
            "best_objective": base["best_objective"],
            "best_fit": " ".join(f"{k}={v:.4g}" for k, v in base["best_fit"].items()),
        })
    return pd.DataFrame(rows)


def show(frame: pd.DataFrame) -> str:
    cols = ["method", "wall_s", "width50_median", "width90_median", "coverage_50", "coverage_90",
            "max_abs_error", "rmse"] + [c for c in frame.columns if c.startswith("width90_") and c != "width90_median"]
    t = frame[cols].set_index("method")
    t.columns = [c.replace("width90_", "w90 ").replace("_median", " med").replace("coverage_", "cov")
                 for c in t.columns]
    return t.to_string(float_format=lambda v: f"{v:.4g}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=["reference", "epoch"], choices=["reference", "epoch"])
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--num-warmup", type=int, default=None, help="default 1000 (200 with --quick)")
    parser.add_argument("--num-samples", type=int, default=None, help="default 1000 (200 with --quick)")
    parser.add_argument("--num-bootstrap", type=int, default=None, help="default 1000 (50 with --quick)")
    parser.add_argument("--num-starts", type=int, default=None,
                        help="grid starts (default: joint 64, chinchilla all 4500; 8 with --quick)")
    parser.add_argument("--residual-draws", type=int, default=10, help="residual draws per refit")
    parser.add_argument("--huber-delta", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run; writes no CSV unless --out")
    parser.add_argument("--out", type=Path, default=None, help=f"folder for bootstrap_<case>.csv (default {OUT})")
    args = parser.parse_args(argv)

    def pick(value, full, quick):
        return value if value is not None else (quick if args.quick else full)

    args.num_warmup = pick(args.num_warmup, 1000, 200)
    args.num_samples = pick(args.num_samples, 1000, 200)
    args.num_bootstrap = pick(args.num_bootstrap, 1000, 50)
    args.num_starts = pick(args.num_starts, None, 8)
    out = args.out if args.out is not None else (None if args.quick else OUT)

    pd.set_option("display.width", 250)
    t_all = time.perf_counter()
    frames = {}
    for name in args.cases:
        if name in rh.NEEDS_SHARED and not rh.SHARED.is_dir():
            print(f"skipping {name}: {rh.SHARED} is absent (third-party data, not shipped)", file=sys.stderr)
            continue
        frame = run_case(name, args)
        frames[name] = frame
        print(f"\n== {name}: {frame['law'].iloc[0]} law, fitted {frame['n_fit'].iloc[0]} runs at or below "
              f"the 80 % compute quantile, {frame['n_held'].iloc[0]} held out; widths and errors in nats of loss")
        print(show(frame))
        b = frame.iloc[1]
        print(f"baseline split: compile {b['compile_s']:.2f} s, grid {b['grid_s']:.1f} s, bootstrap "
              f"{b['bootstrap_s']:.1f} s, predict {b['predict_s']:.2f} s; failed refits {b['bootstrap_failures']}"
              f"; best fit {b['best_fit']}")
        n = frame.iloc[0]
        print(f"bayesmoe: {n['config']}; divergences {n['divergences']}, max R-hat {n['max_rhat']:.4f}, "
              f"min bulk ESS {n['min_ess_bulk']:.0f}, sigma {n['sigma_median']:.4f}", flush=True)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            frame.to_csv(out / f"bootstrap_{name}.csv", index=False)
            log(f"wrote {out / f'bootstrap_{name}.csv'}")
        jax.clear_caches()
    print(f"\nwhole run: {time.perf_counter() - t_all:.0f} s" + (" (quick: not the benchmark configuration)"
                                                              if args.quick else ""))
    return frames


if __name__ == "__main__":
    main()
