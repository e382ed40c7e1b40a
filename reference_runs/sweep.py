"""Run a grid of reference models and append one CSV row per finished (model, budget).

    python -m reference_runs.sweep reference_runs/configs/calibration.toml \\
        --out data/reference_runs.csv --workers 2

The config file (TOML) names model sizes and lists grid blocks; each block is the Cartesian
product of its sizes × experts × granularity × seeds (× lr, when a block lists several), and every
unit of the product trains once with a warmup-stable-decay schedule whose cooldown branches give
one row per token budget (``tokens_per_param`` × the size's ``n_active``). Rows whose ``run_id``
is already in ``--out`` are skipped, so an interrupted sweep resumes where it stopped.

Workers are separate processes with one torch thread each and ``OMP_WAIT_POLICY=PASSIVE``
(oversubscribed, spinning OpenMP threads ran 20× slower in a prototype). ``--executor ray``
sends the same units to a Ray cluster (``ray.init(address=--ray-address)``); the driver writes
the rows.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import itertools  # noqa: E402
import multiprocessing as mp  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tomllib  # noqa: E402
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait  # noqa: E402
from pathlib import Path  # noqa: E402

UNIT_KEYS = ("size", "d_model", "n_blocks", "experts", "granularity", "seed", "lr")
DEFAULTS = {
    "corpus": "auto",
    "seq_len": 128,
    "batch_size": 16,
    "gate_norm": "scaled",
    "aux_loss_coef": 0.01,
    "schedule": "wsd",
    "cooldown_frac": 0.2,
    "warmup_steps": 50,
    "weight_decay": 0.1,
    "eval_tokens": 65_536,
    "expert_impl": "auto",
    "device": "cpu",
    "split": "train",
    "granularity": [1],
    "seeds": [0],
}


def load_config(path: Path) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def _n_active(d_model: int, n_blocks: int, seq_len: int) -> int:
    from reference_runs.moe import MoEConfig, count_params

    return count_params(MoEConfig(d_model=d_model, n_blocks=n_blocks, seq_len=seq_len))[
        "n_active"]


def expand_grid(config: dict) -> list[dict]:
    """Every unit (one training run, several budgets) the config describes, in file order."""
    defaults = {**DEFAULTS, **config.get("defaults", {})}
    sizes = config.get("sizes", {})
    units, problems = [], []
    for bi, block in enumerate(config.get("grid", [])):
        b = {**defaults, **block}
        for name in b["sizes"]:
            if name not in sizes:
                problems.append(f"grid block {bi} names unknown size {name!r}; known: "
                                f"{sorted(sizes)}")
        if problems:
            continue
        lrs = b.get("lr")
        for name, e, g, seed in itertools.product(b["sizes"], b["experts"], b["granularity"],
                                                  b["seeds"]):
            size = sizes[name]
            for lr in (lrs if isinstance(lrs, list) else [lrs if lrs is not None else
                                                          size["lr"]]):
                n_act = _n_active(size["d_model"], size["n_blocks"], b["seq_len"])
                tps = b["batch_size"] * b["seq_len"]
                budgets = sorted({max(1, round(r * n_act / tps)) * tps
                                  for r in b["tokens_per_param"]})
                unit = {k: v for k, v in b.items() if k not in (
                    "sizes", "experts", "seeds", "lr", "tokens_per_param", "name")}
                unit.update(size=name, d_model=size["d_model"], n_blocks=size["n_blocks"],
                            n_heads=size.get("n_heads", 0), experts=int(e),
                            granularity=int(g), seed=int(seed), lr=float(lr),
                            budgets=budgets, block=b.get("name", f"block{bi}"),
                            n_active=n_act)
                units.append(unit)
    if problems:
        raise ValueError("invalid sweep config:\n  " + "\n  ".join(problems))
    return units


def run_id(unit: dict, tokens: int) -> str:
    """Stable identity of one row: what the skip-if-present check compares."""
    return (f"{unit['corpus']}-d{unit['d_model']}-b{unit['n_blocks']}-E{unit['experts']}"
            f"-G{unit['granularity']}-lr{unit['lr']:g}-s{unit['seed']}-{unit['schedule']}"
            f"-{unit['gate_norm']}-bs{unit['batch_size']}x{unit['seq_len']}-D{tokens}")


def unit_cost(unit: dict) -> float:
    """Rough relative cost (for longest-first scheduling): tokens × active params × E overhead."""
    return max(unit["budgets"]) * unit["n_active"] * (1 + 0.02 * unit["experts"])


def done_ids(path: Path) -> set[str]:
    if not Path(path).exists():
        return set()
    with open(path, newline="") as f:
        return {r["run_id"] for r in csv.DictReader(f) if r.get("run_id")}


_CORPORA: dict = {}


def run_unit(unit: dict, out: str | None = None, skip: frozenset = frozenset()) -> list[dict]:
    """Train one unit; append each budget's row to ``out`` as soon as it is evaluated."""
    import torch

    from reference_runs.data import load_corpus, resolve_corpus
    from reference_runs.moe import MoEConfig
    from reference_runs.train import TrainConfig, append_rows, train_run

    torch.set_num_threads(int(unit.get("threads", 1)))
    name = resolve_corpus(unit["corpus"])
    if name not in _CORPORA:
        _CORPORA[name] = load_corpus(name)
    unit = {**unit, "corpus": name}
    cfg = MoEConfig(d_model=unit["d_model"], n_blocks=unit["n_blocks"],
                    n_heads=unit.get("n_heads", 0), seq_len=unit["seq_len"],
                    experts=unit["experts"], granularity=unit["granularity"],
                    gate_norm=unit["gate_norm"], aux_loss_coef=unit["aux_loss_coef"],
                    expert_impl=unit["expert_impl"])
    tc = TrainConfig(lr=unit["lr"], batch_size=unit["batch_size"], schedule=unit["schedule"],
                     warmup_steps=unit["warmup_steps"], cooldown_frac=unit["cooldown_frac"],
                     weight_decay=unit["weight_decay"], eval_tokens=unit["eval_tokens"],
                     seed=unit["seed"])
    rows = []

    def on_row(row):
        row = {"run_id": run_id(unit, row["tokens"]), **row, "split": unit["split"],
               "block": unit["block"], "size": unit["size"]}
        if row["run_id"] in skip:
            return
        rows.append(row)
        if out:
            append_rows(Path(out), [row])

    train_run(cfg, unit["budgets"], tc, corpus=_CORPORA[name], device=unit["device"],
              on_row=on_row)
    return rows


def _init_worker():
    import torch

    torch.set_num_threads(1)


def _pending(units, out):
    have = done_ids(out)
    todo = []
    for u in units:
        ids = {run_id({**u, "corpus": _resolved(u["corpus"])}, t) for t in u["budgets"]}
        if not ids <= have:
            todo.append(u)
    return todo, have


def _resolved(name):
    from reference_runs.data import resolve_corpus

    return resolve_corpus(name)


def run_local(units, out, workers, progress=True):
    todo, have = _pending(units, out)
    todo.sort(key=unit_cost, reverse=True)
    skip = frozenset(have)
    from tqdm.auto import tqdm

    n_rows = sum(len(u["budgets"]) for u in todo)
    bar = tqdm(total=n_rows, desc="rows", disable=not progress, file=sys.stderr)
    if workers <= 1:
        for u in todo:
            bar.update(len(run_unit(u, str(out), skip)))
        bar.close()
        return
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                             initializer=_init_worker) as ex:
        futures = {ex.submit(run_unit, u, str(out), skip): u for u in todo}
        start = len(done_ids(out))
        pending, failed = set(futures), []
        while pending:
            finished, pending = wait(pending, timeout=10, return_when=FIRST_COMPLETED)
            for f in finished:
                if f.exception() is not None:  # report, keep the other units going
                    u = futures[f]
                    failed.append(f"{u['block']} {u['size']} E={u['experts']} "
                                  f"G={u['granularity']} seed={u['seed']}: {f.exception()!r}")
                    print(f"unit failed: {failed[-1]}", file=sys.stderr)
            # workers append rows as each budget finishes; count them from the file
            bar.update(len(done_ids(out)) - start - bar.n)
    bar.close()
    if failed:
        raise SystemExit(f"{len(failed)} unit(s) failed:\n  " + "\n  ".join(failed))


def run_ray(units, out, address=None, progress=True):
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - exercised only without ray
        raise SystemExit("--executor ray needs ray: pip install 'bayesmoe[ray]'") from exc
    from reference_runs.train import append_rows

    todo, have = _pending(units, out)
    skip = frozenset(have)
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, runtime_env={"env_vars": {
            "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}})
    try:
        remote = ray.remote(num_cpus=1)(run_unit)
        pending = [remote.remote(u, None, skip) for u in sorted(todo, key=unit_cost,
                                                                  reverse=True)]
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(len(u["budgets"]) for u in todo), desc="rows",
                   disable=not progress, file=sys.stderr)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            rows = ray.get(ready[0])
            if rows:
                append_rows(Path(out), rows)
            bar.update(len(rows))
        bar.close()
    finally:
        if started:
            ray.shutdown()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("config", type=Path, help="sweep config (TOML), e.g. "
                   "reference_runs/configs/calibration.toml")
    p.add_argument("--out", type=Path, required=True, help="CSV to append rows to (resumable)")
    p.add_argument("--workers", type=int, default=2, help="local worker processes, 1 thread each")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local process pool, or a Ray cluster")
    p.add_argument("--ray-address", default=None,
                   help="Ray cluster address (default: start or join a local instance)")
    p.add_argument("--device", default=None,
                   help="override the config's device: auto, cpu or cuda")
    p.add_argument("--only-block", action="append", default=None,
                   help="run only the grid blocks with this name (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="list pending units and exit")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    units = expand_grid(load_config(args.config))
    if args.only_block:
        units = [u for u in units if u["block"] in args.only_block]
    if args.device:
        units = [{**u, "device": args.device} for u in units]
    if args.dry_run:
        todo, _ = _pending(units, args.out)
        for u in sorted(todo, key=unit_cost, reverse=True):
            print(u["block"], u["size"], f"E={u['experts']} G={u['granularity']} "
                  f"seed={u['seed']} lr={u['lr']:g} budgets={u['budgets']}")
        print(f"{len(todo)} of {len(units)} units pending, "
              f"{sum(len(u['budgets']) for u in todo)} rows")
        return
    t0 = time.time()
    if args.executor == "ray":
        run_ray(units, args.out, args.ray_address, progress=not args.no_progress)
    else:
        run_local(units, args.out, args.workers, progress=not args.no_progress)
    print(f"sweep finished in {time.time() - t0:.0f} s -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
