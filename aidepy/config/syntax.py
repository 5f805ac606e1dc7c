"""Stage one of reading an aide.conf: text to syntax statements, without evaluating anything.

The lexer follows AIDE 0.18's (`src/conf_lex.l`) token for token, line by line: every line
starts afresh, so each non-empty, non-comment line is one statement, and only `@@if`/`@@else`/
`@@endif` nest. The oddities AIDE tolerates are tolerated the same way: `\\\\`, `\\@` and `\\ `
are escapes in strings and regexes while a lone backslash stays, an unclosed `@@{NAME` is
literal text, a word in lowercase letters is an option name (or an error) and never a group.
Text is handled as latin-1 so every byte of the file stays one character, as in AIDE's lexer.
Macros, groups, includes and conditions are evaluated by `aidepy.config.evaluate`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aidepy.errors import ConfigError
from aidepy.selection import RuleKind


@dataclass(frozen=True, slots=True)
class Var:
    """A `@@{NAME}` reference inside a string."""

    name: str


StrExpr = tuple[str | Var, ...]
"""A string as written: literal pieces and variable references, concatenated on evaluation."""

AttrExpr = tuple[tuple[str, str], ...]
"""`p+u-i` as (("=", "p"), ("+", "u"), ("-", "i")): operator and attribute or group name."""


@dataclass(slots=True)
class Statement:
    """One config line: where it is and what it says (latin-1 text, no newline)."""

    line: int
    text: str


@dataclass(slots=True)
class OptionStmt(Statement):
    name: str
    value: StrExpr | None = None  # string options
    attrs: AttrExpr | None = None  # attribute-expression options (report_ignore_*, ...)


@dataclass(slots=True)
class GroupStmt(Statement):
    name: str
    expr: AttrExpr


@dataclass(slots=True)
class RuleStmt(Statement):
    kind: RuleKind
    path: StrExpr
    restriction: tuple[str, ...] | None
    attrs: AttrExpr | None


@dataclass(slots=True)
class DefineStmt(Statement):
    name: str
    value: StrExpr | None


@dataclass(slots=True)
class UndefStmt(Statement):
    name: str


@dataclass(slots=True)
class IncludeStmt(Statement):
    path: StrExpr
    regex: StrExpr | None
    prefix: StrExpr | None
    execute: bool


@dataclass(slots=True)
class SetenvStmt(Statement):
    name: str
    value: StrExpr


@dataclass(slots=True)
class Condition:
    """`[not ...] defined|hostname|exists ARG`."""

    negate: bool
    function: str
    argument: StrExpr


@dataclass(slots=True)
class IfStmt(Statement):
    condition: Condition
    then: list[Statement] = field(default_factory=list)
    orelse: list[Statement] | None = None


@dataclass(slots=True)
class Syntax:
    """A parsed file: its statements and the warnings the parse found."""

    name: str
    statements: list[Statement]
    warnings: list[str]


# AIDE's options and whether their value is an attribute expression (True) or a string.
OPTIONS: dict[str, bool] = {
    "database_in": False, "database": False, "database_out": False, "database_new": False,
    "database_attrs": True, "warn_dead_symlinks": False, "grouped": False,
    "report_grouped": False, "summarize_changes": False, "report_summarize_changes": False,
    "acl_no_symlink_follow": False, "report_format": False, "report_level": False,
    "report_ignore_added_attrs": True, "report_ignore_removed_attrs": True,
    "report_ignore_changed_attrs": True, "report_force_attrs": True, "verbose": False,
    "log_level": False, "database_add_metadata": False, "report_url": False,
    "report_detailed_init": False, "report_base16": False, "report_quiet": False,
    "report_append": False, "report_ignore_e2fsattrs": False, "gzip_dbout": False,
    "root_prefix": False, "config_version": False, "config_check_warn_unrestricted_rules": False,
    "num_workers": False,
    # aidepy's own (AIDE would reject these words as unknown options)
    "vault_device": False, "vault_label": False, "vault_mountpoint": False, "signing_key": False,
    "public_key": False, "report_email": False, "sendmail": False, "state_dir": False,
    "report_mail_limit": False, "host_mismatch": False, "sendmail_timeout": False,
    "explain_changes": False, "package_cache": False,
}
DEPRECATED_OPTIONS = {"database": "database_in", "grouped": "report_grouped",
                      "summarize_changes": "report_summarize_changes"}

_L = "a-zA-Z\xf6\xe4\xfc\xdf\xe5\xd6\xc4\xdc\xc50-9_%"  # AIDE's {L}: name characters
_WORD = re.compile(f"[{_L}]+")
_LOWER = re.compile("[a-z_]+")
_ALNUM = re.compile("[a-zA-Z0-9]+")
_ENVVAR = re.compile("[a-zA-Z_][a-zA-Z0-9_]*")
_SPACE = re.compile("[ \t]*")
_EQUALS = re.compile(" *= *")
_MACRO = re.compile("@@(x_include_setenv|x_include|include|ifndef|ifnhost|ifhost|ifdef|if"
                    "|define|undef|else|endif)")
_STRING_TOKEN = re.compile(f"@@{{([{_L}]+)}}|([^@\\\\ \t\r\n]+)|\\\\([\\\\@ ])|([\\\\@])")
_EXPR_TOKEN = re.compile(f"[ \t]*(?:([{_L}>]+)|([-+,]))")
_CONDITION = re.compile("[ \t]*(not|defined|hostname|exists)")
_PLAIN = re.compile("[^@\\\\ \t\r\n]*")  # a string without escapes or macros: the common case
_EXPR_ONLY = re.compile(f"[{_L}>+\\-, \t]*")
_EXPR_SPLIT = re.compile(f"[{_L}>]+|[-+,]")


def _error(ctx: _Line, reason: str) -> ConfigError:
    return ConfigError(ctx.name, ctx.number, reason)


@dataclass(slots=True)
class _Line:
    name: str
    number: int
    text: str


def _unexpected(ctx: _Line, pos: int) -> ConfigError:
    """The error for whatever stands at `pos` where nothing more may come."""
    text = ctx.text
    if pos >= len(text):
        return _error(ctx, "unexpected end of line")
    m = _WORD.match(text, pos)
    if m:
        word = m.group()
        if _LOWER.fullmatch(word) and word not in OPTIONS:
            return _error(ctx, f"unknown config option: '{word}'")
        return _error(ctx, f"syntax error, unexpected '{word}'")
    char = text[pos]
    return _error(ctx, "unexpected character: '\\r'" if char == "\r" else
                  f"unexpected character: '{char}'")


def _string(text: str, pos: int) -> tuple[StrExpr, int]:
    """Lex a string (AIDE's STRING/PATH state) from `pos` up to white space or the end."""
    end = _PLAIN.match(text, pos).end()  # type: ignore[union-attr]
    if end == len(text) or text[end] in " \t\r\n":
        return ((text[pos:end],) if end > pos else ()), end
    pieces: list[str | Var] = []
    literal = ""
    match = _STRING_TOKEN.match
    while True:
        m = match(text, pos)
        if m is None:
            break
        pos = m.end()
        var, plain, escaped, single = m.groups()
        if var is not None:
            if literal:
                pieces.append(literal)
                literal = ""
            pieces.append(Var(var))
        else:
            literal += plain or escaped or single
    if literal:
        pieces.append(literal)
    return tuple(pieces), pos


def _tail(ctx: _Line, pos: int) -> None:
    """After a string in STRING state AIDE is back in CONFIG state: white space, a comment, or the end."""
    pos = _SPACE.match(ctx.text, pos).end()  # type: ignore[union-attr]
    if pos < len(ctx.text) and ctx.text[pos] != "#":
        raise _unexpected(ctx, pos)


def _expr_tokens(ctx: _Line, pos: int) -> list[str]:
    """Lex the rest of the line in AIDE's EXPR state: names and the operators + - ,."""
    text = ctx.text
    end = len(text)
    if _EXPR_ONLY.match(text, pos).end() == end:  # type: ignore[union-attr]
        return _EXPR_SPLIT.findall(text, pos)
    tokens: list[str] = []
    match = _EXPR_TOKEN.match
    while True:
        m = match(text, pos)
        if m is None:
            pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
            if pos < end:
                raise _unexpected(ctx, pos)
            return tokens
        tokens.append(m.group(1) or m.group(2))
        pos = m.end()


def _attr_expr(ctx: _Line, tokens: list[str], start: int) -> AttrExpr:
    """`NAME (+|- NAME)*` from tokens[start:]; nothing else may follow."""
    if start >= len(tokens):
        raise _error(ctx, "missing attribute expression")
    items: list[tuple[str, str]] = []
    op = "="
    expect_name = True
    for tok in tokens[start:]:
        if expect_name:
            if tok in "+-,":
                raise _error(ctx, f"syntax error, unexpected '{tok}', expecting attribute or group")
            items.append((op, tok))
        else:
            if tok not in "+-":
                raise _error(ctx, f"syntax error, unexpected '{tok}' in attribute expression")
            op = tok
        expect_name = not expect_name
    if expect_name:
        raise _error(ctx, f"syntax error, attribute expression ends with '{op}'")
    return tuple(items)


def _rule(ctx: _Line, kind: RuleKind, pos: int) -> RuleStmt:
    text = ctx.text
    path, pos = _string(text, pos)
    tokens = _expr_tokens(ctx, pos) if pos < len(text) else []
    restriction: tuple[str, ...] | None = None
    i = 0
    if kind is RuleKind.NEGATIVE or (len(tokens) > 1 and tokens[1] not in "+-"):
        # a restriction: NAME (, NAME)*
        names: list[str] = []
        while i < len(tokens):
            if tokens[i] in "+-,":
                raise _error(ctx, f"syntax error, unexpected '{tokens[i]}' in file type restriction")
            names.append(tokens[i])
            i += 1
            if i < len(tokens) and tokens[i] == ",":
                i += 1
                if i == len(tokens):
                    raise _error(ctx, "syntax error, file type restriction ends with ','")
                continue
            break
        restriction = tuple(names) if names else None
    if kind is RuleKind.NEGATIVE:
        if i < len(tokens):
            raise _error(ctx, "negative rule must not have an attribute expression")
        return RuleStmt(ctx.number, text, kind, path, restriction, None)
    return RuleStmt(ctx.number, text, kind, path, restriction, _attr_expr(ctx, tokens, i))


def _assignment(ctx: _Line, pos: int, what: str) -> int:
    """AIDE's `{E}` (spaces, '=', spaces) after an option or group name; returns the position after it."""
    m = _EQUALS.match(ctx.text, pos)
    if m is None:
        if pos >= len(ctx.text):
            raise _error(ctx, f"syntax error, expecting '=' after {what}")
        raise _unexpected(ctx, pos)
    return m.end()


def _required_string(ctx: _Line, pos: int, what: str, hunt: bool = True) -> StrExpr:
    """A STRINGHUNT + STRING value that must be present, then the CONFIG-state tail."""
    text = ctx.text
    if hunt:
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
    value, pos = _string(text, pos)
    if not value:
        raise _error(ctx, f"missing {what}")
    _tail(ctx, pos)
    return value


class _Parser:
    """Turns lines into statements; a stack of open `@@if`s gives the nesting."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.warnings: list[str] = []
        self.top: list[Statement] = []
        self.stack: list[tuple[IfStmt, bool]] = []  # open @@if and whether in its @@else part

    def warn(self, ctx: _Line, message: str) -> None:
        self.warnings.append(f"{self.name}:{ctx.number}: {message}")

    def target(self) -> list[Statement]:
        if not self.stack:
            return self.top
        node, in_else = self.stack[-1]
        return node.orelse if in_else and node.orelse is not None else node.then

    def statement(self, ctx: _Line) -> None:
        text = ctx.text
        pos = _SPACE.match(text).end()  # type: ignore[union-attr]
        if pos >= len(text) or text[pos] == "#":
            return
        c = text[pos]
        stmt: Statement
        if c == "/":
            stmt = _rule(ctx, RuleKind.REGULAR, pos)
        elif c in "=!" and text.startswith("/", pos + 1):
            stmt = _rule(ctx, RuleKind.EQUAL if c == "=" else RuleKind.NEGATIVE, pos + 1)
        elif c == "@":
            m = _MACRO.match(text, pos)
            if m is None:
                raise _unexpected(ctx, pos)
            self.macro(ctx, m.group(1), m.end())
            return
        else:
            m = _WORD.match(text, pos)
            if m is None:
                raise _unexpected(ctx, pos)
            stmt = self.assignment(ctx, m.group(), m.end())
        self.target().append(stmt)

    def assignment(self, ctx: _Line, word: str, pos: int) -> Statement:
        """`option = value` or `Group = expr`, told apart exactly as AIDE's lexer does."""
        attr_option = OPTIONS.get(word)
        if attr_option is not None or _LOWER.fullmatch(word):
            if attr_option is None:
                raise _error(ctx, f"unknown config option: '{word}'")
            if word in DEPRECATED_OPTIONS:
                self.warn(ctx, f"'{word}' is deprecated, use '{DEPRECATED_OPTIONS[word]}'")
            pos = _assignment(ctx, pos, f"'{word}'")
            if attr_option:
                return OptionStmt(ctx.number, ctx.text, word,
                                  attrs=_attr_expr(ctx, _expr_tokens(ctx, pos), 0))
            return OptionStmt(ctx.number, ctx.text, word,
                              value=_required_string(ctx, pos, f"value for '{word}'", hunt=False))
        if not _ALNUM.fullmatch(word):
            self.warn(ctx, f"special characters in group names are deprecated: '{word}' "
                      "(use only A-Za-z0-9)")
        pos = _assignment(ctx, pos, f"group name '{word}'")
        tokens = _expr_tokens(ctx, pos)
        if "," in tokens:
            raise _error(ctx, "syntax error, unexpected ',' in attribute expression")
        return GroupStmt(ctx.number, ctx.text, word, _attr_expr(ctx, tokens, 0))

    def macro(self, ctx: _Line, word: str, pos: int) -> None:
        text = ctx.text
        if word in ("define", "undef"):
            pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
            m = _WORD.match(text, pos)
            if m is None:
                raise _unexpected(ctx, pos) if pos < len(text) else _error(ctx, f"@@{word} needs a name")
            pos = _SPACE.match(text, m.end()).end()  # type: ignore[union-attr]
            value, end = _string(text, pos)
            if word == "undef":
                if value or end < len(text):
                    raise _error(ctx, "syntax error, unexpected text after @@undef NAME")
                self.target().append(UndefStmt(ctx.number, text, m.group()))
                return
            _tail(ctx, end)
            self.target().append(DefineStmt(ctx.number, text, m.group(), value or None))
        elif word in ("include", "x_include"):
            self.target().append(self.include(ctx, pos, word == "x_include"))
        elif word == "x_include_setenv":
            pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
            m = _ENVVAR.match(text, pos)
            if m is None:
                raise _error(ctx, "@@x_include_setenv needs a variable name ([A-Za-z_][A-Za-z0-9_]*)")
            value = _required_string(ctx, m.end(), "value for @@x_include_setenv")
            self.target().append(SetenvStmt(ctx.number, text, m.group(), value))
        elif word == "else":
            _tail(ctx, pos)
            if not self.stack or self.stack[-1][1]:
                raise _error(ctx, "@@else without @@if")
            node = self.stack[-1][0]
            if not node.then:
                raise _error(ctx, "empty @@if branch (AIDE needs a statement before @@else)")
            node.orelse = []
            self.stack[-1] = (node, True)
        elif word == "endif":
            _tail(ctx, pos)
            if not self.stack:
                raise _error(ctx, "@@endif without @@if")
            node, in_else = self.stack.pop()
            if not (node.orelse if in_else else node.then):
                raise _error(ctx, "empty @@if/@@else branch (AIDE needs a statement before @@endif)")
        else:
            condition = self.condition(ctx, word, pos)
            node = IfStmt(ctx.number, text, condition)
            self.target().append(node)
            self.stack.append((node, False))

    def condition(self, ctx: _Line, word: str, pos: int) -> Condition:
        if word != "if":
            function = "hostname" if word.endswith("host") else "defined"
            return Condition(word.startswith("ifn"), function,
                             _required_string(ctx, pos, f"argument for @@{word}"))
        negate = False
        while True:
            m = _CONDITION.match(ctx.text, pos)
            if m is None:
                pos = _SPACE.match(ctx.text, pos).end()  # type: ignore[union-attr]
                if pos >= len(ctx.text):
                    raise _error(ctx, "@@if needs a condition: [not] defined|hostname|exists ARG")
                raise _unexpected(ctx, pos)
            pos = m.end()
            if m.group(1) == "not":
                negate = not negate
                continue
            return Condition(negate, m.group(1),
                             _required_string(ctx, pos, f"argument for '{m.group(1)}'"))

    def include(self, ctx: _Line, pos: int, execute: bool) -> IncludeStmt:
        text = ctx.text
        keyword = "@@x_include" if execute else "@@include"
        parts: list[StrExpr] = []
        while len(parts) < 3:
            m = _SPACE.match(text, pos)
            assert m is not None
            if m.end() == pos:
                break
            value, pos = _string(text, m.end())
            if not value:
                raise _error(ctx, f"syntax error, trailing white space after {keyword}")
            parts.append(value)
        if not parts:
            raise _error(ctx, f"{keyword} needs a file (or a directory and a regex)")
        if pos < len(text):
            raise _unexpected(ctx, pos) if text[pos] not in " \t" else _error(
                ctx, f"syntax error, {keyword} takes at most 3 arguments")
        return IncludeStmt(ctx.number, text, parts[0], parts[1] if len(parts) > 1 else None,
                           parts[2] if len(parts) > 2 else None, execute)

    def finish(self) -> list[Statement]:
        if self.stack:
            node = self.stack[0][0]
            raise ConfigError(self.name, node.line, "unterminated @@if (missing @@endif)")
        return self.top


def _continued(text: str) -> bool:
    """Ends with white space and a backslash: where AIDE rejects the backslash, aidepy continues."""
    stripped = text.rstrip(" \t")
    return stripped.endswith("\\") and stripped[:-1].endswith((" ", "\t"))


def parse(text: str, name: str) -> Syntax:
    """Parse a whole config text (latin-1 decoded) into statements; raises `ConfigError`.

    aidepy's one extension: a line ending in ` \\` that AIDE would reject (an unexpected
    backslash) continues on the next line, with a warning that `aide` cannot read it.
    """
    parser = _Parser(name)
    ctx = _Line(name, 0, "")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    i = 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        if not raw:
            continue
        first = raw.lstrip(" \t")
        if not first or (first[0] == "#" and "\r" not in first[:-1]):
            continue  # empty line or comment line
        ctx.number = i
        cr = raw.find("\r")
        # AIDE's line buffer ends at the first CR; a CR right before the newline ends the line
        ctx.text = raw if cr < 0 else raw[:cr]
        if 0 <= cr < len(raw) - 1:  # a CR inside the line: AIDE's lexer stops there
            parser.statement(_Line(name, i, ctx.text + "\r"))  # an earlier error comes first
            raise ConfigError(name, i, "unexpected character: '\\r'")
        try:
            parser.statement(ctx)
        except ConfigError:
            if not (_continued(ctx.text) and i < len(lines)):
                raise
            joined = ctx.text
            while _continued(joined) and i < len(lines):
                joined = joined.rstrip(" \t")[:-1] + " " + lines[i].rstrip("\r").lstrip(" \t")
                i += 1
            parser.statement(_Line(name, ctx.number, joined))
            parser.warn(ctx, "line continuation with '\\' is an aidepy extension (aide rejects it)")
    return Syntax(name, parser.finish(), parser.warnings)
