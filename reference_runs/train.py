"""Train one reference model and report the held-out loss at one or more token budgets.

With ``--schedule wsd`` (the default) one run covers every budget: warmup, a constant learning
rate, and at each budget a cooldown branch forked from the constant phase (linear decay to 0 over
the last ``--cooldown-frac`` of that budget), evaluated, then discarded, as in the seed papers
(2502.05172 §5.1 and 2402.07871 use warmup-stable-decay). Each branch is exactly the run a
standalone WSD schedule of that length would produce, because the batch at step s depends only on
(seed, s). ``--schedule cosine`` trains each budget from scratch with warmup and cosine decay to
10 % of the peak.

Example::

    OMP_WAIT_POLICY=PASSIVE python -m reference_runs.train --d-model 64 --n-blocks 2 \\
        --experts 4 --budgets 500000 1000000 --lr 3e-3 --out runs.csv
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # must precede the OpenMP runtime's start

import argparse  # noqa: E402
import copy  # noqa: E402
import csv  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from reference_runs.data import Corpus, load_corpus  # noqa: E402
from reference_runs.moe import (  # noqa: E402
    MoEConfig,
    MoETransformer,
    count_flops_per_token,
    count_params,
    resolve_expert_impl,
)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one run (see ``--help`` for each)."""

    lr: float = 3e-3
    batch_size: int = 16
    schedule: str = "wsd"
    warmup_steps: int = 50
    warmup_frac: float = 0.1
    cooldown_frac: float = 0.2
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_tokens: int = 65_536
    seed: int = 0


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_optimizer(model: torch.nn.Module, tc: TrainConfig, device: torch.device):
    """AdamW, fused; weight decay on matrices only (not on norm gains)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": tc.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=tc.lr, betas=(tc.beta1, tc.beta2), eps=1e-8,
                             fused=True)


@torch.no_grad()
def evaluate(model: MoETransformer, corpus: Corpus, eval_tokens: int, device: torch.device,
             chunk: int = 64) -> float:
    """Mean next-byte cross-entropy (nats/byte) over the fixed held-out windows."""
    model.eval()
    x, y = corpus.eval_windows(eval_tokens, model.cfg.seq_len)
    total, n = 0.0, 0
    for i in range(0, len(x), chunk):
        xb, yb = x[i:i + chunk].to(device), y[i:i + chunk].to(device)
        _, ce, _ = model(xb, yb)
        total += ce.item() * yb.numel()
        n += yb.numel()
    model.train()
    return total / n


def _budget_steps(budgets: list[int], tokens_per_step: int) -> list[int]:
    return [max(1, round(b / tokens_per_step)) for b in budgets]


def train_run(cfg: MoEConfig, budgets: list[int], tc: TrainConfig, *, corpus: Corpus,
              device: torch.device | str = "cpu", on_row=None, log=None) -> list[dict]:
    """Train ``cfg`` and return one result row per token budget (ascending).

    ``on_row(row)`` is called as each budget finishes, so a caller can persist it at once.
    """
    device = resolve_device(str(device))
    budgets = sorted(set(int(b) for b in budgets))
    tps = tc.batch_size * cfg.seq_len
    steps = _budget_steps(budgets, tps)
    warmup = max(1, min(tc.warmup_steps, math.ceil(tc.warmup_frac * steps[0])))
    rows = []

    def build():
        torch.manual_seed(tc.seed)
        m = MoETransformer(cfg).to(device)
        return m, make_optimizer(m, tc, device)

    gen = torch.Generator()

    def run_steps(model, opt, start, stop, lr_at):
        ce = aux = torch.tensor(float("nan"))
        for s in range(start, stop):
            gen.manual_seed(tc.seed * 1_000_003 + s)
            x, y = corpus.batch(gen, tc.batch_size, cfg.seq_len)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            for g in opt.param_groups:
                g["lr"] = lr_at(s)
            _, ce, aux = model(x, y)
            loss = ce + cfg.aux_loss_coef * aux if cfg.n_routed > 1 else ce
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip, foreach=True)
            opt.step()
        return ce.item(), aux.item()

    def warm(s):
        return tc.lr * min(1.0, (s + 1) / warmup)

    def finish(model, budget_steps, train_s, last_ce, last_aux):
        ev = evaluate(model, corpus, tc.eval_tokens, device)
        row = result_row(cfg, tc, budget_steps * tps, ev, train_s, budget_steps * tps / train_s,
                         device, corpus.name, last_ce, last_aux, warmup)
        rows.append(row)
        if on_row is not None:
            on_row(row)
        if log:
            log(f"E={cfg.experts} G={cfg.granularity} d={cfg.d_model} nb={cfg.n_blocks} "
                f"tokens={row['tokens']} loss={ev:.4f} ({row['tokens_per_s']:.0f} tok/s)")

    if tc.schedule == "cosine":
        for S in steps:
            model, opt = build()
            floor = 0.1

            def lr_cos(s, S=S):
                if s < warmup:
                    return warm(s)
                p = (s - warmup) / max(1, S - warmup)
                return tc.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))

            t0 = time.perf_counter()
            ce, aux = run_steps(model, opt, 0, S, lr_cos)
            finish(model, S, time.perf_counter() - t0, ce, aux)
        return rows

    if tc.schedule != "wsd":
        raise ValueError(f"schedule must be 'wsd' or 'cosine', got {tc.schedule!r}")
    model, opt = build()
    step, trunk_s = 0, 0.0
    for i, S in enumerate(steps):
        # budgets closer than the cooldown fraction share the trunk: the later cooldown is shorter
        fork = max(warmup, step, S - round(tc.cooldown_frac * S))
        t0 = time.perf_counter()
        run_steps(model, opt, step, fork, warm)
        trunk_s += time.perf_counter() - t0
        step = fork
        last = i == len(steps) - 1
        if not last:
            snap = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()))

        def lr_cool(s, S=S, fork=fork):
            return warm(s) * (S - s) / max(1, S - fork)

        t0 = time.perf_counter()
        ce, aux = run_steps(model, opt, fork, S, lr_cool)
        branch_s = time.perf_counter() - t0
        # wall time a standalone run of this budget would take: trunk so far + this cooldown
        finish(model, S, trunk_s + branch_s, ce, aux)
        if not last:
            model.load_state_dict(snap[0])
            opt.load_state_dict(snap[1])
    return rows


def result_row(cfg, tc, tokens, loss, train_s, tokens_per_s, device, corpus_name, last_ce,
               last_aux, warmup) -> dict:
    """One CSV row: the columns bayesmoe.fit reads plus everything needed to redo the run."""
    counts = count_params(cfg)
    flops = count_flops_per_token(cfg)
    row = {
        "n_active": counts["n_active"],
        "n_total": counts["n_total"],
        "tokens": int(tokens),
        "experts": cfg.experts,
        "granularity": cfg.granularity,
        "loss": round(float(loss), 6),
        "seed": tc.seed,
        "group": f"{corpus_name}-bytes",
        **{k: v for k, v in counts.items() if k not in ("n_active", "n_total")},
        **flops,
        "flops": flops["flops_per_token"] * tokens,
        "tokens_per_param": round(tokens / counts["n_active"], 4),
        "train_loss_last": round(float(last_ce), 6),
        "aux_loss_last": round(float(last_aux), 6),
        "d_model": cfg.d_model,
        "n_blocks": cfg.n_blocks,
        "n_heads": cfg.heads,
        "d_ff": cfg.d_ff,
        "d_expert": cfg.d_expert,
        "top_k": cfg.top_k,
        "seq_len": cfg.seq_len,
        "vocab_size": cfg.vocab_size,
        "gate_norm": cfg.gate_norm,
        "aux_loss_coef": cfg.aux_loss_coef,
        "init": f"gpt2-std{cfg.init_std}",
        "lr": tc.lr,
        "batch_size": tc.batch_size,
        "schedule": tc.schedule,
        "warmup_steps": warmup,
        "cooldown_frac": tc.cooldown_frac if tc.schedule == "wsd" else 0.0,
        "weight_decay": tc.weight_decay,
        "eval_tokens": tc.eval_tokens,
        "corpus": corpus_name,
        "expert_impl": resolve_expert_impl(cfg, device),
        "tokens_per_s": round(float(tokens_per_s), 1),
        "wall_s": round(float(train_s), 2),
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "device": device_name(torch.device(device)),
        "host": platform.node(),
    }
    return row


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()}"


def append_rows(path: Path, rows: list[dict]) -> None:
    """Append rows to a CSV (header if the file is new), locked against other writers."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0, os.SEEK_END)
            header = None
            if f.tell() > 0:
                with open(path, newline="") as r:
                    header = next(csv.reader(r), None)
            fields = header or list(rows[0])
            missing = [k for k in rows[0] if k not in fields]
            if missing:
                raise ValueError(f"{path} lacks columns {missing}; write to a new file")
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if header is None:
                w.writeheader()
            w.writerows(rows)
            f.flush()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--d-model", type=int, default=64, help="model width d")
    a("--n-blocks", type=int, default=2, help="transformer blocks")
    a("--n-heads", type=int, default=0, help="attention heads (0: d_model // 32)")
    a("--seq-len", type=int, default=128, help="context length in bytes")
    a("--experts", type=int, default=1, help="expansion rate E (1 = dense)")
    a("--granularity", type=int, default=1, help="granularity G (top-k = G, width d_ff/G)")
    a("--gate-norm", choices=["scaled", "renorm", "softmax"], default="scaled",
      help="gate weights: raw softmax x E/k, renormalised top-k, or raw softmax")
    a("--aux-loss-coef", type=float, default=0.01, help="Switch load-balancing loss weight")
    a("--expert-impl", choices=["auto", "grouped", "split", "loop"], default="auto",
      help="expert computation (loop is the slow reference)")
    a("--budgets", type=float, nargs="+", required=True,
      help="training token budgets; wsd evaluates each as a cooldown branch of one run")
    a("--lr", type=float, default=3e-3, help="peak learning rate")
    a("--batch-size", type=int, default=16, help="sequences per step")
    a("--schedule", choices=["wsd", "cosine"], default="wsd", help="learning-rate schedule")
    a("--warmup-steps", type=int, default=50,
      help="warmup steps (capped at --warmup-frac of the smallest budget)")
    a("--warmup-frac", type=float, default=0.1, help="cap on warmup, fraction of smallest budget")
    a("--cooldown-frac", type=float, default=0.2, help="wsd: cooldown fraction of each budget")
    a("--weight-decay", type=float, default=0.1, help="AdamW weight decay (matrices only)")
    a("--eval-tokens", type=int, default=65_536, help="held-out bytes scored at each budget")
    a("--seed", type=int, default=0, help="seed for initialisation and batch order")
    a("--corpus", default="auto", help="gcide, austen, sample or auto (first one present)")
    a("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    a("--threads", type=int, default=1, help="torch intra-op threads")
    a("--out", type=Path, default=None, help="CSV to append result rows to")
    return p


def main(argv: list[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = MoEConfig(d_model=args.d_model, n_blocks=args.n_blocks, n_heads=args.n_heads,
                    seq_len=args.seq_len, experts=args.experts, granularity=args.granularity,
                    gate_norm=args.gate_norm, aux_loss_coef=args.aux_loss_coef,
                    expert_impl=args.expert_impl)
    tc = TrainConfig(lr=args.lr, batch_size=args.batch_size, schedule=args.schedule,
                     warmup_steps=args.warmup_steps, warmup_frac=args.warmup_frac,
                     cooldown_frac=args.cooldown_frac, weight_decay=args.weight_decay,
                     eval_tokens=args.eval_tokens, seed=args.seed)
    corpus = load_corpus(args.corpus)
    on_row = (lambda r: append_rows(args.out, [r])) if args.out else None
    return train_run(cfg, [int(b) for b in args.budgets], tc, corpus=corpus, device=args.device,
                     on_row=on_row, log=print)


if __name__ == "__main__":
    main()
