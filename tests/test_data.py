import numpy as np
import pandas as pd
import pytest

from bayesmoe import DataValidationError, validate_runs


def good_table(n=6):
    return pd.DataFrame({
        "n_active": np.geomspace(1e7, 1e9, n),
        "tokens": np.geomspace(1e9, 1e11, n),
        "loss": np.linspace(3.5, 2.5, n),
        "experts": [1.0, 2.0, 4.0, 8.0, 16.0, 32.0][:n],
    })


def errors_of(df, **kw) -> str:
    with pytest.raises(DataValidationError) as info:
        validate_runs(df, **kw)
    return str(info.value)


def test_valid_table_passes_and_keeps_everything():
    df = good_table().assign(note="x")
    out = validate_runs(df)
    assert len(out) == len(df) and list(out.index) == list(df.index)
    assert (out["note"] == "x").all()  # unknown columns kept untouched
    assert (out["group"] == "all").all() and (out["granularity"] == 1).all()
    assert df.columns.tolist() == ["n_active", "tokens", "loss", "experts", "note"]  # input untouched


def test_aliases_are_mapped_and_reported(caplog):
    df = good_table().rename(columns={"n_active": "N", "tokens": "D", "experts": "E", "loss": "final_loss"})
    with caplog.at_level("INFO", logger="bayesmoe"):
        out = validate_runs(df)
    assert out.attrs["column_map"] == {"N": "n_active", "D": "tokens", "E": "experts", "final_loss": "loss"}
    assert "'N'->'n_active'" in caplog.text


def test_missing_column_suggests_closest():
    df = good_table().rename(columns={"tokens": "tokns"})
    msg = errors_of(df)
    assert "missing column 'tokens'" in msg and "'tokns'" in msg


def test_ambiguous_aliases_are_refused():
    df = good_table().assign(params=1e8)
    msg = errors_of(df)
    assert "n_active" in msg and "params" in msg


def test_every_value_problem_is_reported_at_once_with_rows_and_columns():
    df = good_table()
    df["tokens"] = df["tokens"].astype(object)
    df.loc[1, "tokens"] = "lots"          # non-numeric
    df.loc[2, "loss"] = np.nan            # NaN
    df.loc[3, "n_active"] = np.inf        # inf
    df.loc[4, "loss"] = -1.0              # <= 0
    df.loc[5, "experts"] = 0.5            # E < 1
    msg = errors_of(df)
    assert "5 problems" in msg
    assert "tokens: rows [1] are not numbers" in msg
    assert "loss: rows [2] are missing (NaN)" in msg
    assert "n_active: rows [3] are infinite" in msg
    assert "loss: rows [4] are <= 0" in msg
    assert "experts: rows [5] have E < 1" in msg


def test_granularity_below_one_and_swapped_totals():
    df = good_table().assign(granularity=[1.0, 2.0, 0.25, 1.0, 1.0, 1.0], n_total=1e10)
    df.loc[0, "n_total"] = 1e6  # smaller than n_active
    msg = errors_of(df)
    assert "granularity: rows [2] have G < 1" in msg
    assert "n_total: rows [0" in msg and "swapped" in msg


def test_duplicates_named_with_seed_hint():
    df = pd.concat([good_table(), good_table().iloc[[2]]], ignore_index=True)
    msg = errors_of(df)
    assert "duplicated runs" in msg and "rows [2, 6]" in msg and "'seed' column" in msg
    # repeated seeds are legitimate once told apart
    df["seed"] = [0, 0, 0, 0, 0, 0, 1]
    validate_runs(df)


@pytest.mark.parametrize(
    ("column", "value", "fragment"),
    [
        ("n_active", 350.0, "looks like millions"),
        ("loss", 35.0, "looks like perplexity"),
        ("tokens", 1e4, "looks like a step count"),
    ],
)
def test_unit_slips_name_rows_and_fix(column, value, fragment):
    df = good_table()
    df.loc[3, column] = value
    msg = errors_of(df)
    assert fragment in msg and f"{column}: rows [3]" in msg
    validate_runs(df, unit_checks=False)  # the escape hatch for hand-checked tables


def test_non_dataframe_and_empty_and_repeated_index():
    assert "pandas DataFrame" in errors_of({"n_active": [1]})
    assert "no rows" in errors_of(good_table().iloc[:0])
    df = good_table()
    df.index = [0, 0, 1, 2, 3, 4]
    assert "repeated labels" in errors_of(df)


def test_missing_group_label():
    df = good_table().assign(group=["a", "a", None, "b", "b", "b"])
    assert "group: rows [2] have no group label" in errors_of(df)


def test_long_row_lists_are_truncated_but_counted():
    df = good_table(6)
    big = pd.concat([df] * 10, ignore_index=True).assign(seed=range(60))
    big["loss"] = -1.0
    msg = errors_of(big)
    assert "and 40 more" in msg
