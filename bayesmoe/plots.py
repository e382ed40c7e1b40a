"""Figures of a fitted result: matplotlib only, reading the result, never running NUTS.

Every function is ``plot_*(result, ..., ax=None) -> Axes``: pass an Axes to draw into a figure of
your own, or leave it out and get a new figure. Colours encode the expert count (or, for a law
without experts, granularity) the same way in every figure, so a report reads as one piece.

The prior of a parameter (:func:`plot_parameter`) is drawn by running the fit's own NumPyro model
forward on its prior (``numpyro.infer.Predictive``), so a centred or derived coordinate shows
the prior the paper-form parameter actually had, not the prior of the coordinate NUTS sampled.

ArviZ's plotting package (``arviz-plots`` 0.8.0) fails to import with matplotlib 3.11 on
Python 3.11 (ENV.md), so the diagnostics figures are drawn here from ``sample_stats`` and
rank-normalised draws (Vehtari et al. 2021, "Rank-normalization, folding, and localization").
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

# No matplotlib.use() here: importing bayesmoe.plots keeps the user's backend (a notebook's
# inline one, say). Functions given no Axes open a pyplot figure on that backend; the report
# draws on pyplot-free Figures, and the CLI picks Agg for itself.
import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker as ticker
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from scipy import stats

from bayesmoe.discrepancy import axis_symbols
from bayesmoe.intervals import DEFAULT_CI_PROB, check_ci_prob
from bayesmoe.laws import PUBLISHED
from bayesmoe.units import flops_label

__all__ = [
    "plot_backtest",
    "plot_predictive",
    "plot_loss_curves",
    "plot_parameter",
    "plot_rank",
    "plot_sampler",
    "plot_optimal_choice",
    "plot_isoflop",
    "plot_memory_optimum",
    "plot_sbc_ranks",
    "plot_sbc_coverage",
    "plot_holdout",
    "prior_draws",
    "colour_variable",
    "colours_for",
]

_SIZE_INPUTS = ("n_active", "n_total")
_LABELS = {
    "n_active": "active parameters N",
    "n_total": "total parameters N",
    "tokens": "training tokens D",
    "experts": "E",
    "granularity": "G",
    "loss": "loss (nats/token)",
}
_GREEK = {"alpha": "α", "beta": "β", "gamma": "γ", "zeta": "ζ", "delta": "δ", "omega": "ω",
          "lambda": "λ", "e_start": "E_start", "e_max": "E_max"}


def _ax(ax: Axes | None, size=(5.5, 4.0)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=size, layout="constrained")
    return ax


def _interval(ci_prob: float) -> tuple[float, float]:
    ci_prob = check_ci_prob(ci_prob)
    tail = (1 - ci_prob) / 2
    return tail, 1 - tail


def colour_variable(result) -> str | None:
    """The input that colours the figures: ``experts``, else ``granularity``, else none."""
    for name in ("experts", "granularity"):
        if name in result.law.inputs:
            return name
    return None


def colours_for(values: Sequence[float]) -> dict[float, tuple]:
    """One colour per distinct value, evenly spaced on a log scale (E = 1, 4, 16, 64 ...)."""
    vals = sorted(set(float(v) for v in values))
    cmap = plt.get_cmap("viridis")
    pos = np.linspace(0.0, 0.85, len(vals)) if len(vals) > 1 else [0.35]
    return {v: cmap(p) for v, p in zip(vals, pos)}


def _group_arg(result, group):
    if group is not None or not result.hierarchical:
        return group
    return None  # a new, unseen setup: the population with group spreads


def plot_predictive(result, *, ci_prob: float = DEFAULT_CI_PROB, group: str | None = None, seed: int = 0,
                    ax: Axes | None = None) -> Axes:
    """Observed loss of every fitted run against its posterior-predictive loss.

    Each run's ``ci_prob`` interval is that of a new run (``predict(kind="new_run")``: the law
    plus the fitted Student-t noise), its dot the posterior median of the law. Points on the
    diagonal are predicted exactly; colour is the expert count. In a hierarchical fit each run
    is predicted under its own group.
    """
    ax = _ax(ax)
    runs = result.runs
    lo_q, hi_q = _interval(ci_prob)
    med = np.empty(len(runs))
    lo = np.empty(len(runs))
    hi = np.empty(len(runs))
    groups = [group] if group is not None else list(dict.fromkeys(runs["group"].astype(str)))
    for g in groups:
        mask = (runs["group"].astype(str) == g).to_numpy()
        inputs = runs.loc[mask, list(result.law.inputs)]
        mean = result.predict(inputs, group=g, kind="mean", seed=seed)
        new = result.predict(inputs, group=g, kind="new_run", seed=seed)
        med[mask] = mean.median(dim=("chain", "draw")).values
        lo[mask] = new.quantile(lo_q, dim=("chain", "draw")).values
        hi[mask] = new.quantile(hi_q, dim=("chain", "draw")).values
    obs = runs["loss"].to_numpy(dtype=float)
    cvar = colour_variable(result)
    keys = runs[cvar].to_numpy(dtype=float) if cvar else np.zeros(len(runs))
    colours = colours_for(keys)
    for k, c in colours.items():
        m = keys == k
        ax.errorbar(obs[m], med[m], yerr=[med[m] - lo[m], hi[m] - med[m]], fmt="o", ms=3.5,
                    color=c, ecolor=(*c[:3], 0.45), elinewidth=1.2, capsize=0,
                    label=f"{_LABELS.get(cvar, cvar)} = {k:g}" if cvar else "runs")
    span = [min(obs.min(), lo.min()), max(obs.max(), hi.max())]
    pad = 0.03 * (span[1] - span[0])
    span = [span[0] - pad, span[1] + pad]
    ax.plot(span, span, color="0.35", lw=1, ls="--", zorder=0, label="predicted = observed")
    ax.set_xlim(span)
    ax.set_ylim(span)
    inside = float(np.mean((obs >= lo) & (obs <= hi)))
    ax.set_xlabel("observed loss (nats/token)")
    ax.set_ylabel("predicted loss (nats/token)")
    ax.set_title(f"Posterior predictive per run: {inside:.0%} inside the {ci_prob:.0%} interval",
                 fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    ax.grid(alpha=0.25)
    return ax


def _slice_default(runs: pd.DataFrame, size: str, x: str) -> float:
    """The most common value of the fixed quantity (tokens per parameter, or N) in the table."""
    if x == "tokens":
        values = runs[size].to_numpy(dtype=float)
    else:
        values = (runs["tokens"] / runs[size]).to_numpy(dtype=float)
    # round in log space so a grid design (D/N = 5, 12, 30 ...) shows its own levels
    keys = np.round(np.log(values), 1)
    uniq, counts = np.unique(keys, return_counts=True)
    if counts.max() == 1:  # no repeated level (a log-uniform design): the median
        return float(np.median(values))
    return float(np.exp(np.median(np.log(values[keys == uniq[np.argmax(counts)]]))))


def plot_loss_curves(result, x: str = "n_active", *, at: float | None = None, ci_prob: float = DEFAULT_CI_PROB,
                     group: str | None = None, num_points: int = 60, tolerance: float = 1.25,
                     ax: Axes | None = None) -> Axes:
    """Loss against model size or tokens, one posterior curve and band per expert count.

    Parameters
    ----------
    x : str
        ``"n_active"`` / ``"n_total"`` (whichever the law reads) for loss vs N at a fixed number of
        tokens per parameter, or ``"tokens"`` for loss vs D at a fixed N.
    at : float, optional
        The fixed value: tokens per parameter (D/N) for ``x`` = N, or N for ``x = "tokens"``.
        Default: the most common value in the fitted table.
    ci_prob : float
        Probability of the band around the posterior median of the law (``kind="mean"``).
    tolerance : float
        Runs within this factor of the slice are drawn solid; all others faded, for context.
    """
    law = result.law
    size = next((s for s in _SIZE_INPUTS if s in law.inputs), None)
    if x in _SIZE_INPUTS and x != size:
        raise ValueError(f"law {law.name!r} reads {size!r}, not {x!r}; pass x={size!r} or x='tokens'")
    if x not in (size, "tokens") or size is None or "tokens" not in law.inputs:
        raise ValueError(f"x must be one of {[size, 'tokens']} for law {law.name!r}, got {x!r}")
    if tolerance < 1:
        raise ValueError(f"tolerance is a factor >= 1, got {tolerance}")
    ax = _ax(ax)
    runs = result.runs
    at = _slice_default(runs, size, x) if at is None else float(at)
    if not at > 0:
        raise ValueError(f"at must be > 0, got {at}")
    cvar = colour_variable(result)
    keys = runs[cvar].to_numpy(dtype=float) if cvar else np.zeros(len(runs))
    colours = colours_for(keys)
    lo_q, hi_q = _interval(ci_prob)
    xs_data = runs[x].to_numpy(dtype=float)
    grid = np.geomspace(xs_data.min() / 1.3, xs_data.max() * 1.3, num_points)
    fixed = runs[size] if x == "tokens" else runs["tokens"] / runs[size]
    in_slice = np.abs(np.log(fixed.to_numpy(dtype=float) / at)) <= np.log(tolerance)
    other = {c: float(np.exp(np.log(runs[c].astype(float)).mean()))
             for c in law.inputs if c not in (size, "tokens", cvar)}
    for k, c in colours.items():
        table = pd.DataFrame({size: grid * 0 + at if x == "tokens" else grid,
                              "tokens": grid if x == "tokens" else grid * at, **other})
        if cvar:
            table[cvar] = k
        pred = result.predict(table, group=_group_arg(result, group), kind="mean")
        q = pred.quantile([lo_q, 0.5, hi_q], dim=("chain", "draw")).values
        ax.fill_between(grid, q[0], q[2], color=c, alpha=0.22, lw=0)
        ax.plot(grid, q[1], color=c, lw=1.6,
                label=f"{_LABELS.get(cvar, cvar)} = {k:g}" if cvar else "posterior median")
        m = keys == k
        ax.scatter(xs_data[m & in_slice], runs["loss"].to_numpy()[m & in_slice], s=16, color=c,
                   edgecolor="k", linewidth=0.4, zorder=3)
        ax.scatter(xs_data[m & ~in_slice], runs["loss"].to_numpy()[m & ~in_slice], s=8, color=c,
                   alpha=0.18, zorder=2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    # losses span less than a decade: plain tick labels read better than 2×10⁰
    ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%.1f"))
    ax.yaxis.set_minor_formatter(ticker.FormatStrFormatter("%.1f"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_xlabel(_LABELS[x])
    ax.set_ylabel(_LABELS["loss"])
    what = f"D/N = {at:.3g}" if x != "tokens" else f"N = {at:.3g}"
    ax.set_title(f"Loss vs {'N' if x != 'tokens' else 'D'} at {what} (median, {ci_prob:.0%} band)",
                 fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    handles.append(plt.Line2D([], [], ls="", marker="o", mfc="0.5", mec="k", mew=0.4, ms=4))
    labels.append(f"runs within ×{tolerance:g} of the slice ({int(in_slice.sum())})")
    handles.append(plt.Line2D([], [], ls="", marker="o", color="0.5", alpha=0.25, ms=3))
    labels.append("other runs")
    ax.legend(handles, labels, fontsize=7.5, frameon=False)
    ax.grid(alpha=0.25, which="both")
    return ax


def prior_draws(result, names: Sequence[str], *, num_samples: int = 4000, seed: int = 0) -> dict[str, np.ndarray]:
    """Draws of paper-form parameters from the fit's own model under its prior.

    The model is run forward (``numpyro.infer.Predictive``) with its improper sites set to their
    initial values, so every centring and derivation the sampler used applies; for a
    hierarchical fit the population value ``<name>_pop`` is returned where the model has one.
    """
    import dataclasses

    import jax
    from numpyro.infer import Predictive

    from bayesmoe.models import build_model

    # exponents sampled as slopes (Law.own_exponents) are improper sites with their prior as a
    # factor, which a forward run cannot draw; in the exponent coordinates they are proper sites
    # with the same prior (tests/test_models.py)
    law = dataclasses.replace(result.law, own_exponents={}) if result.law.own_exponents else result.law
    model = build_model(law, result.priors, result.design, pooled=None if not result.hierarchical
                        else tuple(p for p in law.params if _site_pooled(result, p)))
    wanted = [f"{n}_pop" for n in names] + list(names) if result.hierarchical else list(names)
    pred = Predictive(model, num_samples=num_samples, params=dict(model.init_values),
                      return_sites=wanted)
    out = pred(jax.random.PRNGKey(seed), log_loss=None)
    draws = {}
    for n in names:
        v = out.get(f"{n}_pop", out.get(n)) if result.hierarchical else out.get(n)
        if v is None:
            raise KeyError(f"the model has no site {n!r}; parameters: {result.law.params}")
        v = np.asarray(v, dtype=float)
        draws[n] = v.reshape(num_samples, -1)[:, 0] if v.ndim > 1 else v
    return draws


def _site_pooled(result, param: str) -> bool:
    from bayesmoe.priors import site_of

    return site_of(result.law, param) in result.pooled


def plot_parameter(result, name: str, *, prior: np.ndarray | None = None, ci_prob: float = DEFAULT_CI_PROB,
                   ax: Axes | None = None) -> Axes:
    """Posterior density of one parameter, its prior beside it and the published values.

    ``prior``: draws of the paper-form prior (default :func:`prior_draws`; pass them in to draw
    many panels from one forward run). A fixed prior shows as a vertical line. For a hierarchical
    fit the population value is shown.
    """
    if name not in result.law.params:
        raise ValueError(f"{name!r} is not a parameter of law {result.law.name!r}: {result.law.params}")
    ax = _ax(ax, size=(3.6, 2.6))
    post_ds = result.tree["posterior"]
    var = f"{name}_pop" if result.hierarchical and f"{name}_pop" in post_ds.data_vars else name
    post = np.asarray(post_ds[var].values, dtype=float).ravel()
    if prior is None:
        prior = prior_draws(result, [name])[name]
    prior = np.asarray(prior, dtype=float).ravel()
    # a log axis only where every draw (posterior and prior) is positive: a badly mixed posterior
    # can span decades while its prior still puts mass below zero
    log_x = (name in ("e_max",) and prior.min() > 0) or (
        post.min() > 0 and prior.min() > 0 and post.max() / max(post.min(), 1e-300) > 50)
    tf = np.log if log_x else (lambda v: v)
    lo_q, hi_q = _interval(ci_prob)
    p_lo, p_hi = np.quantile(post, [lo_q, hi_q])
    pr_lo, pr_hi = np.quantile(prior, [0.01, 0.99])
    published = PUBLISHED.get(result.law.name, {})
    pub = {src: vals[name] for src, vals in published.items() if name in vals}
    xs = [p_lo, p_hi, pr_lo, pr_hi, *pub.values()]
    lo, hi = tf(min(xs)), tf(max(xs))
    pad = 0.08 * (hi - lo or abs(hi) or 1.0)
    grid_t = np.linspace(lo - pad, hi + pad, 300)

    def density(draws):
        t = tf(draws)
        if np.ptp(t) <= 0:
            return None
        return stats.gaussian_kde(t)(grid_t)

    grid = np.exp(grid_t) if log_x else grid_t
    d_prior = density(prior)
    if d_prior is None:
        ax.axvline(prior[0], color="0.45", ls=":", lw=1.5, label=f"prior: fixed {prior[0]:.4g}")
    else:
        ax.fill_between(grid, d_prior, color="0.6", alpha=0.35, lw=0, label="prior")
    d_post = density(post)
    if d_post is None:
        ax.axvline(post[0], color="C0", lw=2, label=f"posterior: {post[0]:.4g}")
    else:
        ax.fill_between(grid, d_post, color="C0", alpha=0.35, lw=0)
        ax.plot(grid, d_post, color="C0", lw=1.4, label="posterior")
        ax.axvspan(p_lo, p_hi, ymax=0.04, color="C0", alpha=0.9, lw=0)
    for i, (src, v) in enumerate(pub.items()):
        ax.axvline(v, color=f"C{3 + i}", ls="--", lw=1.3, label=f"{src}: {v:.4g}")
    if log_x:
        ax.set_xscale("log")
    else:
        ax.xaxis.set_major_locator(ticker.MaxNLocator(5))
    ax.set_yticks([])
    ax.set_xlabel(_GREEK.get(name, name))
    med = float(np.median(post))
    ax.set_title(f"{_GREEK.get(name, name)} = {med:.4g} [{p_lo:.3g}, {p_hi:.3g}]", fontsize=9)
    ax.legend(fontsize=6.5, frameon=False, loc="best")
    return ax


def plot_rank(result, name: str, *, bins: int = 20, ax: Axes | None = None) -> Axes:
    """Rank plot of one parameter: a histogram of its pooled ranks per chain.

    Well-mixed chains give flat histograms near the dashed uniform level; a chain stuck in one
    region shows as a slope or a hump.
    """
    post_ds = result.tree["posterior"]
    if name not in post_ds.data_vars:
        raise ValueError(f"no posterior variable {name!r}; available: {sorted(post_ds.data_vars)}")
    ax = _ax(ax, size=(3.6, 2.4))
    v = np.asarray(post_ds[name].values, dtype=float)
    v = v.reshape(v.shape[0], v.shape[1], -1)[..., 0]  # first group of a grouped site
    n_chains, n_draws = v.shape
    ranks = stats.rankdata(v.ravel()).reshape(v.shape)
    edges = np.linspace(0, v.size, bins + 1)
    for c in range(n_chains):
        counts, _ = np.histogram(ranks[c], bins=edges)
        ax.stairs(counts, edges, baseline=None, color=f"C{c}", lw=1.2, label=f"chain {c}")
    expected = n_draws / bins
    ax.axhline(expected, color="k", ls="--", lw=0.8)
    ax.set_ylim(0, max(2 * expected, ax.get_ylim()[1]))
    ax.set_xlim(0, v.size)
    ax.set_yticks([])
    ax.set_xlabel(f"rank of {_GREEK.get(name, name)} (all chains)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(_GREEK.get(name, name), fontsize=9)
    return ax


def plot_sampler(result, ax: Axes | None = None) -> Axes:
    """Leapfrog steps per iteration, per chain, with each chain's divergences in its label.

    NUTS doubles its trajectory, so steps come in powers of two: bars show how often each chain
    used each length. A chain that needs much longer trajectories than the others, or
    divergences at all, point at a badly shaped posterior. Without ``n_steps`` (e.g. a synthetic
    result) the bars show divergences per chain instead.
    """
    ax = _ax(ax, size=(6.0, 2.6))
    ss = result.tree["sample_stats"]
    div = np.asarray(ss["diverging"].values, dtype=bool)
    n_chains, n_draws = div.shape
    width = 0.8 / n_chains
    if "n_steps" in ss.data_vars:
        steps = np.asarray(ss["n_steps"].values, dtype=float)
        depth = np.ceil(np.log2(np.maximum(steps, 1) + 1)).astype(int)  # 2^k - 1 steps -> k
        levels = np.arange(depth.min(), depth.max() + 1)
        for c in range(n_chains):
            share = [(depth[c] == k).mean() for k in levels]
            ax.bar(np.arange(len(levels)) + (c - (n_chains - 1) / 2) * width, share, width,
                   color=f"C{c}", label=f"chain {c}: {int(div[c].sum())} divergent")
        ax.set_xticks(np.arange(len(levels)), [f"≤{2 ** k - 1}" for k in levels])
        ax.set_xlabel("leapfrog steps per iteration")
        ax.set_ylabel("share of draws")
        title = f"mean {np.nanmean(steps):.0f} steps per iteration"
    else:
        ax.bar(np.arange(n_chains), div.sum(axis=1), color=[f"C{c}" for c in range(n_chains)])
        ax.set_xticks(np.arange(n_chains), [f"chain {c}" for c in range(n_chains)])
        ax.set_ylabel("divergent draws")
        ax.set_ylim(0, max(1, div.sum(axis=1).max()) * 1.2)
        title = "no per-iteration step counts stored"
    ax.set_title(f"Sampler: {int(div.sum())} divergences in {n_chains} × {n_draws} draws; {title}",
                 fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, frameon=False)
    ax.grid(alpha=0.25, axis="y")
    return ax


def plot_optimal_choice(optimum, *, ax: Axes | None = None) -> Axes:
    """P(E* = e) (or G*) per budget as a heat strip, with the expected-loss decision marked.

    ``optimum`` is what ``result.optimal_experts(...)`` / ``optimal_config(...)`` returned.
    Budgets beyond the fitted runs' compute are hatched: there the answer leans on the law's
    form more than on data.
    """
    ds = optimum.dataset
    choice, dim, _, label = optimum.names
    probs = ds[f"p_{choice}"].transpose(dim, "budget").values
    budgets = ds["budget"].values
    ax = _ax(ax, size=(6.5, 3.6))
    x_edges = np.arange(len(budgets) + 1) - 0.5
    y_edges = np.arange(probs.shape[0] + 1) - 0.5
    mesh = ax.pcolormesh(x_edges, y_edges, probs, cmap="Blues", vmin=0, vmax=1)
    decision = optimum.decision.values
    rows = {int(v): i for i, v in enumerate(ds[dim].values)}
    ax.plot(np.arange(len(budgets)), [rows[int(v)] for v in decision], "o-", color="#c0392b", lw=1.5,
            label="expected-loss decision")
    far = ds["extrapolation_decades"].values > 0
    for i in np.flatnonzero(far):
        ax.add_patch(plt.Rectangle((i - 0.5, -0.5), 1, probs.shape[0], fill=False, hatch="//",
                                   edgecolor="0.8", lw=0))
    ax.set_xticks(np.arange(len(budgets)), [flops_label(b) for b in budgets], rotation=45, ha="right")
    ax.set_yticks(np.arange(probs.shape[0]), [str(int(v)) for v in ds[dim].values])
    ax.set_xlabel("training budget (FLOPs); hatched: beyond the fitted compute")
    ax.set_ylabel(f"{label}*")
    ax.set_title(f"P({label}* = {label.lower()}) per budget")
    ax.figure.colorbar(mesh, ax=ax, label="posterior probability", fraction=0.05)
    ax.legend(loc="upper left", fontsize=8, frameon=True)
    return ax


def plot_isoflop(optimum, *, budgets: Sequence[float] | None = None, ci_prob: float = DEFAULT_CI_PROB,
                 max_draws: int = 400, ax: Axes | None = None) -> Axes:
    """Loss along each budget's IsoFLOP line at its decision E (or G), with credible bands.

    The curve moves N along the budget line (D from the constraint), at the fixed choice; each
    budget's optimum is marked with its N* interval. ``budgets`` picks some of the optimum's
    budgets (default: up to four, spread out); at most ``max_draws`` draws are used per curve.
    """
    ds = optimum.dataset
    choice, dim, size, label = optimum.names
    all_b = ds["budget"].values
    if budgets is None:
        idx = np.unique(np.linspace(0, len(all_b) - 1, min(4, len(all_b))).round().astype(int))
    else:
        idx = [int(np.argmin(np.abs(np.log(all_b) - np.log(b)))) for b in budgets]
    lo_q, hi_q = _interval(ci_prob)
    ax = _ax(ax, size=(6.0, 4.0))
    colours = plt.get_cmap("plasma")(np.linspace(0.1, 0.8, len(idx)))
    for colour, i in zip(colours, idx):
        pick = optimum.decision.values[i]
        at = {k: ds[k].isel(budget=i).sel({dim: pick}) for k in ("loss_at", f"{size}_at")}
        n_star = at[f"{size}_at"].values.reshape(-1)
        centre = np.nanmedian(n_star)
        grid = centre * np.logspace(-1.2, 1.2, 61)
        curves = optimum.isoflop_curve(i, pick, grid, max_draws=max_draws)
        med = np.nanmedian(curves, axis=0)
        ax.fill_between(grid, np.nanquantile(curves, lo_q, axis=0), np.nanquantile(curves, hi_q, axis=0),
                        color=colour, alpha=0.2, lw=0)
        ax.plot(grid, med, color=colour, label=f"{flops_label(all_b[i])} FLOPs, {label} = {int(pick)}")
        loss_star = at["loss_at"].values.reshape(-1)
        ax.errorbar([centre], [np.nanmedian(loss_star)],
                    xerr=[[centre - np.nanquantile(n_star, lo_q)], [np.nanquantile(n_star, hi_q) - centre]],
                    fmt="o", color=colour, ms=5, capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel(_LABELS.get(size, size) + " along the budget line")
    ax.set_ylabel(_LABELS["loss"])
    ax.set_title(f"IsoFLOP profiles ({ci_prob:.0%} bands; dot: optimum with its interval)")
    ax.legend(fontsize=8)
    return ax


def plot_memory_optimum(result, flops: float, *, memory_gb: Sequence[float] | None = None,
                        experts: Sequence[int] = (1, 2, 4, 8, 16, 32, 64), context_tokens: float = 0.0,
                        shape=None, ci_prob: float = DEFAULT_CI_PROB, limit_gb: float | None = None,
                        ax: Axes | None = None) -> Axes:
    """Best loss reachable with ``flops`` under a memory limit, per expert count, as the limit grows.

    For each E the model is the compute-optimal one truncated at the largest size that fits
    (weights + KV cache of ``context_tokens``; Ludziejewski et al. 2025 §4.2-4.3). Lines are
    posterior medians per E, the band the ``ci_prob`` interval of the best E at each limit;
    ``limit_gb`` draws the user's limit.
    """
    from bayesmoe.shape import ModelShape

    shape = shape or ModelShape()
    if memory_gb is None:
        centre = limit_gb or 80.0
        memory_gb = centre * np.logspace(-1.5, 1.5, 13)
    lo_q, hi_q = _interval(ci_prob)
    mem = np.asarray(memory_gb, dtype=float)
    med = np.full((len(experts), len(mem)), np.nan)
    best_lo, best_hi, best_med = (np.full(len(mem), np.nan) for _ in range(3))
    for j, gb in enumerate(mem):
        try:
            opt = result.optimal_experts([flops], experts=experts, memory_gb=gb, context_tokens=context_tokens,
                                         shape=shape)
        except ValueError:  # nothing fits at this limit
            continue
        loss_at = opt.dataset["loss_at"].isel(budget=0)
        med[:, j] = loss_at.median(("chain", "draw")).values
        best = opt.dataset["loss"].isel(budget=0).values.reshape(-1)
        best_med[j], best_lo[j], best_hi[j] = np.nanquantile(best, [0.5, lo_q, hi_q])
    ax = _ax(ax, size=(6.0, 4.0))
    colours = colours_for(experts)
    for i, e in enumerate(experts):
        ax.plot(mem, med[i], color=colours[float(e)], label=f"E = {int(e)}")
    ax.fill_between(mem, best_lo, best_hi, color="0.5", alpha=0.2, lw=0, label=f"best E, {ci_prob:.0%}")
    if limit_gb is not None:
        ax.axvline(limit_gb, color="#c0392b", ls="--", lw=1, label=f"limit {limit_gb:g} GB")
    ax.set_xscale("log")
    ax.set_xlabel(f"memory limit (GB, weights + KV cache of {context_tokens:g} tokens)")
    ax.set_ylabel(_LABELS["loss"])
    ax.set_title(f"Memory-constrained optimum at {flops_label(flops)} FLOPs")
    ax.legend(fontsize=7, ncol=2)
    return ax


# ---------------------------------------------------------------------------------------------
# Validation figures: they read the tables of bayesmoe.validation, never fit anything.


def plot_sbc_ranks(table: pd.DataFrame, params: Sequence[str] | None = None, *, bins: int = 10,
                   band: float = 0.99, ncols: int = 5):
    """SBC rank histograms (Talts et al. 2018, Fig. 1), one panel per parameter.

    The grey band is the central ``band`` interval of one bin's count under uniform ranks,
    Binomial(n_datasets, 1/bins): a calibrated model leaves it in about ``1 − band`` of the
    bins. A ∪ shape means over-confident intervals, ∩ too wide ones, a slope a biased posterior.

    Returns the matplotlib Figure.
    """
    from bayesmoe.validation import sbc_parameters

    names = sbc_parameters(table, params)
    n, draws = len(table), int(table["draws"].iloc[0])
    ncols = min(ncols, len(names))
    nrows = int(np.ceil(len(names) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.4 * ncols, 1.9 * nrows), layout="constrained",
                             squeeze=False)
    lo, hi = stats.binom.ppf([(1 - band) / 2, (1 + band) / 2], n, 1 / bins)
    edges = np.linspace(0, draws + 1, bins + 1)
    for ax, p in zip(axes.flat, names):
        counts, _ = np.histogram(table[f"rank_{p}"].to_numpy(), bins=edges)
        ax.axhspan(lo, hi, color="0.85", lw=0)
        ax.axhline(n / bins, color="0.4", lw=0.8, ls="--")
        ax.stairs(counts, edges, baseline=None, color="C0", lw=1.4)
        ax.set_title(_GREEK.get(p, p), fontsize=9)
        ax.set_xlim(0, draws + 1)
        ax.set_ylim(0, max(hi, counts.max()) * 1.15)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.set_axis_off()
    fig.supxlabel(f"rank of the truth among {draws} posterior draws ({n} data sets; "
                  f"band: {band:.0%} of a uniform bin)", fontsize=8)
    return fig


def plot_sbc_coverage(table: pd.DataFrame, params: Sequence[str] | None = None, *,
                      levels: Sequence[float] = (0.5, 0.8, 0.9, 0.95), band: float = 0.99,
                      ax: Axes | None = None) -> Axes:
    """Empirical vs nominal coverage of central intervals, one marker per parameter and level.

    Vertical bars: the central ``band`` interval of Binomial(n_datasets, p)/n_datasets, where a
    calibrated model's points fall, with p the coverage of a calibrated model's interval from
    the table's number of draws (:func:`bayesmoe.validation.expected_coverage`; slightly below
    the nominal level).
    """
    from bayesmoe.validation import expected_coverage, sbc_parameters

    names = sbc_parameters(table, params)
    n = len(table)
    ax = _ax(ax, size=(5.0, 4.0))
    levels = list(levels)
    expected = np.array([expected_coverage(lv, int(table["draws"].iloc[0])) for lv in levels])
    lo, hi = stats.binom.ppf(np.array([[(1 - band) / 2], [(1 + band) / 2]]), n, expected[None, :]) / n
    ax.vlines(levels, lo, hi, color="0.75", lw=9, zorder=0, label=f"{band:.0%} band (n = {n})")
    ax.plot([0.4, 1.0], [0.4, 1.0], color="0.4", lw=0.8, ls="--")
    offsets = np.linspace(-0.012, 0.012, len(names)) if len(names) > 1 else [0.0]
    for i, (p, dx) in enumerate(zip(names, offsets)):
        cov = [table[f"cover{int(round(lv * 100))}_{p}"].mean() for lv in levels]
        ax.plot(np.array(levels) + dx, cov, "o", ms=4, color=plt.get_cmap("tab20")(i % 20),
                label=_GREEK.get(p, p))
    ax.set_xlabel("nominal coverage of the central interval")
    ax.set_ylabel("share of data sets covering the truth")
    ax.set_xlim(0.4, 1.0)
    ax.set_ylim(0.4, 1.0)
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    return ax


def plot_holdout(holdout, *, by: str | None = None, ax: Axes | None = None) -> Axes:
    """Extrapolation errors of a hold-out (:func:`bayesmoe.validation.extrapolation_holdout`).

    Per held-out run against the ordering variable (log scale): the error of the posterior
    median (predicted − observed, nats) and, as a bar, where the new-run 90 % interval lies
    relative to the observed loss. A bar crossing zero means the interval covered the run.
    ``holdout`` is a :class:`~bayesmoe.validation.Holdout` or its ``table`` (then ``by`` names
    the ordering column, default ``compute``).
    """
    t = holdout.table if hasattr(holdout, "table") else holdout
    by = by or (holdout.summary["by"] if hasattr(holdout, "summary") else "compute")
    if by not in t.columns:
        raise ValueError(f"the hold-out table has no ordering column {by!r}")
    ax = _ax(ax, size=(6.0, 3.8))
    groups = list(pd.unique(t["group"]))
    for i, g in enumerate(groups):
        s = t[t["group"] == g]
        colour = f"C{i % 10}"
        ax.vlines(s[by], s["lo90"] - s["loss"], s["hi90"] - s["loss"], color=colour, alpha=0.35, lw=3)
        ax.plot(s[by], s["error"], "o", ms=3.5, color=colour,
                label=f"{g}: {s['in90'].mean():.0%} in 90 %" if len(groups) > 1 else None)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("compute 6·N·D (FLOPs)" if by == "compute" else by)
    ax.set_ylabel("predicted − observed loss (nats)")
    if hasattr(holdout, "summary"):
        s = holdout.summary
        ax.set_title(f"{s['law']}: {s['n_held']} held-out runs, max |error| {s['max_abs_error']:.3f}, "
                     f"90 % covers {s['coverage_90']:.0%}", fontsize=9)
    if len(groups) > 1:
        ax.legend(fontsize=7)
    return ax


def plot_backtest(result, *, ci_prob: float = 0.9, ax: Axes | None = None) -> Axes:
    """The table's own backtests: each prediction's error (observed − predicted ln loss) against
    its distance beyond the runs its backtest fit saw, with the ``ci_prob`` band the fitted
    extrapolation-error term gives (typical law sd combined with τ·distance; τ's median, and the
    band at τ's 5 % and 95 % quantiles shaded)."""
    ax = _ax(ax, (6.5, 4.0))
    disc = result.discrepancy
    bt = disc.backtest
    if bt is None or not len(bt):
        why = textwrap.fill(disc.note, 70) if disc.note else f"discrepancy: {disc.source}"
        ax.text(0.5, 0.5, f"no backtests\n{why}", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return ax
    z = stats.norm.ppf(0.5 + ci_prob / 2)
    bt = bt.assign(axis=bt["axis"] if "axis" in bt else "compute")  # files saved before sparsity cuts
    cuts = sorted(bt.groupby(["axis", "cut"]).groups, key=lambda k: (k[0] != "compute", k[0], k[1]))
    for i, (axis_, cut) in enumerate(cuts):
        part = bt[(bt["axis"] == axis_) & (bt["cut"] == cut)]
        label = (f"fit below the {cut:.0%} compute quantile" if axis_ == "compute"
                 else f"fit {axis_} ≤ {cut:g}, predict above")
        ax.scatter(part["distance"], part["residual"], s=14, alpha=0.75,
                   color=matplotlib.colormaps["viridis"](i / max(1, len(cuts) - 1)),
                   marker="o" if axis_ == "compute" else "^", label=label)
    d = np.linspace(0, max(float(bt["distance"].max()) * 1.1, 0.1), 100)
    s0 = float(bt["sd"].median())
    lo, med, hi = disc.tau_quantiles((0.05, 0.5, 0.95))
    for tau, style in ((med, "-"),):
        half = z * np.sqrt(s0 ** 2 + (tau * d) ** 2)
        ax.plot(d, half, "k" + style, lw=1.2, label=f"{ci_prob:.0%} band, τ = {tau:.3g} per decade")
        ax.plot(d, -half, "k" + style, lw=1.2)
    ax.fill_between(d, z * np.sqrt(s0 ** 2 + (hi * d) ** 2), z * np.sqrt(s0 ** 2 + (lo * d) ** 2),
                    color="0.6", alpha=0.25, lw=0, label=f"τ from {lo:.2g} to {hi:.2g} (90 %)")
    ax.fill_between(d, -z * np.sqrt(s0 ** 2 + (hi * d) ** 2), -z * np.sqrt(s0 ** 2 + (lo * d) ** 2),
                    color="0.6", alpha=0.25, lw=0)
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set_xlabel(f"decades beyond the backtest fit's runs ({axis_symbols(disc.axes)})")
    ax.set_ylabel("observed − predicted ln loss")
    ax.legend(fontsize=7, loc="best")
    return ax


def plot_run_values(values, picks=None, *, ax: Axes | None = None) -> Axes:
    """What each candidate run is worth to the decision at the target (``bayesmoe.design.run_values``):
    its expected drop in decision regret against its training FLOPs, coloured by how far it lies
    beyond the fitted runs; the suggested runs ringed, in order. The dashed line is the value of
    perfect information (today's expected regret), the dotted one what knowing the law's
    parameters alone would save: above it only runs beyond the fitted range can reach."""
    ax = _ax(ax, (6.5, 4.0))
    v = values[np.isfinite(values["value"])]
    sc = ax.scatter(v["flops"], np.maximum(v["value"], 0.0), c=v["distance"], cmap="viridis", s=14, alpha=0.8)
    ax.figure.colorbar(sc, ax=ax, label="decades beyond the fitted runs")
    ax.errorbar(v["flops"], np.maximum(v["value"], 0.0), yerr=v["value_se"], fmt="none", ecolor="0.7", lw=0.5,
                zorder=0)
    now, theta = values.attrs.get("regret_now"), values.attrs.get("regret_theta_known")
    if now is not None:
        ax.axhline(now, color="k", ls="--", lw=1, label=f"perfect information: {now:.2e}")
    if now is not None and theta is not None:
        ax.axhline(now - theta, color="k", ls=":", lw=1, label=f"knowing θ only: {now - theta:.2e}")
    if picks is not None and len(picks):
        ax.scatter(picks["flops"], picks["value"], s=90, facecolors="none", edgecolors="C3", lw=1.5,
                   label="suggested (in order)")
        for i, (_, row) in enumerate(picks.iterrows(), start=1):
            ax.annotate(str(i), (row["flops"], row["value"]), textcoords="offset points", xytext=(5, 5),
                        fontsize=8, color="C3")
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs of the run (6·N_act·D)")
    ax.set_ylabel("expected regret saved at the target (nats)")
    ax.legend(fontsize=7, loc="best")
    return ax
