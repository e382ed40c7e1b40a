"""bayesmoe's CLI against its closest peer, simple-scaling-laws 0.2's ``scaling-laws fit``, on Epoch's 245 runs.

Issue 15, "Against the closest peer". Both tools fit ``L = E + A/N^α + B/D^β`` to the same 245
digitised Chinchilla runs (Epoch AI, read in place from ``../shared/data/epoch-chinchilla``; all
245 rows, no outliers dropped), tokens ``D = C / (6 N)``:

* bayesmoe: ``python -m bayesmoe.cli fit svg_extracted_data.csv --law chinchilla --columns
  "n_active=Model Size,flops=Training FLOP" --no-progress``, everything else at its defaults
  (NUTS 4 chains × 1000 warmup / 1000 draws, ``--discrepancy auto``, which on this table runs three
  rolling-origin backtest fits of 2 chains × 300/300 besides the main fit). The CLI derives the
  tokens from the ``flops`` mapping itself. ``BAYESMOE_DISCREPANCY`` and
  ``JAX_COMPILATION_CACHE_DIR`` are removed from its environment so the code's defaults apply.
* the peer: ``scaling-laws fit epoch.csv --output OUT.slaw`` at its defaults (``separable-power``,
  1000 wild-cluster bootstrap draws, seed 0), in its own Python 3.12 venv. It wants its own column
  names (``training_run_id``, ``model_size__*``, ``dataset_size__*``, ``test_loss__*``), so the
  script writes that CSV once into a temporary folder before timing (D = C / (6 N) computed there).

Each measurement is one whole process: wall time from start to exit and peak resident memory
(``ru_maxrss`` of the child from ``os.wait4``, the largest single process), plus its CPU seconds
(user + system). Runs alternate, pair by pair: bayesmoe cold, peer, bayesmoe warm. "Cold" is a
fresh, empty ``BAYESMOE_CACHE_DIR`` (JAX's persistent compilation cache, ``bayesmoe.compile_cache``);
"warm" the second run on that folder. The table shows each pair and the medians, with the issue's
targets: bayesmoe ≤ 3× the peer's wall time cold and ≤ 2× warm. ``--also-no-discrepancy`` adds one
cold and one warm bayesmoe run with ``--discrepancy none`` after the pairs (the main fit alone),
to show what the backtests cost.

The peer's venv lives in ``~/.cache/bayesmoe-bench/ssl-venv`` (``--venv``), created with the first
Python 3.12 found (``--python``, ``python3.12`` on PATH, then pyenv's versions) and reused. Where
no Python 3.12 runs or the package cannot be installed the script says why and exits 0.

    .venv/bin/python bench/bench_peer_simple_scaling_laws.py               # 3 pairs, about 10 min on 2 busy cores
    .venv/bin/python bench/bench_peer_simple_scaling_laws.py --pairs 1     # smoke run

The host is shared and noisy: compare numbers only within one run of this script.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EPOCH = ROOT.parent / "shared" / "data" / "epoch-chinchilla" / "svg_extracted_data.csv"
VENV = Path.home() / ".cache" / "bayesmoe-bench" / "ssl-venv"
PEER_REQ = "simple-scaling-laws>=0.2,<0.3"
TARGET_COLD, TARGET_WARM = 3.0, 2.0


def run_process(cmd: list[str], env: dict, cwd: Path) -> dict:
    """Run ``cmd`` to completion; wall s, peak RSS MiB, CPU s, exit status and output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return {"wall": wall, "rss_mib": ru.ru_maxrss / 1024, "cpu": ru.ru_utime + ru.ru_stime,
                "rc": proc.returncode, "stdout": out.read().decode(errors="replace"),
                "stderr": err.read().decode(errors="replace")}


def find_python312(explicit: str | None) -> str | None:
    candidates = [explicit] if explicit else []
    candidates += [shutil.which("python3.12") or ""]
    candidates += sorted(glob.glob(str(Path.home() / ".pyenv" / "versions" / "3.12*" / "bin" / "python3.12")))
    for c in candidates:
        if not c:
            continue
        try:
            v = subprocess.run([c, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if v.returncode == 0 and v.stdout.strip() == "3.12":
            return c
    return None


def peer_version(venv: Path) -> str | None:
    exe = venv / "bin" / "python"
    if not exe.exists():
        return None
    code = "from importlib.metadata import version; print(version('simple-scaling-laws'))"
    v = subprocess.run([str(exe), "-c", code], capture_output=True, text=True)
    return v.stdout.strip() if v.returncode == 0 else None


def ensure_peer(venv: Path, python: str | None) -> tuple[str | None, str]:
    """(path of ``scaling-laws``, version) or (None, why not)."""
    have = peer_version(venv)
    if have and have.startswith("0.2.") and (venv / "bin" / "scaling-laws").exists():
        return str(venv / "bin" / "scaling-laws"), have
    py = find_python312(python)
    if py is None:
        return None, "no working Python 3.12 (python3.12 on PATH or ~/.pyenv/versions/3.12*); give --python"
    print(f"creating the peer's venv {venv} with {py} and installing {PEER_REQ} ...", flush=True)
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    for cmd in ([py, "-m", "venv", str(venv)],
                [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", PEER_REQ]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            return None, f"{' '.join(cmd)} failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}"
    have = peer_version(venv)
    if not (have and have.startswith("0.2.")):
        return None, f"installed simple-scaling-laws is {have!r}, not 0.2.x"
    return str(venv / "bin" / "scaling-laws"), have


def write_peer_csv(src: Path, dest: Path) -> int:
    import pandas as pd

    raw = pd.read_csv(src)
    pd.DataFrame({
        "training_run_id": [f"run{i:03d}" for i in range(len(raw))],
        "model_size__n_params": raw["Model Size"],
        "dataset_size__n_tokens": raw["Training FLOP"] / (6 * raw["Model Size"]),
        "test_loss__loss": raw["loss"],
    }).to_csv(dest, index=False)
    return len(raw)


def convergence(stdout: str) -> str:
    """bayesmoe's verdict and its divergences / R-hat / ESS line, from the CLI's output."""
    verdict = re.search(r"^verdict: (\w+)", stdout, re.M)
    line = re.search(r"^\s+- (max R-hat .*divergences.*)$", stdout, re.M)
    nuts = re.search(r"^NUTS: .*warmup ([\d.]+) s, sampling ([\d.]+) s", stdout, re.M)
    parts = [verdict.group(1) if verdict else "no verdict", line.group(1) if line else "no diagnostics line"]
    if nuts:
        parts.append(f"main fit warmup {nuts.group(1)} s + sampling {nuts.group(2)} s")
    return "; ".join(parts)


def peer_summary(stdout: str) -> str:
    m = re.search(r"^\s+test_loss__loss \(primary\): (.*)$", stdout, re.M)
    return m.group(1).strip() if m else "no summary line"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=3, help="pairs of (bayesmoe cold, peer, bayesmoe warm) (default 3)")
    ap.add_argument("--data", type=Path, default=EPOCH, help=f"Epoch's CSV (default {EPOCH})")
    ap.add_argument("--venv", type=Path, default=VENV, help=f"the peer's venv (default {VENV})")
    ap.add_argument("--python", default=None, help="a Python 3.12 to create the peer's venv with")
    ap.add_argument("--also-no-discrepancy", action="store_true",
                    help="after the pairs, one cold and one warm bayesmoe run with --discrepancy none")
    args = ap.parse_args()

    if not args.data.is_file():
        print(f"skipping: {args.data} is absent (Epoch's table is third-party data, not shipped)")
        return 0
    peer, version = ensure_peer(args.venv, args.python)
    if peer is None:
        print(f"skipping: the peer is not available: {version}")
        return 0

    env = {k: v for k, v in os.environ.items()
           if k not in ("BAYESMOE_DISCREPANCY", "BAYESMOE_NO_COMPILE_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    bm_cmd = [sys.executable, "-m", "bayesmoe.cli", "fit", str(args.data), "--law", "chinchilla",
              "--columns", "n_active=Model Size,flops=Training FLOP", "--no-progress"]
    print(f"bayesmoe: {' '.join(bm_cmd[:3])} {' '.join(repr(a) if ' ' in a else a for a in bm_cmd[3:])}")
    print(f"          (PYTHONPATH={ROOT}, BAYESMOE_CACHE_DIR=<fresh per pair>)")
    print(f"peer:     simple-scaling-laws {version}: {peer} fit epoch.csv --output OUT.slaw  (venv {args.venv})")
    print(f"host:     {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at start "
          "(on a shared host the wall times include contention: compare within this run only)\n", flush=True)

    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        tmp = Path(tmp)
        n = write_peer_csv(args.data, tmp / "epoch.csv")

        def bayesmoe(cache: Path, label: str, extra: tuple[str, ...] = ()) -> dict:
            r = run_process(bm_cmd + list(extra), {**env, "BAYESMOE_CACHE_DIR": str(cache)}, ROOT)
            notes.append(f"{label}: exit {r['rc']}, {r['wall']:.1f} s, {convergence(r['stdout'])}")
            if r["rc"] != 0:
                notes.append("  stderr tail: " + " | ".join(r["stderr"].strip().splitlines()[-3:]))
            print(notes[-1], flush=True)
            return r

        for i in range(1, args.pairs + 1):
            cache = tmp / f"cache{i}"
            cache.mkdir()
            cold = bayesmoe(cache, f"pair {i} bayesmoe cold")
            p = run_process([peer, "fit", str(tmp / "epoch.csv"), "--output", str(tmp / f"peer{i}.slaw")], env, tmp)
            notes.append(f"pair {i} peer: exit {p['rc']}, {p['wall']:.1f} s, {peer_summary(p['stdout'])}")
            print(notes[-1], flush=True)
            warm = bayesmoe(cache, f"pair {i} bayesmoe warm")
            rows.append((i, cold, p, warm, os.getloadavg()[0]))
        extra = []
        if args.also_no_discrepancy:
            cache = tmp / "cache_nodisc"
            cache.mkdir()
            extra = [bayesmoe(cache, f"bayesmoe --discrepancy none {kind}", ("--discrepancy", "none"))
                     for kind in ("cold", "warm")]

    ok_all = all(r[k]["rc"] == 0 for r in rows for k in (1, 2, 3))
    print(f"\nEpoch's {n} runs; wall s and peak RSS MiB per whole process (CPU s = user + system)")
    hdr = (f"{'pair':>4}  {'bm cold s':>9}  {'peer s':>6}  {'cold/peer':>9}  {'bm warm s':>9}  {'warm/peer':>9}  "
           f"{'bm cold MiB':>11}  {'bm warm MiB':>11}  {'peer MiB':>8}  {'CPU s cold/warm/peer':>20}  {'load1':>5}")
    print(hdr)
    for i, c, p, w, load in rows:
        print(f"{i:>4}  {c['wall']:9.1f}  {p['wall']:6.1f}  {c['wall'] / p['wall']:8.1f}x  {w['wall']:9.1f}  "
              f"{w['wall'] / p['wall']:8.1f}x  {c['rss_mib']:11.0f}  {w['rss_mib']:11.0f}  {p['rss_mib']:8.0f}  "
              f"{c['cpu']:6.1f}/{w['cpu']:5.1f}/{p['cpu']:5.1f}  {load:5.2f}")
    med = {k: statistics.median(r[j][key] for r in rows)
           for k, j, key in (("cold", 1, "wall"), ("peer", 2, "wall"), ("warm", 3, "wall"),
                             ("cold_mib", 1, "rss_mib"), ("peer_mib", 2, "rss_mib"), ("warm_mib", 3, "rss_mib"),
                             ("cold_cpu", 1, "cpu"), ("peer_cpu", 2, "cpu"), ("warm_cpu", 3, "cpu"))}
    rc_ratio = statistics.median(r[1]["wall"] / r[2]["wall"] for r in rows)
    rw_ratio = statistics.median(r[3]["wall"] / r[2]["wall"] for r in rows)
    print(f"{'med':>4}  {med['cold']:9.1f}  {med['peer']:6.1f}  {med['cold'] / med['peer']:8.1f}x  "
          f"{med['warm']:9.1f}  {med['warm'] / med['peer']:8.1f}x  {med['cold_mib']:11.0f}  "
          f"{med['warm_mib']:11.0f}  {med['peer_mib']:8.0f}  "
          f"{med['cold_cpu']:6.1f}/{med['warm_cpu']:5.1f}/{med['peer_cpu']:5.1f}")
    print(f"(median of the per-pair ratios: cold {rc_ratio:.1f}x, warm {rw_ratio:.1f}x)")
    for e, kind in zip(extra, ("cold", "warm")):
        print(f"bayesmoe --discrepancy none, {kind}: {e['wall']:.1f} s "
              f"({e['wall'] / med['peer']:.1f}x the peer's median), {e['rss_mib']:.0f} MiB, CPU {e['cpu']:.1f} s")
    cold_ok = med["cold"] <= TARGET_COLD * med["peer"]
    warm_ok = med["warm"] <= TARGET_WARM * med["peer"]
    for name, target, key, ok in (("\ntarget cold", TARGET_COLD, "cold", cold_ok),
                                  ("target warm", TARGET_WARM, "warm", warm_ok)):
        print(f"{name} ≤ {target:g}x the peer (median): {med[key] / med['peer']:.1f}x  {'PASS' if ok else 'FAIL'}")
    print("every process exited 0" if ok_all else "NOTE: some process exited non-zero (see the lines above)")
    print(f"host load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs: "
          "the host was shared, so the wall times include contention; CPU s is less sensitive to it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
