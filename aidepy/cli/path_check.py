"""`aidepy path-check` (AIDE's -p, --path-check): which rule selects each TYPE:PATH, if any."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

from aidepy.attributes import format_attrs, ordered
from aidepy.cli.options import add_config_arguments
from aidepy.config import evaluate as config
from aidepy.entry import LINUX_TYPE_LETTERS
from aidepy.errors import UsageError
from aidepy.selection import Decision, MatchResult, Rule, RuleKind, RuleSet

NAME = "path-check"
HELP = "show which rule selects each TYPE:PATH (like aide -p, many paths per call)"
DESCRIPTION = """\
Decide, for each TYPE:PATH argument, whether the rules would add that path to the database and
with which attributes, exactly as AIDE does (`aide -p TYPE:PATH`), without touching the file
system. TYPE is the file type letter: f (regular file), d (directory), l (symbolic link),
c (character device), b (block device), p (FIFO) or s (socket). PATH is absolute, as seen
without root_prefix.

Each path gets one line in `aide -p`'s format: `[X] f '/etc/passwd': selective rule: ...` or
`equal rule: ...` for a selected path, `[ ] ...: negative rule: ...` for a path a negative rule
excludes, `[ ] ...: no matching rule` otherwise; the rule is shown as AIDE shows it (regex,
file-type restriction, attributes) followed by FILE:LINE and the config line. Control
characters in paths are printed as octal escapes (\\012), as aide does (the rule and config
line are printed as written).

With --json, print one JSON array instead, one object per path: {"path", "type", "selected",
"rule" (FILE:LINE of the selecting or excluding rule, or null), "attributes" (names in AIDE's
order)}. Hash algorithms aidepy cannot compute are not listed (config-check warns about them).

Exit status: 0 when every path is selected, 1 when at least one is not, 15 for a malformed
TYPE:PATH, 17 for an invalid config line, 18 when the config file cannot be read."""

# AIDE's order of file types in a restriction string (`f,d,p,l,b,c,s`).
_RESTRICTION_ORDER = "fdplbcsDP"
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON array instead of text lines")
    parser.add_argument("paths", nargs="+", metavar="TYPE:PATH",
                        help="file type letter (f d l c b p s) and absolute path, e.g. f:/etc/passwd")


def parse_path_argument(argument: str) -> tuple[str, bytes]:
    """`f:/etc/passwd` -> ("f", b"/etc/passwd"); UsageError names what is wrong, like aide."""
    ftype, sep, path = argument.partition(":")
    if not sep or len(ftype) != 1 or ftype not in LINUX_TYPE_LETTERS:
        raise UsageError(f"(--path-check): invalid file type '{ftype}' in '{argument}' "
                         f"(one of {' '.join(LINUX_TYPE_LETTERS)} before ':')")
    if not path.startswith("/"):
        raise UsageError(f"(--path-check): '{path}' needs to be an absolute path")
    return ftype, os.fsencode(path)


def _escape(raw: bytes) -> bytes:
    """Control characters as aide prints them: backslash and three octal digits."""
    return _CONTROL.sub(lambda m: b"\\%03o" % m.group()[0], raw)


def _raw(text: str) -> bytes:
    # aide escapes the path only: the rest comes from the admin's config, printed as written
    return text.encode("utf-8", "surrogateescape")


def restriction_string(types: frozenset[str] | None) -> str:
    """A rule's file-type restriction as aide prints it: `(none)` or `f,d,l`."""
    if not types:
        return "(none)"
    return ",".join(t for t in _RESTRICTION_ORDER if t in types)


def describe_rule(rule: Rule) -> bytes:
    """`'<regex> <types> <attrs>' (FILE:LINE: '<line>')`, with `=`/`!` as aide prints the kind."""
    mark = {RuleKind.EQUAL: "=", RuleKind.NEGATIVE: "!"}.get(rule.kind, "")
    body = f"{mark}{rule.regex} {restriction_string(rule.file_types)}"
    if rule.kind is not RuleKind.NEGATIVE:
        body += f" {format_attrs(rule.attrs)}"
    line = rule.text if rule.prefix is None else f"{rule.text}', prefix: '{rule.prefix}"
    return b"'" + _raw(body) + b"' (" + _raw(rule.origin) + b": '" + _raw(line) + b"')"


def text_line(ftype: str, path: bytes, decision: Decision) -> bytes:
    """One line of `aide -p` output for a decision."""
    head = b"[%s] %s '%s': " % (b"X" if decision.selected else b" ", ftype.encode(), _escape(path))
    rule = decision.rule
    if rule is None:
        return head + b"no matching rule"
    what = {MatchResult.SELECTIVE: b"selective rule", MatchResult.EQUAL: b"equal rule"}.get(
        decision.result, b"negative rule")
    return head + what + b": " + describe_rule(rule)


def json_object(ftype: str, path: bytes, decision: Decision) -> dict[str, Any]:
    """The --json object for a decision."""
    rule = decision.rule
    return {
        "path": os.fsdecode(path),
        "type": ftype,
        "selected": decision.selected,
        "rule": rule.origin if rule else None,
        "attributes": ordered(rule.attrs) if rule and decision.selected else [],
    }


def run(args: argparse.Namespace) -> int:
    queries = [parse_path_argument(a) for a in args.paths]
    cfg = config.load(args.config, args.before, args.after)
    ruleset: RuleSet = cfg.ruleset
    decisions = [(ftype, path, ruleset.decide(path, ftype)) for ftype, path in queries]
    if cfg.warnings:
        print(f"aidepy: {len(cfg.warnings)} config warning(s); `aidepy config-check` lists them",
              file=sys.stderr)
    if args.json:
        json.dump([json_object(*d) for d in decisions], sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        out = sys.stdout.buffer
        for d in decisions:
            out.write(text_line(*d) + b"\n")
        out.flush()
    return 0 if all(d.selected for _, _, d in decisions) else 1
