"""Uncertainty-aware optima: which configuration a budget should buy, and how sure we are.

Every query is evaluated for each posterior draw, vectorised in JAX over budgets × draws ×
expert counts (no Python loop over either). Definitions follow Ludziejewski et al. 2025 §4
(LAWS.md §1.5 and "Conventions" 7):

* compute-optimal: minimise L(N_act, D, E) subject to 6·N_act·D = F;
* inference-aware: 6·N_act·D + 2·N_act·D_serve = F;
* memory-limited: additionally weights + KV cache ≤ M (:class:`bayesmoe.shape.ModelShape`); the
  memory-optimal model is the compute-optimal one truncated at the largest size that fits.

At fixed E the joint law is a Chinchilla law in (N, D) with E-dependent coefficients
``m = a·Ê^δ, µ = α + γ·ln Ê, n = b·Ê^ω, ν = β + ζ·ln Ê``; the compute-optimal point then has the
closed form of Hoffmann et al. Eq. 4 with magnitudes ``α_c = −µ, β_c = −ν`` (LAWS.md §1.5 warns
that Eq. 7 of the paper, coded literally, gives the reciprocal G). Inference-aware optima have no
closed form and use a golden-section search over ln N_act per draw; the two agree to float32
precision where both apply (tested).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from bayesmoe.errors import InputError
from bayesmoe.intervals import DEFAULT_CI_PROB, check_ci_prob
from bayesmoe.laws import Law, e_hat
from bayesmoe.shape import GB, ModelShape
from bayesmoe.units import flops_label

__all__ = ["Budget", "OptimalExperts", "optimal_experts", "optimal_config", "recommend", "compare", "flop_savings",
           "DEFAULT_EXPERTS"]

DEFAULT_EXPERTS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_GOLDEN_ITERS = 80  # 0.618^80 of a 25-wide log bracket: 5e-16 (the solvers run in float64)
_N_MIN = 1e3  # search floor for N_act in the numerical path
#: P(E* at the largest candidate) or P(E* outside the fitted E range) at or above which the
#: summary flags the decision: one chance in ten that the answer lies where nothing was measured.
EDGE_MASS = 0.1


@dataclass(frozen=True)
class Budget:
    """What a training run may spend.

    Parameters
    ----------
    flops : float or array
        Training compute in FLOPs (6·N_act·D), or the total including serving when
        ``serve_tokens`` is set.
    memory_bytes : float, optional
        Limit on weights + KV cache in bytes (``memory_gb`` is the same in GB = 1e9 bytes).
    context_tokens : float
        Tokens held in the KV cache (all sequences of a batch together) when memory is limited.
    serve_tokens : float
        Tokens to be served after training, priced at 2·N_act FLOPs each and taken out of
        ``flops`` (inference-aware optimum).
    shape : ModelShape
        The architecture model behind N_total and the KV cache.
    """

    flops: float | Sequence[float] | np.ndarray
    memory_bytes: float | None = None
    context_tokens: float = 0.0
    serve_tokens: float = 0.0
    shape: ModelShape = field(default_factory=ModelShape)

    @classmethod
    def from_any(cls, budget, **kwargs) -> Budget:
        if isinstance(budget, Budget):
            if kwargs:
                raise TypeError("pass budget options either in the Budget or as keywords, not both")
            return budget
        if "memory_gb" in kwargs:
            gb = kwargs.pop("memory_gb")
            kwargs["memory_bytes"] = None if gb is None else gb * GB
        return cls(flops=budget, **kwargs)

    def __post_init__(self):
        flops = np.atleast_1d(np.asarray(self.flops, dtype="float64"))
        if flops.ndim != 1 or flops.size == 0:
            raise InputError("flops must be a number or a 1-D array of numbers")
        bad = np.flatnonzero(~np.isfinite(flops) | (flops <= 0))
        if bad.size:
            raise InputError(f"flops must be finite and > 0; bad entries at positions {bad.tolist()}: "
                             f"{flops[bad].tolist()}")
        object.__setattr__(self, "flops", flops)
        if self.memory_bytes is not None and not self.memory_bytes > 0:
            raise InputError(f"memory_bytes must be > 0, got {self.memory_bytes}")
        if self.context_tokens < 0 or self.serve_tokens < 0:
            raise InputError("context_tokens and serve_tokens must be >= 0")


# ---------------------------------------------------------------------------------------------
# per-draw coefficients and the two solvers
# ---------------------------------------------------------------------------------------------


def _isoflop_coefficients(law: Law, p: Mapping, experts):
    """``(ln m, α_c, ln n, β_c)`` of ``L = m·N^-α_c + n·D^-β_c + c`` at fixed E, or None."""
    if law.name == "joint":
        le = jnp.log(e_hat(experts, p["e_start"], p["e_max"]))
        return (jnp.log(p["a"]) + p["delta"] * le, -(p["alpha"] + p["gamma"] * le),
                jnp.log(p["b"]) + p["omega"] * le, -(p["beta"] + p["zeta"] * le))
    if law.name == "chinchilla":
        one = jnp.ones_like(experts)
        return jnp.log(p["a"]) * one, p["alpha"] * one, jnp.log(p["b"]) * one, p["beta"] * one
    return None


def _tokens(n, flops, serve):
    return (flops - 2.0 * n * serve) / (6.0 * n)


def _loss(law: Law, p, n, d, e):
    return jnp.exp(law.log_loss(p, {"n_active": n, "tokens": d, "experts": e}))


def _closed_form_n(coef, flops):
    log_m, ac, log_n, bc = coef
    log_g = (jnp.log(ac) + log_m - jnp.log(bc) - log_n) / (ac + bc)
    return jnp.exp(log_g + bc / (ac + bc) * jnp.log(flops / 6.0))


def _golden_section(f, lo, hi):
    """Minimiser of a unimodal ``f`` on [lo, hi], elementwise: the midpoint of the final bracket."""
    r = 0.5 * (jnp.sqrt(5.0) - 1.0)

    def step(_, s):
        a, b = s
        c1, c2 = b - r * (b - a), a + r * (b - a)
        left = f(c1) < f(c2)
        return jnp.where(left, a, c1), jnp.where(left, c2, b)

    a, b = jax.lax.fori_loop(0, _GOLDEN_ITERS, step, (lo, hi))
    return 0.5 * (a + b)


def _golden_n(law: Law, p, flops, serve, e):
    """Loss-minimising N_act on the budget line, per element (loss is unimodal in ln N)."""
    shape = jnp.broadcast_shapes(flops.shape, e.shape, *(v.shape for v in p.values()))
    hi = jnp.where(serve > 0, flops / (2.0 * jnp.maximum(serve, 1e-30)), flops / 6.0)
    hi = jnp.broadcast_to(jnp.log(hi) - 1e-4, shape)
    lo = jnp.full(shape, jnp.log(_N_MIN), hi.dtype)

    def f(log_n):
        n = jnp.exp(log_n)
        return _loss(law, p, n, _tokens(n, flops, serve), e)

    return jnp.exp(_golden_section(f, lo, hi))


_SOLVERS: dict = {}


def _solver(law: Law, numerical: bool):
    """A jitted :func:`_solve` per law and method (laws hold dicts, so they are not jit-static)."""
    key = (law.name, id(law), numerical)
    if key not in _SOLVERS:
        _SOLVERS[key] = jax.jit(partial(_solve, law, numerical))
    return _SOLVERS[key]


def _solve(law: Law, numerical: bool, p, flops, serve, experts, n_max):
    """Optimal (N_act, D, loss) per (budget, draw, expert count); ``n_max`` per expert count."""
    pb = {k: v[None, :, None] for k, v in p.items()}  # draws on axis 1
    f = flops[:, None, None]
    e = experts[None, None, :]
    coef = None if numerical else _isoflop_coefficients(law, pb, e)
    if coef is None:
        n = _golden_n(law, pb, f, serve, e)
        bounded = jnp.ones(n.shape, bool)
    else:
        bounded = (coef[1] > 0) & (coef[3] > 0)  # both terms fall: an interior optimum exists
        n = _closed_form_n(coef, f)
    unconstrained = n
    n = jnp.minimum(n, n_max[None, None, :])  # memory: truncate at the largest model that fits
    d = _tokens(n, f, serve)
    feasible = (d > 0) & (n_max[None, None, :] > 0)
    if coef is None:
        loss = _loss(law, pb, n, d, e)
    else:  # the same law from its fixed-E coefficients: no second pass through Ê
        log_m, ac, log_n, bc = coef
        loss = jnp.exp(log_m - ac * jnp.log(n)) + jnp.exp(log_n - bc * jnp.log(d)) + pb[law.irreducible]
    loss = jnp.where(feasible & bounded, loss, jnp.inf)
    return n, d, loss, jnp.broadcast_to(bounded, n.shape), n < unconstrained


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------


@dataclass
class OptimalExperts:
    """Per-draw optima over budgets and expert counts, with the decision and its odds.

    Attributes
    ----------
    dataset : xarray.Dataset
        ``experts``, ``n_active``, ``tokens``, ``loss`` of each draw's optimum (dims ``budget,
        chain, draw``); ``p_experts`` = P(E* = e) (dims ``budget, expert_count``);
        ``loss_at``, ``n_active_at``, ``tokens_at``: the optimum at each candidate E (dims
        ``budget, expert_count, chain, draw``), all including the law's extrapolation error δ
        (:mod:`bayesmoe.discrepancy`); ``loss_law_at`` and ``p_experts_law``: the same without δ;
        ``beyond`` (budget, axis): the median signed decades by which the per-draw optimum lies
        outside the fitted runs along each axis (N, D, E, N·D); ``extrapolation_decades``: the
        median Euclidean distance over axes; ``compute_decades``: the budget outside the fitted
        compute; ``p_experts_at_edge`` / ``p_experts_beyond_fitted``: P(E* = the largest
        candidate) and P(E* outside the fitted E range).
    ci_prob : float
        Probability of the equal-tailed intervals in :meth:`summary`.
    """

    dataset: xr.Dataset
    ci_prob: float = DEFAULT_CI_PROB
    result: object = field(default=None, repr=False)
    group: str | None = None
    budget: Budget | None = field(default=None, repr=False)

    def isoflop_curve(self, budget_index: int, choice: float, sizes, *, max_draws: int = 400) -> np.ndarray:
        """Loss per draw along budget ``budget_index``'s line at a fixed E (or G), for model
        sizes ``sizes`` (N_act for the joint/chinchilla/sparsity optimum's size variable,
        N_total for fine_grained); shape ``(draws, sizes)``, at most ``max_draws`` draws."""
        if self.result is None:
            raise InputError("this optimum was built without its FitResult")
        law = self.result.law
        params, _, _ = _group_draws(self.result, self.group)
        step = max(1, len(params[law.params[0]]) // max_draws)
        p = {k: np.asarray(v)[::step, None] for k, v in params.items()}
        f = float(self.dataset["budget"].values[budget_index])
        n = np.asarray(sizes, dtype="float64")[None, :]
        serve = 0.0 if self.budget is None else self.budget.serve_tokens
        with jax.enable_x64(True):
            pj = {k: jnp.asarray(v) for k, v in p.items()}
            if law.name == "fine_grained":
                g = jnp.float64(choice)
                d = _fg_tokens(n, f, g, self.dataset.attrs.get("expansion", 64.0))
                x = {"n_total": n, "tokens": d, "granularity": g}
            elif law.name == "sparsity":
                raise NotImplementedError("IsoFLOP curves of the sparsity optimum are not drawn yet")
            else:
                x = {"n_active": n, "tokens": _tokens(n, f, serve), "experts": jnp.float64(choice)}
            loss = np.asarray(jnp.exp(law.log_loss(pj, x)), dtype="float64")
        return np.where(np.asarray(x["tokens"]) > 0, loss, np.nan)

    def _interval(self, da: xr.DataArray, discrete: bool = False):
        q = (1 - self.ci_prob) / 2
        st = da.stack(sample=("chain", "draw"))
        # a count (E, G) has no value between two candidates: take quantiles among the draws' own values
        how = {"method": "nearest"} if discrete else {}
        return (st.quantile(0.5, "sample", **how).values, st.quantile(q, "sample", **how).values,
                st.quantile(1 - q, "sample", **how).values)

    @property
    def names(self) -> tuple[str, str, str, str]:
        """(choice variable, its candidate dim, size variable, short label): E or G."""
        a = self.dataset.attrs
        return a.get("choice", "experts"), a.get("choice_dim", "expert_count"), a.get("size", "n_active"), \
            a.get("label", "E")

    @property
    def decision(self) -> xr.DataArray:
        """The E (or G) minimising posterior expected loss per budget (a risk-neutral user's pick).

        Over the draws in which every feasible candidate has an optimum (:attr:`complete`): a draw
        whose exponents stop falling at some candidate gives it no finite loss, and one such draw
        would make every expectation but one infinite and the pick that one by default. A
        candidate with no optimum in any draw (beyond a memory limit) is never picked and does not
        make draws incomplete; a budget with no complete draw averages over every draw. Note that
        adding a far candidate can thus leave draws out of every candidate's average; the share is
        ``P(incomplete)`` in :meth:`summary`."""
        expected = self._decision_loss_at().mean(("chain", "draw"))
        return expected.idxmin(self.names[1])

    def _decision_loss_at(self, complete: xr.DataArray | None = None) -> xr.DataArray:
        """``loss_at`` over the draws the decision averages (:attr:`complete`, or every draw of a
        budget that has no complete one)."""
        complete = self.complete if complete is None else complete
        use = complete | ~complete.any(("chain", "draw"))
        return self.dataset["loss_at"].where(use)

    @property
    def complete(self) -> xr.DataArray:
        """Per budget and draw: every feasible candidate (one with an optimum in some draw) has a
        finite optimum in this draw; the draws the decision and its regret average over."""
        finite = np.isfinite(self.dataset["loss_at"])
        feasible = finite.any(("chain", "draw"))
        return (finite | ~feasible).all(self.names[1])

    @property
    def expected_regret(self) -> xr.DataArray:
        """E[loss(decision) − loss(per-draw optimum)] per budget, in nats, over the draws the
        decision averages (:attr:`complete`)."""
        return self._regret(self._decision_loss_at(), self.decision)

    def _regret(self, loss_at: xr.DataArray, decision: xr.DataArray) -> xr.DataArray:
        return (loss_at.sel({self.names[1]: decision}) - self.dataset["loss"]).mean(("chain", "draw"))

    def summary(self) -> pd.DataFrame:
        """One row per budget: decision, its regret, E*, N*, D*, loss* intervals, P(E* = e)."""
        ds = self.dataset
        choice, dim, size, x = self.names
        lo_name, hi_name = f"{self.ci_prob:.0%} lo", f"{self.ci_prob:.0%} hi"
        out = pd.DataFrame(index=pd.Index(ds["budget"].values, name="flops"))
        out["extrapolation_decades"] = ds["extrapolation_decades"].values
        for a in ds["axis"].values:
            out[f"beyond_{a}"] = ds["beyond"].sel(axis=a).values
        # a law without the choice variable (chinchilla: dense only) has no E rows to show
        has_choice = self.result is None or choice in self.result.law.inputs
        complete = self.complete  # once: the decision, its regret, the flags and P(incomplete) share it
        loss_at = self._decision_loss_at(complete)
        decision = loss_at.mean(("chain", "draw")).idxmin(dim)
        if has_choice:
            out[f"{x}_decision"] = decision.values.astype(int)
            # loss still falling at the largest candidate: the search range, not the law, set the
            # optimum; or the odds sit on expert counts the fit never saw
            edge = ds[f"p_{choice}_at_edge"].values
            out[f"P({x}* at edge)"] = edge
            out[f"{x}_at_edge"] = (((decision.values == ds[dim].values.max()) | (edge >= EDGE_MASS))
                                   & (ds.sizes[dim] > 1))
            out[f"P({x}* beyond fitted)"] = ds[f"p_{choice}_beyond_fitted"].values
            decided = decision.values
            lo, hi = ds.attrs[f"fitted_{choice}_min"], ds.attrs[f"fitted_{choice}_max"]
            out[f"{x}_beyond_fitted"] = ((decided > hi) | (decided < lo)
                                         | (ds[f"p_{choice}_beyond_fitted"].values >= EDGE_MASS))
        out["expected_regret"] = self._regret(loss_at, decision).values
        if "p_no_optimum" in ds:
            out["P(no optimum)"] = ds["p_no_optimum"].values
        # draws with an optimum left out of the decision: some feasible candidate had none in them
        # (draws with no optimum at all are P(no optimum))
        has_one = np.isfinite(ds["loss"])
        incomplete = (has_one & ~complete).mean(("chain", "draw")).values
        if incomplete.any():
            out["P(incomplete)"] = incomplete
        size_label = "N_act*" if size == "n_active" else "N_total*"
        rows = ((choice, f"{x}*"),) if has_choice else ()
        for var, label in (*rows, (size, size_label), ("tokens", "D*"), ("loss", "loss*")):
            med, lo, hi = self._interval(ds[var], discrete=var == choice)
            if var == choice:
                med, lo, hi = (np.rint(v).astype(int) for v in (med, lo, hi))
            out[f"{label} median"], out[f"{label} {lo_name}"], out[f"{label} {hi_name}"] = med, lo, hi
        if has_choice:
            for e in ds[dim].values:
                out[f"P({x}*={int(e)})"] = ds[f"p_{choice}"].sel({dim: e}).values
        return out

    def to_dataframe(self) -> pd.DataFrame:
        """Long table of each draw's optimum: budget, chain, draw, experts, n_active, tokens, loss."""
        choice, _, size, _ = self.names
        return self.dataset[[choice, size, "tokens", "loss"]].to_dataframe().reset_index()


def _group_draws(result, group):
    """Law parameters per draw, flattened to (draws,): a known group, or (hierarchical fits,
    group=None) a new, unseen setup drawn from the population."""
    if not result.hierarchical:
        group = result.groups[0]
    raw = result._group_params(group) if group is not None else result._new_setup_params(0)
    post = result.tree["posterior"]
    shape = (post.sizes["chain"], post.sizes["draw"])
    params = {k: np.asarray(v, dtype="float64").reshape(-1) for k, v in raw.items()}  # float64 downstream
    return params, shape, {"chain": post["chain"].values, "draw": post["draw"].values}


def _fitted_flops(result, expansion: float = 64.0) -> tuple[float, float]:
    """Smallest and largest training compute of the fitted runs, in each law's FLOPs model."""
    runs = result.runs
    col = {c: runs[c].to_numpy(dtype="float64") for c in result.law.inputs}
    if result.law.name == "fine_grained":
        flops = fine_grained_flops(col["n_total"], col["tokens"], col["granularity"], expansion=expansion)
    elif result.law.name == "sparsity":
        # the paper's rough active count (1 − S)·N = N / E: the stored table holds the law's inputs only
        flops = 6.0 * col["n_total"] / col["experts"] * col["tokens"]
    else:
        flops = 6.0 * col["n_active"] * col["tokens"]
    return float(flops.min()), float(flops.max())


def _fitted_choice(result, choice: str) -> tuple[float, float]:
    """Range of the choice variable (E or G) in the fitted runs; (1, 1) when the law lacks it."""
    runs = result.runs
    if choice not in runs:
        return 1.0, 1.0
    v = runs[choice].to_numpy(dtype="float64")
    return float(v.min()), float(v.max())


def _discrepancy_at(result, group, at: Mapping[str, np.ndarray], cands, choice: str, n_chain: int, n_draw: int):
    """δ draws at every (budget, candidate, chain, draw) optimum and its signed distance beyond
    the fitted runs per axis. Each draw keeps one slope vector for all budgets and candidates,
    so δ is as correlated between candidates as their distances are alike."""
    disc, law = result.discrepancy, result.law
    shape = at["loss"].shape
    cols = {}
    for name in law.inputs:
        if name in at:
            cols[name] = np.asarray(at[name], dtype="float64").reshape(-1)
        elif name == choice:
            cols[name] = np.broadcast_to(np.asarray(cands, dtype="float64")[None, :, None, None], shape).reshape(-1)
        else:
            raise ValueError(f"the optimum does not give the law's input {name!r}")
    dist = disc.distance(law, pd.DataFrame(cols), group).reshape(*shape, len(disc.axes))
    slopes = disc.slopes((n_chain, n_draw), seed=0)  # (chain, draw, axis)
    delta = np.einsum("bkcdj,cdj->bkcd", np.nan_to_num(dist), slopes)
    return delta, dist


def _candidates(values, what: str) -> np.ndarray:
    """Sorted distinct integer candidates (expert counts or granularities) as floats."""
    cands = np.asarray(sorted(set(int(v) for v in np.atleast_1d(values))), dtype="float64")
    if cands.size == 0 or cands.min() < 1:
        raise InputError(f"{what} must be integers >= 1, got {list(np.atleast_1d(values))}")
    return cands


def _check_ci_prob(ci_prob: float) -> None:
    check_ci_prob(ci_prob)


def _compute_only_budget(law: Law, budget, budget_kwargs) -> Budget:
    """A Budget for the laws whose optimum has no memory or serving model (yet)."""
    b = Budget.from_any(budget, **budget_kwargs)
    if b.memory_bytes is not None or b.serve_tokens:
        raise InputError(f"memory limits and serving tokens are implemented for the joint and chinchilla "
                         f"laws, not {law.name!r}: give training FLOPs only")
    return b


def _assemble(result, b: Budget, cands, arrays: Mapping[str, np.ndarray], *, ci_prob: float,
              group: str | None, n_chain: int, n_draw: int, coords: Mapping, choice: str, choice_dim: str,
              size: str, label: str,
              per_choice: Mapping[str, np.ndarray] | None = None, attrs: Mapping | None = None,
              expansion: float = 64.0) -> OptimalExperts:
    """The labelled optimum from solver output of shape (budget, draws, candidate).

    ``arrays`` holds ``loss`` and the sizes/tokens at each candidate's optimum; each becomes
    ``<name>_at`` (budget, candidate, chain, draw) and, at the per-draw best candidate,
    ``<name>`` (budget, chain, draw). ``per_choice`` booleans are averaged over draws.
    """
    def grid(v):  # (budget, draws, candidate) -> (budget, candidate, chain, draw)
        return np.moveaxis(v, 2, 1).reshape(len(b.flops), len(cands), n_chain, n_draw)

    at = {k: grid(v) for k, v in arrays.items()}
    # the law's extrapolation error: each draw's loss at each candidate's optimum times exp(δ),
    # δ correlated across budgets and candidates through the draw's slopes (bayesmoe.discrepancy)
    law_loss = at["loss"]
    delta, dist = _discrepancy_at(result, group, at, cands, choice, n_chain, n_draw)
    at["loss"] = law_loss * np.exp(delta)
    best = np.argmin(np.where(np.isnan(at["loss"]), np.inf, at["loss"]), axis=1)  # (budget, chain, draw)
    law_best = np.argmin(np.where(np.isnan(law_loss), np.inf, law_loss), axis=1)
    # a draw whose exponents do not fall with N or D (or that no candidate fits in memory) has no
    # optimum: it is kept, its optimum is NaN, and P(no optimum) says how many there are
    valid = np.isfinite(at["loss"]).any(axis=1)
    p_none = 1.0 - valid.mean(axis=(1, 2))
    if p_none.any():
        warnings.warn(f"{p_none.max():.1%} of the posterior draws have no optimum at some budget (exponents "
                      "that do not fall with N or D, or no candidate within the memory limit); their "
                      "optimum is NaN and P(no optimum) reports the share", stacklevel=4)
    at["loss"] = np.where(valid[:, None], at["loss"], np.nan)  # expected losses over draws that have one
    dims3, dims4 = ("budget", "chain", "draw"), ("budget", choice_dim, "chain", "draw")
    data = {choice: (dims3, np.where(valid, cands[best], np.nan))}
    for k, v in at.items():
        data[k] = (dims3, np.where(valid, np.take_along_axis(v, best[:, None], axis=1)[:, 0], np.nan))
        data[f"{k}_at"] = (dims4, v)
    data[f"p_{choice}"] = (("budget", choice_dim),
                           np.stack([((best == i) & valid).mean(axis=(1, 2)) for i in range(len(cands))], axis=1))
    # the same without δ: what the law alone says (parameter uncertainty only)
    data["loss_law_at"] = (dims4, np.where(valid[:, None], law_loss, np.nan))
    data[f"p_{choice}_law"] = (("budget", choice_dim),
                               np.stack([((law_best == i) & valid).mean(axis=(1, 2)) for i in range(len(cands))],
                                        axis=1))
    # how far each draw's optimum lies beyond the fitted runs, per axis (signed decades)
    axis_names = list(result.discrepancy.axes)
    at_best = np.take_along_axis(dist, best[:, None, ..., None], axis=1)[:, 0]  # (budget, chain, draw, axis)
    data["beyond"] = (("budget", "axis"), np.nanmedian(np.where(valid[..., None], at_best, np.nan), axis=(1, 2)))
    data["extrapolation_decades"] = (("budget",), np.nanmedian(
        np.where(valid, np.linalg.norm(at_best, axis=-1), np.nan), axis=(1, 2)))
    data["p_no_optimum"] = (("budget",), p_none)
    for k, v in (per_choice or {}).items():
        data[k] = (("budget", choice_dim), grid(v).mean(axis=(2, 3)))
    fmin, fmax = _fitted_flops(result, expansion)
    data["compute_decades"] = (("budget",), np.maximum(0.0, np.maximum(np.log10(b.flops / fmax),
                                                                      np.log10(fmin / b.flops))))
    fitted = _fitted_choice(result, choice)
    data[f"p_{choice}_beyond_fitted"] = (("budget",), (((cands[best] > fitted[1]) | (cands[best] < fitted[0]))
                                                       & valid).mean(axis=(1, 2)))
    data[f"p_{choice}_at_edge"] = (("budget",), ((best == len(cands) - 1) & valid).mean(axis=(1, 2)))
    ds = xr.Dataset(
        data,
        coords={"budget": b.flops, choice_dim: cands.astype(int), "axis": axis_names, **coords},
        attrs={"law": result.law.name, "choice": choice, "choice_dim": choice_dim, "size": size, "label": label,
               "fitted_flops_min": fmin, "fitted_flops_max": fmax, f"fitted_{choice}_min": fitted[0],
               f"fitted_{choice}_max": fitted[1], "discrepancy": result.discrepancy.source, **(attrs or {})},
    )
    return OptimalExperts(ds, ci_prob, result=result, group=group, budget=b)


def optimal_experts(result, budget, *, experts: Sequence[int] = DEFAULT_EXPERTS, ci_prob: float = DEFAULT_CI_PROB,
                    group: str | None = None, **budget_kwargs) -> OptimalExperts:
    """Per-draw loss-minimising E, N_act, D under a budget; see :class:`OptimalExperts`.

    Parameters
    ----------
    result : FitResult
        A fit of a law with an expert count (``joint``).
    budget : float, array or Budget
        Training FLOPs (one or many), or a :class:`Budget` with memory / serving terms; the
        keywords ``memory_gb``, ``memory_bytes``, ``context_tokens``, ``serve_tokens``,
        ``shape`` build one.
    experts : sequence of int
        Candidate expert counts (E = 1 is dense).
    group : str, optional
        For a hierarchical fit: a known group, or None for a new, unseen setup.
    """
    law = result.law
    if "experts" not in law.inputs:
        raise InputError(f"law {law.name!r} has no expert count; use optimal_config(...) for its N*, D*")
    if law.name == "sparsity":
        return _optimise_sparsity(result, budget, experts, ci_prob, group, **budget_kwargs)
    return _optimise(result, budget, experts, ci_prob, group, budget_kwargs)


def optimal_config(result, budget, *, experts: int | None = None, ci_prob: float = DEFAULT_CI_PROB,
                   group: str | None = None, **budget_kwargs) -> OptimalExperts:
    """Per-draw compute-optimal configuration.

    ``joint``: N_act*, D*, loss* at a fixed E (``experts``, default 1 = dense). ``chinchilla``:
    N*, D*. ``fine_grained``: N_total*, D*, G* with its probabilities, under the FLOPs model of
    Krajewski et al. Eq. 10 (keywords ``granularities``, ``expansion``, ``n_total``: see
    :func:`_optimise_granularity`).
    """
    law = result.law
    if law.name == "fine_grained":
        return _optimise_granularity(result, budget, ci_prob=ci_prob, group=group, **budget_kwargs)
    if law.name == "sparsity":
        return _optimise_sparsity(result, budget, (1 if experts is None else experts,), ci_prob, group,
                                  **budget_kwargs)
    if law.name not in ("joint", "chinchilla"):
        raise NotImplementedError(f"optimal_config is implemented for the joint, chinchilla, fine_grained and "
                                  f"sparsity laws, not {law.name!r}")
    if experts is not None and "experts" not in law.inputs:
        raise InputError(f"law {law.name!r} has no expert count; drop experts=")
    return _optimise(result, budget, (1 if experts is None else experts,), ci_prob, group, budget_kwargs)


def recommend(result, budget, *, experts: Sequence[int] | None = None, ci_prob: float = DEFAULT_CI_PROB,
              group: str | None = None, **budget_kwargs) -> OptimalExperts:
    """The optimum a user asks for: over expert counts where the law has them
    (:func:`optimal_experts`), else the law's own compute-optimal configuration
    (:func:`optimal_config`). Used by the CLI and the report."""
    if "experts" in result.law.inputs:
        return optimal_experts(result, budget, experts=DEFAULT_EXPERTS if experts is None else experts,
                               ci_prob=ci_prob, group=group, **budget_kwargs)
    if experts:
        raise InputError(f"law {result.law.name!r} has no expert count; drop the expert candidates")
    return optimal_config(result, budget, ci_prob=ci_prob, group=group, **budget_kwargs)


def _too_small_message(result, b: Budget, too_small, n_floor: float, floor_flops: float) -> str:
    """Why the budgets cannot buy even the smallest model of the shape, and what to change."""
    shape = b.shape
    smallest = (f"one block of d_model = {shape.d_per_block:g}" if shape.n_blocks is None
                else f"{shape.n_blocks:g} blocks of d_model = 1")
    parts = [f"budget(s) {', '.join(flops_label(f) for f in b.flops[too_small])} FLOPs cannot pay for even the "
             f"smallest model of the shape (ModelShape(vocab={shape.vocab}, ...): {n_floor:.3g} active "
             f"parameters, {smallest}): training it on one token costs {6 * n_floor:.3g} FLOPs"]
    if b.serve_tokens > 0:
        parts.append(f" and serving {b.serve_tokens:g} tokens at 2·N FLOPs each costs "
                     f"{2 * n_floor * b.serve_tokens:.3g} FLOPs (total {floor_flops:.3g})")
    runs = result.runs
    size = "n_active" if "n_active" in runs else None
    fixes = [f"raise --flops (flops=) above {floor_flops:.3g}"]
    if b.serve_tokens > 0:
        n_fit = float(runs[size].min()) if size else n_floor
        fixes.append(f"lower --serve-tokens (serve_tokens=): at most {max(float(b.flops.min()) / (2 * n_fit), 0):.3g} "
                     f"for a model of the smallest fitted size ({n_fit:.3g} parameters) on "
                     f"{flops_label(float(b.flops.min()))} FLOPs")
    if size:
        lo, hi = float(runs[size].min()), float(runs[size].max())
        parts.append(f". The fitted runs have {lo:.3g}-{hi:.3g} active parameters")
        if n_floor > hi:
            parts.append(f": the shape's smallest model is {n_floor / hi:.3g}x the largest of them")
            fixes.append("describe the fitted runs' own architecture: --vocab, --blocks (CLI) or "
                         "shape=ModelShape(vocab=..., n_blocks=...); the shipped reference runs have "
                         "--vocab 256 --blocks 2")
    return "".join(parts) + "; to fix: " + "; or ".join(fixes)


def _optimise(result, budget, experts, ci_prob, group, budget_kwargs) -> OptimalExperts:
    law = result.law
    if law.name not in ("joint", "chinchilla"):
        raise NotImplementedError(f"optima are implemented for the joint and chinchilla laws, not {law.name!r}")
    _check_ci_prob(ci_prob)
    b = Budget.from_any(budget, **budget_kwargs)
    cands = _candidates(experts, "expert counts")
    shape = b.shape
    n_floor = float(shape.n_active_of_d(jnp.float32(shape.d_per_block if shape.n_blocks is None else 1.0)))
    # one token of training (6·N) plus serving (2·N per served token) for the smallest model
    floor_flops = 6.0 * n_floor + 2.0 * n_floor * b.serve_tokens
    too_small = b.flops <= floor_flops
    if too_small.any():
        raise InputError(_too_small_message(result, b, too_small, n_floor, floor_flops))
    if b.memory_bytes is not None:
        with jax.enable_x64(True):
            n_max = np.asarray(shape.max_n_active(b.memory_bytes, cands, b.context_tokens), dtype="float64")
        n_max = np.where(n_max >= n_floor, n_max, 0.0)
        if not (n_max > 0).any():
            raise InputError(
                f"no configuration fits in {b.memory_bytes / GB:g} GB with a KV cache of {b.context_tokens:g} "
                f"tokens: even the smallest model ({n_floor:.3g} active parameters) needs more for every "
                f"E in {cands.astype(int).tolist()}")
    else:
        n_max = np.full(cands.shape, np.inf)

    params, (n_chain, n_draw), coords = _group_draws(result, group)
    numerical = b.serve_tokens > 0
    # float64: in float32 a search along the flat valley of the loss misses ln N* by up to 0.008
    # (ENV.md), and the closed form loses ~1e-6 relative in exp(ln N*)
    with jax.enable_x64(True):
        n, d, loss, bounded, truncated = _solver(law, numerical)(
            {k: jnp.asarray(v, jnp.float64) for k, v in params.items()}, jnp.asarray(b.flops, jnp.float64),
            jnp.float64(b.serve_tokens), jnp.asarray(cands, jnp.float64), jnp.asarray(n_max, jnp.float64))
        n, d, loss = (np.asarray(v, dtype="float64") for v in (n, d, loss))
        bounded, truncated = np.asarray(bounded), np.asarray(truncated)
    return _assemble(result, b, cands, {"loss": loss, "n_active": n, "tokens": d}, ci_prob=ci_prob, group=group,
                     n_chain=n_chain, n_draw=n_draw, coords=coords, choice="experts", choice_dim="expert_count",
                     size="n_active", label="E",
                     per_choice={"memory_truncated": truncated, "no_interior_optimum": ~bounded},
                     attrs={"memory_bytes": -1.0 if b.memory_bytes is None else b.memory_bytes,
                            "context_tokens": b.context_tokens, "serve_tokens": b.serve_tokens})


def compare(result, config_a: Mapping, config_b: Mapping, *, ci_prob: float = DEFAULT_CI_PROB, group: str | None = None) -> dict:
    """P(config A reaches a lower expected loss than B) and the interval of loss(A) − loss(B).

    Configs are mappings of the law's inputs, e.g. ``{"n_active": 1e9, "tokens": 2e10, "experts": 8}``.
    """
    table = pd.DataFrame([dict(config_a), dict(config_b)])
    pred = result.predict(table, group=group, kind="mean")
    law_diff = (pred.isel(run=0) - pred.isel(run=1)).values.ravel()
    # the law's extrapolation error with one slope vector per draw for both configurations: at the
    # same scale A and B get the same δ, and the comparison stays as decisive as the law alone
    from bayesmoe.data import validate_runs

    inputs = validate_runs(table.assign(loss=1.0), required=result.law.inputs, unit_checks=False)
    delta = result.discrepancy.delta(result.law, inputs, pred.shape[:2], group=group, seed=0)
    loss = pred.values * np.exp(delta)
    diff = (loss[..., 0] - loss[..., 1]).ravel()
    q = (1 - ci_prob) / 2
    return {"p_a_better": float(np.mean(diff < 0)), "diff_median": float(np.median(diff)),
            "diff_lo": float(np.quantile(diff, q)), "diff_hi": float(np.quantile(diff, 1 - q)),
            "p_a_better_law": float(np.mean(law_diff < 0)),
            "law_diff_lo": float(np.quantile(law_diff, q)), "law_diff_hi": float(np.quantile(law_diff, 1 - q)),
            "ci_prob": ci_prob}


def flop_savings(result, budget, *, experts: int, ci_prob: float = DEFAULT_CI_PROB, group: str | None = None) -> pd.DataFrame:
    """Compute saved by the compute-optimal E-expert model over the compute-optimal dense model
    trained with ``budget`` FLOPs, at equal loss: ``1 − F_MoE / F_dense`` per draw
    (Ludziejewski et al. 2025 Fig. 2b: "an MoE matching a compute-optimal dense model trained with
    1e20 FLOPs can be trained with just 6e19"), summarised per budget."""
    law = result.law
    if "experts" not in law.inputs or law.name != "joint":
        raise InputError(f"flop savings need a law with an expert count and a closed-form optimum (joint), "
                         f"not {law.name!r}")
    flops = np.atleast_1d(np.asarray(budget, dtype="float64"))
    Budget(flops)  # validates
    params, _, _ = _group_draws(result, group)

    def optimal_loss(log_f, e):  # (budget, draws) -> optimal loss at F = exp(log_f) with E = e
        pb = {k: v[None, :, None] for k, v in params.items()}
        f = jnp.exp(log_f)[..., None]
        e = jnp.full((1, 1, 1), e)
        n = _closed_form_n(_isoflop_coefficients(law, pb, e), f)
        return _loss(law, pb, n, _tokens(n, f, 0.0), e)[..., 0]

    def step(_, s):
        a, b_ = s
        mid = 0.5 * (a + b_)
        above = optimal_loss(mid, float(experts)) > target  # MoE still worse: needs more compute
        return jnp.where(above, mid, a), jnp.where(above, b_, mid)

    with jax.enable_x64(True):
        params = {k: jnp.asarray(v, jnp.float64) for k, v in params.items()}
        log_dense = jnp.broadcast_to(jnp.log(jnp.asarray(flops))[:, None], (len(flops), len(params["a"])))
        target = optimal_loss(log_dense, 1.0)
        # the law's extrapolation error at the dense and the MoE optimum (both taken at the dense
        # budget; one slope vector per draw): the MoE must match the dense model's true loss
        target = target * np.exp(_optimum_delta(result, group, params, flops, 1.0)
                                 - _optimum_delta(result, group, params, flops, float(experts)))
        lo, hi = log_dense - jnp.log(1e4), log_dense + jnp.log(1e4)
        a, b_ = jax.lax.fori_loop(0, 80, step, (lo, hi))
        f_moe = np.exp(np.asarray(0.5 * (a + b_), dtype="float64"))
    savings = 1.0 - f_moe / flops[:, None]
    q = (1 - ci_prob) / 2
    return pd.DataFrame({
        "flops_dense": flops, "experts": experts,
        "savings_median": np.median(savings, axis=1),
        f"savings {ci_prob:.0%} lo": np.quantile(savings, q, axis=1),
        f"savings {ci_prob:.0%} hi": np.quantile(savings, 1 - q, axis=1),
        "flops_moe_median": np.median(f_moe, axis=1),
    }).set_index("flops_dense")


def _optimum_delta(result, group, params, flops, experts: float) -> np.ndarray:
    """δ (budget, draws) at the compute-optimal (N, D) of ``experts`` at each budget."""
    law = result.law
    pb = {k: v[None, :] for k, v in params.items()}
    e = jnp.full((1, 1), experts)
    f = jnp.asarray(flops)[:, None]
    n = np.asarray(_closed_form_n(_isoflop_coefficients(law, pb, e), f), dtype="float64")
    d = np.asarray(_tokens(n, f, 0.0), dtype="float64")
    disc = result.discrepancy
    table = pd.DataFrame({"n_active": n.ravel(), "tokens": d.ravel(), "experts": experts})
    dist = np.nan_to_num(disc.distance(law, table, group)).reshape(*n.shape, -1)
    slopes = disc.slopes((result.tree["posterior"].sizes["chain"], result.tree["posterior"].sizes["draw"]),
                         seed=0).reshape(-1, len(disc.axes))  # (draws, axis)
    return np.einsum("bdj,dj->bd", dist, slopes)


# ---------------------------------------------------------------------------------------------
# fine-grained law: granularity under Krajewski et al.'s FLOPs model
# ---------------------------------------------------------------------------------------------

DEFAULT_GRANULARITIES = (1, 2, 4, 8, 16, 32, 64)


def fine_grained_flops(n_total, tokens, granularity, *, expansion: float = 64.0, c_f: float = 6.0,
                       c_r: float = 14.0):
    """Training FLOPs of Krajewski et al. 2024 Eq. 10: ``(12·d²·c_f + d·E·G·c_r)·D·n_blocks``.

    The shape follows the paper's §6.1: N_total (non-embedding, router excluded) =
    d²·(8E + 4)·n_blocks with d = 64·n_blocks, so d = (64·N/(8E + 4))^(1/3).
    """
    d = (64.0 * n_total / (8.0 * expansion + 4.0)) ** (1.0 / 3.0)
    return (12.0 * d**2 * c_f + d * expansion * granularity * c_r) * tokens * (d / 64.0)


def _fg_tokens(n, flops, g, expansion):
    return flops / fine_grained_flops(n, 1.0, g, expansion=expansion)


def _solve_granularity(law: Law, p, flops, g, n_fixed, expansion):
    pb = {k: v[None, :, None] for k, v in p.items()}
    f, gg = flops[:, None, None], g[None, None, :]
    shape = jnp.broadcast_shapes(f.shape, gg.shape, pb["a"].shape)

    def loss(log_n):
        n = jnp.exp(log_n)
        return jnp.exp(law.log_loss(pb, {"n_total": n, "tokens": _fg_tokens(n, f, gg, expansion), "granularity": gg}))

    if n_fixed is not None:
        log_n = jnp.broadcast_to(jnp.log(n_fixed)[:, None, None], shape)
    else:  # golden section over ln N_total along the budget line (unimodal)
        log_n = _golden_section(loss, jnp.full(shape, jnp.log(1e4)), jnp.broadcast_to(jnp.log(f / 6.0), shape))
    n = jnp.exp(log_n)
    return n, _fg_tokens(n, f, gg, expansion), loss(log_n)


def _optimise_granularity(result, budget, *, ci_prob: float = DEFAULT_CI_PROB, group: str | None = None,
                          granularities: Sequence[int] = DEFAULT_GRANULARITIES, expansion: float = 64.0,
                          n_total=None, **budget_kwargs) -> OptimalExperts:
    """Per-draw compute-optimal (N_total, D, G) of the fine-grained law at F = Eq. 10 FLOPs.

    ``n_total`` (one per budget) fixes the model size and optimises G and D only, as in the
    paper's Table 2 ("which G for this model and budget"). ``expansion`` is E (64 in the paper).
    """
    law = result.law
    _check_ci_prob(ci_prob)
    b = _compute_only_budget(law, budget, budget_kwargs)
    cands = _candidates(granularities, "granularities")
    fixed = None
    if n_total is not None:
        fixed = np.broadcast_to(np.asarray(n_total, dtype="float64"), b.flops.shape)
        if not (np.isfinite(fixed) & (fixed > 0)).all():
            raise InputError("n_total must be finite and > 0, one per budget")
    params, (n_chain, n_draw), coords = _group_draws(result, group)
    with jax.enable_x64(True):
        n, d, loss = _granularity_solver(law, fixed is not None)(
            {k: jnp.asarray(v, jnp.float64) for k, v in params.items()}, jnp.asarray(b.flops, jnp.float64),
            jnp.asarray(cands, jnp.float64), None if fixed is None else jnp.asarray(fixed, jnp.float64),
            jnp.float64(expansion))
        n, d, loss = (np.asarray(v, dtype="float64") for v in (n, d, loss))
    return _assemble(result, b, cands, {"loss": np.where(d > 0, loss, np.inf), "n_total": n, "tokens": d},
                     ci_prob=ci_prob, group=group, n_chain=n_chain, n_draw=n_draw, coords=coords,
                     choice="granularity", choice_dim="granularity_level", size="n_total", label="G",
                     attrs={"expansion": expansion}, expansion=expansion)


_GRANULARITY_SOLVERS: dict = {}


def _granularity_solver(law: Law, fixed: bool):
    key = (law.name, id(law), fixed)
    if key not in _GRANULARITY_SOLVERS:
        if fixed:
            fn = jax.jit(lambda p, f, g, n, e: _solve_granularity(law, p, f, g, n, e))
        else:
            fn = jax.jit(lambda p, f, g, n, e: _solve_granularity(law, p, f, g, None, e))
        _GRANULARITY_SOLVERS[key] = fn
    return _GRANULARITY_SOLVERS[key]


# ---------------------------------------------------------------------------------------------
# sparsity law (Abnar et al. 2025): N is the total count, compute 6·N_active·D
# ---------------------------------------------------------------------------------------------


def _solve_sparsity(law: Law, shape: ModelShape, p, flops, experts):
    """Golden section over ln d_model per (budget, draw, E): N_total and N_active are explicit
    in d (:class:`ModelShape`), D = F / (6·N_active)."""
    pb = {k: v[None, :, None] for k, v in p.items()}
    f, e = flops[:, None, None], experts[None, None, :]
    out_shape = jnp.broadcast_shapes(f.shape, e.shape, pb["a"].shape)

    def parts(log_d):
        d = jnp.exp(log_d)
        n_tot, n_act = shape.n_total_of_d(d, e), shape.n_active_of_d(d)
        tokens = f / (6.0 * n_act)
        return n_tot, tokens, jnp.exp(law.log_loss(pb, {"n_total": n_tot, "tokens": tokens, "experts": e}))

    lo = jnp.full(out_shape, jnp.log(8.0))
    hi = jnp.full(out_shape, jnp.log(1e6))  # d_model up to 1e6: far beyond any trainable model
    log_d = _golden_section(lambda x: parts(x)[2], lo, hi)
    n_tot, tokens, loss = parts(log_d)
    return n_tot, tokens, loss, shape.n_active_of_d(jnp.exp(log_d)) * jnp.ones_like(loss)


_SPARSITY_SOLVERS: dict = {}


def _optimise_sparsity(result, budget, experts, ci_prob, group, **budget_kwargs) -> OptimalExperts:
    """Per-draw compute-optimal (N_total, D, E) of the sparsity law, with S = 1 − 1/E."""
    law = result.law
    _check_ci_prob(ci_prob)
    b = _compute_only_budget(law, budget, budget_kwargs)
    shape = b.shape
    cands = _candidates(experts, "expert counts")
    key = (id(law), shape)
    if key not in _SPARSITY_SOLVERS:
        _SPARSITY_SOLVERS[key] = jax.jit(partial(_solve_sparsity, law, shape))
    params, (n_chain, n_draw), coords = _group_draws(result, group)
    with jax.enable_x64(True):
        n, d, loss, n_act = _SPARSITY_SOLVERS[key](
            {k: jnp.asarray(v, jnp.float64) for k, v in params.items()}, jnp.asarray(b.flops, jnp.float64),
            jnp.asarray(cands, jnp.float64))
        n, d, loss, n_act = (np.asarray(v, dtype="float64") for v in (n, d, loss, n_act))

    return _assemble(result, b, cands, {"loss": loss, "n_total": n, "n_active": n_act, "tokens": d},
                     ci_prob=ci_prob, group=group, n_chain=n_chain, n_draw=n_draw, coords=coords,
                     choice="experts", choice_dim="expert_count", size="n_total", label="E")
