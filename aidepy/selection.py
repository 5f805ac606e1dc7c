"""Selection: which rule, if any, applies to a path and file type, exactly as AIDE decides it.

Like AIDE, a `RuleSet` hangs each rule on a tree node named by the literal directory part of its
regex (`/var/log/.*\\.gz$` hangs on `/var/log`), so a path only tests the rules hung on its
ancestor directories. The decision, as `aide` 0.18.3 (Debian) makes it:

1. Equal rules count only when hung on the path's own parent directory (`=/etc/ssh/` hangs on
   `/etc/ssh`, so it selects `/etc/ssh/sshd_config` but nothing deeper, although its regex
   matches deeper paths too), and they beat regular rules.
2. Otherwise regular rules are tried from the deepest node up; inside a node the first rule
   (config order) whose regex matches and whose file-type restriction admits the type wins.
3. A positive match is then vetoed by negative rules, root node first. A node's unrestricted
   negative rules are also tried on each ancestor directory of the path that lies below the
   node (so `!/var/log$` excludes everything inside `/var/log` too). A matching restricted
   negative rule excludes the path itself only.
4. A directory is entered when it is selected, when a rule matches a prefix of it ("partial"
   match, e.g. `/home/al` for `/home/[^/]+/\\.ssh$`), or when a node hangs on it.

Regexes are compiled with AIDE's own engine (`aidepy.pcre`): anchored at the start only,
bytes, POSIX classes, soft partial matching.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum

from aidepy.attributes import AttrSet
from aidepy.pcre import Match, Regex, RegexError, first_bytes


class RuleKind(Enum):
    """AIDE's three kinds of selection lines."""

    REGULAR = "regular"  # /path attrs
    EQUAL = "equal"  # =/path attrs
    NEGATIVE = "negative"  # !/path


@dataclass(frozen=True)
class Rule:
    """One selection line after evaluation (macros substituted, include rule prefix applied)."""

    kind: RuleKind
    regex: str
    file_types: frozenset[str] | None  # None = unrestricted
    attrs: AttrSet  # empty for NEGATIVE
    origin: str  # "FILE:LINE"
    text: str  # the config line
    prefix: str | None = None  # the rule prefix of the `@@include DIR REGEX PREFIX` it came from


class MatchResult(Enum):
    """AIDE's match result for one path: how a rule selects it, if one does."""

    SELECTIVE = "selective"  # selected by a regular rule
    EQUAL = "equal"  # selected by an equal rule
    PARTIAL = "partial"  # not selected, but a rule matches a prefix: enter it if it is a directory
    NONE = "none"  # not selected


@dataclass(frozen=True)
class Decision:
    """What AIDE decides for a path: the result and the rule behind it.

    `rule` is the selecting rule, or for an unselected path the negative rule that excluded it
    (None when no rule matched), as `aide -p` reports it.
    """

    result: MatchResult
    rule: Rule | None

    @property
    def selected(self) -> bool:
        return self.result is MatchResult.SELECTIVE or self.result is MatchResult.EQUAL


# Characters that end the literal directory part of a regex in AIDE's tree (`.` `+` `{` `|` do not).
_NODE_STOP = frozenset(b"(^$?*[")
# Characters that end the literal prefix a regex must start with; quantifiers also take the
# character before them.
_LITERAL_STOP = frozenset(b"\\^$.|?*+()[]{}")
_QUANTIFIERS = frozenset(b"?*+{")
_EXTENDED_FLAG = re.compile(rb"\(\?[a-zA-Z^-]*x")
_INLINE_OPTIONS = re.compile(rb"\(\?[a-zA-Z^-]*[a-zA-Z^][a-zA-Z^-]*[):]")


def node_path(regex: bytes) -> bytes:
    """The tree node AIDE hangs `regex` on: its literal part up to the last `/` before a special.

    A backslash is dropped and the character it escapes taken literally (also `/`, which then
    does not count as a separator): `/etc/foo\\.d/x` hangs on `/etc/foo.d`.
    """
    chars = bytearray(regex) or bytearray(b"/")
    chars[0] = 0x2F  # AIDE takes the first character as the root slash, whatever it is
    last_slash = 1
    i = 1
    while i < len(chars):
        c = chars[i]
        if c == 0x2F:
            last_slash = i
        elif c in _NODE_STOP:
            break
        elif c == 0x5C:  # backslash: drop it, keep (and skip) the escaped character
            del chars[i]
        i += 1
    return bytes(chars[:last_slash])


@dataclass(frozen=True)
class Literal:
    """What can be said about a regex without running it.

    Every subject that matches, fully or partially, starts with `prefix` or is a prefix of it.
    `whole` says the regex is exactly `prefix` (it matches whatever starts with it), `dollar`
    that it is `prefix` followed by `$`. `after`, when known, holds every byte a subject longer
    than `prefix` can have right after it (`/(var/)?tmp` -> `v`, `t`).
    """

    prefix: bytes
    whole: bool = False
    dollar: bool = False
    after: frozenset[int] | None = None  # the bytes that can follow the prefix (None: any)


def literal(regex: bytes) -> Literal:
    """The literal part a regex starts with (escaped punctuation counts as literal)."""
    if (b"|" in regex and _has_top_level_alternation(regex)) or _EXTENDED_FLAG.search(regex):
        return Literal(b"")
    out = bytearray()
    i, n = 0, len(regex)
    while i < n:
        c = regex[i]
        if c == 0x5C and i + 1 < n and not chr(regex[i + 1]).isalnum() and regex[i + 1] < 0x80:
            out.append(regex[i + 1])
            i += 2
        elif c in _LITERAL_STOP:
            break
        else:
            out.append(c)
            i += 1
    if i == n:
        return Literal(bytes(out), whole=True)
    if regex[i:] == b"$":
        return Literal(bytes(out), dollar=True)
    if regex[i] in _QUANTIFIERS:
        if out:
            del out[-1]  # the quantifier makes the last character optional or repeated
        return Literal(bytes(out))
    rest = regex[i:]
    # PCRE2 reports a caseless first byte as one case only, so inline options rule this out
    if _INLINE_OPTIONS.search(rest) or b"(*" in rest:
        return Literal(bytes(out))
    return Literal(bytes(out), after=first_bytes(rest))


def _has_top_level_alternation(regex: bytes) -> bool:
    depth, i, n = 0, 0, len(regex)
    while i < n:
        c = regex[i]
        if c == 0x5C:  # backslash
            if regex.startswith(b"\\Q", i):
                end = regex.find(b"\\E", i + 2)
                i = n if end < 0 else end + 2
                continue
            i += 2
            continue
        if c == 0x5B:  # '[': skip the class, `]` first is literal, `[:name:]` is one unit
            i += 1
            if i < n and regex[i] == 0x5E:
                i += 1
            if i < n and regex[i] == 0x5D:
                i += 1
            while i < n and regex[i] != 0x5D:
                if regex[i] == 0x5C:
                    i += 1
                elif regex.startswith(b"[:", i):
                    end = regex.find(b":]", i + 2)
                    if end > 0:
                        i = end + 1
                i += 1
        elif c == 0x28:
            depth += 1
        elif c == 0x29:
            depth = max(depth - 1, 0)
        elif c == 0x7C and depth == 0:
            return True
        i += 1
    return False


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


class _Compiled:
    """A rule ready to test: compiled regex, its literal part, restriction."""

    __slots__ = ("after", "dollar", "prefix", "regex", "rule", "types", "whole")

    def __init__(self, rule: Rule) -> None:
        raw = _encode(rule.regex)
        lit = literal(raw)
        self.rule = rule
        self.regex = Regex(raw)
        self.prefix = lit.prefix
        self.whole = lit.whole
        self.dollar = lit.dollar
        self.after = lit.after
        self.types = rule.file_types or None  # an empty restriction restricts nothing

    def match(self, path: bytes) -> Match:
        prefix = self.prefix
        if path.startswith(prefix):
            if self.whole:
                return Match.FULL
            if self.dollar:  # PCRE's `$` also matches before a final newline
                rest = len(path) - len(prefix)
                return Match.FULL if rest == 0 or (rest == 1 and path[-1] == 0x0A) else Match.NONE
            return self.regex.match(path)
        if prefix.startswith(path):
            return Match.PARTIAL if self.whole or self.dollar else self.regex.match(path)
        return Match.NONE


class _RuleList:
    """The rules of one kind on one node, with an index on the byte that follows the node path.

    Every path tested against a node's rules lies below the node, so a rule whose literal part
    reaches past the node path (or that says which bytes follow its literal part) can only
    match paths with one of those bytes at that position.
    """

    __slots__ = ("all", "by_byte", "other", "position")

    def __init__(self, node_path: bytes, rules: list[_Compiled]) -> None:
        self.all = tuple(rules)
        self.position = position = 1 if node_path == b"/" else len(node_path) + 1

        def possible(rule: _Compiled) -> frozenset[int] | None:
            """The bytes a path matching `rule` can have at `position`; None: any."""
            if len(rule.prefix) > position:
                return frozenset((rule.prefix[position],))
            return rule.after if len(rule.prefix) == position else None

        sets = [possible(r) for r in rules]
        keys = frozenset().union(*(k for k in sets if k is not None))
        self.by_byte = {
            key: tuple(r for r, k in zip(rules, sets, strict=True) if k is None or key in k) for key in keys
        }
        self.other = tuple(r for r, k in zip(rules, sets, strict=True) if k is None)

    def candidates(self, path: bytes) -> tuple[_Compiled, ...]:
        """The rules that may match `path` (a path below the node), in config order."""
        if len(path) <= self.position:
            return self.all
        return self.by_byte.get(path[self.position], self.other)


class _Node:
    """A directory of AIDE's rule tree and the rules hung on it, in config order."""

    __slots__ = ("children", "equal", "negative", "parent", "path", "pending", "regular",
                 "unrestricted_negative")

    def __init__(self, path: bytes, parent: _Node | None) -> None:
        self.path = path
        self.parent = parent
        self.children: list[_Node] = []
        self.pending: dict[RuleKind, list[_Compiled]] = {kind: [] for kind in RuleKind}
        self.equal: _RuleList | None = None
        self.regular: _RuleList | None = None
        self.negative: _RuleList | None = None
        self.unrestricted_negative: _RuleList | None = None

    def depth(self) -> int:
        node: _Node | None = self
        n = 0
        while node is not None:
            n += 1
            node = node.parent
        return n

    def freeze(self) -> None:
        """Index the rules added so far (None for an empty list)."""

        def index(rules: list[_Compiled]) -> _RuleList | None:
            return _RuleList(self.path, rules) if rules else None

        self.equal = index(self.pending[RuleKind.EQUAL])
        self.regular = index(self.pending[RuleKind.REGULAR])
        negative = self.pending[RuleKind.NEGATIVE]
        self.negative = index(negative)
        self.unrestricted_negative = index([r for r in negative if r.types is None])

    def has_rules(self) -> bool:
        return bool(self.equal or self.regular or self.negative)


def _first_match(rules: tuple[_Compiled, ...], path: bytes, ftype: str) -> tuple[_Compiled | None, bool]:
    """The first rule whose regex matches `path` and whose restriction admits `ftype`; and
    whether some rule matched only partially (a prefix, or the regex but not the type)."""
    partial = False
    for entry in rules:
        m = entry.match(path)
        if m is Match.FULL:
            if entry.types is None or ftype in entry.types:
                return entry, partial
            partial = True
        elif m is Match.PARTIAL:
            partial = True
    return None, partial


def _ancestors(path: bytes, below: bytes) -> Iterator[bytes]:
    """The ancestor directories of `path` strictly below directory `below`, deepest first."""
    cut = path.rfind(b"/")
    floor = len(below)
    while cut > floor:
        yield path[:cut]
        cut = path.rfind(b"/", 0, cut)


_CACHE_LIMIT = 8192


class RuleSet:
    """Selection rules hung on AIDE's path-prefix tree; decides paths exactly as `aide` does.

        >>> from aidepy.attributes import attrset
        >>> rs = RuleSet([Rule(RuleKind.REGULAR, "/etc", None, attrset("p+sha256"), "x:1", "/etc p+sha256"),
        ...               Rule(RuleKind.NEGATIVE, "/etc/ssh$", None, frozenset(), "x:2", "!/etc/ssh$")])
        >>> rs.match(b"/etc/passwd", "f").origin, rs.match(b"/etc/ssh/sshd_config", "f")
        ('x:1', None)
    """

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self._root = _Node(b"/", None)
        for rule in self.rules:
            self._add(rule)
        # AIDE finds nodes by walking down path components; a node hung under an escaped special
        # character (`/a\(b/c/x`) is created but never found, so its rules never apply.
        self._nodes: dict[bytes, _Node] = {}
        self._index(self._root)
        self._chains: dict[bytes, tuple[_Node, ...]] = {}
        # the scanner asks match(d) then should_descend(d) for each directory: decide once
        self._last: tuple[bytes, Decision] = (b"", Decision(MatchResult.NONE, None))

    def _add(self, rule: Rule) -> None:
        raw = _encode(rule.regex)
        compiled = _Compiled(rule)  # raises RegexError
        path = node_path(raw)
        if b"//" in path:
            raise RegexError(raw, 0, "invalid double slash")
        node = self._lookup(path) or self._create(path)
        node.pending[rule.kind].append(compiled)

    def _lookup(self, path: bytes) -> _Node | None:
        """Find a node the way AIDE does: descend one path component at a time."""
        node = self._root
        while node.path != path:
            depth = node.depth()
            # the prefix of `path` before its (depth+1)-th slash, or all of it
            cut, seen = 0, 0
            for i, c in enumerate(path):
                if c == 0x2F:
                    seen += 1
                    if seen == depth + 1:
                        cut = i
                        break
            step = path[:cut] if cut else path
            found = None
            for child in node.children:
                if child.path == step:
                    found = child
                    break
            if found is None:
                return None
            node = found
        return node

    def _create(self, path: bytes) -> _Node:
        parent_path = node_path(path)
        parent = self._lookup(parent_path) or self._create(parent_path)
        node = _Node(path, parent)
        parent.children.append(node)
        return node

    def _index(self, node: _Node) -> None:
        node.freeze()
        if self._lookup(node.path) is node:
            self._nodes[node.path] = node
        for child in node.children:
            self._index(child)

    def _chain(self, dirname: bytes) -> tuple[_Node, ...]:
        """Nodes with rules on `dirname` and its ancestors, deepest first."""
        chain = self._chains.get(dirname)
        if chain is None:
            found: list[_Node] = []
            node = self._nodes.get(dirname)
            cut = len(dirname)
            while node is None and cut > 0:
                cut = dirname.rfind(b"/", 0, cut)
                node = self._nodes.get(dirname[:cut] or b"/")
            while node is not None:
                if node.has_rules():
                    found.append(node)
                node = node.parent
            chain = tuple(found)
            if len(self._chains) >= _CACHE_LIMIT:
                self._chains.clear()
            self._chains[dirname] = chain
        return chain

    def decide(self, path: bytes, ftype: str) -> Decision:
        """AIDE's decision for `path` (absolute, without root prefix) of type `ftype` (f d l ...)."""
        cut = path.rfind(b"/")
        dirname = path[:cut] if cut > 0 else b"/"
        chain = self._chain(dirname)
        partial = False
        hit: _Compiled | None = None
        result = MatchResult.NONE
        equal = chain[0].equal if chain and chain[0].path == dirname else None
        if equal is not None:
            hit, partial = _first_match(equal.candidates(path), path, ftype)
            if hit is not None:
                result = MatchResult.EQUAL
        if hit is None:
            for node in chain:
                if node.regular is not None:
                    hit, more = _first_match(node.regular.candidates(path), path, ftype)
                    partial = partial or more
                    if hit is not None:
                        result = MatchResult.SELECTIVE
                        break
        if hit is None:
            return Decision(MatchResult.PARTIAL if partial else MatchResult.NONE, None)
        for node in reversed(chain):
            negative = node.negative
            if negative is None:
                continue
            if node.unrestricted_negative is not None:
                # every ancestor below the node shares the byte the index looks at
                rules = node.unrestricted_negative.candidates(path)
                if rules:
                    for parent in _ancestors(path, node.path):
                        veto, _ = _first_match(rules, parent, "d")
                        if veto is not None:
                            return Decision(MatchResult.NONE, veto.rule)
            veto, _ = _first_match(negative.candidates(path), path, ftype)
            if veto is not None:
                # a restricted negative rule leaves a partial match: a directory is still entered
                return Decision(MatchResult.NONE if veto.types is None else MatchResult.PARTIAL, veto.rule)
        return Decision(result, hit.rule)

    def match(self, path: bytes, ftype: str) -> Rule | None:
        """The rule that selects `path`, or None when AIDE would not add it to the database."""
        decision = self.decide(path, ftype)
        if ftype == "d":
            self._last = (path, decision)
        return decision.rule if decision.selected else None

    def should_descend(self, path: bytes) -> bool:
        """Whether AIDE enters directory `path` (it may hold something selected); "/" always."""
        if path == b"/" or path in self._nodes:
            return True
        last_path, decision = self._last
        if last_path != path:
            decision = self.decide(path, "d")
        return decision.result is not MatchResult.NONE
