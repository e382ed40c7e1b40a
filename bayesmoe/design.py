"""Which runs next: choose small runs for the decision they inform, not for the parameters.

A user who will train one big model at a target budget and can afford a few small runs first
wants the runs that most reduce the risk of choosing the wrong configuration there. This module
answers with *preposterior analysis* on the posterior draws (Raiffa & Schlaifer 1961; the
expected value of sample information):

* **The decision.** At the target budget every action ``a`` is a configuration (E, N_act, D on
  the budget's line: a grid of N_act around the posterior's optima for each candidate E). Under
  posterior draw ``s`` the loss of ``a`` is ``L_s(a) = L_law(a; θ_s)·exp(b_s·e(a))``: the law
  and its extrapolation error δ (:mod:`bayesmoe.discrepancy`, one slope vector ``b_s`` per draw,
  the same one ``optimal_experts`` uses). The risk-neutral choice minimises the posterior
  expected loss; its **decision regret** under draw ``s`` is ``L_s(chosen) − min_a L_s(a)``.
* **A candidate run's value.** For each of ``n_outer`` draws taken as the truth, the candidate's
  loss is simulated (law + δ + the fitted Student-t noise; the same noise quantile for every
  candidate, so candidates are compared on common random numbers). The posterior is updated
  without refitting, by importance reweighting of the draws with the run's likelihood; the
  draw that played the truth is left out of its own update, so a run cannot "learn" the answer
  by recognising its generator. The decision is re-made under the reweighted posterior and its
  regret scored *under the truth that generated the data*. The value of the run is the drop in
  mean regret; it is ranked per training FLOP (6·N_act·D), and runs above the remaining budget
  are excluded.
* **Batches** are greedy: each pick is conditioned on the earlier picks' simulated outcomes
  (their likelihoods multiply into the weights, per truth). When the weights degenerate (median
  effective sample size below ``min_ess``) the posterior is refitted briefly with the picks at
  their predicted median loss (the "kriging believer" of batch Bayesian optimisation,
  Ginsbourger et al. 2010), and the next pick starts from the refit's draws.
* **Value of perfect information.** ``regret_now`` is what knowing everything would save; it
  bounds every run's value. ``regret_theta_known`` is the regret left if the law's parameters θ
  were known but not its extrapolation error: a run inside the fitted range can only learn
  about θ, so once ``regret_now − regret_theta_known`` (``vpi_theta``) is small, more runs of
  that kind cannot help, and only a run beyond the fitted range (which sees δ) can.

:func:`simulate_campaign` replays the loop fit → suggest → train → update against a known truth,
recording the true regret at the target after each run; ``bench/bench_design_campaigns.py``
compares it with spending the same budget on an IsoFLOP grid.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import gammaln, logsumexp

from bayesmoe import noise as run_noise
from bayesmoe.data import validate_runs
from bayesmoe.errors import InputError
from bayesmoe.fitting import fit
from bayesmoe.laws import get_law
from bayesmoe.optima import DEFAULT_EXPERTS, Budget, _group_draws, recommend
from bayesmoe.units import flops_label

__all__ = ["suggest_runs", "Suggestion", "run_values", "reweight", "candidate_grid", "simulate_campaign", "Campaign",
           "law_truth", "isoflop_grid"]

#: Default factor beyond the fitted N and D that the default candidate grid reaches.
DEFAULT_EXTEND = 4.0
#: Median effective sample size (share of the draws) below which a batch refits.
MIN_ESS_SHARE = 0.1
#: Short refits (batch fallback and campaigns): 2 chains × 300/300, τ from its prior, never
#: extended (a campaign's cost per refit stays fixed; 2 × 300 draws rarely reach fit's ESS bar).
SHORT_FIT = {"num_chains": 2, "num_warmup": 300, "num_samples": 300, "discrepancy": "prior",
             "on_bad_fit": "warn", "progress": False, "max_extensions": 0}
#: Posterior draws the preposterior analysis uses by default (thinned evenly where a fit has more):
#: a default fit's 4 × 1000. With 1000 of them, replicates of fitted runs, which can hardly
#: change the decision, scored 0.0016-0.0019 nats (3-9 Monte-Carlo standard errors) on the
#: reference table's posterior of 2026-12-02: the coarser empirical posterior lets a replicate's
#: reweighting move the decision. With all 4000, -0.0006 to 0.0004 (within 2 standard errors), for
#: 2.4x the time (the default candidate grid at 1e16 FLOPs: 16.5 s against 6.8 s on 2 cores).
DEFAULT_MAX_DRAWS = 4000
#: Points of N_act per candidate E on the target budget's line.
_N_GRID = 21
#: A value counts only when it exceeds this many Monte-Carlo standard errors.
_SE_MULTIPLE = 2.0


# ---------------------------------------------------------------------------------------------
# posterior draws, simulated runs and importance weights
# ---------------------------------------------------------------------------------------------


@dataclass
class _Draws:
    """Flattened posterior draws: the law's parameters, the noise, δ's slopes, log-weights."""

    result: object
    group: str | None
    index: np.ndarray  # positions in the flattened (chain, draw) posterior
    params: dict[str, np.ndarray]
    sigma: np.ndarray
    trend: np.ndarray | None  # (S,) the noise's trend in compute, None where the fit has none
    nu: np.ndarray
    slopes: np.ndarray  # (S, axes)
    logw: np.ndarray  # (S,) importance log-weights from runs observed since the fit

    @property
    def size(self) -> int:
        return len(self.index)

    def weights(self) -> np.ndarray:
        return _normalise(self.logw)

    def distance(self, table: pd.DataFrame) -> np.ndarray:
        """Signed decades beyond the fitted runs, ``(rows, axes)``."""
        return np.nan_to_num(self.result.discrepancy.distance(self.result.law, table, self.group))

    def log_mean(self, table: pd.DataFrame, discrepancy: bool = True) -> np.ndarray:
        """ln loss of each draw at each row, the law + δ (or the law alone): ``(S, rows)``."""
        law = self.result.law
        with jax.enable_x64(True):
            p = {k: jnp.asarray(v, jnp.float64)[:, None] for k, v in self.params.items()}
            x = {k: jnp.asarray(table[k].to_numpy(dtype="float64"))[None, :] for k in law.inputs}
            mean = np.asarray(law.log_loss(p, x), dtype="float64")
        return mean + self.slopes @ self.distance(table).T if discrepancy else mean

    def scale(self, table: pd.DataFrame) -> np.ndarray:
        """Each draw's noise scale at each row, ``(S, rows)`` (:func:`bayesmoe.noise.run_scale`)."""
        return run_noise.run_scale(self.sigma, self.trend, self.result.runs, table, self.result.anchor)

    def log_lik(self, y: np.ndarray, mean: np.ndarray, table: pd.DataFrame) -> np.ndarray:
        """Student-t log density of observed ln losses ``y`` (broadcast against ``mean``, whose
        axis 0 is the draws and last axis ``table``'s rows) under each draw's noise."""
        nu, sigma = self.nu.reshape((-1,) + (1,) * (np.ndim(mean) - 1)), self.scale(table)
        z = (y - mean) / sigma
        return (gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * np.log(nu * np.pi) - np.log(sigma)
                - (nu + 1) / 2 * np.log1p(z * z / nu))


def _group(result, group):
    if result.hierarchical and group is None:
        raise InputError(f"this fit is hierarchical (groups {list(result.groups)}): say which setup the new runs "
                         f"belong to with group=")
    if group is not None and group not in result.groups:
        raise InputError(f"unknown group {group!r}; the fit's groups are {list(result.groups)}")
    return result.groups[0] if group is None else group


def _draws(result, group=None, *, max_draws: int | None = None) -> _Draws:
    group = _group(result, group)
    post = result.tree["posterior"]
    params, (n_chain, n_draw), _ = _group_draws(result, group)
    total = n_chain * n_draw
    step = 1 if max_draws is None or total <= max_draws else -(-total // max_draws)
    index = np.arange(0, total, step)
    params = {k: v[index] for k, v in params.items()}
    slopes = result.discrepancy.slopes((n_chain, n_draw), seed=0).reshape(total, -1)[index]
    return _Draws(result=result, group=group, index=index, params=params,
                  sigma=np.asarray(post["sigma"].values, dtype="float64").reshape(-1)[index],
                  trend=None if (t := run_noise.posterior_trend(post)) is None else t.reshape(-1)[index],
                  nu=np.broadcast_to(np.asarray(post["nu"].values, dtype="float64"),
                                     (n_chain, n_draw)).reshape(-1)[index],
                  slopes=slopes, logw=np.zeros(len(index)))


def _normalise(logw: np.ndarray) -> np.ndarray:
    """Normalised weights from log-weights, along the last axis."""
    w = np.exp(logw - logw.max(axis=-1, keepdims=True))
    return w / w.sum(axis=-1, keepdims=True)


def _ess(logw: np.ndarray) -> np.ndarray:
    """Kish effective sample size of the weights along the last axis."""
    w = _normalise(logw)
    return 1.0 / (w * w).sum(axis=-1)


def reweight(result, runs: pd.DataFrame, *, group: str | None = None) -> xr.DataArray:
    """Importance weights of the posterior draws after observing ``runs``, without refitting.

    Each draw is weighted by the likelihood of the runs' observed ln loss under it (the law,
    its extrapolation error δ beyond the fitted runs, and the fitted Student-t noise). Valid
    while the new runs move the posterior little; ``ess`` in the attributes says how little
    (below ~10 % of the draws, refit instead).

    Returns
    -------
    xarray.DataArray
        Normalised weights with dims ``(chain, draw)``; ``attrs["ess"]`` is Kish's effective
        sample size.
    """
    table = validate_runs(runs, required=result.law.inputs + ("loss",), unit_checks=False, duplicates="allow")
    d = _draws(result, group)
    ll = d.log_lik(np.log(table["loss"].to_numpy(dtype="float64"))[None, :], d.log_mean(table), table).sum(axis=1)
    w = _normalise(ll)
    post = result.tree["posterior"]
    return xr.DataArray(w.reshape(post.sizes["chain"], post.sizes["draw"]), dims=("chain", "draw"),
                        coords={"chain": post["chain"].values, "draw": post["draw"].values}, name="weight",
                        attrs={"ess": float(_ess(ll)), "runs": int(len(table))})


# ---------------------------------------------------------------------------------------------
# the decision at the target
# ---------------------------------------------------------------------------------------------


@dataclass
class _Decision:
    """The action grid at the target and each draw's loss (law + δ) at every action."""

    actions: pd.DataFrame  # experts (if the law has them), n_active, tokens
    loss: np.ndarray  # (S, A)
    regret: np.ndarray  # (S, A): loss − the draw's best action
    law_loss: np.ndarray  # (S, A) without δ
    _loss32: np.ndarray | None = field(default=None, repr=False)

    def choose(self, w: np.ndarray) -> np.ndarray:
        """Index of the action minimising expected loss under weights ``w`` (..., S). In float32
        (the batched products dominate the cost): its 1e-7 relative error is far below any regret
        that matters, and near-ties it cannot resolve cost less than that."""
        if self._loss32 is None:
            self._loss32 = self.loss.astype("float32")
        return np.argmin(w.astype("float32") @ self._loss32, axis=-1)


def _target(target, budget_kwargs) -> Budget:
    b = Budget.from_any(target, **budget_kwargs)
    if len(b.flops) != 1:
        raise InputError(f"suggest_runs plans for one target budget, got {len(b.flops)}: {b.flops.tolist()}")
    return b


def _decision(draws: _Draws, b: Budget, experts) -> _Decision:
    result = draws.result
    law = result.law
    if law.name not in ("joint", "chinchilla"):
        raise NotImplementedError(f"run design is implemented for the joint and chinchilla laws (a decision on E, "
                                  f"N_act and D), not {law.name!r}")
    has_e = "experts" in law.inputs
    with warnings.catch_warnings():  # draws without an optimum are the optimum's business, not the grid's
        warnings.simplefilter("ignore")
        opt = recommend(result, b, experts=experts if has_e else None, group=draws.group)
    n_at = opt.dataset["n_active_at"].isel(budget=0)  # (E, chain, draw)
    dim = opt.names[1]
    f, serve = float(b.flops[0]), b.serve_tokens
    if b.memory_bytes is not None:
        with jax.enable_x64(True):
            n_max = np.asarray(b.shape.max_n_active(b.memory_bytes, n_at[dim].values.astype(float),
                                                    b.context_tokens), dtype="float64")
    else:
        n_max = np.full(n_at.sizes[dim], np.inf)
    rows = []
    for i, e in enumerate(n_at[dim].values):
        v = n_at.isel({dim: i}).values.reshape(-1)[draws.index]
        v = v[np.isfinite(v) & (v > 0)]
        if v.size == 0:
            continue
        # a compromise between draws lies between their optima: the grid spans them, no wider
        lo, hi = np.quantile(v, 0.001), min(np.quantile(v, 0.999), n_max[i])
        n = np.geomspace(lo, hi, _N_GRID) if hi > lo else np.array([hi])
        d = (f - 2.0 * n * serve) / (6.0 * n)
        ok = (d > 0) & (n <= n_max[i])
        rows.append(pd.DataFrame({"experts": float(e), "n_active": n[ok], "tokens": d[ok]}))
    if not rows:
        raise InputError(f"no configuration at the target {flops_label(f)} FLOPs is feasible for any candidate E")
    actions = pd.concat(rows, ignore_index=True)
    if not has_e:
        actions = actions.drop(columns="experts")
    law_log = draws.log_mean(actions, discrepancy=False)
    dist = draws.distance(actions)
    loss = np.exp(law_log + draws.slopes @ dist.T)
    return _Decision(actions=actions, loss=loss, regret=loss - loss.min(axis=1, keepdims=True), law_loss=np.exp(law_log))


def _regret_theta_known(draws: _Draws, dec: _Decision, w: np.ndarray) -> float:
    """Expected regret if θ were known but δ not: each draw decides on its own law times
    E[exp(δ)] and is scored with its own δ.

    E[exp(δ)] is taken over the same δ sample that ``regret_now``'s decision averages over (the
    draws' slopes, weighted by ``w``), not from τ's posterior in closed form. Both decisions are
    then optimised against one sample, so their in-sample optimism is alike and their
    difference (``vpi_theta``) is not biased by it; the closed form left ``regret_now``'s
    decision alone fitted to the sample, and on the shipped posterior put the θ-known regret
    above today's (2.32e-2 vs 2.24e-2)."""
    ratio = np.log(dec.loss) - np.log(dec.law_loss)  # (S, A): each draw's δ at every action
    inflate = logsumexp(ratio, b=w[:, None], axis=0)  # ln Σ_s w_s exp(δ_s(a))
    a = np.argmin(np.log(dec.law_loss) + inflate[None, :], axis=1)
    return float(w @ dec.regret[np.arange(len(a)), a])


# ---------------------------------------------------------------------------------------------
# candidates
# ---------------------------------------------------------------------------------------------


def candidate_grid(result, *, experts: Sequence[int] = DEFAULT_EXPERTS, extend: float = DEFAULT_EXTEND,
                   points: int = 6) -> pd.DataFrame:
    """The default candidate runs: every E in ``experts`` (joint law) × ``points`` sizes and
    ``points`` token counts, log-spaced from the smallest fitted value to ``extend`` × the
    largest (a run a user could train next, up to a stated factor beyond the fitted range)."""
    if extend < 1:
        raise InputError(f"extend must be >= 1 (a factor beyond the largest fitted run), got {extend}")
    runs = result.runs
    grid = {col: np.geomspace(runs[col].min(), runs[col].max() * extend, points) for col in ("n_active", "tokens")}
    if "experts" in result.law.inputs:
        grid = {"experts": np.asarray(sorted(set(int(e) for e in experts)), dtype="float64"), **grid}
    mesh = np.meshgrid(*grid.values(), indexing="ij")
    return pd.DataFrame({k: m.reshape(-1) for k, m in zip(grid, mesh)})


def _check_candidates(result, candidates: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(candidates, pd.DataFrame):
        raise InputError(f"candidates must be a pandas DataFrame with columns {list(result.law.inputs)}, "
                         f"got {type(candidates).__name__}")
    table = candidates.drop(columns=[c for c in ("loss",) if c in candidates.columns])
    table = validate_runs(table.assign(loss=1.0), required=result.law.inputs, unit_checks=False,
                          duplicates="allow")
    out = table[list(result.law.inputs)].reset_index(drop=True)
    out.index.name = "candidate"
    return out


def _flops(table: pd.DataFrame) -> np.ndarray:
    """Training FLOPs of each run, 6·N_act·D (LAWS.md, conventions)."""
    return 6.0 * table["n_active"].to_numpy(dtype="float64") * table["tokens"].to_numpy(dtype="float64")


# ---------------------------------------------------------------------------------------------
# suggest_runs
# ---------------------------------------------------------------------------------------------


@dataclass
class Suggestion:
    """The next runs, in the order to train them, and what they are worth.

    Attributes
    ----------
    runs : pandas.DataFrame
        One row per pick: the law's inputs, ``flops``, ``value`` (expected drop in decision
        regret at the target, nats), ``value_se`` (its Monte-Carlo standard error),
        ``value_per_eflop`` (value per 1e18 training FLOPs), ``regret_before``, ``regret_after``,
        ``ess`` (median effective sample size of the update), ``refit`` (whether the batch
        refitted before this pick), ``distance`` (decades beyond the fitted runs).
    decision : dict
        The configuration the current posterior chooses at the target (E, N_act, D, expected loss).
    regret_now : float
        Expected decision regret today; also the value of perfect information, which bounds every
        run's value.
    regret_theta_known : float
        Expected regret left if θ were known but not the law's extrapolation error.
    vpi_theta : float
        ``regret_now − regret_theta_known``: the most that runs inside the fitted range can save.
    """

    runs: pd.DataFrame
    decision: dict
    regret_now: float
    regret_theta_known: float
    target: Budget = field(repr=False)
    budget_flops: float = 0.0
    candidates: int = 0
    settings: dict = field(default_factory=dict)
    stopped: str = ""

    @property
    def vpi_theta(self) -> float:
        return self.regret_now - self.regret_theta_known

    def to_dict(self) -> dict:
        return {"target_flops": float(self.target.flops[0]), "budget_flops": self.budget_flops,
                "decision": self.decision, "regret_now": self.regret_now, "vpi": self.regret_now,
                "regret_theta_known": self.regret_theta_known, "vpi_theta": self.vpi_theta,
                "candidates": self.candidates, "stopped": self.stopped, "settings": self.settings,
                "runs": self.runs.to_dict(orient="records")}

    def describe(self) -> str:
        """A few lines for a person: the decision, its regret today, the runs, what they leave."""
        lines = []
        d = self.decision
        e = f"E = {int(d['experts'])}, " if "experts" in d else ""
        lines.append(f"target {flops_label(float(self.target.flops[0]))} FLOPs: today's choice {e}N_act = "
                     f"{d['n_active']:.3g}, D = {d['tokens']:.3g} (expected loss {d['loss']:.4f})")
        lines.append(f"expected regret of that choice: {self.regret_now:.2e} nats (value of perfect information); "
                     f"{self.regret_theta_known:.2e} would remain if the law's parameters were known "
                     f"(runs inside the fitted range can save at most {self.vpi_theta:.2e})")
        if len(self.runs):
            spent = float(self.runs["flops"].sum())
            lines.append(f"{len(self.runs)} run(s) for {flops_label(spent)} of {flops_label(self.budget_flops)} FLOPs: "
                         f"expected regret {self.regret_now:.2e} -> {float(self.runs['regret_after'].iloc[-1]):.2e}")
        if self.stopped:
            lines.append(self.stopped)
        return "\n".join(lines)


def _simulate(draws: _Draws, outer: np.ndarray, table: pd.DataFrame, noise: np.ndarray):
    """Simulated ln losses of ``table``'s runs under each outer truth, and every draw's log
    likelihood of them: ``y`` (M, R) and ``ll`` (M, S, R). ``noise``: standard-t quantiles,
    (M,) shared by the runs (alternatives compared on common random numbers) or (M, R)."""
    mean = draws.log_mean(table)  # (S, R)
    noise = noise[:, None] if noise.ndim == 1 else noise
    y = mean[outer] + draws.scale(table)[outer] * noise
    return y, draws.log_lik(y[:, None, :], mean, table)


def _score(dec: _Decision, outer: np.ndarray, logw: np.ndarray) -> np.ndarray:
    """Regret under each outer truth of the decision made with log-weights ``logw`` (..., M, S)."""
    a = dec.choose(_normalise(logw))  # (..., M)
    return dec.regret[outer, a]


def _values(draws: _Draws, dec: _Decision, outer, noise, base, r_before, cands: pd.DataFrame, which):
    """Value (mean regret drop), its Monte-Carlo standard error and the median ESS of each
    candidate in ``which`` (others: value −inf)."""
    values, ses, ess = np.full(len(cands), -np.inf), np.zeros(len(cands)), np.zeros(len(cands))
    m = len(outer)
    for chunk in np.array_split(which, max(1, len(which) // 16)):
        _, ll = _simulate(draws, outer, cands.iloc[chunk], noise)  # (M, S, c)
        logw = base[None] + np.moveaxis(ll, 2, 0)  # (c, M, S)
        diff = r_before[None] - _score(dec, outer, logw)  # (c, M)
        values[chunk] = diff.mean(axis=1)
        ses[chunk] = diff.std(axis=1, ddof=1) / np.sqrt(m)
        ess[chunk] = np.median(_ess(logw), axis=1)
    return values, ses, ess


def run_values(result, target, candidates: pd.DataFrame | None = None, *, experts: Sequence[int] = DEFAULT_EXPERTS,
               group: str | None = None, extend: float = DEFAULT_EXTEND, n_outer: int = 200, max_draws: int = DEFAULT_MAX_DRAWS,
               seed: int = 0, **budget_kwargs) -> pd.DataFrame:
    """The value of each candidate run on its own (no budget, no batch): the expected drop in
    decision regret at ``target`` (``value``, nats), its Monte-Carlo standard error
    ``value_se``, ``flops``, ``value_per_eflop`` and the median effective sample size ``ess``.
    ``attrs`` holds ``regret_now`` and ``regret_theta_known``. Arguments as :func:`suggest_runs`."""
    b = _target(target, budget_kwargs)
    draws = _draws(result, group, max_draws=max_draws)
    cands = candidate_grid(result, experts=experts, extend=extend) if candidates is None \
        else _check_candidates(result, candidates)
    dec = _decision(draws, b, experts)
    w = draws.weights()
    a0 = int(dec.choose(w))
    rng = np.random.default_rng([seed, 0xD5])
    m = min(n_outer, draws.size)
    outer = rng.choice(draws.size, size=m, replace=False)
    noise = rng.standard_t(draws.nu[outer][:, None], size=(m, 1))
    base = np.zeros((m, draws.size))
    base[np.arange(m), outer] = -np.inf
    r_before = _score(dec, outer, base)
    values, ses, ess = _values(draws, dec, outer, noise[:, -1], base, r_before, cands, np.arange(len(cands)))
    out = cands.copy()
    out["flops"] = _flops(cands)
    out["value"], out["value_se"], out["ess"] = values, ses, ess
    out["value_per_eflop"] = values / out["flops"] * 1e18
    out["distance"] = np.linalg.norm(draws.distance(cands), axis=1)
    out.attrs = {"regret_now": float(w @ dec.regret[:, a0]),
                 "regret_theta_known": _regret_theta_known(draws, dec, w), "target_flops": float(b.flops[0])}
    return out


def suggest_runs(result, target, *, budget_flops: float, candidates: pd.DataFrame | None = None, k: int = 1,
                 experts: Sequence[int] = DEFAULT_EXPERTS, group: str | None = None, extend: float = DEFAULT_EXTEND,
                 n_outer: int = 200, max_draws: int = DEFAULT_MAX_DRAWS, min_ess: float | None = None, refit: bool = True,
                 refit_kwargs: Mapping | None = None, seed: int = 0, progress: bool | None = None,
                 rank: str = "per_flop", **budget_kwargs) -> Suggestion:
    """The next ``k`` runs that most reduce the expected regret of the decision at ``target``
    per training FLOP (see the module docstring for the method).

    Parameters
    ----------
    result : FitResult
        A fit of the ``joint`` (E, N_act, D decision) or ``chinchilla`` (N, D) law.
    target : float or Budget
        The big run: training FLOPs, or a :class:`~bayesmoe.optima.Budget` with memory and serving
        terms (or the keywords ``memory_gb``, ``serve_tokens``, ... as in ``optimal_experts``).
    budget_flops : float
        Training FLOPs available for the new runs together (6·N_act·D each).
    candidates : pandas.DataFrame, optional
        Runs you could train (the law's inputs, aliases accepted). Default:
        :func:`candidate_grid` (E in ``experts`` × sizes and tokens from the fitted range up to
        ``extend`` × beyond it).
    k : int
        Runs to pick, greedily, each conditioned on the simulated outcomes of the earlier picks.
    experts : sequence of int
        Candidate E at the target (and of the default grid).
    n_outer, max_draws : int
        Simulated truths, and posterior draws used (thinned evenly; :data:`DEFAULT_MAX_DRAWS`).
    min_ess : float, optional
        Median effective sample size below which a batch refits (default 10 % of the draws).
    refit : bool
        Allow the batch's short refit; with ``False`` a degenerate batch stops instead.
    seed : int
        Seeds the truths and their noise (the same seed gives the same suggestion).
    rank : {"per_flop", "cost_cooled"}
        ``"per_flop"``: value / FLOPs. ``"cost_cooled"``: value / FLOPs^α with α the share of the
        budget still unspent (cost-cooling, Lee et al. 2020): per FLOP at first, per run as the
        budget runs out (experimental; see docs/design.md).
    """
    if rank not in ("per_flop", "cost_cooled"):
        raise InputError(f"rank must be 'per_flop' or 'cost_cooled', got {rank!r}")
    if not budget_flops > 0:
        raise InputError(f"budget_flops must be > 0, got {budget_flops}")
    if int(k) != k or k < 1:
        raise InputError(f"k must be a positive integer, got {k}")
    return _suggest(result, _draws(result, group, max_draws=max_draws), _target(target, budget_kwargs),
                    budget_flops=budget_flops, candidates=candidates, k=k, experts=experts, extend=extend,
                    n_outer=n_outer, min_ess=min_ess, refit=refit, refit_kwargs=refit_kwargs, seed=seed,
                    progress=progress, rank=rank)


def _suggest(result, draws: _Draws, b: Budget, *, budget_flops, candidates, k, experts, extend, n_outer, min_ess,
             refit, refit_kwargs, seed, progress, rank="per_flop", total_budget=None) -> Suggestion:
    """:func:`suggest_runs` on given (possibly reweighted) draws."""
    cands = candidate_grid(result, experts=experts, extend=extend) if candidates is None \
        else _check_candidates(result, candidates)
    cost = _flops(cands)
    min_ess = MIN_ESS_SHARE * draws.size if min_ess is None else float(min_ess)
    settings = {"n_outer": int(n_outer), "draws": int(draws.size), "seed": int(seed), "min_ess": float(min_ess),
                "extend": float(extend), "candidates": "user" if candidates is not None else "grid"}
    picks: list[dict] = []
    picked = pd.DataFrame(columns=list(result.law.inputs))
    remaining = float(budget_flops)
    stopped = ""
    rng = np.random.default_rng([seed, 0xD5])
    dec = _decision(draws, b, experts)
    w_all = draws.weights()
    a0 = int(dec.choose(w_all))
    decision = dec.actions.iloc[a0].to_dict() | {"loss": float(w_all @ dec.loss[:, a0])}
    regret_now = float(w_all @ dec.regret[:, a0])
    regret_theta = min(_regret_theta_known(draws, dec, w_all), regret_now)
    regret = regret_now
    bar = _progress(k, progress)
    refitted = False
    while len(picks) < k:
        w_all = draws.weights()
        m = min(n_outer, draws.size)
        # the truths: draws of the current (possibly reweighted) posterior
        weighted = bool(np.ptp(draws.logw) > 0)
        outer = rng.choice(draws.size, size=m, replace=weighted, p=w_all if weighted else None)
        # independent noise for each earlier pick and one shared column for the candidates
        noise = rng.standard_t(draws.nu[outer][:, None], size=(m, len(picked) + 1))
        base = np.broadcast_to(draws.logw, (m, draws.size)).copy()
        base[np.arange(m), outer] = -np.inf  # a truth is not part of its own update
        if len(picked):  # earlier picks of this batch: their outcomes, simulated under each truth
            _, ll_p = _simulate(draws, outer, picked, noise[:, :-1])
            base += ll_p.sum(axis=2)
        ess_base = float(np.median(_ess(base)))
        if len(picked) and ess_base < min_ess:
            if not refit:
                stopped = (f"stopped after {len(picks)} pick(s): the batch's importance weights degenerated "
                           f"(median ESS {ess_base:.0f} < {min_ess:.0f}) and refit=False")
                break
            draws = _believer_refit(draws, picked, refit_kwargs, seed + len(picks))
            dec = _decision(draws, b, experts)
            picked = picked.iloc[0:0]
            refitted = True
            continue
        r_before = _score(dec, outer, base)  # (M,)
        affordable = np.flatnonzero(cost <= remaining)
        if affordable.size == 0:
            stopped = (f"stopped after {len(picks)} pick(s): no candidate fits in the remaining "
                       f"{flops_label(remaining)} FLOPs (the cheapest costs {flops_label(float(cost.min()))})")
            break
        values, ses, ess = _values(draws, dec, outer, noise[:, -1], base, r_before, cands, affordable)
        useful = values > _SE_MULTIPLE * ses
        if not useful.any():
            stopped = (f"stopped after {len(picks)} pick(s): no affordable candidate changes the decision by more "
                       f"than twice its Monte-Carlo error (best value {values.max():.2e} nats); more runs of these "
                       f"kinds cannot help")
            break
        alpha = 1.0 if rank == "per_flop" else remaining / float(total_budget or budget_flops)
        score = np.where(useful, values / cost ** alpha, -np.inf)
        c = int(np.argmax(score))
        value = float(values[c])
        picks.append(cands.iloc[c].to_dict() | {
            "flops": float(cost[c]), "value": value, "value_se": float(ses[c]),
            "value_per_eflop": value / cost[c] * 1e18, "regret_before": regret,
            "regret_after": max(regret - value, 0.0), "ess": float(ess[c]), "refit": refitted,
            "distance": float(np.linalg.norm(draws.distance(cands.iloc[[c]]), axis=1)[0])})
        regret = picks[-1]["regret_after"]
        refitted = False
        picked = pd.concat([picked, cands.iloc[[c]]], ignore_index=True)
        remaining -= float(cost[c])
        bar.update(1)
    bar.close()
    return Suggestion(runs=pd.DataFrame(picks, columns=_run_columns(result.law)), decision=decision,
                      regret_now=regret_now, regret_theta_known=regret_theta, target=b,
                      budget_flops=float(budget_flops), candidates=len(cands), settings=settings, stopped=stopped)


def _run_columns(law) -> list[str]:
    return list(law.inputs) + ["flops", "value", "value_se", "value_per_eflop", "regret_before", "regret_after",
                               "ess", "refit", "distance"]


def _believer_refit(draws: _Draws, picked: pd.DataFrame, refit_kwargs, seed: int) -> _Draws:
    """A short refit with the batch's picks at their predicted median loss (kriging believer)."""
    result = draws.result
    w = draws.weights()
    mean = draws.log_mean(picked)  # (S, R)
    order = np.argsort(mean, axis=0)
    cdf = np.cumsum(w[order], axis=0)
    med = mean[order[np.argmax(cdf >= 0.5, axis=0), np.arange(mean.shape[1])], np.arange(mean.shape[1])]
    believed = picked.assign(loss=np.exp(med))
    runs = result.runs
    if "group" in runs:
        believed["group"] = draws.group
    # a believed run may repeat a fitted configuration: each is its own replicate
    seeds = runs["seed"] if "seed" in runs else pd.Series(0, index=runs.index)
    believed["seed"] = np.arange(len(believed)) + (int(seeds.max()) + 1 if np.issubdtype(seeds.dtype, np.number)
                                                   else 0)
    table = pd.concat([runs.assign(seed=seeds), believed], ignore_index=True)
    kwargs = dict(SHORT_FIT) | dict(refit_kwargs or {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        new = fit(table, law=result.law, priors=result.priors, seed=seed, unit_checks=False, **kwargs)
    return _draws(new, draws.group if draws.group in new.groups else None, max_draws=draws.size)


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress(total: int, progress: bool | None):
    if progress is False or (progress is None and total <= 1):
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="suggest_runs", unit="run", disable=progress is None and not _is_tty())


def _is_tty() -> bool:
    import sys

    return sys.stderr.isatty()


# ---------------------------------------------------------------------------------------------
# campaigns against a known truth
# ---------------------------------------------------------------------------------------------


def law_truth(law, params: Mapping[str, float]) -> Callable[[pd.DataFrame], np.ndarray]:
    """A truth for :func:`simulate_campaign`: the expected loss of ``law`` at fixed ``params``."""
    law = get_law(law)

    def truth(table: pd.DataFrame) -> np.ndarray:
        with jax.enable_x64(True):
            p = {k: jnp.float64(v) for k, v in params.items()}
            x = {k: jnp.asarray(table[k].to_numpy(dtype="float64")) for k in law.inputs}
            return np.exp(np.asarray(law.log_loss(p, x), dtype="float64"))

    truth.law = law
    return truth


def isoflop_grid(budget_flops: float, *, levels: int = 2, sizes: int = 3, experts: Sequence[int] = (1, 8, 64),
                 spread: float = 4.0, n_center: Callable[[float], float] | None = None) -> pd.DataFrame:
    """The usual recipe, for comparison: ``levels`` compute budgets (×3 apart) whose runs together
    spend ``budget_flops``; at each, ``sizes`` model sizes spanning ``spread``× around
    ``n_center(C)`` (default the Chinchilla rule N = sqrt(C / 120), D = 20·N) for each E."""
    n_center = n_center or (lambda c: np.sqrt(c / 120.0))
    ratios = 3.0 ** np.arange(levels)
    per_level = budget_flops / (sizes * len(experts) * ratios.sum())
    rows = []
    for r in ratios:
        c = per_level * r
        for n in n_center(c) * np.geomspace(1 / np.sqrt(spread), np.sqrt(spread), sizes):
            for e in experts:
                rows.append({"n_active": n, "tokens": c / (6.0 * n), "experts": float(e)})
    return pd.DataFrame(rows)


@dataclass
class Campaign:
    """A simulated campaign: ``history`` has one row per step (step 0 = the starting table)."""

    history: pd.DataFrame
    runs: pd.DataFrame
    truth_optimum: dict


def _truth_optimum(truth, b: Budget, experts, has_e: bool, n_range) -> tuple[dict, Callable]:
    f, serve = float(b.flops[0]), b.serve_tokens
    n = np.geomspace(*n_range, 2001)
    rows = [{"experts": float(e), "n_active": n, "tokens": (f - 2.0 * n * serve) / (6.0 * n)}
            for e in (experts if has_e else (1,))]
    grid = pd.concat([pd.DataFrame(r) for r in rows], ignore_index=True)
    grid = grid[grid["tokens"] > 0].reset_index(drop=True)
    loss = truth(grid)
    i = int(np.nanargmin(loss))
    return grid.iloc[i].to_dict() | {"loss": float(loss[i])}


def simulate_campaign(truth: Callable[[pd.DataFrame], np.ndarray], start: pd.DataFrame, target, *,
                      budget_flops: float, law="joint", arm: str | pd.DataFrame = "suggest",
                      experts: Sequence[int] = DEFAULT_EXPERTS, noise_sd: float = 0.01, fit_kwargs: Mapping | None = None,
                      suggest_kwargs: Mapping | None = None, min_ess: float | None = None, max_steps: int = 30,
                      score_each: bool = True, seed: int = 0) -> Campaign:
    """Replay fit → suggest → train → update against a known truth.

    Parameters
    ----------
    truth : callable
        Expected loss (nats) of a table of runs, e.g. :func:`law_truth`, or any function of the
        law's inputs (a misspecified truth).
    start : pandas.DataFrame
        The starting runs (the law's inputs; their losses are drawn from ``truth``).
    arm : "suggest" or DataFrame
        ``"suggest"``: sequential :func:`suggest_runs` with k = 1 until the budget is spent or no
        run is worth training. A DataFrame: a fixed plan (e.g. :func:`isoflop_grid`), trained in
        its order, the decision scored after each run.
    noise_sd : float
        Standard deviation of a run's ln loss around the truth.
    min_ess : float, optional
        Between full refits the posterior is updated by importance reweighting with the new
        runs; below this effective sample size (default 25 % of the draws) it is refitted.
    score_each : bool
        For a plan: score the decision after every run (``True``), or train the whole plan that
        fits in the budget and fit once (``False``: the usual recipe's single analysis).
    """
    law = get_law(law)
    b = _target(target, {})
    rng = np.random.default_rng([seed, 0xCA])
    fit_kwargs = dict(SHORT_FIT) | dict(fit_kwargs or {})
    suggest_kwargs = dict(suggest_kwargs or {})

    trained_so_far = [0]

    def train(table):
        out = table[list(law.inputs)].copy()
        out["loss"] = truth(out) * np.exp(noise_sd * rng.standard_normal(len(out)))
        # every training run is its own seed: a repeated configuration is a replicate, not an error
        out["seed"] = np.arange(trained_so_far[0], trained_so_far[0] + len(out))
        trained_so_far[0] += len(out)
        return out

    runs = train(start).reset_index(drop=True)
    has_e = "experts" in law.inputs
    optimum = None
    history = []
    spent, step = 0.0, 0

    def do_fit(table, s):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fit(table, law=law, seed=seed * 1000 + s, unit_checks=False, **fit_kwargs)

    max_draws = suggest_kwargs.get("max_draws", DEFAULT_MAX_DRAWS)
    result = do_fit(runs, 0)
    draws = _draws(result, max_draws=max_draws)
    n_fitted = len(runs)
    ess_floor = 0.25 * draws.size if min_ess is None else float(min_ess)
    plan = None if isinstance(arm, str) else _check_candidates(result, arm)
    if isinstance(arm, str) and arm != "suggest":
        raise InputError(f"arm must be 'suggest' or a DataFrame of planned runs, got {arm!r}")

    def record(refit: bool, new_run=None, value=np.nan):
        nonlocal optimum
        dec = _decision(draws, b, experts)
        w = draws.weights()
        a = int(dec.choose(w))
        chosen = dec.actions.iloc[[a]].reset_index(drop=True)
        if not has_e:
            chosen = chosen.assign(experts=1.0)
        if optimum is None:
            n = dec.actions["n_active"].to_numpy()
            optimum = _truth_optimum(truth, b, experts, has_e, (n.min() / 30, n.max() * 30))
        true_loss = float(truth(chosen)[0])
        row = {"step": step, "flops_spent": spent, "runs": len(runs), "refit": refit, "ess": float(_ess(draws.logw)),
               "chosen_experts": float(chosen["experts"].iloc[0]), "chosen_n_active": float(chosen["n_active"].iloc[0]),
               "chosen_tokens": float(chosen["tokens"].iloc[0]), "true_regret": true_loss - optimum["loss"],
               "correct_experts": bool(chosen["experts"].iloc[0] == optimum["experts"]),
               "expected_regret": float(w @ dec.regret[:, a]), "value": value}
        row.update({f"run_{k}": np.nan if new_run is None else float(new_run[k]) for k in law.inputs})
        history.append(row)

    record(True)
    if plan is not None and not score_each:
        cost = np.cumsum(_flops(plan))
        trained = train(plan[cost <= budget_flops * (1 + 1e-9)])
        runs = pd.concat([runs, trained], ignore_index=True)
        spent, step = float(_flops(trained).sum()), len(trained)
        result = do_fit(runs, step)
        draws = _draws(result, max_draws=max_draws)
        n_fitted = len(runs)
        record(True)
        max_steps = 0
    while step < max_steps:
        remaining = budget_flops - spent
        if plan is not None:
            if step >= len(plan):
                break
            new, value = plan.iloc[[step]], np.nan
            if _flops(new)[0] > remaining * (1 + 1e-9):
                break
        else:
            opts = {"candidates": None, "extend": DEFAULT_EXTEND, "n_outer": 200, "min_ess": None,
                    "refit_kwargs": None, "total_budget": budget_flops} | {
                k: v for k, v in suggest_kwargs.items() if k != "max_draws"}
            s = _suggest(result, draws, b, budget_flops=remaining, k=1, experts=experts, seed=seed * 1000 + step,
                         refit=False, progress=False, **opts)
            if s.runs.empty:
                break
            new, value = s.runs[list(law.inputs)].iloc[[0]], float(s.runs["value"].iloc[0])
        trained = train(new)
        runs = pd.concat([runs, trained], ignore_index=True)
        spent += float(_flops(trained)[0])
        step += 1
        # update: reweight the draws with the new run; refit when the weights degenerate
        y = np.log(trained["loss"].to_numpy())
        draws.logw = draws.logw + draws.log_lik(y[None, :], draws.log_mean(trained), trained).sum(axis=1)
        refit = bool(_ess(draws.logw) < ess_floor)
        if refit:
            result = do_fit(runs, step)
            draws = _draws(result, max_draws=max_draws)
            n_fitted = len(runs)
        record(refit, trained.iloc[0][list(law.inputs)].to_dict(), value)
    hist = pd.DataFrame(history)
    hist.attrs["fitted_runs_at_end"] = n_fitted
    return Campaign(history=hist, runs=runs, truth_optimum=optimum)
