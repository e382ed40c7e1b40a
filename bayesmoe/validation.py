"""Evidence that the posterior is honest: simulation-based calibration (Talts et al. 2018).

SBC draws parameters from the prior, simulates a run table from them, fits it, and records where
the true value ranks among the posterior draws. If the model and sampler are right the ranks are
uniform and every central interval covers the truth at its nominal rate.

bayesmoe's priors on the scale levels and on ``c_rel`` are stated relative to reference points of
the data (its geometric centre, median and smallest loss). For SBC those reference points are
fixed before simulating (``fit(..., reference=...)``), so the prior that generates the data is
exactly the prior the fit uses.

    from bayesmoe.validation import sbc
    table = sbc("chinchilla", n_datasets=20, out="sbc.csv")   # one row per data set; resumes

Each data set appends one row to ``out`` as soon as it is done, so a long run can be stopped and
resumed (rows already present are skipped).

Ordered extrapolation hold-out (:func:`extrapolation_holdout`): fit on the runs at or below a
compute (or size) threshold, predict the runs above it, and score the posterior median and the
50 % / 90 % intervals of a new run. Law comparison (:func:`compare_laws`): PSIS-LOO ELPD of fits
on the same runs, with each fit's count of unreliable (Pareto k > 0.7) terms.

    from bayesmoe.validation import extrapolation_holdout, compare_laws
    ho = extrapolation_holdout(runs, law="chinchilla", by="compute", quantile=0.8)
    ho.summary["max_abs_error"], ho.summary["coverage_90"]
    compare_laws({"joint": fit_a, "no interaction": fit_b})
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayesmoe import noise as run_noise
from bayesmoe.errors import InputError
from bayesmoe.data import validate_runs
from bayesmoe.inference import (PARETO_K_MAX, RESTART_NATS, compare_loo, diagnose_arrays, progress_default,
                                psis_loo, run_nuts_batched)
from bayesmoe.laws import get_law
from bayesmoe.models import build_model, centring_shift, make_design, params_from_latents
from bayesmoe.priors import resolve_priors
from bayesmoe.results import HOLDOUT_LEVELS
from bayesmoe.testing import design_grid

__all__ = ["score_holdout", "sbc", "draw_from_prior", "batch_model", "fit_batch", "sbc_check", "SBCCheck", "sbc_parameters",
           "sbc_failed_fits", "expected_coverage", "COVERAGE_LEVELS", "extrapolation_holdout",
           "Holdout", "compare_laws", "HOLDOUT_LEVELS"]

COVERAGE_LEVELS = (0.5, 0.8, 0.9, 0.95)


def _reference(law, design_df: pd.DataFrame, loss_ref: float, loss_min: float) -> dict:
    anchor = {k: float(np.exp(np.mean(np.log(design_df[k].to_numpy(float))))) for k in law.inputs}
    return {"anchor": anchor, "log_loss_ref": float(np.log(loss_ref)), "log_loss_min": float(np.log(loss_min))}


def draw_from_prior(law, priors, design_df: pd.DataFrame, reference: dict, seed: int):
    """One draw of the law's parameters (paper form) and sigma from the fit's prior, and a
    table simulated from them (Student-t(nu) noise on ln loss, as the likelihood)."""
    law = get_law(law)
    spec = resolve_priors(law, priors)
    table = design_df.assign(loss=1.0, group="sbc")  # only the inputs matter to the design here
    design = make_design(table, law, **reference)
    key = jax.random.PRNGKey(seed)

    def sample(site):
        nonlocal key
        key, sub = jax.random.split(key)
        prior = spec[site]
        if prior.is_fixed:
            return jnp.asarray(prior.args["value"], jnp.float32)
        return prior.to_numpyro().sample(sub)

    shape = {p: sample(p) for p in law.shape_params}
    latents = dict(shape)
    for p in law.centred:  # the coordinate NUTS samples, from the paper-form draw
        latents[p] = shape[p] + centring_shift(law, p, shape, design)
    for s in law.scales:
        latents[f"{s}_level"] = sample(f"{s}_level")
    latents[f"{law.irreducible}_rel"] = sample(f"{law.irreducible}_rel")
    sigma, nu = sample("sigma"), sample("nu")
    trend = sample(run_noise.TREND) if run_noise.TREND in spec else None  # only then: the same draws as before it
    paper_shape, log_scales, log_irr = params_from_latents(law, latents, design)
    x = {k: jnp.asarray(design_df[k].to_numpy(float)) for k in law.inputs}
    mean = law.log_loss_from_log_scales(paper_shape, log_scales, log_irr, x)
    key, sub = jax.random.split(key)
    log_loss = mean + run_noise.model_scale(sigma, trend, x, design.anchor) * jax.random.t(sub, nu, shape=mean.shape)
    truth = {p: float(v) for p, v in paper_shape.items()}
    truth.update({s: float(jnp.exp(v)) for s, v in log_scales.items()})
    truth[law.irreducible] = float(jnp.exp(log_irr))
    truth["sigma"] = float(sigma)
    if trend is not None:
        truth[run_noise.TREND] = float(trend)
    out = design_df.copy()
    out["loss"] = np.exp(np.asarray(log_loss, dtype="float64"))
    return truth, out


def _append_row(out: Path, row: dict) -> None:
    """Append one row to a CSV; if its columns differ from the file's (a file written by an older
    version), rewrite the file with the union of columns rather than misalign them."""
    new = pd.DataFrame([row])
    if not out.exists():
        new.to_csv(out, index=False)
        return
    header = list(pd.read_csv(out, nrows=0).columns)
    if header == list(new.columns):
        new.to_csv(out, mode="a", header=False, index=False)
    else:
        pd.concat([pd.read_csv(out), new], ignore_index=True).to_csv(out, index=False)


def batch_model(law, spec, design_df: pd.DataFrame, reference: dict):
    """One model for many simulated tables on ``design_df``: they share the design and the fixed
    reference points, and their losses and lowest-loss run (where the irreducible loss is
    derived) are the model's arguments (see :func:`fit_batch`). Returns ``(model, design)``."""
    design = make_design(design_df.assign(loss=1.0, group="sbc"), law, **reference)
    return build_model(law, spec, design), design


def fit_batch(law, model, design_df: pd.DataFrame, log_loss: np.ndarray, **nuts):
    """Fit the tables whose ln losses are the rows of ``log_loss`` (data sets × runs of
    ``design_df``) with :func:`bayesmoe.inference.run_nuts_batched`; ``nuts`` are its keywords
    (num_chains, num_warmup, num_samples, seed, target_accept; start_candidates, by default the
    law's, as ``fit`` of one group)."""
    nuts.setdefault("start_candidates", get_law(law).start_candidates)
    log_loss = np.asarray(log_loss, dtype=np.float32)
    n_sets = len(log_loss)
    init = {n: np.broadcast_to(np.asarray(v, np.float32), (n_sets,)) for n, v in model.init_values.items()}
    frontier = None  # the share coordinates read no frontier run
    if "log_loss_best" in init:  # where c is derived from the lowest-loss run
        best = log_loss.argmin(axis=1)
        frontier = {k: design_df[k].to_numpy(dtype=np.float32)[best] for k in law.inputs}
        init["log_loss_best"] = log_loss.min(axis=1)
    if "log_loss_centre" in init:  # where the plain model splits the loss at the data's centre
        init["log_loss_centre"] = np.median(log_loss, axis=1)
    return run_nuts_batched(model, (log_loss, frontier), init_values=init, **nuts)


def sbc(law: str = "chinchilla", *, n_datasets: int = 200, n_runs: int = 100, priors="literature",
        loss_ref: float = 3.0, loss_min: float = 2.2, num_chains: int = 4, num_warmup: int = 500,
        num_samples: int = 250, thin: int = 10, seed: int = 0, batch_size: int = 10,
        target_accept: float | None = None, out: str | Path | None = None,
        progress: bool | None = None, start_candidates: int | None = None) -> pd.DataFrame:
    """Simulation-based calibration of ``law`` on its :func:`bayesmoe.testing.design_grid`.

    Every data set is fitted with the model, priors and NUTS settings of :func:`bayesmoe.fit`
    (dense mass matrix, prior-median starts, ``target_accept`` by default ``fit``'s one-group
    default, the law's ``Law.target_accept``),
    ``batch_size`` data sets at a time in one vectorised program
    (:func:`bayesmoe.inference.run_nuts_batched`). Returns (and appends to ``out``) one row per
    data set: for each parameter the rank of the truth among ``num_chains·num_samples/thin``
    posterior draws, whether each central interval in :data:`COVERAGE_LEVELS` covers it, and the
    fit's diagnostics (divergences, max R-hat, min bulk ESS, mean leapfrog steps, ``started``:
    every chain found a finite starting point, ``restarted_chains``: how many chains restarted
    after warmup from the best one, as :func:`bayesmoe.fit` does) and its share of the batch's
    wall time. ``start_candidates``: as in :func:`bayesmoe.fit`, by default the law's
    ``Law.start_candidates`` (recorded in the rows when > 1).
    """
    from tqdm.auto import tqdm

    law = get_law(law)
    target_accept = law.target_accept if target_accept is None else target_accept
    start_candidates = law.start_candidates if start_candidates is None else start_candidates
    for name, value in (("n_datasets", n_datasets), ("batch_size", batch_size), ("thin", thin),
                        ("num_chains", num_chains), ("num_warmup", num_warmup), ("num_samples", num_samples),
                        ("start_candidates", start_candidates)):
        if int(value) != value or value < 1:
            raise InputError(f"{name} must be an integer >= 1, got {value!r}")
    spec = resolve_priors(law, priors)
    design_df = design_grid(law, n_runs=n_runs, seed=seed)
    reference = _reference(law, design_df, loss_ref, loss_min)
    out = Path(out) if out else None
    done = set()
    # every row records the settings that define its data set and fit; a resumed file must match
    # all of them, so one CSV never mixes runs of different tables, priors, seeds or code
    from bayesmoe import __version__
    from bayesmoe.priors import spec_to_json

    settings = {"law": law.name, "draws": len(range(0, num_chains * num_samples, thin)), "n_runs": n_runs,
                "prior_sha256": hashlib.sha256(spec_to_json(spec).encode()).hexdigest()[:16],
                "seed": seed, "target_accept": float(target_accept), "num_warmup": num_warmup,
                "restart_nats": RESTART_NATS, "bayesmoe_version": __version__}
    if start_candidates > 1:  # a column only where used, so files written before it still resume
        settings["start_candidates"] = int(start_candidates)
    if out is not None and out.exists():
        old = pd.read_csv(out)
        clash = [f"{col} {sorted(set(old[col]))} (this run: {want})" if col in old
                 else f"{col} not recorded (written by an older bayesmoe; this run: {want})"
                 for col, want in settings.items()
                 if col not in old or set(old[col]) != {want}]
        if clash:
            raise InputError(f"{out} holds SBC rows of another setting: {'; '.join(clash)}; "
                             "resume with the same settings or write to a new file")
        done = set(old["dataset"].astype(int))
    todo = [i for i in range(n_datasets) if i not in done]
    model, design = batch_model(law, spec, design_df, reference)
    from bayesmoe.fitting import _site_layout  # fitting imports results, which imports this package

    sampled, _ = _site_layout(model, design)  # the sites fit() diagnoses
    rows = []
    bar = tqdm(total=len(todo), desc=f"SBC {law.name}", disable=not progress_default(progress))
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        truths, losses = [], []
        for i in batch:
            truth, table = draw_from_prior(law, spec, design_df, reference, seed=10_000 * seed + i)
            truths.append(truth)
            losses.append(np.log(table["loss"].to_numpy(dtype="float64")))
        t0 = time.perf_counter()
        draws = fit_batch(
            law, model, design_df, np.stack(losses), num_chains=num_chains, num_warmup=num_warmup,
            num_samples=num_samples, seed=10_000 * seed + batch[0], target_accept=target_accept,
            start_candidates=int(start_candidates))
        post, diverging, steps, started, restarted = (draws.posterior, draws.diverging, draws.n_steps,
                                                      draws.started, draws.restarted)
        seconds = (time.perf_counter() - t0) / len(batch)
        for b, (i, truth) in enumerate(zip(batch, truths)):
            one = {n: v[b] for n, v in post.items()}
            diag = diagnose_arrays(one, diverging[b], sampled)
            row = {**settings, "dataset": i, "seconds": seconds, "divergences": diag.divergences,
                   "max_rhat": diag.max_rhat, "min_ess_bulk": diag.min_ess_bulk,
                   "mean_leapfrog_steps": float(steps[b].mean()), "started": bool(started[b].all()),
                   "restarted_chains": int(restarted[b].sum()), "draws": 0}
            for name, value in truth.items():
                if name not in one:
                    continue
                draws = np.asarray(one[name], dtype="float64").reshape(-1)[::thin]
                row["draws"] = len(draws)
                row[f"rank_{name}"] = int(np.sum(draws < value))
                row[f"truth_{name}"] = value
                for level in COVERAGE_LEVELS:
                    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
                    row[f"cover{int(level * 100)}_{name}"] = bool(lo <= value <= hi)
            rows.append(row)
            if out is not None:
                _append_row(out, row)
        # each batch compiles a program; without this a long run grows until LLVM cannot allocate
        jax.clear_caches()
        bar.update(len(batch))
    bar.close()
    if out is not None and out.exists():
        return pd.read_csv(out)
    return pd.DataFrame(rows)


@dataclass
class SBCCheck:
    """Pass/fail verdict of an SBC table (:func:`sbc_check`).

    Attributes
    ----------
    passed : bool
        No coverage cell and no rank histogram outside its family-wise band.
    failures : list of str
        One line per failing cell or histogram, naming the parameter and level.
    coverage : pandas.DataFrame
        Per parameter and level: coverage, the family-wise band ``lo``/``hi`` and ``ok``; per
        parameter the rank-uniformity p-value and whether it clears ``alpha / n_tests``.
    alpha : float
        Family-wise false-alarm rate of the whole check for a calibrated model.
    n_datasets, n_tests : int
    """

    passed: bool
    failures: list
    coverage: pd.DataFrame
    alpha: float
    n_datasets: int
    n_tests: int

    def __str__(self) -> str:
        head = (f"SBC over {self.n_datasets} data sets: {'PASS' if self.passed else 'FAIL'} "
                f"({self.n_tests} tests, family-wise false-alarm rate {self.alpha:g})")
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            body = self.coverage.to_string(float_format="{:.3f}".format)
        return "\n".join([head, body, *self.failures])


def sbc_parameters(table: pd.DataFrame, params: Sequence[str] | None = None) -> list[str]:
    """The parameters an SBC table ranks (all, or ``params`` after checking each is there)."""
    present = sorted(c[len("rank_"):] for c in table.columns if c.startswith("rank_"))
    names = list(params or present)
    missing = [p for p in names if p not in present]
    if missing or not names:
        raise InputError(f"the SBC table has no ranks for {missing or 'any parameter'}; it has {present}")
    return names


def sbc_failed_fits(table: pd.DataFrame) -> pd.Series:
    """Per data set: did its fit fail the checks ``fit`` would refuse it for (any divergence,
    max R-hat > 1.05 or missing, or a chain with no finite start)?"""
    failed = (table["divergences"] > 0) | ~(table["max_rhat"] <= 1.05)  # NaN R-hat counts as failed
    if "started" in table:  # older tables have no such column
        failed |= ~table["started"].astype(bool)
    return failed


def expected_coverage(level: float, draws: int) -> float:
    """Coverage a calibrated model gives the central ``level`` interval of ``draws`` draws.

    The interval's ends are ``numpy.quantile``'s linear interpolations at 0-indexed positions
    ``q·(L − 1)`` of L sorted draws. Under calibration the truth is exchangeable with the draws,
    so the k-th smallest of the L draws sits on average at the (k / (L + 1))-quantile of the
    truth's distribution, and the interval covers ``level · (L − 1) / (L + 1)`` on average:
    0.931 for a 95 % interval of 100 draws, 0.948 of 1000.
    """
    return level * (draws - 1) / (draws + 1)


def sbc_check(table: pd.DataFrame, params: Sequence[str] | None = None, *, alpha: float = 0.01,
              levels: Sequence[float] = COVERAGE_LEVELS, bins: int = 10) -> SBCCheck:
    """Pass or fail an SBC table with a false-alarm rate of ``alpha`` for the whole check.

    The check runs ``len(params) · (len(levels) + 1)`` tests: for every parameter and level, is
    the number of data sets whose central interval covered the truth inside the central
    ``1 − alpha/n_tests`` interval of Binomial(n_datasets, p), with p the coverage a calibrated
    model gives that interval from the table's number of draws (:func:`expected_coverage`: the
    nominal level shrunk by ``(L − 1)/(L + 1)``, e.g. 0.882 for a 90 % interval of 100 draws)?; and for every parameter, is
    the χ² p-value of its rank histogram (``bins`` equal bins) above ``alpha/n_tests``? For a
    calibrated model and sampler each test fails with probability at most ``alpha/n_tests``, so
    by Bonferroni's inequality the check as a whole fails with probability at most ``alpha``
    (the tests are correlated, which only makes the true rate lower). A model whose intervals
    are too narrow or shifted moves coverage below the band; one with too-wide intervals moves
    it above.

    At 20 data sets the band is wide (it tells a broken fitter from a working one: a shifted or
    over-confident posterior covers the truth far less often); at 200 it resolves a few
    percentage points (the 90 % band is about ±6 points).
    """
    from scipy import stats

    params = sbc_parameters(table, params)
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha!r}")
    n = len(table)
    if n == 0:
        raise InputError("the SBC table is empty")
    n_tests = len(params) * (len(levels) + 1)
    per_test = alpha / n_tests
    draws = int(table["draws"].iloc[0])
    rows, failures = [], []
    for p in params:
        row = {"parameter": p}
        for level in levels:
            k = int(table[f"cover{int(round(level * 100))}_{p}"].sum())
            expected = expected_coverage(level, draws)
            lo, hi = stats.binom.ppf([per_test / 2, 1 - per_test / 2], n, expected) / n
            ok = bool(lo <= k / n <= hi)
            row.update({f"{level:.0%}": k / n, f"{level:.0%} lo": lo, f"{level:.0%} hi": hi})
            if not ok:
                failures.append(f"{p}: {level:.0%} interval covered {k}/{n} = {k / n:.3f}, "
                                f"outside [{lo:.3f}, {hi:.3f}]")
        counts = np.histogram(table[f"rank_{p}"].to_numpy(), bins=bins, range=(0, draws + 1))[0]
        pvalue = float(stats.chisquare(counts).pvalue)
        row["rank p"] = pvalue
        if pvalue < per_test:
            failures.append(f"{p}: rank histogram not uniform (chi-square p = {pvalue:.2g} < {per_test:.2g})")
        rows.append(row)
    coverage = pd.DataFrame(rows).set_index("parameter")
    return SBCCheck(not failures, failures, coverage, alpha, n, n_tests)


# ---------------------------------------------------------------------------------------------
# Ordered extrapolation hold-out



@dataclass
class Holdout:
    """Result of :func:`extrapolation_holdout`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per held-out run: the law's inputs, ``group``, the ordering value ``by``, the
        observed ``loss``, ``predicted`` (posterior median of the law's expected loss),
        ``error`` (predicted − observed, nats), ``abs_error``, and per level in
        :data:`HOLDOUT_LEVELS` the new-run interval ``lo50``/``hi50`` and ``in50`` (observed
        inside), likewise ``lo90``/``hi90``/``in90``.
    summary : dict
        ``law, by, threshold, n_fit, n_held, max_abs_error, mean_abs_error, rmse, coverage_50,
        coverage_90``, and the fit's ``diagnostics_ok``, ``divergences``, ``max_rhat``.
    fit : FitResult
        The fit on the runs at or below the threshold.
    """

    table: pd.DataFrame
    summary: dict
    fit: object


def _ordering(table: pd.DataFrame, by: str) -> pd.Series:
    if by == "compute":
        return 6.0 * table["n_active"] * table["tokens"]
    if by not in table.columns:
        raise InputError(
            f"by={by!r} is not a column of the run table; use by='compute' (6·n_active·tokens) or "
            f"one of its numeric columns, e.g. {[c for c in table.columns if c in ('n_active', 'n_total', 'tokens', 'flops')]}"
        )
    values = pd.to_numeric(table[by], errors="coerce")
    bad = table.index[~np.isfinite(values.to_numpy(dtype=float))]
    if len(bad):
        raise InputError(f"column {by!r} is non-numeric or not finite in rows {bad[:20].tolist()}")
    return values.astype(float)


def extrapolation_holdout(
    runs: pd.DataFrame,
    *,
    law: str = "joint",
    by: str = "compute",
    quantile: float | None = 0.8,
    threshold: float | None = None,
    per_group: bool = False,
    hierarchical: bool | None = None,
    fit_kwargs: Mapping | None = None,
    seed: int = 0,
) -> Holdout:
    """Fit on the runs at or below a threshold of ``by``; predict and score the runs above it.

    Parameters
    ----------
    runs : pandas.DataFrame
        A run table (schema and aliases of :func:`bayesmoe.data.validate_runs`) with ``loss``.
    law : str or Law
        The law to fit.
    by : str
        What orders the runs: ``"compute"`` is 6·n_active·tokens (FLOPs, the law's own
        convention); any other name is a numeric column of the table (``n_active``, ``flops``...).
    quantile : float, optional
        The threshold is this quantile of ``by`` (over all runs, or within each group with
        ``per_group=True``). Ignored when ``threshold`` is given.
    threshold : float, optional
        An absolute threshold in the units of ``by``.
    per_group : bool
        Take the quantile within each group, so every group keeps runs to fit and runs to
        predict (tables whose groups span different compute ranges).
    hierarchical : bool, optional
        ``None``: as the table says (several groups make a hierarchical fit). ``False``: one
        pooled law for all groups (the output keeps each run's group).
    fit_kwargs : mapping, optional
        Passed to :func:`bayesmoe.fit` (``num_chains``, ``num_warmup``, ``priors``, ...).
    seed : int
        Seeds the fit (unless ``fit_kwargs`` has one) and the predictive draws.

    Returns
    -------
    Holdout
        ``table`` (one row per held-out run), ``summary`` (errors and coverage), ``fit``.

    Notes
    -----
    The point prediction is the posterior median of the law's expected loss
    (``predict(kind="mean")``); intervals are those of one more training run
    (``predict(kind="new_run")``: the fitted Student-t noise included), which is what an observed
    loss should fall inside. A hierarchical fit predicts each held-out run with its own group's
    parameters; a group with no run to fit is predicted as a new, unseen setup.
    """
    from bayesmoe.fitting import fit  # fitting imports results, which imports this package

    law, table, order, cut, held = _split(runs, law, by, quantile, threshold, per_group)
    fitted = table.loc[~held].copy()
    if hierarchical is False:
        # Runs of different groups may share (n_active, tokens); tell them apart through the
        # validator's 'seed' key (the law never reads it) so one pooled table stays valid.
        codes = pd.factorize(fitted["group"])[0]
        fitted["seed"] = codes if "seed" not in fitted else (
            pd.factorize(fitted["seed"].astype(str) + "\x1f" + fitted["group"])[0])
        fitted["group"] = "pooled"
    kwargs = {"seed": seed, **dict(fit_kwargs or {})}
    result = fit(fitted, law=law, **kwargs)

    return _score(result, law, table, order, cut, held, by=by, quantile=quantile, threshold=threshold,
                  per_group=per_group, hierarchical=hierarchical, seed=seed)


def _split(runs, law, by, quantile, threshold, per_group):
    """The ordered split: (law, validated table, ordering, cut per run, held-out mask)."""
    law = get_law(law)
    table = validate_runs(runs, required=law.inputs + ("loss",), unit_checks=False)
    order = _ordering(table, by)
    if threshold is None:
        if quantile is None or not 0 < quantile < 1:
            raise InputError(f"quantile must be in (0, 1) when no threshold is given, got {quantile!r}")
        if per_group:
            cut = order.groupby(table["group"]).transform(lambda v: np.quantile(v, quantile))
        else:
            cut = pd.Series(float(np.quantile(order, quantile)), index=table.index)
    else:
        if per_group:
            raise InputError("per_group=True takes a quantile, not an absolute threshold")
        if not np.isfinite(threshold):
            raise InputError(f"threshold must be a finite number, got {threshold!r}")
        cut = pd.Series(float(threshold), index=table.index)
    held = order > cut
    n_fit, n_held = int((~held).sum()), int(held.sum())
    min_fit = len(law.params) + 2  # the law's parameters plus sigma, and one degree of freedom
    if n_held == 0 or n_fit < min_fit:
        raise InputError(
            f"the threshold leaves {n_fit} runs to fit and {n_held} to hold out (by={by!r}, "
            f"{'threshold=' + format(threshold, 'g') if threshold is not None else f'quantile={quantile}'}"
            f", range {order.min():.4g}-{order.max():.4g}); need >= 1 held out and >= {min_fit} to fit"
        )
    return law, table, order, cut, held


def score_holdout(result, runs: pd.DataFrame, *, by: str = "compute", quantile: float | None = 0.8,
                  threshold: float | None = None, per_group: bool = False, hierarchical: bool | None = None,
                  seed: int = 0) -> Holdout:
    """Score an existing fit of the runs below the split on the runs above it: the scoring half of
    :func:`extrapolation_holdout` (same arguments), e.g. after changing the fit's discrepancy prior."""
    law, table, order, cut, held = _split(runs, result.law, by, quantile, threshold, per_group)
    return _score(result, law, table, order, cut, held, by=by, quantile=quantile, threshold=threshold,
                  per_group=per_group, hierarchical=hierarchical, seed=seed)


def _score(result, law, table, order, cut, held, *, by, quantile, threshold, per_group, hierarchical, seed):
    n_fit, n_held = int((~held).sum()), int(held.sum())
    parts = []
    held_table = table.loc[held]
    for group in pd.unique(held_table["group"]):
        part = held_table[held_table["group"] == group]
        if hierarchical is False or not result.hierarchical:
            use = None
        else:
            use = group if group in result.groups else None  # None: a new, unseen setup
        scored = result.holdout_table(part, group=use, levels=HOLDOUT_LEVELS, seed=seed)
        scored.insert(len(law.inputs), "group", part["group"])
        parts.append(scored)
    out = pd.concat(parts).loc[held_table.index]
    if by not in out:  # a law input (``by="n_active"``) is there already, with the same values
        out.insert(len(law.inputs) + 1, by, order[held])
    # split-conformal baseline on the fit's own backtest residuals (no distance scaling)
    bt = result.discrepancy.backtest
    for level in HOLDOUT_LEVELS:
        k = int(round(level * 100))
        if bt is not None and len(bt):
            r = np.sort(np.abs(bt["residual"].to_numpy(float)))
            rank = min(len(r), int(np.ceil((len(r) + 1) * level)))
            half = r[rank - 1]
            out[f"in{k}_conformal"] = np.abs(np.log(out["loss"]) - np.log(out["predicted"])) <= half
            out[f"width{k}_conformal"] = out["predicted"] * (np.exp(half) - np.exp(-half))
        out[f"width{k}"] = out[f"hi{k}"] - out[f"lo{k}"]
    d = result.diagnostics
    summary = {
        "law": law.name, "by": by,
        "threshold": float(threshold) if threshold is not None else (float(cut.iloc[0]) if not per_group else None),
        "quantile": None if threshold is not None else quantile, "per_group": per_group,
        "hierarchical": result.hierarchical, "n_fit": n_fit, "n_held": n_held,
        "max_abs_error": float(out["abs_error"].max()),
        "mean_abs_error": float(out["abs_error"].mean()),
        "rmse": float(np.sqrt(np.mean(out["error"] ** 2))),
        **{f"coverage_{int(round(level * 100))}{suffix}": float(out[f"in{int(round(level * 100))}{suffix}"].mean())
           for level in HOLDOUT_LEVELS for suffix in ("", "_law", "_conformal")
           if f"in{int(round(level * 100))}{suffix}" in out},
        **{f"median_width_{int(round(level * 100))}": float(out[f"width{int(round(level * 100))}"].median())
           for level in HOLDOUT_LEVELS},
        "median_width_90_law": float(out["width90_law"].median()),
        "median_width_90_conformal": (float(out["width90_conformal"].median())
                                      if "width90_conformal" in out else None),
        "discrepancy": result.discrepancy.summary(),
        "diagnostics_ok": d.ok, "divergences": d.divergences, "max_rhat": d.max_rhat,
    }
    return Holdout(out, summary, result)


# ---------------------------------------------------------------------------------------------
# Law comparison


def compare_laws(results: Mapping[str, object]) -> pd.DataFrame:
    """PSIS-LOO comparison of fits on the same runs (Vehtari, Gelman & Gabry 2017).

    Parameters
    ----------
    results : mapping of str to FitResult
        At least two fits of the same run table (same runs, same observed losses): different
        laws, priors (e.g. ``{"gamma": 0.0, "zeta": 0.0}``) or likelihoods.

    Returns
    -------
    pandas.DataFrame
        One row per fit, best first: ``elpd`` (expected log predictive density of ln loss, summed
        over runs), ``se``, ``p_loo`` (effective number of parameters), ``elpd_diff`` and
        ``dse`` (difference to the best and its standard error), stacking ``weight``, ``n_runs``,
        ``pareto_k_max``, ``n_k_bad`` (runs with Pareto k > 0.7, whose LOO term is unreliable)
        and ``loo_warning`` (arviz-stats' flag: some k above its sample-size threshold
        ``good_k``). A UserWarning names every fit with ``n_k_bad > 0``.

    Notes
    -----
    ``elpd_diff`` larger than about 4 and several ``dse`` is a clear preference (Sivula et al.
    2022); smaller differences are not evidence either way.
    """
    if not isinstance(results, Mapping) or len(results) < 2:
        raise InputError(f"compare_laws needs a mapping of at least two named FitResults, got {results!r:.200}")
    first_name, first = next(iter(results.items()))
    ref_runs = first.tree["observed_data"]["run"].values
    ref_obs = first.tree["observed_data"]["log_loss"].values
    for name, res in results.items():  # every input checked before any LOO is computed
        if not hasattr(res, "tree"):
            raise TypeError(f"results[{name!r}] is a {type(res).__name__}, expected a FitResult")
        obs = res.tree["observed_data"]
        if (obs["run"].size != ref_runs.size or not np.array_equal(obs["run"].values, ref_runs)
                or not np.allclose(obs["log_loss"].values, ref_obs)):
            raise InputError(
                f"{name!r} and {first_name!r} were fitted on different runs or losses; PSIS-LOO "
                "compares fits of the same table only"
            )
    elpds, extra = {}, {}
    for name, res in results.items():
        loo = psis_loo(res.tree)
        k = np.asarray(loo.pareto_k).reshape(-1)
        elpds[name] = loo
        extra[name] = {"n_runs": int(k.size), "pareto_k_max": float(np.max(k)),
                       "n_k_bad": int(np.sum(k > PARETO_K_MAX)), "good_k": float(loo.good_k)}
    table = compare_loo(elpds)
    table = table.rename(columns={"p": "p_loo", "warning": "loo_warning"})
    table = table.join(pd.DataFrame.from_dict(extra, orient="index"))
    bad = {n: e["n_k_bad"] for n, e in extra.items() if e["n_k_bad"]}
    if bad:
        warnings.warn(
            "PSIS-LOO is unreliable for some runs (Pareto k > 0.7): "
            + ", ".join(f"{n}: {c} runs" for n, c in bad.items())
            + "; their ELPD is optimistic. Refit with more draws, or check those runs for outliers.",
            UserWarning, stacklevel=2,
        )
    return table
