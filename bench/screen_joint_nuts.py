"""Screen NUTS settings for the joint law (NUTS only, no baseline).

    python bench/screen_joint_nuts.py --seeds 0 1 2 --settings 1000:0.8 1500:0.8 1500:0.9
    python bench/screen_joint_nuts.py --table reference --seeds 0 1 2 3 --settings 1000:0.8 1000:0.9

Each setting is WARMUP:TARGET_ACCEPT. ``--table grid`` (the default) is the table of
bench_joint_nuts_vs_bootstrap.py (the paper's 270-run design, Table 3 losses at the paper's RMSE,
simulated with the same seed the fit uses); ``--table reference`` is the README's main job (the
shipped ``data/reference_runs.csv``, G = 1, the held-out 289k runs left out, 4 chains as ``fit``'s
default). The extrapolation-error term is off (``discrepancy="none"``): its backtests are separate
fits and do not change the main fit's draws. Prints one line per (setting, seed): min bulk / tail
ESS, max R-hat, divergences, mean leapfrog steps, wall.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpyro  # noqa: E402

numpyro.set_host_device_count(4)

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import bayesmoe  # noqa: E402
from bench_joint_nuts_vs_bootstrap import DEFAULT_DATA, NUM_CHAINS, REPO, load_runs  # noqa: E402


def reference_runs():
    """The README main job's table: the shipped runs at G = 1 without the held-out 289k runs."""
    import pandas as pd

    runs = pd.read_csv(REPO / "data" / "reference_runs.csv")
    return runs.query("granularity == 1 and split != 'heldout'").reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--settings", nargs="+", default=["1500:0.8"])
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--table", choices=("grid", "reference"), default="grid")
    parser.add_argument("--slope-power", type=float, default=None)
    parser.add_argument("--exponents", action="store_true", help="the exponent coordinates (before session 20)")
    parser.add_argument("--start-candidates", type=int, default=None, help="default: the law's")
    args = parser.parse_args()
    law = bayesmoe.get_law("joint")
    slopes = law.own_exponents  # α, δ, β, ω as their terms' slopes
    if args.exponents:
        law = dataclasses.replace(law, own_exponents={}, slope_power=1.0)
    if args.slope_power is not None:
        law = dataclasses.replace(law, own_exponents=slopes, slope_power=args.slope_power)
    for setting in args.settings:
        warmup, target = setting.split(":")
        for seed in args.seeds:
            runs = load_runs(DEFAULT_DATA, seed) if args.table == "grid" else reference_runs()
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = bayesmoe.fit(runs, law=law, num_chains=NUM_CHAINS, num_warmup=int(warmup),
                                 num_samples=args.num_samples, seed=seed, target_accept=float(target),
                                 progress=False, on_bad_fit="warn", discrepancy="none",
                                 max_extensions=0,  # each setting judged on the same number of draws
                                 start_candidates=args.start_candidates)
            d = r.diagnostics
            steps = json.loads(r.tree.attrs["timings"])["mean_leapfrog_steps"]
            print(f"warmup {warmup} target {target} seed {seed}: bulk ESS {d.min_ess_bulk:.0f} tail ESS "
                  f"{d.min_ess_tail:.0f} R-hat {d.max_rhat:.4f} divergences {d.divergences} "
                  f"steps {steps:.1f} wall {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
