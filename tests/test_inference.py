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
OBS = {"observed": Y}


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
    tree, _ = run_nuts(walled_model, model_args=(Y["log_loss"],), **OBS, **TINY)
    assert float(tree["posterior"]["x"].min()) > 1.0  # every chain started, and stayed, inside


def test_no_finite_start_raises_convergence_error():
    with pytest.raises(bayesmoe.ConvergenceError, match="no finite starting point for 2 of 2 chains") as info:
        run_nuts(nowhere_model, model_args=(Y["log_loss"],), **OBS, **TINY)
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
    # a hierarchical fit that mixed slowly and did not centre its offsets is told how, in its words
    grouped = dict(settings=settings, n_groups=3, centre=("c", "a"))
    assert "centre=('c', 'a')" in convergence_message(diag, "joint", **grouped)
    assert "--centre c a" in convergence_message(diag, "joint", style="cli", **grouped)
    assert "centre" not in convergence_message(diag, "joint", settings=settings, n_groups=3, centre=None)


def two_modes(log_w, log_loss=None):
    """x has modes at 0 and 20 (unit width, far apart: no chain crosses); the one at 20 holds
    e^log_w of the mass of the one at 0. The prior, symmetric about 10, starts chains on both sides."""
    x = numpyro.sample("x", dist.Normal(10.0, 12.0))
    unit = dist.Normal(0.0, 1.0)
    numpyro.factor("modes", jnp.logaddexp(unit.log_prob(x), log_w + unit.log_prob(x - 20.0)))
    with numpyro.plate("run", 3):
        numpyro.sample("log_loss", dist.Normal(0.0, 1.0), obs=log_loss)


MODES = dict(num_chains=4, num_warmup=300, num_samples=200, seed=6, target_accept=0.8, progress=False,
             coords={"run": np.arange(3)})


def test_restart_sources_compares_the_probability_mass_of_each_chains_mode():
    from bayesmoe.inference import RESTART_NATS, restart_sources

    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 1.0, (4, 200))
    # chain 2 sits 15 nats higher with the same covariance: its mode holds e^-15 of the mass
    source, gap = restart_sources(noise + np.array([[5.0], [5.2], [20.0], [4.9]]), np.zeros(4))
    assert source.tolist() == [0, 1, 3, 3] and abs(gap[2] - 15.1) < 0.5
    # chain 0 is 5 nats lower in energy but in a mode 1e-20 times the volume (log|Σ| 46 lower):
    # it is the one with little mass, and the others do not follow it
    source, gap = restart_sources(noise + np.array([[0.0], [5.0], [5.0], [5.0]]), np.array([-46.0, 0, 0, 0]))
    assert source.tolist() == [1, 1, 2, 3] and gap[0] > RESTART_NATS
    # a gap below 10 nats, or one the energies' noise cannot tell from 0, moves nothing
    assert restart_sources(noise + np.array([[0.0], [0.0], [9.0], [0.0]]), np.zeros(4))[0].tolist() == [0, 1, 2, 3]
    wide = rng.normal(0.0, 30.0, (4, 200)).cumsum(axis=1) / 10  # strongly autocorrelated, large spread
    source, gap = restart_sources(wide, np.zeros(4))
    assert (source == np.arange(4)).all() or (np.abs(gap[source != np.arange(4)]) > 20).all()
    # a chain with no finite energy restarts; without any finite chain nothing moves
    assert restart_sources(noise + np.array([[np.nan], [0.0], [0.0], [0.0]]), np.zeros(4))[0][0] != 0
    assert restart_sources(np.full((2, 10), np.nan), np.zeros(2))[0].tolist() == [0, 1]


def test_a_chain_in_a_negligible_mode_restarts_and_a_real_second_mode_is_kept():
    # e^-30 of the mass at x = 20: the chains that warmed up there continue from the best chain
    tree, timings = run_nuts(two_modes, model_args=(-30.0, Y["log_loss"]), **OBS, **MODES)
    assert timings["restarts"], "the seed puts no chain at x = 20; the test needs one"
    for r in timings["restarts"]:
        # Laplace is exact for two Gaussian modes of one width: the gap is the log mass ratio,
        # 30 nats, up to the MCSE of the late-warmup energies and the adapted variance (~0.1 each)
        assert abs(r["gap_nats"] - 30.0) < 1.0
    assert float(np.abs(tree["posterior"]["x"]).max()) < 6.0
    # the same start with equal masses: the second mode is half the posterior, so nothing moves
    # and R-hat shows the split
    tree, timings = run_nuts(two_modes, model_args=(0.0, Y["log_loss"]), **OBS, **MODES)
    assert timings["restarts"] == []
    assert float(tree["posterior"]["x"].max()) > 15.0 and float(tree["posterior"]["x"].min()) < 5.0


def two_basins(log_w, log_loss=None):
    """Narrow modes at x = 0 and x = −2.5, hundreds of nats apart (no chain crosses): the one at 0
    holds about e^(log_w + 3) of the other's mass, and its basin (x > −1.22 for log_w = −30) holds
    every prior-median start, since the prior is N(0, 1)."""
    x = numpyro.sample("x", dist.Normal(0.0, 1.0))
    narrow = dist.Normal(0.0, 0.05)
    numpyro.factor("modes", jnp.logaddexp(log_w + narrow.log_prob(x), narrow.log_prob(x + 2.5)))
    with numpyro.plate("run", 3):
        numpyro.sample("log_loss", dist.Normal(0.0, 1.0), obs=log_loss)


def test_a_start_chosen_among_descents_finds_the_basin_every_prior_median_start_misses():
    # Every chain warms up in the mode at 0, which holds e^-27 of the mass: they agree, so R-hat
    # passes and no restart has a better chain to copy. With 8 candidate starts per chain (its
    # median start and 7 uniform draws in (-2, 2), about 20 % of them in the better basin), each
    # chain misses that basin with probability 0.8^7 ≈ 0.2, and a chain that does is restarted.
    kw = dict(model_args=(-30.0, Y["log_loss"]), **OBS, **{**MODES, "num_warmup": 150, "num_samples": 50})
    plain, timings = run_nuts(two_basins, **kw)
    assert float(np.abs(plain["posterior"]["x"]).max()) < 0.5 and timings["restarts"] == []
    tree, _ = run_nuts(two_basins, start_candidates=8, **kw)
    assert float(np.abs(tree["posterior"]["x"] + 2.5).max()) < 0.5
    # one candidate is the prior-median start itself: the default's draws, bit for bit
    again, _ = run_nuts(two_basins, start_candidates=1, **kw)
    np.testing.assert_array_equal(again["posterior"]["x"], plain["posterior"]["x"])


def test_sampling_goes_on_with_the_same_chains_while_extend_asks_for_it():
    # extend sees every draw so far and asks for num_samples more per chain, at most
    # max_extensions times; the chains go on from where they stopped, so the first draws are
    # those of a run that was not extended, bit for bit
    from bayesmoe.inference import run_nuts_batched

    args = (jnp.asarray([0.0]), jnp.broadcast_to(Y["log_loss"], (1, 3)))
    kw = dict(init_values={}, num_chains=2, num_warmup=60, num_samples=40, seed=1, target_accept=0.8,
              vectorize=False)
    plain = run_nuts_batched(two_modes, args, **kw)
    seen = []

    def always(posterior, diverging):
        seen.append((posterior["x"].shape, diverging.shape))
        return True

    longer = run_nuts_batched(two_modes, args, extend=always, max_extensions=2, **kw)
    assert plain.extensions == 0 and longer.extensions == 2
    assert seen == [((1, 2, 40), (1, 2, 40)), ((1, 2, 80), (1, 2, 80))]  # not asked after the last
    assert longer.posterior["x"].shape == longer.n_steps.shape == longer.diverging.shape == (1, 2, 120)
    assert longer.log_likelihood == {}
    np.testing.assert_array_equal(longer.posterior["x"][..., :40], plain.posterior["x"])
    np.testing.assert_array_equal(longer.n_steps[..., :40], plain.n_steps)
    once = run_nuts_batched(two_modes, args, extend=lambda post, div: post["x"].shape[-1] < 80, max_extensions=5, **kw)
    assert once.extensions == 1
    np.testing.assert_array_equal(once.posterior["x"], longer.posterior["x"][..., :80])
    # run_nuts: one data set, plain (chain, draw) arrays, the pointwise log-likelihood of every draw
    tree, timings = run_nuts(two_modes, model_args=(0.0, Y["log_loss"]), **OBS, **{**TINY, "num_samples": 20},
                             extend=lambda post, div: post["x"].shape == (2, 20), max_extensions=3)
    assert timings["extensions"] == 1 and tree["posterior"].sizes["draw"] == 40
    assert tree["log_likelihood"]["log_loss"].shape == (2, 40, 3)


def test_only_a_fit_that_mixes_slowly_is_worth_extending():
    good = dict(max_rhat=1.002, min_ess_bulk=900.0, min_ess_tail=800.0, divergences=0, num_draws=1000, num_chains=4)
    assert not Diagnostics(**good).slow_mixing
    assert Diagnostics(**{**good, "max_rhat": 1.03}, problems=["R-hat"]).slow_mixing
    assert Diagnostics(**{**good, "min_ess_tail": 150.0}, problems=["tail ESS"]).slow_mixing
    # a divergence marks a region the step size cannot enter; a stuck site never moves
    assert not Diagnostics(**{**good, "min_ess_tail": 150.0, "divergences": 3}, problems=["ESS", "div"]).slow_mixing
    assert not Diagnostics(**{**good, "max_rhat": float("inf"), "min_ess_bulk": 0.0}, problems=["stuck"]).slow_mixing
    # worth it where ESS growing with the draws reaches the bar (4 chains: 400) at the longest
    short = Diagnostics(**{**good, "min_ess_tail": 177.0}, problems=["tail ESS"])
    assert short.worth_extending(3.0) and not short.worth_extending(2.0)
    assert not Diagnostics(**{**good, "min_ess_bulk": 20.0}, problems=["bulk ESS"]).worth_extending(3.0)
    assert Diagnostics(**{**good, "max_rhat": 1.02}, problems=["R-hat"]).worth_extending(1.5)
    assert not Diagnostics(**good).worth_extending(3.0)


@pytest.mark.parametrize("vectorize", [True, False], ids=["vmap", "one-chain-per-device"])
def test_the_batched_sampler_restarts_per_data_set(vectorize):
    # vectorize=False: 8 chains on conftest's 4 CPU devices, so two calls of one pmap program
    from bayesmoe.inference import run_nuts_batched

    log_w = jnp.asarray([-30.0, 0.0])
    log_loss = jnp.broadcast_to(Y["log_loss"], (2, 3))
    draws = run_nuts_batched(
        two_modes, (log_w, log_loss), init_values={}, num_chains=4, num_warmup=300, num_samples=200, seed=4,
        target_accept=0.8, vectorize=vectorize)
    assert draws.started.all()
    assert draws.restarted[0].any() and not draws.restarted[1].any()
    assert np.abs(draws.posterior["x"][0]).max() < 6.0 and draws.posterior["x"][1].max() > 15.0


@pytest.mark.parametrize("groups", [None, {"a": {"e": 1.6}, "b": {"e": 1.8}, "c": {"e": 1.7}}], ids=["one", "three-groups"])
def test_site_shapes_read_abstractly_match_a_run_of_the_model(groups):
    # fit reads the sites with jax.eval_shape (no op-by-op run); every kind, observed flag and
    # shape, constrained and unconstrained, must be what running the model gives
    from numpyro.distributions.transforms import biject_to

    from bayesmoe.data import validate_runs
    from bayesmoe.inference import site_shapes, trace_model
    from bayesmoe.models import build_model, make_design
    from bayesmoe.priors import resolve_priors
    from bayesmoe.testing import synthetic_runs

    law = get_law("chinchilla")
    runs = validate_runs(synthetic_runs(law, n_runs=30, seed=0, groups=groups), required=law.inputs + ("loss",))
    model = build_model(law, resolve_priors(law, "literature"), make_design(runs, law))
    kinds, shapes, latent = site_shapes(model, (), {"log_loss": None}, model.init_values)
    trace = trace_model(model, (), {"log_loss": None}, model.init_values)
    assert list(kinds) == list(trace)
    for name, site in trace.items():
        assert kinds[name] == (site["type"], bool(site.get("is_observed", False)))
        if site["type"] in ("sample", "deterministic"):
            assert shapes[name].shape == jnp.shape(site["value"]), name
        if site["type"] == "sample" and not site["is_observed"]:
            assert latent[name].shape == jnp.shape(biject_to(site["fn"].support).inv(site["value"])), name
    assert set(latent) == {n for n, s in trace.items() if s["type"] == "sample" and not s["is_observed"]}
    if groups:  # the hierarchical sites carry the group axis
        assert any(s.shape == (3,) for s in shapes.values())


@pytest.mark.parametrize("n", [8, 6, 5], ids=["two-calls-of-4", "pmap-of-3-twice", "one-device-at-a-time"])
def test_chains_one_per_device_come_back_in_order(n):
    # conftest gives 4 CPU devices: 8 chains are two pmap calls of 4, 6 two of 3, and 5 (no
    # divisor but 1 up to 4) run one at a time through jit; every way returns what vmap returns,
    # chain by chain, for a function with a while loop and a pytree in and out
    import jax

    from bayesmoe.inference import _over_devices

    def fn(x, tree):
        def body(c):
            return c[0] + 1, c[1] * 1.5
        steps, y = jax.lax.while_loop(lambda c: c[1] < tree["limit"], body, (0, x))
        return {"steps": steps, "y": y, "sum": x + tree["shift"]}

    x = np.arange(1, n + 1, dtype=np.float32)
    tree = {"limit": np.linspace(10, 100, n).astype(np.float32), "shift": np.arange(n, dtype=np.float32)}
    got = _over_devices(fn, n, vectorize=False)(x, tree)
    want = jax.vmap(fn)(x, tree)
    for k in want:
        np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(want[k]))


@pytest.mark.extended  # CI runs it after the default suite: pytest -m extended
def test_draws_do_not_depend_on_how_the_iterations_are_chunked(monkeypatch):
    # run_nuts_batched runs warmup and sampling in chunks (one compiled call per chunk, a progress
    # bar between them); the chain is the same chain whatever the chunks: the adaptation schedule
    # reads the state's iteration count, not the call. Against one call per phase.
    from bayesmoe import inference

    assert inference._chunk_length(60, 40) == (20, 20)
    assert inference._chunk_length(1000, 1000) == (100, 100)
    assert inference._chunk_length(97, 40) == (97, 40)  # no common divisor >= 10: one call per phase
    kw = dict(init_values={}, num_chains=2, num_warmup=60, num_samples=40, seed=1, target_accept=0.8,
              vectorize=False)
    args = (jnp.asarray([0.0]), jnp.broadcast_to(Y["log_loss"], (1, 3)))
    chunked = inference.run_nuts_batched(two_modes, args, **kw)
    monkeypatch.setattr(inference, "_chunk_length", lambda w, s: (w, s))
    whole = inference.run_nuts_batched(two_modes, args, **kw)
    np.testing.assert_array_equal(chunked.posterior["x"], whole.posterior["x"])
    np.testing.assert_array_equal(chunked.n_steps, whole.n_steps)


def test_divergences_are_placed_at_the_end_of_the_site_they_sit_in():
    # Divergent draws at the top of a spread (the non-centred funnel's signature) and spread evenly
    # over another site: the message names the first, at its high end, and not the second.
    import arviz_base

    from bayesmoe.inference import diagnose, divergence_tails

    rng = np.random.default_rng(0)
    tau, other = rng.lognormal(-3, 1, (4, 1000)), rng.normal(size=(4, 1000, 3))
    diverging = np.zeros((4, 1000), dtype=bool)
    diverging.flat[np.argsort(tau, axis=None)[-20:]] = True  # the 20 largest draws of tau
    tree = arviz_base.from_dict({"posterior": {"tau": tau, "other": other}, "sample_stats": {"diverging": diverging}})
    assert divergence_tails(tree["posterior"].to_dataset(), diverging) == {"tau": "upper"}
    diag = diagnose(tree, ["tau", "other"], describe=lambda v: {"tau": "e (spread across groups)"}.get(v, v))
    assert diag.problems == ["20 divergent transitions (most of them at the high end of e (spread across groups), "
                             "further out than chance puts them)"]
    assert diag.divergence_sites == {"tau": "upper"}
    diverging[:] = False
    diverging.flat[np.argsort(other[..., 1], axis=None)[:5]] = True  # one element of a vector site, low
    assert divergence_tails(tree["posterior"].to_dataset(), diverging) == {"other": "lower"}
    assert divergence_tails(tree["posterior"].to_dataset(), np.zeros_like(diverging)) == {}
    diverging[:] = False
    diverging[0, 0] = True
    assert diagnose(tree, ["tau", "other"]).problems[0].startswith("1 divergent transition")
    # Divergences unrelated to every site: named by chance at most alpha of the time (5 %,
    # Bonferroni over the 4 elements and both ends). 200 random placements of 1 and of 8 divergent
    # draws: the count named is Binomial(200, <= 0.05); 21 or more has probability 0.0012 at 0.05.
    for k in (1, 8):
        named = 0
        for _ in range(200):
            diverging[:] = False
            diverging.flat[rng.choice(diverging.size, k, replace=False)] = True
            named += bool(divergence_tails(tree["posterior"].to_dataset(), diverging))
        assert named <= 20, (k, named)


def test_divergences_at_the_top_of_a_spread_suggest_a_prior_on_that_spread():
    diag = Diagnostics(max_rhat=1.002, min_ess_bulk=900.0, min_ess_tail=900.0, divergences=8, num_draws=1000,
                       num_chains=4, problems=["8 divergent transitions (most of them at the high end of e (spread "
                                               "across groups), further out than chance puts them)"],
                       divergence_sites={"e_rel_tau": "upper", "e_pop": "lower"})
    settings = {"num_warmup": 1000, "num_samples": 1000, "target_accept": 0.99}
    py = convergence_message(diag, "chinchilla", settings=settings, n_groups=5)
    assert "prior site 'e_rel_tau'" in py and "priors={'e_rel_tau': {'dist': 'halfnormal', 'scale': S}}" in py
    cli = convergence_message(diag, "chinchilla", settings=settings, n_groups=5, style="cli")
    assert """--priors '{"e_rel_tau": {"dist": "halfnormal", "scale": S}}'""" in cli
    assert "num_warmup" not in py  # divergences alone: no longer chains
    # at the low end of a spread (the ordinary funnel) or at a non-spread site: no such tip
    low = Diagnostics(**{**diag.__dict__, "divergence_sites": {"e_rel_tau": "lower", "alpha": "upper"}})
    assert "prior site" not in convergence_message(low, "chinchilla", settings=settings, n_groups=5)
    # one divergence is one transition, and still no reason for longer chains
    one = Diagnostics(**{**diag.__dict__, "divergences": 1, "problems": ["1 divergent transition"]})
    assert "num_warmup" not in convergence_message(one, "chinchilla", settings=settings, n_groups=5)
