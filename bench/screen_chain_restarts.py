"""Experiment (not in the package): restart chains stuck in a local mode after warmup.

Joint-law SBC data sets whose fits stay bad at fit's defaults (bench/sbc_bad_fits_at_defaults.py)
mostly have one or three of four chains in a second mode 15-400 nats worse. This wraps NumPyro's
MCMC so that, after warmup and before sampling, every chain whose potential energy lies more than
DELTA nats above the best chain's restarts from the best chain's state (position, step size, mass
matrix; its own random key), then fits each given SBC data set (4 x 1000/1000, seed = the data
set's number, the joint law's target_accept) and prints the energies, the restarts and the
diagnostics.

    PYTHONPATH=. .venv/bin/python bench/screen_chain_restarts.py 10 25 3 33

Measured 2026-12-02 at DELTA = 10 on the 18 data sets of
docs/validation/sbc_joint_current_at_defaults.csv that stay bad: docs/validation.md, "Per-law
target_accept from SBC and real tables".
"""
import sys, warnings
import numpyro; numpyro.set_host_device_count(4)
import jax, numpy as np, bayesmoe
import bayesmoe.inference as inf
from numpyro.infer import MCMC
from bayesmoe.laws import get_law
from bayesmoe.priors import resolve_priors
from bayesmoe.testing import design_grid
from bayesmoe.validation import _reference, draw_from_prior
DELTA = float(sys.argv[1])
class RestartMCMC(MCMC):
    def run(self, rng_key, *args, **kwargs):
        st = self._warmup_state
        if st is None:
            return super().run(rng_key, *args, **kwargs)
        pe = np.asarray(st.potential_energy)
        best = int(np.argmin(pe)); stuck = pe > pe[best] + DELTA
        print("  potential energy after warmup:", np.round(pe, 1), "restart:", np.flatnonzero(stuck).tolist())
        if stuck.any():
            idx = np.where(stuck, best, np.arange(len(pe)))
            keys = st.rng_key
            st = jax.device_get(st)
            st = jax.tree.map(lambda x: np.asarray(x)[idx] if (hasattr(x, "shape") and np.ndim(x) >= 1 and np.shape(x)[0] == len(pe)) else x, st)
            self._warmup_state = st._replace(rng_key=np.asarray(jax.device_get(keys)))
        return super().run(rng_key, *args, **kwargs)
inf.MCMC = RestartMCMC
law = get_law("joint"); spec = resolve_priors(law, "literature")
design_df = design_grid(law, n_runs=120, seed=0); ref = _reference(law, design_df, 3.0, 2.2)
for i in map(int, sys.argv[2:]):
    truth, table = draw_from_prior(law, spec, design_df, ref, seed=i)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = bayesmoe.fit(table, law=law, priors=spec, num_warmup=1000, num_samples=1000, seed=i, progress=False,
                         on_bad_fit="warn", unit_checks=False, reference=ref, discrepancy="none")
    d = r.diagnostics
    print(i, f"R-hat {d.max_rhat:.3f} ESS {d.min_ess_bulk:.0f} div {d.divergences}", flush=True)
