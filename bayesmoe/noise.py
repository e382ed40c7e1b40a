"""Run-to-run noise on ln loss, and a scale that may move with compute.

The likelihood (:mod:`bayesmoe.models`) is ``ln L_i ~ StudentT(ν, ln L(x_i; θ), σ_i)``. For
every law that reads N and D the prior site ``sigma_trend`` (η, N(0, 0.5) by default;
``priors={"sigma_trend": 0}`` removes it: one σ for every run, the former model) makes

    σ_i = σ · exp(η · (u_i − ū)),   u_i = log10(6 · N_i · D_i),

η per decade of compute, ū the fitted runs' mean of u (the data's centre, so σ is the noise
there and σ and η are nearly uncorrelated). Why: on the real tables in ``../shared/data`` the
fitted runs' residuals shrink with compute on 7 of the 12 tables' hold-out fits, by 0.38–1.0 in
ln σ per decade (at least two standard errors; none grows by as much; docs/validation.md, "Noise
that moves with compute", ``docs/validation/residual_scale.py``): one σ per table then sits between the small runs'
scatter and the large runs', too wide where users extrapolate from. On the 12-table ordered
hold-out (docs/validation.md, "Noise that moves with compute") the trend moved the tables
covered within 80–97 % from 5 to 7, the sharp ones from 7 to 8 and the pooled coverage from
94.9 % to 92.4 %.

Beyond the fitted compute, σ stays at its value at the nearest edge (:func:`run_scale`): the
trend is measured inside the data; how the law's error grows beyond it is the extrapolation
term's job (:mod:`bayesmoe.discrepancy`), learned from backtests that see this same σ.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd

#: The prior site of η, the trend of ln σ per decade of compute.
TREND = "sigma_trend"
#: The inputs a trend needs (compute = 6 · N · D).
INPUTS = ("n_active", "tokens")
#: Family-wise level at which :func:`outlying_runs` names the fitted runs the law does not fit.
OUTLIER_LEVEL = 0.05


def log10_compute(x: Mapping, xp=np):
    """log10(6 · N · D) of each run from ``x["n_active"]`` and ``x["tokens"]`` (``xp``: NumPy, or
    ``jax.numpy`` inside a traced model)."""
    return math.log10(6.0) + xp.log10(x["n_active"]) + xp.log10(x["tokens"])


def model_scale(sigma, trend, x: Mapping, anchor: Mapping):
    """σ_i of each run inside the model (traceable): ``sigma`` where ``trend`` is None."""
    if trend is None:
        return sigma
    import jax.numpy as jnp

    # the anchor is the geometric mean of each input, so its compute is the runs' mean of u
    return sigma * jnp.exp(trend * (log10_compute(x, jnp) - log10_compute(anchor, jnp)))


def run_scale(sigma: np.ndarray, trend: np.ndarray | None, fitted: pd.DataFrame, table: pd.DataFrame,
              anchor: Mapping | None = None) -> np.ndarray:
    """σ of each draw at each row of ``table`` (draw shape + ``(rows,)``), for a fit of the runs
    ``fitted``: the trend from the model's centre, held at its value at their nearest compute
    edge beyond them. ``anchor``: the fit's data centre (``FitResult.anchor``, which
    ``fit(reference=...)`` can set apart from the runs), by default the runs' own, as
    :func:`bayesmoe.models.make_design` takes it. ``trend`` None (a fit without the site):
    ``sigma`` broadcast over the rows."""
    sigma = np.asarray(sigma, dtype="float64")[..., None]
    if trend is None:
        return np.broadcast_to(sigma, (*sigma.shape[:-1], len(table)))
    u_fit = log10_compute({k: fitted[k].to_numpy(dtype="float64") for k in INPUTS})
    centre = u_fit.mean() if anchor is None else log10_compute(anchor)
    u = np.clip(log10_compute({k: table[k].to_numpy(dtype="float64") for k in INPUTS}), u_fit.min(), u_fit.max())
    return sigma * np.exp(np.asarray(trend, dtype="float64")[..., None] * (u - centre))


def posterior_trend(post) -> np.ndarray | None:
    """η's draws from a posterior (mapping or ``xarray.Dataset``), None where the fit had none."""
    return np.asarray(post[TREND], dtype="float64") if TREND in post else None


def run_residuals(result) -> pd.DataFrame:
    """Each fitted run against the fitted law and noise: ``predicted`` (posterior median of the
    law's expected loss at the run, its group's law), ``residual`` (ln observed − ln predicted),
    ``noise_sd`` (the run's σ_i, posterior median, the trend included), ``z`` (residual / σ_i)
    and ``p_tail`` (two-sided tail probability of ``z`` under the fitted Student-t(ν))."""
    from scipy import stats

    runs = result.runs
    post = result.tree["posterior"]
    inputs = runs[list(result.law.inputs)]
    groups = runs["group"].astype(str)
    log_pred = np.empty(len(runs))
    for g in dict.fromkeys(groups):
        m = (groups == g).to_numpy()
        pred = result.predict(inputs[m], group=g, kind="mean")
        log_pred[m] = np.log(pred.median(dim=("chain", "draw")).values)
    draws = run_scale(post["sigma"].values, posterior_trend(post), runs, runs, result.anchor)
    noise_sd = np.median(draws.reshape(-1, len(runs)), axis=0)
    nu = float(np.median(post["nu"].values))
    residual = np.log(runs["loss"].to_numpy(dtype="float64")) - log_pred
    z = residual / noise_sd
    return pd.DataFrame({**{k: runs[k] for k in (*result.law.inputs, "group", "loss")},
                         "predicted": np.exp(log_pred), "residual": residual, "noise_sd": noise_sd, "z": z,
                         "p_tail": 2.0 * stats.t.sf(np.abs(z), nu)}, index=runs.index)


def outlying_runs(result, level: float = OUTLIER_LEVEL) -> pd.DataFrame:
    """The fitted runs the law does not fit: those whose residual is further out than the fitted
    Student-t noise puts any of the runs with probability ``level`` (Bonferroni over the runs:
    ``p_tail < level / n``), largest first. The heavy-tailed noise lets such runs barely pull the
    law, which is why it is the default; this names them, so that none is discounted unseen
    (a diverged run, a mislogged loss, or a region the law's form cannot follow)."""
    return outlying(run_residuals(result), level)


def outlying(residuals: pd.DataFrame, level: float = OUTLIER_LEVEL) -> pd.DataFrame:
    """The rows of a :func:`run_residuals` table with ``p_tail < level / n``, largest |z| first."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    out = residuals[residuals["p_tail"] < level / len(residuals)]
    return out.reindex(out["z"].abs().sort_values(ascending=False).index)


def worst_runs(residuals: pd.DataFrame, k: int = 5, level: float = OUTLIER_LEVEL) -> pd.DataFrame:
    """The ``k`` rows of a :func:`run_residuals` table furthest from the law (largest |z| first),
    with a column ``beyond the noise``: whether :func:`outlying` names the run at ``level``."""
    far = outlying(residuals, level)
    worst = residuals.reindex(residuals["z"].abs().sort_values(ascending=False).index).head(k)
    return worst.assign(**{"beyond the noise": worst.index.isin(far.index)})


def residual_rows(rows: pd.DataFrame, n_groups: int) -> pd.DataFrame:
    """Rows of a :func:`run_residuals` table as the report, the model card and the CLI show them:
    without ``p_tail``, ``z`` as "residual / σ", the ``group`` column only where there are several,
    the index named ``run``."""
    shown = rows.drop(columns=["p_tail"] + (["group"] if n_groups == 1 else []))
    return shown.rename(columns={"z": "residual / σ"}).rename_axis("run")


def worst_runs_sentence(residuals: pd.DataFrame, k: int = 5, level: float = OUTLIER_LEVEL) -> str:
    """What the report and the model card say above :func:`worst_runs`."""
    n_far = len(outlying(residuals, level))
    shown = min(k, len(residuals))
    head = f"The {shown} fitted runs furthest from the law, in units of their fitted noise σ. "
    if n_far:
        return head + (f"{n_far} of the {len(residuals)} {'lies' if n_far == 1 else 'lie'} further out than the "
                       f"fitted Student-t noise puts any run with probability {level:.0%} (Bonferroni over the "
                       "runs): the heavy-tailed noise lets such runs barely pull the law. A diverged run, a "
                       "mislogged loss, or configurations the law's form cannot follow: look at them before "
                       "trusting what the law says near them.")
    return head + (f"None lies further out than the fitted Student-t noise puts any of the {len(residuals)} runs "
                   f"with probability {level:.0%} (Bonferroni over the runs).")
