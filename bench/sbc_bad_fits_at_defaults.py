"""Are SBC's bad fits bad at ``fit``'s defaults, or only at SBC's shorter chains?

SBC (``bayesmoe validate sbc``) fits each data set with 4 chains × 500 warmup / 250 draws, a
quarter of ``fit``'s default 1000 / 1000; R-hat from 250 draws per chain is noisier and slower to
settle. This refits, at ``fit``'s defaults (4 × 1000/1000, the law's target_accept; the same
batched program as SBC), every data set of an SBC CSV that had divergences or R-hat > 1.05, plus a
random sample of the others (``--good``, fixed seed), regenerating each table exactly as
``bayesmoe.validation.sbc`` drew it. It prints each data set at both settings and an estimate of
the bad-fit share at the defaults: (bad among the re-fitted bad ones) + (share bad among the
re-fitted good ones) × (the number of good ones).

    PYTHONPATH=. .venv/bin/python bench/sbc_bad_fits_at_defaults.py docs/validation/sbc_joint_current.csv --good 18
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import time

import jax
import numpy as np
import pandas as pd

from bayesmoe.fitting import _site_layout
from bayesmoe.inference import diagnose_arrays
from bayesmoe.laws import get_law
from bayesmoe.priors import resolve_priors, spec_to_json
from bayesmoe.testing import design_grid
from bayesmoe.validation import _reference, batch_model, draw_from_prior, fit_batch, sbc, sbc_failed_fits


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", help="an SBC CSV written by bayesmoe validate sbc (current format)")
    ap.add_argument("--good", type=int, default=18, help="clean data sets to re-fit as a control")
    ap.add_argument("--num-warmup", type=int, default=1000)
    ap.add_argument("--num-samples", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=10)
    ap.add_argument("--out", default=None, help="also write the per-data-set table here")
    a = ap.parse_args(argv)

    table_in = pd.read_csv(a.csv)
    (law_name,), (n_runs,), (seed,), (target_accept,) = (table_in[c].unique() for c in
                                                         ("law", "n_runs", "seed", "target_accept"))
    law = get_law(law_name)
    # the priors the CSV's data sets were drawn from: today's, or those before the noise trend
    # (bayesmoe.noise, session 21), told apart by the prior hash every row records
    (sha,) = table_in["prior_sha256"].unique()
    specs = [resolve_priors(law, "literature"), resolve_priors(law, {"sigma_trend": 0})]
    spec = next((sp for sp in specs if hashlib.sha256(spec_to_json(sp).encode()).hexdigest()[:16] == sha), None)
    if spec is None:
        raise SystemExit(f"{a.csv} was drawn from priors (hash {sha}) that are neither today's literature priors "
                         "nor those without the noise trend")
    recorded = table_in.set_index("dataset")
    recorded["bad"] = sbc_failed_fits(recorded)  # the CLI's "fits with divergences or R-hat > 1.05"
    bad = recorded["bad"]
    rng = np.random.default_rng(0)
    good_ids = sorted(rng.choice(bad.index[~bad].to_numpy(), size=min(a.good, int((~bad).sum())),
                                 replace=False).tolist())
    ids = sorted(bad.index[bad].astype(int).tolist()) + good_ids
    design_df = design_grid(law, n_runs=int(n_runs), seed=int(seed))
    defaults = inspect.signature(sbc).parameters  # the loss reference points sbc() drew with
    reference = _reference(law, design_df, defaults["loss_ref"].default, defaults["loss_min"].default)
    model, design = batch_model(law, spec, design_df, reference)
    sampled, _ = _site_layout(model, design)
    rows = []
    t0 = time.perf_counter()
    for start in range(0, len(ids), a.batch_size):
        batch = ids[start:start + a.batch_size]
        losses = []
        for i in batch:
            truth, table = draw_from_prior(law, spec, design_df, reference, seed=10_000 * int(seed) + i)
            row = recorded.loc[i]
            # the same table SBC fitted: its recorded truth must come back
            assert all(np.isclose(truth[n], row[f"truth_{n}"], rtol=1e-6) for n in truth
                       if f"truth_{n}" in row), f"data set {i} is not the table SBC drew"
            losses.append(np.log(table["loss"].to_numpy(dtype="float64")))
        fitted = fit_batch(
            law, model, design_df, np.stack(losses), num_chains=4, num_warmup=a.num_warmup,
            num_samples=a.num_samples, seed=10_000 * int(seed) + batch[0], target_accept=float(target_accept))
        post, diverging, steps, started, restarted = (fitted.posterior, fitted.diverging, fitted.n_steps,
                                                      fitted.started, fitted.restarted)
        for b, i in enumerate(batch):
            d = diagnose_arrays({n: v[b] for n, v in post.items()}, diverging[b], sampled)
            old = recorded.loc[i]
            rows.append({"dataset": i, "was_bad": bool(old["bad"]),
                         "sbc_divergences": int(old["divergences"]), "sbc_max_rhat": float(old["max_rhat"]),
                         "divergences": d.divergences, "max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk,
                         "started": bool(started[b].all()), "restarted_chains": int(restarted[b].sum()),
                         "steps": float(steps[b].mean())})
        jax.clear_caches()
        print(f"{len(rows)} of {len(ids)} data sets, {time.perf_counter() - t0:.0f} s", flush=True)
    t = pd.DataFrame(rows)
    t["bad"] = sbc_failed_fits(t)
    t["passes_fit_checks"] = (t["divergences"] == 0) & (t["max_rhat"] < 1.01) & (t["min_ess_bulk"] >= 400)
    if a.out:
        t.to_csv(a.out, index=False)
    print(t.round(4).to_string(index=False))
    was_bad, was_good = t[t["was_bad"]], t[~t["was_bad"]]
    n_good_total = int((~bad).sum())
    share_good = was_good["bad"].mean() if len(was_good) else float("nan")
    est = was_bad["bad"].sum() + share_good * n_good_total
    print(f"\n{law.name}, target_accept {target_accept}, {a.num_warmup}/{a.num_samples}: "
          f"of the {len(was_bad)} data sets bad at SBC's settings, {int(was_bad['bad'].sum())} are bad here "
          f"({int(was_bad['divergences'].gt(0).sum())} with divergences); of {len(was_good)} clean ones re-fitted, "
          f"{int(was_good['bad'].sum())} are bad here. Estimated bad-fit share at these settings: "
          f"{est:.1f} of {len(recorded)} ({est / len(recorded):.1%}).")
    print(f"pass fit's own checks (0 divergences, R-hat < 1.01, bulk ESS >= 400): "
          f"{int(was_bad['passes_fit_checks'].sum())} of the {len(was_bad)}, "
          f"{int(was_good['passes_fit_checks'].sum())} of the {len(was_good)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
