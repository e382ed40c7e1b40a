"""``bayesmoe.fit``: run table -> validated design -> NumPyro model -> NUTS -> FitResult."""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from bayesmoe.errors import InputError
from bayesmoe.data import validate_runs
from bayesmoe.discrepancy import learn as learn_discrepancy
from bayesmoe.errors import ConvergenceError, ConvergenceWarning
from bayesmoe.inference import diagnose, diagnose_arrays, progress_default, run_nuts, site_shapes
from bayesmoe.laws import Law, get_law
from bayesmoe.models import (Design, build_model, describe_site, make_design, padded_args, padded_length,
                             pooled_sites, program_key)
from bayesmoe.priors import resolve_priors, site_of, tau_site
from bayesmoe.results import FitResult, provenance_attrs

__all__ = ["fit"]


def _run_labels(index: pd.Index) -> np.ndarray:
    # netCDF needs one plain dtype for the run coordinate
    if index.dtype.kind in "iu":
        return index.to_numpy(dtype="int64")
    return index.astype(str).to_numpy(dtype=str)


def _uninformed_offsets(law: Law, spec, design: Design) -> list[str]:
    """Pooled exponents that no group's runs can tell apart from the group's level.

    A group's offset of an exponent p changes that group's runs only through ∂ ln term / ∂p of
    the terms that hold p. Where that derivative takes one value across each group's runs (α of
    a·N^-α in a table whose groups are each one model size), the offset rescales the term by a
    constant, which the group's level offset and irreducible loss absorb: it is identified by its
    prior alone, and it couples with the spread and the levels in a funnel (ModuleFormer, one
    group per model: 740 leapfrog steps, R-hat 1.013). Such exponents are shared by all groups.
    """
    params = {}
    for q in law.shape_params:
        prior = spec[q]
        loc = prior.args.get("value", prior.args.get("loc", 0.5))
        params[q] = jnp.asarray(np.exp(loc) if prior.dist == "lognormal" else loc, jnp.float32)
    x = {k: jnp.asarray(v, jnp.float32) for k, v in design.x.items()}
    out = []
    for q in law.pooled:
        if q not in law.shape_params:
            continue
        derivs = [np.asarray(jax.jacfwd(lambda v, t=t: t.log_monomial({**params, q: v}, x))(params[q]))
                  for t in law.terms]
        derivs = [d for d in derivs if np.any(np.abs(d) > 1e-12)]
        if not derivs:
            continue
        flat = all(np.ptp(d[design.group_idx == g]) <= 1e-6 * (1.0 + np.abs(d).max())
                   for d in derivs for g in range(design.n_groups))
        if flat:
            out.append(q)
    return out


def _centred_spreads(law: Law, spec, pooled: Sequence[str] | None, centre: str | Sequence[str],
                     n_groups: int) -> tuple[str, ...]:
    """The spreads whose groups' offsets ``fit(..., centre=...)`` samples half-centred
    (``models.CENTREDNESS``; NumPyro's ``LocScaleReparam``) instead of as ``τ · z[g]`` with
    ``z[g] ~ N(0, 1)``: the irreducible loss's (``centre`` names it) and the scale levels' (any
    scale names them: the levels share one offset per group).

    Which coordinates sample a hierarchy well depends on how much each group's own runs say about
    its value against the spread across groups (Papaspiliopoulos, Roberts & Sköld 2007; Betancourt
    & Girolami 2015). Non-centred offsets suit groups their data barely inform. Where the data pin
    every group's value, ``z[g] = (value − pop) / τ`` moves inversely with τ: a curved ridge that
    NUTS crosses only with its longest trajectories. Measured (docs/validation.md, "Convergence at
    the defaults"): on the Open-Athena IsoFLOP union (6 groups of 85-176 runs) half-centring these
    two spreads halved the leapfrog steps (1000 → 546) and raised the min bulk ESS 430 → 718; on
    Porian's 4 setups 261 → 118 steps. But on five alike groups (τ near 0) it ended at R-hat
    1.016 where the default gave 1.003, and neither a structural rule nor a least-squares estimate
    of τ² / (τ² + s²) told the two kinds of table apart reliably before the fit, so the default
    stays non-centred and this is the caller's choice.
    """
    centre = (centre,) if isinstance(centre, str) else tuple(centre)
    if not centre:
        return ()
    if n_groups == 1:
        raise InputError(f"centre={list(centre)} applies to hierarchical fits (a group column with several "
                         "values); this table has one group")
    pooled_set = pooled_sites(law, spec, pooled)
    out = set()
    for name in centre:
        if name not in (law.irreducible, *law.scales):
            raise InputError(f"centre names {name!r}: it takes the law's irreducible loss {law.irreducible!r} "
                             f"and its scales {list(law.scales)} (the levels share one offset per group)")
        site = site_of(law, name)
        if site not in pooled_set:
            raise InputError(f"centre names {name!r}, which has no group offsets in this fit (pooled: "
                             f"{sorted(pooled_set)})")
        out.add(tau_site(site))
    return tuple(sorted(out))


def _default_pooled(law: Law, spec, design: Design, pooled: Sequence[str] | None):
    """``pooled`` as given; for a hierarchical fit left to its defaults, the law's pooled
    parameters less the exponents no group can inform (:func:`_uninformed_offsets`, returned
    second), or ``None`` where there are none."""
    if pooled is not None or design.n_groups == 1:
        return pooled, []
    shared = _uninformed_offsets(law, spec, design)
    return ([q for q in law.pooled if q not in shared] if shared else None), shared


def sampler(law: Law, spec, designs: Sequence[Design], *, pooled: Sequence[str] | None,
            centre: str | Sequence[str], target_accept: float | None):
    """What NUTS needs for ``fit``'s model on ``designs`` (``fit``: its table; the backtests: one
    subset each): ``(model, args, init, target_accept, centred spreads, program key)``.

    The data are the sampler's arguments, padded to the bucket length of the longest design
    (:func:`bayesmoe.models.padded_length`, the padding masked out), so tables of one bucket (a
    campaign's refits, a second table in the session, the backtests' subsets) share one compiled
    program. The model, its pooled sites and the default ``target_accept`` follow the longest.
    """
    base = max(designs, key=lambda d: d.n_runs)
    length = padded_length(base.n_runs)
    pooled = tuple(pooled) if pooled is not None else None
    centred = _centred_spreads(law, spec, pooled, centre, base.n_groups)
    model = build_model(law, spec, base, pooled=pooled, n_runs=length, centred_spreads=centred)
    if target_accept is None:
        target_accept = default_target_accept(law, base)
    args, init = padded_args(law, model, designs, length)
    return model, args, init, target_accept, centred, program_key(law, spec, model, base.n_groups, length)


def default_start_candidates(law: Law, design: Design) -> int:
    """``fit``'s ``start_candidates`` when none is given: the law's for one group, else 1 (a
    descent of a hierarchy's potential can run down a funnel's neck: not measured)."""
    return 1 if design.n_groups > 1 else int(law.start_candidates)


def default_target_accept(law: Law, design: Design) -> float:
    """``fit``'s ``target_accept`` when none is given: 0.99 for a hierarchical fit, else the law's."""
    return 0.99 if design.n_groups > 1 else law.target_accept


def _note(table: pd.DataFrame, note: str) -> None:
    """A note on the fit: kept with the table's own (model card, report, summary) and logged, as
    ``validate_runs`` logs the table's."""
    table.attrs["notes"].append(note)
    logging.getLogger("bayesmoe").info("fit: %s", note)


def _site_layout(model, design: Design, args: tuple = (), init: Mapping | None = None) -> tuple[list[str], list[str]]:
    """Latent sample sites, and the sites that carry a group dimension, from one traced run of
    ``model(*args)`` (default: on the design's own data) with ``init`` at the improper sites."""
    kwargs = {} if args else {"log_loss": None}
    kinds, shapes, _ = site_shapes(model, args, kwargs, model.init_values if init is None else init)
    sampled, grouped = [], []
    for name, (kind, observed) in kinds.items():
        if kind not in ("sample", "deterministic") or observed or name == "log_loss":
            continue
        if kind == "sample":
            sampled.append(name)
        if design.n_groups > 1 and tuple(shapes[name].shape) == (design.n_groups,):
            grouped.append(name)
    return sampled, grouped


def _worth_extending(posterior: dict, diverging: np.ndarray, *, sampled: list[str], most: int) -> bool:
    """Whether ``fit``'s chains should sample on: they fail R-hat or ESS alone, and at ``most``
    draws per chain their ESS would reach the bar (:meth:`Diagnostics.worth_extending`)."""
    d = diagnose_arrays(posterior, diverging, sampled)
    return d.worth_extending(most / d.num_draws)


def fit(
    runs: pd.DataFrame,
    *,
    law: str | Law = "joint",
    priors: str | Mapping[str, Any] = "literature",
    num_chains: int = 4,
    num_warmup: int = 1000,
    num_samples: int = 1000,
    seed: int = 0,
    target_accept: float | None = None,
    on_bad_fit: str = "raise",
    progress: bool | None = None,
    pooled: Sequence[str] | None = None,
    unit_checks: bool = True,
    reference: Mapping[str, Any] | None = None,
    discrepancy: str | None = None,
    discrepancy_prior: Mapping[str, Any] | None = None,
    columns: Mapping[str, str] | None = None,
    loss_unit: str | None = None,
    centre: Sequence[str] = (),
    max_extensions: int = 2,
    start_candidates: int | None = None,
) -> FitResult:
    """Fit a scaling law to a table of training runs with NUTS.

    Parameters
    ----------
    runs : pandas.DataFrame
        One row per finished run; schema and aliases in :mod:`bayesmoe.data`. A ``group``
        column with several values makes the fit hierarchical.
    law : str or Law
        ``"joint"`` (Ludziejewski et al. 2025), ``"fine_grained"`` (Krajewski et al. 2024),
        ``"sparsity"`` (Abnar et al. 2025), ``"chinchilla"`` (Hoffmann et al. 2022), or a law
        registered with :func:`bayesmoe.laws.register_law`.
    priors : str or mapping
        ``"literature"`` (default) or ``"weak"``, or per-site overrides, e.g.
        ``{"e_start": 2.0732, "e_max": 290.4521}`` to fix Ê at the published values, or
        ``{"family": "weak", "alpha": {"dist": "normal", "loc": -0.2, "scale": 0.05}}``.
        Site names are documented in :mod:`bayesmoe.priors`.
    num_chains, num_warmup, num_samples : int
        NUTS chains and iterations per chain.
    seed : int
        Seeds the sampler; the same seed, data and versions give the same draws on the same CPU
        (XLA compiles for the host's vector instructions; the saved file records the CPU).
    target_accept : float, optional
        NUTS target acceptance probability; raise it (0.9-0.99) against divergences. Default for
        one group: the law's ``Law.target_accept`` (0.95 for every built-in law, measured in
        :mod:`bayesmoe.laws`); 0.99 for a
        hierarchical fit: with few groups the spreads' posterior
        spans setups from alike to distinct, and smaller steps were needed in its tails
        (5 groups × 60 runs: 1-4 divergences at 0.8-0.95, none at 0.99, ~2x the leapfrog steps).
        Where the groups are alike, a few divergences at the high end of a spread remain on some
        seeds and hosts (docs/validation.md, "Alike groups"); the error message names the spread.
    on_bad_fit : {"raise", "warn"}
        What a failed convergence check does: raise :class:`ConvergenceError` naming the
        parameters (the failed fit is its ``result`` attribute, to inspect or save), or emit a
        :class:`ConvergenceWarning` that stays on ``result.warnings``. Either way the result's
        ``attrs["convergence"]`` is ``"failed"`` and a saved copy loads with a warning.
    progress : bool, optional
        Progress bar; default on unless the ``CI`` environment variable is set.
    pooled : sequence of str, optional
        Law parameters with group-level values in a hierarchical fit (default: the law's
        exponents, irreducible loss and scales).
    unit_checks : bool
        Reject values that look like unit slips (see :func:`bayesmoe.data.validate_runs`).
    reference : mapping, optional
        Fixed reference points instead of the data's: ``anchor`` (input -> value),
        ``log_loss_ref``, ``log_loss_min``. The priors on scale levels and on ``c_rel`` are
        relative to these; simulation-based calibration fixes them so the prior does not depend
        on the simulated data (:mod:`bayesmoe.validation`).
    discrepancy : {"auto", "backtest", "prior", "none"}, optional
        Default: the environment variable ``BAYESMOE_DISCREPANCY`` if set, else ``"auto"``.
        The extrapolation-error term of every prediction beyond the fitted runs
        (:mod:`bayesmoe.discrepancy`): its growth rate τ is learned from rolling-origin backtests
        inside ``runs`` (3 short refits at compute quantiles 0.5, 0.65 and 0.8, each predicting
        the runs above its cut) and the prior distilled from real tables. ``"auto"``: backtests
        where the table has enough runs and distinct scales, else the prior alone; ``"none"``:
        τ = 0, the law-only band. It never changes the posterior of the law's parameters.
    discrepancy_prior : mapping, optional
        Prior on ln τ (``{"family": "lognormal", "mu": ..., "sigma": ...}``) instead of the
        shipped, distilled one.
    columns : mapping, optional
        Which column is what, schema name -> column, e.g. ``{"n_active": "ActiveParams",
        "tokens": "D"}``; ``"flops"`` derives tokens as D = C / (6·N). See
        :func:`bayesmoe.data.validate_runs`.
    loss_unit : {"nats", "bits", "perplexity"}, optional
        Unit of the loss column (default nats); converted to nats and recorded in the result.
    centre : sequence of str, optional
        Hierarchical fits: sample these parameters' group offsets half-centred instead of
        non-centred, e.g. ``("c", "a")`` for the joint law's irreducible loss and levels (any
        scale names the levels, which share one offset per group). Worth a try where every group
        has many runs spanning the inputs and the fit needs ~1000 leapfrog steps per draw (the
        tree-depth limit): on the Open-Athena IsoFLOP union it halved them
        (:func:`bayesmoe.fitting._centred_spreads`). Where groups are alike or thin, the default is
        the better choice. The same model in other coordinates: the posterior is unchanged.
    max_extensions : int
        When the draws fail R-hat or ESS alone (no divergence, no stuck parameter) and an ESS
        growing in proportion to the draws would reach the bar at 1 + ``max_extensions`` times
        ``num_samples``, every chain samples ``num_samples`` more draws from where it stopped,
        with the step size and mass matrix warmup adapted, and the checks run again on all draws:
        at most this many times (default 2, so up to 3 × ``num_samples`` per chain; 0 turns it
        off). Chains that mix slowly along a weakly identified direction (an irreducible loss
        with a long tail) need length, not a new start. The model card says when it happened.
    start_candidates : int, optional
        Each chain starts where the lowest of this many short descents of the posterior ended:
        its prior-median start and uniform draws, each moved 500 Adam steps
        (``bayesmoe.inference._best_start``). Guards against every chain warming up in a far
        worse mode (docs/validation.md, "Shared local modes"). Default: the law's
        ``Law.start_candidates`` for one group, 1 (the prior-median start alone) for several.

    Returns
    -------
    FitResult
    """
    if on_bad_fit not in ("raise", "warn"):
        raise InputError(f"on_bad_fit must be 'raise' or 'warn', got {on_bad_fit!r}")
    if target_accept is not None and not 0 < target_accept < 1:
        raise InputError(f"target_accept must be in (0, 1), got {target_accept}")
    for name, value, low in (("num_chains", num_chains, 1), ("num_warmup", num_warmup, 1),
                             ("num_samples", num_samples, 4), ("max_extensions", max_extensions, 0),
                             ("start_candidates", 1 if start_candidates is None else start_candidates, 1)):
        if int(value) != value or value < low:
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    law = get_law(law)
    spec = resolve_priors(law, priors)
    table = validate_runs(runs, required=law.inputs + ("loss",), unit_checks=unit_checks, columns=columns,
                          loss_unit=loss_unit)
    ref = dict(reference or {})
    unknown = set(ref) - {"anchor", "log_loss_ref", "log_loss_min"}
    if unknown:
        raise InputError(f"unknown reference keys {sorted(unknown)}; use anchor, log_loss_ref, log_loss_min")
    design = make_design(table, law, **ref)
    if pooled is not None:
        unknown = [p for p in pooled if p not in law.params]
        if unknown:
            raise InputError(f"pooled names {unknown} are not parameters of {law.name!r}: {law.params}")
    pooled, shared = _default_pooled(law, spec, design, pooled)
    if shared:
        names = ", ".join(describe_site(law, q) for q in shared)
        _note(table, f"{names}: one value for all groups (no group offsets): within each group every "
              "run has the same value of the input it multiplies, so no group's runs can tell "
              "their own value from their level; pass pooled=[...] (Python) to choose the "
              "pooled parameters yourself")
    model, args, init, target_accept, centred, key = sampler(law, spec, [design], pooled=pooled, centre=centre,
                                                            target_accept=target_accept)
    pooled_set = model.pooled_sites
    if start_candidates is None:
        start_candidates = default_start_candidates(law, design)
    args, init = jax.tree.map(lambda v: v[0], args), {name: v[0] for name, v in init.items()}
    sampled, group_sites = _site_layout(model, design, args, init)
    coords = {"group": list(design.groups), "run": _run_labels(table.index)}
    tree, timings = run_nuts(
        model,
        model_args=args,
        observed={"log_loss": design.log_loss.astype("float32")},
        num_chains=num_chains,
        num_warmup=num_warmup,
        num_samples=num_samples,
        seed=seed,
        target_accept=target_accept,
        progress=progress,
        coords=coords,
        group_dim_sites=group_sites,
        init_values=init,
        init_jitter=model.init_jitter,
        program_key=("fit", *key),
        extend=partial(_worth_extending, sampled=sampled, most=num_samples * (1 + int(max_extensions))),
        max_extensions=int(max_extensions),
        start_candidates=int(start_candidates),
    )
    if timings["restarts"]:
        moved = "; ".join(f"chain {r['chain']} from chain {r['from_chain']}'s state ({r['gap_nats']:.0f} nats)"
                          for r in timings["restarts"])
        _note(table, f"sampler: restarted after warmup {moved}. Each had settled in a mode of the posterior "
                     "holding under e^-10 of the best chain's mode's probability mass (Laplace estimate "
                     "from the late warmup; the gap in nats is minus its log) and sampled on from the "
                     "best chain's state with its own random key. The draws describe the dominant mode; "
                     "the far less probable one is left out, and R-hat no longer compares chains that "
                     "warmed up apart")
    hashed = [*law.inputs, "loss", "group"]
    constant = table[hashed].copy()
    tree["constant_data"] = xr.DataTree(
        xr.Dataset({c: ("run", constant[c].to_numpy()) for c in hashed}, coords={"run": coords["run"]})
    )
    tree.attrs = provenance_attrs(
        law=law, priors=spec, design=design, runs=constant, hashed_columns=hashed,
        pooled=pooled_set, sampled=sampled, timings=timings,
        column_map=table.attrs.get("column_map", {}),
        extra={"seed": seed, "target_accept": target_accept, "num_chains": num_chains,
               "num_warmup": num_warmup, "num_samples": num_samples, "max_extensions": int(max_extensions),
               "start_candidates": int(start_candidates), "loss_unit": table.attrs["loss_unit"],
               "table_notes": json.dumps(table.attrs["notes"]), "centred_spreads": json.dumps(list(centred))},
    )
    diag = diagnose(tree, sampled, describe=lambda site: describe_site(law, site))
    result = FitResult(tree, law, spec, diag)
    message = result.convergence_message("python")
    tree.attrs["convergence"] = "failed" if message else "ok"
    # The discrepancy term is learned after the main fit (its backtests refit subsets of the
    # table). A fit kept with on_bad_fit="warn" is meant for use, so it gets its backtests like
    # any other; one about to be rejected never pays for them: its result (err.result) carries
    # τ from the prior alone and says so.
    from_env = discrepancy is None
    if from_env:
        discrepancy = os.environ.get("BAYESMOE_DISCREPANCY", "auto")
    rejected = bool(message) and on_bad_fit == "raise"
    forced = rejected and discrepancy in ("auto", "backtest")
    disc = learn_discrepancy(
        table, law, mode="prior" if forced else discrepancy,
        note=("the fit failed its convergence checks, so its backtests were not run" if forced
              else "the environment sets BAYESMOE_DISCREPANCY=prior" if from_env else ""),
        prior=discrepancy_prior, progress=progress_default(progress),
        fit_kwargs={"priors": priors, "target_accept": target_accept, "seed": seed, "unit_checks": False,
                    "pooled": pooled, "centre": centre, "start_candidates": start_candidates},
    )
    tree.attrs["discrepancy"] = disc.to_json()
    if message:
        result.warnings.append(message)
        if rejected:
            raise ConvergenceError(message, result=result)  # the draws stay on err.result
        warnings.warn(message, ConvergenceWarning, stacklevel=2)
    return result
