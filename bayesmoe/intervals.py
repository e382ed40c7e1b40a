"""The one default interval level, and its check.

Every interval bayesmoe prints or draws (posterior summary, held-out runs, recommendations,
report figures, model card) uses :data:`DEFAULT_CI_PROB` unless the caller passes ``ci_prob``,
so one run of the CLI never mixes levels.
"""

from __future__ import annotations

from bayesmoe.errors import InputError

__all__ = ["DEFAULT_CI_PROB", "check_ci_prob", "level_label"]

#: Probability of an equal-tailed interval when none is given (CLI, report, summaries).
DEFAULT_CI_PROB = 0.9


def check_ci_prob(ci_prob: float) -> float:
    """``ci_prob`` as a float, or :class:`InputError` (a ``ValueError``) when it is not in (0, 1)."""
    try:
        value = float(ci_prob)
    except (TypeError, ValueError):
        raise InputError(f"ci_prob must be a number in (0, 1), got {ci_prob!r}") from None
    if not 0 < value < 1:
        raise InputError(f"ci_prob must be in (0, 1), got {ci_prob}")
    return value


def level_label(ci_prob: float) -> str:
    """``0.9 -> "90 %"``, ``0.945 -> "94.5 %"``: the level as the text writes it."""
    return f"{100 * ci_prob:.3g} %"
