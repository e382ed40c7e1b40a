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
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayesmoe.errors import ConvergenceWarning
from bayesmoe.laws import get_law
from bayesmoe.models import centring_shift, make_design, params_from_latents
from bayesmoe.priors import resolve_priors
from bayesmoe.testing import design_grid

__all__ = ["sbc", "draw_from_prior", "sbc_coverage", "COVERAGE_LEVELS"]

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
    paper_shape, log_scales, log_irr = params_from_latents(law, latents, design)
    x = {k: jnp.asarray(design_df[k].to_numpy(float)) for k in law.inputs}
    mean = law.log_loss_from_log_scales(paper_shape, log_scales, log_irr, x)
    key, sub = jax.random.split(key)
    log_loss = mean + sigma * jax.random.t(sub, nu, shape=mean.shape)
    truth = {p: float(v) for p, v in paper_shape.items()}
    truth.update({s: float(jnp.exp(v)) for s, v in log_scales.items()})
    truth[law.irreducible] = float(jnp.exp(log_irr))
    truth["sigma"] = float(sigma)
    out = design_df.copy()
    out["loss"] = np.exp(np.asarray(log_loss, dtype="float64"))
    return truth, out


def sbc(law: str = "chinchilla", *, n_datasets: int = 200, n_runs: int = 100, priors="literature",
        loss_ref: float = 3.0, loss_min: float = 2.2, num_chains: int = 4, num_warmup: int = 500,
        num_samples: int = 250, thin: int = 10, seed: int = 0, out: str | Path | None = None,
        progress: bool = True) -> pd.DataFrame:
    """Simulation-based calibration of ``law`` on its :func:`bayesmoe.testing.design_grid`.

    Returns (and appends to ``out``) one row per data set: for each parameter the rank of the
    truth among ``num_chains·num_samples/thin`` posterior draws, whether each central interval in
    :data:`COVERAGE_LEVELS` covers it, and the fit's diagnostics (divergences, max R-hat, min bulk
    ESS, seconds).
    """
    from bayesmoe.fitting import fit  # fitting imports results, which imports this package

    law = get_law(law)
    design_df = design_grid(law, n_runs=n_runs, seed=seed)
    reference = _reference(law, design_df, loss_ref, loss_min)
    out = Path(out) if out else None
    done = set()
    if out is not None and out.exists():
        done = set(pd.read_csv(out)["dataset"].astype(int))
    rows = []
    todo = [i for i in range(n_datasets) if i not in done]
    try:
        from tqdm.auto import tqdm

        iterator = tqdm(todo, desc=f"SBC {law.name}", disable=not progress)
    except ImportError:  # pragma: no cover - tqdm is a dependency
        iterator = todo
    for i in iterator:
        truth, table = draw_from_prior(law, priors, design_df, reference, seed=10_000 * seed + i)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            result = fit(table, law=law, priors=priors, num_chains=num_chains, num_warmup=num_warmup,
                         num_samples=num_samples, seed=i, on_bad_fit="warn", progress=False,
                         unit_checks=False, reference=reference)
        row = {"law": law.name, "dataset": i, "seconds": time.perf_counter() - t0,
               "divergences": result.diagnostics.divergences, "max_rhat": result.diagnostics.max_rhat,
               "min_ess_bulk": result.diagnostics.min_ess_bulk, "draws": 0}
        post = result.posterior
        for name, value in truth.items():
            if name not in post:
                continue
            draws = post[name].values.reshape(-1)[::thin]
            row["draws"] = len(draws)
            row[f"rank_{name}"] = int(np.sum(draws < value))
            row[f"truth_{name}"] = value
            for level in COVERAGE_LEVELS:
                lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
                row[f"cover{int(level * 100)}_{name}"] = bool(lo <= value <= hi)
        rows.append(row)
        # every fit compiles a new model; without this a 200-fit run grew until LLVM could not
        # allocate memory (fit 33 of the first joint run)
        del result
        jax.clear_caches()
        if out is not None:
            pd.DataFrame([row]).to_csv(out, mode="a", header=not out.exists(), index=False)
    new = pd.DataFrame(rows)
    if out is not None and out.exists():
        return pd.read_csv(out)
    return new


def sbc_coverage(table: pd.DataFrame, params: Sequence[str] | None = None) -> pd.DataFrame:
    """Coverage per parameter and level, with the binomial band a calibrated model stays inside.

    The band is the central 99 % interval of Binomial(n, level)/n for n data sets: a calibrated
    model falls outside it for a given cell 1 % of the time.
    """
    from scipy import stats

    params = params or sorted(c[len("rank_"):] for c in table.columns if c.startswith("rank_"))
    n = len(table)
    rows = []
    for p in params:
        row = {"parameter": p}
        for level in COVERAGE_LEVELS:
            k = int(table[f"cover{int(level * 100)}_{p}"].sum())
            lo, hi = stats.binom.ppf([0.005, 0.995], n, level) / n
            row[f"{level:.0%}"] = k / n
            row[f"{level:.0%} band"] = f"[{lo:.2f}, {hi:.2f}]"
            row[f"{level:.0%} ok"] = bool(lo <= k / n <= hi)
        ranks = table[f"rank_{p}"].to_numpy()
        draws = int(table["draws"].iloc[0])
        row["rank uniformity p"] = float(stats.chisquare(np.histogram(ranks, bins=10, range=(0, draws + 1))[0]).pvalue)
        rows.append(row)
    return pd.DataFrame(rows).set_index("parameter")
