"""FitResult: the posterior of one fit, with provenance, summaries, predictions and storage.

Files are netCDF4 (HDF5) written by xarray's DataTree with the ``h5netcdf`` engine: no pickle is
ever written or read. The root ``attrs`` carry the provenance (package version, law, prior spec
as JSON, the data's reference points, a SHA-256 of the validated table, the versions of the
numerical stack); :meth:`FitResult.save` adds a SHA-256 over every group's arrays and every
provenance attribute (``content_sha256``). :func:`load` refuses a file in which any of them no
longer hashes to the recorded value, naming what changed, and recomputes the diagnostics from
the stored draws rather than trusting the stored summary.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from bayesmoe import __version__
from bayesmoe import noise as run_noise
from bayesmoe.data import design_notes, table_hash, validate_runs
from bayesmoe.discrepancy import Discrepancy
from bayesmoe.discrepancy import none as no_discrepancy
from bayesmoe.errors import ConvergenceWarning, LoadError
from bayesmoe.inference import (Diagnostics, convergence_message, diagnose, starts_phrase, summary_table,
                                timing_line)
from bayesmoe.intervals import DEFAULT_CI_PROB, level_label
from bayesmoe.laws import Law, get_law
from bayesmoe.models import (Design, coordinate, describe_site, latent_sites, make_design,
                             params_from_latents)
from bayesmoe.priors import Prior, site_of, spec_from_json, spec_to_json, tau_site
from bayesmoe.priors import sites as prior_sites  # results.sites would read as run sites
from bayesmoe.verdict import saved_holdout, verdict

__all__ = ["FitResult", "load", "SCHEMA_VERSION", "content_parts", "environment_versions"]

#: 2: a content hash over every group and provenance attribute (1 hashed the run table only)
SCHEMA_VERSION = "bayesmoe-fit/2"
#: Central intervals of a new run that hold-out tables score.
HOLDOUT_LEVELS = (0.5, 0.9)
_REQUIRED_GROUPS = ("posterior", "sample_stats", "observed_data", "constant_data")
#: root attributes that hold the content hash itself, so are not part of it
_HASH_ATTRS = ("content_sha256", "content_parts")
#: distributions whose versions decide the draws (same seed, data, versions and CPU: same draws)
_VERSIONED = ("jax", "jaxlib", "numpyro", "arviz-base", "arviz-stats", "numpy", "xarray", "pandas",
              "scipy", "h5netcdf")


def _cpu() -> str:
    """The CPU model and the vector instructions XLA compiles for: on CPU, XLA generates code
    for the host's instruction set, so the same seed, data and versions can give different
    floating-point results, and so different draws, on another CPU (seen: a chinchilla fit's
    R-hat 1.011 on one host where another's run of the same test passed)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), platform.machine())
    flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
    vector = [f for f in ("avx2", "fma", "avx512f") if f in flags]
    return f"{model} ({', '.join(vector) or 'no AVX2/FMA/AVX-512'})"


def environment_versions() -> dict[str, str]:
    """Python, platform and the versions of every package a fit's draws depend on."""
    from importlib import metadata

    out = {"bayesmoe": __version__, "python": platform.python_version(), "platform": platform.platform(),
           "cpu": _cpu()}
    for dist in _VERSIONED:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _canonical_attr(value) -> str:
    """An attribute as text that survives the netCDF round trip (numpy scalars come back)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _array_digest(values: np.ndarray) -> str:
    values = np.asarray(values)
    h = hashlib.sha256(f"{values.shape}".encode())
    if values.dtype.kind in "biuf":
        # bool is stored as int8 by netCDF; little-endian bytes of the dtype the file returns
        canon = values.astype("u1") if values.dtype.kind == "b" else values
        h.update(f"{canon.dtype.kind}{canon.dtype.itemsize}".encode())
        h.update(np.ascontiguousarray(canon, dtype=canon.dtype.newbyteorder("<")).tobytes())
    else:  # labels (str / object): their text
        h.update("\x1f".join(map(str, values.ravel())).encode())
    return h.hexdigest()


def content_parts(tree: xr.DataTree) -> dict[str, str]:
    """SHA-256 of every array (``group/variable``, coordinates included), every group attribute
    (``group/.attrs/name``) and every root attribute (``attrs/name``) but the hash's own."""
    parts = {}
    for node in tree.subtree:
        if node is tree:
            continue
        group = node.path.strip("/")
        ds = node.to_dataset()
        for name in sorted(map(str, ds.variables)):
            parts[f"{group}/{name}"] = _array_digest(ds[name].values)
        for name in sorted(map(str, node.attrs)):
            parts[f"{group}/.attrs/{name}"] = hashlib.sha256(
                _canonical_attr(node.attrs[name]).encode()).hexdigest()
    for name in sorted(map(str, tree.attrs)):
        if name not in _HASH_ATTRS:
            parts[f"attrs/{name}"] = hashlib.sha256(_canonical_attr(tree.attrs[name]).encode()).hexdigest()
    return dict(sorted(parts.items()))


def _content_hash(parts: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(dict(sorted(parts.items()))).encode()).hexdigest()


def _what_changed(recorded: Mapping[str, str], found: Mapping[str, str]) -> str:
    """``group 'posterior' (alpha); attribute 'priors'``: the parts whose hashes differ."""
    changed = [k for k in found if k in recorded and recorded[k] != found[k]]
    added = [k for k in found if k not in recorded]
    removed = [k for k in recorded if k not in found]
    out = []
    for label, keys in (("changed", changed), ("added", added), ("removed", removed)):
        by_place: dict[str, list[str]] = {}
        for key in keys:
            place, _, name = key.partition("/")
            by_place.setdefault(place, []).append(name)
        for place, names in by_place.items():
            if place == "attrs":
                out.append(f"{label}: attribute{'s' * (len(names) > 1)} " + ", ".join(map(repr, names)))
            else:
                out.append(f"{label}: group {place!r} ({', '.join(names)})")
    return "; ".join(out) or "the recorded list of hashes itself"


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
        self.diagnostics = diagnostics or diagnose(tree, self.sampled_sites, describe=self.describe_site)
        self.warnings: list[str] = json.loads(attrs.get("warnings", "[]"))

    # ------------------------------------------------------------------ views
    def describe_site(self, site: str) -> str:
        """A sampled site in the law's words (``omega_centred_z`` -> "ω (groups' offsets)")."""
        return describe_site(self.law, site)

    @property
    def failed(self) -> bool:
        """Whether the fit failed its convergence checks (kept by ``on_bad_fit="warn"``, or the
        ``result`` of a :class:`ConvergenceError`)."""
        return not self.diagnostics.ok

    def convergence_message(self, style: str = "python") -> str | None:
        """What failed and what to try, as Python keywords (``"python"``) or CLI flags
        (``"cli"``); ``None`` for a fit that passed its checks."""
        if self.diagnostics.ok:
            return None
        attrs = self.tree.attrs
        d = self.diagnostics
        # the draws it ended with: sampling may have been extended past num_samples
        settings = {"num_warmup": attrs.get("num_warmup", 1000), "num_samples": d.num_draws,
                    "target_accept": attrs.get("target_accept", 0.8)}
        free = [s for s, p in self.priors.items() if not p.is_fixed]
        # offsets it could centre (those with group offsets), unless it already did
        law, pooled = self.law, set(self.pooled)
        centre = [law.irreducible] if site_of(law, law.irreducible) in pooled else []
        centre += [s for s in law.scales if site_of(law, s) in pooled][:1]  # one offset for every level
        if self.centred_spreads or not centre:
            centre = None
        return convergence_message(d, self.law.name, settings=settings, n_groups=len(self.groups),
                                   free_sites=free, style=style, centre=centre)

    @property
    def hierarchical(self) -> bool:
        return len(self.groups) > 1

    @property
    def centred_spreads(self) -> tuple[str, ...]:
        """The spreads whose groups' offsets were sampled half-centred (``fit(..., centre=...)``)."""
        return tuple(json.loads(self.tree.attrs.get("centred_spreads", "[]") or "[]"))

    def group_offsets(self) -> str | None:
        """How the groups' offsets were sampled, in the law's words (``None`` for one group)."""
        if not self.hierarchical:
            return None
        if not self.centred_spreads:
            return "non-centred (τ · z), the default"
        names = "; ".join(describe_site(self.law, s).removesuffix(" (spread across groups)")
                          for s in self.centred_spreads)
        return f"half-centred for {names} (centre=...); the others non-centred (τ · z)"

    @property
    def sampled_sites(self) -> list[str]:
        post = self.tree["posterior"]
        return [v for v in post.data_vars if v in json.loads(self.tree.attrs["sampled_sites"])]

    @property
    def param_names(self) -> list[str]:
        """Law parameters plus noise and, for several groups, population values and spreads."""
        names = [*self.law.params, "sigma", "nu"]
        if run_noise.TREND in self.tree["posterior"].data_vars:
            names.append(run_noise.TREND)
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

    @functools.cached_property
    def discrepancy(self) -> Discrepancy:
        """The extrapolation-error term (:mod:`bayesmoe.discrepancy`); τ = 0 for files saved
        before it existed."""
        if "discrepancy" in self.tree.attrs:
            return Discrepancy.from_json(self.tree.attrs["discrepancy"])
        return no_discrepancy(self.law, self.runs)

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

    @property
    def _log_loss_jit(self):
        # one compiled program per input shape, instead of ~30 op-by-op compilations per call
        # (JAX_LOG_COMPILES=1: a predict on new inputs compiled 31 programs eagerly, 1 jitted)
        if "_log_loss_fn" not in self.__dict__:
            self.__dict__["_log_loss_fn"] = jax.jit(self.law.log_loss)
        return self.__dict__["_log_loss_fn"]

    def predict(self, runs: pd.DataFrame, *, group: str | None = None, kind: str = "mean",
                seed: int = 0, discrepancy: bool = True) -> xr.DataArray:
        """Posterior-predictive loss for new runs, dims ``(chain, draw, run)``.

        Parameters
        ----------
        runs : pandas.DataFrame
            Inputs the law needs (``loss`` is not needed; aliases accepted).
        group : str, optional
            A group of the fit. ``None``: the only group of a one-group fit, or a new, unseen
            setup of a hierarchical fit (pooled parameters drawn from their population).
        kind : {"mean", "new_run"}
            ``"mean"``: the law's expected loss. ``"new_run"``: what one more training run would
            score: the law, plus its extrapolation error δ beyond the fitted runs
            (:attr:`discrepancy`), plus the fitted Student-t noise.
        seed : int
            Seeds the draws of a new setup, of δ and of the run noise.
        discrepancy : bool
            ``False`` leaves δ out of ``kind="new_run"``: the law-only band (parameter
            uncertainty and noise), calibrated only inside the fitted range.

        Returns
        -------
        xarray.DataArray
            ``loss`` (nats/token) with dims ``(chain, draw, run)``; ``run`` is labelled by the
            table's index and carries the law's inputs (e.g. ``n_active``, ``tokens``,
            ``experts``) as coordinates. Repeated inputs are predicted once per row.
        """
        if kind not in ("mean", "new_run"):
            raise ValueError(f"kind must be 'mean' or 'new_run', got {kind!r}")
        table = runs.copy()
        if "loss" not in table.columns:
            table["loss"] = 1.0  # placeholder so the shared validator runs; never used
        # repeated inputs (seed replicates, a grid with repeats) are fine to predict
        table = validate_runs(table, required=self.law.inputs, unit_checks=False, duplicates="allow")
        if group is None and not self.hierarchical:
            group = self.groups[0]
        params = self._group_params(group) if group is not None else self._new_setup_params(seed)
        x = {k: jnp.asarray(table[k].to_numpy(dtype="float64")) for k in self.law.inputs}
        # (chain, draw) -> (chain, draw, 1) so the runs broadcast last
        p3 = {k: jnp.asarray(v)[..., None] for k, v in params.items()}
        mean = np.asarray(self._log_loss_jit(p3, x))
        if kind == "new_run":
            post = self.tree["posterior"]
            sigma = run_noise.run_scale(post["sigma"].values, run_noise.posterior_trend(post), self.runs, table,
                                        self.anchor)
            nu = post["nu"].values[..., None]
            # NumPy's Student-t takes each draw's ν elementwise and compiles nothing (jax.random.t
            # compiled a 2.5 s program for every new input shape)
            t = np.random.default_rng([seed, 1]).standard_t(np.broadcast_to(nu, mean.shape))
            mean = mean + sigma * t
            if discrepancy:
                mean = mean + self.discrepancy.delta(self.law, table, mean.shape[:2], group=group, seed=seed)
        coords = {"chain": self.tree["posterior"]["chain"].values,
                  "draw": self.tree["posterior"]["draw"].values, "run": table.index.values}
        coords.update({k: ("run", table[k].to_numpy(dtype="float64")) for k in self.law.inputs})
        out = xr.DataArray(np.exp(mean), dims=("chain", "draw", "run"), coords=coords, name="loss")
        out.attrs = {"units": "nats/token", "kind": kind, "law": self.law.name,
                     "group": "(new setup)" if group is None else str(group)}
        return out

    def holdout_table(self, runs: pd.DataFrame, *, group: str | None = None, ci_prob: float = DEFAULT_CI_PROB,
                      levels: Sequence[float] | None = None, seed: int = 0) -> pd.DataFrame:
        """Predict runs the fit did not see and score them against their observed ``loss``.

        The one hold-out scorer (:func:`bayesmoe.validation.extrapolation_holdout` uses it too).
        One row per run: the law's inputs, the observed ``loss``, ``predicted`` (posterior median
        of the law's expected loss), ``error`` (predicted − observed, nats), ``abs_error``,
        ``rel_error``, ``distance`` (decades beyond the fitted runs, the discrepancy's
        Euclidean distance), and per level ℓ in ``levels`` (percent k): the central interval of
        a new run ``lo<k>``/``hi<k>`` and whether the observed loss lies inside it, ``in<k>``,
        with the law's extrapolation error included, and ``in<k>_law`` for the law-only band
        (``predict(..., discrepancy=False)``). ``levels`` defaults to 50 % and ``ci_prob``;
        ``inside`` repeats ``in<k>`` at ``ci_prob``. Repeated inputs (seed replicates) are fine.
        """
        levels = sorted({*HOLDOUT_LEVELS[:1], ci_prob}) if levels is None else list(levels)
        if ci_prob not in levels:
            levels.append(ci_prob)
        # held-out seed replicates share their inputs: fine to score
        table = validate_runs(runs, required=self.law.inputs + ("loss",), unit_checks=False, duplicates="allow")
        x = table[list(self.law.inputs)]
        mean = self.predict(x, group=group, kind="mean", seed=seed)
        new = self.predict(x, group=group, kind="new_run", seed=seed)
        law_only = self.predict(x, group=group, kind="new_run", seed=seed, discrepancy=False)
        out = table[list(self.law.inputs) + ["loss"]].copy()
        out["predicted"] = mean.median(dim=("chain", "draw")).values
        out["error"] = out["predicted"] - out["loss"]
        out["abs_error"] = out["error"].abs()
        out["rel_error"] = out["error"] / out["loss"]
        out["distance"] = np.linalg.norm(self.discrepancy.distance(self.law, table, group), axis=-1)
        for level in levels:
            k = int(round(level * 100))
            q = ((1 - level) / 2, (1 + level) / 2)
            lo, hi = (new.quantile(v, dim=("chain", "draw")).values for v in q)
            out[f"lo{k}"], out[f"hi{k}"] = lo, hi
            out[f"in{k}"] = (out["loss"] >= lo) & (out["loss"] <= hi)
            lo, hi = (law_only.quantile(v, dim=("chain", "draw")).values for v in q)
            out[f"in{k}_law"] = (out["loss"] >= lo) & (out["loss"] <= hi)
            out[f"width{k}_law"] = hi - lo
        out["inside"] = out[f"in{int(round(ci_prob * 100))}"]
        return out

    def to_dict(self, ci_prob: float = DEFAULT_CI_PROB) -> dict:
        """What ``bayesmoe summary`` prints, as plain data (``bayesmoe summary --json``): the
        verdict and its reasons, the diagnostics, the posterior summary at ``ci_prob``, the
        extrapolation-error term, every fitted run beyond the fitted noise
        (:func:`bayesmoe.noise.outlying_runs`) and the furthest run, the held-out runs saved with
        the fit, the priors and how the fit was made. Built on the same helpers as the text, so
        the two never disagree."""
        attrs = self.tree.attrs
        held, held_level = saved_holdout(self)
        res = run_noise.run_residuals(self)
        v = verdict(self, held, held_level, residuals=res)
        far = run_noise.outlying(res, run_noise.OUTLIER_LEVEL)
        furthest = res["z"].abs().idxmax()
        disc = self.discrepancy.summary()
        used = set(prior_sites(self.law, hierarchical=self.hierarchical, pooled=tuple(self.pooled) or None))

        def records(df: pd.DataFrame, index: str) -> list[dict]:
            return json.loads(df.rename_axis(index).reset_index().to_json(orient="records"))

        return {
            "law": self.law.name, "description": self.law.description,
            "bayesmoe_version": attrs.get("bayesmoe_version"), "command": attrs.get("command"),
            "runs": int(self.tree["observed_data"].sizes["run"]), "groups": list(self.groups),
            "pooled": list(self.pooled), "loss_unit_given": attrs.get("loss_unit", "nats"),
            "table_sha256": attrs.get("table_sha256"),
            "sampler": {"num_chains": self.diagnostics.num_chains, "num_draws": self.diagnostics.num_draws,
                        "seed": attrs.get("seed"), "target_accept": attrs.get("target_accept"),
                        "start_candidates": int(attrs.get("start_candidates", 1)),
                        "timings": json.loads(attrs.get("timings", "{}"))},
            "verdict": {"level": v.level, "headline": v.headline, "reasons": list(v.reasons)},
            "diagnostics": {**self.diagnostics.to_dict(), "divergence_sites": dict(self.diagnostics.divergence_sites),
                            "failed": self.failed},
            "ci_prob": ci_prob,
            "posterior": records(self.summary(ci_prob=ci_prob), "parameter"),
            # the shipped prior's per-table provenance is the package's, not this fit's
            "extrapolation_error": {**disc, "prior": {k: v for k, v in disc["prior"].items() if k != "per_table"}},
            "outlier_level": run_noise.OUTLIER_LEVEL,
            "runs_beyond_noise": records(far, "run"),
            "furthest_run": {"run": furthest.item() if hasattr(furthest, "item") else furthest,
                             "z": float(res.loc[furthest, "z"]), "p_tail": float(res.loc[furthest, "p_tail"])},
            "held_out": None if held is None else {"ci_prob": held_level, "runs": records(held, "run")},
            # the sampled sites' priors, as the text summary prints them
            "priors": {k: {"distribution": p.dist, "arguments": {a: float(b) for a, b in p.args.items()}}
                       for k, p in sorted(self.priors.items()) if k in used},
            "notes": json.loads(attrs.get("table_notes", "[]") or "[]"),
            "design_notes": design_notes(self.runs, self.law.inputs),
        }

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
        versions = json.loads(attrs.get("versions", "{}"))
        lines = [f"# Model card: {self.law.name} law", ""]
        if self.failed:
            lines += ["**FAILED: this fit did not pass its convergence checks; its draws are not a "
                      "trustworthy posterior.** " + "; ".join(d.problems), ""]
        lines += [
            f"{self.law.description}",
            "",
            "| | |", "|---|---|",
            f"| command | `{attrs.get('command', '(fitted from Python)')}` |",
            f"| bayesmoe version | {attrs.get('bayesmoe_version')} |",
            f"| runs fitted | {self.tree['observed_data'].sizes['run']} |",
            f"| groups | {', '.join(self.groups)} |",
            f"| pooled sites | {', '.join(self.pooled) or '(one group: none)'} |",
            *([f"| groups' offsets | {self.group_offsets()} |"] if self.hierarchical else []),
            f"| table SHA-256 ({', '.join(json.loads(attrs['table_columns']))}) | `{attrs['table_sha256']}` |",
            f"| NUTS | {d.num_chains} chains × {d.num_draws} draws, seed {attrs.get('seed')}, "
            f"target_accept {attrs.get('target_accept')}{starts_phrase(attrs)} |",
            "| versions | " + (", ".join(f"{k} {v}" for k, v in versions.items()) or "(not recorded)") + " |",
        ]
        disc = self.discrepancy.summary()
        if disc["source"] == "none":
            lines.append("| extrapolation error | none: law-only intervals (calibrated inside the fitted runs only) |")
        else:
            backed = (f", {disc['backtest_predictions']} backtest predictions at {disc['backtest_cuts']} cuts"
                      if "backtest_predictions" in disc else "")
            lines.append(f"| extrapolation error | grows {disc['tau_median']:.3g} ln-loss per decade beyond the "
                         f"fitted runs (90 %: {disc['tau_lo90']:.3g}-{disc['tau_hi90']:.3g}; {disc['source']}{backed}"
                         + (f"; no backtests: {disc['note']}" if "note" in disc else "") + ") |")
        if timings:
            lines.append(f"| time | {timing_line(timings)} |")
        notes = json.loads(attrs.get("table_notes", "[]") or "[]") + design_notes(self.runs, self.law.inputs)
        if notes:
            lines += ["", "## Notes", "", *[f"- {n}" for n in notes]]
        held, held_level = saved_holdout(self)
        res = run_noise.run_residuals(self)
        v = verdict(self, held, held_level, residuals=res)
        lines += [
            "", "## Diagnostics", "",
            f"Verdict: **{v.line()}**", "", *[f"- {r}" for r in v.reasons], "",
            block(d.table()), "",
            f"## Posterior ({ci_prob:.0%} equal-tailed intervals)", "",
            block(self.summary(ci_prob=ci_prob)), "",
        ]
        if held is not None:
            lines += ["## Held-out runs (not fitted)", "",
                      f"Mean absolute error {held['error'].abs().mean():.4f} nats "
                      f"({held['rel_error'].abs().mean():.2%}); {int(held['inside'].sum())} of "
                      f"{len(held)} observed losses inside the {level_label(held_level)} interval of a new run "
                      "(extrapolation error included).", "",
                      block(held), ""]
        lines += ["## Runs the law fits worst", "", run_noise.worst_runs_sentence(res), "",
                  block(run_noise.residual_rows(run_noise.worst_runs(res), len(self.groups))), ""]
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
        # for readers of the file; load recomputes the diagnostics from the draws
        tree.attrs["diagnostics"] = json.dumps(self.diagnostics.to_dict())
        tree.attrs["convergence"] = "failed" if self.failed else "ok"
        tree.attrs["schema"] = SCHEMA_VERSION
        parts = content_parts(tree)
        tree.attrs["content_parts"] = json.dumps(parts)
        tree.attrs["content_sha256"] = _content_hash(parts)
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
        "versions": json.dumps(environment_versions()),
    }
    attrs.update(extra or {})
    return attrs


def load(path: str | Path) -> FitResult:
    """Read a result written by :meth:`FitResult.save`.

    Checks the schema, the law, and that every group's arrays and every provenance attribute
    still hash to the recorded ``content_sha256`` (refusing the file and naming what changed if
    not); the diagnostics are recomputed from the stored draws. A fit that failed its convergence
    checks loads with a :class:`ConvergenceWarning`.
    """
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
    if attrs.get("schema") == "bayesmoe-fit/1":
        raise LoadError(
            f"{path} was saved by an older bayesmoe (schema 'bayesmoe-fit/1'), whose files hashed only "
            "the run table; re-save it once with models/resave_schema1.py, or refit it"
        )
    if attrs.get("schema") != SCHEMA_VERSION:
        raise LoadError(
            f"{path} has schema {attrs.get('schema')!r}, expected {SCHEMA_VERSION!r}: "
            "it was not written by this version of bayesmoe.FitResult.save"
        )
    if "content_sha256" not in attrs or "content_parts" not in attrs:
        raise LoadError(f"{path} has no content hash; refusing a file whose draws cannot be checked")
    try:
        recorded = json.loads(attrs["content_parts"])
    except (TypeError, ValueError):
        recorded = {}
    found = content_parts(tree)
    if _content_hash(recorded) != attrs["content_sha256"] or found != recorded:
        raise LoadError(
            f"{path}: the contents do not hash to the recorded content_sha256 ("
            f"{_what_changed(recorded, found) if found != recorded else 'the recorded list of hashes itself'}"
            "); the file was modified after saving, refusing to load it"
        )
    _check_contents(path, tree)
    return _from_checked_tree(path, tree)


def _check_contents(path: Path, tree: xr.DataTree) -> Law:
    """Groups, law, parameters and run-table hash of a tree read from ``path``."""
    attrs = tree.attrs
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
    return law


def _from_checked_tree(path: Path, tree: xr.DataTree) -> FitResult:
    law = get_law(tree.attrs["law"])
    priors = spec_from_json(tree.attrs["priors"])
    result = FitResult(tree, law, priors)  # diagnostics recomputed from the draws, never read back
    if result.failed:
        warnings.warn(
            f"{path}: this fit failed its convergence checks ({'; '.join(result.diagnostics.problems)}); "
            "its draws are not a trustworthy posterior", ConvergenceWarning, stacklevel=3)
    return result
