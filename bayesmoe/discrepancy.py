"""The law's own error beyond the fitted runs: a discrepancy term for every prediction.

A fitted law is calibrated where it was fitted (simulation-based calibration checks that), but
its functional form is only approximately right, and the error of the form grows as a prediction
moves away from the runs that pinned it down. bayesmoe models a new run's log loss as

    ln L_obs(x) = ln L_law(x; θ) + δ(x) + ε,        δ(x) = b · e(x),   b ~ N(0, τ² I),

* ``e(x)``: the signed distance, in decades, by which ``x`` lies outside the fitted runs along each
  *axis*: every input of the law (``n_active``, ``tokens``, ``experts``...) and the scale product
  size × tokens (compute up to 6·, for laws with ``n_active``). Inside the fitted range along an
  axis the distance is 0; above it positive, below it negative. The product is an axis of its own
  because a run can lie inside the fitted range of N and of D and still beyond the fitted compute
  (the corner of large N and large D), where every scaling question lives.
* ``b``: one slope per axis and posterior draw, shared by every configuration predicted with that
  draw. The law's error is smooth: at the edge of the data the fit matches the runs, and beyond it
  the error grows, to first order linearly in the distance, with a slope nobody knows. Sharing ``b``
  makes δ *correlated*: two configurations at the same scale get the same δ, and two that differ
  only in E differ only by ``b_E·Δe_E``, so ``compare`` stays as decisive as the law allows.
* ``τ``: the growth rate (ln-loss per decade). It is **learned**, never set by hand, from
  - rolling-origin backtests inside the user's own table (:func:`backtest`): fit on the runs
    below a compute cut, predict every run above it, at several cuts; within one cut the
    residuals share one ``b``, so each cut contributes the exact Gaussian marginal likelihood
    ``r ~ N(0, diag(s²) + τ² E Eᵀ)`` (``s``: the law's own predictive sd of each run:
    parameter uncertainty plus noise);
  - a prior distilled from the real tables in ``../shared/data`` by
    ``docs/validation/distill_discrepancy.py`` (the predictive distribution of a new table's
    ln τ under a lognormal population model of those tables' τ, with the population's mean and
    spread integrated out), shipped in ``bayesmoe/discrepancy_prior.json``.
  τ's posterior is computed exactly on a grid and each posterior draw of θ gets its own τ.

Inside the fitted range δ is exactly 0, so adding it leaves the likelihood of the fitted runs,
and therefore the posterior of θ, unchanged: simulation-based calibration of θ is unaffected by
construction. It widens predictions only where they leave the data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
import pandas as pd

from bayesmoe import noise as run_noise

__all__ = ["Discrepancy", "axes", "axis_symbols", "beyond", "fitted_ranges", "backtest", "tau_log_likelihood",
           "learn", "default_prior", "BACKTEST_CUTS", "BACKTEST_CHAINS", "BACKTEST_DEVICES", "SPARSITY_CUT_AXES",
           "sparsity_cuts"]

log = logging.getLogger("bayesmoe")

#: Compute quantiles of the table at which :func:`backtest` cuts (fit below, predict above).
BACKTEST_CUTS = (0.5, 0.65, 0.8)
#: Inputs along which :func:`backtest` also extrapolates on its own, where the table has at
#: least 4 distinct values: fit the runs below the largest value, predict the runs at it.
#: Compute-ordered cuts say little about extrapolating in the expert count alone, which is the
#: question MoE users bring (an E* beyond the fitted experts).
SPARSITY_CUT_AXES = ("experts", "granularity")
#: Chains per backtest cut (each 300/300): the backtests sample BACKTEST_CHAINS chains per cut,
#: all cuts together, one chain per CPU device where there are that many (the CLI sets up
#: :data:`BACKTEST_DEVICES`).
BACKTEST_CHAINS = 2
#: CPU devices for every backtest chain at once (compute cuts and sparsity cuts).
BACKTEST_DEVICES = BACKTEST_CHAINS * (len(BACKTEST_CUTS) + len(SPARSITY_CUT_AXES))


def use_cpu_devices(num_chains: int = 4) -> None:
    """One CPU device per chain, for a fit's chains and for every backtest chain at once
    (:data:`BACKTEST_DEVICES`), as the CLI sets them up. Call it before JAX starts (the first
    array or device query); the library never calls it itself, since how many devices a process
    has is the program's choice."""
    import numpyro

    numpyro.set_host_device_count(max(int(num_chains), BACKTEST_DEVICES, 1))


#: τ grid (ln-loss per decade): 1e-4 to 3, log-spaced.
TAU_GRID = np.geomspace(1e-4, 3.0, 481)
#: The name of the scale-product axis.
SCALE_AXIS = "scale"
_SIZE_INPUTS = ("n_active", "n_total")
ALL = "__all__"


def axes(law) -> tuple[str, ...]:
    """Axes along which distance beyond the fitted runs is measured: the law's inputs and, when
    the law has a size input and ``tokens``, their product (``"scale"``)."""
    out = list(law.inputs)
    if "tokens" in law.inputs and any(s in law.inputs for s in _SIZE_INPUTS):
        out.append(SCALE_AXIS)
    return tuple(out)


_SYMBOLS = {"n_active": "N", "n_total": "N", "tokens": "D", "experts": "E", "granularity": "G", SCALE_AXIS: "N·D"}


def axis_symbols(names: Sequence[str]) -> str:
    """The axes as a reader writes them: ``"N, D, E, N·D"`` for the joint law's."""
    return ", ".join(_SYMBOLS.get(str(a), str(a)) for a in names)


def _log10_axes(law, table: pd.DataFrame) -> np.ndarray:
    cols = []
    for a in axes(law):
        if a == SCALE_AXIS:
            size = next(s for s in _SIZE_INPUTS if s in law.inputs)
            cols.append(np.log10(table[size].to_numpy(float)) + np.log10(table["tokens"].to_numpy(float)))
        else:
            cols.append(np.log10(table[a].to_numpy(float)))
    return np.stack(cols, axis=-1)


def fitted_ranges(law, runs: pd.DataFrame) -> dict[str, dict[str, list[float]]]:
    """Per group (and over all runs, key ``"__all__"``): ``{axis: [log10 min, log10 max]}``."""
    z = _log10_axes(law, runs)
    out = {ALL: {a: [float(z[:, j].min()), float(z[:, j].max())] for j, a in enumerate(axes(law))}}
    if "group" in runs:
        for g in pd.unique(runs["group"].astype(str)):
            m = (runs["group"].astype(str) == g).to_numpy()
            out[g] = {a: [float(z[m, j].min()), float(z[m, j].max())] for j, a in enumerate(axes(law))}
    return out


def beyond(law, ranges: Mapping, table: pd.DataFrame, group: str | None = None) -> np.ndarray:
    """Signed decades outside the fitted range, shape ``(runs, axes)``: 0 inside, > 0 above."""
    rng = ranges.get(group, ranges[ALL]) if group is not None else ranges[ALL]
    z = _log10_axes(law, table)
    lo = np.array([rng[a][0] for a in axes(law)])
    hi = np.array([rng[a][1] for a in axes(law)])
    return np.where(z > hi, z - hi, np.where(z < lo, z - lo, 0.0))


# ---------------------------------------------------------------------------------------------
# τ: likelihood from backtests, prior, posterior on a grid


#: Principal components of the law's parameter uncertainty kept per backtest prediction.
N_PC = 8


def tau_log_likelihood(table: pd.DataFrame, axis_names: Sequence[str], tau=TAU_GRID) -> np.ndarray:
    """ln p(backtest residuals | τ) on ``tau``, one exact Gaussian marginal per cut:

        r ~ N(0, diag(s_noise²) + P Pᵀ + τ² E Eᵀ)

    ``table`` has one row per backtest prediction: ``cut``, ``residual`` (observed − predicted
    ln loss), ``noise_sd`` (the fitted run noise's sd at that run), ``pc_0 ... pc_{k-1}`` (the
    law's parameter uncertainty over that cut's predictions, as principal components: one fit's
    parameter error moves every prediction of its cut together, so it must not be mistaken for the
    discrepancy's shared slopes) and one ``e_<axis>`` column per axis (signed decades beyond that
    cut's fitted runs). Tables without ``noise_sd``/``pc_*`` columns use ``sd`` (the total
    predictive sd) on the diagonal, treating parameter errors as independent between runs.
    """
    tau = np.asarray(tau, dtype=float)
    total = np.zeros_like(tau)
    pcs = [c for c in table.columns if str(c).startswith("pc_")]
    # one block per cut (and per group: each group's parameter components are its own)
    keys = [k for k in ("axis", "cut", "group") if k in table]
    for _, part in table.groupby(keys):
        r = part["residual"].to_numpy(float)
        if "noise_sd" in part and pcs:
            d = part["noise_sd"].to_numpy(float) ** 2
            p = np.nan_to_num(part[pcs].to_numpy(float))
        else:
            d = part["sd"].to_numpy(float) ** 2
            p = np.zeros((len(r), 0))
        e = part[[f"e_{a}" for a in axis_names]].to_numpy(float)
        logdet_d = float(np.sum(np.log(d)))
        for i, t in enumerate(tau):
            # Woodbury with U = [P, τE]: Σ = D + U Uᵀ of rank k + J
            u = np.concatenate([p, t * e], axis=1)
            dinv_u = u / d[:, None]
            m = np.eye(u.shape[1]) + u.T @ dinv_u
            utr = dinv_u.T @ r
            _, logdet_m = np.linalg.slogdet(m)
            quad = float(np.sum(r * r / d) - utr @ np.linalg.solve(m, utr))
            total[i] += -0.5 * (len(r) * np.log(2 * np.pi) + logdet_d + logdet_m + quad)
    return total


def default_prior() -> dict:
    """The distilled prior on ln τ shipped with the package (``discrepancy_prior.json``)."""
    text = resources.files("bayesmoe").joinpath("discrepancy_prior.json").read_text()
    return json.loads(text)


def _log_prior(prior: Mapping, tau=TAU_GRID) -> np.ndarray:
    if prior.get("family", "lognormal") != "lognormal":
        raise ValueError(f"unknown discrepancy prior family {prior.get('family')!r}; use 'lognormal'")
    mu, sd = float(prior["mu"]), float(prior["sigma"])
    lt = np.log(tau)
    # density of ln τ on a log-spaced grid: equal cells in ln τ, so no Jacobian is needed
    return -0.5 * ((lt - mu) / sd) ** 2


@dataclass
class Discrepancy:
    """The learned extrapolation-error term of a fit (see the module docstring).

    Attributes
    ----------
    axes : tuple of str
        Axes of the distance (the law's inputs and ``"scale"``).
    ranges : dict
        Fitted range per group (and ``"__all__"``): ``{axis: [log10 min, log10 max]}``.
    tau : numpy.ndarray
        Grid of growth rates (ln-loss per decade).
    weights : numpy.ndarray
        Posterior probability of each grid value.
    prior : dict
        The prior on ln τ used (``family``, ``mu``, ``sigma``, ``source``).
    source : str
        ``"backtest+prior"``, ``"prior"`` or ``"none"`` (τ = 0: the law-only band).
    backtest : pandas.DataFrame or None
        One row per backtest prediction (see :func:`backtest`).
    note : str
        Why τ was not learned from backtests (``""`` when it was): too small a table, a fit that
        failed its checks, or ``discrepancy='prior'`` asked for.
    """

    axes: tuple[str, ...]
    ranges: dict
    tau: np.ndarray = field(default_factory=lambda: TAU_GRID.copy())
    weights: np.ndarray | None = None
    prior: dict = field(default_factory=dict)
    source: str = "prior"
    backtest: pd.DataFrame | None = None
    note: str = ""

    @property
    def active(self) -> bool:
        return self.source != "none"

    def tau_quantiles(self, q=(0.05, 0.5, 0.95)) -> np.ndarray:
        """Quantiles of τ's posterior (zeros for ``source="none"``)."""
        if not self.active:
            return np.zeros(len(q))
        cdf = np.cumsum(self.weights)
        return np.interp(q, cdf, self.tau)

    def sample_tau(self, rng: np.random.Generator, size) -> np.ndarray:
        if not self.active:
            return np.zeros(size)
        idx = rng.choice(len(self.tau), size=size, p=self.weights)
        # jitter within the grid cell so draws are continuous
        step = np.log(self.tau[1] / self.tau[0])
        return self.tau[idx] * np.exp(rng.uniform(-step / 2, step / 2, size=size))

    def slopes(self, shape: tuple[int, ...], seed: int) -> np.ndarray:
        """One slope vector ``b`` per posterior draw: shape ``(*shape, axes)``."""
        rng = np.random.default_rng([seed, 0x5EED])
        tau = self.sample_tau(rng, shape)
        return tau[..., None] * rng.standard_normal((*shape, len(self.axes)))

    def distance(self, law, table: pd.DataFrame, group: str | None = None) -> np.ndarray:
        """Signed decades beyond the fitted runs, ``(runs, axes)``; NaN for a row whose inputs are
        not finite and positive (a draw without an optimum). ``group=None`` measures from all
        fitted runs, which for a one-group fit is that group's range."""
        values = table[list(law.inputs)].to_numpy(dtype="float64")
        ok = np.isfinite(values).all(axis=1) & (values > 0).all(axis=1)
        out = np.full((len(table), len(self.axes)), np.nan)
        out[ok] = beyond(law, self.ranges, table[ok], group)
        return out

    def delta(self, law, table: pd.DataFrame, shape: tuple[int, ...], *, group: str | None = None,
              seed: int = 0) -> np.ndarray:
        """Draws of δ (ln loss) for ``table``'s runs: ``(*shape, runs)``, correlated across runs."""
        e = self.distance(law, table, group)
        return self.slopes(shape, seed) @ e.T

    def sd(self, distance: np.ndarray) -> np.ndarray:
        """Posterior-mean sd of δ at the given ``(..., axes)`` distances: E[τ²]^½·|e|."""
        if not self.active:
            return np.zeros(np.shape(distance)[:-1])
        m2 = float(np.sum(self.weights * self.tau ** 2))
        return np.sqrt(m2) * np.linalg.norm(distance, axis=-1)

    def summary(self) -> dict:
        lo, med, hi = self.tau_quantiles()
        out = {"source": self.source, "tau_median": float(med), "tau_lo90": float(lo), "tau_hi90": float(hi),
               "prior": dict(self.prior)}
        if self.backtest is not None:
            out["backtest_predictions"] = int(len(self.backtest))
            keys = [k for k in ("axis", "cut") if k in self.backtest]
            out["backtest_cuts"] = int(self.backtest.groupby(keys).ngroups)
        if self.note:
            out["note"] = self.note
        return out

    # ------------------------------------------------------------------ storage
    def to_json(self) -> str:
        return json.dumps({
            "axes": list(self.axes), "ranges": self.ranges, "source": self.source, "prior": self.prior,
            "tau": self.tau.tolist(), "weights": None if self.weights is None else self.weights.tolist(),
            "backtest": None if self.backtest is None else self.backtest.to_dict(orient="list"),
            "note": self.note,
        })

    @classmethod
    def from_json(cls, text: str) -> Discrepancy:
        raw = json.loads(text)
        return cls(axes=tuple(raw["axes"]), ranges=raw["ranges"], tau=np.asarray(raw["tau"]),
                   weights=None if raw["weights"] is None else np.asarray(raw["weights"]),
                   prior=raw["prior"], source=raw["source"],
                   backtest=None if raw["backtest"] is None else pd.DataFrame(raw["backtest"]),
                   note=raw.get("note", ""))  # files saved before session 24 have none


def posterior(law, runs: pd.DataFrame, *, prior: Mapping | None = None, backtest_table: pd.DataFrame | None = None,
              source: str | None = None, note: str = "") -> Discrepancy:
    """τ's grid posterior from a prior and (optionally) backtest residuals; ``note`` says why
    there are none, where there are none."""
    prior = dict(default_prior() if prior is None else prior)
    logp = _log_prior(prior)
    if backtest_table is not None and len(backtest_table):
        logp = logp + tau_log_likelihood(backtest_table, axes(law))
        source = source or "backtest+prior"
    w = np.exp(logp - logp.max())
    return Discrepancy(axes=axes(law), ranges=fitted_ranges(law, runs), weights=w / w.sum(), prior=prior,
                       source=source or "prior", backtest=backtest_table,
                       note="" if backtest_table is not None and len(backtest_table) else note)


def none(law, runs: pd.DataFrame) -> Discrepancy:
    """No discrepancy (τ = 0): the law-only band."""
    return Discrepancy(axes=axes(law), ranges=fitted_ranges(law, runs), weights=None, prior={}, source="none")


# ---------------------------------------------------------------------------------------------
# Rolling-origin backtests


def order_key(law, table: pd.DataFrame) -> pd.Series:
    """The backtests' ordering: size × tokens (compute up to 6·), or the first input."""
    if "tokens" in law.inputs:
        size = next((s for s in _SIZE_INPUTS if s in law.inputs), None)
        if size is not None:
            return table[size].astype(float) * table["tokens"].astype(float)
    return table[law.inputs[0]].astype(float)


def sparsity_cuts(law, table: pd.DataFrame) -> list[tuple[str, float]]:
    """The sparsity cuts of :func:`backtest`: ``(input, value)`` for each input of
    :data:`SPARSITY_CUT_AXES` that ``law`` takes and ``table`` holds at least 4 distinct values of
    (so that the fit below the cut still sees 3); the cut is the second-largest value."""
    out = []
    for a in SPARSITY_CUT_AXES:
        if a in law.inputs and a in table:
            values = np.unique(table[a].to_numpy(float))
            if len(values) >= 4:
                out.append((a, float(values[-2])))
    return out


def backtest(runs: pd.DataFrame, law, *, cuts: Sequence[float] = BACKTEST_CUTS, fit_kwargs: Mapping | None = None,
             progress: bool = False, sparsity: bool = True) -> pd.DataFrame:
    """Rolling-origin backtests: at each compute quantile in ``cuts`` fit the runs at or below it
    (within each group when there are several) and predict every run above it. With
    ``sparsity`` (the default), also along the expert count (and granularity) alone where the
    table has at least 4 distinct values (:func:`sparsity_cuts`): fit the runs below the largest
    value, predict the runs at it.

    Returns one row per prediction: ``axis`` (``"compute"``, or the sparsity input cut along),
    ``cut`` (the compute quantile, or the largest fitted value of that input), ``run`` (the
    table's index), ``group``,
    ``residual`` (observed − posterior mean of the predicted ln loss), ``sd`` (robust sd of the
    law's new-run ln loss: (q84 − q16)/2, parameter uncertainty and noise), ``distance``
    (Euclidean, decades) and ``e_<axis>`` (signed decades beyond that cut's fitted runs).
    Cuts that leave too few runs to fit (fewer than the law's parameters + 3) are skipped.
    Only the rows of ``runs`` are used: pass the training table, never a hold-out.

    ``fit_kwargs`` are :func:`bayesmoe.fit`'s sampler and model keywords (``priors``,
    ``pooled``, ``target_accept``, ``seed``, ``num_chains``, ``num_warmup``, ``num_samples``,
    ``unit_checks``; default 2 chains × 300/300). Every cut is fitted with ``fit``'s model, priors
    and NUTS settings, all cuts at once: the subsets are padded to one length (the padding
    masked out of the likelihood) and sampled in one compiled program
    (:func:`bayesmoe.inference.run_nuts_batched`), instead of one fit, and one compilation, per
    cut. A cut whose chains find no finite starting point is skipped.
    """
    from bayesmoe.data import validate_runs
    from bayesmoe.laws import get_law

    law = get_law(law)
    kwargs = {"num_chains": BACKTEST_CHAINS, "num_warmup": 300, "num_samples": 300, **dict(fit_kwargs or {})}
    table = validate_runs(runs, required=law.inputs + ("loss",), unit_checks=kwargs.get("unit_checks", True))
    key = order_key(law, table)
    groups = table["group"].astype(str)
    multi = groups.nunique() > 1
    candidates = []
    for q in cuts:
        if multi:
            cut = key.groupby(groups).transform(lambda v: np.quantile(v, q))
        else:
            cut = pd.Series(float(np.quantile(key, q)), index=table.index)
        candidates.append(("compute", q, (key <= cut).to_numpy()))
    if sparsity:
        candidates += [(a, v, (table[a].astype(float) <= v).to_numpy()) for a, v in sparsity_cuts(law, table)]
    splits = []
    for axis_, q, below in candidates:
        n_fit, n_held = int(below.sum()), int((~below).sum())
        if n_held == 0 or n_fit < len(law.params) + 3 or (multi and groups[below].nunique() < groups.nunique()):
            continue
        splits.append((axis_, q, below))
    cols = ["axis", "cut", "run", "group", "observed", "predicted", "residual", "sd", "noise_sd", "distance",
            *[f"e_{a}" for a in axes(law)], *[f"pc_{j}" for j in range(N_PC)]]
    if not splits:
        return pd.DataFrame([], columns=cols)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(splits), desc=f"discrepancy backtests ({len(splits)} cuts, one program)", leave=False)
    posteriors, groups_fitted = _fit_subsets(table, law, [below for _, _, below in splits], kwargs)
    if bar is not None:
        bar.update(len(splits))
        bar.close()

    import jax

    log_loss_fn = jax.jit(law.log_loss)
    rows = []
    for (axis_, q, below), post in zip(splits, posteriors):
        if post is None:
            where = f"compute quantile {q}" if axis_ == "compute" else f"{axis_} <= {q:g}"
            log.warning(
                "discrepancy backtest at %s skipped: a chain found no finite starting "
                "point on the %d runs below the cut", where, int(below.sum()))
            continue
        held = table.loc[~below]
        for g in pd.unique(groups[~below]):
            m = (groups[~below] == g).to_numpy()
            x = held.loc[m]
            gi = groups_fitted.index(g)
            # (chain, draw, group) where the parameter has group values, (chain, draw) where shared
            params = {p: post[p][..., gi] if post[p].ndim == 3 else post[p] for p in law.params}
            xin = {k: x[k].to_numpy(dtype="float64") for k in law.inputs}
            lawd = np.asarray(log_loss_fn({p: v[..., None] for p, v in params.items()}, xin))
            sigma = run_noise.run_scale(post["sigma"], run_noise.posterior_trend(post), table.loc[below], x)
            nu = post["nu"][..., None]
            t = np.random.default_rng([17, 1]).standard_t(np.broadcast_to(nu, lawd.shape))
            lawd = lawd.reshape(-1, lawd.shape[-1])
            flat = lawd + (sigma * t).reshape(lawd.shape)
            q16, q84 = np.quantile(flat, [0.16, 0.84], axis=0)
            pred = np.mean(lawd, axis=0)
            # run noise alone (robust sd of new run − law per draw) and the law's parameter
            # uncertainty as principal components (P Pᵀ ≈ covariance of the law over draws)
            nq16, nq84 = np.quantile(flat - lawd, [0.16, 0.84], axis=0)
            centred = (lawd - pred) / np.sqrt(len(lawd))
            _, sv, vt = np.linalg.svd(centred, full_matrices=False)
            k = min(N_PC, len(sv))
            pc = (vt[:k].T * sv[:k])  # (runs, k)
            e = beyond(law, fitted_ranges(law, table.loc[below]), x, g if multi else None)
            obs = np.log(x["loss"].to_numpy(float))
            for i, idx in enumerate(x.index):
                row = {"axis": axis_, "cut": q, "run": idx, "group": g, "observed": obs[i], "predicted": pred[i],
                       "residual": obs[i] - pred[i], "sd": (q84[i] - q16[i]) / 2,
                       "noise_sd": (nq84[i] - nq16[i]) / 2, "distance": float(np.linalg.norm(e[i]))}
                row.update({f"pc_{j}": float(pc[i, j]) if j < k else 0.0 for j in range(N_PC)})
                row.update({f"e_{a}": float(e[i, j]) for j, a in enumerate(axes(law))})
                rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def _fit_subsets(table: pd.DataFrame, law, masks: Sequence[np.ndarray], kwargs: Mapping):
    """NUTS on each subset ``table[mask]`` with :func:`bayesmoe.fit`'s model: all subsets in one
    compiled program, padded to :func:`bayesmoe.models.padded_length` of the longest. Returns one
    posterior per subset (site -> array ``(chain, draw, ...)``; ``None`` where a chain found no
    finite start) and the groups' order."""
    # fitting imports this module
    from bayesmoe.fitting import _default_pooled, default_start_candidates, sampler
    from bayesmoe.inference import run_nuts_batched
    from bayesmoe.models import make_design
    from bayesmoe.priors import resolve_priors

    spec = resolve_priors(law, kwargs.get("priors", "literature"))
    designs = [make_design(table.loc[m], law) for m in masks]
    base = max(designs, key=lambda d: d.n_runs)  # the longest subset: pooled sites and target_accept
    pooled, _ = _default_pooled(law, spec, base, kwargs.get("pooled"))
    centre = kwargs.get("centre", ()) if base.n_groups > 1 else ()  # a cut may leave one group
    model, args, init, target_accept, _, key = sampler(law, spec, designs, pooled=pooled, centre=centre,
                                                       target_accept=kwargs.get("target_accept"))
    draws = run_nuts_batched(
        model, args, init_values=init, init_jitter=model.init_jitter,
        num_chains=int(kwargs["num_chains"]), num_warmup=int(kwargs["num_warmup"]),
        num_samples=int(kwargs["num_samples"]), seed=int(kwargs.get("seed", 0)), target_accept=target_accept,
        vectorize=False,  # a handful of chains: one per CPU device traces far faster than vmap
        program_key=("backtest", *key),
        start_candidates=kwargs.get("start_candidates") or default_start_candidates(law, base))
    out = [{s: v[i] for s, v in draws.posterior.items()} if bool(np.all(draws.started[i])) else None
           for i in range(len(designs))]
    return out, list(base.groups)


def learn(runs: pd.DataFrame, law, *, mode: str = "auto", prior: Mapping | None = None,
          cuts: Sequence[float] = BACKTEST_CUTS, fit_kwargs: Mapping | None = None,
          progress: bool = False, note: str = "") -> Discrepancy:
    """The discrepancy term of a fit of ``runs``.

    ``mode``: ``"backtest"`` (backtests + prior), ``"prior"`` (the prior alone), ``"none"``
    (τ = 0), or ``"auto"``: backtests where the table has enough runs (twice the law's
    parameters + 3) at enough distinct scales (6), else the prior alone. The result's ``note``
    says why there were no backtests (``note`` here: the caller's reason for asking for the prior).
    """
    if mode not in ("auto", "backtest", "prior", "none"):
        raise ValueError(f"discrepancy must be 'auto', 'backtest', 'prior' or 'none', got {mode!r}")
    if mode == "none":
        return none(law, runs)
    table = None
    note = note or "discrepancy='prior' was asked for"
    if mode in ("auto", "backtest"):
        need_runs, scales = 2 * (len(law.params) + 3), int(order_key(law, runs).nunique())
        enough = len(runs) >= need_runs and scales >= 6
        if not enough:
            short = [f"{len(runs)} runs (backtests of {law.name!r} need at least {need_runs})"] * (len(runs) < need_runs)
            short += [f"{scales} distinct scales, size × tokens (they need 6)"] * (scales < 6)
            note = f"the table has {' and '.join(short)}, so τ comes from the prior alone"
        if mode == "backtest" or enough:
            table = backtest(runs, law, cuts=cuts, fit_kwargs=fit_kwargs, progress=progress)
            if mode == "backtest" and not len(table):
                raise ValueError(
                    f"no backtest cut leaves enough runs to fit {law.name!r} ({len(runs)} runs); "
                    "use discrepancy='prior'")
            if not len(table):
                note = (f"no backtest cut left enough runs to fit {law.name!r} ({len(runs)} runs), so τ comes "
                        "from the prior alone")
    return posterior(law, runs, prior=prior, backtest_table=table, note=note)
