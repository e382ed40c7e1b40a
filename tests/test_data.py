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
    # 'params' is total parameters in one table and active in another: never guessed
    df = good_table().rename(columns={"n_active": "params"})
    msg = errors_of(df)
    assert "missing column 'n_active'" in msg
    assert "column 'params' (e.g. 1e+07) could mean n_active or n_total" in msg
    assert "columns={'n_active': 'params'}" in msg and "--columns n_active=params" in msg
    out = validate_runs(df, columns={"n_active": "params"})
    assert out.attrs["column_map"] == {"params": "n_active"}
    # beside a real n_active, the ambiguous column is left as it is, not mapped to n_total
    out = validate_runs(good_table().assign(params=1e8))
    assert "n_total" not in out and (out["params"] == 1e8).all()


def test_two_columns_for_one_name_list_the_candidates():
    df = good_table().assign(N=np.geomspace(1e7, 1e9, 6))
    msg = errors_of(df)
    assert "columns ['n_active', 'N'] all mean 'n_active'" in msg and "--columns n_active=n_active" in msg


def test_a_numeric_name_is_never_suggested_a_text_column():
    df = good_table().drop(columns="experts").assign(exp_name=[f"run{i}" for i in range(6)], nume=8.0)
    msg = errors_of(df, required=("n_active", "tokens", "experts", "loss"))
    assert "missing column 'experts'" in msg and "exp_name" not in msg


def test_an_active_parameter_column_beside_a_bare_n_is_not_guessed_away():
    # StepLaw's MoE table has N (total parameters, nearly one value) and Na (active): mapping N to
    # n_active by its name alone gave a GREEN fit with absurd optima. Both claim n_active, so the
    # user must say which.
    df = good_table().rename(columns={"n_active": "Na"}).assign(N=2.15e9)
    msg = errors_of(df)
    assert "columns ['Na', 'N'] all mean 'n_active'" in msg and "--columns n_active=Na" in msg
    assert "missing column 'n_active'" not in msg  # the claim is the problem, said once
    out = validate_runs(df, columns={"n_active": "Na"})
    assert (out["n_active"] == good_table()["n_active"]).all() and (out["N"] == 2.15e9).all()


def test_only_a_numeric_column_satisfies_a_numeric_name():
    df = good_table().drop(columns="tokens").assign(D="Pile")
    msg = errors_of(df)
    assert "column 'D' is named like tokens but holds text (e.g. 'Pile'), so it was not used" in msg
    df = good_table().drop(columns="tokens").assign(data="Pile")
    msg = errors_of(df)
    assert "column 'data' (e.g. 'Pile') could mean tokens or group" in msg


def test_columns_say_what_is_what():
    df = good_table().rename(columns={"n_active": "ActiveParams", "tokens": "Tok", "loss": "xent"})
    out = validate_runs(df, columns={"n_active": "ActiveParams", "tokens": "Tok", "loss": "xent"})
    assert out.attrs["column_map"] == {"ActiveParams": "n_active", "Tok": "tokens", "xent": "loss"}
    assert np.allclose(out["tokens"], good_table()["tokens"])
    msg = errors_of(df, columns={"n_actve": "ActiveParams", "tokens": "Toks"})
    assert "'n_actve' is not a schema name" in msg and "tokens='Toks' names no column" in msg
    assert "did you mean 'Tok'?" in msg
    msg = errors_of(good_table().assign(D=1.0), columns={"tokens": "D"})
    assert "the table already has a column 'tokens'" in msg


def test_a_bad_column_mapping_is_reported_alone():
    # StepLaw's table as a user meets it: N, D, a training 'loss' and the 'smooth loss' to fit
    df = good_table().rename(columns={"n_active": "N", "tokens": "D"}).assign(**{"smooth loss": 3.0})
    msg = errors_of(df, columns={"n_active": "N", "tokens": "D", "loss": "smooth loss"})
    assert "loss='smooth loss', but the table already has a column 'loss'" in msg
    # the sound entries applied: no echo of N and D as missing, nor of the runs as duplicates
    assert "(1 problem)" in msg and "missing column" not in msg and "duplicated" not in msg
    msg = errors_of(df.drop(columns="smooth loss"), columns={"n_active": "Nx", "tokens": "D"})
    assert "n_active='Nx' names no column of the table (did you mean 'N'?)" in msg
    assert "(1 problem)" in msg and "missing column 'n_active'" not in msg


def test_tokens_derived_from_a_flops_column(caplog):
    t = good_table()
    df = t.drop(columns="tokens").assign(C=6 * t["n_active"] * t["tokens"])
    with caplog.at_level("INFO", logger="bayesmoe"):
        out = validate_runs(df, columns={"flops": "C"})
    assert np.allclose(out["tokens"], t["tokens"], rtol=1e-12)
    assert "tokens derived from 'C' as D = C / (6·N)" in caplog.text
    assert any("D = C / (6·N)" in n for n in out.attrs["notes"])
    assert "give one of them" in errors_of(t.assign(C=1e20), columns={"flops": "C"})
    # a FLOPs column nobody asked about is kept as it is
    assert (validate_runs(t.assign(flops=1e20))["flops"] == 1e20).all()


def test_numbers_written_as_papers_write_them(caplog):
    df = good_table().astype({"n_active": object, "tokens": object})
    df["n_active"] = ["4B", "1.3M", "500k", "2.5b", "1e9", 7e8]
    df["tokens"] = ["64B", "95B", "130B", "1.2T", "165B", "200B"]
    with caplog.at_level("INFO", logger="bayesmoe"):
        out = validate_runs(df)
    assert out["n_active"].tolist() == [4e9, 1.3e6, 5e5, 2.5e9, 1e9, 7e8]
    assert out["tokens"].tolist() == [64e9, 95e9, 130e9, 1.2e12, 165e9, 200e9]
    assert "read numbers written with K/M/B/T" in caplog.text and "'64B' = 6.4e+10" in caplog.text
    df.loc[2, "n_active"] = "4 bn"
    assert "n_active: rows [2] are not numbers (e.g. '4 bn')" in errors_of(df)


def test_loss_units_convert_and_are_recorded():
    t = good_table()
    bits = validate_runs(t.assign(loss=t["loss"] / np.log(2)), loss_unit="bits")
    assert np.allclose(bits["loss"], t["loss"]) and bits.attrs["loss_unit"] == "bits"
    ppl = validate_runs(t.assign(loss=np.exp(t["loss"])), loss_unit="perplexity")
    assert np.allclose(ppl["loss"], t["loss"]) and ppl.attrs["loss_unit"] == "perplexity"
    assert validate_runs(t).attrs["loss_unit"] == "nats"
    assert "loss_unit must be one of" in errors_of(t, loss_unit="bpb")
    assert "rows [0] are below 1, which no perplexity is" in errors_of(t.assign(loss=[0.5, 2, 3, 4, 5, 6]),
                                                                     loss_unit="perplexity")


def test_a_loss_column_named_like_bits_or_perplexity_needs_its_unit():
    t = good_table().rename(columns={"loss": "wikitext bpb"})
    msg = errors_of(t, columns={"loss": "wikitext bpb"})
    assert "named like bits" in msg and "loss_unit='bits'" in msg and "--loss-unit bits" in msg
    validate_runs(t, columns={"loss": "wikitext bpb"}, loss_unit="nats")  # said explicitly: kept
    # without columns=, the missing-loss message points at the candidates and their units
    msg = errors_of(t)
    assert "column 'wikitext bpb' looks like a loss: columns={'loss': 'wikitext bpb'} with loss_unit='bits'" in msg


def test_perplexities_are_not_accepted_as_nats():
    # the table: perplexities 12.5-19.9 passed as nats (the old check was loss > 20)
    df = good_table().assign(loss=[12.5, 13.4, 15.0, 16.7, 18.2, 19.9])
    msg = errors_of(df)
    assert "loss: rows [0, 1, 2, 3, 4, 5] exceed ln(256k) = 12.45 nats" in msg
    assert "loss_unit='perplexity'" in msg
    # a column mixing 4-21: every row above ln(256k) is named, not only those above 20
    df = good_table().assign(loss=[4.0, 12.0, 12.6, 15.0, 19.0, 21.0])
    assert "loss: rows [2, 3, 4, 5] exceed" in errors_of(df)


def test_rows_of_a_csv_are_named_by_their_line(tmp_path):
    df = good_table()
    df.loc[3, "n_active"] = -1.0
    df.attrs["source_csv"] = "runs.csv"
    msg = errors_of(df)
    assert "n_active: CSV lines [5] are <= 0" in msg and "(CSV lines of runs.csv; line 1 is the header)" in msg
    df.attrs.clear()
    msg = errors_of(df)
    assert "n_active: rows [3] are <= 0" in msg and "0-based data rows" in msg


def test_ibm_moe_table_gets_no_silent_guesses(shared_data):
    # ColPret's IBM_MoE.csv: 'data' holds the corpus ("Pile"), 'Params' total parameters ("4B")
    ibm = pd.read_csv(shared_data / "colpret-hitchhiker" / "IBM_MoE.csv")
    msg = errors_of(ibm)
    assert "column 'Params' (e.g. '4B') could mean n_active or n_total" in msg
    assert "'data'" not in msg.split("missing column 'n_active'")[0]  # nothing mapped from the corpus name
    from bayesmoe.data import map_columns

    mapping = map_columns(ibm).mapping
    assert "data" not in mapping and "Params" not in mapping and mapping["tokens_seen"] == "tokens"
    first = ibm.iloc[:10]  # ST-k2: one model, ten checkpoints, total parameters "4B"
    out = validate_runs(first, columns={"n_total": "Params", "loss": "wikitext ppl"}, loss_unit="perplexity",
                        required=("n_total", "tokens", "loss"))
    assert (out["n_total"] == 4e9).all() and "n_active" not in out
    assert out["tokens"].iloc[0] == 64e9 and np.isclose(out["loss"].iloc[0], np.log(18.6648))
    assert any("K/M/B/T" in n for n in out.attrs["notes"])


def test_moduleformer_source_is_not_a_group(shared_data):
    from bayesmoe.data import map_columns

    tidy = pd.read_csv(shared_data / "colpret-hitchhiker" / "moduleformer_moe_checkpoints_tidy.csv")
    columns = map_columns(tidy)
    mapping, hints = columns.mapping, columns.hints
    assert "source" not in mapping and "data" not in mapping
    assert any("'source'" in h and "columns={'group': 'source'}" in h for h in hints["group"])


def test_epoch_table_with_tokens_from_flops(shared_data):
    raw = pd.read_csv(shared_data / "epoch-chinchilla" / "svg_extracted_data.csv")
    out = validate_runs(raw, columns={"n_active": "Model Size", "flops": "Training FLOP"})
    assert np.allclose(out["tokens"], raw["Training FLOP"] / (6 * raw["Model Size"]), rtol=1e-12)


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


def test_duplicates_from_a_hyperparameter_sweep_say_so_and_count_every_set():
    # StepLaw-style: every configuration trained at several learning rates; twelve sets in all
    base = pd.concat([good_table().assign(tokens=good_table()["tokens"] * k) for k in (1, 2)], ignore_index=True)
    df = pd.concat([base.assign(lr=lr, loss=base["loss"] + lr) for lr in (1e-3, 2e-3)], ignore_index=True)
    msg = errors_of(df)
    assert "; and 2 more sets." in msg
    assert "the rows differ in ['lr']: if that is a sweep" in msg and "keep one run per configuration" in msg
    # a run name tells every row apart, sweep or not: it is no sweep's evidence
    seeds = pd.concat([good_table(), good_table().iloc[[2]]], ignore_index=True).assign(run_id=[f"r{i}" for i in range(7)])
    msg = errors_of(seeds)
    assert "differ in" not in msg and "'seed' column" in msg


@pytest.mark.parametrize(
    ("column", "value", "fragment"),
    [
        ("n_active", 350.0, "looks like millions"),
        ("loss", 35.0, "if it holds perplexity"),
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


def test_design_notes_say_when_the_table_cannot_pin_the_expert_terms(tmp_path):
    from bayesmoe.data import design_notes
    from bayesmoe.testing import fake_result

    joint = ("n_active", "tokens", "experts")
    # good_table's E doubles as N grows: confounded (log correlation +1.00)
    (note,) = design_notes(good_table(), joint)
    assert note.startswith("experts moves with n_active across the runs (correlation of their logs +1.00)")
    # two expert counts, crossed with the sizes: too few values, however they are spread
    two = pd.DataFrame({"n_active": np.tile([1e7, 1e8, 1e9], 2), "tokens": 1e10, "experts": np.repeat([1.0, 8.0], 3)})
    (note,) = design_notes(two, joint)
    assert note.startswith("the runs have 2 distinct experts values (1, 8)")
    # four expert counts crossed with three sizes: nothing to say; a dense law never asks
    crossed = pd.DataFrame({"n_active": np.tile([1e7, 1e8, 1e9], 4), "tokens": 1e10,
                            "experts": np.repeat([1.0, 4.0, 16.0, 64.0], 3)})
    assert design_notes(crossed, joint) == [] and design_notes(two, ("n_active", "tokens")) == []
    # the report's trust section and the model card carry it
    runs = two.assign(loss=np.linspace(3.0, 2.5, 6), tokens=np.geomspace(1e9, 1e11, 6))
    fit = fake_result("joint", runs=runs, num_draws=20)
    (note,) = design_notes(fit.runs, fit.law.inputs)
    html = fit.report(tmp_path / "r.html").read_text()
    trust = html[html.index('id="trust"'):]
    assert "What the table's design cannot tell:</b> the runs have 2 distinct experts values" in trust
    assert f"- {note}" in fit.model_card()
