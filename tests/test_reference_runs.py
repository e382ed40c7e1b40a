"""Tests for reference_runs/: the torch MoE trainer that produces calibration tables."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from reference_runs import data as rdata  # noqa: E402
from reference_runs import sweep  # noqa: E402
from reference_runs.moe import (  # noqa: E402
    MoEConfig,
    MoELayer,
    MoETransformer,
    count_flops_per_token,
    count_params,
    dense_twin,
    grouped_mm_available,
)
from reference_runs.train import TrainConfig, train_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "reference_runs" / "configs" / "smoke.toml"
CALIBRATION = ROOT / "reference_runs" / "configs" / "calibration.toml"
REQUIRED = ["n_active", "n_total", "tokens", "experts", "granularity", "loss", "seed", "group"]
IMPLS = ["split", "loop"] + (["grouped"] if grouped_mm_available("cpu", torch.float32) else [])


def _grads(module, x):
    x = x.clone().requires_grad_(True)
    y, _ = module(x)
    (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    return y.detach(), x.grad


@pytest.mark.parametrize("gate_norm", ["scaled", "renorm", "softmax"])
@pytest.mark.parametrize("impl", IMPLS)
def test_one_expert_top1_moe_equals_dense_mlp(gate_norm, impl):
    torch.manual_seed(0)
    cfg = MoEConfig(d_model=32, experts=1, granularity=1, gate_norm=gate_norm, expert_impl=impl)
    moe = MoELayer(cfg)
    dense = dense_twin(moe)
    x = torch.randn(3, 7, 32)
    y_moe, gx_moe = _grads(moe, x)
    y_dense, gx_dense = _grads(dense, x)
    torch.testing.assert_close(y_moe, y_dense, atol=1e-6, rtol=0)
    torch.testing.assert_close(gx_moe, gx_dense, atol=1e-6, rtol=0)
    h = cfg.d_expert
    torch.testing.assert_close(moe.w13.grad[0, :, :h], dense.w1.weight.grad.T, atol=1e-6, rtol=0)
    torch.testing.assert_close(moe.w13.grad[0, :, h:], dense.w3.weight.grad.T, atol=1e-6, rtol=0)
    torch.testing.assert_close(moe.w2.grad[0], dense.w2.weight.grad.T, atol=1e-6, rtol=0)
    assert moe.router.weight.grad.abs().max() == 0  # one expert: the gate is identically 1


def test_whole_model_with_one_expert_moe_layers_equals_dense_model():
    torch.manual_seed(0)
    cfg = MoEConfig(d_model=32, n_blocks=2, seq_len=16)
    dense = MoETransformer(cfg)
    moe = MoETransformer(cfg)
    moe.load_state_dict(dense.state_dict())
    for block in moe.blocks:  # swap each dense FFN for the equivalent E = 1, G = 1 MoE layer
        layer = MoELayer(cfg)
        h = cfg.d_expert
        with torch.no_grad():
            layer.w13[0, :, :h] = block.ffn.w1.weight.T
            layer.w13[0, :, h:] = block.ffn.w3.weight.T
            layer.w2[0] = block.ffn.w2.weight.T
        block.ffn = layer
    idx = torch.randint(0, 256, (2, 16))
    outs = []
    for m in (dense, moe):
        logits, ce, _ = m(idx, idx.roll(-1, 1))
        ce.backward()
        outs.append((logits.detach(), m.embed.weight.grad, m.blocks[0].attn.qkv.weight.grad))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("gate_norm", ["scaled", "renorm"])
def test_expert_implementations_agree(gate_norm):
    torch.manual_seed(1)
    cfg = MoEConfig(d_model=32, experts=4, granularity=2, gate_norm=gate_norm,
                    expert_impl="loop")
    ref = MoELayer(cfg)
    x = torch.randn(4, 9, 32)
    y_ref, gx_ref = _grads(ref, x)
    for impl in IMPLS:
        other = MoELayer(cfg)
        other.load_state_dict(ref.state_dict())
        other.impl = impl
        y, gx = _grads(other, x)
        torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(gx, gx_ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(other.w13.grad, ref.w13.grad, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(other.router.weight.grad, ref.router.weight.grad,
                                   atol=1e-5, rtol=1e-5)


def test_grouped_path_handles_experts_with_no_tokens():
    if "grouped" not in IMPLS:
        pytest.skip("torch.nn.functional.grouped_mm does not run on this CPU build")
    torch.manual_seed(2)
    cfg = MoEConfig(d_model=32, experts=64, expert_impl="grouped")
    layer = MoELayer(cfg)
    x = torch.randn(1, 5, 32)  # 5 tokens, 64 experts: most experts get none
    y, gx = _grads(layer, x)
    assert torch.isfinite(y).all() and torch.isfinite(gx).all()


@pytest.mark.parametrize("experts,granularity", [(1, 1), (4, 1), (1, 4), (8, 2), (16, 4)])
def test_counts_match_the_instantiated_model(experts, granularity):
    cfg = MoEConfig(d_model=64, n_blocks=3, experts=experts, granularity=granularity)
    model = MoETransformer(cfg)
    c = count_params(cfg)
    by_kind = {"emb": 0, "router": 0, "norm": 0, "expert_or_attn": 0}
    for name, p in model.named_parameters():
        if name.startswith(("embed.", "unembed.")):
            by_kind["emb"] += p.numel()
        elif "router" in name:
            by_kind["router"] += p.numel()
        elif p.dim() == 1:
            by_kind["norm"] += p.numel()
        else:
            by_kind["expert_or_attn"] += p.numel()
    assert by_kind["emb"] == c["embedding_params"] == 2 * 64 * 256
    assert by_kind["router"] == c["router_params"]
    assert by_kind["norm"] == c["norm_params"]
    assert by_kind["expert_or_attn"] == c["n_total_nonemb"]
    assert sum(p.numel() for p in model.parameters()) == c["n_params_all"]
    d, nb = 64, 3
    # LAWS.md §1.4 (joint law, Eq. 9 and 10) with this model's vocabulary
    assert c["n_active"] == 2 * d * 256 + 13 * nb * d * d
    assert c["n_total"] == 2 * d * 256 + (4 + 9 * experts) * nb * d * d
    assert count_flops_per_token(cfg)["flops_per_token"] == 6 * c["n_active"]


def test_active_parameters_do_not_change_with_granularity():
    base = count_params(MoEConfig(d_model=96, n_blocks=2, experts=8))
    for g in (2, 4, 8):
        c = count_params(MoEConfig(d_model=96, n_blocks=2, experts=8, granularity=g))
        assert (c["n_active"], c["n_total"]) == (base["n_active"], base["n_total"])
        assert c["router_params"] == g * base["router_params"]


def test_gcide_cleaning_strips_pronunciations_tags_and_markup():
    raw = ("00-database-url\n   ftp://example\n\n"
           "0 \\0\\ adj.\n   1. zero\n\n"
           "Feel \\Feel\\, n.\n   1. Feeling; perception. [R.]\n      [1913 Webster]\n\n"
           "            Blind men say black feels {rough}.      --Dryden.\n"
           "      [1913 Webster]\n")
    out = rdata.clean_gcide(raw)
    assert out == ("0 adj. 1. zero\nFeel, n. 1. Feeling; perception. [R.]\n"
                   "Blind men say black feels rough. --Dryden.\n")


def test_bundled_sample_loads_with_a_fixed_disjoint_split():
    a, b = rdata.load_corpus("sample"), rdata.load_corpus("sample")
    assert a.name == "sample" and len(a.train) > 100_000 and len(a.heldout) > 5_000
    assert torch.equal(a.heldout, b.heldout)
    x, y = a.eval_windows(4096, 64)
    assert x.shape == (64, 64) and torch.equal(x[:, 1:], y[:, :-1])


def test_wsd_branches_and_cosine_runs_produce_falling_loss():
    corpus = rdata.load_corpus("sample")
    cfg = MoEConfig(d_model=32, n_blocks=1, seq_len=64, experts=4)
    tc = TrainConfig(lr=4e-3, batch_size=8, eval_tokens=4096, warmup_steps=5)
    rows = train_run(cfg, [20_000, 60_000], tc, corpus=corpus)
    assert [r["tokens"] for r in rows] == [19968, 59904]
    assert rows[1]["loss"] < rows[0]["loss"] < 5.6  # below uniform over bytes, ln 256 = 5.55
    again = train_run(cfg, [20_000], tc, corpus=corpus)  # a branch equals a standalone run
    assert again[0]["loss"] == pytest.approx(rows[0]["loss"], abs=1e-5)
    cos = train_run(cfg, [20_000], TrainConfig(**{**tc.__dict__, "schedule": "cosine"}),
                    corpus=corpus)
    assert cos[0]["loss"] < 5.6 and cos[0]["schedule"] == "cosine"


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_smoke_sweep_writes_rows_and_resumes(tmp_path):
    out = tmp_path / "smoke.csv"
    sweep.main([str(SMOKE), "--out", str(out), "--workers", "2", "--no-progress"])
    rows = _read(out)
    assert len(rows) == 5
    assert all(c in rows[0] for c in REQUIRED + ["flops", "tokens_per_s", "torch_version",
                                                 "device", "lr", "gate_norm", "split"])
    keys = {tuple(r[c] for c in REQUIRED if c != "loss") for r in rows}
    assert len(keys) == len(rows)  # no duplicate (n_active, n_total, tokens, E, G, seed, group)
    assert all(0 < float(r["loss"]) < 5.6 for r in rows)
    sweep.main([str(SMOKE), "--out", str(out), "--workers", "2", "--no-progress"])
    assert len(_read(out)) == 5  # everything present: nothing re-run


def test_calibration_config_expands_to_the_documented_grid():
    units = sweep.expand_grid(sweep.load_config(CALIBRATION))
    main = [u for u in units if u["block"] == "main"]
    assert len({u["size"] for u in main}) >= 5
    assert {u["experts"] for u in main} >= {1, 4, 16, 64}
    assert all(len(u["budgets"]) >= 4 for u in main)
    assert any(u["granularity"] == 4 for u in units)
    assert any(u["split"] == "heldout" for u in units)
    assert len({u["seed"] for u in units}) >= 2


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="ray is not installed (pip install 'bayesmoe[ray]')")
# ray's shutdown leaves unraisable exceptions from its own threads (seen with ray 2.60); they are
# not this package's errors, while every assertion below still has to hold
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.slow  # starts a local Ray instance (about 40 s); the serial executor is tested above
def test_ray_executor_runs_the_smoke_grid_on_a_local_instance(tmp_path):
    import ray

    config = tmp_path / "one.toml"  # the smoke grid's first block, one unit: ray's start dominates
    config.write_text(SMOKE.read_text().split("[[grid]]")[0] + (
        '[[grid]]\nname = "ray"\nsizes = ["tiny"]\nexperts = [4]\ntokens_per_param = [1, 2]\n'))
    out = tmp_path / "ray.csv"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        sweep.main([str(config), "--out", str(out), "--executor", "ray", "--no-progress"])
    finally:
        ray.shutdown()
    rows = _read(out)
    assert [int(r["experts"]) for r in rows] == [4, 4]
    assert int(rows[0]["tokens"]) < int(rows[1]["tokens"])


def test_budgets_closer_than_the_cooldown_share_the_trunk():
    corpus = rdata.load_corpus("sample")
    cfg = MoEConfig(d_model=32, n_blocks=1, seq_len=64, experts=2)
    tc = TrainConfig(lr=4e-3, batch_size=8, eval_tokens=2048, warmup_steps=2)
    rows = train_run(cfg, [10_240, 10_752, 10_752], tc, corpus=corpus)  # 20 and 21 steps
    assert [r["tokens"] for r in rows] == [10_240, 10_752]
    assert all(r["loss"] < 5.6 for r in rows)


def test_auto_impl_avoids_grouped_mm_when_rows_are_not_16_byte_aligned():
    from reference_runs.moe import resolve_expert_impl

    cfg = MoEConfig(d_model=24, experts=4, granularity=4)  # d_expert = 18 floats = 72 bytes
    assert resolve_expert_impl(cfg, "cpu") == "split"
    y, gx = _grads(MoELayer(cfg), torch.randn(2, 5, 24))
    assert torch.isfinite(y).all() and torch.isfinite(gx).all()
    assert resolve_expert_impl(MoEConfig(d_model=32, experts=4), "cpu") in ("grouped", "split")
    assert resolve_expert_impl(MoEConfig(d_model=32), "cpu") == "dense"
