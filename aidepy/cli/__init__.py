"""Command-line entry point: parse arguments, dispatch to one command module, map errors to exit codes.

Each subcommand lives in its own module in this package and exposes `NAME`, `HELP`,
`DESCRIPTION`, `add_arguments(parser)` and `run(args) -> int`. No logic a test would want to
call lives here.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from aidepy import __version__
from aidepy.errors import AidepyError, ExitCode

COMMAND_MODULES = (
    "init", "check", "update", "compare", "config_check", "path_check",
    "keygen", "vault", "promote", "log", "report", "demo",
)

# AIDE's own spellings, rewritten to subcommands before parsing.
AIDE_SPELLINGS = {
    "--init": "init", "-i": "init",
    "--check": "check", "-C": "check",
    "--update": "update", "-u": "update",
    "--compare": "compare", "-E": "compare",
    "--config-check": "config-check", "-D": "config-check",
    "--path-check": "path-check", "-p": "path-check",
}


def translate_aide_spelling(argv: Sequence[str]) -> list[str]:
    """Move the first AIDE-style command flag (`--init`, `-C`, `-p`, ...) to the front as a subcommand."""
    args = list(argv)
    for i, arg in enumerate(args):
        if arg in AIDE_SPELLINGS:
            return [AIDE_SPELLINGS[arg], *args[:i], *args[i + 1:]]
        if "=" in arg and arg.split("=", 1)[0] in ("--path-check", "-p"):
            return ["path-check", *args[:i], arg.split("=", 1)[1], *args[i + 1:]]
    return args


class _Parser(argparse.ArgumentParser):
    """argparse with AIDE's exit code for a bad argument (15) instead of 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitCode.INVALID_ARGUMENT, f"{self.prog}: error: {message}\n")


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"aidepy.cli.{name}")


def _wanted(argv: Sequence[str]) -> tuple[str, ...]:
    """The command modules a run needs: only the one named, or all of them for the overview help.

    Importing one command instead of all keeps start-up short for cron and scripted runs.
    """
    for arg in argv:
        if not arg.startswith("-"):
            module = arg.replace("-", "_")
            return (module,) if module in COMMAND_MODULES else COMMAND_MODULES
    return COMMAND_MODULES


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="aidepy",
        description=(
            "File-integrity monitor. Records a signed baseline of your system's files on a "
            "write-protected medium (the vault) and reports every day what changed. Rules use "
            "AIDE's aide.conf language; AIDE's spellings (--init, --check, -C, -D, -p) work too."
        ),
        epilog=(
            "exit codes: 0 no differences; bits 1 added, 2 removed, 4 changed; 14 write error; "
            "15 invalid argument; 17 invalid config line; 18 I/O error; 19 version mismatch; "
            "20 baseline (or approval log) failed verification; 21 vault unusable or write-protected; "
            "22 another run holds the lock; 23 unsafe layout refused; 130 interrupted."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-V", "--version", action="version", version=f"aidepy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        module = _load(name)
        cmd = sub.add_parser(
            module.NAME, help=module.HELP, description=module.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(cmd)
        cmd.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run aidepy; returns the exit code (also used as the console script)."""
    args_in = translate_aide_spelling(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_wanted(args_in))
    args = parser.parse_args(args_in)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return ExitCode.INVALID_ARGUMENT
    try:
        return int(args.run(args))
    except AidepyError as exc:
        print(f"aidepy: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("aidepy: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
