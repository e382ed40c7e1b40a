"""The run table: one documented schema for a DataFrame of finished training runs.

Columns (units in the name's meaning; every law takes the subset it needs):

==============  ===========================================================================
``n_active``    active parameters per token (count, not millions). Which parameters are
                counted is the law's convention: the joint law includes embeddings.
``tokens``      training tokens D (count, not steps).
``loss``        final evaluation loss in nats per token (``loss_unit`` converts bits or perplexity).
``experts``     E >= 1, the expansion rate (number of experts at granularity 1); 1 = dense.
``granularity`` G >= 1: expert width = d_ff / G, top-k = G.
``n_total``     total parameters (>= n_active).
``group``       optional label of the setup / dataset / codebase a run belongs to.
``seed``        optional: tells repeated runs of the same configuration apart.
==============  ===========================================================================

Any other columns are kept untouched. :func:`validate_runs` maps aliases that mean one thing
(``N``, ``D``, ``E``, ``G``, ``active_params`` ...) onto these names and says which it mapped;
a name that could mean several things (``Params``: total or active?) or a text column is never
guessed: say what is what with ``columns={"n_active": "ActiveParams"}``. It reports *every*
problem at once, naming rows and columns. Nothing is dropped silently.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from bayesmoe.errors import DataValidationError
from bayesmoe.units import LOSS_UNITS, MAX_NATS, loss_to_nats, parse_counts

__all__ = [
    "NUMERIC_COLUMNS",
    "ALIASES",
    "AMBIGUOUS",
    "FIELDS",
    "map_columns",
    "ColumnMap",
    "validate_runs",
    "table_hash",
    "design_notes",
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

#: Accepted spellings (compared case-insensitively, ignoring ``_``, ``-`` and spaces). Only names
#: that mean one thing are here; see :data:`AMBIGUOUS` for the rest.
ALIASES: dict[str, tuple[str, ...]] = {
    "n_active": ("n", "n_act", "nact", "n_a", "active_params", "active_parameters", "n_active_params"),
    "tokens": ("d", "n_tokens", "num_tokens", "training_tokens", "train_tokens", "tokens_seen"),
    "loss": ("l", "final_loss", "eval_loss", "val_loss", "validation_loss", "test_loss"),
    "experts": ("e", "n_experts", "num_experts", "expert_count", "expansion_rate"),
    "granularity": ("g", "gran"),
    "n_total": ("n_tot", "total_params", "total_parameters", "n_total_params"),
    "group": ("setup", "codebase"),
    "seed": ("random_seed", "run_seed"),
}

#: Names that could mean more than one schema column (or something else entirely): never mapped by
#: guess. ``Params`` is total parameters in one table and active in another; ``data`` is a token
#: count in one and a corpus name ("Pile") in another; ``source`` and ``dataset`` may be a setup
#: label or a provenance note. Say which with ``columns={"n_active": "Params"}``.
AMBIGUOUS: dict[str, tuple[str, ...]] = {
    **{n: ("n_active", "n_total") for n in ("params", "parameters", "n_params", "num_params", "nparams",
                                             "model_size", "size")},
    "data": ("tokens", "group"),
    "dataset": ("group",),
    "source": ("group",),
}

#: Schema names ``columns=`` may point at: the table's columns, plus ``flops`` (training compute
#: C, from which tokens are derived as D = C / (6·N) when the table has no token count).
FIELDS: tuple[str, ...] = (*NUMERIC_COLUMNS, "group", "seed", "flops")

# Unit-slip thresholds: see the messages in _unit_slips for what each one catches.
_MIN_PLAUSIBLE_PARAMS = 1e4
_MIN_TOKENS_PER_PARAM = 1e-2
_MAX_LISTED = 20
_LOSS_NAME_HINTS = (("bpb", "bits"), ("bpc", "bits"), ("bits", "bits"), ("ppl", "perplexity"),
                    ("perplexity", "perplexity"))


def _norm(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch not in "_- ")


def _alias_lookup() -> dict[str, str]:
    table = {}
    for canon, names in ALIASES.items():
        table[_norm(canon)] = canon
        for n in names:
            table[_norm(n)] = canon
    return table


class _Rows:
    """Names rows the way the user can find them: CSV lines for a file the CLI read (line 1 is
    the header), else the DataFrame's index labels (0-based positions after ``read_csv``)."""

    def __init__(self, df: pd.DataFrame):
        self.csv = df.attrs.get("source_csv")
        self.lines = bool(self.csv) and df.index.dtype.kind in "iu"

    def __call__(self, index: Iterable) -> str:
        idx = list(index)
        if self.lines:
            idx = [int(i) + 2 for i in idx]
        shown = ", ".join(map(str, idx[:_MAX_LISTED]))
        more = f" and {len(idx) - _MAX_LISTED} more" if len(idx) > _MAX_LISTED else ""
        return f"{'CSV lines' if self.lines else 'rows'} [{shown}{more}]"

    def legend(self) -> str:
        if self.lines:
            return f"(CSV lines of {self.csv}; line 1 is the header)"
        return "(rows are the table's index labels: 0-based data rows for a fresh pandas.read_csv)"


def _is_text(col: pd.Series) -> bool:
    """True when a column's values are not counts (not numbers, nor "4B"-style numbers)."""
    values, _ = parse_counts(col)
    present = col.notna()
    return bool(present.any()) and bool(values[present].isna().all())


def _example(col: pd.Series) -> str:
    v = col.dropna()
    if not len(v):
        return "nothing"
    first = v.iloc[0]
    return repr(first) if isinstance(first, str) else f"{float(first):g}" if isinstance(
        first, (int, float, np.integer, np.floating)) else repr(str(first))


class ColumnMap(NamedTuple):
    """What :func:`map_columns` made of a table's column names."""

    frame: pd.DataFrame  #: the renamed table
    mapping: dict[str, str]  #: original -> canonical name
    problems: list[str]  #: e.g. two columns claiming the same name
    hints: dict[str, list[str]]  #: per schema name, columns *not* used for it and why
    contested: frozenset[str]  #: schema names several columns claim (their problem is in ``problems``)


def map_columns(df: pd.DataFrame, columns: Mapping[str, str] | None = None) -> ColumnMap:
    """Rename the user's columns to the schema's names.

    ``columns`` (schema name -> column) is applied first and wins; the remaining columns are
    matched against :data:`ALIASES`. A numeric field is only ever satisfied by a numeric column,
    and names in :data:`AMBIGUOUS` are never mapped by guess.
    """
    problems: list[str] = []
    hints: dict[str, list[str]] = {}
    mapping: dict[str, str] = {}
    explicit = dict(columns or {})
    present = [str(c) for c in df.columns]
    bad: set[str] = set()  # entries with a problem; the sound ones still apply, so a bad one is
    # reported alone, not echoed as the other columns missing
    for field, col in explicit.items():
        if field not in FIELDS:
            problems.append(f"columns: {field!r} is not a schema name; use one of {list(FIELDS)}")
        elif col not in df.columns:
            near = difflib.get_close_matches(str(col), present, n=1, cutoff=0.5)
            problems.append(f"columns: {field}={col!r} names no column of the table"
                            + (f" (did you mean {near[0]!r}?)" if near else "") + f"; columns: {present}")
        elif field in df.columns and field != col:
            problems.append(f"columns: {field}={col!r}, but the table already has a column {field!r}; "
                            "rename or drop one of them")
        else:
            continue
        bad.add(field)
    used = [c for c in explicit.values()]
    for col in dict.fromkeys(c for c in used if used.count(c) > 1):
        fields = [f for f, c in explicit.items() if c == col]
        problems.append(f"columns: {col!r} is given for {fields}; one column can mean one thing")
        bad.update(fields)
    mapping.update({col: field for field, col in explicit.items() if col != field and field not in bad})

    lookup = _alias_lookup()
    claims: dict[str, list[str]] = {}
    for col in df.columns:
        if col in explicit.values():
            continue
        key = _norm(col)
        canon = lookup.get(key)
        if canon is not None and canon in explicit:
            continue  # the user said which column this is
        if canon is not None and canon in NUMERIC_COLUMNS and col != canon and _is_text(df[col]):
            hints.setdefault(canon, []).append(
                f"column {col!r} is named like {canon} but holds text (e.g. {_example(df[col])}), "
                "so it was not used")
            continue
        if canon is None and key in AMBIGUOUS:
            for field in AMBIGUOUS[key]:
                if field in explicit or field in df.columns:
                    continue
                others = [f for f in AMBIGUOUS[key] if f != field]
                what = f"{field} or {' or '.join(others)}" if others else f"{field}, or something else"
                hints.setdefault(field, []).append(
                    f"column {col!r} (e.g. {_example(df[col])}) could mean {what}, so it was not "
                    f"guessed; say which with columns={{{field!r}: {str(col)!r}}} "
                    f"(CLI: {_cli_columns(field, col)})")
            continue
        if canon is not None:
            claims.setdefault(canon, []).append(col)
    contested = {canon for canon, cols in claims.items() if len(cols) > 1}
    for canon, cols in claims.items():
        if canon in contested:
            options = " or ".join(f"columns={{{canon!r}: {str(c)!r}}}" for c in cols)
            cli = " or ".join(_cli_columns(canon, c) for c in cols)
            problems.append(f"columns {cols} all mean {canon!r}; keep one, or say which with {options} (CLI: {cli})")
            continue
        if cols[0] != canon:
            mapping[cols[0]] = canon
    return ColumnMap(df.rename(columns=mapping), mapping, problems, hints, frozenset(contested))


def name_of_tokens(mapping: Mapping[str, str]) -> str:
    return next((k for k, v in mapping.items() if v == "tokens"), "tokens")


def _suggest(missing: str, columns: Sequence[str], hints: Sequence[str] = ()) -> str:
    pool = [str(c) for c in columns]
    near = difflib.get_close_matches(missing, pool, n=1, cutoff=0.5)
    if not near:
        norm_pool = {_norm(c): c for c in pool}
        hit = difflib.get_close_matches(_norm(missing), list(norm_pool), n=1, cutoff=0.5)
        near = [norm_pool[h] for h in hit]
    aliases = ", ".join(ALIASES.get(missing, ())[:4])
    hint = f" (did you mean {near[0]!r}?)" if near and not hints else ""
    notes = "".join(f"; {h}" for h in hints)
    return (f"missing column {missing!r}{hint}{notes}; accepted names: {missing}, {aliases}, ..., "
            f"or name yours with columns={{{missing!r}: 'YourColumn'}} (CLI: --columns {missing}=YourColumn)")


def _unit_slips(df: pd.DataFrame, numeric: dict[str, pd.Series], rows: _Rows, loss_unit: str) -> list[str]:
    problems = []
    if "n_active" in numeric:
        n = numeric["n_active"]
        small = df.index[(n > 0) & (n < _MIN_PLAUSIBLE_PARAMS)]
        if len(small):
            problems.append(
                f"n_active: {rows(small)} are below {_MIN_PLAUSIBLE_PARAMS:.0e}, which looks like "
                "millions (or billions) of parameters; give plain counts, e.g. multiply by 1e6"
            )
    if "loss" in numeric:
        loss = numeric["loss"]
        big = df.index[loss > MAX_NATS]
        if len(big):
            given = "" if loss_unit == "nats" else f" after converting from {loss_unit}"
            problems.append(
                f"loss: {rows(big)} exceed ln(256k) = {MAX_NATS:.2f} nats{given}, more than the "
                "cross-entropy of any trained model over a vocabulary of up to 256k tokens "
                f"(the column spans {loss.min():.3g} to {loss.max():.3g}); if it holds perplexity, "
                "pass loss_unit='perplexity' (CLI: --loss-unit perplexity), if bits, loss_unit='bits'"
            )
    if "tokens" in numeric and "n_active" in numeric:
        ratio = numeric["tokens"] / numeric["n_active"]
        steps = df.index[(ratio > 0) & (ratio < _MIN_TOKENS_PER_PARAM)]
        if len(steps):
            problems.append(
                f"tokens: {rows(steps)} have fewer than n_active/100 tokens, which looks like a "
                "step count; give tokens, i.e. multiply steps by tokens per step (batch x sequence)"
            )
    return problems


def _cli_columns(field: str, col) -> str:
    """The ``--columns`` flag that maps ``col`` to ``field``, quoted for a shell when it must be
    (a column name with spaces, e.g. Epoch's ``Model Size``)."""
    import shlex

    return f"--columns {shlex.quote(f'{field}={col}')}"


def validate_runs(
    runs: pd.DataFrame,
    *,
    required: Sequence[str] = ("n_active", "tokens", "loss"),
    unit_checks: bool = True,
    duplicates: str = "error",
    columns: Mapping[str, str] | None = None,
    loss_unit: str | None = None,
) -> pd.DataFrame:
    """Check a run table against the schema and return a validated copy.

    Parameters
    ----------
    runs : pandas.DataFrame
        One row per finished training run. Aliases that mean one thing (``N``, ``D``, ``E``,
        ``G``, ``active_params``, ...) are renamed to the schema's names; the mapping is logged
        and stored in ``result.attrs["column_map"]``. Names that could mean several things
        (``Params``, ``data``, ``source``: :data:`AMBIGUOUS`) and text columns are never guessed.
    required : sequence of str
        Schema columns the caller needs (each law declares its own).
    unit_checks : bool
        Flag values that look like a unit slip (millions of parameters, perplexity instead of
        loss, steps instead of tokens). Turn off only for tables you have checked by hand.
    duplicates : {"error", "allow"}
        Repeated runs (and index labels) are an error in a table to fit; ``"allow"`` accepts
        them, for inputs to predict at (seed replicates share their inputs).
    columns : mapping, optional
        Which column is what, schema name -> column name, e.g.
        ``{"n_active": "ActiveParams", "tokens": "D"}``; applied before any alias. ``"flops"``
        names a training-compute column: when the table has no token count, tokens are derived
        as D = C / (6·N) (and the log says so).
    loss_unit : {"nats", "bits", "perplexity"}, optional
        Unit of the loss column, converted to nats per token (bits × ln 2, ln perplexity) and
        recorded in ``attrs["loss_unit"]``. Default nats; a loss column whose name says bits or
        perplexity (``bpb``, ``ppl`` ...) then needs the unit said explicitly.

    Numbers written as papers write them (``"4B"``, ``"64B"``, ``"1.3M"``) are read as counts,
    and the log says which columns used them.

    Returns
    -------
    pandas.DataFrame
        A copy with canonical column names, numeric schema columns as float64 (loss in nats),
        ``group`` as str (``"all"`` when absent), ``experts`` and ``granularity`` filled with 1
        when absent, the original index kept, and every other column untouched. ``attrs`` hold
        ``column_map``, ``loss_unit`` and ``notes`` (what was read or derived, in words).

    Raises
    ------
    DataValidationError
        Listing every problem found: missing or ambiguous columns (with the candidates),
        non-numeric, NaN/inf, non-positive values, E < 1, G < 1, n_total < n_active,
        duplicated runs and suspected unit slips, each naming the offending rows (CSV lines when
        the CLI read the file).
    """
    if not isinstance(runs, pd.DataFrame):
        raise DataValidationError(
            f"runs must be a pandas DataFrame, got {type(runs).__name__}; "
            "e.g. pandas.read_csv('runs.csv')"
        )
    if loss_unit is not None and loss_unit not in LOSS_UNITS:
        raise DataValidationError(f"loss_unit must be one of {list(LOSS_UNITS)}, got {loss_unit!r}")
    rows = _Rows(runs)
    df, mapping, problems, hints, contested = map_columns(runs, columns)
    notes: list[str] = []
    if mapping:
        notes.append("mapped columns " + ", ".join(f"{k!r}->{v!r}" for k, v in mapping.items()))
    if duplicates not in ("error", "allow"):
        raise ValueError(f"duplicates must be 'error' or 'allow', got {duplicates!r}")
    if df.index.has_duplicates and duplicates == "error":
        problems.append(
            f"the index has repeated labels {rows(df.index[df.index.duplicated()])}; "
            "rows could not be named unambiguously: call runs.reset_index(drop=True)"
        )
    # tokens from compute only when asked (columns={"flops": ...}): many tables carry a FLOPs column
    wants_flops = bool(columns) and "flops" in columns
    derive_tokens = wants_flops and "flops" in df.columns and "tokens" not in df.columns
    if wants_flops and "tokens" in df.columns:
        problems.append(f"columns: flops={columns['flops']!r} derives tokens, but the table has a token count "
                        f"too ({name_of_tokens(mapping)!r}); give one of them")
    need = [c for c in required if c not in df.columns and not (c == "tokens" and derive_tokens)]
    if derive_tokens and "n_active" not in df.columns and "n_active" not in need:
        need.append("n_active")
    if "loss" in need:
        for col in df.columns:
            said = next((u for key, u in _LOSS_NAME_HINTS if key in str(col).lower()), None)
            if said or "loss" in str(col).lower():
                unit = f" with loss_unit={said!r} (CLI: --loss-unit {said})" if said else ""
                hints.setdefault("loss", []).append(
                    f"column {col!r} looks like a loss: columns={{'loss': {str(col)!r}}}{unit}")
    # a field the user named, or one several columns claim: its problem is above already
    # a numeric field is only suggested a column of numbers (StepLaw's text 'exp_name' is no 'experts')
    problems += [_suggest(m, [c for c in df.columns if c not in FIELDS
                              and not (m in NUMERIC_COLUMNS and _is_text(df[c]))], hints.get(m, ()))
                 for m in need if m not in (columns or {}) and m not in contested]
    for field in ("group", "n_total"):
        if field not in df.columns and field not in need:
            for h in hints.get(field, ()):
                log.info("run table: %s", h)
    if len(df) == 0:
        problems.append("the table has no rows")

    name_of = {v: k for k, v in mapping.items()}
    unit = loss_unit or "nats"
    if loss_unit is None and "loss" in df.columns:
        low = str(name_of.get("loss", "loss")).lower()
        said = next((u for key, u in _LOSS_NAME_HINTS if key in low), None)
        if said:
            problems.append(f"loss: the column {name_of.get('loss', 'loss')!r} is named like {said}; say its "
                            f"unit: loss_unit={said!r} converts it to nats (CLI: --loss-unit {said}), "
                            "loss_unit='nats' keeps it as it is")

    numeric: dict[str, pd.Series] = {}
    suffixed = []
    for col in (*NUMERIC_COLUMNS, *(("flops",) if derive_tokens else ())):
        if col not in df.columns:
            continue
        raw = df[col]
        x, used_suffix = parse_counts(raw)
        if used_suffix:
            suffixed.append(f"{name_of.get(col, col)!r} (e.g. {_example(raw)} = {x.dropna().iloc[0]:.4g})")
        nonnum = df.index[x.isna() & raw.notna()]
        if len(nonnum):
            problems.append(f"{col}: {rows(nonnum)} are not numbers (e.g. {_example(raw[nonnum])})")
        nan = df.index[raw.isna()]
        if len(nan):
            problems.append(f"{col}: {rows(nan)} are missing (NaN)")
        inf = df.index[np.isinf(x)]
        if len(inf):
            problems.append(f"{col}: {rows(inf)} are infinite")
        nonpos = df.index[np.isfinite(x) & (x <= 0)]
        if len(nonpos):
            problems.append(f"{col}: {rows(nonpos)} are <= 0; every {col} must be positive")
        numeric[col] = x.where(np.isfinite(x))
    if suffixed:
        notes.append("read numbers written with K/M/B/T (x1e3/1e6/1e9/1e12) in " + ", ".join(suffixed))
    if "loss" in numeric and unit != "nats":
        if unit == "perplexity":
            below = df.index[numeric["loss"] < 1]
            if len(below):
                problems.append(f"loss: {rows(below)} are below 1, which no perplexity is")
        numeric["loss"] = loss_to_nats(numeric["loss"], unit)
        notes.append(f"loss converted from {unit} to nats per token "
                     f"({'x ln 2' if unit == 'bits' else 'ln of perplexity'})")
    if derive_tokens and "n_active" in numeric:
        numeric["tokens"] = numeric.pop("flops") / (6.0 * numeric["n_active"])
        notes.append(f"tokens derived from {name_of.get('flops', 'flops')!r} as D = C / (6·N) with N = n_active")

    for col, what in (("experts", "E"), ("granularity", "G")):
        if col in numeric:
            low = df.index[(numeric[col] > 0) & (numeric[col] < 1)]
            if len(low):
                problems.append(f"{col}: {rows(low)} have {what} < 1; {what} = 1 means dense")
    if "n_total" in numeric and "n_active" in numeric:
        inv = df.index[numeric["n_total"] < numeric["n_active"]]
        if len(inv):
            problems.append(
                f"n_total: {rows(inv)} are smaller than n_active; are the two columns swapped?"
            )
    if unit_checks:
        problems += _unit_slips(df, numeric, rows, unit)

    out = df.drop(columns=["flops"]) if derive_tokens else df.copy()
    for col, x in numeric.items():
        out[col] = x
    if "group" in out.columns:
        gnan = out.index[out["group"].isna()]
        if len(gnan):
            problems.append(f"group: {rows(gnan)} have no group label")
        out["group"] = out["group"].astype(str)
    else:
        out["group"] = "all"
    for col in ("experts", "granularity"):
        if col not in out.columns:
            out[col] = 1.0

    key = [c for c in KEY_COLUMNS if c in out.columns]
    dup_mask = out.duplicated(key, keep=False)
    # without a required input no two runs can be told apart: its missing column is the problem
    if dup_mask.any() and duplicates == "error" and not set(need) & set(KEY_COLUMNS):
        groups = out[dup_mask].groupby(key, dropna=False, sort=False).groups
        sets = [list(ix) for ix in groups.values()]
        listed = "; ".join(rows(s) for s in sets[:10]) + (f"; and {len(sets) - 10} more sets" if len(sets) > 10 else "")
        # what else tells the duplicated rows apart: a sweep over hyperparameters, not seeds
        # (a column unique over the whole table is a run name or id, which tells every row apart)
        other = [c for c in out.columns if c not in key and c not in ("loss", "seed") and not out[c].is_unique]
        counts = out[dup_mask].groupby(key, dropna=False, sort=False)[other].nunique(dropna=False) if other else None
        varying = [c for c in other if (counts[c] > 1).any()]
        hint = ""
        if varying:
            hint = (f" Within these sets the rows differ in {varying}: if that is a sweep (learning rate, batch "
                    "size...), keep one run per configuration, e.g. the best, before fitting; the law describes "
                    "the loss a configuration reaches, not every setting's.")
        if "seed" not in out.columns:
            hint += " If they are repeated seeds, add a 'seed' column that tells them apart."
        problems.append(f"duplicated runs (same {key}): {listed}.{hint}")

    if problems:
        raise DataValidationError(
            f"invalid run table ({len(problems)} problem{'s' * (len(problems) > 1)}) {rows.legend()}:\n  - "
            + "\n  - ".join(problems)
        )
    for note in notes:
        log.info("run table: %s", note)
    out.attrs = {"column_map": mapping, "loss_unit": unit, "notes": notes}
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


def design_notes(runs: pd.DataFrame, inputs: Sequence[str]) -> list[str]:
    """What a table's design cannot tell a law, in words: a sparsity input (``experts``,
    ``granularity``) with two or fewer distinct values, or one that moves with the size across the
    runs (|correlation of the logs| >= 0.9). Either way the law's terms in that input rest largely
    on their priors, and so do the odds of the best expert count. Empty when neither holds."""
    notes = []
    size = next((s for s in ("n_active", "n_total") if s in inputs), None)
    for choice in ("experts", "granularity"):
        if choice not in inputs or choice not in runs:
            continue
        values = np.unique(runs[choice].to_numpy(float))
        shown = ", ".join(f"{v:g}" for v in values)
        if len(values) <= 2:
            notes.append(f"the runs have {len(values)} distinct {choice} value{'s' * (len(values) > 1)} ({shown}): "
                         f"the law's {choice} terms rest largely on their priors, and so do the odds of the best "
                         f"{choice} count; runs at more {choice} values would pin them")
        elif size is not None:
            r = float(np.corrcoef(np.log(runs[choice].to_numpy(float)), np.log(runs[size].to_numpy(float)))[0, 1])
            if abs(r) >= 0.9:
                notes.append(f"{choice} moves with {size} across the runs (correlation of their logs {r:+.2f}): the "
                             f"table cannot tell their effects apart, so the law's {choice} terms rest largely on "
                             f"their priors; runs that vary {choice} at a fixed {size} would separate them")
    return notes
