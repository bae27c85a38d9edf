"""``lgfn``: training (``fit|validate|test``, LightningCLI) and ``sample|registry|data|experiment``.

A user error (bad setting, unknown name, missing data, unusable checkpoint) prints one line,
``lgfn: error: ...``, and exits 2 before any work starts; a bug says so and exits 1
(``LGFN_DEBUG=1`` shows the traceback of either). SIGTERM saves a resumable checkpoint and exits 143.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from lgfn.errors import LgfnError
from lgfn.registry import RegistryError

TRAINING_COMMANDS = {
    "fit": "train a model (Algorithm 1 or offline) from a config: lgfn fit --config configs/qm9.yaml",
    "validate": "evaluate a checkpoint on the validation metrics: --config FILE --ckpt_path CKPT",
    "test": "evaluate a checkpoint on the test metrics: --config FILE --ckpt_path CKPT",
}
OWN_COMMANDS = ("sample", "registry", "data", "experiment")
EXIT_USER, EXIT_BUG, EXIT_SIGTERM = 2, 1, 143


class _StderrHandler(logging.Handler):
    """``lgfn: warning: ...`` lines on the current sys.stderr (looked up at each line, so a replaced stream works)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"lgfn: {record.levelname.lower()}: {record.getMessage()}\n")
        except Exception:  # noqa: BLE001 (logging must never break a run)
            self.handleError(record)


def _set_up_logging() -> None:
    """lgfn's warnings (β outside the trained range, skipped steps, oracle faults) as ``lgfn: warning:`` lines."""
    logger = logging.getLogger("lgfn")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        logger.addHandler(_StderrHandler())
        logger.setLevel(logging.INFO)


def _set_threads() -> None:
    """Small nets run faster on one thread per process; ``LGFN_NUM_THREADS`` overrides."""
    import torch

    torch.set_num_threads(int(os.environ.get("LGFN_NUM_THREADS", "1")))


class _Parser(argparse.ArgumentParser):
    """Parse errors are user errors like any other: raised, then printed as one line by ``main``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise argparse.ArgumentError(None, f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """Every command with a line each; ``fit|validate|test`` options are LightningCLI's (``lgfn fit --help``)."""
    parser = _Parser(
        prog="lgfn", description="Temperature-conditional GFlowNets with learned logit scaling (Logit-GFN).",
        epilog="`lgfn COMMAND --help` shows a command's options. Every command takes --plugins MODULE_OR_FILE ... "
               "(modules that register components). LGFN_DEBUG=1 shows tracebacks.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in TRAINING_COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    p = sub.add_parser("sample", help="sample objects at any β from a checkpoint or run folder into a CSV or SDF")
    p.add_argument("--ckpt", required=True,
                   help="a checkpoint written by `lgfn fit`, or a run folder (its last checkpoint is used)")
    p.add_argument("--beta", type=float, required=True, help="inverse temperature (any positive finite value)")
    p.add_argument("--n", type=int, default=1000, help="number of objects (default 1000)")
    p.add_argument("--out", required=True,
                   help="output CSV (columns x,reward,log_reward,beta[,smiles]) or, for molecules, .sdf")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu",
                   help="where the policy runs: cpu (default), cuda or cuda:N (the same seed draws other samples "
                        "on another device)")
    _plugins_option(p)
    r = sub.add_parser("registry", help="list registered components, or one component's arguments (--show NAME)")
    r.add_argument("--show", metavar="NAME", help="a component's class and every argument with its default")
    _plugins_option(r)
    d = sub.add_parser("data", help="fetch and verify task data files")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="{fetch,check}")
    f = dsub.add_parser("fetch", help="download (or build from upstream files) and verify a task's files")
    from lgfn.taskdata.manifest import TASK_FILES

    f.add_argument("task", help=f"{', '.join(TASK_FILES)}, or all (every file, the upstream originals too)")
    dsub.add_parser("check", help="checksums of the task data files present")
    from lgfn.cli.experiment import add_parser as add_experiment_parser

    add_experiment_parser(sub)
    return parser


def _plugins_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugins", nargs="+", metavar="MODULE_OR_FILE", default=[],
                   help="import these modules or .py files first (they register components)")


def main(argv: Sequence[str] | None = None) -> int:
    from_sys = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    _set_up_logging()
    try:
        if not argv or argv[0] in ("-h", "--help"):
            build_parser().print_help()
            return 0 if argv else EXIT_USER
        argv, plugin_specs = _load_plugins(argv)
        if argv[0] in ("data", "registry"):  # no torch: these start in well under a second
            return _own_command(argv)
        _set_threads()
        if argv[0] in OWN_COMMANDS:
            return _own_command(argv)
        if argv[0] not in TRAINING_COMMANDS:
            build_parser().parse_args(argv[:1])  # argparse's one-line "invalid choice" error, exit 2
        from lgfn.cli.lightning import check_config_files, run_lightning_cli

        check_config_files(argv)
        run_lightning_cli(None if from_sys and not plugin_specs else argv)
        return 0
    except (LgfnError, RegistryError, argparse.ArgumentError) as err:
        if os.environ.get("LGFN_DEBUG"):
            raise
        print(f"lgfn: error: {one_line(err)}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("lgfn: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exit_:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exit_, SIGTERMException):
            print("lgfn: stopped by SIGTERM (a resumable checkpoint was saved: see the line above)", file=sys.stderr)
            return EXIT_SIGTERM
        if isinstance(exit_.__context__, KeyboardInterrupt):  # Lightning's exit after Ctrl-C (its callbacks said
            print("lgfn: interrupted", file=sys.stderr)       # what was saved)
            return 130
        raise
    except Exception as err:  # noqa: BLE001 (anything else is a bug: say so, in one line)
        if os.environ.get("LGFN_DEBUG"):
            raise
        cause = user_cause(err)
        if cause is not None:
            print(f"lgfn: error: {cause}", file=sys.stderr)
            return EXIT_USER
        print(f"lgfn: internal error: {type(err).__name__}: {one_line(err)} (this is a bug in lgfn; rerun with "
              "LGFN_DEBUG=1 for the traceback and report it)", file=sys.stderr)
        return EXIT_BUG


def user_cause(err: BaseException) -> str | None:
    """One line for an error that a file, a disk or the machine caused rather than lgfn (permissions, a full disk,
    a read-only or unusable folder, a name too long, a file that is not text, memory), else None (a bug). A library
    may wrap the OS error: its explicit causes (``raise ... from``) are searched."""
    from lgfn.errors import describe_os_error

    seen: list[BaseException] = []
    cause: BaseException | None = err
    while cause is not None and cause not in seen:
        err = cause
        seen.append(err)
        if isinstance(err, OSError) and (line := describe_os_error(err)) is not None:
            return line
        if isinstance(err, UnicodeDecodeError):
            return (f"a file is not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start}); save it as "
                    "UTF-8")
        if isinstance(err, MemoryError):
            return "out of memory; ask for less at once (e.g. a smaller --n or batch size) or use a larger machine"
        cause = err.__cause__
    return None


def one_line(err: BaseException) -> str:
    """An error's message as one line; jsonargparse's multi-line reports are folded to the line that names the
    setting and the reason."""
    text = str(err).strip()
    if isinstance(err, argparse.ArgumentError):
        from lgfn.cli.lightning import condense_parser_error

        return condense_parser_error(err)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _load_plugins(argv: list[str]) -> tuple[list[str], list[str]]:
    """Take ``--plugins MODULE_OR_FILE ...`` out of argv (any command) and import them after the built-in
    components and installed (entry-point) plugins, so that a name they register wins. Lightning's ddp
    launcher re-runs sys.argv for every rank, so each rank imports them too."""
    from lgfn import components
    from lgfn.plugins import load_plugins, split_plugin_args

    rest, specs = split_plugin_args(argv)
    if rest and rest[0] != "data":
        components.load()
        load_plugins(specs)
    return rest, specs


def _own_command(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "registry":
        from lgfn import registry

        print("\n".join(registry.show(args.show) if args.show else registry.describe()))
        return 0
    if args.command == "sample":
        from lgfn.cli.sample import sample_to_file

        path, n = sample_to_file(args.ckpt, args.beta, args.n, args.out, args.seed, device=args.device)
        print(f"wrote {n} objects sampled at β={args.beta:g} from {path} to {args.out}")
        return 0
    if args.command == "experiment":
        from lgfn.cli.experiment import experiment_command

        return experiment_command(args)
    from lgfn.cli.data import data_command

    return data_command(args)
