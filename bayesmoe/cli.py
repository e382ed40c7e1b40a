"""Command line: a thin argparse layer over the public API; flags mirror the Python keywords.

    bayesmoe fit data/reference_runs.csv --law joint --where "granularity == 1" \
        --holdout "split == 'heldout'" --out results/reference_joint.nc
    bayesmoe summary results/reference_joint.nc
    bayesmoe report results/reference_joint.nc -o results/report.html --flops 1e13 1e16
    bayesmoe fit paper.csv --columns n_active=ActiveParams,tokens=D --loss-unit perplexity

``--where`` and ``--holdout`` are pandas ``DataFrame.query`` expressions: the first selects the
rows the fit may use, the second sets rows aside, predicts them and prints the errors. Both print
how many rows they kept, so nothing leaves the fit unannounced. ``--out X.nc`` also writes the
model card ``X.md`` beside it.

Bad input (any :class:`bayesmoe.BayesMoEError`: a table, a file, a flag) prints its message
without a traceback and exits with status 2. A fit that fails its convergence checks exits 1,
after saving what ``--out`` and ``--report`` ask for, marked as failed. Any other exception is a
bug and keeps its traceback. JAX and NumPyro load only once the arguments are parsed and the table
is validated, so ``--help`` and a rejected table answer in about a second
(bench/bench_cli_startup.py). ``--help`` shows every default; every
interval is 90 % (``bayesmoe.intervals.DEFAULT_CI_PROB``) unless ``--ci-prob`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys

from bayesmoe.errors import InputError
from bayesmoe.intervals import DEFAULT_CI_PROB, check_ci_prob
from bayesmoe.units import LOSS_UNITS


class _HELP(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows every default, once: not where the help already says it, nor "None"."""

    def _get_help_string(self, action):
        if action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)

_LOSS_UNIT_HINT = ("bayesmoe: the loss column was read as nats per token; a loss in bits or a perplexity "
                   "misfits the law this way: if so, pass --loss-unit bits or --loss-unit perplexity")


def _columns_arg(text: str) -> dict[str, str]:
    """``n_active=ActiveParams,tokens=D`` -> ``{"n_active": "ActiveParams", "tokens": "D"}``."""
    out = {}
    for part in (p for p in text.split(",") if p.strip()):
        field, sep, col = part.partition("=")
        if not sep or not field.strip() or not col.strip():
            raise argparse.ArgumentTypeError(
                f"{part!r} is not NAME=COLUMN; e.g. --columns n_active=ActiveParams,tokens=D")
        out[field.strip()] = col.strip()
    return out


def _prob_arg(text: str) -> float:
    try:
        return check_ci_prob(float(text))
    except (ValueError, InputError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _table_flags(p: argparse.ArgumentParser, *, holdout: bool = True) -> None:
    """Flags of every verb that reads a CSV of runs."""
    p.add_argument("--where", help="pandas query selecting the rows to use, e.g. \"granularity == 1\"")
    if holdout:
        p.add_argument("--holdout", help="pandas query for rows to leave out of the fit and predict, "
                                         "e.g. \"split == 'heldout'\"")
    p.add_argument("--columns", type=_columns_arg, default=None, metavar="NAME=COLUMN,...",
                   help="which column is what, e.g. n_active=ActiveParams,tokens=D; flops=COLUMN derives "
                        "tokens as D = C / (6 N) (default: unambiguous aliases only)")
    p.add_argument("--loss-unit", choices=LOSS_UNITS, default=None,
                   help="unit of the loss column, converted to nats (default: nats; a column named like "
                        "bits or perplexity must say its unit)")


def _priors_arg(text: str):
    """``--priors``: a family name as given, or a JSON object of per-site overrides."""
    if text.strip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f"--priors is not valid JSON: {err}") from None
    return text


def _fit_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--law", default="joint", help="joint | fine_grained | sparsity | chinchilla")
    p.add_argument("--priors", default="literature",
                   help="'literature', 'weak', or a JSON object of per-site overrides, "
                        "e.g. '{\"e_start\": 2.0732, \"e_max\": 290.4521}'")
    p.add_argument("--num-chains", type=int, default=4, help="NUTS chains")
    p.add_argument("--num-warmup", type=int, default=1000, help="warmup iterations per chain")
    p.add_argument("--num-samples", type=int, default=1000, help="draws per chain")
    p.add_argument("--max-extensions", type=int, default=2,
                   help="when the draws fail R-hat or ESS alone (no divergences), sample --num-samples "
                        "more per chain from where the chains stopped, at most this many times (0: never)")
    p.add_argument("--start-candidates", type=int, default=None,
                   help="each chain starts from the lowest of this many short descents of the posterior "
                        "(default: the law's, 8 for joint, 1 for the others and for several groups)")
    p.add_argument("--seed", type=int, default=0, help="sampler seed")
    p.add_argument("--target-accept", type=float, default=None,
                   help="NUTS target acceptance (default: the law's, 0.95 for every built-in law, "
                        "for one group; 0.99 for several)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--centre", nargs="+", default=None, metavar="PARAM",
                   help="hierarchical fits: sample these parameters' group offsets half-centred, the "
                        "irreducible loss and/or a scale (the levels), e.g. --centre c a for the joint "
                        "law; worth a try where every group has many runs spanning N and D")
    p.add_argument("--discrepancy", choices=("auto", "backtest", "prior", "none"), default=None,
                   help="the law's extrapolation error in every prediction beyond the fitted runs: its "
                        "growth rate learned from backtests inside the table and the shipped prior "
                        "(auto: backtests where the table is large enough), the prior alone, or none "
                        "(the law-only band); default: $BAYESMOE_DISCREPANCY, else auto")


def _budget_flags(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    """Flags of the recommendation (answer) tables: fit, report and optimal share them."""
    p.add_argument("--flops", type=float, nargs="+", required=required, default=None,
                   help="training budgets in FLOPs: print the recommended configuration for each")
    p.add_argument("--experts", type=int, nargs="+", default=None,
                   help="candidate expert counts (default 1 2 4 ... 256)")
    p.add_argument("--memory-gb", type=float, default=None, help="limit on weights + KV cache, GB (1e9 bytes)")
    p.add_argument("--context", type=float, default=0.0, help="tokens in the KV cache (with --memory-gb)")
    p.add_argument("--serve-tokens", type=float, default=0.0,
                   help="tokens to serve after training (2·N_act FLOPs each, taken out of --flops)")
    p.add_argument("--vocab", type=int, default=None,
                   help="vocabulary of the model shape behind sizes and memory (default: ModelShape's 50257)")
    p.add_argument("--blocks", type=float, default=None,
                   help="fixed number of transformer blocks of the shape (default: d_model / 64, the "
                        "joint-law paper's; the shipped reference runs have 2 blocks and vocab 256)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bayesmoe", description=__doc__.split("\n")[0], formatter_class=_HELP)
    sub = p.add_subparsers(dest="command", required=True)

    f = sub.add_parser("fit", help="fit a scaling law to a CSV of runs and print the posterior", formatter_class=_HELP)
    f.add_argument("runs", help="CSV with one row per run (columns: see bayesmoe.data)")
    _table_flags(f)
    _fit_flags(f)
    f.add_argument("--on-bad-fit", choices=("raise", "warn"), default="raise",
                   help="a failed convergence check: exit 1 (raise) or 0 with a warning (warn); either way "
                        "--out and --report still write the result, marked as failed")
    f.add_argument("--ci-prob", type=_prob_arg, default=DEFAULT_CI_PROB, help="probability of every interval")
    f.add_argument("--out", help="save the result to this netCDF path (and its model card beside it, .md)")
    _budget_flags(f)
    f.add_argument("--report", help="also write the self-contained HTML report to this path")

    o = sub.add_parser("optimal", help="posterior of the best expert count, size and tokens for budgets",
                       formatter_class=_HELP)
    o.add_argument("path", help="a file written by `bayesmoe fit --out`")
    _budget_flags(o, required=True)
    o.add_argument("--group", default=None, help="a group of a hierarchical fit (default: a new setup)")
    o.add_argument("--ci-prob", type=_prob_arg, default=DEFAULT_CI_PROB, help="probability of the intervals")
    o.add_argument("--json", action="store_true", help="print the table as JSON records")

    n = sub.add_parser("suggest", help="which runs to train next: the ones that most reduce the risk of the "
                                       "decision at a target budget, per FLOP", formatter_class=_HELP)
    n.add_argument("path", help="a file written by `bayesmoe fit --out`")
    _budget_flags(n, required=True)
    n.add_argument("--budget-flops", type=float, required=True,
                   help="training FLOPs available for the new runs together (6·N_act·D each)")
    n.add_argument("--k", type=int, default=1, help="how many runs to suggest (a greedy batch)")
    n.add_argument("--candidates", default=None,
                   help="CSV of runs you could train (the law's inputs); default: a grid from the fitted "
                        "range to --extend times beyond it")
    n.add_argument("--extend", type=float, default=4.0, help="factor beyond the largest fitted N and D of the "
                                                             "default candidate grid")
    n.add_argument("--group", default=None, help="the group of a hierarchical fit the new runs belong to")
    n.add_argument("--seed", type=int, default=0, help="seeds the simulated outcomes")
    n.add_argument("--json", action="store_true", help="print the suggestion as JSON")

    s = sub.add_parser("summary", help="print the posterior summary, verdict and priors of a saved result",
                       formatter_class=_HELP)
    s.add_argument("path", help="a file written by `bayesmoe fit --out`")
    s.add_argument("--ci-prob", type=_prob_arg, default=DEFAULT_CI_PROB, help="probability of the printed intervals")
    s.add_argument("--json", action="store_true",
                   help="print the verdict, diagnostics, posterior, extrapolation error, runs beyond the fitted "
                        "noise and held-out runs as one JSON object")

    r = sub.add_parser("report", help="write a self-contained HTML report of a saved result (or of a CSV, fitted first)",
                       formatter_class=_HELP)
    r.add_argument("path", help="a file written by `bayesmoe fit --out`, or a CSV of runs to fit first")
    r.add_argument("-o", "--out", default="report.html", help="HTML file to write")
    _budget_flags(r)
    r.add_argument("--ci-prob", type=_prob_arg, default=DEFAULT_CI_PROB, help="probability of the intervals")
    r.add_argument("--suggest-budget", type=float, default=None,
                   help="add a 'Next runs' section: the runs to train with this many FLOPs for the decision at "
                        "the largest --flops (bayesmoe suggest)")
    r.add_argument("--suggest-k", type=int, default=3, help="how many next runs the section suggests")
    csv = r.add_argument_group("when PATH is a CSV (fitted first, a bad fit kept with a red verdict)")
    _table_flags(csv)
    _fit_flags(csv)

    v = sub.add_parser("validate", help="is the posterior honest? SBC, extrapolation hold-out, LOO comparison",
                       formatter_class=_HELP)
    vsub = v.add_subparsers(dest="check", required=True)
    vs = vsub.add_parser("sbc", help="simulation-based calibration: prior draws -> tables -> fits -> ranks",
                         formatter_class=_HELP)
    vs.add_argument("--law", default="chinchilla", help="law to calibrate")
    vs.add_argument("--priors", default="literature",
                    help="'literature', 'weak', or a JSON object of per-site overrides, as for fit "
                         "(e.g. '{\"sigma_trend\": {\"dist\": \"normal\", \"loc\": 0, \"scale\": 0.5}}')")
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
    vh = vsub.add_parser("holdout", help="fit below a compute (or size) threshold, score the runs above it",
                         formatter_class=_HELP)
    vh.add_argument("runs", help="CSV with one row per run")
    vh.add_argument("--law", default="joint", help="law to fit")
    _table_flags(vh, holdout=False)
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
    vc = vsub.add_parser("compare", help="PSIS-LOO comparison of saved fits of the same runs", formatter_class=_HELP)
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
                raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
        table = validation.sbc(law, n_datasets=args.datasets, n_runs=args.runs or (120 if law.name == "joint" else 100),
                               num_chains=args.num_chains, num_warmup=args.num_warmup,
                               num_samples=args.num_samples, thin=args.thin, seed=args.seed, out=args.out,
                               batch_size=args.batch_size, target_accept=args.target_accept,
                               priors=_priors_arg(args.priors), progress=None)
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
        from bayesmoe.laws import get_law

        runs = _canonical(runs, get_law(args.law), args.columns, args.loss_unit)
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


def _canonical(runs, law, columns, loss_unit):
    """The selected rows in the schema's names and nats, for code that takes a validated table."""
    from bayesmoe.data import validate_runs

    return validate_runs(runs, required=law.inputs + ("loss",), columns=columns, loss_unit=loss_unit)


def _quiet_canonical(runs, law, columns, loss_unit):
    """As :func:`_canonical`, without repeating the column notes the fit already printed."""
    log = logging.getLogger("bayesmoe")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        return _canonical(runs, law, columns, loss_unit)
    finally:
        log.setLevel(level)


def _shape(args):
    """The ModelShape of --vocab/--blocks, or None for the default."""
    if args.vocab is None and args.blocks is None:
        return None
    from bayesmoe.shape import ModelShape

    kw = {k: v for k, v in (("vocab", args.vocab), ("n_blocks", args.blocks)) if v is not None}
    return ModelShape(**kw)


def _budget_options(args) -> dict:
    """Keywords of recommend()/render_report() from the shared budget flags."""
    if args.context and args.memory_gb is None:
        raise InputError("--context sizes the KV cache of a memory limit; give --memory-gb too")
    opts = {"experts": args.experts, "serve_tokens": args.serve_tokens, "shape": _shape(args)}
    if args.memory_gb is not None:
        opts.update(memory_gb=args.memory_gb, context_tokens=args.context)
    return opts


def _fit_csv(args, argv):
    """fit (and report on a CSV): read, select, fit, predict the held-out rows; print as it goes."""
    import bayesmoe

    runs, heldout = _select(_read_runs(args.runs if hasattr(args, "runs") else args.path), args.where,
                            args.holdout)
    priors = _priors_arg(args.priors)
    _check_table(runs, args.law, args.columns, args.loss_unit)
    _start_jax(args.num_chains)
    import warnings

    with warnings.catch_warnings():
        # the Python-keyword advice of the warning is replaced by the CLI's own below
        warnings.simplefilter("ignore", bayesmoe.ConvergenceWarning)
        try:
            result = bayesmoe.fit(
                runs, law=args.law, priors=priors, num_chains=args.num_chains,
                num_warmup=args.num_warmup, num_samples=args.num_samples, seed=args.seed,
                # `report RUNS.csv` has no --on-bad-fit: it reports (and marks) whatever the fit gives
                target_accept=args.target_accept, on_bad_fit=getattr(args, "on_bad_fit", "warn"),
                progress=False if args.no_progress else None, columns=args.columns, loss_unit=args.loss_unit,
                discrepancy=args.discrepancy, centre=args.centre or (), max_extensions=args.max_extensions,
                start_candidates=args.start_candidates,
            )
        except bayesmoe.ConvergenceError as err:
            # kept to save and report, marked as failed; a rejected fit skips the backtests
            result = err.result
    result.tree.attrs["command"] = "bayesmoe " + " ".join(
        _quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    failure = result.convergence_message("cli")
    if failure:
        result.warnings = [failure]
    if heldout is not None:
        held = _quiet_canonical(heldout, result.law, args.columns, args.loss_unit)
        checks = result.holdout_table(held, ci_prob=args.ci_prob)
        result.tree.attrs["holdout"] = checks.to_json(orient="records")
        result.tree.attrs["holdout_ci_prob"] = args.ci_prob
    return result, failure


def _check_table(runs, law: str, columns=None, loss_unit=None) -> None:
    """Reject a bad table before JAX loads: the same checks ``fit`` runs, for a built-in law."""
    from bayesmoe.data import LAW_INPUTS, validate_runs

    if law not in LAW_INPUTS:
        return  # fit itself will say the law is unknown
    log = logging.getLogger("bayesmoe")
    level = log.level
    log.setLevel(logging.WARNING)  # fit validates again and says which columns it mapped, once
    try:
        validate_runs(runs, required=LAW_INPUTS[law] + ("loss",), columns=columns, loss_unit=loss_unit)
    finally:
        log.setLevel(level)


def _start_jax(num_chains: int) -> None:
    """One CPU device per chain, before JAX initialises (the library itself never does this):
    the fit's chains, and the discrepancy backtests' chains (every cut's, sampled together)."""
    from bayesmoe.discrepancy import use_cpu_devices

    use_cpu_devices(num_chains)


def _report(args, argv) -> int:
    from bayesmoe.report import write_report

    if args.path.lower().endswith(".csv"):  # straight from a table: fit first, keep a bad fit (red verdict)
        result, failure = _fit_csv(args, argv)
        if failure:
            print(f"bayesmoe: warning: {failure}", file=sys.stderr)
    else:
        defaults = _parser().parse_args(["report", "x.csv"])
        table_only = [f"--{k.replace('_', '-')}" for k in ("where", "holdout", "columns", "loss_unit", "law", "priors",
                                                           "num_chains", "num_warmup", "num_samples", "seed",
                                                           "target_accept", "max_extensions", "start_candidates")
                      if getattr(args, k) != getattr(defaults, k)]
        if table_only:
            raise InputError(f"{', '.join(table_only)} apply when PATH is a CSV to fit; {args.path} is a saved fit "
                             "(its selection and sampler settings are fixed)")
        result = _load(args.path)
    budgets = args.flops
    try:
        path = write_report(result, args.out, budgets, ci_prob=args.ci_prob, **_report_options(args))
    except OSError as err:
        raise InputError(f"cannot write the report to {args.out}: {err}") from None
    print(f"report: {path}")
    return 0


def _report_options(args) -> dict:
    opts = {k: v for k, v in _budget_options(args).items() if v is not None}
    if getattr(args, "suggest_budget", None) is not None:
        if not args.flops:
            raise InputError("--suggest-budget plans runs for a target: give it with --flops (the largest is the target)")
        opts["next_runs"] = {"target": max(args.flops), "budget_flops": args.suggest_budget, "k": args.suggest_k}
    return opts


def _table_text(df) -> str:
    """A table as text with each cell formatted by its own type (ints stay ints)."""
    import numpy as np
    import pandas as pd

    def cell(v):
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else "no"
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        if isinstance(v, (float, np.floating)):
            return f"{v:.4g}"
        return str(v)

    return pd.DataFrame([[cell(v) for v in row] for row in df.itertuples(index=False)],
                        index=df.index, columns=df.columns).to_string()


def _print_result(result, ci_prob: float, notes: bool = True) -> None:
    import pandas as pd

    from bayesmoe.intervals import level_label
    from bayesmoe.priors import sites
    from bayesmoe.verdict import saved_holdout, verdict

    attrs = result.tree.attrs
    n_runs = result.tree["observed_data"].sizes["run"]
    print(f"law: {result.law.name}  {result.law.description}")
    unit = attrs.get("loss_unit", "nats")
    given = "" if unit == "nats" else f" (given in {unit}, converted)"
    print(f"runs: {n_runs}  groups: {', '.join(result.groups)}  loss: nats per token{given}")
    for note in json.loads(attrs.get("table_notes", "[]") or "[]") if notes else ():
        print(f"table: {note}")  # fit logged these as it read the table
    timings = json.loads(attrs.get("timings", "{}"))
    if timings:
        from bayesmoe.inference import timing_line  # loaded with the result already

        # the model card's and report's line: it also says when sampling was extended
        print(f"NUTS: {result.diagnostics.num_chains} chains x {result.diagnostics.num_draws} draws, "
              f"{timing_line(timings)}")
    used = set(sites(result.law, hierarchical=result.hierarchical, pooled=tuple(result.pooled) or None))
    priors = pd.DataFrame([{"site": k, "distribution": p.dist,
                            "arguments": ", ".join(f"{a}={float(b):g}" for a, b in p.args.items())}
                           for k, p in sorted(result.priors.items()) if k in used]).set_index("site")
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        print("\npriors (sampled sites; bayesmoe.priors documents each)")
        print(priors.to_string())
        print(f"\nposterior summary (median and {level_label(ci_prob)} equal-tailed interval)")
        print(result.summary(ci_prob=ci_prob).to_string())
        print("\ndiagnostics")
        print(result.diagnostics.table().to_string())
    held, level = saved_holdout(result)
    if held is not None:
        with pd.option_context("display.width", 160, "display.float_format", "{:.4g}".format):
            print(f"\nheld-out runs (not fitted): posterior median of the law and {level_label(level)} "
                  "interval of a new run")
            print(held.to_string())
    from bayesmoe.noise import run_residuals

    residuals = run_residuals(result)
    v = verdict(result, held, level, residuals=residuals)
    print(f"\nverdict: {v.line()}")
    for reason in v.reasons:
        print(f"  - {reason}")
    disc = result.discrepancy.summary()
    if disc["source"] == "none":
        print("extrapolation error: none (law-only intervals; calibrated inside the fitted runs only)")
    else:
        extra = (f" from {disc['backtest_predictions']} backtest predictions at {disc['backtest_cuts']} cuts"
                 if "backtest_predictions" in disc else "")
        print(f"extrapolation error: grows {disc['tau_median']:.3g} ln-loss per decade beyond the fitted runs "
              f"(90 % {disc['tau_lo90']:.3g}-{disc['tau_hi90']:.3g}; {disc['source']}{extra}); "
              "new-run intervals include it")
        if "note" in disc:
            print(f"  no backtests: {disc['note']}")
    from bayesmoe.data import design_notes

    for note in design_notes(result.runs, result.law.inputs):
        print(f"design: {note}")
    _print_outlying(result, residuals)


def _print_outlying(result, res) -> None:
    """The fitted runs the law does not fit (:func:`bayesmoe.noise.outlying_runs`), or the furthest;
    ``res``: the fit's :func:`bayesmoe.noise.run_residuals`."""
    import pandas as pd

    from bayesmoe.noise import OUTLIER_LEVEL, outlying, residual_rows

    far = outlying(res, OUTLIER_LEVEL)
    bound = (f"beyond what the fitted Student-t noise allows any of the {len(res)} runs at a family-wise "
             f"{OUTLIER_LEVEL:.0%} (Bonferroni)")
    if not len(far):
        worst = res["z"].abs().idxmax()
        print(f"runs the law does not fit: none {bound}; the furthest, run {worst}, lies "
              f"{res.loc[worst, 'z']:+.2f} σ from the law")
        return
    print(f"runs the law does not fit: {len(far)} {bound}; the heavy-tailed noise lets them barely pull the law")
    with pd.option_context("display.width", 160, "display.float_format", "{:.4g}".format):
        print(residual_rows(far, len(result.groups)).to_string())


def _plain(obj):
    """Plain JSON values: numpy scalars as Python's (an int stays an int, a bool a bool), NaN and
    infinities as null (JSON has no NaN)."""
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_plain(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _json(obj) -> str:
    return json.dumps(_plain(obj), indent=1, allow_nan=False)


def _recommendation_table(opt):
    from bayesmoe.units import budget_columns

    table = opt.summary()
    return table, budget_columns(table)


def _optimal(result, args) -> int:
    from bayesmoe.optima import recommend

    if args.experts and "experts" not in result.law.inputs:
        raise InputError(f"law {result.law.name!r} has no expert count; drop --experts")
    opts = {k: v for k, v in _budget_options(args).items() if v is not None}
    opt = recommend(result, args.flops, ci_prob=args.ci_prob, group=args.group, **opts)
    table, shown = _recommendation_table(opt)
    if args.json:
        print(table.reset_index().to_json(orient="records", indent=1))
        return 0
    limits = [f"memory {args.memory_gb:g} GB with {args.context:g} KV tokens" if args.memory_gb else "",
              f"serving {args.serve_tokens:g} tokens" if args.serve_tokens else ""]
    print(f"law: {result.law.name}; budgets: training FLOPs{''.join('; ' + x for x in limits if x)}; "
          f"{opt.ci_prob:.0%} intervals")
    print(_table_text(shown))
    _print_extrapolation(opt, table)
    return 0


def _suggest(result, args) -> int:
    import pandas as pd

    from bayesmoe.design import suggest_runs
    from bayesmoe.units import flops_label

    if len(args.flops) != 1:
        raise InputError(f"suggest plans for one target budget: give one --flops, not {len(args.flops)}")
    if args.experts and "experts" not in result.law.inputs:
        raise InputError(f"law {result.law.name!r} has no expert count; drop --experts")
    opts = {k: v for k, v in _budget_options(args).items() if v is not None}
    experts = opts.pop("experts", None)
    if experts is not None:
        opts["experts"] = experts
    candidates = _read_runs(args.candidates) if args.candidates else None
    s = suggest_runs(result, args.flops[0], budget_flops=args.budget_flops, k=args.k, candidates=candidates,
                     extend=args.extend, group=args.group, seed=args.seed, progress=not args.json, **opts)
    if args.json:
        print(_json(s.to_dict()))
        return 0
    print(s.describe())
    if len(s.runs):
        shown = s.runs.copy()
        for col in ("n_active", "tokens", "flops"):
            shown[col] = shown[col].map(lambda v: f"{v:.3g}")
        if "experts" in shown:
            shown["experts"] = shown["experts"].astype(int)
        shown = shown.rename(columns={"value": "regret saved", "regret_after": "regret after",
                                      "value_per_eflop": "saved per 1e18 FLOPs", "distance": "decades beyond"})
        cols = [c for c in (*result.law.inputs, "flops", "regret saved", "regret after", "saved per 1e18 FLOPs",
                            "decades beyond") if c in shown]
        shown.index = pd.RangeIndex(1, len(shown) + 1, name="run")
        print("\nnext runs, in order (regret in nats of loss at the target):")
        print(_table_text(shown[cols]))
        print(f"\ntotal {flops_label(float(s.runs['flops'].sum()))} FLOPs of {flops_label(args.budget_flops)}")
    return 0


def _print_extrapolation(opt, table) -> None:
    """Where each answer leaves the data: per input, and the expert-count odds at the edges."""
    from bayesmoe.units import flops_label

    choice, dim, _, x = opt.names
    ds = opt.dataset
    for flops, row in table.iterrows():
        parts = [f"{a} {row[f'beyond_{a}']:+.2f}" for a in ds["axis"].values if abs(row[f"beyond_{a}"]) > 0.005]
        flags = []
        if row.get(f"{x}_at_edge"):
            largest = float(ds[dim].values.max())
            advice = ("widen the candidates" if largest <= ds.attrs[f"fitted_{choice}_max"] else
                      f"the largest is beyond the fitted {x} already, so widening moves these odds further out; "
                      f"they are the law's extrapolation, not the data's: runs at more {x} would pin them "
                      "(bayesmoe suggest)")
            flags.append(f"P({x}* = largest candidate) {row[f'P({x}* at edge)']:.2f}: {advice}")
        if row.get(f"{x}_beyond_fitted"):
            lo, hi = ds.attrs[f"fitted_{choice}_min"], ds.attrs[f"fitted_{choice}_max"]
            flags.append(f"P({x}* outside the fitted {x} {lo:g}-{hi:g}) {row[f'P({x}* beyond fitted)']:.2f}")
        if row.get("P(incomplete)", 0) > 0:
            flags.append(f"{row['P(incomplete)']:.0%} of the draws have no optimum at some candidate (exponents that "
                         "stop falling there); the decision and its regret average over the others")
        lo_q, hi_q = f"{x}* {opt.ci_prob:.0%} lo", f"{x}* {opt.ci_prob:.0%} hi"
        values = ds[dim].values
        if lo_q in row and ds.sizes[dim] > 2 and row[lo_q] <= values.min() and row[hi_q] >= values.max():
            flags.append(f"the {opt.ci_prob:.0%} interval of {x}* spans every candidate ({values.min():g}-"
                         f"{values.max():g}): the fit cannot pin {x}* down at this budget")
        if parts or flags:
            print(f"\n{flops_label(flops)} FLOPs: the optimum lies beyond the fitted runs by "
                  f"{', '.join(parts) if parts else 'nothing'} (decades; "
                  f"{row['extrapolation_decades']:.2f} in all)" + ("; " + "; ".join(flags) if flags else ""))


def _print_recommendations(result, args) -> None:
    from bayesmoe.optima import recommend

    opts = {k: v for k, v in _budget_options(args).items() if v is not None}
    opt = recommend(result, args.flops, ci_prob=args.ci_prob, **opts)
    _, _, size, x = opt.names
    table, shown = _recommendation_table(opt)
    lo, hi = f"{opt.ci_prob:.0%} lo", f"{opt.ci_prob:.0%} hi"
    beyond = [c for c in table.columns if c.startswith("beyond_")]
    keep = ["extrapolation_decades", *beyond, f"{x}_at_edge", f"{x}_beyond_fitted", f"{x}_decision",
            "expected_regret", f"{x}* median",
            f"{'N_act' if size == 'n_active' else 'N_total'}* median",
            f"{'N_act' if size == 'n_active' else 'N_total'}* {lo}",
            f"{'N_act' if size == 'n_active' else 'N_total'}* {hi}", "D* median", f"D* {lo}", f"D* {hi}",
            "loss* median", f"loss* {lo}", f"loss* {hi}"]
    keep = [k for k in keep if k in table.columns]
    keep += [c for c in table.columns if c.startswith(f"P({x}*=") and table[c].max() >= 0.01]
    print(f"\nrecommendations ({opt.ci_prob:.0%} intervals; every column: bayesmoe optimal, or the report)")
    print(_table_text(shown.loc[keep]))
    _print_extrapolation(opt, table)


def _quote(arg: str) -> str:
    """Shell quoting that reads like the README: double quotes where they are safe."""
    if shlex.quote(arg) == arg or any(ch in arg for ch in '"$`\\!'):
        return shlex.quote(arg)
    return f'"{arg}"'


_CSV_EXPECTED = ("expected a CSV text file with a header row naming the columns "
                 "(e.g. n_active,tokens,experts,loss) and one row per finished run")
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "a PNG image"),
          (b"\x89HDF\r\n\x1a\n", "an HDF5/netCDF file, perhaps a saved fit (read one with bayesmoe summary, "
                                 "report or optimal)"),
          (b"CDF\x01", "a netCDF file"), (b"CDF\x02", "a netCDF file"), (b"%PDF", "a PDF document"),
          (b"PK\x03\x04", "a zip archive or an Excel .xlsx workbook (export it as CSV)"),
          (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"))


def _read_runs(path: str):
    """The CSV of runs; a missing, empty, header-only or binary file is bad input that names the file."""
    from pathlib import Path

    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise InputError(f"cannot read {path}: no such file; {_CSV_EXPECTED}")
    if p.is_dir():
        raise InputError(f"cannot read {path}: it is a folder; {_CSV_EXPECTED}")
    try:
        with open(p, "rb") as fh:
            head = fh.read(4096)
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror}") from None
    if not head.strip():
        raise InputError(f"{path} is empty: {_CSV_EXPECTED}")
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise InputError(f"{path} is {what}, not a CSV of runs: {_CSV_EXPECTED}")
    if b"\x00" in head:
        raise InputError(f"{path} is a binary file (it holds NUL bytes), not a CSV of runs: {_CSV_EXPECTED}")
    try:
        runs = pd.read_csv(p)
    except UnicodeDecodeError as err:
        raise InputError(f"{path} is not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start}): "
                         f"{_CSV_EXPECTED}; save it as UTF-8 CSV") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path} is empty: {_CSV_EXPECTED}") from None
    except pd.errors.ParserError as err:
        raise InputError(f"cannot read {path} as CSV: {err}") from None
    if runs.empty:
        raise InputError(f"{path} has a header ({', '.join(map(str, runs.columns))}) but no rows: "
                         "expected one row per finished run below it")
    runs.attrs["source_csv"] = str(path)  # validation messages then name CSV lines
    return runs


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
        flags = " and ".join(f for f, x in (("--where", where), ("--holdout", holdout)) if x)
        raise DataValidationError(f"no rows left to fit after {flags}")
    return runs, heldout


def _load(path: str):
    import bayesmoe

    try:
        return bayesmoe.load(path)
    except FileNotFoundError as err:
        raise InputError(str(err)) from None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # a command-line program writes figures to files and never opens a window; the environment
    # variable (read when matplotlib loads) keeps matplotlib unimported until a figure is drawn
    os.environ.setdefault("MPLBACKEND", "Agg")
    # the package's own messages (e.g. which column aliases were mapped), not JAX's
    log = logging.getLogger("bayesmoe")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)

    from bayesmoe.errors import BayesMoEError, ConvergenceError

    try:
        if args.command == "fit":
            result, failure = _fit_csv(args, argv)
            _print_result(result, args.ci_prob, notes=False)
            if args.flops:
                _print_recommendations(result, args)
            if args.out:
                path = result.save(args.out)
                card = path.with_suffix(".md")
                card.write_text(result.model_card(ci_prob=args.ci_prob))
                print(f"\nsaved{' (marked as FAILED)' if failure else ''}: {path}\nmodel card: {card}")
            if args.report:
                from bayesmoe.report import write_report

                path = write_report(result, args.report, args.flops, ci_prob=args.ci_prob, **_report_options(args))
                print(f"report: {path}")
            if failure:
                if args.on_bad_fit == "raise":
                    print(f"bayesmoe: {failure}", file=sys.stderr)
                    if args.loss_unit is None:
                        print(_LOSS_UNIT_HINT, file=sys.stderr)
                    return 1
                print(f"bayesmoe: warning: {failure}", file=sys.stderr)
            return 0
        if args.command == "report":
            return _report(args, argv)
        if args.command == "validate":
            if args.check != "compare":
                _start_jax(getattr(args, "num_chains", 4))
            return _validate(args)
        result = _load(args.path)
        if args.command == "optimal":
            return _optimal(result, args)
        if args.command == "suggest":
            return _suggest(result, args)
        if args.json:
            print(_json(result.to_dict(ci_prob=args.ci_prob)))
            return 0
        _print_result(result, args.ci_prob)
        return 0
    except ConvergenceError as err:
        print(f"bayesmoe: {err}", file=sys.stderr)
        if getattr(args, "loss_unit", "") is None:  # a fit of a table whose loss unit nobody stated
            print(_LOSS_UNIT_HINT, file=sys.stderr)
        return 1
    except BayesMoEError as err:  # bad input; anything else is a bug and keeps its traceback
        print(f"bayesmoe: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
