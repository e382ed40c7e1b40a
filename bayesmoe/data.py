"""The run table: one documented schema for a DataFrame of finished training runs.

Columns (units in the name's meaning; every law takes the subset it needs):

==============  ===========================================================================
``n_active``    active parameters per token (count, not millions). Which parameters are
                counted is the law's convention: the joint law includes embeddings.
``tokens``      training tokens D (count, not steps).
``loss``        final evaluation loss in nats per token (not perplexity, not bits).
``experts``     E >= 1, the expansion rate (number of experts at granularity 1); 1 = dense.
``granularity`` G >= 1: expert width = d_ff / G, top-k = G.
``n_total``     total parameters (>= n_active).
``group``       optional label of the setup / dataset / codebase a run belongs to.
``seed``        optional: tells repeated runs of the same configuration apart.
==============  ===========================================================================

Any other columns are kept untouched. :func:`validate_runs` maps common aliases (``N``, ``D``,
``E``, ``G``, ``params`` ...) onto these names, says which it mapped, and reports *every*
problem at once, naming rows and columns. Nothing is dropped silently.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from bayesmoe.errors import DataValidationError

__all__ = [
    "NUMERIC_COLUMNS",
    "ALIASES",
    "validate_runs",
    "table_hash",
    "LAW_INPUTS",
]

log = logging.getLogger("bayesmoe")

NUMERIC_COLUMNS: tuple[str, ...] = (
    "n_active",
    "tokens",
    "loss",
    "experts",
    "granularity",
    "n_total",
)
#: Columns that identify a run; two rows agreeing on all present ones are duplicates.
KEY_COLUMNS: tuple[str, ...] = (
    "group",
    "n_active",
    "n_total",
    "tokens",
    "experts",
    "granularity",
    "seed",
)

#: Columns each built-in law reads (``bayesmoe.laws`` takes them from here), so that a table can be
#: checked against a law without importing JAX (the CLI rejects bad input before JAX starts).
LAW_INPUTS: dict[str, tuple[str, ...]] = {
    "joint": ("n_active", "tokens", "experts"),
    "fine_grained": ("n_total", "tokens", "granularity"),
    "sparsity": ("n_total", "tokens", "experts"),
    "chinchilla": ("n_active", "tokens"),
}

#: Accepted spellings (compared case-insensitively, ignoring ``_``, ``-`` and spaces).
ALIASES: dict[str, tuple[str, ...]] = {
    "n_active": (
        "n", "n_act", "nact", "active_params", "active_parameters", "n_active_params",
        "params", "parameters", "n_params", "num_params", "model_size", "nparams",
    ),
    "tokens": ("d", "n_tokens", "num_tokens", "training_tokens", "train_tokens", "data"),
    "loss": ("l", "final_loss", "eval_loss", "val_loss", "validation_loss", "test_loss"),
    "experts": ("e", "n_experts", "num_experts", "expert_count", "expansion_rate"),
    "granularity": ("g", "gran"),
    "n_total": ("n_tot", "total_params", "total_parameters", "n_total_params"),
    "group": ("setup", "dataset", "codebase", "source"),
    "seed": ("random_seed", "run_seed"),
}

# Unit-slip thresholds: see the messages in _unit_slips for what each one catches.
_MIN_PLAUSIBLE_PARAMS = 1e4
_MAX_PLAUSIBLE_LOSS = 20.0
_MIN_TOKENS_PER_PARAM = 1e-2
_MAX_LISTED = 20


def _norm(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch not in "_- ")


def _alias_lookup() -> dict[str, str]:
    table = {}
    for canon, names in ALIASES.items():
        table[_norm(canon)] = canon
        for n in names:
            table[_norm(n)] = canon
    return table


def _rows(index: Iterable) -> str:
    idx = list(index)
    shown = ", ".join(map(str, idx[:_MAX_LISTED]))
    more = f" and {len(idx) - _MAX_LISTED} more" if len(idx) > _MAX_LISTED else ""
    return f"rows [{shown}{more}]"


def map_columns(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str], list[str]]:
    """Rename alias columns to the schema's names.

    Returns the renamed frame, the mapping used (original -> canonical) and problems
    (two columns claiming the same canonical name).
    """
    lookup = _alias_lookup()
    claims: dict[str, list[str]] = {}
    for col in df.columns:
        canon = lookup.get(_norm(col))
        if canon is not None:
            claims.setdefault(canon, []).append(col)
    mapping: dict[str, str] = {}
    problems = []
    for canon, cols in claims.items():
        if len(cols) > 1:
            problems.append(
                f"columns {cols} all mean {canon!r}; keep one (or rename the others) so the "
                "table is unambiguous"
            )
            continue
        if cols[0] != canon:
            mapping[cols[0]] = canon
    return df.rename(columns=mapping), mapping, problems


def _suggest(missing: str, columns: Sequence[str]) -> str:
    pool = [str(c) for c in columns]
    near = difflib.get_close_matches(missing, pool, n=1, cutoff=0.5)
    if not near:
        norm_pool = {_norm(c): c for c in pool}
        hit = difflib.get_close_matches(_norm(missing), list(norm_pool), n=1, cutoff=0.5)
        near = [norm_pool[h] for h in hit]
    aliases = ", ".join(ALIASES.get(missing, ())[:4])
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"missing column {missing!r}{hint}; accepted names: {missing}, {aliases}, ..."


def _unit_slips(df: pd.DataFrame, numeric: dict[str, pd.Series]) -> list[str]:
    problems = []
    if "n_active" in numeric:
        n = numeric["n_active"]
        small = df.index[(n > 0) & (n < _MIN_PLAUSIBLE_PARAMS)]
        if len(small):
            problems.append(
                f"n_active: {_rows(small)} are below {_MIN_PLAUSIBLE_PARAMS:.0e}, which looks like "
                "millions (or billions) of parameters; give plain counts, e.g. multiply by 1e6"
            )
    if "loss" in numeric:
        big = df.index[numeric["loss"] > _MAX_PLAUSIBLE_LOSS]
        if len(big):
            problems.append(
                f"loss: {_rows(big)} exceed {_MAX_PLAUSIBLE_LOSS:g}, which looks like perplexity; "
                "give the loss in nats per token, i.e. take ln(perplexity)"
            )
    if "tokens" in numeric and "n_active" in numeric:
        ratio = numeric["tokens"] / numeric["n_active"]
        steps = df.index[(ratio > 0) & (ratio < _MIN_TOKENS_PER_PARAM)]
        if len(steps):
            problems.append(
                f"tokens: {_rows(steps)} have fewer than n_active/100 tokens, which looks like a "
                "step count; give tokens, i.e. multiply steps by tokens per step (batch x sequence)"
            )
    return problems


def validate_runs(
    runs: pd.DataFrame,
    *,
    required: Sequence[str] = ("n_active", "tokens", "loss"),
    unit_checks: bool = True,
    duplicates: str = "error",
) -> pd.DataFrame:
    """Check a run table against the schema and return a validated copy.

    Parameters
    ----------
    runs : pandas.DataFrame
        One row per finished training run. Aliases (``N``, ``D``, ``E``, ``G``, ``params``, ...)
        are renamed to the schema's names; the mapping is logged and stored in
        ``result.attrs["column_map"]``.
    required : sequence of str
        Schema columns the caller needs (each law declares its own).
    unit_checks : bool
        Flag values that look like a unit slip (millions of parameters, perplexity instead of
        loss, steps instead of tokens). Turn off only for tables you have checked by hand.
    duplicates : {"error", "allow"}
        Repeated runs (and index labels) are an error in a table to fit; ``"allow"`` accepts
        them, for inputs to predict at (seed replicates share their inputs).

    Returns
    -------
    pandas.DataFrame
        A copy with canonical column names, numeric schema columns as float64, ``group`` as
        str (``"all"`` when absent), ``experts`` and ``granularity`` filled with 1 when absent,
        the original index kept, and every other column untouched.

    Raises
    ------
    DataValidationError
        Listing every problem found: missing or ambiguous columns (with the closest present
        name), non-numeric, NaN/inf, non-positive values, E < 1, G < 1, n_total < n_active,
        duplicated runs and suspected unit slips, each naming the offending rows.
    """
    if not isinstance(runs, pd.DataFrame):
        raise DataValidationError(
            f"runs must be a pandas DataFrame, got {type(runs).__name__}; "
            "e.g. pandas.read_csv('runs.csv')"
        )
    df, mapping, problems = map_columns(runs)
    if mapping:
        log.info("run table: mapped columns %s", ", ".join(f"{k!r}->{v!r}" for k, v in mapping.items()))
    if duplicates not in ("error", "allow"):
        raise ValueError(f"duplicates must be 'error' or 'allow', got {duplicates!r}")
    if df.index.has_duplicates and duplicates == "error":
        problems.append(
            f"the index has repeated labels {_rows(df.index[df.index.duplicated()])}; "
            "rows could not be named unambiguously: call runs.reset_index(drop=True)"
        )
    missing = [c for c in required if c not in df.columns]
    problems += [_suggest(m, [c for c in df.columns if c not in NUMERIC_COLUMNS]) for m in missing]
    if len(df) == 0:
        problems.append("the table has no rows")

    numeric: dict[str, pd.Series] = {}
    for col in NUMERIC_COLUMNS:
        if col not in df.columns:
            continue
        raw = df[col]
        x = pd.to_numeric(raw, errors="coerce").astype("float64")
        nonnum = df.index[x.isna() & raw.notna()]
        if len(nonnum):
            problems.append(f"{col}: {_rows(nonnum)} are not numbers")
        nan = df.index[raw.isna()]
        if len(nan):
            problems.append(f"{col}: {_rows(nan)} are missing (NaN)")
        inf = df.index[np.isinf(x)]
        if len(inf):
            problems.append(f"{col}: {_rows(inf)} are infinite")
        nonpos = df.index[np.isfinite(x) & (x <= 0)]
        if len(nonpos):
            problems.append(f"{col}: {_rows(nonpos)} are <= 0; every {col} must be positive")
        numeric[col] = x.where(np.isfinite(x))

    for col, what in (("experts", "E"), ("granularity", "G")):
        if col in numeric:
            low = df.index[(numeric[col] > 0) & (numeric[col] < 1)]
            if len(low):
                problems.append(f"{col}: {_rows(low)} have {what} < 1; {what} = 1 means dense")
    if "n_total" in numeric and "n_active" in numeric:
        inv = df.index[numeric["n_total"] < numeric["n_active"]]
        if len(inv):
            problems.append(
                f"n_total: {_rows(inv)} are smaller than n_active; are the two columns swapped?"
            )
    if unit_checks:
        problems += _unit_slips(df, numeric)

    out = df.copy()
    for col, x in numeric.items():
        out[col] = x
    if "group" in out.columns:
        gnan = out.index[out["group"].isna()]
        if len(gnan):
            problems.append(f"group: {_rows(gnan)} have no group label")
        out["group"] = out["group"].astype(str)
    else:
        out["group"] = "all"
    for col in ("experts", "granularity"):
        if col not in out.columns:
            out[col] = 1.0

    key = [c for c in KEY_COLUMNS if c in out.columns]
    dup_mask = out.duplicated(key, keep=False)
    if dup_mask.any() and duplicates == "error":
        groups = out[dup_mask].groupby(key, dropna=False, sort=False).groups
        sets = [list(ix) for ix in groups.values()]
        listed = "; ".join(_rows(s) for s in sets[:10])
        hint = (
            " If these are repeated seeds, add a 'seed' column that tells them apart."
            if "seed" not in out.columns
            else ""
        )
        problems.append(f"duplicated runs (same {key}): {listed}.{hint}")

    if problems:
        raise DataValidationError(
            f"invalid run table ({len(problems)} problem{'s' * (len(problems) > 1)}):\n  - "
            + "\n  - ".join(problems)
        )
    out.attrs = {"column_map": mapping}
    return out


def table_hash(runs: pd.DataFrame, columns: Sequence[str]) -> str:
    """SHA-256 of the validated values that a fit used (order-sensitive, exact bytes)."""
    h = hashlib.sha256()
    for col in columns:
        h.update(col.encode())
        values = runs[col].to_numpy()
        if values.dtype.kind in "fiu":
            h.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
        else:
            h.update("\x1f".join(map(str, values)).encode())
    return h.hexdigest()
