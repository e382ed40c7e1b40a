"""One self-contained HTML page per fit: verdict, data, posterior, fit quality, priors, provenance.

Every figure is a base64 PNG inside the page and the styles are inline: the file opens offline
and can be mailed on its own (no scripts, fonts or external requests). Built with Jinja2 from
``bayesmoe/templates/report.html.j2``.

    result.report("report.html")                       # or render_report(result) -> str

Recommendations (optimal expert counts for compute budgets) appear only when ``budgets`` are
given and the result offers ``optimal_experts``; the table is whatever its ``summary()`` returns.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from bayesmoe.data import design_notes
from bayesmoe.discrepancy import axis_symbols
from bayesmoe.errors import InputError
from bayesmoe import __version__
from bayesmoe.intervals import DEFAULT_CI_PROB, check_ci_prob, level_label
from bayesmoe.noise import TREND, residual_rows, run_residuals, worst_runs, worst_runs_sentence
from bayesmoe.units import budget_columns, flops_label
from bayesmoe.inference import starts_phrase, timing_line
from bayesmoe.verdict import Verdict, saved_holdout, verdict

#: How many of the fitted runs furthest from the law the report lists.
WORST_SHOWN = 5

__all__ = ["render_report", "write_report", "verdict", "Verdict", "answer_card"]

# ------------------------------------------------------------------------------ figures
def _subplots(nrows: int = 1, ncols: int = 1, **kw):
    """A figure outside pyplot: the report never touches the user's backend or open figures."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=kw.pop("figsize"), layout=kw.pop("layout", "constrained"))
    return fig, fig.subplots(nrows, ncols, **kw)


def _png(fig, dpi: int = 110) -> dict:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    data = buf.getvalue()
    return {"src": "data:image/png;base64," + base64.b64encode(data).decode("ascii"),
            "bytes": len(data)}


def _figures(result, ci_prob: float) -> list[dict]:
    from bayesmoe import plots

    figs = []
    fig, ax = _subplots(figsize=(6.2, 4.6), layout="constrained")
    plots.plot_predictive(result, ci_prob=ci_prob, ax=ax)
    figs.append({"id": "fig-predictive", "title": "Observed vs predicted loss", **_png(fig),
                 "caption": "Each fitted run: the dot is the posterior median of the law, the bar "
                            f"the {ci_prob:.0%} interval of a new run (law plus fitted noise)."})
    size = next((s for s in ("n_active", "n_total") if s in result.law.inputs), None)
    if size and "tokens" in result.law.inputs:
        fig, axes = _subplots(1, 2, figsize=(12.4, 4.6), layout="constrained")
        plots.plot_loss_curves(result, size, ci_prob=ci_prob, ax=axes[0])
        plots.plot_loss_curves(result, "tokens", ci_prob=ci_prob, ax=axes[1])
        figs.append({"id": "fig-curves", "title": "Loss vs model size and vs tokens", **_png(fig),
                     "caption": "Posterior median of the law and its band per expert count, along "
                                "one slice of the table; runs in that slice are drawn solid, the "
                                "others faded for context."})
    names = list(result.law.shape_params)
    prior = plots.prior_draws(result, names)
    ncol = min(4, len(names))
    nrow = -(-len(names) // ncol)
    fig, axes = _subplots(nrow, ncol, figsize=(3.3 * ncol, 2.7 * nrow), layout="constrained",
                             squeeze=False)
    for name, ax in zip(names, axes.flat):
        plots.plot_parameter(result, name, prior=prior[name], ci_prob=ci_prob, ax=ax)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    figs.append({"id": "fig-parameters", "title": "Exponents: posterior, prior and published value",
                 **_png(fig),
                 "caption": "Blue: posterior (bar: its interval). Grey: the prior, from the fit's own "
                            "model run forward. Dashed: published values. Where blue is much "
                            "narrower than grey, the data taught the fit something."})
    fig, axes = _subplots(nrow, ncol, figsize=(3.3 * ncol, 2.1 * nrow), layout="constrained",
                             squeeze=False)
    for name, ax in zip(names, axes.flat):
        plots.plot_rank(result, name, ax=ax)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    figs.append({"id": "fig-rank", "title": "Rank plots", **_png(fig),
                 "caption": "Ranks of each parameter's draws across all chains, one line per chain: "
                            "flat lines near the dashed level mean the chains agree."})
    fig, ax = _subplots(figsize=(7.5, 2.9), layout="constrained")
    plots.plot_sampler(result, ax=ax)
    figs.append({"id": "fig-sampler", "title": "Sampler", **_png(fig),
                 "caption": "Trajectory lengths of NUTS per chain and divergences."})
    return figs


# ------------------------------------------------------------------------------ tables
def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "–"
        a = abs(v)
        if a != 0 and (a >= 1e5 or a < 1e-3):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return html.escape(str(v))


def _table(df: pd.DataFrame, *, index: bool = True, cls: str = "") -> dict:
    # the top-left cell names the index, or the columns where they are the table's subject (budgets)
    cols = ([df.index.name or df.columns.name or ""] if index else []) + [str(c) for c in df.columns]
    rows = []
    for idx, row in df.iterrows():
        cells = ([_fmt(idx)] if index else []) + [_fmt(v) for v in row.tolist()]
        rows.append(cells)
    return {"columns": cols, "rows": rows, "cls": cls}


def _data_summary(result) -> dict:
    runs = result.runs
    law = result.law
    rows, counts = [], []
    for c in [*law.inputs, "loss"]:
        x = runs[c].astype(float)
        distinct = np.unique(x)
        rows.append({"column": c, "min": x.min(), "median": float(np.median(x)), "max": x.max(),
                     "distinct": len(distinct)})
        if c in ("n_active", "n_total", "tokens") and len(distinct) <= 8:  # a grid design
            counts.append(f"{c} levels: " + ", ".join(f"{v:.3g}" for v in distinct))
    table = pd.DataFrame(rows).set_index("column")
    for c in ("experts", "granularity"):
        if c in law.inputs:
            vc = runs[c].astype(float).value_counts().sort_index()
            counts.append(f"{c}: " + ", ".join(f"{k:g} ({n} runs)" for k, n in vc.items()))
    groups = runs["group"].astype(str).value_counts().sort_index()
    return {"n_runs": len(runs), "table": _table(table), "counts": counts,
            "groups": [f"{g} ({n} runs)" for g, n in groups.items()],
            "hierarchical": result.hierarchical, "pooled": list(result.pooled)}


def _fit_quality(result, res: pd.DataFrame, holdout: pd.DataFrame | None, holdout_ci_prob: float) -> dict:
    """``res``: :func:`bayesmoe.noise.run_residuals` of the fit."""
    runs = result.runs
    resid = res["residual"].to_numpy()
    observed = res["loss"].to_numpy(dtype=float)
    err = res["predicted"].to_numpy(dtype=float) - observed
    sigma = float(np.median(result.tree["posterior"]["sigma"].values))
    rows = [
        ("runs fitted", len(runs)),
        ("residual sd of ln loss (≈ relative error)", float(np.std(resid, ddof=1)) if len(resid) > 1 else float("nan")),
        ("fitted noise scale σ (posterior median, Student-t)", sigma),
        *([("its trend η, ln σ per decade of compute (posterior median)",
            float(np.median(result.tree["posterior"][TREND].values)))]
          if TREND in result.tree["posterior"] else []),
        ("RMSE (nats/token)", float(np.sqrt(np.mean(err ** 2)))),
        ("max |error| (nats/token)", float(np.max(np.abs(err)))),
        ("mean relative error", float(np.mean(np.abs(err) / observed))),
    ]
    out = {"table": _table(pd.DataFrame(rows, columns=["measure", "value"]).set_index("measure")),
           "holdout": None}
    out["worst"] = _table(residual_rows(worst_runs(res, WORST_SHOWN), len(result.groups)), index=True)
    out["worst_line"] = worst_runs_sentence(res, WORST_SHOWN)
    if holdout is not None and len(holdout):
        out["holdout"] = _table(holdout, index=False)
        out["holdout_line"] = (f"Mean absolute error {holdout['error'].abs().mean():.4f} nats "
                               f"({holdout['rel_error'].abs().mean():.2%}); "
                               f"{int(holdout['inside'].sum())} of {len(holdout)} observed losses inside "
                               f"the {level_label(holdout_ci_prob)} interval of a new run.")
    return out


def _recommendations(result, budgets, ci_prob: float, memory_gb: float | None = None,
                     context_tokens: float = 0.0, serve_tokens: float = 0.0, experts=None,
                     shape=None) -> dict | None:
    """Optimal configuration per budget (:mod:`bayesmoe.optima`); ``None`` omits the section."""
    if budgets is None:
        return None
    from bayesmoe import plots

    from bayesmoe.optima import recommend

    limits = {} if memory_gb is None else {"memory_gb": memory_gb, "context_tokens": context_tokens}
    if limits and "experts" not in result.law.inputs:
        raise InputError(f"a memory limit needs a law with an expert count, not {result.law.name!r}")
    extra = {k: v for k, v in (("serve_tokens", serve_tokens), ("shape", shape)) if v}
    optimum = recommend(result, budgets, experts=experts, ci_prob=ci_prob, **limits, **extra)
    table = optimum.summary()
    # P(E* = e) (or G*) columns also as a heat strip of probabilities
    prob_cols = [c for c in table.columns if re.match(r"^P\([EG]\*\s*=\s*\d+\)$", str(c))]
    strip = None
    if prob_cols:
        strip = {"columns": prob_cols,
                 "rows": [(flops_label(i), [(float(v), f"{float(v):.2f}") for v in r])
                          for i, r in zip(table.index, table[prob_cols].to_numpy())]}
    figures = []
    choice_dim = optimum.names[1]
    if optimum.dataset.sizes[choice_dim] > 1:
        fig, ax = _subplots(figsize=(7.0, 3.8), layout="constrained")
        plots.plot_optimal_choice(optimum, ax=ax)
        figures.append({"id": "fig-optimal-choice", "title": "Optimal choice per budget", **_png(fig),
                        "caption": "Posterior probability of each candidate being the per-draw optimum; "
                                   "red: the choice that minimises expected loss. Hatched budgets lie "
                                   "beyond the compute of the fitted runs."})
    if result.law.name != "sparsity":
        fig, ax = _subplots(figsize=(7.0, 4.4), layout="constrained")
        plots.plot_isoflop(optimum, ci_prob=ci_prob, ax=ax)
        figures.append({"id": "fig-isoflop", "title": "IsoFLOP profiles", **_png(fig),
                        "caption": "Loss along each budget line at its decision, with the posterior band; "
                                   "the dot is the optimum with its interval of model sizes."})
    if limits and result.law.name == "joint":
        flops = float(np.max(np.atleast_1d(budgets)))
        fig, ax = _subplots(figsize=(7.0, 4.4), layout="constrained")
        plots.plot_memory_optimum(result, flops, context_tokens=context_tokens, limit_gb=memory_gb,
                                  ci_prob=ci_prob, ax=ax)
        figures.append({"id": "fig-memory", "title": "Memory-constrained optimum", **_png(fig),
                        "caption": f"Best loss reachable with {flops_label(flops)} FLOPs per expert count as the memory "
                                   "limit grows (each model truncated at the largest size that fits); the "
                                   "dashed line is your limit."})
    return {"table": _table(budget_columns(table)), "strip": strip, "figures": figures, "card": answer_card(optimum, table),
            "summary": table}


def answer_card(optimum, table: pd.DataFrame | None = None) -> dict:
    """The answer a reader came for, per budget: the choice (E or G) that minimises expected loss
    with P(choice* = it), and the size, tokens and loss to train it with, as median [interval] of
    each draw's optimum *at that choice* (what a run at that E gets; the per-draw optimum over
    every E, E*/N*/D*/loss*, is in the recommendations table); the report shows it first.
    ``table``: ``optimum.summary()`` where the caller has it."""
    table = optimum.summary() if table is None else table
    complete = optimum.complete
    choice, dim, size, x = optimum.names
    ds = optimum.dataset
    lo, hi = f"{optimum.ci_prob:.0%} lo", f"{optimum.ci_prob:.0%} hi"
    size_label = "N_act*" if size == "n_active" else "N_total*"
    over = axis_symbols(optimum.dataset["axis"].values)
    rows = []
    for flops, r in table.iterrows():
        cells = {"budget": flops_label(flops)}
        if f"{x}_decision" in table:  # the choice, its odds, and what a run with it gets
            d = int(r[f"{x}_decision"])
            cells[x] = str(d)
            cells[f"P({x}* = {x})"] = f"{r[f'P({x}*={d})']:.2f}"
            at = ds.sel(budget=flops, **{dim: r[f"{x}_decision"]})
            # the draws the decision averaged over, where this choice has an optimum
            finite = np.isfinite(at["loss_at"]).values.ravel()
            use = complete.sel(budget=flops).values.ravel() & finite
            use = use if use.any() else finite  # a budget with no complete draw: the decision used every draw
            q = (1 - optimum.ci_prob) / 2
            for label, name, fmt in ((size_label[:-1], f"{size}_at", "{:.3g}"), ("D", "tokens_at", "{:.3g}"),
                                     ("loss", "loss_at", "{:.4g}")):
                v = at[name].values.ravel()[use]
                lo_v, med, hi_v = np.nanquantile(v, [q, 0.5, 1 - q])
                cells[f"{label} at that {x}"] = f"{fmt.format(med)} [{fmt.format(lo_v)}, {fmt.format(hi_v)}]"
        else:
            for label, name in ((size_label, size_label), ("D*", "D*"), ("loss*", "loss*")):
                fmt = "{:.4g}" if name == "loss*" else "{:.3g}"
                cells[label] = (f"{fmt.format(r[f'{name} median'])} "
                                f"[{fmt.format(r[f'{name} {lo}'])}, {fmt.format(r[f'{name} {hi}'])}]")
        far = float(r["extrapolation_decades"])
        compute = float(optimum.dataset["compute_decades"].sel(budget=flops))
        # compute alone is what a user counts ("10x my largest run": 1 decade); the distance over
        # the inputs counts N, D, E and N·D each, and is what the extrapolation error grows with
        cells["beyond the fitted runs"] = (f"{compute:.1f} decades of compute; {far:.1f} over {over}"
                                           if far > 0.05 else "no")
        rows.append(cells)
    columns = list(rows[0]) if rows else []
    return {"columns": columns, "rows": [[c[k] for k in columns] for c in rows], "ci_prob": optimum.ci_prob,
            "label": x, "has_choice": f"{x}_decision" in table}


def _trust(result, ci_prob: float, recommendations: dict | None) -> dict:
    """How far to trust the answers: the extrapolation-error term, the table's own backtests, and
    how far each recommendation lies beyond the fitted runs."""
    from bayesmoe import plots

    disc = result.discrepancy
    info = disc.summary()
    if disc.source == "none":
        line = ("This fit carries no extrapolation-error term (discrepancy='none'): its intervals cover "
                "parameter uncertainty and run noise only, which is honest inside the fitted runs, not beyond them.")
    else:
        backed = (f"{info['backtest_predictions']} backtest predictions at {info['backtest_cuts']} cuts "
                  "inside this table and " if "backtest_predictions" in info else "")
        line = (f"Beyond the fitted runs every prediction carries the law's own error, which grows "
                f"{info['tau_median']:.3g} ln-loss per decade of distance (90 %: {info['tau_lo90']:.3g} to "
                f"{info['tau_hi90']:.3g}), learned from {backed}the prior distilled from real run tables "
                f"(ln τ ~ N({info['prior'].get('mu', float('nan')):.2f}, {info['prior'].get('sigma', float('nan')):.2f})). "
                "Inside the fitted runs it is zero.")
        if disc.note:
            line += f" No backtests: {disc.note}."
    fig, ax = _subplots(figsize=(7.0, 4.0))
    plots.plot_backtest(result, ci_prob=ci_prob, ax=ax)
    has_backtests = disc.backtest is not None and len(disc.backtest) > 0
    caption = ("Fit on the runs below a compute cut (circles), or below the largest expert count "
               "(triangles, where the table has at least 4), predict every run above it: each point is one "
               "prediction's error against its distance beyond that fit's runs; the lines are the "
               "band the fitted growth rate gives, the shading its uncertainty." if has_backtests else
               f"No backtests to show: {disc.note or 'this fit has none'}.")
    figure = {"id": "fig-backtest", "title": "The table's own backtests", **_png(fig), "caption": caption}
    table = None
    if recommendations and recommendations.get("summary") is not None:
        summ = recommendations["summary"]
        cols = [c for c in summ.columns if c == "extrapolation_decades" or str(c).startswith("beyond_")
                or str(c).endswith(("at edge)", "_at_edge", "beyond fitted)", "_beyond_fitted"))]
        table = _table(budget_columns(summ[cols]))
    return {"line": line, "figure": figure, "table": table, "design": design_notes(result.runs, result.law.inputs)}


def _priors(result) -> dict:
    from bayesmoe.priors import sites

    used = set(sites(result.law, hierarchical=result.hierarchical, pooled=None))
    rows = [{"site": k, "distribution": p.dist,
             "arguments": ", ".join(f"{a} = {float(b):g}" for a, b in p.args.items()),
             "used": "yes" if k in used else "no (one group)"}
            for k, p in sorted(result.priors.items())]
    df = pd.DataFrame(rows).set_index("site")
    if not result.hierarchical:
        df = df[df["used"] == "yes"].drop(columns="used")
    return _table(df)


def _provenance(result) -> list[tuple[str, str]]:
    attrs = result.tree.attrs
    d = result.diagnostics
    timings = json.loads(attrs.get("timings", "{}") or "{}")
    rows = [
        ("law", f"{result.law.name}: {result.law.description}"),
        ("references", "; ".join(result.law.references) or "–"),
        ("command", attrs.get("command", "(fitted from Python)")),
        ("fitted with bayesmoe", str(attrs.get("bayesmoe_version", "?"))),
        ("report written by bayesmoe", f"{__version__}, {_dt.datetime.now().isoformat(timespec='seconds')}"),
        ("NUTS", f"{d.num_chains} chains × {d.num_draws} draws, seed {attrs.get('seed', '?')}, "
                 f"target_accept {attrs.get('target_accept', '?')}{starts_phrase(attrs)}"),
        ("run table SHA-256", f"{attrs.get('table_sha256', '?')} over "
                              f"{', '.join(json.loads(attrs.get('table_columns', '[]')))}"),
    ]
    if timings:
        rows.append(("time", timing_line(timings)))
    if result.hierarchical:
        rows.append(("groups' offsets", result.group_offsets()))
    versions = json.loads(attrs.get("versions", "{}") or "{}")
    rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items()) or "(not recorded)"))
    cmap = json.loads(attrs.get("column_map", "{}") or "{}")
    if cmap:
        rows.append(("column aliases", ", ".join(f"{k} → {v}" for k, v in cmap.items())))
    unit = attrs.get("loss_unit", "nats")
    rows.append(("loss unit", "nats per token" + ("" if unit == "nats" else f" (given in {unit}, converted)")))
    for note in json.loads(attrs.get("table_notes", "[]") or "[]"):
        rows.append(("reading the table", note))
    if attrs.get("fake") == "true":
        rows.append(("synthetic", "made by bayesmoe.testing.fake_result: draws were not sampled"))
    return rows


# ------------------------------------------------------------------------------ page
def _next_runs(result, next_runs: Mapping, budget_opts: Mapping) -> dict:
    """Which runs next (bayesmoe.design): the suggested runs for the target and budget, and what
    every candidate of the default grid is worth."""
    from bayesmoe import plots
    from bayesmoe.design import run_values, suggest_runs

    target, budget = float(next_runs["target"]), float(next_runs["budget_flops"])
    k = int(next_runs.get("k", 3))
    opts = {kk: v for kk, v in budget_opts.items() if v is not None}
    opts |= {kk: next_runs[kk] for kk in ("max_draws", "n_outer", "seed") if kk in next_runs}
    s = suggest_runs(result, target, budget_flops=budget, k=k, progress=False, **opts)
    values = run_values(result, target, **opts)
    fig, ax = _subplots(figsize=(7.0, 4.0))
    plots.plot_run_values(values, s.runs, ax=ax)
    figure = {"id": "fig-next-runs", "title": "What each candidate run is worth", **_png(fig),
              "caption": "Each point is one candidate of the default grid (the law's E × sizes × tokens from the "
                         "fitted range to 4× beyond it): its expected drop in decision regret at the target, "
                         "simulated under the posterior and scored by importance reweighting, against its cost; "
                         "bars are Monte-Carlo standard errors."}
    runs = s.runs.copy()
    runs.index = pd.RangeIndex(1, len(runs) + 1, name="run")
    cols = [c for c in (*result.law.inputs, "flops", "value", "regret_after", "value_per_eflop", "distance")
            if c in runs]
    return {"lines": s.describe().split("\n"), "table": _table(runs[cols]) if len(runs) else None,
            "figure": figure}


def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.PackageLoader("bayesmoe", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2")


def render_report(result, budgets: Sequence | None = None, *, ci_prob: float = DEFAULT_CI_PROB,
                  title: str | None = None, memory_gb: float | None = None, context_tokens: float = 0.0,
                  serve_tokens: float = 0.0, experts: Sequence[int] | None = None, shape=None,
                  next_runs: Mapping | None = None) -> str:
    """The report of ``result`` as one HTML string (figures embedded as base64 PNG).

    Parameters
    ----------
    result : FitResult
    budgets : optional
        Training FLOPs for the answer card and the recommendations section (see
        :func:`bayesmoe.optima.recommend`); ``None`` leaves them out.
    ci_prob : float
        Probability of every interval in the tables and figures.
    memory_gb, context_tokens, serve_tokens, experts, shape : optional
        A memory limit (weights + KV cache of ``context_tokens``), tokens to serve after training,
        candidate expert counts and the :class:`~bayesmoe.ModelShape`, as for
        :meth:`FitResult.optimal_experts`.
    next_runs : mapping, optional
        ``{"target": FLOPs, "budget_flops": FLOPs, "k": 3}`` (optionally ``max_draws``, ``n_outer``,
        ``seed`` as for :func:`bayesmoe.design.suggest_runs`): add a "Next runs" section with the
        runs :func:`bayesmoe.design.suggest_runs` picks for that target and budget (under the same
        memory and serving limits) and what every candidate is worth.
    """
    ci_prob = check_ci_prob(ci_prob)
    holdout, holdout_ci_prob = saved_holdout(result)
    residuals = run_residuals(result)
    v = verdict(result, holdout, holdout_ci_prob, residuals=residuals)
    summary = result.summary(ci_prob=ci_prob)
    pct = f"{ci_prob:.0%}"
    summary = summary.rename(columns=lambda c: (f"{pct} low" if str(c).startswith("eti") and str(c).endswith("_lb")
                                                else f"{pct} high" if str(c).startswith("eti") and str(c).endswith("_ub")
                                                else {"ess_bulk": "ESS bulk", "ess_tail": "ESS tail",
                                                      "r_hat": "R-hat", "mcse_mean": "MCSE mean"}.get(c, c)))
    summary.index.name = "parameter"
    recommendations = _recommendations(result, budgets, ci_prob, memory_gb, context_tokens, serve_tokens,
                                       experts, shape)
    context = {
        "title": title or f"bayesmoe report: {result.law.name} law",
        "law": result.law,
        "verdict": v,
        "card": recommendations["card"] if recommendations else None,
        "diagnostics": _table(result.diagnostics.table()),
        "warnings": list(result.warnings),
        "data": _data_summary(result),
        "summary": _table(summary),
        "ci_prob": ci_prob,
        "level": level_label(ci_prob),
        "quality": _fit_quality(result, residuals, holdout, holdout_ci_prob),
        "recommendations": recommendations,
        "trust": _trust(result, ci_prob, recommendations),
        "next_runs": None if not next_runs else _next_runs(result, next_runs, {
            "memory_gb": memory_gb, "context_tokens": context_tokens if memory_gb is not None else None,
            "serve_tokens": serve_tokens or None, "experts": experts, "shape": shape}),
        "priors": _priors(result),
        "provenance": _provenance(result),
        "figures": _figures(result, ci_prob),
    }
    return _template().render(**context)


def write_report(result, path: str | Path, budgets: Sequence | None = None, *,
                 ci_prob: float = DEFAULT_CI_PROB, **options) -> Path:
    """Render the report and write it to ``path`` (parent folders are created); ``options`` as
    for :func:`render_report`."""
    path = Path(path)
    text = render_report(result, budgets, ci_prob=ci_prob, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
