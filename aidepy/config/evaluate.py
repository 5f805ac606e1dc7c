"""Stage two of reading an aide.conf: evaluate the syntax into rules, groups and options.

`load(path)` reads a config file (plus AIDE's `--before`/`--after` lines), `parse_text` a
string. Evaluation follows AIDE 0.18 (`src/conf_eval.c`): statements run in order, so macros,
groups and `@@x_include_setenv` apply to what follows; `@@if` picks a branch; includes are
parsed and evaluated where they stand (nested at most 16 deep). Every problem is a
`ConfigError(file, line, reason)`. Executable snippets of one `@@x_include DIR` run in
parallel while the plain files around them are parsed; their output is still evaluated in
order, as AIDE does. Stricter than AIDE: the main file and every included file must be owned
by root or the current user and not group- or world-writable (AIDE checks only executed
snippets), since whoever can write the rules decides what is checked. With a `rules_root` (the
vault's `rules/`), every included path is read from its copy there (`copy_path`), while
messages and `Config.sources` keep naming the original paths.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aidepy.attributes import BY_NAME, DEFAULT_GROUPS, HASHES, SUPPORTED_HASHES, AttrSet, format_attrs
from aidepy.config import options as opt
from aidepy.config.model import Config, ReportTarget, report_scope
from aidepy.config.syntax import (
    AttrExpr,
    Condition,
    DefineStmt,
    GroupStmt,
    IfStmt,
    IncludeStmt,
    OptionStmt,
    RuleStmt,
    SetenvStmt,
    Statement,
    StrExpr,
    Syntax,
    UndefStmt,
    Var,
    parse,
)
from aidepy.entry import LINUX_TYPE_LETTERS
from aidepy.errors import ConfigError, ConfigReadError
from aidepy.pcre import Match, Regex, RegexError, regex_error
from aidepy.selection import Rule, node_path

__all__ = ["Config", "copy_path", "load", "parse_text"]

MAX_INCLUDE_DEPTH = 16
MAX_MACRO_LENGTH = 1 << 20
"""Longest @@define value (aidepy's limit; AIDE has none): bounds every expansion."""
UNSUPPORTED_HASHES: AttrSet = HASHES - SUPPORTED_HASHES
_Fail = Callable[[str], ConfigError]


def _text(raw: str) -> str:
    """Latin-1 lexer text (one char per byte) to a normal str (UTF-8, undecodable bytes escaped)."""
    return raw if raw.isascii() else raw.encode("latin-1").decode("utf-8", "surrogateescape")


def _os_path(raw: str) -> bytes:
    return raw.encode("latin-1")


def copy_path(path: bytes, rules_root: bytes | None) -> bytes:
    """Where an included file or directory is read from: `path` itself, or with a rules root its
    copy there, named by the absolute path without `..` (the layout `Vault.write_rules` writes;
    a relative path is taken from the current directory, as when it was copied). The copy can
    never lie outside `rules_root`."""
    if rules_root is None:
        return path
    return rules_root.rstrip(b"/") + b"/" + os.path.abspath(path).lstrip(b"/")


@dataclass
class _Snippet:
    """One file of an included directory, prepared ahead of evaluation."""

    path: bytes  # the original path, as messages and Config.sources name it
    file: bytes  # where it is read or run from: `path`, or its copy under the rules root
    syntax: Syntax | None = None
    error: ConfigError | None = None
    process: subprocess.Popen[bytes] | None = None
    environ: dict[str, str] | None = None  # the @@x_include_setenv values it was started with
    failure: str | None = None  # why it cannot be read or run, raised when its turn comes


class _Evaluator:
    """Runs statements in order against the macro, group and environment tables, filling a Config."""

    def __init__(self, config: Config, hostname: str | None, rules_root: bytes | None = None) -> None:
        self.config = config
        self.hostname = hostname
        self.rules_root = rules_root
        self.where = "" if rules_root is None else f" (its copy under {os.fsdecode(rules_root)})"
        self.defines: dict[str, str] = {}
        self.setenv: dict[str, str] = {}
        self.groups = config.groups
        for attribute in BY_NAME:
            self.groups[attribute] = frozenset({attribute})
        self.groups.update(DEFAULT_GROUPS)
        self.first_set: set[str] = set()
        self.warn_unrestricted = False
        self.after_last_url: list[tuple[str, str]] = []  # (FILE:LINE, option) since the last report_url

    # --- values -----------------------------------------------------------------------------
    def string(self, expr: StrExpr) -> str:
        if len(expr) == 1 and isinstance(expr[0], str):
            return expr[0]
        parts: list[str] = []
        for piece in expr:
            if isinstance(piece, Var):
                value = self.defines.get(piece.name)
                if value is None:  # undefined: empty, except the predefined HOSTNAME
                    value = (self.hostname or "") if piece.name == "HOSTNAME" else ""
                parts.append(value)
            else:
                parts.append(piece)
        return "".join(parts)

    def attrs(self, expr: AttrExpr, name: str, stmt: Statement) -> AttrSet:
        result: AttrSet = frozenset()
        for op, group in expr:
            value = self.groups.get(group)
            if value is None:
                raise ConfigError(name, stmt.line, f"group '{_text(group)}' is not defined")
            result = value if op == "=" else result | value if op == "+" else result - value
        return result

    def condition(self, cond: Condition) -> bool:
        arg = self.string(cond.argument)
        if cond.function == "defined":
            result = arg in self.defines
        elif cond.function == "hostname":
            result = self.hostname is not None and arg == self.hostname
        else:
            result = os.access(_os_path(arg), os.F_OK)
        return result != cond.negate

    # --- statements -------------------------------------------------------------------------
    def run(self, statements: list[Statement], name: str, depth: int, prefix: str | None) -> None:
        for stmt in statements:
            if isinstance(stmt, RuleStmt):
                self.rule(stmt, name, prefix)
            elif isinstance(stmt, GroupStmt):
                self.groups[stmt.name] = self.attrs(stmt.expr, name, stmt)
                self.config.defined_groups.append(_text(stmt.name))
            elif isinstance(stmt, DefineStmt):
                value = "" if stmt.value is None else self.string(stmt.value)
                if len(value) > MAX_MACRO_LENGTH:  # macros doubling each other would exhaust memory
                    raise ConfigError(name, stmt.line, f"@@define {_text(stmt.name)}: value longer than "
                                      f"{MAX_MACRO_LENGTH} bytes")
                self.defines[stmt.name] = value
            elif isinstance(stmt, UndefStmt):
                self.defines.pop(stmt.name, None)
            elif isinstance(stmt, IfStmt):
                branch = stmt.then if self.condition(stmt.condition) else stmt.orelse
                if branch:
                    self.run(branch, name, depth, prefix)
            elif isinstance(stmt, OptionStmt):
                self.option(stmt, name)
            elif isinstance(stmt, SetenvStmt):
                self.setenv[stmt.name] = self.string(stmt.value)
            elif isinstance(stmt, IncludeStmt):
                self.include(stmt, name, depth + 1, prefix)

    def rule(self, stmt: RuleStmt, name: str, prefix: str | None) -> None:
        regex = self.string(stmt.path)
        if prefix:
            regex = prefix + regex
        if self.warn_unrestricted and stmt.restriction is None:
            self.warn(name, stmt, f"{stmt.kind.value} rule '{_text(regex)}' is unrestricted")
        types: set[str] = set()
        for letter in stmt.restriction or ():
            if letter.startswith("0"):
                continue
            if len(letter) != 1 or letter not in LINUX_TYPE_LETTERS:
                raise ConfigError(name, stmt.line, f"invalid restriction '{_text(letter)}'")
            types.add(letter)
        attrs = self.attrs(stmt.attrs, name, stmt) if stmt.attrs else frozenset()
        text_regex = _text(regex)
        raw = _os_path(regex)
        problem = regex_error(raw)
        if problem is None and b"//" in raw.replace(b"\\", b"") and b"//" in node_path(raw):
            problem = "invalid double slash"
        if problem:
            raise ConfigError(name, stmt.line, f"error in rule '{text_regex}': {problem}")
        dropped = attrs & UNSUPPORTED_HASHES
        if dropped:
            self.warn(name, stmt, f"ignoring unsupported hash algorithm(s): {format_attrs(dropped)}")
            attrs -= dropped
        if "compressed" in attrs and not attrs & HASHES:
            self.warn(name, stmt, "ignore 'compressed' attribute (no hashsum attributes are set)")
        self.config.rules.append(Rule(stmt.kind, text_regex, frozenset(types) or None, attrs,
                                      f"{name}:{stmt.line}", _text(stmt.text),
                                      None if prefix is None else _text(prefix)))

    def warn(self, name: str, stmt: Statement, message: str) -> None:
        self.config.warnings.append(f"{name}:{stmt.line}: {message}")

    def option(self, stmt: OptionStmt, name: str) -> None:
        option = "database_in" if stmt.name == "database" else stmt.name
        option = {"grouped": "report_grouped", "summarize_changes": "report_summarize_changes"}.get(
            option, option)
        origin = f"{name}:{stmt.line}"
        if stmt.attrs is not None:
            attrs = self.attrs(stmt.attrs, name, stmt)
            if option == "database_attrs":
                if attrs - HASHES:
                    raise ConfigError(name, stmt.line,
                                      f"invalid attribute(s): {format_attrs(attrs - HASHES)}")
                if attrs & UNSUPPORTED_HASHES:
                    self.warn(name, stmt, "ignoring unsupported hash algorithm(s): "
                              f"{format_attrs(attrs & UNSUPPORTED_HASHES)}")
                    attrs -= UNSUPPORTED_HASHES
            self.config.attr_options[option] = attrs
            self.note_report_option(origin, option)
            if option in opt.IGNORED:
                self.config.ignored_options.append(f"{origin}: {option} ({opt.IGNORED[option]})")
            return
        assert stmt.value is not None
        value = _text(self.string(stmt.value))
        try:
            value = opt.check_value(option, value, None if self.hostname is None else _text(self.hostname))
        except ValueError as exc:
            raise ConfigError(name, stmt.line, str(exc)) from None
        if option in opt.FIRST_WINS:
            if option in self.first_set:
                self.warn(name, stmt, f"'{option}' option already set (ignoring new value '{value}')")
                return
            self.first_set.add(option)
        if option == "report_url":
            if value in self.config.report_urls:
                self.warn(name, stmt, f"report_url '{value}' already defined (ignoring)")
                return
            self.config.report_urls.append(value)
            self.config.report_targets.append(ReportTarget(
                value, origin, report_scope(self.config.options), report_scope(self.config.attr_options)))
            self.after_last_url.clear()
        self.note_report_option(origin, option)
        if option == "config_check_warn_unrestricted_rules":
            self.warn_unrestricted = opt.BOOLEANS[value]
        self.config.options[option] = value
        if option in opt.IGNORED:
            self.config.ignored_options.append(f"{origin}: {option} ({opt.IGNORED[option]})")

    def note_report_option(self, origin: str, option: str) -> None:
        if option in opt.REPORT_OPTIONS:
            self.after_last_url.append((origin, option))

    def warn_trailing_report_options(self) -> None:
        """A report option after the last report_url applies to no report (AIDE ignores it too)."""
        if not self.config.report_targets:
            return  # no report_url: the options at the end shape the report to stdout
        last = self.config.report_targets[-1].origin
        for origin, option in self.after_last_url:
            self.config.warnings.append(
                f"{origin}: '{option}' follows the last report_url ({last}) and applies to no report "
                "(a report option shapes the report_url lines after it; move it before them)")

    # --- includes ---------------------------------------------------------------------------
    def include(self, stmt: IncludeStmt, name: str, depth: int, prefix: str | None) -> None:
        keyword = "@@x_include" if stmt.execute else "@@include"

        def fail(reason: str) -> ConfigError:
            return ConfigError(name, stmt.line, f"'{keyword}': {reason}")

        if depth >= MAX_INCLUDE_DEPTH:
            raise ConfigError(name, stmt.line, "include files are nested too deeply")
        path = self.string(stmt.path)
        if stmt.regex is None:
            snippet = _Snippet(_os_path(path), copy_path(_os_path(path), self.rules_root))
            try:
                st = os.lstat(snippet.file)
            except OSError as exc:
                raise fail(f"lstat for '{_text(path)}'{self.where} failed: {exc.strerror}") from None
            if not stat.S_ISREG(st.st_mode):
                raise fail(f"'{_text(path)}' is not a regular file")
            execute = stmt.execute and bool(st.st_mode & stat.S_IXUSR)
            unsafe = _unsafe(st)
            if unsafe is not None:  # stricter than AIDE, which reads such a file (and runs it)
                raise fail(f"'{_text(path)}' {unsafe}; refusing it (whoever can write the rules "
                           "decides what is checked)")
            if execute:
                self.start(snippet)
            self.evaluate_snippet(snippet, fail, depth, prefix)
            return
        self.include_directory(stmt, path, fail, depth, prefix)

    def include_directory(self, stmt: IncludeStmt, path: str, fail: _Fail, depth: int,
                          prefix: str | None) -> None:
        assert stmt.regex is not None
        regex = _text(self.string(stmt.regex))
        try:  # AIDE searches file names; an anchored match after a lazy prefix is the same
            name_rx = Regex(b"(?s:.*?)(?:" + regex.encode("utf-8", "surrogateescape") + b")")
        except RegexError as exc:
            raise fail(f"error in regular expression '{regex}': {exc.message}") from None
        directory = _os_path(path)
        copy = copy_path(directory, self.rules_root)
        if self.rules_root is not None and not os.path.lexists(copy):
            return  # no file of it was copied: it held none to include when the copy was made
        if stmt.execute:
            try:
                st = os.stat(copy)
            except OSError as exc:
                raise fail(f"stat for '{_text(path)}'{self.where} failed: {exc.strerror}") from None
            if not _safe(st):
                raise fail(f"bad ownership or modes for '{_text(path)}' (please ensure it is neither "
                           "group- nor world-writable and owned by the current user or root)")
        else:  # stricter than AIDE: whoever can add or remove snippets decides what is checked
            try:
                unsafe = _unsafe(os.stat(copy))
            except OSError:
                unsafe = None  # listing it below says what is wrong, as AIDE does
            if unsafe is not None:
                raise fail(f"directory '{_text(path)}' {unsafe}; refusing it")
        try:
            names = sorted(os.listdir(copy))
        except OSError as exc:
            raise fail(f"failed to open directory '{_text(path)}'{self.where}: {exc.strerror}") from None
        if stmt.prefix is not None:
            new_prefix = self.string(stmt.prefix)
            if new_prefix.endswith("/"):
                new_prefix = new_prefix[:-1]
            if new_prefix and new_prefix[0] != "/":
                raise fail(f"invalid rule prefix '{_text(new_prefix)}': unexpected first character "
                           f"'{new_prefix[0]}', expected '/'")
            prefix = (prefix or "") + new_prefix
        snippets: list[_Snippet] = []
        for entry in names:  # a failure is raised when its turn comes, as AIDE meets it then
            snippet = _Snippet(directory + b"/" + entry, copy + b"/" + entry)
            try:
                st = os.stat(snippet.file)
            except OSError as exc:
                snippet.failure = (f"stat for '{os.fsdecode(snippet.path)}'{self.where} failed: "
                                   f"{exc.strerror}")
                snippets.append(snippet)
                continue
            if not stat.S_ISREG(st.st_mode) or name_rx.match(entry) is not Match.FULL:
                continue
            if stmt.execute and st.st_mode & stat.S_IXUSR:
                if _safe(st):
                    self.start(snippet)
                else:
                    snippet.failure = (f"bad ownership or modes for '{os.fsdecode(snippet.path)}' (please "
                                       "ensure it is neither group- nor world-writable and owned by the "
                                       "current user or root)")
            elif (unsafe := _unsafe(st)) is not None:  # stricter than AIDE for plain snippets
                snippet.failure = f"'{os.fsdecode(snippet.path)}' {unsafe}; refusing it"
            snippets.append(snippet)
        try:
            for snippet in snippets:  # parse plain files while the executables run
                if snippet.process is None and snippet.failure is None:
                    _parse_file(snippet)
            for snippet in snippets:
                self.evaluate_snippet(snippet, fail, depth, prefix)
        finally:  # after an error, stop the snippets whose turn never came
            for snippet in snippets:
                if snippet.process is not None and snippet.process.returncode is None:
                    snippet.process.kill()
                    snippet.process.communicate()

    def start(self, snippet: _Snippet) -> None:
        """Run an executable snippet with the current @@x_include_setenv environment."""
        environ = dict(os.environ)
        for key, value in self.setenv.items():
            environ.setdefault(key, _text(value))  # AIDE's setenv(..., overwrite=0)
        snippet.environ = dict(self.setenv)
        try:
            snippet.process = subprocess.Popen(
                [snippet.path], executable=os.path.abspath(snippet.file), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environ)
        except OSError as exc:
            snippet.failure = f"{os.fsdecode(snippet.path)}: execution failed: {exc.strerror}"

    def evaluate_snippet(self, snippet: _Snippet, fail: _Fail, depth: int, prefix: str | None) -> None:
        display = os.fsdecode(snippet.path)
        if snippet.process is not None and snippet.environ != self.setenv:
            snippet.process.kill()  # the environment changed since it was started: run it again
            snippet.process.communicate()
            self.start(snippet)
        if snippet.process is None and snippet.syntax is None and snippet.error is None \
                and snippet.failure is None:
            _parse_file(snippet)
        if snippet.failure is not None:
            raise fail(snippet.failure)
        if snippet.process is not None:
            out, err = snippet.process.communicate()
            status = snippet.process.returncode
            if err or status:
                lines = "; ".join(f"stderr> {line}" for line in err.decode(errors="replace").splitlines())
                raise fail(f"{display}: execution failed (exit status: {status})"
                           + (f": {lines}" if lines else ""))
            snippet.syntax = parse(out.decode("latin-1"), f"{display} (stdout)")
        if snippet.error is not None:
            raise snippet.error
        assert snippet.syntax is not None
        self.config.sources.append(Path(display))
        self.config.warnings.extend(snippet.syntax.warnings)
        self.run(snippet.syntax.statements, snippet.syntax.name, depth, prefix)


def _safe(st: os.stat_result) -> bool:
    """AIDE's rule for executed config: owned by us or root, not group- or world-writable."""
    return st.st_uid in (0, os.geteuid()) and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _unsafe(st: os.stat_result) -> str | None:
    """Why a config or rules file may not be trusted (None: it may): AIDE's rule for executed
    snippets, which aidepy applies to every file it reads rules from."""
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is group- or world-writable (mode {stat.S_IMODE(st.st_mode):04o})"
    if st.st_uid not in (0, os.geteuid()):
        return f"is owned by another user (uid {st.st_uid})"
    return None


def _parse_file(snippet: _Snippet) -> None:
    """Read and parse one included file, keeping a failure to raise when its turn comes."""
    name = os.fsdecode(snippet.path)
    try:
        with open(snippet.file, "rb") as f:
            snippet.syntax = parse(f.read().decode("latin-1"), name)
    except ConfigError as exc:
        snippet.error = exc
    except OSError as exc:
        snippet.failure = f"cannot read '{name}': {exc.strerror}"


def _hostname() -> str:
    """The host name (as gethostname(2) gives it) in the lexer's latin-1 text: AIDE compares bytes."""
    return os.uname().nodename.encode("utf-8", "surrogateescape").decode("latin-1")


def _evaluate(parts: Sequence[tuple[str, str, Path | None]], rules_root: bytes | None = None) -> Config:
    """Parse and evaluate (text, name, source) parts in order: --before, the file, --after."""
    config = Config()
    evaluator = _Evaluator(config, _hostname(), rules_root)
    for text, name, source in parts:
        syntax = parse(text, name)
        if source is not None:
            config.sources.append(source)
        config.warnings.extend(syntax.warnings)
        evaluator.run(syntax.statements, name, 0, None)
    evaluator.warn_trailing_report_options()
    return config


def parse_text(text: str, name: str = "<text>") -> Config:
    """Evaluate config text (includes are read relative to the current directory)."""
    return _evaluate([(text.encode("utf-8", "surrogateescape").decode("latin-1"), name, None)])


def load(
    path: str | os.PathLike[str], before: Sequence[str] = (), after: Sequence[str] = (), *,
    rules_root: str | os.PathLike[str] | None = None,
) -> Config:
    """Read and evaluate a config file, with AIDE's `-B` lines before it and `-A` lines after it.
    With `rules_root`, every included file or directory is read from its copy there (`copy_path`)."""
    name = os.fspath(path)
    parts: list[tuple[str, str, Path | None]] = []
    if before:
        parts.append(("\n".join(before).encode("utf-8", "surrogateescape").decode("latin-1"),
                      "(--before)", None))
    try:
        if name == "-":
            data = sys.stdin.buffer.read()
            parts.append((data.decode("latin-1"), "(stdin)", None))
        else:
            with open(os.path.expanduser(name), "rb") as f:
                unsafe = _unsafe(os.fstat(f.fileno()))
                if unsafe is not None:
                    raise ConfigError(name, 0, f"config file {unsafe}; refusing it (chmod go-w {name})")
                parts.append((f.read().decode("latin-1"), name, Path(name)))
    except OSError as exc:
        raise ConfigReadError(f"cannot open config file '{name}': {exc.strerror}") from None
    if after:
        parts.append(("\n".join(after).encode("utf-8", "surrogateescape").decode("latin-1"),
                      "(--after)", None))
    return _evaluate(parts, None if rules_root is None else os.fsencode(rules_root))
