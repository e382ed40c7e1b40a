"""Numbers as tables and papers write them, and loss units.

* :func:`parse_count` reads ``"4B"``, ``"64B"``, ``"1.3M"``, ``"500k"``, ``"1.2T"`` (and plain
  numbers) as counts: K = 1e3, M = 1e6, B = G = 1e9, T = 1e12, the way model sizes and token
  counts are written in papers and in tables such as ColPret's ``IBM_MoE.csv``.
* :func:`loss_to_nats` converts a loss column given in ``"nats"``, ``"bits"`` or
  ``"perplexity"`` to nats per token.
* :func:`flops_label` writes a budget the way people say it: ``1e13``, ``3e21``, ``2.5e16``.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

__all__ = ["SUFFIXES", "LOSS_UNITS", "MAX_NATS", "parse_count", "parse_counts", "loss_to_nats", "budget_columns",
           "flops_label"]

#: Multipliers of the suffixes papers use for parameter and token counts (case-insensitive).
SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}

#: Units a loss column may be given in; everything is converted to nats per token.
LOSS_UNITS = ("nats", "bits", "perplexity")

#: ln(256,000): no trained model's cross-entropy in nats exceeds this for a vocabulary of up to
#: 256k tokens (a uniform guess over the vocabulary scores exactly ln V).
MAX_NATS = math.log(256_000)

_COUNT = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([kKmMbBgGtT])?\s*$")


def parse_count(value) -> float | None:
    """``"4B" -> 4e9``; a plain number passes through; ``None`` when the text is no count."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    m = _COUNT.match(str(value).replace(",", "").replace("_", ""))
    if m is None:
        return None
    number, suffix = m.groups()
    return float(number) * (SUFFIXES[suffix.lower()] if suffix else 1.0)


def parse_counts(column: pd.Series) -> tuple[pd.Series, bool]:
    """A column as float64 counts; text that is no count becomes NaN (the caller names the rows).

    Returns the values and whether any entry used a K/M/B/T suffix."""
    if column.dtype.kind in "fiub":
        return column.astype("float64"), False
    used = False
    out = np.full(len(column), np.nan)
    for i, v in enumerate(column.to_numpy()):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        x = parse_count(v)
        if x is not None:
            out[i] = x
            used = used or bool(re.search(r"[kKmMbBgGtT]\s*$", str(v)))
    return pd.Series(out, index=column.index, name=column.name), used


def loss_to_nats(loss: pd.Series, unit: str) -> pd.Series:
    """Loss per token in nats from ``unit``: bits × ln 2, ln(perplexity), nats unchanged."""
    if unit not in LOSS_UNITS:
        raise ValueError(f"loss_unit must be one of {LOSS_UNITS}, got {unit!r}")
    if unit == "bits":
        return loss * math.log(2.0)
    if unit == "perplexity":
        return np.log(loss.where(loss > 0))
    return loss


def flops_label(flops: float) -> str:
    """``1e13`` for 1e13 FLOPs, ``2.5e16`` for 2.5e16: short, exact to three digits."""
    v = float(flops)
    if not math.isfinite(v) or v <= 0:
        return f"{v:g}"
    exp = math.floor(math.log10(v))
    mant = v / 10 ** exp
    if round(mant, 2) >= 10:  # 9.999e15 -> 1e16
        mant, exp = mant / 10, exp + 1
    text = f"{mant:.3g}"
    return f"{text}e{exp}"


def budget_columns(table: pd.DataFrame) -> pd.DataFrame:
    """A per-budget table (one row per budget, indexed by FLOPs) turned so that each budget is a
    column labelled as :func:`flops_label` writes it, ``columns.name`` "budget (FLOPs)": how the
    CLI and the report show recommendations. A copy: ``table`` is left as it was."""
    shown = table.T.copy()
    shown.columns = pd.Index([flops_label(c) for c in table.index], name="budget (FLOPs)")
    return shown
