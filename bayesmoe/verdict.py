"""One verdict per fit, in one vocabulary: GREEN, AMBER or RED, with its reasons.

The CLI (``fit``, ``summary``), the model card and the HTML report all print this verdict, so the
same fit never reads "ok" in one place and "AMBER" in another.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pandas as pd

from bayesmoe.inference import ESS_PER_CHAIN_MIN, RHAT_MAX
from bayesmoe.intervals import level_label
from bayesmoe.noise import OUTLIER_LEVEL, outlying, run_residuals

__all__ = ["Verdict", "verdict", "saved_holdout", "RHAT_AMBER", "ESS_AMBER_FACTOR"]

#: R-hat above this (but below the hard limit) or bulk/tail ESS below twice the floor is amber.
RHAT_AMBER = 1.005
ESS_AMBER_FACTOR = 2

# Files written before the level was recorded used holdout_table's old default, 94 %.
_LEGACY_HOLDOUT_CI_PROB = 0.94


@dataclass(frozen=True)
class Verdict:
    """Traffic light for a fit: ``level`` is ``"green"``, ``"amber"`` or ``"red"``."""

    level: str
    headline: str
    reasons: tuple[str, ...]

    def line(self) -> str:
        """``"AMBER. Usable with care."``: how the CLI and the model card print it."""
        return f"{self.level.upper()}. {self.headline}"


def saved_holdout(result) -> tuple[pd.DataFrame | None, float]:
    """The held-out runs stored with a fit (``bayesmoe fit --holdout``) and their interval level."""
    attrs = result.tree.attrs
    raw = attrs.get("holdout")
    level = float(attrs.get("holdout_ci_prob", _LEGACY_HOLDOUT_CI_PROB))
    if not raw:
        return None, level
    stored = pd.read_json(io.StringIO(raw), orient="records")
    # re-scored from the stored inputs and losses with the current scorer (the extrapolation error
    # included): a stored summary is never trusted, and older files rescore alike
    return result.holdout_table(stored[list(result.law.inputs) + ["loss"]], ci_prob=level), level


def verdict(result, holdout: pd.DataFrame | None = None, holdout_ci_prob: float | None = None, *,
            residuals: pd.DataFrame | None = None) -> Verdict:
    """Green: every check passes with margin. Amber: passes, but close to a limit, a held-out
    run falls outside its interval, or a fitted run lies beyond what the fitted noise allows
    (:func:`bayesmoe.noise.outlying_runs`). Red: a convergence check fails (R-hat, ESS,
    divergences).

    ``holdout`` defaults to the held-out runs saved with the fit (and their interval level);
    ``residuals`` to :func:`bayesmoe.noise.run_residuals` of the fit (pass it where it is at hand)."""
    if holdout is None:
        holdout, saved_level = saved_holdout(result)
        holdout_ci_prob = holdout_ci_prob or saved_level
    level = level_label(holdout_ci_prob or _LEGACY_HOLDOUT_CI_PROB)
    d = result.diagnostics
    ess_min = ESS_PER_CHAIN_MIN * d.num_chains
    if d.problems:
        return Verdict("red", "Do not trust this fit: the sampler did not converge.",
                       tuple(d.problems) + tuple(result.warnings))
    reasons = []
    if d.max_rhat >= RHAT_AMBER:
        reasons.append(f"max R-hat {d.max_rhat:.4f} passes (< {RHAT_MAX}) but is above {RHAT_AMBER}")
    for kind, value in (("bulk", d.min_ess_bulk), ("tail", d.min_ess_tail)):
        if value < ESS_AMBER_FACTOR * ess_min:
            reasons.append(f"min {kind} ESS {value:.0f} passes (>= {ess_min}) but is below "
                           f"{ESS_AMBER_FACTOR * ess_min}: run more draws for stable tails")
    if holdout is not None and len(holdout) and not holdout["inside"].all():
        out = int((~holdout["inside"].astype(bool)).sum())
        reasons.append(f"{out} of {len(holdout)} held-out runs lie outside the {level} interval "
                       "of a new run: extrapolation beyond the fitted sizes is doubtful")
    residuals = run_residuals(result) if residuals is None else residuals
    far = outlying(residuals, OUTLIER_LEVEL)
    if len(far):
        named = ", ".join(f"{i} at {z:+.1f} σ" for i, z in far["z"].head(5).items()) + (", ..." if len(far) > 5 else "")
        one = len(far) == 1
        reasons.append(f"{len(far)} of {len(residuals)} fitted runs {'lies' if one else 'lie'} beyond what the fitted "
                       f"noise allows any run at a family-wise {OUTLIER_LEVEL:.0%} (run{'' if one else 's'} {named}): "
                       "a diverged run, a mislogged loss, or configurations the law cannot follow; the heavy-tailed "
                       "noise lets them barely pull the law")
    if reasons:
        return Verdict("amber", "Usable with care.", tuple(reasons))
    checks = (f"max R-hat {d.max_rhat:.4f} < {RHAT_MAX}; min bulk / tail ESS "
              f"{d.min_ess_bulk:.0f} / {d.min_ess_tail:.0f} >= {ess_min}; {d.divergences} divergences")
    if holdout is not None and len(holdout):
        checks += f"; all {len(holdout)} held-out runs inside their {level} interval"
    checks += f"; no fitted run beyond the fitted noise (the furthest at {residuals['z'].abs().max():.1f} σ)"
    return Verdict("green", "The sampler converged and the checks pass.", (checks,))
