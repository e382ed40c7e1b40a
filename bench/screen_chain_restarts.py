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

from __future__ import annotations

import inspect
import sys
import warnings

import numpyro

numpyro.set_host_device_count(4)  # one CPU device per chain, before JAX starts

import jax  # noqa: E402
import numpy as np  # noqa: E402
from numpyro.infer import MCMC  # noqa: E402

import bayesmoe  # noqa: E402
import bayesmoe.inference  # noqa: E402
from bayesmoe.laws import get_law  # noqa: E402
from bayesmoe.priors import resolve_priors  # noqa: E402
from bayesmoe.testing import design_grid  # noqa: E402
from bayesmoe.validation import _reference, draw_from_prior, sbc  # noqa: E402


def restarting_mcmc(delta: float) -> type[MCMC]:
    """NumPyro's MCMC, but a chain more than ``delta`` nats above the best after warmup restarts
    from the best chain's state (its own random key kept)."""

    class RestartMCMC(MCMC):
        def run(self, rng_key, *args, **kwargs):
            state = self._warmup_state
            if state is None:  # warmup itself runs through run()
                return super().run(rng_key, *args, **kwargs)
            energy = np.asarray(state.potential_energy)
            best = int(np.argmin(energy))
            stuck = energy > energy[best] + delta
            print("  potential energy after warmup:", np.round(energy, 1), "restart:", np.flatnonzero(stuck).tolist())
            if stuck.any():
                source = np.where(stuck, best, np.arange(len(energy)))
                keys = np.asarray(jax.device_get(state.rng_key))
                # on the host: pmap re-shards what it is given (device arrays keep their sharding)
                per_chain = lambda x: np.ndim(x) >= 1 and np.shape(x)[0] == len(energy)  # noqa: E731
                state = jax.tree.map(lambda x: np.asarray(x)[source] if per_chain(x) else x, jax.device_get(state))
                self._warmup_state = state._replace(rng_key=keys)
            return super().run(rng_key, *args, **kwargs)

    return RestartMCMC


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    delta, datasets = float(args[0]), [int(i) for i in args[1:]]
    bayesmoe.inference.MCMC = restarting_mcmc(delta)  # the experiment: fit's own sampler, patched
    law = get_law("joint")
    spec = resolve_priors(law, "literature")
    design_df = design_grid(law, n_runs=120, seed=0)
    defaults = inspect.signature(sbc).parameters  # the loss reference points SBC drew with
    ref = _reference(law, design_df, defaults["loss_ref"].default, defaults["loss_min"].default)
    for i in datasets:
        _, table = draw_from_prior(law, spec, design_df, ref, seed=i)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = bayesmoe.fit(table, law=law, priors=spec, num_warmup=1000, num_samples=1000, seed=i, progress=False,
                             on_bad_fit="warn", unit_checks=False, reference=ref, discrepancy="none")
        d = r.diagnostics
        print(i, f"R-hat {d.max_rhat:.3f} ESS {d.min_ess_bulk:.0f} div {d.divergences}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
