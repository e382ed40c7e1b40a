"""Optima per posterior draw: oracles from ../shared/LAWS.md, edge cases, and a real posterior."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesmoe
from bayesmoe.laws import PUBLISHED
from bayesmoe.optima import Budget
from bayesmoe.shape import GB, ModelShape
from bayesmoe.testing import fake_result

ROOT = Path(__file__).resolve().parents[1]
E6 = (1, 2, 4, 8, 16, 32)


@pytest.fixture(scope="module")
def published():
    """The joint law's Table 3 coefficients as a point-mass posterior."""
    return fake_result("joint", dict(PUBLISHED["joint"]["ludziejewski2025"]), rel_sd=0.0, num_draws=4)


# LAWS.md §1.6 Table 1 as printed (N_act, D in billions), rows 3-5 of "Numbers a test can reproduce"
TABLE1 = {
    1e20: ([1.7, 1.5, 1.2, 0.990, 0.810, 0.669], [9.7, 11.4, 13.9, 17, 20.7, 24.9]),
    1e21: ([5.7, 5, 4.4, 3.8, 3.3, 2.85], [29.3, 33, 38, 44.3, 51.2, 58.4]),
    1e22: ([18.8, 17.4, 15.8, 14.4, 13.2, 12.2], [88.6, 96, 105.4, 115.8, 126.5, 136.9]),
}


def test_compute_optimal_configurations_reproduce_table_1(published):
    opt = published.optimal_experts(list(TABLE1), experts=E6)
    for flops, (n_printed, d_printed) in TABLE1.items():
        n = opt.dataset["n_active_at"].sel(budget=flops).isel(chain=0, draw=0).values / 1e9
        d = opt.dataset["tokens_at"].sel(budget=flops).isel(chain=0, draw=0).values / 1e9
        np.testing.assert_allclose(n, n_printed, rtol=0.025)
        np.testing.assert_allclose(d, d_printed, rtol=0.025)
    # LAWS.md's recomputed optimal losses (E = 1 and E = 32), to their 4 printed decimals
    loss = opt.dataset["loss_at"].isel(chain=0, draw=0)
    np.testing.assert_allclose(loss.sel(expert_count=1).values, [2.5897, 2.3502, 2.1575], atol=6e-5)
    np.testing.assert_allclose(loss.sel(expert_count=32).values, [2.4724, 2.2483, 2.0694], atol=6e-5)
    # more experts always improve the compute-optimal loss (finding 2): E* = 32 with certainty
    assert (opt.dataset["p_experts"].sel(expert_count=32) == 1).all()
    assert (opt.decision == 32).all() and np.allclose(opt.expected_regret, 0)


def test_fixed_e_optimum_is_the_chinchilla_closed_form_per_draw():
    """γ = ζ = 0: at fixed E the joint law is Chinchilla's with A = a·Ê^δ, α = −alpha, ...;
    every draw's optimum must equal Hoffmann's Eq. 4 with magnitudes (float64, rtol 1e-6)."""
    truth = {**PUBLISHED["joint"]["ludziejewski2025"], "gamma": 0.0, "zeta": 0.0}
    result = fake_result("joint", truth, rel_sd=0.05, num_draws=50, seed=3)
    flops = np.array([1e19, 1e21, 1e23])
    opt = result.optimal_config(flops, experts=8)
    post = result.posterior
    e_hat = 1 / (1 / (8 - 1 + 1 / (1 / post["e_start"] - 1 / post["e_max"])) + 1 / post["e_max"])
    big_a, big_b = post["a"] * e_hat ** post["delta"], post["b"] * e_hat ** post["omega"]
    alpha, beta = -post["alpha"], -post["beta"]
    g = (alpha * big_a / (beta * big_b)) ** (1 / (alpha + beta))
    for i, f in enumerate(flops):
        n_star = g * (f / 6) ** (beta / (alpha + beta))
        got = opt.dataset["n_active"].isel(budget=i)
        np.testing.assert_allclose(got.values, n_star.values, rtol=1e-6)
        np.testing.assert_allclose(opt.dataset["tokens"].isel(budget=i).values, f / 6 / n_star.values, rtol=1e-6)


@pytest.mark.parametrize("coefs, n_star, d_star", [
    ("hoffmann2022", 3.219e10, 2.982e12),   # LAWS.md row 17 (printed coefficients)
    ("besiroglu2024", 7.225e10, 1.329e12),  # row 18
])
def test_chinchilla_optimum_reproduces_derived_values(coefs, n_star, d_star):
    result = fake_result("chinchilla", dict(PUBLISHED["chinchilla"][coefs]), rel_sd=0.0, num_draws=2)
    opt = result.optimal_config(5.76e23)
    assert float(opt.dataset["n_active"].median()) == pytest.approx(n_star, rel=1e-3)
    assert float(opt.dataset["tokens"].median()) == pytest.approx(d_star, rel=1e-3)


# LAWS.md §1.6 Table 2 (paper) and the recomputed optimum; they differ in 3 cells by <= 0.005 loss
TABLE2_PAPER = {24: [16, 4, 1, 1], 80: [32, 16, 8, 1], 640: [32, 32, 32, 16]}
TABLE2_RECOMPUTED = {24: [32, 4, 1, 1], 80: [32, 16, 4, 1], 640: [32, 32, 32, 8]}


def test_memory_constrained_optimal_e_reproduces_table_2(published):
    flops = [1e21, 1e22, 1e23, 1e24]
    matches = 0
    for gb, paper in TABLE2_PAPER.items():
        opt = published.optimal_experts(flops, experts=E6, memory_gb=gb, context_tokens=16384)
        ours = opt.decision.values.astype(int).tolist()
        assert ours == TABLE2_RECOMPUTED[gb]
        loss = opt.dataset["loss_at"].isel(chain=0, draw=0)
        for i, (e_ours, e_paper) in enumerate(zip(ours, paper)):
            matches += e_ours == e_paper
            if e_ours != e_paper:  # a neighbouring power of 2 at almost the same loss
                assert e_ours in (e_paper // 2, e_paper * 2)
                gap = float(loss.isel(budget=i).sel(expert_count=e_paper) - loss.isel(budget=i).sel(expert_count=e_ours))
                # measured 0.0041, 0.0057, 0.0067; LAWS.md's "<= 0.005" is contradicted by its
                # own example (2.0111 - 2.0054 = 0.0057), checked below
                assert 0 <= gap <= 0.007
        if gb == 80:  # LAWS.md's worked example: (1e23, 80 GB) E=4 2.0054, E=8 2.0111
            cell = loss.sel(budget=1e23)
            assert float(cell.sel(expert_count=4)) == pytest.approx(2.0054, abs=2e-4)
            assert float(cell.sel(expert_count=8)) == pytest.approx(2.0111, abs=2e-4)
        assert float(opt.dataset["memory_truncated"].max()) > 0  # the limit binds somewhere
    assert matches == 9


def test_memory_labels_of_figure_4():
    """Dense 2B / 5B / 10B with a 32k-token KV cache in bf16: 12.7 / 26.7 / 46.8 GB (row 7)."""
    shape = ModelShape()
    gb = [float(shape.memory_bytes(n, 1.0, 32768)) / GB for n in (2e9, 5e9, 10e9)]
    np.testing.assert_allclose(gb, [12.75, 26.66, 46.84], atol=0.01)


def test_flops_per_token_of_the_rule_of_thumb_models():
    """E=2 (d 1408, 22 blocks) and E=4 (d 1152, 18 blocks) use 36 % and 61 % fewer FLOPs per token
    than the dense d 1664, 26-block model (row 8)."""
    def per_token(d, blocks):
        return float(ModelShape.train_flops_per_token(ModelShape(n_blocks=blocks).n_active_of_d(np.float32(d))))

    dense = per_token(1664, 26)
    assert 1 - per_token(1408, 22) / dense == pytest.approx(0.36, abs=0.01)
    assert 1 - per_token(1152, 18) / dense == pytest.approx(0.61, abs=0.01)


def test_flop_savings_match_the_derived_figure_2b_values(published):
    table = {2: [7.1, 12.2, 17.0], 8: [30.7, 40.5, 48.9], 32: [57.3, 64.1, 69.9]}  # LAWS.md §1.6, %
    for e, expected in table.items():
        got = published.flop_savings([1e18, 1e20, 1e22], experts=e)["savings_median"].values * 100
        np.testing.assert_allclose(got, expected, atol=0.051)  # printed to 0.1 %


def test_inference_aware_search_agrees_with_the_closed_form_and_spends_the_budget(published):
    flops = np.array([1e20, 1e22])
    closed = published.optimal_experts(flops, experts=(1, 8))
    search = published.optimal_experts(flops, experts=(1, 8), serve_tokens=1e-9)
    np.testing.assert_allclose(search.dataset["n_active_at"].values, closed.dataset["n_active_at"].values, rtol=1e-6)
    serve = published.optimal_experts(flops, experts=(1, 8), serve_tokens=1e11)
    n, d = serve.dataset["n_active_at"].values, serve.dataset["tokens_at"].values
    spent = 6 * n * d + 2 * n * 1e11
    np.testing.assert_allclose(spent, np.broadcast_to(flops[:, None, None, None], spent.shape), rtol=1e-9)
    # serving traffic favours smaller models trained longer (paper §4.4)
    assert (n < closed.dataset["n_active_at"].values).all()


def test_summary_and_dataset_layout(published):
    opt = published.optimal_experts([1e20, 1e21], ci_prob=0.8)
    ds = opt.dataset
    for var in ("experts", "n_active", "tokens", "loss"):
        assert ds[var].dims == ("budget", "chain", "draw")
    assert ds["p_experts"].dims == ("budget", "expert_count")
    np.testing.assert_allclose(ds["p_experts"].sum("expert_count"), 1.0)
    table = opt.summary()
    assert list(table.index) == [1e20, 1e21]
    assert {"E_decision", "expected_regret", "E* median", "N_act* 80% lo", "loss* 80% hi", "P(E*=256)"} <= set(table)
    long = opt.to_dataframe()
    assert len(long) == 2 * ds.sizes["chain"] * ds.sizes["draw"]


def test_decision_minimises_expected_loss_and_regret_is_nonnegative():
    result = fake_result("joint", rel_sd=0.15, num_draws=200, seed=5)
    opt = result.optimal_experts([1e19, 1e21], experts=(1, 4, 16, 64), memory_gb=2, context_tokens=4096)
    expected = opt.dataset["loss_at"].mean(("chain", "draw"))
    assert (opt.decision == expected.idxmin("expert_count")).all()
    assert (opt.expected_regret >= 0).all()
    # a spread posterior gives a spread decision at this memory limit
    assert float(opt.dataset["p_experts"].max()) < 1.0


def test_bad_budgets_and_impossible_constraints_raise(published):
    with pytest.raises(ValueError, match="positions \\[1\\]"):
        Budget([1e20, -1.0])
    with pytest.raises(ValueError, match="cannot pay for even the smallest model") as info:
        published.optimal_experts(1e6)
    assert "serving" not in str(info.value) and "raise --flops (flops=) above 3.89e+07" in str(info.value)
    with pytest.raises(ValueError, match="and serving 1e\\+11 tokens at 2·N FLOPs each costs 1.3e\\+18") as info:
        published.optimal_experts(1e16, serve_tokens=1e11)  # the README's old example, in Python
    assert "lower --serve-tokens (serve_tokens=)" in str(info.value)
    with pytest.raises(ValueError, match="no configuration fits in 0.001 GB"):
        published.optimal_experts(1e21, memory_gb=0.001)
    chinchilla = fake_result("chinchilla", rel_sd=0.0, num_draws=2)
    with pytest.raises(ValueError, match="no expert count"):
        chinchilla.optimal_experts(1e21)
    with pytest.raises(TypeError, match="either in the Budget or as keywords"):
        published.optimal_experts(Budget(1e21), memory_gb=80)


def test_compare_gives_probability_and_interval(published):
    a = {"n_active": 1e9, "tokens": 4e10, "experts": 8}
    b = {"n_active": 1e9, "tokens": 2e10, "experts": 8}
    out = published.compare(a, b)
    assert out["p_a_better"] == 1.0 and out["diff_hi"] < 0


def test_real_posterior_intervals_widen_past_the_fitted_range():
    """The shipped fit (runs of 2e10-2e13 FLOPs): the interval of ln N* and of the optimal loss
    grows with every decade of extrapolation, and the summary says how far out each budget is."""
    result = bayesmoe.load(ROOT / "models" / "reference_joint.nc")
    budgets = [1e12, 1e15, 1e18, 1e21]
    opt = result.optimal_config(budgets, experts=4, ci_prob=0.9)
    log_n = np.log(opt.dataset["n_active"])
    width = (log_n.quantile(0.95, ("chain", "draw")) - log_n.quantile(0.05, ("chain", "draw"))).values
    loss = opt.dataset["loss"]
    loss_width = (loss.quantile(0.95, ("chain", "draw")) - loss.quantile(0.05, ("chain", "draw"))).values
    assert np.all(np.diff(width) > 0), width
    assert np.all(np.diff(loss_width[1:]) > 0), loss_width
    decades = opt.dataset["compute_decades"].values  # the budget's own distance in compute
    assert decades[0] == 0 and np.all(np.diff(decades) > 0)
    assert decades[-1] == pytest.approx(np.log10(1e21 / opt.dataset.attrs["fitted_flops_max"]))
    # the optimum's distance beyond the fitted runs (every input, and N·D) grows with them
    assert np.all(np.diff(opt.summary()["extrapolation_decades"].values) > 0)
    assert isinstance(opt.summary(), pd.DataFrame)


# Krajewski et al. 2024 Table 2: (E x N_act, D, G, FLOPs, loss), LAWS.md rows 12-15
TABLE2_FG = [(100e6, 4.37e9, 8, 2.95e18, 3.133), (1e9, 28.94e9, 16, 1.93e20, 2.491),
             (3e9, 72.9e9, 16, 1.41e21, 2.245), (7e9, 137.6e9, 32, 6.46e21, 2.076),
             (70e9, 941.07e9, 32, 4.16e23, 1.694), (300e9, 2.96e12, 64, 5.69e24, 1.503),
             (1e12, 7.94e12, 64, 4.97e25, 1.367)]


def _fg_total(n_act):
    """N_total (non-embedding) of the paper's shape from N_act = 12·d²·n_blocks, d = 64·n_blocks."""
    d = (64 * n_act / 12) ** (1 / 3)
    return d * d * (8 * 64 + 4) * d / 64


def test_fine_grained_flops_loss_and_granularity_reproduce_krajewski_table_2():
    from bayesmoe.optima import fine_grained_flops

    result = fake_result("fine_grained", dict(PUBLISHED["fine_grained"]["krajewski2024"]), rel_sd=0.0, num_draws=2)
    n_total = np.array([_fg_total(r[0]) for r in TABLE2_FG])
    tokens, g_paper, flops, loss_paper = (np.array([r[i] for r in TABLE2_FG]) for i in range(1, 5))
    np.testing.assert_allclose(fine_grained_flops(n_total, tokens, g_paper), flops, rtol=0.01)  # rows 12-13
    opt = result.optimal_config(flops, n_total=n_total)  # the paper's models at the paper's budgets
    assert opt.decision.values.astype(int).tolist() == g_paper.astype(int).tolist()  # row 15
    loss = opt.dataset["loss_at"].isel(chain=0, draw=0)
    at_paper_g = np.array([float(loss.isel(budget=i).sel(granularity_level=int(g))) for i, g in enumerate(g_paper)])
    np.testing.assert_allclose(at_paper_g, loss_paper, atol=0.03)  # row 14 (rounded alpha: 0.011-0.023 low)
    np.testing.assert_allclose(opt.dataset["tokens"].isel(chain=0, draw=0).values, tokens, rtol=0.01)


def test_fine_grained_free_optimum_picks_the_published_granularity():
    result = fake_result("fine_grained", dict(PUBLISHED["fine_grained"]["krajewski2024"]), rel_sd=0.0, num_draws=2)
    opt = result.optimal_config([1.93e20, 6.46e21])
    assert opt.decision.values.astype(int).tolist() == [16, 32]
    table = opt.summary()
    assert {"G_decision", "N_total* median", "P(G*=64)"} <= set(table)


def test_sparsity_optimum_matches_a_brute_force_grid_and_the_papers_trend():
    """Abnar et al.: at fixed compute, the optimal total N grows with sparsity and the active N
    shrinks. The golden-section optimum must agree with a dense grid over d_model (float64)."""
    result = fake_result("sparsity", rel_sd=0.0, num_draws=2)
    experts = (1, 4, 16, 64)
    opt = result.optimal_experts([1e20], experts=experts)
    n_tot = opt.dataset["n_total_at"].isel(budget=0, chain=0, draw=0).values
    loss = opt.dataset["loss_at"].isel(budget=0, chain=0, draw=0).values
    assert np.all(np.diff(n_tot) > 0)
    n_act = opt.dataset["n_active_at"].isel(budget=0, chain=0, draw=0).values
    assert np.all(np.diff(n_act) < 0)
    shape, p = ModelShape(), result.law
    truth = {k: float(v.values.flat[0]) for k, v in result.posterior.items() if k in p.params}
    d = np.exp(np.linspace(np.log(64), np.log(1e5), 200001))
    for i, e in enumerate(experts):
        nt, na = np.asarray(shape.n_total_of_d(d, e)), np.asarray(shape.n_active_of_d(d))
        tokens = 1e20 / (6 * na)
        grid_loss = (truth["a"] * nt ** -truth["alpha"] + truth["b"] * tokens ** -truth["beta"]
                     + truth["c"] * e ** truth["lambda"] + truth["d"] * e ** truth["delta"] * nt ** -truth["gamma"]
                     + truth["e"])
        j = np.argmin(grid_loss)
        assert loss[i] <= grid_loss[j] + 1e-9  # never worse than the grid
        assert n_tot[i] == pytest.approx(nt[j], rel=1e-3)  # grid step in d is 5e-5: N within 2e-4


def test_draws_without_an_optimum_are_kept_flagged_and_counted():
    """A posterior whose N exponent is positive in some draws: those draws have no compute-optimal
    size; they are reported (NaN, P(no optimum)) instead of failing the query or vanishing."""
    truth = dict(PUBLISHED["joint"]["ludziejewski2025"])
    result = fake_result("joint", {**truth, "gamma": 0.0}, rel_sd=0.0, num_draws=10)
    alpha = result.tree["posterior"]["alpha"]
    alpha[0, :5] = 0.05  # five of twenty draws: loss grows with N
    with pytest.warns(UserWarning, match="25.0% of the posterior draws have no optimum"):
        opt = result.optimal_experts([1e20], experts=(1, 8))
    assert float(opt.dataset["p_no_optimum"].item()) == pytest.approx(0.25)
    assert int(np.isnan(opt.dataset["loss"]).sum()) == 5
    assert float(opt.dataset["p_experts"].sum()) == pytest.approx(0.75)
    assert opt.summary()["P(no optimum)"].iloc[0] == pytest.approx(0.25)
    assert np.isfinite(opt.expected_regret).all()


def test_draws_where_some_candidates_have_no_optimum_leave_the_decision_not_the_odds():
    """Five of twenty draws whose N exponent α + γ·ln Ê turns positive above E = 1: E = 8 and 64
    have no finite optimum in them (infinite loss), E = 1 has. Averaged with them, every expected
    loss but E = 1's was infinite and the pick was E = 1 by default (a user's StepLaw fit: regret
    inf). The decision and its regret average over the draws where every candidate has an
    optimum, and P(incomplete) says how many were left out."""
    truth = dict(PUBLISHED["joint"]["ludziejewski2025"])
    result = fake_result("joint", truth, rel_sd=0.0, num_draws=10)
    post = result.tree["posterior"]
    post["alpha"][0, :5] = -0.06
    post["gamma"][0, :5] = 0.05
    opt = result.optimal_experts([1e20], experts=(1, 8, 64))
    loss_at = opt.dataset["loss_at"]
    assert int(np.isinf(loss_at).sum()) == 10 and float(opt.dataset["p_no_optimum"].item()) == 0.0
    # the other fifteen draws, all alike (rel_sd=0), rank E = 64 first: so does the decision
    altered = np.zeros(20, bool)
    altered[:5] = True
    others = loss_at.stack(d=("chain", "draw")).values[0][:, ~altered]
    assert (others.argmin(axis=0) == 2).all() and int(opt.decision.item()) == 64
    row = opt.summary().iloc[0]
    assert row["P(incomplete)"] == pytest.approx(0.25) and np.isfinite(row["expected_regret"])
    # the odds still count every draw: in the five, E = 1 is the only optimum, so it is theirs
    assert float(opt.dataset["p_experts"].sel(expert_count=1).item()) == pytest.approx(0.25)
    # a candidate with no optimum in any draw (beyond a memory limit) is never picked and leaves
    # every draw complete: the shipped fit at 1e12 FLOPs in 10 kB, where E = 256 does not fit
    shipped = bayesmoe.load(ROOT / "models" / "reference_joint.nc")
    opt = shipped.optimal_experts(1e12, memory_gb=1e-5, shape=ModelShape(vocab=256, n_blocks=2))
    assert not np.isfinite(opt.dataset["loss_at"].sel(expert_count=256)).any()
    row = opt.summary().iloc[0]
    assert row["E_decision"] != 256 and np.isfinite(row["expected_regret"]) and "P(incomplete)" not in row


def test_laws_without_a_memory_model_take_the_cli_defaults_and_refuse_limits():
    """`bayesmoe optimal` passes memory_gb=None, context 0, serving 0 for every law; the
    fine-grained and sparsity optima took no such keywords and crashed with a TypeError."""
    from bayesmoe.optima import recommend

    for law in ("fine_grained", "sparsity"):
        result = fake_result(law, rel_sd=0.0, num_draws=2)
        opt = recommend(result, [1e20], memory_gb=None, context_tokens=0.0, serve_tokens=0.0)
        assert float(opt.dataset["p_no_optimum"].item()) == 0.0
        with pytest.raises(ValueError, match="memory limits and serving tokens are implemented for the joint"):
            recommend(result, [1e20], memory_gb=80)
