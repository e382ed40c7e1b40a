"""bayesmoe.inference: starting points, stuck sites, the advice of a failed fit. Toy models, no law."""

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import bayesmoe
from bayesmoe.inference import Diagnostics, _start, convergence_message, diagnose_arrays, run_nuts
from bayesmoe.laws import get_law
from bayesmoe.models import describe_site

TINY = dict(num_chains=2, num_warmup=30, num_samples=30, seed=0, target_accept=0.8, progress=False,
            coords={"run": np.arange(3)})
Y = {"log_loss": jnp.asarray([1.6, 1.5, 1.55])}


def walled_model(log_loss=None):
    """Prior median of x is 0, where the density is zero: only x > 1 is allowed."""
    x = numpyro.sample("x", dist.Normal(0.0, 1.0))
    numpyro.factor("wall", jnp.where(x > 1.0, 0.0, -jnp.inf))
    with numpyro.plate("run", 3):
        numpyro.sample("log_loss", dist.Normal(x, 1.0), obs=log_loss)


def nowhere_model(log_loss=None):
    x = numpyro.sample("x", dist.Normal(0.0, 1.0))
    numpyro.factor("wall", -jnp.inf)
    with numpyro.plate("run", 3):
        numpyro.sample("log_loss", dist.Normal(x, 1.0), obs=log_loss)


def test_start_falls_back_to_uniform_draws_when_the_prior_median_has_zero_density():
    import jax

    from bayesmoe.inference import _prototype

    proto = _prototype(walled_model, (), Y, {})
    z, ok = _start(jax.random.PRNGKey(0), walled_model, (), Y, {}, proto)
    # the median start (x = 0) is infinite; the fallback's uniform draws in (-2, 2) found x > 1
    assert bool(ok) and float(z["x"]) > 1.0
    tree, _ = run_nuts(walled_model, model_kwargs=Y, **TINY)
    assert float(tree["posterior"]["x"].min()) > 1.0  # every chain started, and stayed, inside


def test_no_finite_start_raises_convergence_error():
    with pytest.raises(bayesmoe.ConvergenceError, match="no finite starting point for 2 of 2 chains") as info:
        run_nuts(nowhere_model, model_kwargs=Y, **TINY)
    assert info.value.result is None  # no draws to keep


def improper_model(log_loss=None):
    mu = numpyro.sample("mu", dist.ImproperUniform(dist.constraints.real, (), ()))
    with numpyro.plate("run", 3):
        numpyro.sample("log_loss", dist.Normal(mu, 0.1), obs=log_loss)


def test_improper_sites_start_apart_in_every_chain():
    import jax

    from bayesmoe.inference import _prototype

    values = {"mu": np.float32(1.55)}
    proto = _prototype(improper_model, (), Y, values)
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    starts = [float(_start(k, improper_model, (), Y, values, proto, {"mu": 0.05})[0]["mu"]) for k in keys]
    assert len(set(starts)) == 4 and all(abs(s - 1.55) <= 0.05 + 1e-6 for s in starts)
    plain = {float(_start(k, improper_model, (), Y, values, proto)[0]["mu"]) for k in keys}
    assert plain == {np.float32(1.55)}  # without a radius, the given value exactly


def test_a_sampled_site_stuck_at_one_value_in_every_chain_fails():
    rng = np.random.default_rng(0)
    no_div = np.zeros((4, 1000), bool)
    stuck = np.full((4, 1000), 0.3)  # zero spread overall: arviz-stats' R-hat and ESS skip nothing
    diag = diagnose_arrays({"alpha": stuck, "beta": rng.normal(size=(4, 1000))}, no_div, ["alpha", "beta"])
    assert not diag.ok and diag.max_rhat == np.inf and diag.min_ess_bulk == 0
    assert any("no movement" in p and "alpha" in p for p in diag.problems), diag.problems
    assert "beta" not in " ".join(diag.problems)


@pytest.mark.parametrize("site, words", [
    ("omega_centred_z", "ω (groups' offsets)"),
    ("alpha_centred", "α"),
    ("level_tau", "a, b (spread across groups)"),
    ("c_rel_z", "c (groups' offsets)"),
    ("c_rel_tau", "c (spread across groups)"),
    ("e_max", "E_max"),
    ("a_vs_c", "a vs c"),
    ("log_loss_centre", "a, b, c (expected loss"),
    ("alpha_centred_pop", "α (population value)"),
])
def test_sites_are_described_in_the_laws_words(site, words):
    assert describe_site(get_law("joint"), site).startswith(words)


def _diag(problems, divergences=0):
    return Diagnostics(max_rhat=1.05, min_ess_bulk=50.0, min_ess_tail=50.0, divergences=divergences,
                       num_draws=100, num_chains=4, problems=problems)


def test_advice_is_in_the_callers_words_and_never_repeats_what_the_fit_did():
    diag = _diag(["R-hat >= 1.01 for α (1.050)", "3 divergent transitions"], divergences=3)
    settings = {"num_warmup": 500, "num_samples": 300, "target_accept": 0.8}
    py = convergence_message(diag, "joint", settings=settings, n_groups=1, free_sites=["e_max"])
    assert "num_warmup=1000" in py and "num_samples=600" in py and "target_accept=0.95" in py
    assert "on_bad_fit='warn'" in py and "priors={'e_max': 290.4521}" in py and "'group' column" in py
    cli = convergence_message(diag, "joint", settings=settings, n_groups=1, free_sites=["e_max"], style="cli")
    assert "--num-warmup 1000" in cli and "--target-accept 0.95" in cli and "--on-bad-fit warn" in cli
    assert "--priors '{\"e_max\": 290.4521}'" in cli and "num_warmup=" not in cli
    # a fit already at 0.99, with groups and E_max fixed, is told none of those
    done = convergence_message(diag, "joint", settings={**settings, "target_accept": 0.99}, n_groups=3,
                               free_sites=["alpha"])
    assert "target_accept" not in done and "group' column" not in done and "e_max" not in done
    at95 = convergence_message(diag, "joint", settings={**settings, "target_accept": 0.95}, n_groups=1)
    assert "target_accept=0.99" in at95 and "target_accept=0.95" not in at95
