"""SBC fits one by one (``bayesmoe.fit`` per data set) against one vectorised batch.

The same K prior draws of a law (``bayesmoe.validation.draw_from_prior``, SBC's design and
reference points) are fitted twice, in one process, with the same model, priors and NUTS settings
(4 chains, dense mass matrix, target_accept 0.8):

* *one by one*: ``bayesmoe.fit(table, reference=...)`` per data set, chains in parallel on 4 host
  devices, as SBC ran before batching; every fit traces and compiles its own program;
* *batched*: ``bayesmoe.validation.fit_batch`` (``inference.run_nuts_batched``) on all K data sets × 4 chains at once, one
  program (``jax.vmap`` over NumPyro's functional NUTS), as ``bayesmoe.validation.sbc`` runs now.

Both walls include tracing and compilation. Agreement: per parameter, the mean over data sets of
|median(batched) − median(one by one)| divided by the posterior sd (Monte Carlo error of a median
from ~1000 autocorrelated draws is a few hundredths of an sd).

    .venv/bin/python bench/bench_sbc_batched.py                 # chinchilla, 10 data sets
    .venv/bin/python bench/bench_sbc_batched.py --law joint --datasets 10 --runs 120

The host is shared and noisy: compare the two rows of one run only.
"""

from __future__ import annotations

import numpyro

numpyro.set_host_device_count(4)  # one CPU device per chain for the one-by-one fits

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import bayesmoe  # noqa: E402
from bayesmoe.laws import get_law  # noqa: E402
from bayesmoe.priors import resolve_priors  # noqa: E402
from bayesmoe.testing import design_grid  # noqa: E402
from bayesmoe.validation import _reference, batch_model, draw_from_prior, fit_batch  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--law", default="chinchilla")
    ap.add_argument("--datasets", type=int, default=10)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--num-warmup", type=int, default=500)
    ap.add_argument("--num-samples", type=int, default=250)
    args = ap.parse_args(argv)

    law = get_law(args.law)
    spec = resolve_priors(law, "literature")
    design_df = design_grid(law, n_runs=args.runs, seed=0)
    ref = _reference(law, design_df, 3.0, 2.2)
    draws = [draw_from_prior(law, spec, design_df, ref, seed=i) for i in range(args.datasets)]
    names = [*law.params, "sigma"]

    t0 = time.perf_counter()
    single = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, (_, table) in enumerate(draws):
            r = bayesmoe.fit(table, law=law, priors=spec, num_warmup=args.num_warmup, num_samples=args.num_samples,
                             seed=i, progress=False, on_bad_fit="warn", unit_checks=False, reference=ref)
            single.append({n: r.posterior[n].values.ravel() for n in names if n in r.posterior})
    t_single = time.perf_counter() - t0

    t0 = time.perf_counter()
    model, _ = batch_model(law, spec, design_df, ref)
    log_loss = np.stack([np.log(t["loss"].to_numpy()) for _, t in draws])
    post, _, _, _ = fit_batch(law, model, design_df, log_loss, num_chains=4, num_warmup=args.num_warmup,
                              num_samples=args.num_samples, seed=0, target_accept=0.8)
    t_batch = time.perf_counter() - t0

    k = args.datasets
    print(f"{law.name}: {k} data sets x {args.runs} runs, 4 chains x ({args.num_warmup} + {args.num_samples})")
    print(pd.DataFrame({"wall s": [t_single, t_batch], "s per data set": [t_single / k, t_batch / k]},
                       index=["one by one (fit)", "batched (vmap)"]).round(2).to_string())
    print(f"speed-up: {t_single / t_batch:.1f}x")
    rows = {}
    for n in single[0]:
        d = [abs(np.median(post[n][b]) - np.median(single[b][n])) / np.std(single[b][n]) for b in range(k)]
        rows[n] = np.mean(d)
    print("mean |median difference| / posterior sd:", {n: round(float(v), 3) for n, v in rows.items()})


if __name__ == "__main__":
    main()
