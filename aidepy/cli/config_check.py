"""`aidepy config-check` (AIDE's -D, --config-check): read the config and say whether it is valid."""

from __future__ import annotations

import argparse
import sys

from aidepy.attributes import OWN, format_attrs
from aidepy.cli.options import add_config_arguments
from aidepy.config import evaluate as config

NAME = "config-check"
FOLD_AFTER = 3  # a warning repeated on more lines is printed once, with a count
HELP = "check the config file (like aide -D) and summarise it"
DESCRIPTION = """\
Read the config file the way every other command does (with -B lines before it and -A lines
after it), evaluating macros, conditions and includes, running @@x_include snippets, and
compiling every rule's regex, but scan nothing. The language is AIDE 0.18's aide.conf.

When the config is valid, print a short summary (number of rules by kind, groups the config
defines, files read), then every warning (for example hash algorithms aidepy cannot compute,
which are dropped from the rules as AIDE drops the ones it lacks; a warning that many lines
share is printed once with the number of lines, unless --all-warnings) and every option
aidepy accepts but ignores, and the attributes of aidepy's own the rules use (content, sha3_256,
blake2b, xxh64, xxh128: aide refuses them), and exit 0. When it is not, print one line
`aidepy: FILE:LINE: reason` naming the first offending line and exit 17, AIDE's code for an
invalid config line. A config file that cannot be opened exits 18."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--all-warnings", action="store_true",
                        help="print every warning line instead of folding a warning many lines share")


def summary(cfg: config.Config, fold_after: int = FOLD_AFTER) -> list[str]:
    """The lines config-check prints for a valid config."""
    kinds: dict[str, int] = {}
    for rule in cfg.rules:
        kinds[rule.kind.value] = kinds.get(rule.kind.value, 0) + 1
    by_kind = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
    lines = [
        f"rules: {len(cfg.rules)}" + (f" ({by_kind})" if by_kind else ""),
        f"groups defined: {len(set(cfg.defined_groups))}",
        f"files read: {len(cfg.sources)}",
    ]
    if cfg.database_in is not None:
        lines.append(f"database_in: {cfg.database_in}")
    if cfg.database_out is not None:
        lines.append(f"database_out: {cfg.database_out}")
    repeats: dict[str, list[str]] = {}  # message -> origins, to fold a warning many rules share
    for warning in cfg.warnings:
        origin, _, message = warning.partition(": ")
        repeats.setdefault(message, []).append(origin)
    for message, origins in repeats.items():
        if len(origins) <= fold_after:
            lines.extend(f"warning: {origin}: {message}" for origin in origins)
        else:
            lines.append(f"warning: {origins[0]}: {message} (and {len(origins) - 1} more lines: "
                         f"{', '.join(origins[1:4])}, ...)")
    lines.extend(f"ignored option: {o}" for o in cfg.ignored_options)
    own = OWN & frozenset().union(*(rule.attrs for rule in cfg.rules))
    if own:
        lines.append(f"aidepy's own attributes: {format_attrs(own)} (aide does not know them: keep "
                     "these rules out of files aide reads)")
    return lines


def run(args: argparse.Namespace) -> int:
    cfg = config.load(args.config, args.before, args.after)
    for line in summary(cfg, len(cfg.warnings) if args.all_warnings else FOLD_AFTER):
        print(line, file=sys.stdout)
    return 0
