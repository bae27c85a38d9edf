"""``lgfn fit|validate|test`` (LightningCLI) and ``lgfn sample|registry|data``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import torch

from lgfn.registry import RegistryError

USER_ERRORS = (RegistryError, ValueError, FileNotFoundError, KeyError, RuntimeError)
OWN_COMMANDS = ("sample", "registry", "data", "experiment")


def _set_threads() -> None:
    """Small nets run faster on one thread per process; ``LGFN_NUM_THREADS`` overrides."""
    torch.set_num_threads(int(os.environ.get("LGFN_NUM_THREADS", "1")))


def main(argv: Sequence[str] | None = None) -> int:
    from_sys = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    _set_threads()
    try:
        argv, plugin_specs = _load_plugins(argv)
        if argv and argv[0] in OWN_COMMANDS:
            return _own_command(argv)
        from lgfn.cli.lightning import run_lightning_cli

        run_lightning_cli(None if from_sys and not plugin_specs else argv)
        return 0
    except USER_ERRORS as err:
        if os.environ.get("LGFN_DEBUG"):
            raise
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"lgfn: error: {msg}", file=sys.stderr)
        return 2


def _load_plugins(argv: list[str]) -> tuple[list[str], list[str]]:
    """Take ``--plugins MODULE_OR_FILE ...`` out of argv (any command) and import them after the built-in
    components and installed (entry-point) plugins, so that a name they register wins. Lightning's ddp
    launcher re-runs sys.argv for every rank, so each rank imports them too."""
    from lgfn import registry
    from lgfn.plugins import load_plugins, split_plugin_args

    rest, specs = split_plugin_args(argv)
    registry.ensure_loaded()
    load_plugins(specs)
    return rest, specs


def _own_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lgfn", description="Temperature-conditional GFlowNets with logit scaling.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sample", help="sample objects at any β from a checkpoint into a CSV")
    p.add_argument("--ckpt", required=True, help="checkpoint written by `lgfn fit`")
    p.add_argument("--beta", type=float, required=True, help="inverse temperature (any positive value)")
    p.add_argument("--n", type=int, default=1000, help="number of objects")
    p.add_argument("--out", required=True, help="output CSV (columns x,reward,log_reward,beta[,smiles]) or, for molecules, .sdf")
    p.add_argument("--seed", type=int, default=0)
    sub.add_parser("registry", help="list registered components, one line per kind")
    d = sub.add_parser("data", help="task data files")
    dsub = d.add_subparsers(dest="data_command", required=True)
    f = dsub.add_parser("fetch", help="download (or build from upstream files) and verify the files of a task")
    from lgfn.datasets.manifest import TASK_FILES

    f.add_argument("task", help=f"{', '.join(TASK_FILES)}, or all (every file, the upstream originals too)")
    dsub.add_parser("check", help="checksums of the task data files present")
    from lgfn.cli.experiment import add_parser as add_experiment_parser

    add_experiment_parser(sub)
    args = parser.parse_args(argv)

    if args.command == "registry":
        from lgfn import registry

        print("\n".join(registry.describe()))
        return 0
    if args.command == "sample":
        from lgfn.cli.sample import sample_to_file

        n = sample_to_file(args.ckpt, args.beta, args.n, args.out, args.seed)
        print(f"wrote {n} objects sampled at β={args.beta:g} to {args.out}")
        return 0
    if args.command == "experiment":
        from lgfn.cli.experiment import experiment_command

        return experiment_command(args)
    from lgfn.cli.data import data_command

    return data_command(args)
