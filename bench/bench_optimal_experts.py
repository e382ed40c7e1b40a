"""Warm time of ``optimal_experts`` over 50 budgets × 4000 draws × 9 expert counts, on CPU.

Same run, same work, three ways:

1. bayesmoe: ``FitResult.optimal_experts`` (JAX, jitted, float64; the first call compiles and is
   reported separately, then the median of ``--repeats`` warm calls);
2. NumPy broadcasting of the same closed form (the fastest plain-Python baseline);
3. a SciPy loop, ``minimize_scalar`` on ln N along each budget line per (budget, draw, E): what
   most code does. It is timed on ``--scipy-problems`` random problems and projected linearly to
   all 1.8 M (running it whole takes minutes); its answers are checked against bayesmoe's.

The posterior is the shipped ``models/reference_joint.nc`` (4 chains × 1000 draws).
Target (issue 5): bayesmoe warm ≤ 100 ms.

    .venv/bin/python bench/bench_optimal_experts.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

import bayesmoe
from bayesmoe.optima import DEFAULT_EXPERTS

ROOT = Path(__file__).resolve().parents[1]


def numpy_closed_form(post, flops, experts):
    p = {k: post[k].values.reshape(-1)[None, :, None] for k in post.data_vars}
    e = np.asarray(experts, float)[None, None, :]
    f = flops[:, None, None]
    le = np.log(1 / (1 / (e - 1 + 1 / (1 / p["e_start"] - 1 / p["e_max"])) + 1 / p["e_max"]))
    ac, bc = -(p["alpha"] + p["gamma"] * le), -(p["beta"] + p["zeta"] * le)
    log_m, log_n = np.log(p["a"]) + p["delta"] * le, np.log(p["b"]) + p["omega"] * le
    n = np.exp((np.log(ac) + log_m - np.log(bc) - log_n) / (ac + bc) + bc / (ac + bc) * np.log(f / 6))
    d = f / 6 / n
    loss = np.exp(log_m) * n ** -ac + np.exp(log_n) * d ** -bc + p["c"]
    return n, d, loss


def scipy_problem(p, flops, e):
    le = np.log(1 / (1 / (e - 1 + 1 / (1 / p["e_start"] - 1 / p["e_max"])) + 1 / p["e_max"]))

    def loss(log_n):
        n = np.exp(log_n)
        d = flops / 6 / n
        return (p["a"] * np.exp(p["delta"] * le) * n ** (p["alpha"] + p["gamma"] * le)
                + p["b"] * np.exp(p["omega"] * le) * d ** (p["beta"] + p["zeta"] * le) + p["c"])

    res = minimize_scalar(loss, bounds=(np.log(1e3), np.log(flops / 6)), method="bounded",
                          options={"xatol": 1e-10})
    return np.exp(res.x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "reference_joint.nc"))
    ap.add_argument("--budgets", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--scipy-problems", type=int, default=2000)
    args = ap.parse_args()

    result = bayesmoe.load(args.model)
    post = result.posterior[list(result.law.params)]
    flops = np.logspace(14, 24, args.budgets)
    experts = DEFAULT_EXPERTS
    n_draws = post.sizes["chain"] * post.sizes["draw"]
    problems = len(flops) * n_draws * len(experts)

    t0 = time.perf_counter()
    opt = result.optimal_experts(flops, experts=experts)
    first = time.perf_counter() - t0
    warm = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        opt = result.optimal_experts(flops, experts=experts)
        warm.append(time.perf_counter() - t0)

    np_times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        n_np, _, loss_np = numpy_closed_form(post, flops, experts)
        best = np.argmin(loss_np, axis=2)
        np_times.append(time.perf_counter() - t0)

    rng = np.random.default_rng(0)
    flat = {k: post[k].values.reshape(-1) for k in post.data_vars}
    picks = [(rng.integers(len(flops)), rng.integers(n_draws), rng.integers(len(experts)))
             for _ in range(args.scipy_problems)]
    t0 = time.perf_counter()
    n_sp = np.array([scipy_problem({k: v[j] for k, v in flat.items()}, flops[i], float(experts[k]))
                     for i, j, k in picks])
    sp_time = time.perf_counter() - t0
    n_bm = opt.dataset["n_active_at"].values.reshape(len(flops), len(experts), n_draws)
    n_ref = np.array([n_bm[i, k, j] for i, j, k in picks])
    sp_err = np.max(np.abs(np.log(n_sp / n_ref)))
    np_err = np.max(np.abs(np.log(np.moveaxis(n_np, 2, 1) / n_bm.reshape(len(flops), len(experts), n_draws))))
    agree = np.mean(opt.dataset["experts"].values.reshape(len(flops), -1) == np.asarray(experts)[best])

    print(f"optimal_experts: {len(flops)} budgets x {n_draws} draws x {len(experts)} expert counts = "
          f"{problems:,} problems, CPU\n")
    print(f"{'method':44s} {'time':>12s} {'per problem':>12s}")
    print(f"{'bayesmoe optimal_experts, first call (compile)':44s} {first * 1e3:10.0f} ms")
    print(f"{'bayesmoe optimal_experts, warm (median)':44s} {np.median(warm) * 1e3:10.1f} ms "
          f"{np.median(warm) / problems * 1e9:10.1f} ns")
    print(f"{'NumPy broadcasting, closed form (median)':44s} {np.median(np_times) * 1e3:10.1f} ms "
          f"{np.median(np_times) / problems * 1e9:10.1f} ns")
    per = sp_time / len(picks)
    print(f"{'SciPy minimize_scalar loop (projected)':44s} {per * problems:10.0f} s  {per * 1e6:10.0f} us "
          f"(timed on {len(picks)} problems)")
    print(f"\nagreement: max |ln N*| difference vs SciPy {sp_err:.2e}, vs NumPy {np_err:.2e}; "
          f"same E* as NumPy in {agree:.1%} of (budget, draw)")
    print(f"bayesmoe warm includes building the xarray result (summary-ready); target <= 100 ms: "
          f"{'met' if np.median(warm) <= 0.1 else 'NOT met'}")


if __name__ == "__main__":
    main()
