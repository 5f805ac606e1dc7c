"""aidepy reads configs exactly as Debian's `aide` 0.18.3 does: same rules, same attributes.

`aide -D -L rule` prints the rule tree it built: every rule with its regex (macros substituted,
rule prefix applied), restriction, attributes and FILE:LINE. The rules aidepy evaluates must
be the same, except the hash algorithms aidepy cannot compute (dropped, with a warning).
Also: Debian's full config (~210 snippets) passes `aidepy config-check`, and so do the shipped
rule sets, which `aide -D` accepts too.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from aidepy.cli import main
from aidepy.config.evaluate import UNSUPPORTED_HASHES, Config, load

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "rules"
DEBIAN_CONF = Path("/etc/aide/aide.conf")
needs_aide = pytest.mark.skipif(shutil.which("aide") is None, reason="Debian's aide is not installed")

RuleKey = tuple[str, str, str, frozenset[str], frozenset[str]]
_TREE_LINE = re.compile(r"^\s*RULE: [│┝ ]*\s*'(.*)' \((.+?):(\d+): '")
_KINDS = {"=": "equal", "!": "negative"}


def aide_rules(config: Path, *before: str) -> list[RuleKey]:
    """(origin, kind, regex, file types, attributes) of every rule in aide's rule tree."""
    args = ["aide", "-D", "-L", "rule", "-c", str(config)]
    for line in before:
        args += ["-B", line]
    out = subprocess.run(args, capture_output=True, text=True, check=True, errors="surrogateescape",
                         stdin=subprocess.DEVNULL).stderr
    rules: list[RuleKey] = []
    for line in out.splitlines():
        m = _TREE_LINE.match(line)
        if not m:
            continue
        body, file, number = m.groups()
        kind = _KINDS.get(body[0], "regular")
        if body[0] in _KINDS:
            body = body[1:]
        if kind == "negative":
            regex, restriction = body.rsplit(" ", 1)
            attrs = ""
        else:
            regex, restriction, attrs = body.rsplit(" ", 2)
        types = frozenset() if restriction == "(none)" else frozenset(restriction.split(","))
        names = frozenset(attrs.split("+")) - {""} - UNSUPPORTED_HASHES
        rules.append((f"{file}:{number}", kind, regex, types, names))
    return sorted(rules)


def our_rules(cfg: Config) -> list[RuleKey]:
    return sorted((r.origin, r.kind.value, r.regex, r.file_types or frozenset(), r.attrs)
                  for r in cfg.rules)


GRAMMAR_CONF = r"""# every grammar feature, fed to both aide and aidepy
database_in=file:/var/lib/aidepy/test.db
report_ignore_e2fsattrs = VNIE
Sums = sha256+sha512
Base = p+u+g+ftype
Full = Base+n+i+s+b+l+m+c+Sums+X
Full = Full+acl
Weird_Name = Full-i-c
NoHash = R-md5
/etc Full
/etc/ssh/ssh_host_.*_key$ f Full+a
=/srv/ d,f Base
=/opt$ Base
!/var/cache/apt/.*\.bin$ f
!/var/tmp
/var/log/syslog$ f >
/var/log/(kern|auth)\.log$ f Base+growing+s+ANF+ARF+I
/var/log/.*\.gz$ f,l NoHash+compressed+sha256
/root/\\.bashrc$ 0 Weird_Name
/root/\.profile$ 0,f L+sha1+rmd160+crc32+crc32b+md5
/root/x\ y/z\@w$ f E+p
/home/[^/]+/\.ssh$ d X+p
/usr/(s)?bin/[[:alnum:]_-]+$ f R+H
@@define WHERE usr/local
@@define NOTHING
/@@{WHERE}/bin@@{NOTHING} f Full
@@undef WHERE
/opt/@@{WHERE}x f Full
/srv/@@{HOSTNAME}/data f Full
/srv/a@@{UNCLOSED/b f Full
@@if defined NOTHING
/if/defined f Base
@@else
/if/else f Base
@@endif
@@if not defined WHERE
@@if exists /etc
/if/exists f Base
@@endif
@@if hostname @@{HOSTNAME}
/if/host f Base
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
/ifhost f Base
@@endif
@@ifnhost @@{HOSTNAME}
/ifnhost f Base
@@else
/ifnhost/else f Base
@@endif
@@include {d}/inc.conf
@@include {d}/snippets ^[0-9]+_[a-z]+$ /chroot/
@@x_include_setenv AIDEPY_TEST_SUFFIX gen
@@x_include {d}/gen ^[0-9]+_[a-z]+$
"""


def _grammar_tree(directory: Path) -> Path:
    (directory / "inc.conf").write_text("Inc = p+sha256\n/included f Inc\n")
    snippets = directory / "snippets"
    snippets.mkdir()
    (snippets / "10_a").write_text("/a f Full\n!/a/tmp\n")
    (snippets / "20_b").write_text(f"@@include {snippets} ^30_c$ /nested\n")
    (snippets / "30_c").write_text("=/c$ Base\n")
    (snippets / "40_skipped.bak").write_text("/never f Full\n")
    gen = directory / "gen"
    gen.mkdir()
    gen.chmod(0o755)
    script = gen / "10_script"
    script.write_text('#!/bin/sh\nprintf "/generated/%s f Base\\n" "$AIDEPY_TEST_SUFFIX"\n')
    script.chmod(0o755)
    (gen / "20_plain").write_text("/plain/in/x_include_dir f Base\n")
    config = directory / "grammar.conf"
    config.write_text(GRAMMAR_CONF.replace("{d}", str(directory)))
    return config


@needs_aide
def test_grammar_features_evaluate_like_aide(tmp_path: Path) -> None:
    config = _grammar_tree(tmp_path)
    ours = our_rules(load(config))
    assert ours == aide_rules(config)
    regexes = {rule[2] for rule in ours}
    assert {"/chroot/a", "/chroot/nested/c$", f"/srv/{socket.gethostname()}/data", "/generated/gen",
            "/if/defined", "/ifndef/else", "/root/x y/z@w$", "/srv/a@@{UNCLOSED/b"} <= regexes


@needs_aide
@pytest.mark.skipif(not DEBIAN_CONF.exists(), reason="Debian's /etc/aide/aide.conf is not installed")
def test_debian_config_evaluates_like_aide() -> None:
    ours = our_rules(load(DEBIAN_CONF))
    assert len(ours) > 500
    assert ours == aide_rules(DEBIAN_CONF)


@pytest.mark.skipif(not DEBIAN_CONF.exists(), reason="Debian's /etc/aide/aide.conf is not installed")
def test_debian_config_passes_config_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config-check", "-c", str(DEBIAN_CONF)]) == 0
    out = capsys.readouterr().out
    read = re.search(r"^files read: (\d+)$", out, re.M)
    assert read, out
    files = int(read.group(1))
    assert files > 200
    assert "ignoring unsupported hash algorithm(s): tiger+haval+gost+whirlpool" in out
    assert "ignored option: /etc/aide/aide.conf:" in out


SHIPPED = sorted(RULES.glob("*.conf"))


@pytest.mark.parametrize("config", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_rules_pass_config_check(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config-check", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "rules: " in out
    assert "warning:" not in out  # shipped rules use only what aidepy computes


@needs_aide
@pytest.mark.parametrize("config", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_rules_are_read_by_aide_the_same_way(config: Path) -> None:
    assert our_rules(load(config)) == aide_rules(config)


PROBES = [
    "f:/etc/passwd", "f:/etc/resolv.conf", "f:/etc/ssh/sshd_config~", "d:/root", "f:/root/.bash_history",
    "f:/usr/bin/ls", "f:/proc/cpuinfo", "d:/var/log", "f:/var/log/syslog", "f:/var/log/syslog.3.gz",
    "f:/var/log/mail.log", "f:/var/log/nginx/access.log", "f:/var/lib/dpkg/status",
    "d:/var/spool/postfix/maildrop", "f:/var/spool/postfix/maildrop/4F2A1",
    "s:/var/spool/postfix/private/smtp", "f:/etc/postfix/transport.db", "f:/var/lib/clamav/main.cvd",
    "f:/var/mail/root", "f:/var/lib/postgrey/x.db",
    "f:/home/al/.ssh/authorized_keys", "f:/home/al/Maildir/new/1",
]
_DECISION = re.compile(r"^\[(X| )\] \S+ '.*': "
                       r"(?:(?:selective|equal) rule: '.*' \((.+?):(\d+): '|negative|no matching)")


@needs_aide
@pytest.mark.parametrize("config", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_rules_select_like_aide(config: Path) -> None:
    ruleset = load(config).ruleset
    for probe in PROBES:
        ftype, path = probe.split(":", 1)
        out = subprocess.run(["aide", "-p", probe, "-c", str(config)], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, check=False).stdout
        m = _DECISION.match(out)
        assert m, out
        expected = f"{m.group(2)}:{m.group(3)}" if m.group(1) == "X" else None
        rule = ruleset.match(path.encode(), ftype)
        assert (rule.origin if rule else None) == expected, probe
