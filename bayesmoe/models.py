"""NumPyro models: priors + a law + a heavy-tailed likelihood on log loss.

Parametrisation (chosen for NUTS)
---------------------------------
* Each scale (``a``, ``b``, ...) is sampled as its term's level at the data's centre (the
  geometric mean of every input), relative to the median observed loss: ``a_level``. The
  paper-form scale follows exactly, ``ln a = a_level + ln L_med − m_a(θ, x0)``, so the sampled
  coordinates are nearly uncorrelated with the exponents (ENV.md: 16 instead of 528 leapfrog
  steps per iteration on the joint law).
* The irreducible loss ``c_rel = ln(c / L_min)`` is identified only through curvature, so NUTS
  does not sample it; it samples an expected loss that the data pin down, and c follows:
  - One group (the plain model), every scale free: NUTS samples the expected loss at the data's
    centre ``log_loss_centre`` (pinned by the data) and how it splits there between the
    irreducible loss and each term, as log-ratios ``<scale>_vs_<c>`` = ln(term(x0) / c) (a
    softmax with c's logit at 0). c and the levels follow: the map from (``log_loss_centre``,
    log-ratios) to (``c_rel``, levels) has unit Jacobian, so the priors on ``c_rel`` and the
    levels apply exactly as specified. No region of this space is infeasible: c → 0 is a
    log-ratio → ∞, not a wall. Deriving c as ``L_best − Σ terms(x_best)`` from sampled levels
    (kept below for hierarchical fits) puts a wall where the terms reach L_best, and the
    fine_grained law, whose c is small next to its terms (Krajewski: c/L_min ≈ 0.17), hit it.
    Measured on the recovery tables, seeds 1-4 (4 × 500 warmup, target_accept 0.8):
    fine_grained 1/2/4/0 divergences derived, 0/1/0/0 with these log-ratios; the joint law's
    seeds 2-4 failed R-hat (1.012) derived, all four pass here. Log-ratios taken at the
    lowest-loss run instead of the centre left sparsity with 1/0/2/0 divergences (0/0/0/0 here):
    there the shares move with the exponents. (Those numbers used the former c_rel prior
    N(-0.5, 0.5). With N(-1.0, 0.7) and fit's default 1000 warmup iterations, fine_grained and
    sparsity still diverged or failed R-hat on some of seeds 1-8 at target_accept 0.8, none at
    0.95, which is now their ``Law.target_accept``: see bayesmoe.laws and tests/test_fit.py.)
    The Epoch Chinchilla table mixes no worse here than derived (300/300 draws: R-hat 1.012-1.014
    here, 1.007-1.016 derived, on fit seeds 0-2; both fine at 500/1000).
  - Slope coordinates (``Law.own_exponents``: the joint law's α, δ, β, ω at κ = 0.5): an exponent
    that appears in one term only (α and δ of a·Ê^δ·N^α) is sampled as that term's slope at the
    data's centre, ``<p>_slope`` = exponent (centred coordinate) × the term's share of the loss
    there (× share^κ for ``Law.slope_power`` κ); the exponent follows as slope / share^κ, its
    prior evaluated there with the Jacobian share^-κ (exact: tests/test_models.py). The data pin the slope (d ln L / d ln N at the centre
    = α·share_a) better than either factor, and in the exponent coordinates the posterior lies
    along the curved ridge α · share(a_vs_c) = const. Measured for the joint law (α, δ, β, ω) on
    the README's table, 4 × 1000/1000, seeds 0-7 (bench/screen_joint_nuts.py --table reference):
    divergences on 7 of 8 seeds at target_accept 0.8 in the exponent coordinates, on none at 0.9
    in slope coordinates. But SBC in slope coordinates (docs/validation/sbc_joint_slopes.csv)
    under-covered: mean 90 % coverage 0.85 against 0.90, 0.74 among fits with R-hat <= 1.01 and
    no divergences (where a term's share is small the slope's scale shrinks with it: a funnel
    whose chains agree and miss, it then seemed). Session 20 found the cause: from one start
    every chain warmed up in a mode tens of nats worse. With 8 start candidates
    (``Law.start_candidates``) SBC covers as it should, and the joint law uses them at
    κ = 0.5 (``Law.slope_power``); chinchilla lost ESS with them on Epoch's and Porian's tables
    (numbers in bayesmoe.laws).
  - Several groups, c not pooled: each group's c is derived from its own lowest-loss run as
    ``c = L_best − Σ terms(x_best)`` from the sampled levels, with the Jacobian that keeps the
    ``c_rel`` prior exact. Sampling c directly instead gave a curved c–scale ridge (50-100
    leapfrog steps and divergences on the joint law).
* Several groups: every pooled site gets a population value ``<site>_pop``, a spread
  ``<site>_tau`` and standard-normal offsets ``<site>_z`` (non-centred), so that
  ``<site>[g] = <site>_pop + <site>_tau · <site>_z[g]``; the spreads named in
  ``centred_spreads`` (``fit(..., centre=...)``) get offsets ``<site>_offset[g] ~ N(0, τ)``
  sampled half-centred as ``<site>_offset_decentered`` (:data:`CENTREDNESS`;
  ``fitting._centred_spreads`` says when that helps, and why it is not the default). A pooled
  irreducible loss gets group offsets too, around a population value derived as above from the
  table's lowest-loss run under the population parameters: deriving each group's c from its own
  frontier run made the hierarchy centred, and that funnelled (132-371 divergences on 5 groups ×
  60 runs).
* The pooled scale levels share one offset per group, ``level_tau · level_z[g]``: a setup's
  reducible loss is higher or lower as a whole (tokenizer, data), while its exponents and
  irreducible loss get their own offsets. Separate offsets per scale are identified only through
  their sum at the data and funnelled in the tail of their spreads (3-22 divergences at
  target_accept 0.95 on the same tables; 0 shared). One group: the plain model.
* Likelihood: ``ln L_obs ~ StudentT(nu, ln L(x; θ_group), sigma_i)``, ``sigma_i = sigma`` times
  ``exp(sigma_trend · (log10 6ND − its mean over the runs))`` for laws that read N and D
  (:mod:`bayesmoe.noise`).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext as _nullcontext
from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd

from bayesmoe import noise as run_noise
from bayesmoe.errors import PriorError
from bayesmoe.laws import Law
from bayesmoe.priors import LEVEL_TAU, Prior, site_of, tau_site

__all__ = ["Design", "make_design", "latent_sites", "params_from_latents", "build_model", "padded_args",
           "padded_length", "program_key"]


@dataclass(frozen=True)
class Design:
    """What a model needs from a validated run table: arrays and the data's reference points."""

    x: Mapping[str, np.ndarray]
    log_loss: np.ndarray
    group_idx: np.ndarray
    groups: tuple[str, ...]
    anchor: Mapping[str, float]
    log_loss_ref: float
    log_loss_min: float
    frontier: Mapping[str, np.ndarray] | None = None
    """Inputs of each group's lowest-loss run (arrays over groups)."""
    log_loss_frontier: np.ndarray | None = None

    @property
    def n_groups(self) -> int:
        return len(self.groups)

    @property
    def n_runs(self) -> int:
        return len(self.log_loss)


def make_design(runs: pd.DataFrame, law: Law, *, anchor: Mapping[str, float] | None = None,
                log_loss_ref: float | None = None, log_loss_min: float | None = None) -> Design:
    """Arrays for ``law`` from a table already checked by :func:`bayesmoe.data.validate_runs`."""
    x = {k: runs[k].to_numpy(dtype="float64") for k in law.inputs}
    groups, idx = np.unique(runs["group"].astype(str).to_numpy(), return_inverse=True)
    loss = runs["loss"].to_numpy(dtype="float64")
    if anchor is None:
        anchor = {k: float(np.exp(np.mean(np.log(v)))) for k, v in x.items()}
    best = [int(np.flatnonzero(idx == g)[np.argmin(loss[idx == g])]) for g in range(len(groups))]
    return Design(
        x=x,
        log_loss=np.log(loss),
        group_idx=idx.astype(np.int32),
        groups=tuple(str(g) for g in groups),
        anchor=dict(anchor),
        log_loss_ref=float(np.log(np.median(loss))) if log_loss_ref is None else log_loss_ref,
        log_loss_min=float(np.log(np.min(loss))) if log_loss_min is None else log_loss_min,
        frontier={k: v[best] for k, v in x.items()},
        log_loss_frontier=np.log(loss[best]),
    )


def latent_sites(law: Law) -> list[str]:
    """Prior sites that define the law's parameters (before noise and hierarchy)."""
    return [site_of(law, p) for p in law.params]


def coordinate(law: Law, site: str) -> str:
    """Name of the coordinate NUTS samples for a prior site (``alpha`` -> ``alpha_centred``)."""
    return f"{site}_centred" if site in law.centred else site


#: How messages spell the papers' parameters (Greek as in the papers, Ê's bounds as E_start/E_max)
_SPELLING = {"alpha": "α", "beta": "β", "gamma": "γ", "zeta": "ζ", "delta": "δ", "omega": "ω",
             "lambda": "λ", "e_start": "E_start", "e_max": "E_max"}


def describe_site(law: Law, site: str) -> str:
    """The law's words for a sampled site, for messages: ``omega_centred_z`` -> "ω (groups'
    offsets)", ``c_rel_z`` -> "c (groups' offsets)", ``level_tau`` -> "a, b (spread across
    groups)", ``log_loss_centre`` -> "a, b, c (expected loss at the data's centre)"."""
    def spell(param: str) -> str:
        return _SPELLING.get(param, param)

    site = site.removesuffix("_decentered")  # LocScaleReparam's sampled coordinate of an offset

    scales = ", ".join(spell(s) for s in law.scales)
    irr = spell(law.irreducible)
    fixed = {
        "sigma": "σ (noise scale)", "nu": "ν (noise tail)",
        run_noise.TREND: "η (the noise scale's trend per decade of compute)",
        "log_loss_centre": f"{scales}, {irr} (expected loss at the data's centre)",
        "log_loss_best": f"{irr} (through the expected loss at the lowest-loss run)",
        LEVEL_TAU: f"{scales} (spread across groups)",
        "level_z": f"{scales} (groups' offsets)",
        "level_offset": f"{scales} (groups' offsets)",
    }
    if site in fixed:
        return fixed[site]
    for term in law.terms:
        if site == f"{term.scale}_vs_{law.irreducible}":
            return f"{spell(term.scale)} vs {irr} (their split of the loss at the data's centre)"
    base, role = site, ""
    for suffix, words in (("_pop", "population value"), ("_tau", "spread across groups"),
                          ("_z", "groups' offsets"), ("_offset", "groups' offsets"),
                          ("_slope", "through its term's slope at the data's centre")):
        if base.endswith(suffix):
            base, role = base[: -len(suffix)], words
            break
    base = base.removesuffix("_centred")
    if base.endswith("_level") and base[: -len("_level")] in law.scales:
        base = base[: -len("_level")]
    elif base == f"{law.irreducible}_rel":
        base = law.irreducible
    return f"{spell(base)} ({role})" if role else spell(base)


def _anchor(design: Design) -> dict:
    return {k: jnp.asarray(v) for k, v in design.anchor.items()}


def centring_shift(law: Law, site: str, shape: Mapping, design: Design):
    """``slope · f(params, x0)``: what centring adds to a paper-form exponent."""
    slope, f = law.centred[site]
    return shape[slope] * f(shape, _anchor(design))


def params_from_latents(law: Law, latents: Mapping, design: Design):
    """Paper-form parameters from sampled coordinates; any batch shape broadcasts.

    ``latents`` maps each prior site to its sampled coordinate (centred exponents at the data's
    centre, scales as levels, the irreducible loss relative to the smallest loss).
    Returns ``(shape_params, log_scales, log_irreducible)``.
    """
    shape = {p: latents[p] for p in law.shape_params if p not in law.centred}
    for p in law.centred:
        shape[p] = latents[p] - centring_shift(law, p, shape, design)
    x0 = _anchor(design)
    log_scales = {
        t.scale: latents[f"{t.scale}_level"] + design.log_loss_ref - t.log_monomial(shape, x0)
        for t in law.terms
    }
    irr = f"{law.irreducible}_rel"
    log_irr = latents[irr] + design.log_loss_min if irr in latents else None
    return shape, log_scales, log_irr


def share_sites(law: Law) -> list[str]:
    """Sites of the plain model's share coordinates: ``<scale>_vs_<irreducible>`` is
    ln(term at the data's centre / irreducible loss), one per term."""
    return [f"{t.scale}_vs_{law.irreducible}" for t in law.terms]


def pooled_sites(law: Law, spec: Mapping[str, Prior], pooled: tuple[str, ...] | None) -> tuple[str, ...]:
    """Prior sites that get group-level values; fixed sites cannot vary by group."""
    names = law.pooled if pooled is None else tuple(pooled)
    return tuple(site_of(law, p) for p in names if not spec[site_of(law, p)].is_fixed)


def _prior_dist(law: Law, site: str, prior: Prior, shape: Mapping, design: Design):
    """The site's prior in its sampled coordinate (shifted by the centring, unit Jacobian)."""
    base = prior.to_numpyro()
    if site not in law.centred:
        return base
    shift = centring_shift(law, site, shape, design)
    return dist.TransformedDistribution(base, dist.transforms.AffineTransform(shift, 1.0))


def build_model(law: Law, spec: Mapping[str, Prior], design: Design, *, pooled: tuple[str, ...] | None = None,
                n_runs: int | None = None, centred_spreads: tuple[str, ...] = ()):
    """A NumPyro model function ``model(log_loss=None, frontier=None, data=None)`` for ``law``
    on ``design``.

    ``n_runs``: the run count of the ``data`` argument (:func:`padded_args`), when it is not the
    design's own: a model built for a padded length serves every table up to that length, with
    the data as arguments, so tables of one length share one compiled program.
    ``centred_spreads``: spreads (``level_tau``, ``<irreducible>_rel_tau``, ...) whose groups'
    offsets ``N(0, τ)`` are sampled :data:`CENTREDNESS`-centred rather than as ``τ · N(0, 1)``:
    the same model in other coordinates (tests/test_models.py), better where each group's runs
    pin its own value.
    """
    hierarchical = design.n_groups > 1
    pooled_set = pooled_sites(law, spec, pooled) if hierarchical else ()
    centred = tuple(sorted(set(centred_spreads))) if hierarchical else ()
    unknown = [t for t in centred if t not in {tau_site(s) for s in pooled_set}]
    if unknown:
        raise ValueError(f"centred spreads {unknown} belong to no pooled site of {sorted(pooled_set)}")
    irr_site = f"{law.irreducible}_rel"
    irr_prior = spec[irr_site]
    irr_free = not irr_prior.is_fixed
    irr_dist = irr_prior.to_numpyro() if irr_free else None
    irr_pooled = irr_site in pooled_set
    for site in pooled_set:
        if tau_site(site) not in spec:
            raise PriorError(f"hierarchical fit needs a prior for {tau_site(site)!r}")
    for p, (slope, _) in law.centred.items():
        if slope in law.centred:
            raise ValueError(f"law {law.name!r}: slope {slope!r} of centred {p!r} is itself centred")
    # slopes (and anything a centring reads) first, centred exponents after them
    order = [s for s in latent_sites(law) if s not in law.centred] + list(law.centred)
    x = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in design.x.items()}
    group_idx = jnp.asarray(design.group_idx)
    n_groups = design.n_groups
    n_runs = design.n_runs if n_runs is None else int(n_runs)

    # The plain model (one group, every scale and the irreducible loss free) samples the expected
    # loss at the data's centre and how it splits into the irreducible loss and each term there
    # (log-shares, a softmax): see the module docstring.
    level_sites = [f"{t.scale}_level" for t in law.terms]
    shares = (not hierarchical and irr_free and len(set(level_sites)) == len(level_sites)
              and not any(spec[s].is_fixed for s in level_sites))
    share_names = share_sites(law) if shares else []
    slope_sites = _slope_sites(law, spec) if shares else {}
    xf = None
    if shares:
        # start at the median loss, split evenly between the irreducible loss and the terms
        init_values = {"log_loss_centre": np.float32(design.log_loss_ref)}
        init_values.update({n: np.float32(0.0) for n in share_names})
        # and each slope at its exponent's prior location times that even share
        init_values.update({f"{site}_slope": np.float32(spec[site].args["loc"] / (len(law.terms) + 1) ** law.slope_power)
                            for site in slope_sites})
    elif irr_pooled or not hierarchical:
        # c derived at the table's lowest-loss run (one group: scalars, so c gets no spurious
        # length-1 axis; pooled: under the population parameters)
        best = int(np.argmin(design.log_loss_frontier))
        xf = {k: jnp.asarray(v[best], dtype=jnp.float32) for k, v in design.frontier.items()}
        init_values = {"log_loss_best": np.float32(design.log_loss_frontier[best])}
    else:
        # c derived at each group's own lowest-loss run
        xf = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in design.frontier.items()}
        init_values = {"log_loss_best": design.log_loss_frontier.astype(np.float32)}

    def frontier_terms(shape, log_scales, xf):
        """Sum of the law's terms at the frontier run(s) ``xf``: one per group, or one overall."""
        parts = [log_scales[t.scale] + t.log_monomial(shape, xf) for t in law.terms]
        return jnp.exp(jax.scipy.special.logsumexp(jnp.stack(jnp.broadcast_arrays(*parts)), axis=0))

    def model(log_loss=None, frontier=None, data=None):
        # ``frontier`` (inputs of the lowest-loss run) replaces the design's own: batched
        # simulation-based calibration refits one design with many loss vectors as arguments.
        # ``data`` replaces the runs' inputs and the reference points too (keys ``x``, ``mask``,
        # ``group_idx``, ``anchor``, ``log_loss_ref``, ``log_loss_min``): the discrepancy term's
        # backtests fit several subsets of a table, padded to one length (``mask`` False on the
        # padding), in one compiled program.
        xf_run = xf if frontier is None else frontier
        if data is None:
            d, x_run, gidx, mask = design, x, group_idx, None
        else:
            d = replace(design, anchor=data["anchor"], log_loss_ref=data["log_loss_ref"],
                        log_loss_min=data["log_loss_min"])
            x_run, gidx, mask = data["x"], data["group_idx"], data["mask"]

        def per_run(v):
            v = jnp.asarray(v)
            return v[gidx] if v.ndim == 1 else v

        latents, population, offsets = {}, {}, {}
        for site in order:
            if site == irr_site and irr_free:
                continue  # derived below from the frontier loss
            if shares and site in level_sites:
                continue  # derived below from the shares
            if site in slope_sites:
                continue  # derived below from its term's slope and share
            prior, name = spec[site], coordinate(law, site)
            if prior.is_fixed:
                value = jnp.asarray(prior.args["value"], jnp.float32)
                if site in law.centred:
                    value = value + centring_shift(law, site, latents, d)
                latents[site] = numpyro.deterministic(name, value)
            elif site in pooled_set:
                pop_shape = {k: population.get(k, v) for k, v in latents.items()}
                mu = numpyro.sample(f"{name}_pop", _prior_dist(law, site, prior, pop_shape, d))
                tau_name = tau_site(site)
                if tau_name not in offsets:
                    tau = numpyro.sample(tau_name, spec[tau_name].to_numpyro())
                    base = "level" if tau_name == LEVEL_TAU else name
                    with numpyro.plate("group", n_groups):
                        if tau_name in centred:
                            offsets[tau_name] = _partly_centred(f"{base}_offset", tau)
                        else:
                            z = numpyro.sample(f"{base}_z", dist.Normal(0.0, 1.0))
                            offsets[tau_name] = tau * z
                latents[site] = numpyro.deterministic(name, mu + offsets[tau_name])
                population[site] = mu
            else:
                latents[site] = numpyro.sample(name, _prior_dist(law, site, prior, latents, d))

        if shares:
            improper = dist.ImproperUniform(dist.constraints.real, (), ())
            log_centre = numpyro.sample("log_loss_centre", improper)
            u = jnp.stack([numpyro.sample(n, improper) for n in share_names])
            log_share = jax.nn.log_softmax(jnp.concatenate([jnp.zeros((1,)), u]))
            lp = 0.0
            for t, ls in zip(law.terms, log_share[1:]):
                level = ls + log_centre - d.log_loss_ref
                latents[f"{t.scale}_level"] = numpyro.deterministic(f"{t.scale}_level", level)
                lp = lp + spec[f"{t.scale}_level"].to_numpyro().log_prob(level)
            c_rel = log_share[0] + log_centre - d.log_loss_min
            ok = irr_dist.support(c_rel)
            c_rel = jnp.where(ok, c_rel, irr_dist.support.feasible_like(c_rel))
            # (log_loss_centre, shares) -> (c_rel, levels) has unit Jacobian: the priors apply as given
            lp = lp + irr_dist.log_prob(c_rel)
            numpyro.factor("share_prior", jnp.where(ok, lp, -jnp.inf))
            latents[irr_site] = numpyro.deterministic(irr_site, c_rel)
            for site, i in slope_sites.items():
                slope = numpyro.sample(f"{site}_slope", improper)
                kappa = law.slope_power
                value = slope * jnp.exp(-kappa * log_share[i + 1])
                latents[site] = numpyro.deterministic(coordinate(law, site), value)
                # the exponent's prior (in its centred coordinate) times |d exponent / d slope| = share^-κ
                numpyro.factor(f"{site}_prior", _prior_dist(law, site, spec[site], latents, d).log_prob(value)
                               - kappa * log_share[i + 1])
        shape, log_scales, _ = params_from_latents(law, latents, d)
        if irr_free and not shares:
            # The irreducible loss is identified only through curvature: sampled directly it forms
            # a curved ridge with the scales and exponents that NUTS crossed with 50-100 steps and
            # divergences. The expected loss at the best run is pinned by the data, so sample
            # that and derive c = L_best - sum of terms there; the Jacobian dc/dln L_best = L_best
            # keeps the prior on c_rel = ln(c / L_min) exactly as specified. Pooled: this is done
            # for the population's c (its terms from the population parameters), and the groups'
            # c get non-centred offsets around it, like every other pooled site.
            if irr_pooled:
                pop_latents = {k: population.get(k, v) for k, v in latents.items()}
                at_shape, at_scales, _ = params_from_latents(law, pop_latents, d)
                log_best = numpyro.sample("log_loss_best", dist.ImproperUniform(dist.constraints.real, (), ()))
            else:
                at_shape, at_scales = shape, log_scales
                with numpyro.plate("group", n_groups) if hierarchical else _nullcontext():
                    log_best = numpyro.sample(
                        "log_loss_best", dist.ImproperUniform(dist.constraints.real, (), ())
                    )
            gap = jnp.exp(log_best) - frontier_terms(at_shape, at_scales, xf_run)
            ok = gap > 0
            c_rel = jnp.log(jnp.where(ok, gap, 1.0)) - d.log_loss_min
            # outside the prior's support (c above the smallest loss, for a fraction's prior) the
            # density is zero; evaluate it at a feasible point there, so no NaN reaches a gradient
            ok = ok & irr_dist.support(c_rel)
            c_rel = jnp.where(ok, c_rel, irr_dist.support.feasible_like(c_rel))
            prior_lp = irr_dist.log_prob(c_rel)
            # density of c_rel, times dc_rel/dc = 1/c, times dc/dlog_best = L_best
            lp = prior_lp - (c_rel + d.log_loss_min) + log_best
            numpyro.factor("irreducible_prior", jnp.sum(jnp.where(ok, lp, -jnp.inf)))
            if irr_pooled:
                population[irr_site] = numpyro.deterministic(f"{irr_site}_pop", c_rel)
                tau = numpyro.sample(f"{irr_site}_tau", spec[f"{irr_site}_tau"].to_numpyro())
                with numpyro.plate("group", n_groups):
                    if f"{irr_site}_tau" in centred:
                        c_rel = c_rel + _partly_centred(f"{irr_site}_offset", tau)
                    else:
                        z = numpyro.sample(f"{irr_site}_z", dist.Normal(0.0, 1.0))
                        c_rel = c_rel + tau * z
            latents[irr_site] = numpyro.deterministic(irr_site, c_rel)
        log_irr = latents[irr_site] + d.log_loss_min

        for p in law.centred:
            numpyro.deterministic(p, shape[p])
        for s, v in log_scales.items():
            numpyro.deterministic(s, jnp.exp(v))
        numpyro.deterministic(law.irreducible, jnp.exp(log_irr))
        if hierarchical:
            pop_latents = {k: population.get(k, v) for k, v in latents.items()}
            pop_shape, pop_scales, pop_irr = params_from_latents(law, pop_latents, d)
            for p in law.centred:
                if site_of(law, p) in pooled_set or law.centred[p][0] in pooled_set:
                    numpyro.deterministic(f"{p}_pop", pop_shape[p])
            for s, v in pop_scales.items():
                numpyro.deterministic(f"{s}_pop", jnp.exp(v))
            numpyro.deterministic(f"{law.irreducible}_pop", jnp.exp(pop_irr))

        mean = law.log_loss_from_log_scales(
            {p: per_run(v) for p, v in shape.items()},
            {s: per_run(v) for s, v in log_scales.items()},
            per_run(log_irr),
            x_run,
        )
        sigma = _sample_or_fix("sigma", spec["sigma"])
        nu = _sample_or_fix("nu", spec["nu"])
        # σ per run: the noise's trend in compute (bayesmoe.noise), unless the priors remove it
        trend = _sample_or_fix(run_noise.TREND, spec[run_noise.TREND]) if run_noise.TREND in spec else None
        sigma = run_noise.model_scale(sigma, trend, x_run, d.anchor)
        with numpyro.plate("run", n_runs):
            noise = dist.StudentT(nu, mean, sigma)
            numpyro.sample("log_loss", noise if mask is None else noise.mask(mask), obs=log_loss)

    model.pooled_sites = pooled_set
    model.centred_spreads = centred
    model.init_values = init_values  # improper sites cannot be drawn
    # each chain starts these within a radius of their value (ln loss: 5 %, 2 % at the lowest-loss
    # run, where c = L_best − terms must stay positive; log-ratios: half a unit), so the chains
    # begin apart and R-hat can see a site that never moves
    model.init_jitter = {n: 0.5 if n in share_names else 0.02 if n == "log_loss_best" or n.endswith("_slope")
                         else 0.05 for n in init_values}
    return model


def _slope_sites(law: Law, spec: Mapping[str, Prior]) -> dict[str, int]:
    """Exponents the plain model samples as their term's slope: ``{site: term index}``.

    Only an exponent with a normal prior (the slope's support is then the whole line, whatever
    the share) that no centring reads; a fixed or bounded prior keeps the exponent coordinate."""
    reads = {slope for slope, _ in law.centred.values()}
    index = {t.scale: i for i, t in enumerate(law.terms)}
    out = {}
    for p, scale in law.own_exponents.items():
        site = site_of(law, p)
        if spec[site].dist == "normal" and site not in reads:
            out[site] = index[scale]
    return out


#: How far :func:`build_model`'s ``centred_spreads`` are centred: NumPyro's ``LocScaleReparam``
#: samples ``<name>_decentered ~ N(0, τ^c)`` and sets the offset to ``τ^(1-c)`` times it (c = 0:
#: ``τ · z``, c = 1: ``N(0, τ)`` itself). Half-way: measured in fitting._centred_spreads.
CENTREDNESS = 0.5


def _partly_centred(name: str, tau):
    """Group offsets ``~ N(0, τ)`` in :data:`CENTREDNESS`-centred coordinates."""
    from numpyro.infer.reparam import LocScaleReparam

    with numpyro.handlers.reparam(config={name: LocScaleReparam(centered=CENTREDNESS)}):
        return numpyro.sample(name, dist.Normal(0.0, tau))


def _sample_or_fix(name: str, prior: Prior):
    if prior.is_fixed:
        return numpyro.deterministic(name, jnp.asarray(prior.args["value"], jnp.float32))
    return numpyro.sample(name, prior.to_numpyro())


def program_key(law: Law, spec: Mapping[str, Prior], model, n_groups: int, n_runs: int) -> tuple:
    """What makes two models from :func:`build_model`, given their data as arguments, the same
    function: the law, the priors, the pooled sites, the group count and the padded run count
    (the design's values enter only through the arguments). Keys the compiled samplers kept
    in a process (:func:`bayesmoe.inference.run_nuts_batched`)."""
    from bayesmoe.priors import spec_to_json

    return (law.name, id(law), spec_to_json(spec), tuple(model.pooled_sites), tuple(model.centred_spreads),
            int(n_groups), int(n_runs))


def padded_length(n_runs: int) -> int:
    """The run count a table of ``n_runs`` runs is padded to: the next of 16, 24, 32, 48, 64, 96,
    ... (powers of two and 1.5 times them). Tables of one padded length share the compiled
    sampler (a campaign's refits, a user's second table); the padding costs at most a third of
    the likelihood's work on masked runs."""
    length = 16
    while length < n_runs:
        length = length * 3 // 2 if length & (length - 1) == 0 else length * 4 // 3
    return length


def padded_args(law: Law, model, designs, length: int | None = None) -> tuple[tuple, dict]:
    """``model``'s batched arguments ``(log_loss, frontier, data)`` and its improper sites'
    starting values for several designs (a table, or subsets of one), each padded to ``length``
    runs (default: the longest design's) by repeating its first run, with ``data["mask"]`` False
    on the padding: masked runs add nothing to the log density, so each data set's posterior is
    its own runs'. ``model`` must be built for that length (:func:`build_model`'s ``n_runs``)."""
    n = max(d.n_runs for d in designs) if length is None else int(length)
    if n < max(d.n_runs for d in designs):
        raise ValueError(f"cannot pad {max(d.n_runs for d in designs)} runs to {n}")

    def pad(v):  # repeat the first run: masked out, but finite for the gradients
        v = np.asarray(v)
        return np.concatenate([v, np.repeat(v[:1], n - len(v))])

    f32 = np.float32
    data = {
        "x": {k: np.stack([pad(d.x[k]) for d in designs]).astype(f32) for k in law.inputs},
        "mask": np.stack([np.arange(n) < d.n_runs for d in designs]),
        "group_idx": np.stack([pad(d.group_idx) for d in designs]).astype(np.int32),
        "anchor": {k: np.array([d.anchor[k] for d in designs], f32) for k in law.inputs},
        "log_loss_ref": np.array([d.log_loss_ref for d in designs], f32),
        "log_loss_min": np.array([d.log_loss_min for d in designs], f32),
    }
    log_loss = np.stack([pad(d.log_loss) for d in designs]).astype(f32)
    init, frontier = {}, None
    for name, v in model.init_values.items():
        if name == "log_loss_centre":
            init[name] = data["log_loss_ref"]
        elif name == "log_loss_best":
            if np.ndim(v) == 0:  # one frontier run: the lowest-loss run of the subset
                best = [int(np.argmin(d.log_loss_frontier)) for d in designs]
                frontier = {k: np.array([d.frontier[k][b] for d, b in zip(designs, best)], f32) for k in law.inputs}
                init[name] = np.array([d.log_loss_frontier[b] for d, b in zip(designs, best)], f32)
            else:  # each group's lowest-loss run
                frontier = {k: np.stack([d.frontier[k] for d in designs]).astype(f32) for k in law.inputs}
                init[name] = np.stack([d.log_loss_frontier for d in designs]).astype(f32)
        else:
            init[name] = np.broadcast_to(np.asarray(v, f32), (len(designs), *np.shape(v)))
    return (log_loss, frontier, data), init
