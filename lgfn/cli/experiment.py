"""``lgfn experiment NAME``: run an experiment grid resumably, then write its report."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("experiment", help="run an experiment of configs/experiments/ and write its report")
    p.add_argument("name", help="stability, offline, generalisation, modes, online_budget, seh_explore, grid, "
                                "or a path to an experiment YAML")
    p.add_argument("--profile", choices=("quick", "full"), default="quick",
                   help="quick: tiny budgets (minutes); full: the method's settings")
    p.add_argument("--seeds", type=int, default=None, help="seeds per cell (default: the profile's)")
    p.add_argument("--out", default=None, help="output folder (default: results/NAME-PROFILE)")
    p.add_argument("--workers", type=int, default=None, help="parallel runs (default: one per CPU core)")
    p.add_argument("--tasks", default=None, help="run only these tasks' cells (comma-separated); the report covers all")
    p.add_argument("--rerun-failed", action="store_true", help="run failed cells again")
    p.add_argument("--report-only", action="store_true", help="rebuild report.md from finished cells; run nothing")


def experiment_command(args: argparse.Namespace) -> int:
    from lgfn.experiments.report import write_report
    from lgfn.experiments.runner import run_experiment
    from lgfn.experiments.spec import load_experiment

    exp = load_experiment(args.name, args.profile, args.seeds)
    out = Path(args.out or f"results/{exp.name}-{exp.profile}")
    if not args.report_only:
        only = set(args.tasks.split(",")) if args.tasks else None
        results = run_experiment(exp, out, workers=args.workers, rerun_failed=args.rerun_failed, tasks=only)
        failed = sum(r["status"] != "ok" for r in results)
        if failed:
            print(f"{failed} cell(s) failed; see {out}/cells/<cell>/log.txt, rerun with --rerun-failed")
    print(f"wrote {write_report(exp, out)}")
    return 0
