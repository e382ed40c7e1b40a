"""The plain model's share and slope coordinates: exact priors, and no infeasible region."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer.util import log_density

from bayesmoe.laws import get_law
from bayesmoe.models import CENTREDNESS, _slope_sites, build_model, make_design, share_sites
from bayesmoe.priors import Prior, resolve_priors
from bayesmoe.testing import synthetic_runs


def _plain_model(law_name, seed=1):
    law = get_law(law_name)
    spec = resolve_priors(law, "literature")
    runs = synthetic_runs(law, noise_sd=0.01, seed=seed)
    design = make_design(runs.assign(group="one"), law)
    return law, spec, design, build_model(law, spec, design)


def _values(law, spec, log_centre, u):
    """Every latent site: shape parameters at their prior locations, sigma at 0.01 (no trend); the exponents
    the model samples as slopes (``_slope_sites``) given as their terms' slopes."""
    values = {"log_loss_centre": log_centre, "sigma": 0.01}
    if "sigma_trend" in spec:  # the noise's trend in compute (bayesmoe.noise): none
        values["sigma_trend"] = 0.0
    values.update(dict(zip(share_sites(law), u)))
    for p in law.shape_params:
        args = spec[p].args
        site = f"{p}_centred" if p in law.centred else p
        values[site] = args.get("loc", 0.0) if spec[p].dist != "lognormal" else float(np.exp(args["loc"]))
    share = _shares(u)
    for site, i in _slope_sites(law, spec).items():
        coord = f"{site}_centred" if site in law.centred else site
        values[f"{site}_slope"] = values.pop(coord) * share[i] ** law.slope_power
    return values


def _shares(u):
    """Each term's share of the loss at the data's centre (the irreducible loss's logit is 0)."""
    return jax.nn.softmax(jnp.concatenate([jnp.zeros(1), jnp.asarray(u, dtype=jnp.float32)]))[1:]


@pytest.mark.parametrize("law_name", ["joint", "chinchilla", *(pytest.param(n, marks=pytest.mark.extended)
                                                                for n in ("fine_grained", "sparsity"))])
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


@pytest.mark.parametrize("law_name,kappa", [("joint", 1.0), ("chinchilla", 1.0), ("joint", 0.5)])
def test_slope_coordinates_keep_the_exponents_prior(law_name, kappa):
    # An exponent sampled as its term's slope (exponent × share^κ) must keep its prior exactly:
    # the density in slope coordinates is the exponent's prior at slope / share^κ times
    # share^-κ. The same prior truncated far outside its mass (a bounded prior keeps the exponent
    # coordinate) gives the reference density at the same point; the two differ by exactly
    # -κ Σ ln share.
    # the joint law samples these four as slopes at κ = 0.5 (bayesmoe.laws), chinchilla none
    slopes = {"joint": {"alpha": "a", "beta": "b", "delta": "a", "omega": "b"},
              "chinchilla": {"alpha": "a", "beta": "b"}}[law_name]
    law = dataclasses.replace(get_law(law_name), own_exponents=slopes, slope_power=kappa)
    builtin = _slope_sites(get_law(law_name), resolve_priors(law, "literature"))
    assert set(builtin) == (set(slopes) if law_name == "joint" else set())
    law, spec, design, model = _plain_model(law)
    slopes = _slope_sites(law, spec)
    assert slopes and set(slopes) == set(law.own_exponents)
    wide = dict(spec)
    for site in slopes:
        wide[site] = Prior("truncnormal", {**spec[site].args, "low": -50.0, "high": 50.0})
    reference = build_model(law, wide, design)
    assert _slope_sites(law, wide) == {}
    log_loss = jnp.asarray(design.log_loss, jnp.float32)
    rng = np.random.default_rng(0)
    for _ in range(3):
        u = rng.normal(0.0, 1.5, len(law.terms))
        lp, _ = log_density(model, (), {"log_loss": log_loss}, _values(law, spec, design.log_loss_ref, u))
        lp_ref, _ = log_density(reference, (), {"log_loss": log_loss}, _values(law, wide, design.log_loss_ref, u))
        jacobian = -kappa * sum(float(jnp.log(_shares(u)[i])) for i in slopes.values())
        assert abs(float(lp) - float(lp_ref) - jacobian) < 1e-3, (u, float(lp), float(lp_ref), jacobian)


def test_centred_offsets_are_the_same_model_in_other_coordinates():
    # fitting._centred_spreads samples the irreducible loss's and the levels' group offsets as
    # w ~ N(0, τ^c), offset = τ^(1-c)·w, instead of τ·z with z ~ N(0, 1). Same model: at
    # w = τ^c·z every group's parameters are equal, and the log densities differ by exactly the
    # Jacobian |dw / dz| = τ^c per group and spread.
    law = get_law("chinchilla")
    spec = resolve_priors(law, "literature")
    runs = synthetic_runs(law, n_runs=20, noise_sd=0.02, seed=0,
                          groups={"a": {}, "b": {"e": 1.6}, "c": {"alpha": 0.4}})
    design = make_design(runs, law)
    spreads = ("e_rel_tau", "level_tau")
    plain = build_model(law, spec, design)
    centred = build_model(law, spec, design, centred_spreads=spreads)
    assert centred.centred_spreads == spreads and plain.centred_spreads == ()
    trace = handlers.trace(handlers.substitute(handlers.seed(plain, 3), data=plain.init_values)).get_trace()
    values = {k: v["value"] for k, v in trace.items() if v["type"] == "sample" and not v["is_observed"]}
    moved = dict(values)
    c = CENTREDNESS
    for base, tau in (("e_rel", "e_rel_tau"), ("level", "level_tau")):
        moved[f"{base}_offset_decentered"] = values[tau] ** c * moved.pop(f"{base}_z")
    log_loss = jnp.asarray(design.log_loss, jnp.float32)
    lp_plain, t_plain = log_density(plain, (), {"log_loss": log_loss}, values)
    lp_centred, t_centred = log_density(centred, (), {"log_loss": log_loss}, moved)
    for site in ("e", "a", "b", "alpha", "beta"):
        np.testing.assert_allclose(t_centred[site]["value"], t_plain[site]["value"], rtol=1e-5)
    jacobian = c * design.n_groups * (np.log(values["e_rel_tau"]) + np.log(values["level_tau"]))
    np.testing.assert_allclose(float(lp_centred), float(lp_plain) - jacobian, rtol=1e-5, atol=1e-3)
