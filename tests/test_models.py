"""The plain model's share coordinates: exact priors, and no infeasible region."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer.util import log_density

from bayesmoe.laws import get_law
from bayesmoe.models import build_model, make_design, share_sites
from bayesmoe.priors import resolve_priors
from bayesmoe.testing import synthetic_runs


def _plain_model(law_name, seed=1):
    law = get_law(law_name)
    spec = resolve_priors(law, "literature")
    runs = synthetic_runs(law, noise_sd=0.01, seed=seed)
    design = make_design(runs.assign(group="one"), law)
    return law, spec, design, build_model(law, spec, design)


def _values(law, spec, log_centre, u):
    """Every latent site: shape parameters at their prior locations, sigma at 0.01."""
    values = {"log_loss_centre": log_centre, "sigma": 0.01}
    values.update(dict(zip(share_sites(law), u)))
    for p in law.shape_params:
        args = spec[p].args
        site = f"{p}_centred" if p in law.centred else p
        values[site] = args.get("loc", 0.0) if spec[p].dist != "lognormal" else float(np.exp(args["loc"]))
    return values


@pytest.mark.parametrize("law_name", ["joint", "fine_grained", "chinchilla", "sparsity"])
def test_share_coordinates_have_unit_jacobian(law_name):
    # The priors on c_rel and the scale levels are applied as given, with no Jacobian term; that
    # is right only if (log_loss_centre, log-ratios) -> (c_rel, levels) has |det| = 1.
    law, spec, design, model = _plain_model(law_name)
    outs = [f"{law.irreducible}_rel", *(f"{t.scale}_level" for t in law.terms)]

    def forward(z):
        values = _values(law, spec, z[0], z[1:])
        trace = handlers.trace(handlers.substitute(handlers.seed(model, 0), data=values)).get_trace()
        return jnp.stack([trace[o]["value"] for o in outs])

    rng = np.random.default_rng(0)
    for _ in range(3):  # a few points, including a lopsided split (c a small share)
        z = jnp.asarray(np.r_[np.log(2.5), rng.normal(0.0, 2.0, len(law.terms))], dtype=jnp.float32)
        det = jnp.linalg.det(jax.jacfwd(forward)(z))
        assert abs(float(det) - 1.0) < 1e-4, (z, det)


@pytest.mark.parametrize("law_name", ["joint", "fine_grained"])
def test_plain_model_has_no_infeasible_region(law_name):
    # Deriving c = L_best - sum of terms from sampled levels made every point where the terms
    # exceed L_best infeasible (log density -inf); with log-ratios c is positive everywhere,
    # including a split that gives c a share of e^-12 of the loss at the centre.
    law, spec, design, model = _plain_model(law_name)
    log_loss = jnp.asarray(design.log_loss, jnp.float32)
    for u in (0.0, 12.0, -12.0):
        values = _values(law, spec, design.log_loss_ref, [u] * len(law.terms))
        lp, _ = log_density(model, (), {"log_loss": log_loss}, values)
        assert np.isfinite(float(lp)), (u, lp)
