"""Prior specifications: every default in one place, overridable per site, JSON-serialisable.

Sites (the names a prior is given for)
--------------------------------------
For a law with shape parameters (exponents, E_start, ...), scales (a, b, ...) and an irreducible
loss (c or e):

``<shape>``            e.g. ``alpha``: the parameter itself, in the paper's sign convention.
``<scale>_level``      e.g. ``a_level``: ln(term at the data's centre / median observed loss).
                       The data's centre is the geometric mean of each input. Scales depend on
                       the tokenizer, data and loss unit, so they are never centred on a paper's
                       value (LAWS.md, Conventions §10); a term worth ~20 % of the loss at the
                       centre has level ln 0.2 ≈ −1.6.
``<irreducible>_rel``  e.g. ``c_rel``: ln(irreducible loss / smallest observed loss).
``sigma``              scale of the Student-t noise on ln(loss).
``nu``                 its degrees of freedom (fixed at 4 by default: heavy tails, the Bayesian
                       counterpart of the field's Huber loss).
``sigma_trend``        η, the trend of ln σ per decade of compute, for laws that read N and D:
                       σ_i = σ·exp(η·(log10 6·N_i·D_i − its mean over the runs))
                       (:mod:`bayesmoe.noise`). N(0, 0.5) by default since session 21;
                       ``{"sigma_trend": 0}`` removes the site: one σ for every run, the model
                       before it, with the same priors, compiled programs and draws.
``<site>_tau``         for a hierarchical fit (several groups): spread of the group-level values
                       of a pooled site around its population value, e.g. ``alpha_tau``.
``level_tau``          the same for the scale levels, which share one offset per group (a
                       setup's reducible loss moves as a whole; see :mod:`bayesmoe.models`).

Two families: ``"literature"`` (exponents centred on the published fits, with widths that cover
the spread across papers, LAWS.md §10) and ``"weak"``. Fix a parameter with
``Prior.fixed(value)`` or a bare number, e.g. ``{"e_start": 2.0732, "e_max": 290.4521}``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpyro.distributions as dist

from bayesmoe.errors import PriorError
from bayesmoe.laws import PUBLISHED, Law, get_law
from bayesmoe.noise import INPUTS as TREND_INPUTS
from bayesmoe.noise import TREND

__all__ = ["Prior", "PriorSpec", "default_priors", "resolve_priors", "sites", "FAMILIES"]

FAMILIES = ("literature", "weak")

_DISTS: dict[str, tuple[str, ...]] = {
    "normal": ("loc", "scale"),
    "lognormal": ("loc", "scale"),
    "halfnormal": ("scale",),
    "truncnormal": ("loc", "scale", "low", "high"),
    "uniform": ("low", "high"),
    "gamma": ("concentration", "rate"),
    "logbeta": ("concentration1", "concentration0"),
    "fixed": ("value",),
}


@dataclass(frozen=True)
class Prior:
    """A named distribution with numeric arguments; ``fixed`` pins a value."""

    dist: str
    args: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self):
        if self.dist not in _DISTS:
            raise PriorError(f"unknown prior distribution {self.dist!r}; use one of {sorted(_DISTS)}")
        want = set(_DISTS[self.dist])
        if set(self.args) != want:
            raise PriorError(f"{self.dist} prior takes {sorted(want)}, got {sorted(self.args)}")
        for k, v in self.args.items():
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise PriorError(f"{self.dist} prior argument {k}={v!r} must be a finite number")
        positive = {"scale", "concentration", "rate", "concentration1", "concentration0"} & set(self.args)
        for k in positive:
            if self.args[k] <= 0:
                raise PriorError(f"{self.dist} prior argument {k} must be > 0, got {self.args[k]}")
        lo, hi = self.args.get("low"), self.args.get("high")
        if lo is not None and hi is not None and not lo < hi:
            raise PriorError(f"{self.dist} prior needs low < high, got {lo} and {hi}")

    # constructors -----------------------------------------------------------------------
    @classmethod
    def normal(cls, loc: float, scale: float) -> Prior:
        return cls("normal", {"loc": loc, "scale": scale})

    @classmethod
    def lognormal(cls, loc: float, scale: float) -> Prior:
        """ln X ~ Normal(loc, scale)."""
        return cls("lognormal", {"loc": loc, "scale": scale})

    @classmethod
    def logbeta(cls, concentration1: float, concentration0: float) -> Prior:
        """ln X with X ~ Beta(concentration1, concentration0): a fraction, on the log scale."""
        return cls("logbeta", {"concentration1": concentration1, "concentration0": concentration0})

    @classmethod
    def halfnormal(cls, scale: float) -> Prior:
        return cls("halfnormal", {"scale": scale})

    @classmethod
    def fixed(cls, value: float) -> Prior:
        return cls("fixed", {"value": float(value)})

    @property
    def is_fixed(self) -> bool:
        return self.dist == "fixed"

    def to_numpyro(self) -> dist.Distribution:
        a = self.args
        match self.dist:
            case "normal":
                return dist.Normal(a["loc"], a["scale"])
            case "lognormal":
                return dist.LogNormal(a["loc"], a["scale"])
            case "halfnormal":
                return dist.HalfNormal(a["scale"])
            case "truncnormal":
                return dist.TruncatedNormal(a["loc"], a["scale"], low=a["low"], high=a["high"])
            case "uniform":
                return dist.Uniform(a["low"], a["high"])
            case "gamma":
                return dist.Gamma(a["concentration"], a["rate"])
            case "logbeta":
                return LogBeta(a["concentration1"], a["concentration0"])
        raise PriorError(f"a fixed prior has no distribution (value {a['value']})")

    def to_dict(self) -> dict[str, Any]:
        return {"dist": self.dist, **{k: float(v) for k, v in self.args.items()}}

    @classmethod
    def from_any(cls, value: Prior | Mapping | float | int, *, site: str = "?") -> Prior:
        """Accept a Prior, ``{"dist": ..., **args}``, or a number (a fixed value)."""
        if isinstance(value, Prior):
            return value
        if isinstance(value, bool):
            raise PriorError(f"prior for {site!r} must be a Prior, a dict or a number, got {value!r}")
        if isinstance(value, (int, float)):
            return cls.fixed(float(value))
        if isinstance(value, Mapping):
            d = dict(value)
            if "dist" not in d:
                raise PriorError(f"prior for {site!r} needs a 'dist' key, got {d}")
            name = d.pop("dist")
            try:
                return cls(name, d)
            except PriorError as err:
                raise PriorError(f"prior for {site!r}: {err}") from None
        raise PriorError(f"prior for {site!r} must be a Prior, a dict or a number, got {value!r}")


class LogBeta(dist.TransformedDistribution):
    """ln X for X ~ Beta: support (−∞, 0). NumPyro's log transform would declare the real line,
    so the model could not tell an impossible value (X > 1) from a possible one."""

    support = dist.constraints.less_than(0.0)

    def __init__(self, concentration1, concentration0, *, validate_args=None):
        self.concentration1, self.concentration0 = concentration1, concentration0
        super().__init__(dist.Beta(concentration1, concentration0),
                         dist.transforms.ExpTransform().inv, validate_args=validate_args)


PriorSpec = dict[str, Prior]
_N, _LN, _HN = Prior.normal, Prior.lognormal, Prior.halfnormal


def _TN(loc: float, scale: float, low: float, high: float) -> Prior:
    return Prior("truncnormal", {"loc": loc, "scale": scale, "low": low, "high": high})

# Shared defaults for the sites every law has -------------------------------------------------
_LEVEL = {"literature": _N(-1.5, 1.0), "weak": _N(-1.5, 2.0)}
# c_rel = ln(c / L_min), L_min the table's smallest loss (LAWS.md §10: never centre c on a paper's
# value; state it relative to the table). Published fits put c/L_min at 0.17 (Krajewski, C4;
# c_rel -1.76), 0.63 (joint law, FineWeb-Edu; -0.47) and 0.88 (Chinchilla on Epoch's runs; -0.13):
# N(-1.0, 0.7) has both ends within 1.2 sd and 8 % mass above 0 (c above every observed loss).
# The former N(-0.5, 0.5) put Krajewski's value 2.5 sd out (0.6 % mass below it) and 16 % above
# 0; it pulled the fine_grained c up on the recovery tables (medians 0.85-1.28, truth 0.47).
_REL = {"literature": _N(-1.0, 0.7), "weak": _N(-1.0, 1.4)}
_NOISE = {"sigma": _HN(0.1), "nu": Prior.fixed(4.0)}
# η, the trend of ln σ per decade of compute (bayesmoe.noise), for laws that read N and D. The
# 12 real tables' residuals moved by −1.01 to +0.11 per decade (docs/validation/residual_scale.py):
# N(0, 0.5) holds them all within about 2 sd, centred on no trend.
_TREND = _N(0.0, 0.5)
# Group spreads: exponents move by a few hundredths between setups (LAWS.md §10), levels and the
# irreducible loss by more (tokenizer, data).
_TAU_LEVEL, _TAU_REL = _HN(0.5), _HN(0.1)

_J = PUBLISHED["joint"]["ludziejewski2025"]
_K = PUBLISHED["fine_grained"]["krajewski2024"]
_H = PUBLISHED["chinchilla"]["hoffmann2022_unrounded"]

#: Shape-parameter priors per law and family; scales, irreducible and noise come from above.
_SHAPE: dict[str, dict[str, dict[str, Prior]]] = {
    "joint": {
        # Centred on Table 3; N and D exponent widths 0.1 cover magnitudes 0.115-0.37 seen across
        # papers (LAWS.md §10). E_start/E_max: fitted on one setup, so a prior, not a constant.
        "literature": dict(
            alpha=_N(_J["alpha"], 0.1), beta=_N(_J["beta"], 0.1),
            gamma=_N(_J["gamma"], 0.03), zeta=_N(_J["zeta"], 0.03),
            delta=_N(_J["delta"], 0.3), omega=_N(_J["omega"], 0.3),
            e_start=_LN(math.log(_J["e_start"]), 0.3), e_max=_LN(math.log(_J["e_max"]), 0.7),
        ),
        "weak": dict(
            alpha=_N(-0.3, 0.5), beta=_N(-0.3, 0.5), gamma=_N(0.0, 0.1), zeta=_N(0.0, 0.1),
            delta=_N(0.0, 1.0), omega=_N(0.0, 1.0),
            e_start=_LN(math.log(2.0), 0.7), e_max=_LN(math.log(300.0), 1.5),
        ),
    },
    "fine_grained": {
        "literature": dict(alpha=_N(_K["alpha"], 0.1), beta=_N(_K["beta"], 0.1), gamma=_N(_K["gamma"], 0.3)),
        "weak": dict(alpha=_N(0.3, 0.5), beta=_N(0.3, 0.5), gamma=_N(0.5, 1.0)),
    },
    "chinchilla": {
        # Hoffmann's original (unrounded) fit; Besiroglu's refit sits inside these widths.
        "literature": dict(alpha=_N(_H["alpha"], 0.1), beta=_N(_H["beta"], 0.1)),
        "weak": dict(alpha=_N(0.3, 0.5), beta=_N(0.3, 0.5)),
    },
    "sparsity": {
        # No published coefficients (LAWS.md §3.2): exponent magnitudes from the spread across
        # papers; δ, γ of the interaction term only weakly located. λ < 0 is the paper's own
        # statement, and it is a constraint here: at γ = 0 the terms c/(1−S)^λ and
        # d/((1−S)^δ·N^γ) are interchangeable, and without the sign the posterior holds the
        # swapped copy (λ ≈ +0.3, δ ≈ −0.4, γ < 0; seen with the weak family on the test data).
        # α, β > 0: a/N^α and b/D^β are the dense (Chinchilla-form) terms, positive magnitudes.
        "literature": dict(
            alpha=_TN(0.3, 0.15, 0.0, 3.0), beta=_TN(0.3, 0.15, 0.0, 3.0), gamma=_N(0.1, 0.2),
            delta=_N(0.0, 0.5), **{"lambda": _TN(-0.3, 0.3, -3.0, 0.0)},
        ),
        "weak": dict(
            alpha=_TN(0.3, 0.5, 0.0, 3.0), beta=_TN(0.3, 0.5, 0.0, 3.0), gamma=_N(0.0, 0.5),
            delta=_N(0.0, 1.0), **{"lambda": _TN(0.0, 1.0, -5.0, 0.0)},
        ),
    },
}
_SHAPE_TAU = {
    "alpha": _HN(0.05), "beta": _HN(0.05), "gamma": _HN(0.01), "zeta": _HN(0.01),
    "delta": _HN(0.1), "omega": _HN(0.1), "lambda": _HN(0.1),
}
_DEFAULT_SHAPE_TAU = _HN(0.05)

# Priors registered for user laws: {law name: {family: {site: Prior}}}
_USER: dict[str, dict[str, PriorSpec]] = {}


def sites(law: Law | str, *, hierarchical: bool = False, pooled: tuple[str, ...] | None = None) -> list[str]:
    """The prior sites of a law (and the ``*_tau`` sites of a hierarchical fit)."""
    law = get_law(law)
    names = [*law.shape_params, *(f"{s}_level" for s in law.scales), f"{law.irreducible}_rel", "sigma", "nu"]
    if _has_compute(law):
        names.append(TREND)
    if hierarchical:
        for p in (law.pooled if pooled is None else pooled):
            if tau_site(site_of(law, p)) not in names:
                names.append(tau_site(site_of(law, p)))
    return names


LEVEL_TAU = "level_tau"


def tau_site(site: str) -> str:
    """Prior site of a pooled site's spread: one shared ``level_tau`` for every scale level."""
    return LEVEL_TAU if site.endswith("_level") else f"{site}_tau"


def site_of(law: Law, param: str) -> str:
    """Sampled site behind a law parameter: ``a`` -> ``a_level``, ``c`` -> ``c_rel``."""
    if param in law.scales:
        return f"{param}_level"
    if param == law.irreducible:
        return f"{param}_rel"
    if param in law.shape_params:
        return param
    raise PriorError(f"{param!r} is not a parameter of law {law.name!r}; parameters: {law.params}")


def default_priors(law: Law | str, family: str = "literature") -> PriorSpec:
    """Default prior per site (including every ``*_tau``) for a law and family."""
    law = get_law(law)
    if family not in FAMILIES:
        raise PriorError(f"unknown prior family {family!r}; use one of {FAMILIES}")
    if law.name in _USER:
        fams = _USER[law.name]
        if family not in fams:
            raise PriorError(f"law {law.name!r} was registered with prior families {sorted(fams)}, not "
                             f"{family!r}; pass priors='literature', or register a {family!r} family with "
                             "bayesmoe.register_law(law, priors={...})")
        return dict(fams[family])
    spec: PriorSpec = dict(_SHAPE[law.name][family])
    for s in law.scales:
        spec[f"{s}_level"] = _LEVEL[family]
    spec["level_tau"] = _TAU_LEVEL
    spec[f"{law.irreducible}_rel"] = _REL[family]
    spec[f"{law.irreducible}_rel_tau"] = _TAU_REL
    for p in law.shape_params:
        spec[f"{p}_tau"] = _SHAPE_TAU.get(p, _DEFAULT_SHAPE_TAU)
    spec.update(_NOISE)
    if _has_compute(law):
        spec[TREND] = _TREND
    return spec


def _has_compute(law: Law) -> bool:
    """Whether the law reads N and D, so that its noise can move with compute 6·N·D."""
    return set(TREND_INPUTS) <= set(law.inputs)


def register_default_priors(law: Law, priors: Mapping[str, Mapping]) -> None:
    """Store a user law's prior families (called by :func:`bayesmoe.laws.register_law`)."""
    if "literature" not in priors:
        raise PriorError(f"priors for {law.name!r} need a 'literature' family (it is the default)")
    fams: dict[str, PriorSpec] = {}
    for fam, spec in priors.items():
        if fam not in FAMILIES:
            raise PriorError(f"unknown prior family {fam!r}; use one of {FAMILIES}")
        full = {k: Prior.from_any(v, site=k) for k, v in spec.items()}
        full.setdefault("sigma", _NOISE["sigma"])
        full.setdefault("nu", _NOISE["nu"])
        if _has_compute(law):
            full.setdefault(TREND, _TREND)
        for p in law.pooled:
            if p in law.scales:
                full.setdefault("level_tau", _TAU_LEVEL)
            else:
                full.setdefault(f"{site_of(law, p)}_tau", _DEFAULT_SHAPE_TAU)
        missing = [s for s in sites(law) if s not in full]
        if missing:
            raise PriorError(f"priors[{fam!r}] for law {law.name!r} miss sites {missing}")
        fams[fam] = full
    _USER[law.name] = fams


def resolve_priors(law: Law | str, priors: str | Mapping[str, Any] | None = "literature") -> PriorSpec:
    """Turn ``fit``'s ``priors=`` argument into a complete spec.

    ``priors`` is a family name, or a mapping of per-site overrides on top of a family (named
    by an optional ``"family"`` key, default ``"literature"``).
    """
    law = get_law(law)
    if priors is None or isinstance(priors, str):
        return default_priors(law, priors or "literature")
    if not isinstance(priors, Mapping):
        raise PriorError(f"priors must be a family name or a mapping of overrides, got {type(priors).__name__}")
    overrides = dict(priors)
    family = overrides.pop("family", "literature")
    spec = default_priors(law, family)
    valid = set(spec)
    # the noise's trend in compute (bayesmoe.noise) needs N and D
    if TREND in overrides and not _has_compute(law):
        raise PriorError(f"{TREND!r} (a noise scale that moves with compute 6·N·D) needs a law with inputs "
                         f"{list(TREND_INPUTS)}; law {law.name!r} has {list(law.inputs)}")
    # Let users name a scale or irreducible by its own name ("c" for "c_rel") only when fixing
    # would be ambiguous; say so instead of guessing.
    unknown = [k for k in overrides if k not in valid]
    if unknown:
        hints = []
        for k in unknown:
            if k in law.scales or k == law.irreducible:
                hints.append(f"{k!r} is set through {site_of(law, k)!r} (see bayesmoe.priors)")
        raise PriorError(
            f"unknown prior sites {unknown} for law {law.name!r}; valid sites: {sorted(valid)}"
            + ("; " + "; ".join(hints) if hints else "")
        )
    for k, v in overrides.items():
        spec[k] = Prior.from_any(v, site=k)
    trend = spec.get(TREND)
    if trend is not None and trend.is_fixed and float(trend.args["value"]) == 0.0:
        # no trend: the model before it, site for site (the same spec, programs and draws)
        del spec[TREND]
    return spec


def spec_to_json(spec: Mapping[str, Prior]) -> str:
    return json.dumps({k: spec[k].to_dict() for k in sorted(spec)}, sort_keys=True)


def spec_from_json(text: str) -> PriorSpec:
    raw = json.loads(text)
    return {k: Prior.from_any(v, site=k) for k, v in raw.items()}
