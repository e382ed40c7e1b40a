"""XLA compilations of a small fit and the predictions after it, counted from JAX's own log.

JAX logs one "Finished XLA compilation of NAME in T sec" line per compiled program when
``jax_log_compiles`` is on; this script counts them per step and prints the most frequent names
and the summed compile time. Run it twice with one ``BAYESMOE_CACHE_DIR`` to see the persistent
cache at work (the second process loads the fit's big programs instead of compiling them).

    .venv/bin/python bench/count_compiles.py                     # joint law, 60 runs, 2 x 100/100
    BAYESMOE_CACHE_DIR=/tmp/cc .venv/bin/python bench/count_compiles.py   # twice: cold, then warm
"""

from __future__ import annotations

import io
import logging
import re
import time
import warnings

import numpyro

numpyro.set_host_device_count(2)

import jax  # noqa: E402
import pandas as pd  # noqa: E402

import bayesmoe  # noqa: E402
from bayesmoe.testing import synthetic_runs  # noqa: E402

LINE = re.compile(r"Finished XLA compilation of (.*) in ([0-9.e-]+) sec")


def main() -> None:
    jax.config.update("jax_log_compiles", True)
    buf = io.StringIO()
    logging.getLogger("jax").addHandler(logging.StreamHandler(buf))
    logging.getLogger("jax").propagate = False

    def report(step: str, seconds: float) -> None:
        found = LINE.findall(buf.getvalue())
        names: dict[str, int] = {}
        for name, _ in found:
            names[name] = names.get(name, 0) + 1
        top = ", ".join(f"{n}×{k}" for k, n in sorted(names.items(), key=lambda kv: -kv[1])[:4])
        print(f"{step:<34} {len(found):4d} compilations, {sum(float(t) for _, t in found):6.2f} s compiling, "
              f"{seconds:6.2f} s wall   ({top})")
        buf.seek(0)
        buf.truncate()

    runs = synthetic_runs("joint", n_runs=60, seed=1)
    new = pd.DataFrame({"n_active": [1e9, 2e9, 3e9], "tokens": [2e10, 4e10, 6e10], "experts": [8, 8, 16]})
    steps = [
        ("fit (joint, 2 chains x 100/100)", lambda: bayesmoe.fit(runs, law="joint", num_chains=2, num_warmup=100,
                                                                  num_samples=100, seed=0, progress=False,
                                                                  on_bad_fit="warn")),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        result = steps[0][1]()
        report(steps[0][0], time.perf_counter() - t0)
        for step, call in [
            ("predict mean, 3 new runs", lambda: result.predict(new)),
            ("predict new_run, same runs", lambda: result.predict(new, kind="new_run")),
            ("predict mean, 2 runs (new shape)", lambda: result.predict(new.iloc[:2])),
            ("predict mean, 3 runs again", lambda: result.predict(new)),
            ("holdout_table, 5 runs", lambda: result.holdout_table(runs.iloc[:5])),
        ]:
            t0 = time.perf_counter()
            call()
            report(step, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
