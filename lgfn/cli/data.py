"""``lgfn data fetch TASK`` and ``lgfn data check``."""

from __future__ import annotations

import argparse


def data_command(args: argparse.Namespace) -> int:
    from lgfn.taskdata import files

    if args.data_command == "fetch":
        for line in files.fetch(args.task):
            print(line)
        return 0
    bad = 0
    for relpath, status in files.check():
        note = "  (a partial download left by an interrupted fetch; `lgfn data fetch` removes it)" * (status == "stale")
        print(f"{status:8s} {relpath}{note}")
        bad += status == "corrupt"
    return 1 if bad else 0
