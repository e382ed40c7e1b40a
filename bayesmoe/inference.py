"""NUTS on NumPyro's functional API, and every ArviZ call bayesmoe makes (conversion, summaries,
diagnostics).

A fit's chains run one per CPU device, in parallel, when JAX has devices for them (on CPU: call
``numpyro.set_host_device_count(n)`` before JAX starts, as the CLI does); otherwise one after
another; on a GPU they are vectorised. The data are arguments of the compiled programs, padded to
:func:`bayesmoe.models.padded_length`, so tables of one padded length share them
(:func:`run_nuts_batched`).
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from functools import partial
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import arviz_base
import arviz_stats
import jax
import numpy as np
import pandas as pd
import xarray as xr
from numpyro.infer import init_to_median, init_to_uniform

from bayesmoe.compile_cache import enable_compile_cache
from bayesmoe.errors import ConvergenceError
from bayesmoe.intervals import DEFAULT_CI_PROB

__all__ = ["run_nuts", "restart_sources", "Diagnostics", "diagnose", "summary_table", "chain_method", "psis_loo",
           "compare_loo", "PARETO_K_MAX"]

#: Thresholds of a trustworthy fit (Vehtari et al. 2021: R-hat < 1.01, ESS >= 100 per chain).
RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100

#: A chain whose warmup ended in a mode with less than e^-RESTART_NATS of the best chain's mode's
#: probability mass restarts from the best chain's state before sampling (:func:`restart_sources`).
RESTART_NATS = 10.0
#: ... and only when that gap also exceeds RESTART_Z standard errors of its energy estimate.
RESTART_Z = 3.0


def _init(site=None, values=None, fallback=False, jitter=None):
    """Prior medians, except for sites with given starting values (improper-prior sites).

    ``fallback=True``: uniform draws in (−2, 2) of the unconstrained coordinates instead of prior
    medians, for tables where the medians put every run's reducible terms above its loss (the
    derived irreducible loss would be negative), so no start near the medians is finite.
    ``jitter`` maps a given site to a radius: its start is drawn uniformly within that distance
    of the given value, so that chains do not all start an improper site at one point (R-hat
    compares chains that began apart; identical starts hide a site that never moves).
    """
    if site is None:
        return partial(_init, values=values, fallback=fallback, jitter=jitter)
    name = site["name"]
    if site["type"] == "sample" and not site["is_observed"] and name in values:
        value = jax.numpy.asarray(values[name], dtype=jax.numpy.float32)
        radius = (jitter or {}).get(name, 0.0)
        if radius and site["kwargs"].get("rng_key") is not None:
            value = value + jax.random.uniform(site["kwargs"]["rng_key"], jax.numpy.shape(value),
                                               minval=-radius, maxval=radius)
        return value
    return init_to_uniform(site) if fallback else init_to_median(site, num_samples=15)


def trace_model(model, args: Sequence, kwargs: Mapping, values: Mapping):
    """One forward run of ``model`` (a NumPyro trace) for its sites' names, shapes and supports.

    Latent sites take ``values`` (improper sites cannot be drawn) or a feasible point of their
    support instead of a prior draw: drawing runs op by op, and a Student-t or gamma prior's
    sampler alone compiled for about 3 s per fit (JAX_LOG_COMPILES=1).
    """
    from numpyro import handlers
    from numpyro.infer import init_to_feasible

    def feasible(site):
        if site["name"] in values:
            return jax.numpy.asarray(values[site["name"]])
        return init_to_feasible(site)

    start = handlers.substitute(handlers.seed(model, 0), substitute_fn=feasible)
    return handlers.trace(start).get_trace(*args, **kwargs)


def _latent_transforms(model, args: Sequence, kwargs: Mapping, values: Mapping) -> dict:
    """Bijection to its support of every latent site, from one forward run of the model."""
    from numpyro.distributions.transforms import biject_to

    trace = trace_model(model, args, kwargs, values)
    return {n: (biject_to(site["fn"].support), site["value"]) for n, site in trace.items()
            if site["type"] == "sample" and not site["is_observed"]}


def site_shapes(model, args: Sequence, kwargs: Mapping, values: Mapping) -> tuple[dict, dict, dict]:
    """The sites of one forward run of ``model``, without running it op by op.

    Returns ``{name: (type, is_observed)}`` for every site, ``{name: jax.ShapeDtypeStruct}`` of
    the value of every sample and deterministic site, and the same of every latent site's
    unconstrained value. Traced abstractly (``jax.eval_shape``): run eagerly, each of the model's
    operations is its own small compiled program, about 130 of them and 2-3 s on a warm
    compile cache (``JAX_LOG_COMPILES=1`` on a Chinchilla fit).
    """
    from numpyro.distributions.transforms import biject_to

    kinds: dict = {}

    def run():
        values_out, latent_out = {}, {}
        for name, site in trace_model(model, args, kwargs, values).items():
            kinds[name] = (site["type"], bool(site.get("is_observed", False)))
            if site["type"] in ("sample", "deterministic"):
                values_out[name] = site["value"]
            if site["type"] == "sample" and not site["is_observed"]:
                latent_out[name] = biject_to(site["fn"].support).inv(site["value"])
        return values_out, latent_out

    shapes, latent = jax.eval_shape(run)
    return kinds, shapes, latent


def _prototype(model, args: Sequence, kwargs: Mapping, values: Mapping) -> dict:
    """Zeros shaped as every latent site's unconstrained value (the starts need only shapes)."""
    return {n: np.zeros(v.shape, v.dtype) for n, v in site_shapes(model, args, kwargs, values)[2].items()}


def _finite_start(key, model, args: Sequence, kwargs: Mapping, values: Mapping, prototype: Mapping,
                  jitter: Mapping[str, float] | None, fallback: bool):
    """A finite starting point by :func:`_init`'s strategy (prior medians, or its uniform
    fallback), NumPyro's search of up to 100 tries; and whether one was found. Traceable."""
    from numpyro.infer.util import find_valid_initial_params

    (z, _, _), ok = find_valid_initial_params(
        key, model, init_strategy=partial(_init, values=values, fallback=fallback, jitter=jitter),
        model_args=tuple(args), model_kwargs=dict(kwargs), prototype_params=prototype)
    return z, ok


def _start(key, model, args: Sequence, kwargs: Mapping, values: Mapping, prototype: Mapping,
           jitter: Mapping[str, float] | None = None):
    """One chain's starting point: prior medians where they give a finite log density, else the
    uniform fallback of :func:`_init`; and whether either was finite. Traceable (vmap, jit)."""
    k_median, k_uniform = jax.random.split(key)
    z_median, ok_median = _finite_start(k_median, model, args, kwargs, values, prototype, jitter, False)
    z_uniform, ok_uniform = _finite_start(k_uniform, model, args, kwargs, values, prototype, jitter, True)
    z = jax.tree.map(lambda m, u: jax.numpy.where(ok_median, m, u), z_median, z_uniform)
    return z, ok_median | ok_uniform


#: Adam's step in the unconstrained coordinates and its number of steps for each candidate start
#: of :func:`_best_start` (``start_candidates``): enough to carry a uniform draw in (−2, 2) into
#: the basin it belongs to, not to converge there.
START_STEP_SIZE = 0.05
START_STEPS = 500


def _best_start(key, z_first, ok_first, potential_fn, model, args: Sequence, values: Mapping,
                prototype: Mapping, jitter: Mapping[str, float] | None, candidates: int):
    """A chain's start chosen among ``candidates`` basins: ``z_first`` (:func:`_start`'s) and
    ``candidates − 1`` uniform draws of :func:`_init`'s fallback, each moved
    :data:`START_STEPS` Adam steps down the potential (``numpyro.optim.Adam``); the one that ends
    lowest, where it ended. Returns ``(z, ok)``. Traceable (vmap, jit).

    Why: a posterior can hold a second mode tens of nats worse whose basin catches most starts
    (a law whose terms swap roles, with an inflated noise σ). When every chain warms up in it, the
    chains agree, R-hat passes and the restarts after warmup (:func:`restart_sources`) have no
    better chain to copy. A few descents from spread-out starts find the better basin when any
    of them falls in it. Each chain descends from its own candidates, so the chains still start
    apart.
    """
    import numpyro.optim

    drawn, ok = jax.vmap(lambda k: _finite_start(k, model, args, {}, values, prototype, jitter, True))(
        jax.random.split(key, candidates - 1))
    zs = jax.tree.map(lambda a, b: jax.numpy.concatenate([a[None], b]), z_first, drawn)
    ok = jax.numpy.concatenate([jax.numpy.asarray(ok_first)[None], ok])
    opt = numpyro.optim.Adam(START_STEP_SIZE)

    def descend(z0):
        def step(state, _):
            _, state = opt.eval_and_update(lambda z: (potential_fn(z), None), state)
            return state, None

        state, _ = jax.lax.scan(step, opt.init(z0), None, length=START_STEPS)
        z = opt.get_params(state)
        return z, potential_fn(z)

    ends, energy = jax.vmap(descend)(zs)
    energy = jax.numpy.where(ok & jax.numpy.isfinite(energy), energy, jax.numpy.inf)
    best = jax.numpy.argmin(energy)
    found = jax.numpy.isfinite(energy[best])
    # no descent ended finite: keep the first start as it was
    z = jax.tree.map(lambda e, f: jax.numpy.where(found, e[best], f), ends, z_first)
    return z, found | ok_first


def _late(num_warmup: int) -> int:
    """How many of the last warmup iterations estimate each chain's mean potential energy: the
    last fifth (at least 50: NumPyro's terminal window), all of it when warmup is shorter."""
    return min(num_warmup, max(50, num_warmup // 5))


def _log_det(inverse_mass_matrix, batch_ndim: int) -> np.ndarray:
    """Log-determinant of each chain's adapted inverse mass matrix (dense blocks or diagonals,
    NumPyro keeps one per group of sites), summed over blocks: the warmup's covariance estimate."""
    blocks = inverse_mass_matrix.values() if isinstance(inverse_mass_matrix, Mapping) else [inverse_mass_matrix]
    total = 0.0
    for block in blocks:
        block = np.asarray(block, dtype=np.float64)
        if block.ndim == batch_ndim + 2:
            sign, logdet = np.linalg.slogdet(block)
            total = total + np.where(sign > 0, logdet, np.nan)
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                total = total + np.sum(np.log(block), axis=-1)
    return total


def restart_sources(energy: np.ndarray, log_det: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which chain each chain should continue from after warmup, and each chain's mode gap in nats.

    ``energy`` holds each chain's potential energy over its late warmup ``(..., chain, n)``;
    ``log_det`` the log-determinant of its adapted covariance ``(..., chain)``. A Laplace
    approximation of the mode a chain settled in gives its probability mass as
    exp(−U_min)·(2π)^{d/2}·|Σ|^{1/2}, and the mean potential energy in that mode's typical set is
    U_min + d/2, so −log mass = mean U − ½ log|Σ| + a constant shared by all chains. The gap of a
    chain is that quantity minus the best chain's. A chain whose gap exceeds ``RESTART_NATS``
    (its mode holds under e^-10 ≈ 5e-5 of the best mode's mass) and ``RESTART_Z`` standard
    errors of the mean energies (arviz-stats MCSE; it matters when the model has many
    dimensions) continues from the best chain's state, as does a chain with no finite energy.
    The log|Σ| term keeps a chain that sits in a narrow funnel, low in energy but small in
    volume, from counting as the best. Without a finite chain, nothing moves.
    """
    from arviz_stats.base import array_stats

    energy = np.asarray(energy, dtype=np.float64)
    mean = energy.mean(axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a constant or NaN series: its MCSE is NaN
        se = np.asarray(array_stats.mcse(energy[..., None, :], chain_axis=-2, draw_axis=-1, method="mean"))
    free = mean - 0.5 * np.asarray(log_det, dtype=np.float64)
    finite = np.isfinite(free)
    best = np.argmin(np.where(finite, free, np.inf), axis=-1)[..., None]
    with np.errstate(invalid="ignore"):  # inf - inf where no chain is finite: handled below
        gap = free - np.take_along_axis(free, best, axis=-1)
    var = np.nan_to_num(se, nan=0.0) ** 2
    se_gap = np.sqrt(var + np.take_along_axis(var, best, axis=-1))
    stuck = ~finite | (gap > RESTART_NATS + RESTART_Z * se_gap)
    stuck &= finite.any(axis=-1, keepdims=True)
    chains = np.broadcast_to(np.arange(energy.shape[-2]), stuck.shape)
    return np.where(stuck, best, chains), np.where(finite, gap, np.inf)


def _continue_from(state, index: np.ndarray):
    """``state`` (host arrays, one row per chain) with chain i continuing from chain ``index[i]``'s
    state, each chain keeping its own random key."""
    n = len(index)
    moved = jax.tree.map(lambda x: np.asarray(x)[index] if np.ndim(x) and np.shape(x)[0] == n else x, state)
    return moved._replace(rng_key=state.rng_key)


def _restart_note(source: np.ndarray, gap: np.ndarray) -> list[dict]:
    """One record per restarted chain (JSON-ready)."""
    return [{"chain": int(c), "from_chain": int(source[c]), "gap_nats": float(gap[c])}
            for c in np.flatnonzero(source != np.arange(len(source)))]


def chain_method(num_chains: int) -> str:
    """How :func:`run_nuts` runs ``num_chains`` chains: ``"parallel"`` (one per CPU device, all at
    once), ``"parallel groups"`` (one per device, fewer devices than chains), ``"sequential"``
    (one device, one chain after another) or ``"vectorized"`` (an accelerator)."""
    if jax.default_backend() != "cpu":
        return "vectorized"
    devices = jax.local_device_count()
    if devices == 1 or num_chains == 1:
        return "sequential"
    return "parallel" if devices >= num_chains else "parallel groups"


def progress_default(progress: bool | None) -> bool:
    return (not os.environ.get("CI")) if progress is None else bool(progress)


def run_nuts(
    model,
    *,
    model_args: Sequence,
    observed: Mapping[str, np.ndarray],
    num_chains: int,
    num_warmup: int,
    num_samples: int,
    seed: int,
    target_accept: float,
    progress: bool | None,
    coords: Mapping[str, Sequence],
    group_dim_sites: Sequence[str] = (),
    max_tree_depth: int = 10,
    init_values: Mapping[str, np.ndarray] | None = None,
    init_jitter: Mapping[str, float] | None = None,
    program_key: Hashable | None = None,
    extend: Callable[[dict, np.ndarray], bool] | None = None,
    max_extensions: int = 0,
    start_candidates: int = 1,
) -> tuple[xr.DataTree, dict[str, float]]:
    """Sample ``model(*model_args)`` with NUTS and return an ArviZ DataTree plus timings.

    One data set of :func:`run_nuts_batched`, one chain per CPU device where there are devices
    (``numpyro.set_host_device_count``), else one chain after another. ``observed`` maps each
    observed site to its data; a site with a ``run`` coordinate keeps that many entries of its
    pointwise log-likelihood (the model's data may be padded past them). The DataTree holds
    ``posterior`` (latent and deterministic sites), ``sample_stats`` (``diverging``, ``n_steps``,
    ``tree_depth``, and ``lp``, the potential energy, as ArviZ's NumPyro converter names it),
    ``log_likelihood`` and ``observed_data``. ``init_values`` start the improper-prior sites,
    each chain within ``init_jitter[site]`` of its value. ``timings["restarts"]`` lists each
    chain that restarted after warmup from the best chain (:func:`restart_sources`).
    ``program_key``: as in :func:`run_nuts_batched`. ``extend(posterior, diverging)`` (plain
    ``(chain, draw, ...)`` arrays of every draw so far) asks for ``num_samples`` more draws per
    chain, at most ``max_extensions`` times (:func:`run_nuts_batched`); ``timings["extensions"]``
    says how many were run. ``start_candidates``: as in :func:`run_nuts_batched`.

    Raises :class:`ConvergenceError` when a chain finds no finite starting point: prior medians
    and the uniform fallback of :func:`_init` all give the data zero density.
    """
    batch = jax.tree.map(lambda v: np.asarray(v)[None], tuple(model_args))
    init = {name: np.asarray(v)[None] for name, v in (init_values or {}).items()}
    draws = run_nuts_batched(model, batch, init_values=init, init_jitter=init_jitter, num_chains=num_chains,
                             num_warmup=num_warmup, num_samples=num_samples, seed=seed,
                             target_accept=target_accept, max_tree_depth=max_tree_depth, vectorize=False,
                             log_likelihood=True, progress=progress_default(progress), require_start=True,
                             program_key=program_key, max_extensions=max_extensions,
                             start_candidates=start_candidates,
                             extend=None if extend is None else (lambda post, div: extend(
                                 {name: v[0] for name, v in post.items()}, div[0])))
    dims = {name: ["group"] for name in group_dim_sites}
    log_lik = {}
    for name in observed:
        value = draws.log_likelihood[name][0]
        if "run" in coords:
            dims[name] = ["run"]
            value = value[..., :len(coords["run"])]
        log_lik[name] = value
    steps = draws.n_steps[0]
    tree = arviz_base.from_dict(
        {"posterior": {name: v[0] for name, v in draws.posterior.items()},
         "sample_stats": {"diverging": draws.diverging[0], "n_steps": steps,
                          "tree_depth": np.log2(steps).astype(int) + 1, "lp": draws.potential_energy[0]},
         "log_likelihood": log_lik,
         "observed_data": {name: np.asarray(v) for name, v in observed.items()}},
        coords=dict(coords), dims=dims)
    timings = {
        "restarts": _restart_note(draws.source[0], draws.gap[0]),
        "warmup_s": draws.warmup_s,
        "sampling_s": draws.sampling_s,
        "extensions": draws.extensions,
        "mean_leapfrog_steps": float(np.mean(steps)),
        "chain_method": chain_method(num_chains),
        "device": jax.default_backend(),
        "compile_cache": str(enable_compile_cache() or "off"),
    }
    return tree, timings


def _over_devices(fn: Callable, n: int, vectorize: bool = True) -> Callable:
    """``fn`` over ``n`` chains (leading axis of every argument), compiled once.

    ``vectorize=True``: ``jax.vmap(fn)``, split across CPU devices where there are several
    (``numpyro.set_host_device_count``) and cores to run them, as ``run_nuts`` runs its chains in
    parallel: ``pmap`` over shards of ``vmap``-ed chains. Each shard's NUTS iteration lasts as
    long as its own longest trajectory, not the whole batch's. The choice for many chains (SBC's
    hundreds), where one vectorised step serves them all.

    ``vectorize=False`` (CPU only; elsewhere it vectorises): one chain per device, ``pmap``
    without ``vmap``, over as many devices as divide ``n``, the same compiled program called
    again for each further group of chains. The choice for a handful of chains: batching NUTS's
    nested while loops under ``vmap`` makes JAX trace their bodies again and again until the
    batched carries settle, which cost 6-10 s per fit of tracing alone (Epoch's backtests on a
    warm compile cache: 10.1 s vmapped, 4.4 s per chain; ``bench/bench_backtests.py``).
    """
    cpu = jax.default_backend() == "cpu"
    if not vectorize and cpu:
        # on one device (per = 1) this runs each chain alone, the same program in turn
        per = max(d for d in range(1, min(jax.local_device_count(), n) + 1) if n % d == 0)
        mapped = jax.pmap(fn)

        def call(*args):
            parts = [mapped(*jax.tree.map(lambda v: np.asarray(v)[i:i + per], args)) for i in range(0, n, per)]
            return jax.tree.map(lambda *v: np.concatenate([np.asarray(x) for x in v]), *parts)

        return call
    cores = os.cpu_count() or 1
    limit = min(jax.local_device_count(), cores) if cpu else 1
    shards = max(d for d in range(1, limit + 1) if n % d == 0)
    if shards == 1:
        return jax.jit(jax.vmap(fn))
    mapped = jax.pmap(jax.vmap(fn))

    def call(*args):
        split = jax.tree.map(lambda v: np.reshape(np.asarray(v), (shards, -1, *np.shape(v)[1:])), args)
        return jax.tree.map(lambda v: np.reshape(np.asarray(v), (n, *np.shape(v)[2:])), mapped(*split))

    return call


#: How many sets of compiled sampler programs :func:`run_nuts_batched` keeps per process (by
#: ``program_key``); a set is a few MB of executables.
PROGRAMS_KEPT = 8
_PROGRAMS: dict = {}


class Draws(NamedTuple):
    """What :func:`run_nuts_batched` returns; every array has leading axes ``(data set, chain)``."""

    posterior: dict
    """Every latent and deterministic site, constrained: ``(K, chain, draw, ...)``."""
    diverging: np.ndarray
    n_steps: np.ndarray
    potential_energy: np.ndarray
    started: np.ndarray
    """Whether each chain found a finite starting point: inside a compiled program a failed start
    cannot raise, so the caller must check."""
    source: np.ndarray
    """The chain each chain sampled on from after warmup (itself, unless it restarted)."""
    gap: np.ndarray
    """Each chain's mode gap in nats at the end of warmup (:func:`restart_sources`)."""
    log_likelihood: dict
    """Each observed site's pointwise log density ``(K, chain, draw, ...)`` when asked for."""
    warmup_s: float
    sampling_s: float
    extensions: int = 0
    """How many times sampling went on for another ``num_samples`` draws per chain (``extend``)."""

    @property
    def restarted(self) -> np.ndarray:
        return self.source != np.arange(self.source.shape[-1])


def _chunk_length(num_warmup: int, num_samples: int, most: int = 100) -> tuple[int, int]:
    """Iterations per compiled call in warmup and in sampling: one length for both where they
    share a divisor of at least 10 (at most ``most``), so one program serves both phases, else
    each phase in one call."""
    g = math.gcd(num_warmup, num_samples)
    d = max(d for d in range(1, min(g, most) + 1) if g % d == 0)
    return (d, d) if d >= 10 else (num_warmup, num_samples)


def run_nuts_batched(
    model,
    batch_args: Sequence,
    *,
    init_values: Mapping[str, jax.Array],
    num_chains: int,
    num_warmup: int,
    num_samples: int,
    seed: int,
    target_accept: float,
    max_tree_depth: int = 10,
    init_jitter: Mapping[str, float] | None = None,
    vectorize: bool = True,
    log_likelihood: bool = False,
    progress: bool = False,
    label: str = "NUTS",
    require_start: bool = False,
    program_key: Hashable | None = None,
    extend: Callable[[dict, np.ndarray], bool] | None = None,
    max_extensions: int = 0,
    start_candidates: int = 1,
) -> Draws:
    """NUTS on many data sets at once: one model, its data as batched arguments.

    ``batch_args`` are ``model``'s positional arguments with a leading data-set axis of length
    K; ``init_values`` maps improper-prior sites to per-data-set starting values (leading axis
    K); ``init_jitter`` starts each chain within a radius of them (:func:`_init`). Every (data
    set, chain) pair gets its own initialisation, step-size and dense mass-matrix adaptation and
    draws (NumPyro's functional ``hmc`` API, as ``MCMC`` runs one chain). After warmup, a chain
    that settled in a mode holding a negligible share of its data set's mass continues from that
    data set's best chain (:func:`restart_sources`).

    The data are arguments of the compiled programs, never constants in them: data sets of one
    shape (a table padded to :func:`bayesmoe.models.padded_length`) reuse one compiled sampler,
    in the same process and, through the persistent compilation cache, in the next one.
    The iterations run in chunks of up to 100 per call, one program for every chunk of both
    phases, so that ``progress`` can show a bar between calls: a host callback inside the
    program would keep JAX from caching it on disk.

    ``vectorize=True``: the K·C chains are ``jax.vmap``-ed (:func:`_over_devices`), the choice
    for SBC's hundreds of chains; under ``vmap`` an iteration lasts as long as its longest
    trajectory in the batch. ``vectorize=False`` runs one chain per CPU device: far less to
    trace, the better choice for a handful of chains. ``log_likelihood=True`` also returns each
    observed site's pointwise log density at every draw. ``require_start=True`` raises
    :class:`ConvergenceError` before warmup when a chain found no finite starting point.

    ``program_key``: the caller vouches that every model it passes with this key is the same
    function of its arguments (same law, priors, groups, padded length); the compiled programs
    are then kept in this process (the last :data:`PROGRAMS_KEPT`) and reused without tracing
    again, e.g. by a campaign's refits. Without it, each call traces its programs anew and only
    the persistent cache saves the compilation.

    ``extend(posterior, diverging)``, given every draw so far (leading axes data set, chain,
    draw), says whether the chains should go on: then each samples ``num_samples`` more draws
    from where it stopped, with the step size and mass matrix warmup adapted (the same Markov
    chain, longer), at most ``max_extensions`` times. The same compiled programs serve every
    extension.

    ``start_candidates`` > 1: each chain starts from the best of that many descents
    (:func:`_best_start`) instead of its prior-median start; 1 (the default) keeps the latter.
    """
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import get_potential_fn
    from numpyro.infer.util import log_likelihood as pointwise
    from tqdm.auto import tqdm

    enable_compile_cache()
    first = jax.tree.map(lambda v: v[0], tuple(batch_args))
    first_init = {k: v[0] for k, v in init_values.items()}
    prototype = _prototype(model, first, {}, first_init)  # shapes only, read abstractly

    def kernels(args, values):
        """The potential and the map back to the support, built as initialize_model builds them
        but without its search for a finite start (which raises when one data set has none; here
        each chain searches its own and reports failure instead). Built inside each compiled
        program from its own traced arguments: built outside, reading the supports ran the model
        op by op (~45 small programs, ~1 s of a warm fit's backtests)."""
        transforms = _latent_transforms(model, args, {}, values)
        # replay_model: the draws come back with the model's deterministic sites (paper-form
        # parameters), as initialize_model does for models that have any
        potential_fn_gen, postprocess_fn_gen = get_potential_fn(
            model, {n: t for n, (t, _) in transforms.items()}, replay_model=True, dynamic_args=True,
            model_args=args)
        init_kernel, sample_kernel = hmc(potential_fn_gen=potential_fn_gen, algo="NUTS")
        return init_kernel, sample_kernel, postprocess_fn_gen, potential_fn_gen

    settings = dict(target_accept_prob=target_accept, dense_mass=True, max_tree_depth=max_tree_depth)
    k = len(jax.tree.leaves(batch_args)[0])
    n = k * num_chains
    rep = jax.tree.map(lambda v: np.repeat(np.asarray(v), num_chains, axis=0), tuple(batch_args))
    rep_init = {name: np.repeat(np.asarray(v), num_chains, axis=0) for name, v in init_values.items()}
    init_keys, run_keys = jax.random.split(jax.random.PRNGKey(seed), 2 * n).reshape(2, n, -1)

    def begin(init_key, run_key, args, start):
        init_kernel, _, _, potential_fn_gen = kernels(args, start)
        z, valid = _start(init_key, model, args, {}, start, prototype, init_jitter)
        if start_candidates > 1:  # its own key: the default starts stay as they were
            z, valid = _best_start(jax.random.fold_in(init_key, 1), z, valid, potential_fn_gen(*args), model,
                                   args, start, prototype, init_jitter, start_candidates)
        return init_kernel(z, num_warmup, **settings, model_args=args, rng_key=run_key), valid

    def advance(state, args, start, length):
        init_kernel, sample_kernel, _, _ = kernels(args, start)
        # sets the kernel's settings (adaptation schedule, tree depth) as in begin; its state is
        # not used: the chain continues from ``state``, whose iteration count places it in the
        # schedule
        init_kernel(state.z, num_warmup, **settings, model_args=args, rng_key=state.rng_key)

        def step(state, _):
            state = sample_kernel(state, model_args=args)
            return state, (state.z, state.diverging, state.num_steps, state.potential_energy)

        return jax.lax.scan(step, state, None, length=length)

    def finish(zs, args, start):
        _, _, postprocess_fn_gen, _ = kernels(args, start)
        values = jax.vmap(postprocess_fn_gen(*args))(zs)
        return values, (pointwise(model, values, *args) if log_likelihood else {})

    key = None if program_key is None else (
        program_key, n, vectorize, jax.local_device_count(), num_warmup, num_samples, float(target_accept),
        max_tree_depth, tuple(sorted((init_jitter or {}).items())), log_likelihood, int(start_candidates))
    programs = _PROGRAMS.pop(key, None) if key is not None else None
    if programs is None:
        programs = {"begin": _over_devices(begin, n, vectorize), "finish": _over_devices(finish, n, vectorize)}
    if key is not None:  # most recently used last; the oldest goes
        _PROGRAMS[key] = programs
        while len(_PROGRAMS) > PROGRAMS_KEPT:
            _PROGRAMS.pop(next(iter(_PROGRAMS)))

    def run_chunk(state, length):
        if length not in programs:
            programs[length] = _over_devices(partial(advance, length=length), n, vectorize)
        return programs[length](state, rep, rep_init)

    def split(v):
        v = np.asarray(v)
        return v.reshape(k, num_chains, *v.shape[1:])

    late = _late(num_warmup)
    chunk_w, chunk_s = _chunk_length(num_warmup, num_samples)
    bar = tqdm(total=num_warmup + num_samples, desc=f"{label}: warmup (compiling)", unit="it",
               disable=not progress, leave=False)
    with bar:
        t0 = time.perf_counter()
        state, valid = programs["begin"](init_keys, run_keys, rep, rep_init)
        valid = np.asarray(valid)
        if require_start and not valid.all():
            raise ConvergenceError(
                f"no finite starting point for {int(np.sum(~valid))} of {n} chains "
                "(prior medians and 100 uniform draws all give the data zero density): check the "
                "table for runs that no law of this form can fit, or the priors")
        energy = []
        for _ in range(num_warmup // chunk_w):
            state, (_, _, _, pe) = run_chunk(state, chunk_w)
            energy.append(np.asarray(pe))
            bar.set_description(f"{label}: warmup", refresh=False)
            bar.update(chunk_w)
        energy = np.concatenate(energy, axis=1)[:, -late:]
        # chains stuck in a negligible mode restart from their data set's best chain; on the
        # host: a few small arrays, between two compiled calls
        state = jax.device_get(state)
        source, gap = restart_sources(energy.reshape(k, num_chains, late),
                                      _log_det(state.adapt_state.inverse_mass_matrix, batch_ndim=1).reshape(k, num_chains))
        state = _continue_from(state, (source + num_chains * np.arange(k)[:, None]).reshape(-1))
        t1 = time.perf_counter()
        bar.set_description(f"{label}: sampling", refresh=False)
        blocks, extensions = [], 0
        while True:
            parts = []
            for _ in range(num_samples // chunk_s):
                state, out = run_chunk(state, chunk_s)
                parts.append(out)
                bar.update(chunk_s)
            zs, diverging, steps, pe = jax.tree.map(lambda *v: np.concatenate(v, axis=1), *parts)
            values, ll = programs["finish"](zs, rep, rep_init)
            blocks.append(jax.tree.map(np.asarray, (values, ll, diverging, steps, pe)))
            values, ll, diverging, steps, pe = _joined(blocks)
            if (extend is None or extensions >= max_extensions
                    or not extend({name: split(v) for name, v in values.items()}, split(diverging))):
                break
            extensions += 1
            bar.total += num_samples
            bar.set_description(f"{label}: sampling, extended ×{extensions}", refresh=False)
        t2 = time.perf_counter()

    return Draws(posterior={name: split(v) for name, v in values.items()}, diverging=split(diverging),
                 n_steps=split(steps), potential_energy=split(pe), started=split(valid), source=source, gap=gap,
                 log_likelihood={name: split(v) for name, v in ll.items()}, warmup_s=t1 - t0, sampling_s=t2 - t1,
                 extensions=extensions)


def _joined(blocks: list) -> tuple:
    """Successive blocks of draws, each ``(values, log_lik, diverging, steps, energy)`` with a
    leading chain axis, joined along the draw axis."""
    if len(blocks) == 1:
        return blocks[0]
    return jax.tree.map(lambda *v: np.concatenate(v, axis=1), *blocks)


def diagnose_arrays(posterior: Mapping[str, np.ndarray], diverging: np.ndarray,
                    var_names: Sequence[str]) -> Diagnostics:
    """:func:`diagnose` for plain ``(chain, draw, ...)`` arrays (e.g. one data set of a batch)."""
    tree = arviz_base.from_dict({"posterior": {n: posterior[n] for n in var_names},
                                 "sample_stats": {"diverging": diverging}})
    return diagnose(tree, var_names)


def summary_table(tree: xr.DataTree, var_names: Sequence[str] | None = None, ci_prob: float = DEFAULT_CI_PROB) -> pd.DataFrame:
    """Median, equal-tailed interval, R-hat and ESS per parameter (one row per scalar)."""
    if not 0 < ci_prob < 1:
        raise ValueError(f"ci_prob must be in (0, 1), got {ci_prob}")
    with warnings.catch_warnings():
        # Fixed parameters (e.g. nu) have zero variance: arviz-stats divides 0/0 for their R-hat and
        # says so; NaN is the right entry in the table, the warning is noise.
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        kw = dict(var_names=list(var_names) if var_names else None, ci_prob=ci_prob, ci_kind="eti",
                  round_to="none")
        stats = arviz_stats.summary(tree, kind="all", **kw)  # mean, sd, interval, bulk/tail ESS, R-hat
        stats.insert(0, "median", arviz_stats.summary(tree, kind="stats_median", **kw)["median"])
    return stats


def starts_phrase(attrs: Mapping) -> str:
    """", each chain from the best of N start candidates" for a saved fit that used more than one
    (the model card's and the report's NUTS row)."""
    n = int(attrs.get("start_candidates", 1))
    return f", each chain from the best of {n} start candidates" if n > 1 else ""


def timing_line(timings: Mapping) -> str:
    """One line for the model card and the report: where a fit's time went, and how many times
    its sampling was extended (:func:`run_nuts`)."""
    line = (f"warmup {timings['warmup_s']:.1f} s, sampling {timings['sampling_s']:.1f} s, "
            f"{timings['mean_leapfrog_steps']:.0f} leapfrog steps per iteration, "
            f"{timings['chain_method']} on {timings['device']}")
    n = int(timings.get("extensions", 0))
    if n:
        times = {1: "once", 2: "twice"}.get(n, f"{n} times")
        line += (f"; sampling extended {times} by the requested draws per chain, "
                 "as R-hat or ESS fell short")
    return line


@dataclass
class Diagnostics:
    """Convergence numbers of one fit and what is wrong with them, if anything."""

    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    num_draws: int
    num_chains: int
    problems: list[str] = field(default_factory=list)
    #: Where the divergent transitions sit: ``{site: "upper" | "lower"}`` (:func:`divergence_tails`).
    divergence_sites: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def slow_mixing(self) -> bool:
        """Failed on R-hat or ESS alone: no divergence, no site stuck. Longer chains are the
        remedy for that, and for nothing else that fails here (a divergence marks a region the
        sampler cannot enter at its step size; a stuck site never moves)."""
        return (bool(self.problems) and self.divergences == 0 and self.min_ess_bulk > 0
                and not np.isinf(self.max_rhat))

    def worth_extending(self, factor: float) -> bool:
        """Slow mixing (:attr:`slow_mixing`) that ``factor`` times as many draws could mend: the
        ESS, growing in proportion to the draws, would reach the bar. Far below it (a handful of
        effective draws), the chains need a new start or other settings, not length."""
        ess_min = ESS_PER_CHAIN_MIN * self.num_chains
        return self.slow_mixing and min(self.min_ess_bulk, self.min_ess_tail) * factor >= ess_min

    def to_dict(self) -> dict:
        return {
            "max_rhat": self.max_rhat, "min_ess_bulk": self.min_ess_bulk,
            "min_ess_tail": self.min_ess_tail, "divergences": self.divergences,
            "num_draws": self.num_draws, "num_chains": self.num_chains, "problems": list(self.problems),
        }

    def table(self) -> pd.DataFrame:
        ess_min = ESS_PER_CHAIN_MIN * self.num_chains
        rows = [
            ("max R-hat", self.max_rhat, f"< {RHAT_MAX}"),
            ("min bulk ESS", self.min_ess_bulk, f">= {ess_min}"),
            ("min tail ESS", self.min_ess_tail, f">= {ess_min}"),
            ("divergences", self.divergences, "0"),
        ]
        return pd.DataFrame(rows, columns=["diagnostic", "value", "target"]).set_index("diagnostic")


def _stuck(draws: np.ndarray) -> bool:
    """Some element never moved: one value in every draw of every chain (or NaN draws). Compared
    exactly: a float std of a constant is not always 0, and arviz-stats then returns a finite ESS."""
    flat = draws.reshape(draws.shape[0] * draws.shape[1], -1)
    return bool(np.any(np.all(flat == flat[:1], axis=0)) or np.isnan(flat).any())


def diagnose(tree: xr.DataTree, var_names: Sequence[str],
             describe: Callable[[str], str] | None = None) -> Diagnostics:
    """R-hat, bulk/tail ESS (arviz-stats) and divergences; lists every parameter that fails.

    ``var_names`` are sampled sites: every one of them should move. One whose draws have no
    spread at all (stuck at one value in every chain) fails as R-hat inf and ESS 0; fixed prior
    sites are deterministic, never sampled, and do not belong in ``var_names``. ``describe``
    turns a site's name into the words the problems use (e.g. the law's parameter behind it).
    """
    name = describe or (lambda v: v)
    post = tree["posterior"].to_dataset()[list(var_names)]
    num_chains, num_draws = post.sizes["chain"], post.sizes["draw"]
    stuck = [v for v in var_names if _stuck(post[v].values)]
    varying = [v for v in var_names if v not in stuck]
    post = post[varying]
    with warnings.catch_warnings():
        # A chain that never moved has no within-chain variance: arviz-stats divides by zero and
        # returns NaN, which is handled below as a failure, so its warning adds nothing.
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        warnings.filterwarnings("ignore", "divide by zero encountered", RuntimeWarning)
        if varying:
            ess_bulk = arviz_stats.ess(post, method="bulk")
            ess_tail = arviz_stats.ess(post, method="tail")
            rhat = arviz_stats.rhat(post) if num_chains > 1 else None
        else:  # every site stuck (arviz-stats cannot take an empty dataset): the stuck list says it all
            ess_bulk = ess_tail = xr.Dataset()
            rhat = xr.Dataset() if num_chains > 1 else None
    diverging = np.asarray(tree["sample_stats"]["diverging"].values, dtype=bool)
    divergences = int(diverging.sum())

    def worst(ds: xr.Dataset, pick, nan_as: float) -> dict[str, float]:
        """Worst value per variable; NaN (a stuck chain) counts as ``nan_as``, never as fine."""
        out = {}
        for v in ds.data_vars:
            values = np.asarray(ds[v].values, dtype=float)
            out[v] = nan_as if np.isnan(values).any() else float(pick(values))
        return out

    bulk, tail = worst(ess_bulk, np.min, 0.0), worst(ess_tail, np.min, 0.0)
    rh = worst(rhat, np.max, np.inf) if rhat is not None else {}
    for v in stuck:
        bulk[v] = tail[v] = 0.0
        if rhat is not None:
            rh[v] = np.inf
    ess_min = ESS_PER_CHAIN_MIN * num_chains
    problems = []
    if stuck:
        problems.append("no movement at all (one value in every draw of every chain) for "
                        + ", ".join(dict.fromkeys(name(v) for v in stuck)))
    bad_rhat = sorted((v for v, r in rh.items() if not r < RHAT_MAX and v not in stuck), key=lambda v: -rh[v])
    if bad_rhat:
        problems.append(
            "R-hat >= {} for {}".format(RHAT_MAX, ", ".join(f"{name(v)} ({rh[v]:.3f})" for v in bad_rhat))
        )
    bad_bulk = sorted((v for v, e in bulk.items() if not e >= ess_min and v not in stuck), key=lambda v: bulk[v])
    if bad_bulk:
        problems.append(
            f"bulk ESS < {ess_min} for " + ", ".join(f"{name(v)} ({bulk[v]:.0f})" for v in bad_bulk)
        )
    bad_tail = sorted((v for v, e in tail.items() if not e >= ess_min and v not in stuck), key=lambda v: tail[v])
    if bad_tail:
        problems.append(
            f"tail ESS < {ess_min} for " + ", ".join(f"{name(v)} ({tail[v]:.0f})" for v in bad_tail)
        )
    tails = {}
    if divergences:
        tails = divergence_tails(post, diverging)
        where = " and ".join(f"the {'high' if side == 'upper' else 'low'} end of {name(v)}"
                             for v, side in tails.items())
        problems.append(f"{divergences} divergent transition{'s' if divergences != 1 else ''}" + (
            f" (most of them at {where}, further out than chance puts them)" if where else ""))
    return Diagnostics(
        max_rhat=max(rh.values(), default=float("nan")),
        min_ess_bulk=min(bulk.values(), default=float("nan")),
        min_ess_tail=min(tail.values(), default=float("nan")),
        divergences=divergences,
        num_draws=num_draws,
        num_chains=num_chains,
        problems=problems,
        divergence_sites=tails,
    )


#: Family-wise false-alarm rate of naming a site as where the divergences sit, over every
#: scalar element of every sampled site and both ends (:func:`divergence_tails`).
DIVERGENCE_ALPHA = 0.05


def divergence_tails(post: xr.Dataset, diverging: np.ndarray, most: int = 3,
                     alpha: float = DIVERGENCE_ALPHA) -> dict[str, str]:
    """Where the divergent transitions sit: the sampled sites (at most ``most``, the most extreme
    first) with more than half of the ``k`` divergent draws further out at one end of the site's
    draws than chance puts them (``{site: "upper" | "lower"}``). A spread across groups at its
    upper end, say, is the funnel of non-centred offsets where the data pin each group
    (Betancourt & Girolami 2015): the site whose prior to question.

    The test, per scalar element and end: the share of the element's draws beyond each divergent
    draw is Uniform(0, 1) if the divergences have nothing to do with the element, so the j-th
    smallest of those shares (j = k // 2 + 1) is Beta(j, k + 1 - j); the element is named when it
    lies below that distribution's ``alpha / (2 m)`` quantile, m the number of scalar elements
    (Bonferroni over elements and ends). One divergence then names an element only in the outer
    ``alpha / (2 m)`` of its draws, not the nearest of many. Divergent draws of one chain are
    often consecutive, which this treats as independent: a cluster can pass as evidence."""
    k = int(diverging.sum())
    if k == 0:
        return {}
    flat = diverging.ravel()
    columns = {v: np.asarray(post[v].values, dtype=float).reshape(diverging.size, -1) for v in post.data_vars}
    m = sum(c.shape[1] for c in columns.values())
    j = k // 2 + 1
    from scipy import stats

    cut = float(stats.beta.ppf(alpha / (2 * m), j, k + 1 - j))
    found = {}
    for v, draws in columns.items():
        for x in draws.T:
            order = np.sort(x)
            above = 1 - np.searchsorted(order, x[flat], side="right") / x.size  # share of draws above each
            below = np.searchsorted(order, x[flat], side="left") / x.size
            for side, share in (("upper", above), ("lower", below)):
                # the j-th smallest share of draws beyond a divergent draw, at this end
                out = float(np.sort(share)[j - 1])
                if out <= cut and out < found.get(v, (1.0, ""))[0]:
                    found[v] = (out, side)
    return {v: side for v, (_, side) in sorted(found.items(), key=lambda kv: kv[1][0])[:most]}


def _flag(name: str, value, style: str) -> str:
    """One setting as the caller writes it: ``num_warmup=2000`` or ``--num-warmup 2000``."""
    if style == "cli":
        shown = (f"'{json.dumps(value)}'" if isinstance(value, dict) else
                 " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value)
        return f"--{name.replace('_', '-')} {shown}"
    return f"{name}={value!r}"


def convergence_message(diag: Diagnostics, law_name: str, *, settings: Mapping, n_groups: int,
                        free_sites: Sequence[str] = (), style: str = "python",
                        centre: Sequence[str] | None = None) -> str:
    """What failed and what to try next, each suggestion new to this fit.

    ``centre``: for a hierarchical fit that did not already centre its offsets, the names to
    suggest for ``fit(..., centre=...)`` (the law's irreducible loss and a scale).
    ``settings`` are the fit's ``num_warmup``, ``num_samples`` and ``target_accept``;
    ``free_sites`` the prior sites that were sampled (a fix is suggested only for one of them);
    ``style`` writes the suggestions as Python keywords (``"python"``) or CLI flags (``"cli"``).
    """
    if style not in ("python", "cli"):
        raise ValueError(f"style must be 'python' or 'cli', got {style!r}")
    warmup, draws = int(settings["num_warmup"]), int(settings["num_samples"])
    accept = float(settings["target_accept"])
    mixing = len(diag.problems) > (diag.divergences > 0)  # a problem besides diagnose's one line on divergences
    tips = []
    if mixing:
        tips.append(f"more warmup and draws ({_flag('num_warmup', 2 * warmup, style)}, "
                    f"{_flag('num_samples', 2 * draws, style)})")
    if diag.divergences or mixing:
        higher = next((t for t in (0.95, 0.99) if accept < t), None)
        if higher is not None:
            tips.append(f"a higher target acceptance ({_flag('target_accept', higher, style)}; this fit "
                        f"used {accept:g}) against divergences and small steps")
    if n_groups == 1:
        tips.append("if the table mixes setups (codebases, data sets, tokenizers), label each with a "
                    "'group' column for a hierarchical fit")
    elif mixing and centre:
        tips.append("if every group has many runs spanning its model sizes and token counts, half-centred "
                    f"group offsets ({_flag('centre', tuple(centre), style)})")
    spreads = [s for s, side in diag.divergence_sites.items() if side == "upper" and s.endswith("_tau")]
    if spreads:
        site = spreads[0]
        tips.append(f"a tighter prior on the spread across groups where the divergent transitions sit, if your "
                    f"setups are known to differ less (prior site '{site}', a half-normal: "
                    + _flag('priors', {site: {'dist': 'halfnormal', 'scale': 'S'}}, style).replace('"S"', "S")
                    .replace("'S'", "S") + " with S the "
                    "spread you believe)")
    fixable = [s for s in ("e_max", "e_start") if s in free_sites]
    example = {"e_max": 290.4521} if "e_max" in fixable else None
    tips.append("tighten the priors of the parameters named above" + (
        f", or fix ones the data cannot identify (e.g. {_flag('priors', example, style)}, "
        "the published E_max)" if example else ""))
    keep = (f"With {_flag('on_bad_fit', 'warn', style)} the command exits 0 with such a result."
            if style == "cli" else
            f"With {_flag('on_bad_fit', 'warn', style)} such a result comes back with a warning instead of an error.")
    return (
        f"the {law_name!r} fit did not converge: " + "; ".join(diag.problems) + ".\n"
        "What to try: " + "; ".join(tips) + ". " + keep
    )


#: Pareto-k above which a PSIS-LOO term is unreliable (Vehtari et al. 2024, "Pareto smoothed
#: importance sampling", JMLR: 0.7 for any sample size; arviz-stats uses min(1 - 1/log10 S, 0.7)).
PARETO_K_MAX = 0.7


def psis_loo(tree: xr.DataTree, var_name: str = "log_loss"):
    """PSIS-LOO of one fit (arviz-stats ``loo``, pointwise), from the ``log_likelihood`` group.

    ``var_name`` picks the observed site: a fit's ``log_likelihood`` group also holds the
    ``irreducible_prior`` factor, which is not data and must not enter the ELPD.
    """
    if "log_likelihood" not in tree.children:
        raise ValueError(
            "the fit has no log_likelihood group, so PSIS-LOO cannot be computed; refit it with "
            "this version of bayesmoe (run_nuts stores the pointwise log-likelihood)"
        )
    present = list(tree["log_likelihood"].data_vars)
    if var_name not in present:
        raise ValueError(f"log_likelihood has no {var_name!r}; it holds {present}")
    with warnings.catch_warnings():
        # arviz-stats' generic high-Pareto-k text names no run; the returned pareto_k does, and
        # bayesmoe.validation.compare_laws reports the count per fit in its table and a warning.
        warnings.filterwarnings("ignore", "Estimated shape parameter of Pareto", category=UserWarning)
        return arviz_stats.loo(tree, pointwise=True, var_name=var_name)


def compare_loo(elpds: Mapping[str, object]) -> pd.DataFrame:
    """ELPD differences, their standard errors and stacking weights (arviz-stats ``compare``).

    ``elpds`` maps a name to the :func:`psis_loo` of a fit; all must be on the same runs.
    """
    with warnings.catch_warnings():
        # arviz-stats 0.8 sorts with pandas' deprecated inplace=True; the result is unaffected
        warnings.filterwarnings("ignore", "The inplace keyword", category=DeprecationWarning)
        warnings.filterwarnings("ignore", "The inplace keyword", category=FutureWarning)
        try:
            from pandas.errors import Pandas4Warning
        except ImportError:  # pragma: no cover - older pandas
            pass
        else:
            warnings.filterwarnings("ignore", "The inplace keyword", category=Pandas4Warning)
        return arviz_stats.compare(dict(elpds))
