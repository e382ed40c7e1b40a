"""Synthetic run tables and fake results, for tests, docs and benchmarks.

``synthetic_runs`` simulates a table from known parameters: realistic grids per law, log-normal
noise on the loss (``noise_sd`` is the standard deviation of ln loss, so 0.01 is about 1 %).
``fake_result`` builds a :class:`~bayesmoe.results.FitResult` whose draws sit tightly around
known values, so queries, plots and reports can be tested without NUTS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from bayesmoe.inference import Diagnostics
from bayesmoe.laws import PUBLISHED, Law, get_law
from bayesmoe.models import make_design
from bayesmoe.priors import default_priors
from bayesmoe.results import FitResult, provenance_attrs

__all__ = ["TRUTH", "design_grid", "synthetic_runs", "fake_result"]

#: Known parameters to simulate from: the published fits where they exist.
TRUTH: dict[str, dict[str, float]] = {
    "joint": dict(PUBLISHED["joint"]["ludziejewski2025"]),
    "fine_grained": dict(PUBLISHED["fine_grained"]["krajewski2024"]),
    "chinchilla": dict(PUBLISHED["chinchilla"]["besiroglu2024"]),
    # No published coefficients (LAWS.md §3.2): an illustrative truth with λ < 0 as the paper
    # reports, Chinchilla-like magnitudes, for recovery tests only. δ, γ > 0 give the paper's
    # findings (§3.5): at fixed N and compute, loss is parabolic in S and S* grows with N
    # (S* ≈ 0.45, 0.82, 0.96 at N = 1e8, 1e9, 1e10, C = 1e20). The earlier δ = −0.2, γ = 0.1,
    # d = 2 made S* = 0.999 at every N, and its interaction term was not identifiable: dropping
    # it entirely cost Δχ² ≈ 7 on the 200-run 1 % design, so the posterior formed arms where the
    # term merges with a/N^α (δ = 0) or c/(1−S)^λ (γ = 0) and NUTS could not mix between them.
    "sparsity": dict(a=400.0, alpha=0.34, b=400.0, beta=0.28, c=1.0, d=20.0, e=1.7,
                     gamma=0.2, delta=0.3, **{"lambda": -0.5}),
}


def design_grid(law: str | Law, *, n_runs: int | None = None, seed: int = 0) -> pd.DataFrame:
    """A realistic design (no losses) for a law.

    ``joint``: active sizes 50M-2.7B, E ∈ {1, 2, 4, 8, 16, 32}, D/N ∈ [1, 80], as in the joint
    paper's App. E; ``fine_grained``: E = 64 expansion, G ∈ {1, ..., 16}, 130M-3.7B total
    non-embedding, 16B-130B tokens (LAWS.md §2.6); ``sparsity``: 100M-10B total, E ∈ {1, ..., 64};
    ``chinchilla``: 70M-16B, D/N ∈ [1, 100]. Sizes are log-uniform; ``n_runs`` rows.
    """
    law = get_law(law)
    rng = np.random.default_rng(seed)
    n = {"joint": 270, "fine_grained": 120, "sparsity": 200, "chinchilla": 150}.get(law.name, 150)
    n = n_runs or n

    def logu(lo, hi, size):
        return np.exp(rng.uniform(np.log(lo), np.log(hi), size))

    if law.name == "joint":
        n_active = logu(5e7, 2.7e9, n)
        df = pd.DataFrame({"n_active": n_active, "tokens": n_active * logu(1, 80, n),
                           "experts": rng.choice([1, 2, 4, 8, 16, 32], n).astype(float)})
    elif law.name == "fine_grained":
        df = pd.DataFrame({"n_total": logu(1.3e8, 3.7e9, n), "tokens": logu(1.6e10, 1.3e11, n),
                           "granularity": rng.choice([1, 2, 4, 8, 16], n).astype(float),
                           "experts": 64.0})
        df["n_active"] = df["n_total"] / 8  # illustrative; the law reads n_total
    elif law.name == "sparsity":
        n_total = logu(1e8, 1e10, n)
        experts = rng.choice([1, 2, 4, 8, 16, 32, 64], n).astype(float)
        df = pd.DataFrame({"n_total": n_total, "experts": experts,
                           "n_active": n_total / experts, "tokens": n_total * logu(0.5, 50, n)})
    elif law.name == "chinchilla":
        n_active = logu(7e7, 1.6e10, n)
        df = pd.DataFrame({"n_active": n_active, "tokens": n_active * logu(1, 100, n)})
    else:
        raise ValueError(f"no built-in design for law {law.name!r}; pass your own design table")
    return df


def synthetic_runs(
    law: str | Law,
    params: Mapping[str, float] | None = None,
    *,
    design: pd.DataFrame | None = None,
    n_runs: int | None = None,
    noise_sd: float = 0.01,
    seed: int = 0,
    groups: Mapping[str, Mapping[str, float]] | None = None,
) -> pd.DataFrame:
    """Simulate a run table from known law parameters.

    Parameters
    ----------
    law : str or Law
    params : mapping, optional
        Paper-form parameters; default :data:`TRUTH` for the law.
    design : DataFrame, optional
        Inputs to simulate on (default :func:`design_grid`).
    noise_sd : float
        Standard deviation of Gaussian noise on ln loss (0.01 ≈ 1 %).
    groups : mapping, optional
        ``{group name: parameter overrides}``: the design is repeated for each group, with
        that group's parameters, and a ``group`` column is added.
    """
    law = get_law(law)
    base = dict(TRUTH[law.name] if params is None else params)
    missing = [p for p in law.params if p not in base]
    if missing:
        raise ValueError(f"params for {law.name!r} miss {missing}")
    design = design_grid(law, n_runs=n_runs, seed=seed) if design is None else design.copy()
    rng = np.random.default_rng(seed + 1)
    frames = []
    for name, overrides in (groups or {None: {}}).items():
        p = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in {**base, **overrides}.items()}
        x = {k: jnp.asarray(design[k].to_numpy(dtype="float64")) for k in law.inputs}
        mean = np.asarray(law.log_loss(p, x), dtype="float64")
        df = design.copy()
        df["loss"] = np.exp(mean + noise_sd * rng.standard_normal(len(df)))
        if name is not None:
            df["group"] = name
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def fake_result(
    law: str | Law = "joint",
    params: Mapping[str, float] | None = None,
    *,
    runs: pd.DataFrame | None = None,
    num_chains: int = 2,
    num_draws: int = 200,
    rel_sd: float = 0.01,
    sigma: float = 0.01,
    seed: int = 0,
) -> FitResult:
    """A FitResult with draws pinned near known values (no NUTS), for testing downstream code.

    Each parameter is drawn as ``value · (1 + rel_sd · z)`` (exponents keep their sign);
    ``sigma`` is the noise scale on ln loss and ``nu`` = 4.
    """
    from bayesmoe.fitting import _run_labels  # fitting imports results; keep imports one-way
    from bayesmoe.data import validate_runs

    law = get_law(law)
    truth = dict(TRUTH[law.name] if params is None else params)
    if runs is None:
        runs = synthetic_runs(law, truth, n_runs=60, seed=seed)
    table = validate_runs(runs, required=law.inputs + ("loss",))
    design = make_design(table, law)
    rng = np.random.default_rng(seed)
    shape = (num_chains, num_draws)
    post = {p: truth[p] * (1 + rel_sd * rng.standard_normal(shape)) for p in law.params}
    # sigma moves like every sampled site: a draw stuck at one value fails the diagnostics
    post["sigma"] = sigma * (1 + rel_sd * rng.standard_normal(shape))
    post["nu"] = np.full(shape, 4.0)
    coords = {"chain": np.arange(num_chains), "draw": np.arange(num_draws)}
    posterior = xr.Dataset({k: (("chain", "draw"), v) for k, v in post.items()}, coords=coords)
    run = _run_labels(table.index)
    hashed = [*law.inputs, "loss", "group"]
    tree = xr.DataTree.from_dict({
        "posterior": posterior,
        "sample_stats": xr.Dataset({"diverging": (("chain", "draw"), np.zeros(shape, bool))}, coords=coords),
        "observed_data": xr.Dataset({"log_loss": ("run", design.log_loss)}, coords={"run": run}),
        "constant_data": xr.Dataset({c: ("run", table[c].to_numpy()) for c in hashed}, coords={"run": run}),
    })
    spec = default_priors(law)
    tree.attrs = provenance_attrs(
        law=law, priors=spec, design=design, runs=table[hashed], hashed_columns=hashed, pooled=(),
        sampled=[*law.params, "sigma"], timings={}, column_map={}, extra={"fake": "true"},
    )
    diag = Diagnostics(max_rhat=1.0, min_ess_bulk=float(num_chains * num_draws),
                       min_ess_tail=float(num_chains * num_draws), divergences=0,
                       num_draws=num_draws, num_chains=num_chains)
    return FitResult(tree, law, spec, diag)


def interval_contains(result: FitResult, truth: Mapping[str, float], prob: float = 0.95,
                      names: Sequence[str] | None = None) -> dict[str, tuple[float, float, float]]:
    """``{param: (low, high, truth)}`` for parameters whose central ``prob`` interval misses the truth."""
    post = result.posterior
    q = (1 - prob) / 2
    misses = {}
    for p in names or [n for n in result.law.params if n in truth]:
        lo, hi = (float(v) for v in post[p].quantile([q, 1 - q]).values)
        if not lo <= truth[p] <= hi:
            misses[p] = (lo, hi, truth[p])
    return misses


