"""FitResult: the posterior of one fit, with provenance, summaries, predictions and storage.

Files are netCDF4 (HDF5) written by xarray's DataTree with the ``h5netcdf`` engine: no pickle is
ever written or read. The root ``attrs`` carry the provenance (package version, law, prior spec
as JSON, the data's reference points, a SHA-256 of the validated table); :func:`load` refuses a
file whose stored table no longer hashes to the recorded value, whose schema version is unknown,
or whose law is not registered.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from bayesmoe import __version__
from bayesmoe.data import table_hash, validate_runs
from bayesmoe.errors import ConvergenceWarning, LoadError
from bayesmoe.inference import Diagnostics, diagnose, summary_table
from bayesmoe.intervals import DEFAULT_CI_PROB, level_label
from bayesmoe.laws import Law, get_law
from bayesmoe.models import Design, coordinate, latent_sites, make_design, params_from_latents
from bayesmoe.priors import Prior, spec_from_json, spec_to_json, tau_site
from bayesmoe.verdict import saved_holdout, verdict

__all__ = ["FitResult", "load", "SCHEMA_VERSION"]

SCHEMA_VERSION = "bayesmoe-fit/1"
_REQUIRED_GROUPS = ("posterior", "sample_stats", "observed_data", "constant_data")


def _runs_from_tree(tree: xr.DataTree) -> pd.DataFrame:
    cd = tree["constant_data"].to_dataset()
    df = pd.DataFrame({k: cd[k].values for k in cd.data_vars}, index=cd["run"].values)
    df.index.name = None
    return df


class FitResult:
    """Posterior of a scaling-law fit.

    Attributes
    ----------
    tree : xarray.DataTree
        The full ArviZ object: ``posterior`` (every site, internal ones included),
        ``sample_stats``, ``log_likelihood``, ``observed_data`` (ln loss per run) and
        ``constant_data`` (the validated run table the fit used).
    law : Law
    priors : dict[str, Prior]
        The complete prior spec the fit used.
    diagnostics : Diagnostics
    warnings : list of str
        Convergence problems kept with ``on_bad_fit="warn"``.
    """

    def __init__(self, tree: xr.DataTree, law: Law, priors: Mapping[str, Prior],
                 diagnostics: Diagnostics | None = None):
        self.tree = tree
        self.law = law
        self.priors = dict(priors)
        attrs = tree.attrs
        self.groups: tuple[str, ...] = tuple(json.loads(attrs["groups"]))
        self.anchor: dict[str, float] = json.loads(attrs["anchor"])
        self.log_loss_ref = float(attrs["log_loss_ref"])
        self.log_loss_min = float(attrs["log_loss_min"])
        self.pooled: tuple[str, ...] = tuple(json.loads(attrs["pooled_sites"]))
        self.diagnostics = diagnostics or diagnose(tree, self.sampled_sites)
        self.warnings: list[str] = json.loads(attrs.get("warnings", "[]"))

    # ------------------------------------------------------------------ views
    @property
    def hierarchical(self) -> bool:
        return len(self.groups) > 1

    @property
    def sampled_sites(self) -> list[str]:
        post = self.tree["posterior"]
        return [v for v in post.data_vars if v in json.loads(self.tree.attrs["sampled_sites"])]

    @property
    def param_names(self) -> list[str]:
        """Law parameters plus noise and, for several groups, population values and spreads."""
        names = [*self.law.params, "sigma", "nu"]
        if self.hierarchical:
            post = self.tree["posterior"]
            extra = [f"{p}_pop" for p in self.law.params] + [tau_site(s) for s in self.pooled]
            names += [n for n in dict.fromkeys(extra) if n in post.data_vars]
        return names

    @property
    def posterior(self) -> xr.Dataset:
        """Draws of the law's parameters, dims ``(chain, draw)`` (+ ``group`` where pooled)."""
        return self.tree["posterior"].to_dataset()[self.param_names]

    @property
    def runs(self) -> pd.DataFrame:
        """The validated run table the fit used (inputs, loss, group)."""
        return _runs_from_tree(self.tree)

    @property
    def design(self) -> Design:
        return make_design(self.runs, self.law, anchor=self.anchor,
                           log_loss_ref=self.log_loss_ref, log_loss_min=self.log_loss_min)

    def summary(self, ci_prob: float = DEFAULT_CI_PROB, var_names: Sequence[str] | None = None) -> pd.DataFrame:
        """Median, equal-tailed ``ci_prob`` interval, R-hat and bulk/tail ESS per parameter."""
        table = summary_table(self.tree, var_names or self.param_names, ci_prob=ci_prob)
        keep = [c for c in table.columns if c in ("median", "mean", "sd") or c.startswith("eti")
                or c in ("ess_bulk", "ess_tail", "r_hat", "mcse_mean")]
        return table[keep]

    def __repr__(self) -> str:
        d = self.diagnostics
        status = "ok" if d.ok else "PROBLEMS: " + "; ".join(d.problems)
        return (
            f"<FitResult law={self.law.name!r} runs={self.tree['observed_data'].sizes['run']} "
            f"groups={len(self.groups)} draws={d.num_chains}x{d.num_draws} diagnostics {status}>"
        )

    # ------------------------------------------------------------------ predictions
    def _group_params(self, group: str) -> dict[str, np.ndarray]:
        post = self.tree["posterior"].to_dataset()
        if group not in self.groups:
            raise ValueError(f"unknown group {group!r}; the fit's groups are {list(self.groups)}")
        out = {}
        for p in self.law.params:
            v = post[p]
            out[p] = (v.sel(group=group) if "group" in v.dims else v).values
        return out

    def _new_setup_params(self, seed: int) -> dict[str, np.ndarray]:
        """Parameters of an unseen group: pooled sites drawn from their population."""
        post = self.tree["posterior"].to_dataset()
        rng = np.random.default_rng(seed)
        latents, offsets = {}, {}
        for site in latent_sites(self.law):
            name = coordinate(self.law, site)  # the sampled coordinate (centred exponents)
            if site in self.pooled:
                tau_name = tau_site(site)
                if tau_name not in offsets:  # one offset per spread: the levels share theirs
                    tau = post[tau_name].values
                    offsets[tau_name] = tau * rng.standard_normal(tau.shape)
                latents[site] = post[f"{name}_pop"].values + offsets[tau_name]
            else:
                latents[site] = post[name].values
        shape, log_scales, log_irr = params_from_latents(self.law, latents, self.design)
        out = {p: np.asarray(v) for p, v in shape.items()}
        out.update({s: np.exp(np.asarray(v)) for s, v in log_scales.items()})
        out[self.law.irreducible] = np.exp(np.asarray(log_irr))
        return out

    def predict(self, runs: pd.DataFrame, *, group: str | None = None, kind: str = "mean",
                seed: int = 0) -> xr.DataArray:
        """Posterior-predictive loss for new runs, dims ``(chain, draw, run)``.

        Parameters
        ----------
        runs : pandas.DataFrame
            Inputs the law needs (``loss`` is not needed; aliases accepted).
        group : str, optional
            A group of the fit. ``None``: the only group of a one-group fit, or a new, unseen
            setup of a hierarchical fit (pooled parameters drawn from their population).
        kind : {"mean", "new_run"}
            ``"mean"``: the law's expected loss. ``"new_run"``: plus the fitted Student-t noise,
            i.e. what one more training run would score.
        seed : int
            Seeds the draws of a new setup and of the run noise.
        """
        if kind not in ("mean", "new_run"):
            raise ValueError(f"kind must be 'mean' or 'new_run', got {kind!r}")
        table = runs.copy()
        if "loss" not in table.columns:
            table["loss"] = 1.0  # placeholder so the shared validator runs; never used
        table = validate_runs(table, required=self.law.inputs, unit_checks=False)
        if group is None and not self.hierarchical:
            group = self.groups[0]
        params = self._group_params(group) if group is not None else self._new_setup_params(seed)
        x = {k: jnp.asarray(table[k].to_numpy(dtype="float64")) for k in self.law.inputs}
        # (chain, draw) -> (chain, draw, 1) so the runs broadcast last
        p3 = {k: jnp.asarray(v)[..., None] for k, v in params.items()}
        mean = np.asarray(self.law.log_loss(p3, x))
        if kind == "new_run":
            post = self.tree["posterior"]
            sigma = post["sigma"].values[..., None]
            nu = post["nu"].values[..., None]
            key = jax.random.PRNGKey(seed + 1)
            t = np.asarray(jax.random.t(key, jnp.asarray(nu), shape=mean.shape))
            mean = mean + sigma * t
        coords = {"chain": self.tree["posterior"]["chain"].values,
                  "draw": self.tree["posterior"]["draw"].values, "run": table.index.values}
        return xr.DataArray(np.exp(mean), dims=("chain", "draw", "run"), coords=coords, name="loss")

    def holdout_table(self, runs: pd.DataFrame, *, group: str | None = None, ci_prob: float = DEFAULT_CI_PROB,
                      seed: int = 0) -> pd.DataFrame:
        """Predict runs the fit did not see and compare with their observed ``loss``.

        One row per run: the law's inputs, the observed loss, the posterior median of the law
        (``kind="mean"``), the ``ci_prob`` interval of a new run (``kind="new_run"``, noise
        included), the error ``predicted − observed`` (also relative) and whether the observed
        loss lies inside the interval.
        """
        table = validate_runs(runs, required=self.law.inputs + ("loss",), unit_checks=False)
        mean = self.predict(table, group=group, kind="mean", seed=seed)
        new = self.predict(table, group=group, kind="new_run", seed=seed)
        tail = (1 - ci_prob) / 2
        lo, hi = (new.quantile(q, dim=("chain", "draw")).values for q in (tail, 1 - tail))
        out = table[list(self.law.inputs) + ["loss"]].copy()
        out["predicted"] = mean.median(dim=("chain", "draw")).values
        out["new_run_lo"], out["new_run_hi"] = lo, hi
        out["error"] = out["predicted"] - out["loss"]
        out["rel_error"] = out["error"] / out["loss"]
        out["inside"] = (out["loss"] >= lo) & (out["loss"] <= hi)
        return out

    def model_card(self, ci_prob: float = DEFAULT_CI_PROB) -> str:
        """A Markdown model card: law, priors, command, data, sampler, diagnostics, posterior."""
        attrs = self.tree.attrs
        d = self.diagnostics
        timings = json.loads(attrs.get("timings", "{}"))
        fmt = {"display.width": 200, "display.max_columns": 30, "display.float_format": "{:.4g}".format}

        def block(df: pd.DataFrame) -> str:
            with pd.option_context(*[x for kv in fmt.items() for x in kv]):
                return "```\n" + df.to_string() + "\n```"

        prior_rows = pd.DataFrame(
            [{"site": k, "distribution": p.dist,
              "arguments": ", ".join(f"{a}={float(b):g}" for a, b in p.args.items())}
             for k, p in sorted(self.priors.items())]).set_index("site")
        lines = [
            f"# Model card: {self.law.name} law",
            "",
            f"{self.law.description}",
            "",
            "| | |", "|---|---|",
            f"| command | `{attrs.get('command', '(fitted from Python)')}` |",
            f"| bayesmoe version | {attrs.get('bayesmoe_version')} |",
            f"| runs fitted | {self.tree['observed_data'].sizes['run']} |",
            f"| groups | {', '.join(self.groups)} |",
            f"| pooled sites | {', '.join(self.pooled) or '(one group: none)'} |",
            f"| table SHA-256 ({', '.join(json.loads(attrs['table_columns']))}) | `{attrs['table_sha256']}` |",
            f"| NUTS | {d.num_chains} chains × {d.num_draws} draws, seed {attrs.get('seed')}, "
            f"target_accept {attrs.get('target_accept')} |",
        ]
        if timings:
            lines.append(f"| time | warmup {timings['warmup_s']:.1f} s, sampling {timings['sampling_s']:.1f} s, "
                         f"{timings['mean_leapfrog_steps']:.0f} leapfrog steps per iteration, "
                         f"{timings['chain_method']} on {timings['device']} |")
        lines += [
            "", "## Diagnostics", "",
            f"Verdict: **{verdict(self).line()}**", "", *[f"- {r}" for r in verdict(self).reasons], "",
            block(d.table()), "",
            f"## Posterior ({ci_prob:.0%} equal-tailed intervals)", "",
            block(self.summary(ci_prob=ci_prob)), "",
        ]
        held, held_level = saved_holdout(self)
        if held is not None:
            lines += ["## Held-out runs (not fitted)", "",
                      f"Mean absolute error {held['error'].abs().mean():.4f} nats "
                      f"({held['rel_error'].abs().mean():.2%}); {int(held['inside'].sum())} of "
                      f"{len(held)} observed losses inside the {level_label(held_level)} interval of a new run.", "",
                      block(held), ""]
        lines += ["## Priors", "", block(prior_rows), ""]
        if self.warnings:
            lines += ["## Warnings", "", *[f"- {w}" for w in self.warnings], ""]
        lines += ["Load it with `bayesmoe.load(path)`; `bayesmoe summary path` prints the tables above.", ""]
        return "\n".join(lines)

    # ------------------------------------------------------------------ decisions
    def optimal_experts(self, budget, *, experts=None, ci_prob: float = DEFAULT_CI_PROB, group: str | None = None,
                        **budget_kwargs):
        """Posterior of the loss-minimising E, N_act, D under a budget: see :mod:`bayesmoe.optima`."""
        from bayesmoe.optima import DEFAULT_EXPERTS, optimal_experts

        return optimal_experts(self, budget, experts=DEFAULT_EXPERTS if experts is None else experts,
                               ci_prob=ci_prob, group=group, **budget_kwargs)

    def optimal_config(self, budget, *, experts: int | None = None, ci_prob: float = DEFAULT_CI_PROB,
                       group: str | None = None, **budget_kwargs):
        """Posterior of the compute-optimal N_act*, D*, loss* at a fixed E (dense by default)."""
        from bayesmoe.optima import optimal_config

        return optimal_config(self, budget, experts=experts, ci_prob=ci_prob, group=group, **budget_kwargs)

    def compare(self, config_a, config_b, *, ci_prob: float = DEFAULT_CI_PROB, group: str | None = None) -> dict:
        """P(config A has lower expected loss than B) and the interval of the difference."""
        from bayesmoe.optima import compare

        return compare(self, config_a, config_b, ci_prob=ci_prob, group=group)

    def flop_savings(self, budget, *, experts: int, ci_prob: float = DEFAULT_CI_PROB, group: str | None = None):
        """Compute saved by the optimal E-expert model over the optimal dense one at equal loss."""
        from bayesmoe.optima import flop_savings

        return flop_savings(self, budget, experts=experts, ci_prob=ci_prob, group=group)

    # ------------------------------------------------------------------ report
    def report(self, path: str | Path, budgets=None, *, ci_prob: float = DEFAULT_CI_PROB, **options) -> Path:
        """Write a self-contained HTML report (see :mod:`bayesmoe.report`) and return its path.

        ``budgets`` adds the answer card and the recommendations section; ``options``
        (``memory_gb``, ``context_tokens``, ``serve_tokens``, ``experts``, ``shape``) as for
        :func:`bayesmoe.report.render_report`.
        """
        from bayesmoe.report import write_report  # report imports plots and results: keep it lazy

        return write_report(self, path, budgets, ci_prob=ci_prob, **options)

    # ------------------------------------------------------------------ storage
    def save(self, path: str | Path) -> Path:
        """Write the result to netCDF (HDF5 via h5netcdf); no pickle."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tree = self.tree.copy()
        tree.attrs["warnings"] = json.dumps(self.warnings)
        tree.attrs["diagnostics"] = json.dumps(self.diagnostics.to_dict())
        tree.to_netcdf(path, engine="h5netcdf")
        return path


def provenance_attrs(*, law: Law, priors: Mapping[str, Prior], design: Design, runs: pd.DataFrame,
                     hashed_columns: Sequence[str], pooled: Sequence[str], sampled: Sequence[str],
                     timings: Mapping, column_map: Mapping, extra: Mapping | None = None) -> dict:
    attrs = {
        "schema": SCHEMA_VERSION,
        "bayesmoe_version": __version__,
        "law": law.name,
        "law_description": law.description,
        "priors": spec_to_json(priors),
        "groups": json.dumps(list(design.groups)),
        "anchor": json.dumps(dict(design.anchor)),
        "log_loss_ref": design.log_loss_ref,
        "log_loss_min": design.log_loss_min,
        "pooled_sites": json.dumps(list(pooled)),
        "sampled_sites": json.dumps(list(sampled)),
        "table_columns": json.dumps(list(hashed_columns)),
        "table_sha256": table_hash(runs, hashed_columns),
        "timings": json.dumps(dict(timings)),
        "column_map": json.dumps(dict(column_map)),
        "warnings": "[]",
    }
    attrs.update(extra or {})
    return attrs


def load(path: str | Path) -> FitResult:
    """Read a result written by :meth:`FitResult.save`, checking schema, law and table hash."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such result file: {path}")
    try:
        tree = xr.open_datatree(path, engine="h5netcdf")
        tree.load()
        tree.close()
    except (OSError, ValueError) as err:
        raise LoadError(f"{path} is not a readable netCDF/HDF5 file: {err}") from None
    attrs = tree.attrs
    if attrs.get("schema") != SCHEMA_VERSION:
        raise LoadError(
            f"{path} has schema {attrs.get('schema')!r}, expected {SCHEMA_VERSION!r}: "
            "it was not written by this version of bayesmoe.FitResult.save"
        )
    missing = [g for g in _REQUIRED_GROUPS if g not in tree.children]
    if missing:
        raise LoadError(f"{path} lacks the groups {missing}; it is incomplete or not a bayesmoe fit")
    try:
        law = get_law(attrs["law"])
    except ValueError:
        raise LoadError(
            f"{path} was fitted with law {attrs['law']!r}, which is not registered in this session; "
            "call bayesmoe.laws.register_law(...) with the same law before loading"
        ) from None
    absent = [p for p in law.params if p not in tree["posterior"].data_vars]
    if absent:
        raise LoadError(f"{path}: the posterior lacks {absent} of law {law.name!r}")
    runs = _runs_from_tree(tree)
    columns = json.loads(attrs["table_columns"])
    if table_hash(runs, columns) != attrs["table_sha256"]:
        raise LoadError(
            f"{path}: the stored run table does not hash to the recorded table_sha256; "
            "the file was modified after saving, refusing to load it"
        )
    priors = spec_from_json(attrs["priors"])
    diag = None
    if "diagnostics" in attrs:
        raw = json.loads(attrs["diagnostics"])
        diag = Diagnostics(**raw)
    result = FitResult(tree, law, priors, diag)
    for w in result.warnings:
        warnings.warn(f"{path}: {w}", ConvergenceWarning, stacklevel=2)
    return result
