"""How often does a hierarchical fit of alike groups diverge at ``fit``'s defaults?

    PYTHONPATH=. .venv/bin/python bench/hier_alike_divergences.py                       # seeds 0-11, trend and not
    PYTHONPATH=. .venv/bin/python bench/hier_alike_divergences.py --seeds 0 1 2 5 7 8 --target-accept 0.995
    PYTHONPATH=. .venv/bin/python bench/hier_alike_divergences.py --seeds 0 1 2 5 7 8 --centre e a
    PYTHONPATH=. .venv/bin/python bench/hier_alike_divergences.py --seeds 0 --trend-only --priors '{"e_rel_tau": {"dist": "halfnormal", "scale": 0.02}}'

The table is the test suite's ``hier_alike`` (tests/conftest.py): the chinchilla law, five alike
setups of 60 runs at 1 % noise. Each seed is one ``bayesmoe.fit`` at the defaults (4 chains ×
1000/1000, target_accept 0.99 for several groups; the extrapolation term from its prior, as in
the tests), with the noise's trend in compute (the default) and, unless ``--trend-only``, without
it (``priors={"sigma_trend": 0}``). One line per fit: divergences, the diagnostics' problems
(where the divergences sit, :func:`bayesmoe.inference.divergence_tails`), seconds; then the
count of failed fits per model. docs/validation.md, "Alike groups", has the measured table.
"""

from __future__ import annotations

import argparse
import json
import time

import numpyro

numpyro.set_host_device_count(4)  # one CPU device per chain, before JAX starts

import bayesmoe  # noqa: E402
from bayesmoe.testing import TRUTH, synthetic_runs  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", nargs="+", type=int, default=list(range(12)))
    ap.add_argument("--target-accept", type=float, default=None, help="default: fit's (0.99 for several groups)")
    ap.add_argument("--centre", nargs="+", default=None, help="half-centred group offsets, e.g. e a")
    ap.add_argument("--trend-only", action="store_true", help="skip the fits without the noise trend")
    ap.add_argument("--priors", default=None,
                    help="a JSON object of prior overrides for every fit, e.g. a tighter spread: "
                         "'{\"e_rel_tau\": {\"dist\": \"halfnormal\", \"scale\": 0.02}}'")
    args = ap.parse_args(argv)
    groups = {f"g{i}": {} for i in range(5)}
    runs = synthetic_runs("chinchilla", TRUTH["chinchilla"], n_runs=60, noise_sd=0.01, seed=2, groups=groups)
    kw = dict(num_chains=4, num_warmup=1000, num_samples=1000, progress=False, on_bad_fit="warn",
              discrepancy="prior", target_accept=args.target_accept)
    if args.centre:
        kw["centre"] = tuple(args.centre)
    extra = json.loads(args.priors) if args.priors else {}
    models = {"trend": extra} if args.trend_only else {"trend": extra, "no trend": {**extra, "sigma_trend": 0}}
    failed = {m: [] for m in models}
    for model, priors in models.items():
        for seed in args.seeds:
            t0 = time.perf_counter()
            result = bayesmoe.fit(runs, law="chinchilla", seed=seed, **({"priors": priors} if priors else {}), **kw)
            diag = result.diagnostics
            print(f"{model:8s} seed {seed:2d}: {diag.divergences:3d} divergences, "
                  f"{'ok' if diag.ok else '; '.join(diag.problems)} ({time.perf_counter() - t0:.0f} s)", flush=True)
            if not diag.ok:
                failed[model].append(f"{seed} ({diag.divergences})")
    for model, seeds in failed.items():
        print(f"{model}: {len(seeds)} of {len(args.seeds)} fits failed: seeds (divergences) {', '.join(seeds) or '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
