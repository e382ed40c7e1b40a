"""Recovery fits over seeds: divergences, diagnostics, 95 % misses. Usage: bench/recovery_seeds.py LAW PRIOR_JSON_OR_EMPTY TARGET_ACCEPT SEEDS [NUM_SAMPLES [NUM_WARMUP]]."""
import sys, time, json, warnings
import numpyro
numpyro.set_host_device_count(4)  # one CPU device per chain, as tests/conftest.py
import numpy as np
import bayesmoe
from bayesmoe.testing import TRUTH, synthetic_runs, interval_contains
warnings.simplefilter("ignore")
law = sys.argv[1]; prior = json.loads(sys.argv[2]) if sys.argv[2] else None; ta = float(sys.argv[3]); seeds = [int(s) for s in sys.argv[4].split(",")]
ns = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
nw = int(sys.argv[6]) if len(sys.argv) > 6 else 500
for seed in seeds:
    runs = synthetic_runs(law, noise_sd=0.01, seed=seed)
    t = time.time()
    pri = {f"{bayesmoe.laws.get_law(law).irreducible}_rel": prior} if prior else "literature"
    r = bayesmoe.fit(runs, law=law, priors=pri, num_chains=4, num_warmup=nw, num_samples=ns, seed=0,
                     progress=False, on_bad_fit="warn", target_accept=ta)
    d = r.diagnostics
    names = [p for p in r.law.params if p not in ("e_max",)]
    miss = interval_contains(r, TRUTH[law], prob=0.95, names=names)
    irr = r.law.irreducible
    q = np.quantile(r.posterior[irr].values, [0.025, 0.5, 0.975])
    print(f"{law} prior={prior} ta={ta} warmup={nw} draws={ns} seed={seed} t={time.time()-t:.0f}s div={d.divergences} "
          f"rhat={d.max_rhat:.3f} ess={d.min_ess_bulk:.0f} tail={d.min_ess_tail:.0f} ok={d.ok} "
          f"miss={miss} {irr}: {q.round(3)} truth {TRUTH[law][irr]}", flush=True)
