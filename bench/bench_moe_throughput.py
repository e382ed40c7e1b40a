"""Training throughput of the reference MoE model: grouped expert matmuls vs a per-expert loop.

Prints tokens/s of full training steps (forward, backward, fused AdamW) for E ∈ {1, 8, 32} and
each expert implementation:

* ``grouped``: tokens sorted by expert, ``torch.nn.functional.grouped_mm`` (the default where it
  runs);
* ``split``: the same sort, then ``split`` + ``unbind`` and one matmul per expert on views;
* ``loop``: the slow pattern, a Python loop that gathers each expert's tokens and indexes the
  stacked weights per expert;
* ``dense``: (E = 1 only) the plain SwiGLU the E = 1 model actually uses.

    OMP_WAIT_POLICY=PASSIVE python bench/bench_moe_throughput.py --threads 1

The numbers are noisy on a shared machine; each cell is the median of ``--repeats`` timings.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from reference_runs.moe import (  # noqa: E402
    MoEConfig,
    MoELayer,
    MoETransformer,
    grouped_mm_available,
)
from reference_runs.train import TrainConfig, make_optimizer, resolve_device  # noqa: E402


def build(experts: int, impl: str, args, device) -> MoETransformer:
    torch.manual_seed(0)
    cfg = MoEConfig(d_model=args.d_model, n_blocks=args.n_blocks, seq_len=args.seq_len,
                    experts=experts, expert_impl="split" if impl == "dense" else impl)
    model = MoETransformer(cfg)
    if experts == 1 and impl != "dense":  # route through the MoE layer with its one expert
        for block in model.blocks:
            block.ffn = MoELayer(cfg)
    return model.to(device)


def _median_seconds(step, args, device) -> float:
    """Median wall time of ``args.steps`` calls of ``step`` over ``args.repeats``, after warmup."""
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def tokens_per_s(model, args, device) -> float:
    opt = make_optimizer(model, TrainConfig(lr=1e-3), device)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (args.batch_size, args.seq_len), generator=g).to(device)
    y = torch.randint(0, 256, (args.batch_size, args.seq_len), generator=g).to(device)

    def step():
        _, ce, aux = model(x, y)
        opt.zero_grad(set_to_none=True)
        (ce + 0.01 * aux).backward()
        opt.step()

    return args.steps * x.numel() / _median_seconds(step, args, device)


def layer_tokens_per_s(experts: int, impl: str, args, device) -> float:
    """Forward + backward of one MoE layer alone (no attention, embeddings or optimizer)."""
    torch.manual_seed(0)
    cfg = MoEConfig(d_model=args.d_model, experts=experts, expert_impl=impl)
    layer = MoELayer(cfg).to(device)
    x = torch.randn(args.batch_size * args.seq_len, args.d_model, device=device,
                    requires_grad=True)

    def step():
        y, aux = layer(x)
        (y.square().mean() + 0.01 * aux).backward()

    return args.steps * x.shape[0] / _median_seconds(step, args, device)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--experts", type=int, nargs="+", default=[1, 8, 32], help="expert counts E")
    p.add_argument("--impls", nargs="+", default=["grouped", "split", "loop"],
                   help="expert implementations to time")
    p.add_argument("--d-model", type=int, default=64, help="model width")
    p.add_argument("--n-blocks", type=int, default=2, help="transformer blocks")
    p.add_argument("--seq-len", type=int, default=128, help="context length")
    p.add_argument("--batch-size", type=int, default=16, help="sequences per step")
    p.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    p.add_argument("--repeats", type=int, default=3, help="timings per cell (median reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--layer", action="store_true",
                   help="time one MoE layer's forward + backward instead of whole training steps")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    impls = [i for i in args.impls
             if i != "grouped" or grouped_mm_available(device, torch.float32)]
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"d_model {args.d_model}, n_blocks {args.n_blocks}, "
          f"batch {args.batch_size}x{args.seq_len} tokens")
    header = f"{'E':>4} " + " ".join(f"{i:>10}" for i in ["dense"] + impls) + "   loop slowdown"
    print("tokens/s of one MoE layer, forward + backward" if args.layer else
          "tokens/s of training steps")
    print(header)
    for e in args.experts:
        cells = {}
        for impl in (["dense"] if e == 1 and not args.layer else []) + impls:
            cells[impl] = (layer_tokens_per_s(e, impl, args, device) if args.layer else
                           tokens_per_s(build(e, impl, args, device), args, device))
        line = f"{e:>4} " + " ".join(
            f"{cells[i]:>10.0f}" if i in cells else f"{'-':>10}" for i in ["dense"] + impls)
        if "loop" in cells and "grouped" in cells:
            line += f"   {cells['grouped'] / cells['loop']:.2f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
