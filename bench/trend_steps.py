"""Where does the noise trend's sampler cost come from? Leapfrog steps of the README table's fit.

    PYTHONPATH=. .venv/bin/python bench/trend_steps.py                 # seeds 0 and 1, about 4 minutes
    PYTHONPATH=. .venv/bin/python bench/trend_steps.py --seeds 0 --eta -0.4

The README main job's runs (shipped table, G = 1, without the held-out 289k runs), joint law at
``fit``'s defaults (4 chains × 1000/1000; the extrapolation term from its prior, which does not
touch the sampler), with η (``sigma_trend``) sampled (the default), removed (``0``: one σ for
every run) and fixed at each ``--eta`` value (not sampled). Mean leapfrog steps per iteration,
per chain and overall: if fixing η at its posterior median costs as many steps as sampling it,
the cost is the geometry that heteroscedastic weights give the law's parameters, not η's own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpyro

numpyro.set_host_device_count(4)  # one CPU device per chain, before JAX starts

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import bayesmoe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--eta", nargs="+", type=float, default=[-0.4, -0.2], help="fixed values of η to try")
    args = ap.parse_args(argv)
    runs = pd.read_csv(ROOT / "data" / "reference_runs.csv").query("granularity == 1 and split != 'heldout'")
    models = {"η sampled (default)": None, "no trend (η = 0)": {"sigma_trend": 0}}
    models.update({f"η fixed at {eta:g}": {"sigma_trend": eta} for eta in args.eta})
    rows = []
    for label, priors in models.items():
        for seed in args.seeds:
            result = bayesmoe.fit(runs, law="joint", seed=seed, progress=False, discrepancy="prior",
                                  on_bad_fit="warn", **({"priors": priors} if priors is not None else {}))
            steps = np.asarray(result.tree["sample_stats"]["n_steps"], dtype=float)
            eta = (f"{float(result.posterior['sigma_trend'].median()):.2f}"
                   if "sigma_trend" in result.sampled_sites else "-")
            rows.append({"model": label, "seed": seed, "mean steps": round(steps.mean(), 1),
                         "per chain": " ".join(f"{s:.0f}" for s in steps.mean(axis=1)),
                         "η median": eta, "diagnostics": "ok" if result.diagnostics.ok else "failed"})
            print(rows[-1], flush=True)
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
