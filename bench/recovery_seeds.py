"""Recovery fits over seeds: divergences, diagnostics and 95 % misses per seed.

    python bench/recovery_seeds.py fine_grained --seeds 1 2 3 4 --num-warmup 1000 --num-samples 1000
    python bench/recovery_seeds.py sparsity --target-accept 0.8 --irreducible-prior '{"dist": "normal", "loc": -1.0, "scale": 0.7}'

Fits ``synthetic_runs(law, noise_sd=0.01, seed=SEED)`` (the tables of tests/test_fit.py) with
4 chains at fit seed 0, and prints per seed the wall time, divergences, max R-hat, min bulk and
tail ESS, which 95 % intervals miss the truth, and the irreducible loss's 2.5/50/97.5 %
quantiles. ``--target-accept`` defaults to the law's own (``Law.target_accept``). The settings
in tests/test_fit.py and bayesmoe.laws were chosen with it.
"""

import argparse
import json
import time
import warnings

import numpyro

numpyro.set_host_device_count(4)  # one CPU device per chain, as tests/conftest.py

import numpy as np  # noqa: E402

import bayesmoe  # noqa: E402
from bayesmoe.testing import TRUTH, interval_contains, synthetic_runs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("law", choices=sorted(TRUTH))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--num-warmup", type=int, default=500)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--target-accept", type=float, default=None)
    parser.add_argument("--irreducible-prior", type=json.loads, default=None,
                        help="JSON prior for the irreducible loss's c_rel site (default: literature)")
    args = parser.parse_args()
    law = bayesmoe.laws.get_law(args.law)
    irr = law.irreducible
    priors = {f"{irr}_rel": args.irreducible_prior} if args.irreducible_prior else "literature"
    warnings.simplefilter("ignore")
    for seed in args.seeds:
        runs = synthetic_runs(law, noise_sd=0.01, seed=seed)
        t0 = time.perf_counter()
        r = bayesmoe.fit(runs, law=law, priors=priors, num_chains=4, num_warmup=args.num_warmup,
                         num_samples=args.num_samples, seed=0, target_accept=args.target_accept,
                         progress=False, on_bad_fit="warn")
        d = r.diagnostics
        names = [p for p in law.params if p != "e_max"]  # as tests/test_fit.py
        miss = interval_contains(r, TRUTH[law.name], prob=0.95, names=names)
        q = np.quantile(r.posterior[irr].values, [0.025, 0.5, 0.975]).round(3)
        print(f"{law.name} target_accept={r.tree.attrs['target_accept']} warmup={args.num_warmup} "
              f"draws={args.num_samples} seed={seed}: {time.perf_counter() - t0:.0f} s, "
              f"divergences {d.divergences}, R-hat {d.max_rhat:.3f}, bulk ESS {d.min_ess_bulk:.0f}, "
              f"tail ESS {d.min_ess_tail:.0f}, ok {d.ok}, misses {sorted(miss)}; {irr} {q} "
              f"(truth {TRUTH[law.name][irr]})", flush=True)


if __name__ == "__main__":
    main()
