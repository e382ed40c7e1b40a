"""Scaling laws as pure, vectorised JAX functions, evaluated in log space.

Every law here is a sum of positive *terms* plus an irreducible constant,

    L(x) = sum_k  s_k * exp(m_k(theta, x))  +  c,

where ``s_k`` is the term's scale (``a``, ``b``, ...), ``m_k`` the log of the term's monomial
(signed exponents times log inputs) and ``c`` the irreducible loss. The expected log loss is the
log-sum-exp of ``log s_k + m_k`` and ``log c``: N and D span ten decades, so nothing is
exponentiated before it is summed.

Parameters are plain ``dict[str, Array]`` in the papers' own names and signs, so ``jax.vmap``
over posterior draws works unchanged. Inputs are the run table's columns (see
:mod:`bayesmoe.data`), as arrays.

The same term structure lets :mod:`bayesmoe.models` sample each scale as the term's *level at
the data's centre* (ENV.md: centring cut NUTS from 528 to 16 leapfrog steps per iteration).

Register your own law with :func:`register_law` (see ``docs/custom_laws.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import jax.numpy as jnp
from jax import Array
from jax.scipy.special import logsumexp

from bayesmoe.data import LAW_INPUTS
from bayesmoe.errors import InputError

__all__ = [
    "Term",
    "Law",
    "e_hat",
    "JOINT",
    "FINE_GRAINED",
    "SPARSITY",
    "CHINCHILLA",
    "PUBLISHED",
    "get_law",
    "register_law",
    "available_laws",
]

Params = Mapping[str, Array]
Inputs = Mapping[str, Array]


@dataclass(frozen=True)
class Term:
    """One positive term ``scale * exp(log_monomial(params, inputs))`` of a law."""

    scale: str
    log_monomial: Callable[[Params, Inputs], Array]


@dataclass(frozen=True)
class Law:
    """A scaling law: terms, an irreducible constant, and what it needs from the run table.

    Parameters
    ----------
    name : str
        Registry key, e.g. ``"joint"``.
    inputs : tuple of str
        Run-table columns the law reads (see :mod:`bayesmoe.data`).
    terms : tuple of Term
        The positive, scaled terms.
    irreducible : str
        Name of the constant term (the irreducible loss).
    shape_params : tuple of str
        Every other parameter (exponents, E_start, ...), in the paper's sign convention.
    pooled : tuple of str
        Parameters that get group-level values in a hierarchical fit. Scales may be listed by
        their own name (``"a"``): their level at the data centre is pooled.
    description : str
        One line, shown in summaries and saved files.
    """

    name: str
    inputs: tuple[str, ...]
    terms: tuple[Term, ...]
    irreducible: str
    shape_params: tuple[str, ...]
    pooled: tuple[str, ...]
    description: str = ""
    references: tuple[str, ...] = field(default_factory=tuple)
    target_accept: float = 0.8
    """NUTS target acceptance of a one-group fit (``fit(target_accept=None)``); raise it for a law
    whose posterior on realistic tables needs smaller steps (see the built-in laws' values)."""
    centred: Mapping[str, tuple[str, Callable[[Params, Inputs], Array]]] = field(default_factory=dict)
    """Exponents sampled at the data's centre: ``{p: (slope, f)}`` means NUTS samples
    ``p + slope · f(params, x0)`` (x0: the centre of the inputs), e.g. α + γ·ln Ê(E0). Each map
    has unit Jacobian, so the prior stays on the paper-form ``p``. Slopes must not be centred."""
    own_exponents: Mapping[str, str] = field(default_factory=dict)
    """``{exponent: scale}``: the exponent of one term's own input (α of ``a·N^α``). The plain model
    (one group) samples that term's slope at the data's centre, exponent × the term's share of the
    loss there, instead of the exponent (see :mod:`bayesmoe.models`). Leave empty for exponents
    that appear in several terms or that a centring reads. The joint law sets it (at κ = 0.5, with
    start candidates: see the comment in ``JOINT``)."""
    slope_power: float = 1.0
    """κ of the slope coordinates: ``own_exponents`` are sampled as exponent × share^κ. 1 is the
    term's slope; 0 the exponent itself; in between partly so, as partial centring is for a
    hierarchy (the slope's scale shrinks with the share: a funnel at κ = 1)."""
    start_candidates: int = 1
    """How many short descents each chain of a one-group fit chooses its start from
    (``fit(start_candidates=None)``; :func:`bayesmoe.inference._best_start`): 1 is the prior-median
    start alone. Raise it for a law whose posteriors have a far worse mode that catches most
    starts."""

    @property
    def scales(self) -> tuple[str, ...]:
        return tuple(t.scale for t in self.terms)

    @property
    def params(self) -> tuple[str, ...]:
        """All parameter names, as they appear in the posterior."""
        return (*self.shape_params, *self.scales, self.irreducible)

    def log_loss_from_log_scales(
        self, params: Params, log_scales: Mapping[str, Array], log_irreducible: Array, x: Inputs
    ) -> Array:
        """Expected log loss with the scales and the constant given as logs."""
        parts = [log_scales[t.scale] + t.log_monomial(params, x) for t in self.terms]
        parts.append(log_irreducible)
        parts = jnp.broadcast_arrays(*parts)
        return logsumexp(jnp.stack(parts), axis=0)

    def log_loss(self, params: Params, x: Inputs) -> Array:
        """Expected log loss ``ln L(x)`` for paper-form parameters."""
        log_scales = {s: jnp.log(params[s]) for s in self.scales}
        return self.log_loss_from_log_scales(params, log_scales, jnp.log(params[self.irreducible]), x)

    def loss(self, params: Params, x: Inputs) -> Array:
        """Expected loss ``L(x)`` in nats per token."""
        return jnp.exp(self.log_loss(params, x))


# ---------------------------------------------------------------------------------------------
# Joint MoE law, Ludziejewski et al. 2025
# ---------------------------------------------------------------------------------------------


def e_hat(experts: Array, e_start: Array, e_max: Array) -> Array:
    """Transformed expert count Ê (Clark et al. 2022; Ludziejewski et al. 2025, Eq. 4).

    ``1/Ê = 1/(E − 1 + (1/E_start − 1/E_max)^(−1)) + 1/E_max``. Note Ê(1) = E_start, not 1,
    and Ê → E_max as E → ∞.

    References
    ----------
    Ludziejewski et al. 2025, "Joint MoE Scaling Laws", arXiv:2502.05172, Eq. 4.
    """
    offset = 1.0 / (1.0 / e_start - 1.0 / e_max)
    return 1.0 / (1.0 / (experts - 1.0 + offset) + 1.0 / e_max)


def _joint_log_e(p: Params, x: Inputs) -> Array:
    return jnp.log(e_hat(x["experts"], p["e_start"], p["e_max"]))


def _joint_params_term(p: Params, x: Inputs) -> Array:
    log_e = _joint_log_e(p, x)
    return p["delta"] * log_e + (p["alpha"] + p["gamma"] * log_e) * jnp.log(x["n_active"])


def _joint_data_term(p: Params, x: Inputs) -> Array:
    log_e = _joint_log_e(p, x)
    return p["omega"] * log_e + (p["beta"] + p["zeta"] * log_e) * jnp.log(x["tokens"])


JOINT = Law(
    name="joint",
    inputs=LAW_INPUTS["joint"],
    terms=(Term("a", _joint_params_term), Term("b", _joint_data_term)),
    irreducible="c",
    shape_params=("alpha", "beta", "gamma", "zeta", "delta", "omega", "e_start", "e_max"),
    pooled=("alpha", "beta", "gamma", "zeta", "delta", "omega", "c", "a", "b"),
    description="L = a·Ê^δ·N^(α+γ·lnÊ) + b·Ê^ω·D^(β+ζ·lnÊ) + c (signed exponents)",
    # γ and ζ multiply uncentred log inputs (ln N ≈ 20): without this the posterior has directions
    # ~100x narrower than its others and NUTS needed 200+ leapfrog steps per iteration.
    centred={
        "alpha": ("gamma", _joint_log_e),
        "delta": ("gamma", lambda p, x: jnp.log(x["n_active"])),
        "beta": ("zeta", _joint_log_e),
        "omega": ("zeta", lambda p, x: jnp.log(x["tokens"])),
    },
    # Slope coordinates at κ = 0.5 with 8 start candidates, target_accept 0.95 (session 20). In the
    # exponent coordinates the README's table (104 runs, E <= 64) diverged on 7 of 8 seeds at 0.8,
    # 6 of 8 at 0.9, 4 of 6 at 0.95 and 0 of 8 at 0.99, at 56-66 leapfrog steps (the paper's grid:
    # 70-100); the divergent draws sit where c is low and α high, on the curved ridge exponent ×
    # share = const. Sampling α, δ, β, ω as exponent × their term's share^0.5 at the data's centre
    # takes 19-25 steps there at 0.95 with 0 divergences (bench/screen_joint_nuts.py). Alone it
    # under-covered in SBC (mean 90 % coverage 0.858 against 0.890; κ = 1: 0.85): every chain
    # started near one point and warmed up in a mode tens of nats worse (σ inflated), where they
    # agreed and R-hat passed. Each chain now starts from the lowest of 8 short descents
    # (start_candidates, bayesmoe.inference._best_start), and SBC covers as it should. Numbers:
    # docs/validation.md, "Shared local modes".
    own_exponents={"alpha": "a", "beta": "b", "delta": "a", "omega": "b"},
    slope_power=0.5,
    start_candidates=8,
    target_accept=0.95,
    references=(
        "Ludziejewski et al. 2025, Joint MoE Scaling Laws, arXiv:2502.05172, Eq. 1 and 4, Table 3",
        "Clark et al. 2022, Unified Scaling Laws for Routed Language Models, arXiv:2202.01169",
    ),
)
"""Joint MoE law: ``L(N_act, D, Ê) = a·Ê^δ·N_act^(α+γ·lnÊ) + b·Ê^ω·D^(β+ζ·lnÊ) + c``.

Exponents are signed (α, β < 0 in Table 3). N_act includes embeddings (App. A.1). E_start and
E_max are parameters of Ê (fitted in the paper: 2.0732 and 290.4521).

References
----------
Ludziejewski et al. 2025, arXiv:2502.05172, Eq. 1 (= Eq. 6), Eq. 4, Table 3.
"""

# ---------------------------------------------------------------------------------------------
# Fine-grained MoE law, Krajewski et al. 2024
# ---------------------------------------------------------------------------------------------

FINE_GRAINED = Law(
    name="fine_grained",
    inputs=LAW_INPUTS["fine_grained"],
    terms=(
        Term("a", lambda p, x: -p["alpha"] * jnp.log(x["n_total"])),
        Term("g", lambda p, x: -p["gamma"] * jnp.log(x["granularity"]) - p["alpha"] * jnp.log(x["n_total"])),
        Term("b", lambda p, x: -p["beta"] * jnp.log(x["tokens"])),
    ),
    irreducible="c",
    shape_params=("alpha", "beta", "gamma"),
    pooled=("alpha", "beta", "gamma", "c", "a", "g", "b"),
    description="L = c + (g/G^γ + a)/N^α + b/D^β (positive exponents; N = total non-embedding)",
    # Measured on synthetic_runs(noise_sd=0.01), seeds 1-8, 4 chains x 1000/1000 (fit's defaults):
    # at 0.8 seed 3 gave 61 divergences (R-hat 1.14) and seed 2 R-hat 1.03; at 0.95 every seed
    # had 0 divergences and R-hat <= 1.010 (bench/recovery_seeds.py). c is placed mostly by its
    # prior on such tables (tokens span under a decade), and the chains need small steps along it.
    target_accept=0.95,
    references=(
        "Krajewski et al. 2024, Scaling Laws for Fine-Grained Mixture of Experts, "
        "arXiv:2402.07871, Eq. 9, Table 1",
    ),
)
"""Fine-grained MoE law: ``L(N, D, G) = c + (g/G^γ + a)/N^α + b/D^β``.

N is the *total non-embedding* parameter count (excluding the router), read from the run
table's ``n_total`` column: give that column the non-embedding count. Exponents are positive
magnitudes. Written as the terms ``a·N^-α``, ``g·G^-γ·N^-α`` and ``b·D^-β``.

References
----------
Krajewski et al. 2024, arXiv:2402.07871, Eq. 9 and Table 1.
"""

# ---------------------------------------------------------------------------------------------
# Optimal-sparsity law, Abnar et al. 2025
# ---------------------------------------------------------------------------------------------


def sparsity_from_experts(experts: Array) -> Array:
    """Sparsity S = (E_total − K)/E_total = 1 − 1/E under the schema's convention.

    The run table's E is the expansion rate with top-k = G experts of width d_ff/G active out of
    E·G, so the active fraction of expert parameters is 1/E at any granularity.
    """
    return 1.0 - 1.0 / experts


SPARSITY = Law(
    name="sparsity",
    inputs=LAW_INPUTS["sparsity"],
    terms=(
        Term("a", lambda p, x: -p["alpha"] * jnp.log(x["n_total"])),
        Term("b", lambda p, x: -p["beta"] * jnp.log(x["tokens"])),
        # c/(1−S)^λ with 1 − S = 1/E: exp(λ·ln E)
        Term("c", lambda p, x: p["lambda"] * jnp.log(x["experts"])),
        # d/((1−S)^δ·N^γ): exp(δ·ln E − γ·ln N)
        Term("d", lambda p, x: p["delta"] * jnp.log(x["experts"]) - p["gamma"] * jnp.log(x["n_total"])),
    ),
    irreducible="e",
    shape_params=("alpha", "beta", "lambda", "delta", "gamma"),
    pooled=("alpha", "beta", "lambda", "delta", "gamma", "e", "a", "b", "c", "d"),
    description="L = a/N^α + b/D^β + c/(1−S)^λ + d/((1−S)^δ·N^γ) + e (N total, S = 1 − 1/E)",
    # Measured on synthetic_runs(noise_sd=0.01), 4 chains x 1000 warmup (bench/recovery_seeds.py):
    # at 0.8 (1000 draws) seeds 1-4 gave R-hat 1.012, 1 divergence, R-hat 1.015, and ok; at 0.95,
    # seeds 1-8 had 0 divergences, but seed 6 R-hat 1.023 at 1000 draws (2000 draws: R-hat <= 1.007,
    # bulk ESS >= 926 on all 8). e and c/(1−S)^λ trade off (both nearly constant in N and D), a
    # long, curved direction that needs small steps and many draws.
    target_accept=0.95,
    references=(
        "Abnar et al. 2025, Parameters vs FLOPs: Scaling Laws for Optimal Sparsity for "
        "Mixture-of-Experts Language Models, arXiv:2501.12370, Eq. 6",
    ),
)
"""Optimal-sparsity law: ``L(N, D, S) = a/N^α + b/D^β + c/(1−S)^λ + d/((1−S)^δ·N^γ) + e``.

N is the total parameter count (everything). S = 1 − 1/E. No coefficients were published in a
form we could verify (LAWS.md §3.2): fit it, never assume them. The paper reports λ < 0.

References
----------
Abnar et al. 2025, arXiv:2501.12370, Eq. 6.
"""

# ---------------------------------------------------------------------------------------------
# Dense law, Hoffmann et al. 2022
# ---------------------------------------------------------------------------------------------

CHINCHILLA = Law(
    name="chinchilla",
    inputs=LAW_INPUTS["chinchilla"],
    terms=(
        Term("a", lambda p, x: -p["alpha"] * jnp.log(x["n_active"])),
        Term("b", lambda p, x: -p["beta"] * jnp.log(x["tokens"])),
    ),
    irreducible="e",
    shape_params=("alpha", "beta"),
    pooled=("alpha", "beta", "e", "a", "b"),
    # No slope coordinates (``own_exponents``): on real tables they cost more than they gave.
    # Epoch's runs, seeds 0-1 (discrepancy="none"): min bulk ESS 2104/1856 at 25-28 leapfrog
    # steps sampling α, β directly, 1950/1878 at 39-41 as slopes; Porian's RefinedWeb tuned/const
    # setup, seeds 0-2: ESS 4109-4628 at 6.0-6.3 steps directly, 2611-3140 at 6.6-7.5 and one
    # divergence as slopes. (The joint law's README table is the opposite case.)
    description="L = e + a/N^α + b/D^β (Chinchilla; positive exponents; N incl. embeddings)",
    # target_accept 0.95, measured: SBC (200 prior draws, 4 x 500/250) had divergences or R-hat
    # > 1.05 in 28 fits at 0.8 (23 with divergences), 10 at 0.9 and 2 at 0.95 (docs/validation/
    # sbc_chinchilla_ta090.csv, sbc_chinchilla_ta095.csv; sbc_check passes at each) for ~10 % more
    # leapfrog steps (13.0 against 11.8 per iteration); ModuleFormer pooled over seeds 0-5 passes
    # on 5 of 6 at 0.95 against 4 of 6 at 0.9 (bench/convergence_defaults.py, docs/validation.md).
    target_accept=0.95,
    references=(
        "Hoffmann et al. 2022, Training Compute-Optimal Large Language Models, arXiv:2203.15556, Eq. 2",
        "Besiroglu et al. 2024, Chinchilla Scaling: A replication attempt, arXiv:2404.10102",
    ),
)
"""Dense law: ``L(N, D) = e + a/N^α + b/D^β`` (Hoffmann's E, A, B written e, a, b).

References
----------
Hoffmann et al. 2022, arXiv:2203.15556, Eq. 2; Besiroglu et al. 2024, arXiv:2404.10102.
"""

#: Published point estimates, in this module's names and signs (LAWS.md §1.3, §2.3, §5.2).
PUBLISHED: dict[str, dict[str, dict[str, float]]] = {
    "joint": {
        "ludziejewski2025": dict(
            a=35.91, alpha=-0.1889, delta=-0.2285, gamma=0.0098, b=35.98, beta=-0.1775,
            omega=0.5529, zeta=-0.0259, e_start=2.0732, e_max=290.4521, c=1.3637,
        ),
    },
    "fine_grained": {
        "krajewski2024": dict(a=18.1, alpha=0.115, b=30.8, beta=0.147, g=2.1, gamma=0.58, c=0.47),
    },
    "chinchilla": {
        "hoffmann2022": dict(e=1.69, a=406.4, b=410.7, alpha=0.34, beta=0.28),
        "hoffmann2022_unrounded": dict(e=1.6934, a=406.4, b=410.7, alpha=0.3392, beta=0.2849),
        "besiroglu2024": dict(e=1.8172, a=482.01, b=2085.43, alpha=0.3478, beta=0.3658),
    },
    "sparsity": {},
}

_REGISTRY: dict[str, Law] = {law.name: law for law in (JOINT, FINE_GRAINED, SPARSITY, CHINCHILLA)}


def available_laws() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get_law(law: str | Law) -> Law:
    """Look a law up by name (or pass a :class:`Law` through)."""
    if isinstance(law, Law):
        return law
    try:
        return _REGISTRY[law]
    except KeyError:
        raise InputError(
            f"unknown law {law!r}; registered laws: {sorted(_REGISTRY)}. "
            "Register your own with bayesmoe.laws.register_law(law, priors)."
        ) from None


def register_law(law: Law, priors: Mapping[str, Mapping] | None = None, *, overwrite: bool = False) -> Law:
    """Make a user-defined law available to ``fit``, ``predict``, ``save`` and ``load``.

    Parameters
    ----------
    law : Law
        Terms written with ``jax.numpy`` (see ``docs/custom_laws.md`` for an example).
    priors : mapping, optional
        ``{family: {site: prior}}`` with at least a ``"literature"`` family; see
        :mod:`bayesmoe.priors` for the site names (``alpha``, ``a_level``, ``c_rel``, ...).
        Each family must give a prior for every sampled site of the law.
    overwrite : bool
        Replace an existing law of the same name (built-ins cannot be replaced).
    """
    from bayesmoe import priors as _priors  # priors imports laws; keep the dependency one-way

    if law.name in ("joint", "fine_grained", "sparsity", "chinchilla") and _REGISTRY.get(law.name) is not law:
        raise InputError(f"{law.name!r} is a built-in law; register yours under another name")
    if law.name in _REGISTRY and not overwrite and _REGISTRY[law.name] is not law:
        raise InputError(f"a law named {law.name!r} is already registered; pass overwrite=True")
    unknown = set(law.pooled) - set(law.params)
    if unknown:
        raise InputError(f"pooled names {sorted(unknown)} are not parameters of {law.name!r}")
    if priors is None:
        raise InputError(f"register_law({law.name!r}) needs priors: {{'literature': {{site: prior}}}}")
    _priors.register_default_priors(law, priors)
    _REGISTRY[law.name] = law
    return law
