"""Whole-process wall time of the CLI's quick answers: ``bayesmoe --help`` and a rejected table.

Each case runs ``--runs`` times as a fresh process (``python -m bayesmoe.cli``, so the installed
entry point is not needed); the table shows the median, min and max, and whether the exit status
was the expected one. A bad table (a negative ``N`` row) must be rejected with status 2 before
JAX loads. Target (issue 15): ≤ 1.5 s each. The host is shared: compare within one run.

    .venv/bin/python bench/bench_cli_startup.py             # 7 runs per case, ~10 s
    .venv/bin/python bench/bench_cli_startup.py --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 1.5


def time_process(args: list[str], expect_rc: int, runs: int) -> dict:
    times, codes = [], set()
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "bayesmoe.cli", *args], capture_output=True, text=True,
                              cwd=ROOT)
        times.append(time.perf_counter() - t0)
        codes.add(proc.returncode)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "exit": "/".join(map(str, sorted(codes))), "ok_exit": codes == {expect_rc}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7, help="processes per case (default 7)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "bad.csv"
        bad.write_text("N,D,L\n1e8,1e10,3.0\n-1,2e10,2.9\n")
        missing = Path(tmp) / "missing_column.csv"
        missing.write_text("N,L\n1e8,3.0\n2e8,2.9\n")
        cases = [
            ("bayesmoe --help", ["--help"], 0),
            ("bayesmoe fit --help", ["fit", "--help"], 0),
            ("bayesmoe fit bad.csv (N < 0)", ["fit", str(bad), "--law", "chinchilla"], 2),
            ("bayesmoe fit missing_column.csv (no tokens)", ["fit", str(missing), "--law", "joint"], 2),
        ]
        rows = [(name, time_process(argv, rc, args.runs)) for name, argv, rc in cases]
    width = max(len(n) for n, _ in rows)
    print(f"{'case':<{width}}  median_s  min_s  max_s  exit  target {TARGET_S} s")
    passed = True
    for name, r in rows:
        ok = r["ok_exit"] and r["median_s"] <= TARGET_S
        passed &= ok
        print(f"{name:<{width}}  {r['median_s']:8.2f}  {r['min_s']:5.2f}  {r['max_s']:5.2f}  {r['exit']:>4}  "
              f"{'PASS' if ok else 'FAIL'}")
    print(f"\n{args.runs} processes per case; every median within {TARGET_S} s and expected exit: "
          f"{'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
