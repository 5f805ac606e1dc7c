"""Differential tests: aidepy decides every path as Debian's `aide` 0.18.3 does.

`aide --dry-init` walks a tree and prints, for every entry it meets, the same line `aide -p`
prints (`[X] f '/etc/passwd': selective rule: '...' (FILE:LINE: '...')`). One run gives the
decisions for thousands of paths and, through which entries it met, AIDE's pruning. aidepy
walks the same tree with `RuleSet.should_descend` and renders each decision with path-check's
line format: both the set of entries met and every line must be equal (AIDE's attribute lists
less the hash algorithms aidepy cannot compute). Trees: the live file system under Debian's full
config, and trees generated from the rules themselves (a sample path for every rule, with
neighbours and the restricted types) for Debian's config and for configs exercising every
grammar feature and rule interaction. A few `aide -p` runs pin the single-path output.
"""

from __future__ import annotations

import json
import os
import random
import re
import re._parser as sre_parse  # the regex parser, to generate sample paths from rules
import shutil
import stat
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aidepy.cli import main
from aidepy.cli.path_check import text_line
from aidepy.config.evaluate import UNSUPPORTED_HASHES, load
from aidepy.pcre import Match, Regex
from aidepy.selection import Rule, RuleSet

DEBIAN_CONF = Path("/etc/aide/aide.conf")
pytestmark = pytest.mark.skipif(shutil.which("aide") is None, reason="Debian's aide is not installed")
needs_debian_conf = pytest.mark.skipif(not DEBIAN_CONF.exists(), reason="no /etc/aide/aide.conf")

# --- running aide and reading its decisions ------------------------------------------------

_ATTRS = re.compile(rb"^(\[X\] . '.*?': (?:selective|equal) rule: '.*?) ([A-Za-z0-9+]*)(' \(.*)$", re.S)
_DROPPED = {name.encode() for name in UNSUPPORTED_HASHES}
_PATH = re.compile(rb"^\[[X ]\] . '(.*?)': (selective rule|equal rule|negative rule|no matching rule"
                   rb"|outside of limit)", re.S)


def normalise(line: bytes) -> bytes:
    """aide's line without the hash algorithms aidepy cannot compute (dropped by the config)."""
    m = _ATTRS.match(line)
    if not m:
        return line
    attrs = b"+".join(a for a in m.group(2).split(b"+") if a not in _DROPPED)
    return m.group(1) + b" " + attrs + m.group(3)


def aide_dry_init(config: Path, *before: str, limit: str | None = None) -> dict[bytes, bytes]:
    """path -> decision line for every entry `aide --dry-init` meets."""
    args = ["aide", "--dry-init", "-c", str(config)]
    for extra in before:
        args += ["-B", extra]
    if limit:
        args += ["-l", limit]
    out = subprocess.run(args, capture_output=True, check=True, stdin=subprocess.DEVNULL).stdout
    lines: dict[bytes, bytes] = {}
    for line in out.split(b"\n"):
        if line:
            m = _PATH.match(line)
            assert m, line
            lines[m.group(1)] = normalise(line)
    return lines


def aide_path_check(config: Path, query: str) -> bytes:
    out = subprocess.run(["aide", "-c", str(config), "-p", query], capture_output=True,
                         stdin=subprocess.DEVNULL).stdout
    return normalise(out.rstrip(b"\n"))


# --- aidepy walking the same tree ----------------------------------------------------------

_TYPES = {stat.S_IFREG: "f", stat.S_IFDIR: "d", stat.S_IFLNK: "l", stat.S_IFCHR: "c",
          stat.S_IFBLK: "b", stat.S_IFIFO: "p", stat.S_IFSOCK: "s"}


def our_dry_init(ruleset: RuleSet, root: bytes = b"", limit: str | None = None) -> dict[bytes, bytes]:
    """What `aide --dry-init` prints, from aidepy: walk from `root` (the root prefix)."""
    limit_bytes = limit.encode() if limit else None
    limit_rx = Regex(limit_bytes) if limit_bytes else None
    lines: dict[bytes, bytes] = {}

    def visit(path: bytes, ftype: str) -> bool:
        """Record the line for `path`; whether to enter it (for a directory)."""
        if limit_rx is not None and limit_bytes is not None:
            m = limit_rx.match(path)
            if m is not Match.FULL:
                lines[path] = b"[ ] %s '%s': outside of limit '%s'" % (ftype.encode(), path, limit_bytes)
                return m is Match.PARTIAL
        line = text_line(ftype, path, ruleset.decide(path, ftype))
        printed = _PATH.match(line)
        assert printed, line
        lines[printed.group(1)] = line  # keyed as aide prints it
        return ruleset.should_descend(path)

    visit(b"/", "d")
    stack = [b"/"]
    while stack:
        directory = stack.pop()
        with os.scandir(root + directory) as entries:
            for entry in entries:
                path = directory.rstrip(b"/") + b"/" + entry.name
                ftype = _TYPES[stat.S_IFMT(entry.stat(follow_symlinks=False).st_mode)]
                if visit(path, ftype) and ftype == "d":
                    stack.append(path)
    return lines


def assert_same_decisions(ours: dict[bytes, bytes], theirs: dict[bytes, bytes]) -> None:
    """Same entries met, same line for each; a short, readable diff otherwise."""
    only_ours = sorted(ours.keys() - theirs.keys())
    only_theirs = sorted(theirs.keys() - ours.keys())
    different = [(theirs[p], ours[p]) for p in sorted(ours.keys() & theirs.keys()) if ours[p] != theirs[p]]
    assert not only_ours, f"aidepy enters/meets, aide does not: {only_ours[:10]}"
    assert not only_theirs, f"aide meets, aidepy does not: {only_theirs[:10]}"
    assert not different, "aide vs aidepy:\n" + "\n".join(
        f"  {a!r}\n  {b!r}" for a, b in different[:8])


# --- generating trees from the rules -------------------------------------------------------

_POSIX = {b"alnum": b"a-zA-Z0-9", b"alpha": b"a-zA-Z", b"digit": b"0-9", b"xdigit": b"0-9A-Fa-f",
          b"lower": b"a-z", b"upper": b"A-Z", b"space": b" ", b"punct": b"!-", b"word": b"a-zA-Z0-9_",
          b"print": b" -~", b"graph": b"!-~", b"blank": b" "}


def _python_pattern(regex: bytes) -> Any:
    """Parse a (PCRE) rule regex with Python's parser for generating samples; None if it can't."""
    text = re.sub(rb"\[:(\w+):\]", lambda m: _POSIX.get(m.group(1), b"a"), regex)
    text = re.sub(rb"\\Q(.*?)(\\E|$)", lambda m: re.escape(m.group(1)), text)
    try:
        return sre_parse.parse(text)
    except (re.error, OverflowError):
        return None


def _class_byte(items: Any, variant: int) -> int:
    negate = any(str(op) == "NEGATE" for op, _ in items)
    members: list[int] = []
    for op, av in items:
        name = str(op)
        if name == "LITERAL":
            members.append(av)
        elif name == "RANGE":
            members.extend(range(av[0], av[1] + 1))
        elif name == "CATEGORY":
            members.extend(b"0123456789" if "NOT" not in str(av) and "DIGIT" in str(av) else b"w_")
    if negate:
        return next(c for c in b"qZ7_-x" if c not in members)
    printable = [c for c in members if 0x20 < c < 0x7F and c != 0x2F] or members or [0x61]
    return printable[variant % len(printable)]


def _sample(items: Any, variant: int, groups: dict[int, bytes]) -> bytes:
    out = bytearray()
    for op, av in items:
        name = str(op)
        if name == "LITERAL":
            out.append(av)
        elif name == "NOT_LITERAL":
            out.append(0x71 if av != 0x71 else 0x72)
        elif name == "ANY":
            out += b"a" if variant % 2 == 0 else b"Z"
        elif name == "IN":
            out.append(_class_byte(av, variant))
        elif name == "BRANCH":
            out += _sample(av[1][variant % len(av[1])], variant // 2, groups)
        elif name == "SUBPATTERN":
            text = _sample(av[-1], variant, groups)
            if av[0] is not None:
                groups[av[0]] = text
            out += text
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = av
            count = low if variant % 3 == 0 else min(low + 1, high)
            for _ in range(count):
                out += _sample(sub, variant, groups)
        elif name == "GROUPREF":
            out += groups.get(av, b"")
        elif name == "CATEGORY":
            out += b"5" if str(av).endswith("_DIGIT") and "NOT" not in str(av) else b"w"
        elif name == "ATOMIC_GROUP":
            out += _sample(av, variant, groups)
    return bytes(out)


def samples(regex: str, variants: int = 3) -> set[bytes]:
    """A few paths the rule's regex matches (or nearly): different branches and repeat counts."""
    parsed = _python_pattern(regex.encode("utf-8", "surrogateescape"))
    found: set[bytes] = set()
    if parsed is None:
        return found
    for variant in range(variants):
        path = _sample(list(parsed), variant, {}).rstrip(b"/")
        parts = path.split(b"/")[1:]
        if (path.startswith(b"/") and parts and all(parts) and b"\0" not in path
                and not {b".", b".."} & set(parts) and max(map(len, parts)) < 200 and len(path) < 400):
            found.add(path)
    return found


def tree_spec(rules: Iterable[Rule], extra: Iterable[tuple[bytes, str]] = (), wrong_types: bool = False
              ) -> dict[bytes, str]:
    """path -> file type for a tree holding sample paths of every rule and their neighbours.

    Restricted rules get their type (or, with wrong_types, a type they do not admit); every
    sample also gets siblings (`x` appended, `.old`) and, for some, a child, so that anchors,
    partial matches and parent-directory negatives are all exercised.
    """
    cycle = "fdlpsfcb"
    spec: dict[bytes, str] = {}
    for number, rule in enumerate(rules):
        types = sorted(rule.file_types or ())
        if types and wrong_types:
            wanted = next(t for t in cycle[number % 8:] + cycle if t not in types)
        else:
            wanted = types[number % len(types)] if types else cycle[number % 8]
        for path in sorted(samples(rule.regex)):
            spec.setdefault(path, wanted)
            spec.setdefault(path + b"x", cycle[(number + 1) % 8])
            spec.setdefault(path + b".old", "f")
            if number % 3 == 0:
                spec[path] = "d"
                spec.setdefault(path + b"/child", cycle[(number + 2) % 8])
    spec.update(extra)
    for path in list(spec):  # every ancestor is a directory
        cut = path.rfind(b"/")
        while cut > 0:
            spec[path[:cut]] = "d"
            cut = path.rfind(b"/", 0, cut)
    return spec


def build_tree(root: Path, spec: dict[bytes, str]) -> None:
    """Create the entries of `spec` below `root` (devices only as root; else regular files)."""
    base = os.fsencode(root)
    for path in sorted(spec, key=lambda p: p.count(b"/")):
        full = base + path
        ftype = spec[path]
        if ftype == "d":
            os.makedirs(full, exist_ok=True)
        elif ftype == "l":
            os.symlink(b"target", full)
        elif ftype == "p":
            os.mkfifo(full)
        elif ftype == "s":
            os.mknod(full, stat.S_IFSOCK | 0o600)
        elif ftype in "cb" and os.geteuid() == 0:
            os.mknod(full, (stat.S_IFCHR if ftype == "c" else stat.S_IFBLK) | 0o600, os.makedev(1, 3))
        else:
            with open(full, "wb"):
                pass


@pytest.fixture
def tree_root(tmp_path: Path) -> Iterator[Path]:
    """An empty directory for a generated tree, on tmpfs when there is one (thousands of entries)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        root = Path(tempfile.mkdtemp(prefix="aidepy-oracle-", dir=shm))
        yield root
        shutil.rmtree(root)
    else:
        root = tmp_path / "root"
        root.mkdir()
        yield root


def check_generated_tree(root: Path, config: Path, extra: Iterable[tuple[bytes, str]] = (),
                         wrong_types: bool = False) -> Counter[str]:
    """Build a tree from the config's rules, compare aide's and aidepy's dry-init; how many
    entries aide met, by kind of decision (`selective rule`, `equal rule`, `negative rule`...),
    and how many it did not meet (`pruned`: inside directories it did not enter)."""
    prefix = f"root_prefix={root}"
    cfg = load(config, [prefix])
    spec = tree_spec(cfg.rules, extra, wrong_types)
    build_tree(root, spec)
    theirs = aide_dry_init(config, prefix)
    ours = our_dry_init(cfg.ruleset, os.fsencode(root))
    assert_same_decisions(ours, theirs)
    kinds: Counter[str] = Counter()
    for line in theirs.values():
        m = _PATH.match(line)
        assert m, line
        kinds[m.group(2).decode()] += 1
    kinds["pruned"] = len(spec) + 1 - len(theirs)  # the root is not in the spec
    return kinds


# --- configs -------------------------------------------------------------------------------

INTERACTIONS_CONF = r"""# rule interactions: regular, equal, negative, restrictions, depth, order
database_out=file:/dev/null
Base = p+u+g+ftype
Sums = sha256+sha512+tiger
/ 0 Base
/etc Base+Sums
/etc/ssh/ f Base+i
/etc/ssh/ssh_host_[^/]+_key$ f Base+sha512
=/etc/ssh/moduli$ Base+m
!/etc/ssh/.*\.bak$
!/etc/cron\.d$
/etc/cron\.d/keep$ f R
/var/log/ Base
=/var/log/ p+u
=/var/log/apt$ d L
!/var/log/journal$ d
/var/log/journal/ f >
!/var/cache
/var/cache/keep$ f R
!/tmp/x$ d
/tmp/x/inner$ f H
/srv/[^/]+/htdocs/ f,l Base+md5
/srv/[^/]+/htdocs/private$ d,f L
!/srv/.*\.swp$ f
/home/[[:alnum:]_]+/\.ssh/authorized_keys2?$ f R+sha256
/opt/(app|tool)/(bin|lib)/ f,d,l Base
/opt/app|/usr/share/app f Base
!/opt/app/bin/debug$ 0
/usr/lib(32|64)?/x\.so(\.[0-9]+)*$ f Sums
/data/\Qa+b\E/ f Base
/dev/tty[[:digit:]]+$ c Base
!/dev/(sd|vd)[a-z]$ b
/run/.*\.pid$ f,p,s,b,c,l Base
/weird/a\.b/c$ f Base
/weird/a.b/d$ f Base
/weird/x\(y/z/w f Base
/weird/\\back$ f Base
/weird/sp\ ace$ f Base
/weird/tail\$ f Base
/weird/dollar$/x f Base
"""

GRAMMAR_CONF = r"""# every grammar feature
database_out=file:/dev/null
Sums = sha256+sha512
Base = p+u+g+ftype
Full = Base+n+i+s+b+l+m+c+Sums+X
Full = Full+acl
Lite = Full-i-c-Sums+md5+rmd160+whirlpool+haval+gost+crc32+crc32b
@@define ETC etc
@@define NOTHING
/@@{ETC}/@@{NOTHING}app Full
/@@{ETC}/x$ f Lite
@@undef ETC
/var/@@{ETC}x f Full
/srv/@@{HOSTNAME}/ d,f Base
/srv/a@@{UNCLOSED/b f Full
@@if defined NOTHING
/if/yes f Base
@@else
/if/no f Base
@@endif
@@if not defined ETC
@@if exists /etc
/if/exists/ d,f Base
@@endif
@@endif
@@ifdef NOTHING
/ifdef f Base
@@endif
@@ifndef NOTHING
/ifndef f Base
@@else
/ifndef/else f Base
@@endif
@@ifhost @@{HOSTNAME}
/ifhost/ 0 Base
@@endif
@@ifnhost @@{HOSTNAME}
/ifnhost f Base
@@else
/ifnhost/else/ f Base
@@endif
/cont/line$	f   Base+s{ws}
@@include {d}/inc.conf
@@include {d}/snippets ^[0-9]+_[a-z]+$ /chroot
@@x_include_setenv AIDEPY_SUFFIX gen
@@x_include {d}/gen ^[0-9]+_[a-z]+$
"""


def grammar_config(directory: Path) -> Path:
    (directory / "inc.conf").write_text("Inc = p+sha256\n/included/ f,d Inc\n!/included/no$\n")
    snippets = directory / "snippets"
    snippets.mkdir()
    (snippets / "10_a").write_text("/a/ f Full\n!/a/tmp$\n=/a/eq$ Base\n")
    (snippets / "20_b").write_text(f"@@include {snippets} ^30_c$ /nested\n")
    (snippets / "30_c").write_text("=/c/ Base\n/c/d/ l Base\n")
    (snippets / "40_skipped.bak").write_text("/never f Full\n")
    gen = directory / "gen"
    gen.mkdir()
    script = gen / "10_script"
    script.write_text('#!/bin/sh\nprintf "/generated/%s/ f Base\\n!/generated/%s/no$\\n" '
                      '"$AIDEPY_SUFFIX" "$AIDEPY_SUFFIX"\n')
    script.chmod(0o755)
    config = directory / "grammar.conf"
    config.write_text(GRAMMAR_CONF.replace("{d}", str(directory)).replace("{ws}", "  \t"))
    return config


def interactions_config(directory: Path, catch_all: bool = True) -> Path:
    """The interactions config; without its `/ 0 Base` line, unselected directories get pruned."""
    config = directory / "interactions.conf"
    text = INTERACTIONS_CONF
    config.write_text(text if catch_all else text.replace("\n/ 0 Base\n", "\n# no catch-all\n"))
    return config


# Paths the samples may miss: each names the interaction it exercises.
HANDWRITTEN = [
    (b"/etc/ssh/moduli", "f"), (b"/etc/ssh/moduli/x", "f"),  # equal: only directly inside its node
    (b"/etc/ssh/sshd_config.bak", "f"), (b"/etc/ssh/ssh_host_rsa_key", "f"),
    (b"/etc/cron.d/keep", "f"), (b"/etc/cron.d/other", "f"),  # negative parent beats deeper rule
    (b"/var/log/syslog", "f"), (b"/var/log/apt/history.log", "f"), (b"/var/log/journal/x/y", "f"),
    (b"/var/cache/keep", "f"), (b"/var/cache/apt/pkgcache.bin", "f"),
    (b"/tmp/x/inner", "f"), (b"/tmp/xy", "d"),  # restricted negative: contents still selected
    (b"/srv/www/htdocs/private/a", "f"), (b"/srv/www/htdocs/.x.swp", "f"), (b"/srv/www/htdocs/l", "l"),
    (b"/home/al/.ssh/authorized_keys", "f"), (b"/home/al/.ssh/authorized_keys2", "f"),
    (b"/home/al-x/.ssh/authorized_keys", "f"),
    (b"/opt/app/bin/debug", "f"), (b"/opt/app/bin/run", "f"), (b"/opt/tool/lib/x", "l"),
    (b"/usr/share/app/x", "f"), (b"/usr/lib64/x.so.1.2", "f"), (b"/usr/lib/x.so", "f"),
    (b"/data/a+b/c", "f"), (b"/data/aab/c", "f"),
    (b"/run/a.pid", "p"), (b"/run/b.pid", "s"), (b"/run/sub/c.pid", "f"),
    (b"/weird/a.b/c", "f"), (b"/weird/aXb/c", "f"), (b"/weird/a.b/d", "f"), (b"/weird/aXb/d", "f"),
    (b"/weird/x(y/z/w", "f"), (b"/weird/\\back", "f"), (b"/weird/sp ace", "f"),
    (b"/weird/tail$", "f"), (b"/weird/dollar$/x", "f"),
    (b"/weird/ctl\x01name", "f"), (b"/weird/bytes\xff\xfe", "f"), (b"/weird/utf8\xc3\xa9", "f"),
    (b"/etc/app", "d"), (b"/etc/app/conf", "f"), (b"/etc/x", "f"), (b"/var/etcx", "f"),
    (b"/if/no", "f"), (b"/if/yes", "f"), (b"/if/exists/a", "f"), (b"/ifhost/a", "f"),
    (b"/ifnhost/else/a", "f"), (b"/cont/line", "f"), (b"/included/no", "f"), (b"/included/yes", "f"),
    (b"/chroot/a/tmp", "d"), (b"/chroot/a/tmp/x", "f"), (b"/chroot/a/eq", "f"),
    (b"/chroot/nested/c/x", "f"), (b"/chroot/nested/c/d/l", "l"), (b"/never", "f"),
    (b"/generated/gen/no", "f"), (b"/generated/gen/yes", "f"),
]


# --- the tests -----------------------------------------------------------------------------

@needs_debian_conf
def test_debian_config_on_the_live_file_system() -> None:
    limit = "/(etc|usr/s?bin|var/(lib/dpkg|log|spool|backups|mail)|dev|run|boot|srv|home)(/|$)"
    before = aide_dry_init(DEBIAN_CONF, limit=limit)
    ours = our_dry_init(load(DEBIAN_CONF).ruleset, limit=limit)
    after = aide_dry_init(DEBIAN_CONF, limit=limit)
    assert len(before) > 2000
    # the same line for every entry both met (entries are judged by the type aide saw)
    different = [(before[p], ours[p]) for p in before.keys() & ours.keys() if before[p] != ours[p]]
    assert not different, different[:8]
    # the same entries met, where files rarely come and go; an entry that came or went while
    # the test ran is met by one of aide's walks only
    stable = re.compile(rb"^/(etc|usr/s?bin|boot|var/lib/dpkg)(/|$)")
    met = {p for p in ours if stable.match(p)}
    assert {p for p in before.keys() & after.keys() if stable.match(p)} <= met
    assert met <= {p for p in before.keys() | after.keys() if stable.match(p)}


@needs_debian_conf
@pytest.mark.parametrize("wrong_types", [False, True], ids=["restricted-types", "other-types"])
def test_debian_config_on_a_tree_generated_from_its_rules(tree_root: Path, wrong_types: bool) -> None:
    kinds = check_generated_tree(tree_root, DEBIAN_CONF, wrong_types=wrong_types)
    assert kinds["selective rule"] > 2000 and kinds["negative rule"] > 100


SHIPPED = sorted((Path(__file__).resolve().parent.parent / "rules").glob("*.conf"))


@pytest.mark.parametrize("config", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_rules_on_a_tree_generated_from_them(tree_root: Path, config: Path) -> None:
    kinds = check_generated_tree(tree_root, config)
    assert kinds["selective rule"] > 20 and kinds["negative rule"] > 0


@pytest.mark.parametrize("catch_all", [True, False], ids=["with-catch-all", "pruned"])
@pytest.mark.parametrize("wrong_types", [False, True], ids=["restricted-types", "other-types"])
def test_rule_interactions_on_a_generated_tree(tmp_path: Path, tree_root: Path, wrong_types: bool,
                                               catch_all: bool) -> None:
    config = interactions_config(tmp_path, catch_all)
    kinds = check_generated_tree(tree_root, config, HANDWRITTEN, wrong_types)
    assert sum(kinds.values()) > 150
    assert {"selective rule", "equal rule", "negative rule"} <= kinds.keys()
    assert ("no matching rule" in kinds) is not catch_all
    assert kinds["pruned"] > 0  # negative rules prune even under a catch-all


@pytest.mark.parametrize("wrong_types", [False, True], ids=["restricted-types", "other-types"])
def test_grammar_features_on_a_generated_tree(tmp_path: Path, tree_root: Path, wrong_types: bool) -> None:
    config = grammar_config(tmp_path)
    kinds = check_generated_tree(tree_root, config, HANDWRITTEN, wrong_types)
    assert sum(kinds.values()) > 100
    assert {"selective rule", "equal rule", "negative rule", "no matching rule"} <= kinds.keys()
    assert kinds["pruned"] > 0


@pytest.mark.parametrize("query", [
    "f:/etc/ssh/ssh_host_rsa_key", "d:/var/log/apt", "f:/var/log/syslog", "f:/etc/ssh/x.bak",
    "f:/etc/cron.d/keep", "d:/tmp/x", "f:/nowhere/x", "f:/weird/ctl\x01name", "l:/srv/w/htdocs/l",
])
def test_path_check_prints_what_aide_p_prints(tmp_path: Path, query: str,
                                               capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    config = interactions_config(tmp_path)
    expected = aide_path_check(config, query)
    code = main(["path-check", "-c", str(config), query])
    assert capsysbinary.readouterr().out.rstrip(b"\n") == expected
    assert code == (0 if expected.startswith(b"[X]") else 1)


def test_path_check_prints_rule_prefix_like_aide(tmp_path: Path,
                                                  capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    config = grammar_config(tmp_path)
    queries = ["f:/chroot/a/x", "d:/chroot/nested/c/d", "f:/chroot/a/tmp/x"]
    expected = b"\n".join(aide_path_check(config, q) for q in queries)
    main(["path-check", "-c", str(config), *queries])
    assert capsysbinary.readouterr().out.rstrip(b"\n") == expected
    assert b"prefix: '/chroot'" in expected


@needs_debian_conf
def test_path_check_json_agrees_with_aide_p_on_debian_config(capsys: pytest.CaptureFixture[str]) -> None:
    queries = ["f:/etc/passwd", "d:/proc", "f:/var/log/dpkg.log.2.gz", "c:/dev/nvram"]
    main(["path-check", "--json", "-c", str(DEBIAN_CONF), *queries])
    answers = json.loads(capsys.readouterr().out)
    for query, answer in zip(queries, answers, strict=True):
        line = aide_path_check(DEBIAN_CONF, query)
        assert answer["type"] == query[0] and answer["path"] == query[2:]
        assert answer["selected"] == line.startswith(b"[X]")
        origin = re.search(rb"\((\S+:\d+): '", line)
        assert answer["rule"] == (origin.group(1).decode() if origin else None)
        m = _ATTRS.match(line)
        assert answer["attributes"] == (m.group(2).decode().split("+") if m and m.group(2) else [])


_FRAGMENTS = ["etc", "ssh", "moduli", "cron.d", "keep", "var", "log", "apt", "journal", "cache", "tmp",
              "x", "inner", "srv", "htdocs", "private", ".swp", "home", "al", ".ssh", "authorized_keys", "2",
              "opt", "app", "bin", "debug", "usr", "lib64", "x.so", ".1", "data", "a+b", "dev", "tty1", "sda",
              "run", "a.pid", "weird", "a.b", "aXb", "x(y", "\\back", "sp ace", "tail$", "\n", "//", "$",
              "\xff"]


def test_odd_paths_decide_like_aide_p(tmp_path: Path) -> None:
    """Paths no tree holds (`//`, a trailing `/`, newlines, bytes) built from the rules' words."""
    config = interactions_config(tmp_path, catch_all=False)
    ruleset = load(config).ruleset
    rng = random.Random(7)
    for _ in range(120):
        path = "/" + "".join(rng.choice([*_FRAGMENTS, "/", "/", "/"]) for _ in range(rng.randint(1, 7)))
        ftype = rng.choice("fdlcbps")
        raw = os.fsencode(path)
        assert text_line(ftype, raw, ruleset.decide(raw, ftype)) == aide_path_check(config, f"{ftype}:{path}")


def test_path_check_before_and_after_lines_like_aide(tmp_path: Path,
                                                     capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    config = interactions_config(tmp_path)
    extra = ["-B", "G = p+u", "-B", "/extra/x G", "-A", "!/extra/y/z$", "-A", "/extra/y/ f u"]
    queries = ["f:/extra/x", "f:/extra/y/z", "f:/extra/y/a", "d:/extra/y/a"]
    expected = []
    for query in queries:
        out = subprocess.run(["aide", "-c", str(config), *extra, "-p", query], capture_output=True,
                             check=False, stdin=subprocess.DEVNULL).stdout
        expected.append(normalise(out.rstrip(b"\n")))
    assert main(["path-check", "-c", str(config), *extra, *queries]) == 1
    assert capsysbinary.readouterr().out.rstrip(b"\n").split(b"\n") == expected
    assert b"(--before):2: '/extra/x G'" in expected[0]
