"""Command line: a thin argparse layer over the public API; flags mirror the Python keywords.

    bayesmoe fit data/reference_runs.csv --law joint --where "granularity == 1" \
        --holdout "split == 'heldout'" --target-accept 0.99 --out models/reference_joint.nc
    bayesmoe summary models/reference_joint.nc
    bayesmoe report models/reference_joint.nc -o report.html

``--where`` and ``--holdout`` are pandas ``DataFrame.query`` expressions: the first selects the
rows the fit may use, the second sets rows aside, predicts them and prints the errors. Both print
how many rows they kept, so nothing leaves the fit unannounced. ``--out X.nc`` also writes the
model card ``X.md`` beside it.

Bad input prints the validation message without a traceback and exits with status 2. A fit
that fails its convergence checks exits with status 1, after saving what ``--out`` and
``--report`` ask for, marked as failed.

JAX and NumPyro load only once the arguments are parsed and the table is validated, so
``--help`` and a rejected table answer in about a second (bench/bench_cli_startup.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bayesmoe", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    f = sub.add_parser("fit", help="fit a scaling law to a CSV of runs and print the posterior")
    f.add_argument("runs", help="CSV with one row per run (columns: see bayesmoe.data)")
    f.add_argument("--where", help="pandas query selecting the rows to use, e.g. \"granularity == 1\"")
    f.add_argument("--holdout", help="pandas query for rows to leave out of the fit and predict, "
                                     "e.g. \"split == 'heldout'\"")
    f.add_argument("--law", default="joint", help="joint | fine_grained | sparsity | chinchilla (default joint)")
    f.add_argument("--priors", default="literature",
                   help="'literature', 'weak', or a JSON object of per-site overrides, "
                        "e.g. '{\"e_start\": 2.0732, \"e_max\": 290.4521}'")
    f.add_argument("--num-chains", type=int, default=4, help="NUTS chains (default 4)")
    f.add_argument("--num-warmup", type=int, default=1000, help="warmup iterations per chain")
    f.add_argument("--num-samples", type=int, default=1000, help="draws per chain")
    f.add_argument("--seed", type=int, default=0, help="sampler seed")
    f.add_argument("--target-accept", type=float, default=None,
                   help="NUTS target acceptance (default: the law's, 0.8 for joint and chinchilla, "
                        "0.95 for fine_grained and sparsity, for one group; 0.99 for several)")
    f.add_argument("--on-bad-fit", choices=("raise", "warn"), default="raise",
                   help="a failed convergence check: exit 1 (raise) or 0 with a warning (warn); either way "
                        "--out and --report still write the result, marked as failed")
    f.add_argument("--discrepancy", choices=("auto", "backtest", "prior", "none"), default=None,
                   help="the law's extrapolation error in every prediction beyond the fitted runs: its "
                        "growth rate learned from backtests inside the table and the shipped prior "
                        "(auto: backtests where the table is large enough), the prior alone, or none "
                        "(the law-only band); default: $BAYESMOE_DISCREPANCY, else auto")
    f.add_argument("--ci-prob", type=float, default=0.94, help="probability of the printed intervals")
    f.add_argument("--out", help="save the result to this netCDF path (and its model card beside it, .md)")
    f.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    f.add_argument("--flops", type=float, nargs="+", default=None,
                   help="training budgets: print the recommended configuration for each (and put it in --report)")
    f.add_argument("--report", help="also write the self-contained HTML report to this path")

    o = sub.add_parser("optimal", help="posterior of the best expert count, size and tokens for budgets")
    o.add_argument("path", help="a file written by `bayesmoe fit --out`")
    o.add_argument("--flops", type=float, nargs="+", required=True, help="training budgets in FLOPs")
    o.add_argument("--experts", type=int, nargs="+", default=None,
                   help="candidate expert counts (default 1 2 4 ... 256)")
    o.add_argument("--memory-gb", type=float, default=None, help="limit on weights + KV cache, GB (1e9 bytes)")
    o.add_argument("--context", type=float, default=0.0, help="tokens in the KV cache (with --memory-gb)")
    o.add_argument("--serve-tokens", type=float, default=0.0,
                   help="tokens to serve after training (2·N_act FLOPs each, taken out of --flops)")
    o.add_argument("--group", default=None, help="a group of a hierarchical fit (default: a new setup)")
    o.add_argument("--ci-prob", type=float, default=0.9, help="probability of the intervals")
    o.add_argument("--json", action="store_true", help="print the table as JSON records")

    s = sub.add_parser("summary", help="print the posterior summary of a saved result")
    s.add_argument("path", help="a file written by `bayesmoe fit --out`")
    s.add_argument("--ci-prob", type=float, default=0.94, help="probability of the printed intervals")

    r = sub.add_parser("report", help="write a self-contained HTML report of a saved result (or of a CSV, fitted first)")
    r.add_argument("path", help="a file written by `bayesmoe fit --out`, or a CSV of runs to fit with defaults")
    r.add_argument("-o", "--out", default="report.html", help="HTML file to write (default report.html)")
    r.add_argument("--flops", type=float, nargs="+", default=None,
                   help="training compute budgets (FLOPs) for the recommendations section")
    r.add_argument("--memory-gb", type=float, default=None, help="memory limit for the recommendations (GB)")
    r.add_argument("--context", type=float, default=0.0, help="KV-cache tokens under --memory-gb")
    r.add_argument("--law", default="joint", help="law to fit when PATH is a CSV (default joint)")
    r.add_argument("--where", help="pandas query selecting the CSV rows to fit")
    r.add_argument("--num-warmup", type=int, default=1000, help="warmup iterations per chain (CSV input)")
    r.add_argument("--num-samples", type=int, default=1000, help="draws per chain (CSV input)")
    r.add_argument("--ci-prob", type=float, default=0.94, help="probability of the intervals")
    v = sub.add_parser("validate", help="is the posterior honest? SBC, extrapolation hold-out, LOO comparison")
    vsub = v.add_subparsers(dest="check", required=True)
    vs = vsub.add_parser("sbc", help="simulation-based calibration: prior draws -> tables -> fits -> ranks")
    vs.add_argument("--law", default="chinchilla", help="law to calibrate (default chinchilla)")
    vs.add_argument("--datasets", type=int, default=20, help="simulated data sets (200 for the full check)")
    vs.add_argument("--runs", type=int, default=None, help="runs per table (default: 120 joint, 100 others)")
    vs.add_argument("--num-chains", type=int, default=4, help="NUTS chains per fit")
    vs.add_argument("--num-warmup", type=int, default=500, help="warmup iterations per chain")
    vs.add_argument("--num-samples", type=int, default=250, help="draws per chain")
    vs.add_argument("--thin", type=int, default=10, help="keep every k-th draw for the ranks")
    vs.add_argument("--seed", type=int, default=0, help="seed of the design and prior draws")
    vs.add_argument("--batch-size", type=int, default=10, help="data sets fitted together in one vectorised program")
    vs.add_argument("--target-accept", type=float, default=None,
                    help="NUTS target acceptance (default: fit's one-group default for the law)")
    vs.add_argument("--alpha", type=float, default=0.01, help="false-alarm rate of the whole pass/fail check")
    vs.add_argument("--out", default=None, help="CSV of one row per data set (appended to: a rerun resumes)")
    vs.add_argument("--figure", default=None, help="PNG of the rank histograms (and X_coverage.png beside it)")
    vh = vsub.add_parser("holdout", help="fit below a compute (or size) threshold, score the runs above it")
    vh.add_argument("runs", help="CSV with one row per run")
    vh.add_argument("--law", default="joint", help="law to fit (default joint)")
    vh.add_argument("--where", help="pandas query selecting the rows to use")
    vh.add_argument("--by", default="compute", help="what orders the runs: compute (6·N·D) or a numeric column")
    vh.add_argument("--quantile", type=float, default=0.8, help="fit the runs at or below this quantile of --by")
    vh.add_argument("--threshold", type=float, default=None, help="an absolute threshold instead of --quantile")
    vh.add_argument("--per-group", action="store_true", help="take the quantile within each group")
    vh.add_argument("--pooled", action="store_true", help="one pooled law for every group (not hierarchical)")
    vh.add_argument("--num-chains", type=int, default=4, help="NUTS chains")
    vh.add_argument("--num-warmup", type=int, default=1000, help="warmup iterations per chain")
    vh.add_argument("--num-samples", type=int, default=1000, help="draws per chain")
    vh.add_argument("--target-accept", type=float, default=None, help="NUTS target acceptance")
    vh.add_argument("--seed", type=int, default=0, help="sampler seed")
    vh.add_argument("--min-coverage", type=float, default=0.85,
                    help="pass when the 90%% new-run interval covers at least this share of held-out runs")
    vh.add_argument("--out", default=None, help="CSV of the held-out runs with predictions and intervals")
    vh.add_argument("--figure", default=None, help="PNG of the extrapolation errors")
    vc = vsub.add_parser("compare", help="PSIS-LOO comparison of saved fits of the same runs")
    vc.add_argument("paths", nargs="+", help="two or more files written by `bayesmoe fit --out`")
    return p


def _validate(args) -> int:
    """``bayesmoe validate sbc|holdout|compare``: exit 0 on pass, 1 on fail, 2 on bad input."""
    import pandas as pd

    from bayesmoe import validation

    wide = pd.option_context("display.width", 200, "display.max_columns", 40, "display.float_format", "{:.4g}".format)
    if args.check == "sbc":
        from bayesmoe.laws import get_law

        law = get_law(args.law)
        for name in ("datasets", "num_chains", "num_warmup", "num_samples", "thin", "batch_size"):
            if getattr(args, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
        table = validation.sbc(law, n_datasets=args.datasets, n_runs=args.runs or (120 if law.name == "joint" else 100),
                               num_chains=args.num_chains, num_warmup=args.num_warmup,
                               num_samples=args.num_samples, thin=args.thin, seed=args.seed, out=args.out,
                               batch_size=args.batch_size, target_accept=args.target_accept,
                               progress=None)
        table = table[table["dataset"] < args.datasets]
        check = validation.sbc_check(table, alpha=args.alpha)
        bad = int(validation.sbc_failed_fits(table).sum())
        print(f"law: {law.name}; fits with divergences or R-hat > 1.05: {bad} of {len(table)}")
        with wide:
            print(check)
        if args.figure:
            from pathlib import Path

            from bayesmoe.plots import plot_sbc_coverage, plot_sbc_ranks

            fig = plot_sbc_ranks(table)
            fig.savefig(args.figure, dpi=120)
            cov = Path(args.figure).with_name(Path(args.figure).stem + "_coverage.png")
            plot_sbc_coverage(table).figure.savefig(cov, dpi=120)
            print(f"figures: {args.figure}, {cov}")
        return 0 if check.passed else 1
    if args.check == "holdout":
        runs, _ = _select(_read_runs(args.runs), args.where, None)
        ho = validation.extrapolation_holdout(
            runs, law=args.law, by=args.by, quantile=args.quantile, threshold=args.threshold,
            per_group=args.per_group, hierarchical=False if args.pooled else None, seed=args.seed,
            fit_kwargs=dict(num_chains=args.num_chains, num_warmup=args.num_warmup, num_samples=args.num_samples,
                            target_accept=args.target_accept, on_bad_fit="warn", progress=None))
        s = ho.summary
        cols = [c for c in ("group", args.by, "loss", "predicted", "error", "lo90", "hi90", "in90") if c in ho.table]
        with wide:
            print(f"held-out runs ({s['n_held']}; {s['n_fit']} fitted), posterior median and new-run 90 % interval")
            print(ho.table[cols].to_string())
        covered = s["coverage_90"] >= args.min_coverage
        # a fit that failed its convergence checks never passes, whatever its coverage
        passed = covered and s["diagnostics_ok"]
        disc = s["discrepancy"]
        print(f"\nlaw {s['law']}, by {s['by']}: max |error| {s['max_abs_error']:.4f} nats, RMSE {s['rmse']:.4f}, "
              f"50 % interval covers {s['coverage_50']:.0%}, 90 % covers {s['coverage_90']:.0%} "
              f"(law-only band: {s['coverage_90_law']:.0%}); extrapolation error τ median "
              f"{disc['tau_median']:.3g} per decade ({disc['source']})")
        print(f"fit diagnostics: "
              f"{'ok' if s['diagnostics_ok'] else 'PROBLEMS: ' + '; '.join(ho.fit.diagnostics.problems)}")
        print(f"verdict: {'PASS' if passed else 'FAIL'} (bar {args.min_coverage:.0%} at 90 %"
              f"{'' if s['diagnostics_ok'] else '; the fit did not converge, so no coverage counts as a pass'})")
        if args.out:
            ho.table.to_csv(args.out)
            print(f"table: {args.out}")
        if args.figure:
            from bayesmoe.plots import plot_holdout

            plot_holdout(ho).figure.savefig(args.figure, dpi=120)
            print(f"figure: {args.figure}")
        return 0 if passed else 1
    import bayesmoe
    from pathlib import Path

    names = [Path(p).stem for p in args.paths]
    if len(set(names)) < len(names):
        names = list(args.paths)
    table = validation.compare_laws({n: bayesmoe.load(p) for n, p in zip(names, args.paths)})
    with wide:
        print(table.to_string())
    return 0


def _report(args) -> int:
    import bayesmoe

    if args.path.lower().endswith(".csv"):  # straight from a table: fit with defaults, keep a bad fit (red verdict)
        runs, _ = _select(_read_runs(args.path), args.where, None)
        _check_table(runs, args.law)
        _start_jax(4)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bayesmoe.ConvergenceWarning)  # said below, in CLI flags
            result = bayesmoe.fit(runs, law=args.law, on_bad_fit="warn", num_warmup=args.num_warmup,
                                  num_samples=args.num_samples)
        message = result.convergence_message("cli")
        if message:  # `report` takes only some of these flags; `fit` takes them all
            message += f" The flags are those of `bayesmoe fit {args.path} --report {args.out}`."
            result.warnings = [message]
            print(f"bayesmoe: warning: {message}", file=sys.stderr)
    else:
        result = bayesmoe.load(args.path)
    try:
        path = result.report(args.out, budgets=args.flops, ci_prob=args.ci_prob, memory_gb=args.memory_gb,
                             context_tokens=args.context)
    except OSError as err:
        print(f"bayesmoe: cannot write the report to {args.out}: {err}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


def _print_result(result, ci_prob: float) -> None:
    import pandas as pd

    attrs = result.tree.attrs
    n_runs = result.tree["observed_data"].sizes["run"]
    print(f"law: {result.law.name}  {result.law.description}")
    print(f"runs: {n_runs}  groups: {', '.join(result.groups)}  priors: see saved file attrs")
    timings = json.loads(attrs.get("timings", "{}"))
    if timings:
        print(f"NUTS: {result.diagnostics.num_chains} chains x {result.diagnostics.num_draws} draws, "
              f"warmup {timings['warmup_s']:.1f} s, sampling {timings['sampling_s']:.1f} s, "
              f"{timings['mean_leapfrog_steps']:.0f} leapfrog steps/iteration, {timings['chain_method']} on {timings['device']}")
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        print("\nposterior summary")
        print(result.summary(ci_prob=ci_prob).to_string())
        print("\ndiagnostics")
        print(result.diagnostics.table().to_string())
    print("\nstatus:", "ok" if result.diagnostics.ok else "PROBLEMS: " + "; ".join(result.diagnostics.problems))
    disc = result.discrepancy.summary()
    if disc["source"] == "none":
        print("extrapolation error: none (law-only intervals; calibrated inside the fitted runs only)")
    else:
        extra = (f" from {disc['backtest_predictions']} backtest predictions at {disc['backtest_cuts']} cuts"
                 if "backtest_predictions" in disc else "")
        print(f"extrapolation error: grows {disc['tau_median']:.3g} ln-loss per decade beyond the fitted runs "
              f"(90 % {disc['tau_lo90']:.3g}-{disc['tau_hi90']:.3g}; {disc['source']}{extra}); "
              "new-run intervals include it")


def _optimal(result, args) -> int:
    import pandas as pd

    if args.context and args.memory_gb is None:
        print("bayesmoe: --context sizes the KV cache of a memory limit; give --memory-gb too", file=sys.stderr)
        return 2
    from bayesmoe.optima import recommend

    if args.experts and "experts" not in result.law.inputs:
        print(f"bayesmoe: law {result.law.name!r} has no expert count; drop --experts", file=sys.stderr)
        return 2
    opt = recommend(result, args.flops, experts=args.experts, ci_prob=args.ci_prob, group=args.group,
                    memory_gb=args.memory_gb, context_tokens=args.context, serve_tokens=args.serve_tokens)
    table = opt.summary()
    if args.json:
        print(table.reset_index().to_json(orient="records", indent=1))
        return 0
    limits = [f"memory {args.memory_gb:g} GB with {args.context:g} KV tokens" if args.memory_gb else "",
              f"serving {args.serve_tokens:g} tokens" if args.serve_tokens else ""]
    print(f"law: {result.law.name}; budgets: training FLOPs{''.join('; ' + x for x in limits if x)}")
    with pd.option_context("display.width", 200, "display.max_columns", 60, "display.float_format", "{:.4g}".format):
        print(table.T.to_string())
    _print_extrapolation(opt, table)
    return 0


def _print_extrapolation(opt, table) -> None:
    """Where each answer leaves the data: per input, and the expert-count odds at the edges."""
    choice, _, _, x = opt.names
    ds = opt.dataset
    for flops, row in table.iterrows():
        parts = [f"{a} {row[f'beyond_{a}']:+.2f}" for a in ds["axis"].values if abs(row[f"beyond_{a}"]) > 0.005]
        flags = []
        if row.get(f"{x}_at_edge"):
            flags.append(f"P({x}* = largest candidate) {row[f'P({x}* at edge)']:.2f}: widen the candidates")
        if row.get(f"{x}_beyond_fitted"):
            lo, hi = ds.attrs[f"fitted_{choice}_min"], ds.attrs[f"fitted_{choice}_max"]
            flags.append(f"P({x}* outside the fitted {x} {lo:g}-{hi:g}) {row[f'P({x}* beyond fitted)']:.2f}")
        if parts or flags:
            print(f"\n{flops:.0e} FLOPs: the optimum lies beyond the fitted runs by "
                  f"{', '.join(parts) if parts else 'nothing'} (decades; "
                  f"{row['extrapolation_decades']:.2f} in all)" + ("; " + "; ".join(flags) if flags else ""))


def _print_recommendations(result, flops) -> None:
    import pandas as pd

    from bayesmoe.optima import recommend

    opt = recommend(result, flops)
    _, _, size, x = opt.names
    table = opt.summary()
    keep = ["extrapolation_decades", f"{x}_decision", "expected_regret", f"{x}* median",
            f"{'N_act' if size == 'n_active' else 'N_total'}* median", "D* median", "loss* median"]
    keep += [c for c in table.columns if c.startswith(f"P({x}*=") and table[c].max() >= 0.01]
    print(f"\nrecommendations ({opt.ci_prob:.0%} intervals and every column: bayesmoe optimal, or the report)")
    with pd.option_context("display.width", 200, "display.max_columns", 40, "display.float_format", "{:.4g}".format):
        print(table[keep].T.to_string())
    _print_extrapolation(opt, table)


def _quote(arg: str) -> str:
    """Shell quoting that reads like the README: double quotes where they are safe."""
    if shlex.quote(arg) == arg or any(ch in arg for ch in '"$`\\!'):
        return shlex.quote(arg)
    return f'"{arg}"'


def _read_runs(path: str):
    """The CSV of runs; an unreadable file is bad input (exit 2 with the reason)."""
    import pandas as pd

    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read {path}: {err}") from None


def _check_table(runs, law: str) -> None:
    """Reject a bad table before JAX loads: the same checks ``fit`` runs, for a built-in law."""
    from bayesmoe.data import LAW_INPUTS, validate_runs

    if law not in LAW_INPUTS:
        return  # fit itself will say the law is unknown
    log = logging.getLogger("bayesmoe")
    level = log.level
    log.setLevel(logging.WARNING)  # fit validates again and says which columns it mapped, once
    try:
        validate_runs(runs, required=LAW_INPUTS[law] + ("loss",))
    finally:
        log.setLevel(level)


def _start_jax(num_chains: int) -> None:
    """One CPU device per chain, before JAX initialises (the library itself never does this)."""
    import numpyro

    numpyro.set_host_device_count(max(num_chains, 1))


def _fit(args, runs, argv):
    """``bayesmoe.fit`` as the CLI runs it: a failed fit is returned, marked, with the advice in
    CLI flags (``--on-bad-fit raise`` then exits 1 after the result is saved)."""
    import warnings

    import bayesmoe

    priors = args.priors
    if priors.strip().startswith("{"):
        try:
            priors = json.loads(priors)
        except json.JSONDecodeError as err:
            raise bayesmoe.DataValidationError(f"--priors is not valid JSON: {err}") from None
    _check_table(runs, args.law)
    _start_jax(args.num_chains)
    with warnings.catch_warnings():
        # the Python-keyword advice of the warning is replaced by the CLI's own below
        warnings.simplefilter("ignore", bayesmoe.ConvergenceWarning)
        result = bayesmoe.fit(
            runs, law=args.law, priors=priors, num_chains=args.num_chains,
            num_warmup=args.num_warmup, num_samples=args.num_samples, seed=args.seed,
            target_accept=args.target_accept, on_bad_fit="warn",
            progress=False if args.no_progress else None, discrepancy=getattr(args, "discrepancy", None),
        )
    result.tree.attrs["command"] = "bayesmoe " + " ".join(
        _quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    message = result.convergence_message("cli")
    if message:
        result.warnings = [message]
    return result, message


def _select(runs, where: str | None, holdout: str | None):
    """Apply ``--where`` then ``--holdout``; say how many rows each kept."""
    from bayesmoe.errors import DataValidationError

    def query(expr: str, flag: str):
        try:
            mask = runs.eval(expr)
        except Exception as err:  # pandas raises many types for a bad expression
            raise DataValidationError(f"{flag} {expr!r} is not a valid query on columns "
                                      f"{list(runs.columns)}: {err}") from None
        if getattr(mask, "dtype", None) != bool:
            raise DataValidationError(f"{flag} {expr!r} does not give True/False per row")
        return mask

    total = len(runs)
    if where:
        runs = runs[query(where, "--where")]
        print(f"--where {where!r}: {len(runs)} of {total} rows kept, {total - len(runs)} left out")
    heldout = None
    if holdout:
        mask = query(holdout, "--holdout")
        runs, heldout = runs[~mask], runs[mask]
        print(f"--holdout {holdout!r}: {len(heldout)} rows set aside, {len(runs)} fitted")
        if heldout.empty:
            raise DataValidationError(f"--holdout {holdout!r} matches no row")
    if runs.empty:
        raise DataValidationError("no rows left to fit after --where/--holdout")
    return runs, heldout


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # the package's own messages (e.g. which column aliases were mapped), not JAX's
    log = logging.getLogger("bayesmoe")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)

    import pandas as pd

    from bayesmoe.errors import BayesMoEError, ConvergenceError

    try:
        if args.command == "fit":
            runs, heldout = _select(_read_runs(args.runs), args.where, args.holdout)
            result, failure = _fit(args, runs, argv)
            _print_result(result, args.ci_prob)
            if heldout is not None:
                checks = result.holdout_table(heldout)
                result.tree.attrs["holdout"] = checks.to_json(orient="records")
                with pd.option_context("display.width", 160, "display.float_format", "{:.4g}".format):
                    print("\nheld-out runs (not fitted): posterior median of the law and the 50 % / 90 % "
                          "intervals of a new run (extrapolation error included; in90_law: the law-only band)")
                    print(checks.to_string())
            if args.flops:
                _print_recommendations(result, args.flops)
            if args.out:
                path = result.save(args.out)
                card = path.with_suffix(".md")
                card.write_text(result.model_card())
                print(f"\nsaved{' (marked as FAILED)' if failure else ''}: {path}\nmodel card: {card}")
            if args.report:
                print(f"report: {result.report(args.report, budgets=args.flops)}")
            if failure:
                if args.on_bad_fit == "raise":
                    print(f"bayesmoe: {failure}", file=sys.stderr)
                    return 1
                print(f"bayesmoe: warning: {failure}", file=sys.stderr)
            return 0
        if args.command == "report":
            return _report(args)
        if args.command == "validate":
            if args.check != "compare":
                _start_jax(getattr(args, "num_chains", 4))
            return _validate(args)
        import bayesmoe

        result = bayesmoe.load(args.path)
        if args.command == "optimal":
            return _optimal(result, args)
        _print_result(result, args.ci_prob)
        return 0
    except ConvergenceError as err:
        print(f"bayesmoe: {err}", file=sys.stderr)
        return 1
    except (BayesMoEError, ValueError, FileNotFoundError) as err:
        print(f"bayesmoe: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
