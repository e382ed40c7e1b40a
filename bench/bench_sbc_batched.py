"""SBC fits one by one (``bayesmoe.fit`` per data set) against one vectorised batch.

The same K prior draws of a law (``bayesmoe.validation.draw_from_prior``, SBC's design and
reference points) are fitted twice, in one process, with the same model, priors and NUTS settings
(4 chains, dense mass matrix, the law's own ``target_accept`` as ``fit`` and ``sbc`` use it, or
``--target-accept``):

* *one by one*: ``bayesmoe.fit(table, reference=...)`` per data set, chains in parallel on 4 host
  devices, as SBC ran before batching; every fit traces and compiles its own program;
* *batched*: ``bayesmoe.validation.fit_batch`` (``inference.run_nuts_batched``) on all K data sets × 4 chains at once, one
  program (``jax.vmap`` over NumPyro's functional NUTS, ``pmap``-ed over one shard per CPU core where there
  are several host devices), as ``bayesmoe.validation.sbc`` runs now.

Both walls include tracing and compilation. Agreement, per parameter and per quantile (10, 50 and
90 %): the mean and the largest over data sets of |q(batched) − q(one by one)| divided by the
posterior sd (the scales a, b, ... on the log scale). The two are different chains (different
keys), so they differ by Monte Carlo error: for a quantile from ~1000 autocorrelated draws per
side (ESS a few hundred), about 0.05-0.1 sd for the median and more in the tails. Divergences:
per data set, one by one and batched, side by side (the same geometry should give the same
pattern of zero and non-zero counts, not equal counts).

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
    ap.add_argument("--target-accept", type=float, default=None, help="default: the law's own")
    args = ap.parse_args(argv)

    law = get_law(args.law)
    target_accept = law.target_accept if args.target_accept is None else args.target_accept
    spec = resolve_priors(law, "literature")
    design_df = design_grid(law, n_runs=args.runs, seed=0)
    ref = _reference(law, design_df, 3.0, 2.2)
    draws = [draw_from_prior(law, spec, design_df, ref, seed=i) for i in range(args.datasets)]
    names = [*law.params, "sigma"]

    t0 = time.perf_counter()
    single, single_div = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, (_, table) in enumerate(draws):
            r = bayesmoe.fit(table, law=law, priors=spec, num_warmup=args.num_warmup, num_samples=args.num_samples,
                             seed=i, progress=False, on_bad_fit="warn", unit_checks=False, reference=ref,
                             target_accept=target_accept, discrepancy="none",
                             max_extensions=0)  # as many draws as the batched sampler's
            single_div.append(int(r.diagnostics.divergences))
            single.append({n: r.posterior[n].values.ravel() for n in names if n in r.posterior})
    t_single = time.perf_counter() - t0

    t0 = time.perf_counter()
    model, _ = batch_model(law, spec, design_df, ref)
    log_loss = np.stack([np.log(t["loss"].to_numpy()) for _, t in draws])
    fitted = fit_batch(law, model, design_df, log_loss, num_chains=4, num_warmup=args.num_warmup,
                       num_samples=args.num_samples, seed=0, target_accept=target_accept)
    post, diverging = fitted.posterior, fitted.diverging
    t_batch = time.perf_counter() - t0

    k = args.datasets
    print(f"{law.name}: {k} data sets x {args.runs} runs, 4 chains x ({args.num_warmup} + {args.num_samples}), "
          f"target_accept {target_accept}")
    print(pd.DataFrame({"wall s": [t_single, t_batch], "s per data set": [t_single / k, t_batch / k]},
                       index=["one by one (fit)", "batched (fit_batch)"]).round(2).to_string())
    print(f"speed-up: {t_single / t_batch:.1f}x")
    rows = []
    for n in single[0]:
        # scales (a, b, ...) on the log scale: their lognormal-like tails make the sd of the raw
        # draws, and so any quantile difference in its units, a matter of a few extreme draws
        f = np.log if n in law.scales else (lambda v: v)
        for q in (0.1, 0.5, 0.9):
            d = [abs(np.quantile(f(post[n][b]), q) - np.quantile(f(single[b][n]), q)) / np.std(f(single[b][n]))
                 for b in range(k)]
            rows.append({"parameter": n, "quantile": q, "mean |diff| / sd": np.mean(d), "max |diff| / sd": np.max(d)})
    table = pd.DataFrame(rows).pivot(index="parameter", columns="quantile")
    print("|q(batched) - q(one by one)| / posterior sd, over data sets (scales as ln):")
    print(table.round(3).to_string())
    batched_div = np.asarray(diverging).reshape(k, -1).sum(axis=1)
    print(pd.DataFrame({"one by one": single_div, "batched": batched_div},
                       index=pd.Index(range(k), name="data set")).T.to_string())
    print(f"divergent fits: one by one {sum(d > 0 for d in single_div)} of {k}, "
          f"batched {int((batched_div > 0).sum())} of {k}")


if __name__ == "__main__":
    main()
