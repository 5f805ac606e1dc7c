"""Selection as AIDE decides it: each interaction of regular, equal and negative rules, type
restrictions, regex anchoring and oddities, and directory pruning (rules built directly)."""

from __future__ import annotations

import pytest

from aidepy.attributes import attrset
from aidepy.pcre import Match, Regex
from aidepy.selection import Literal, MatchResult, Rule, RuleKind, RuleSet, literal, node_path


def rules(*specs: str) -> RuleSet:
    """A RuleSet from lines like `=/var/log/ f,d p+u`, `!/tmp$ d`, `/etc 0 p` (origin t:N)."""
    built = []
    for number, spec in enumerate(specs, start=1):
        kind = {"=": RuleKind.EQUAL, "!": RuleKind.NEGATIVE}.get(spec[0], RuleKind.REGULAR)
        regex, *rest = spec.lstrip("=!").split(" ")
        types = None
        if (kind is RuleKind.NEGATIVE and rest) or len(rest) == 2:
            types = None if rest[0] == "0" else frozenset(rest[0].split(","))
        attrs = attrset(rest[-1]) if kind is not RuleKind.NEGATIVE else frozenset()
        built.append(Rule(kind, regex, types, attrs, f"t:{number}", spec))
    return RuleSet(built)


def origin(rs: RuleSet, path: str, ftype: str = "f") -> str | None:
    """The FILE:LINE of the rule behind the decision (selecting or excluding), or None."""
    rule = rs.decide(path.encode(), ftype).rule
    return rule.origin if rule else None


def selected(rs: RuleSet, path: str, ftype: str = "f") -> bool:
    return rs.match(path.encode(), ftype) is not None


# --- regular rules, anchoring, which rule wins ---------------------------------------------

def test_regular_rule_is_anchored_at_the_start_only() -> None:
    rs = rules("/etc p")
    assert selected(rs, "/etc") and selected(rs, "/etc/passwd") and selected(rs, "/etcetera")
    assert not selected(rs, "/usr/etc") and not selected(rs, "/")


def test_dollar_anchors_the_end_and_also_matches_before_a_final_newline() -> None:
    rs = rules("/etc/passwd$ p")
    assert selected(rs, "/etc/passwd") and selected(rs, "/etc/passwd\n")
    assert not selected(rs, "/etc/passwd-") and not selected(rs, "/etc/passwd\nx")


def test_first_rule_in_config_order_wins_inside_a_node() -> None:
    rs = rules("/etc/ p", "/etc/passwd$ sha256")  # both hang on /etc
    matched = rs.match(b"/etc/passwd", "f")
    assert matched == rs.rules[0]
    assert matched is not None and matched.attrs == attrset("p")


def test_deepest_node_wins_over_an_earlier_rule_on_a_shallower_node() -> None:
    rs = rules("/ p", "/etc/ssh/ u", "/etc/ g")
    assert origin(rs, "/etc/ssh/sshd_config") == "t:2"
    assert origin(rs, "/etc/hosts") == "t:3"
    assert origin(rs, "/etc/ssh") == "t:3"  # `/etc/ssh/` hangs on /etc/ssh, below /etc/ssh itself
    assert origin(rs, "/usr/bin/ls") == "t:1"


def test_rules_hang_on_the_literal_directory_part_of_their_regex() -> None:
    assert node_path(b"/var/log/.*\\.gz$") == b"/var/log"
    assert node_path(b"/etc/foo\\.d/x") == b"/etc/foo.d"  # escapes are taken literally
    assert node_path(b"/etc") == b"/"
    assert node_path(b"/etc/") == b"/etc"
    assert node_path(b"/home/[^/]+/x") == b"/home"
    assert node_path(b"/a.b/c") == b"/a.b"  # `.` does not end the literal part
    assert node_path(b"/etc|/usr/bin") == b"/etc|/usr"  # nor does `|`
    assert node_path(b"/usr/lib(32|64)?/x") == b"/usr"


def test_a_rule_only_applies_below_the_node_it_hangs_on() -> None:
    # AIDE's quirk: `/a.b/c` hangs on the literal node /a.b, so /aXb/c never tests it
    rs = rules("/a.b/c p", "/etc|/usr/bin u", "/(etc|usr/bin) g")
    assert selected(rs, "/a.b/c") and not selected(rs, "/aXb/c")
    assert origin(rs, "/usr/bin/ls") == "t:3"  # the `|` rule hangs on "/etc|/usr", never reached


def test_a_node_under_an_escaped_special_character_is_never_found() -> None:
    rs = rules("/a/b\\(c/d/x p", "/a/ u")
    assert origin(rs, "/a/b(c/d/x") == "t:2"


# --- equal rules ---------------------------------------------------------------------------

def test_equal_rule_selects_only_paths_directly_inside_its_node() -> None:
    rs = rules("=/var/log/ p", "=/etc$ u")
    assert selected(rs, "/var/log/syslog") and selected(rs, "/etc", "d")
    assert not selected(rs, "/var/log/apt/history.log")  # the regex matches, but one level too deep
    assert not selected(rs, "/etc/passwd")


def test_equal_rule_beats_a_regular_rule_listed_before_it() -> None:
    rs = rules("/var/log/ p", "=/var/log/ u")
    decision = rs.decide(b"/var/log/syslog", "f")
    assert decision.result is MatchResult.EQUAL and decision.rule is rs.rules[1]
    assert rs.decide(b"/var/log/apt/x", "f").rule is rs.rules[0]  # too deep for the equal rule


def test_equal_rule_beats_a_deeper_regular_rule() -> None:
    rs = rules("=/etc/ p", "/etc/ssh u")  # both hang on /etc
    assert rs.decide(b"/etc/ssh", "d").result is MatchResult.EQUAL


# --- negative rules ------------------------------------------------------------------------

def test_negative_rule_beats_positive_rules_regardless_of_order_and_depth() -> None:
    rs = rules("!/etc/.*~$", "/etc/ p", "/etc/ssh/ u")
    assert origin(rs, "/etc/passwd~") == "t:1" and not selected(rs, "/etc/passwd~")
    assert not selected(rs, "/etc/ssh/sshd_config~")
    assert selected(rs, "/etc/ssh/sshd_config")


def test_negative_rule_on_a_directory_excludes_everything_inside_it() -> None:
    rs = rules("!/var/log$", "/var/log/important$ p", "/var/ u")
    assert not selected(rs, "/var/log", "d")
    assert not selected(rs, "/var/log/important")  # the parent directory is excluded
    assert origin(rs, "/var/log/important") == "t:1"
    assert selected(rs, "/var/logs")
    # AIDE still enters /var/log (a rule hangs there) but finds nothing to add
    assert rs.should_descend(b"/var/log")


def test_negative_rule_excludes_descendants_of_deeper_nodes_too() -> None:
    rs = rules("!/srv/data$", "/srv/data/keep/ p")
    assert not selected(rs, "/srv/data/keep/file")


def test_negative_rule_does_not_see_through_the_file_it_matches() -> None:
    rs = rules("!/tmp/x$", "/tmp p")
    assert not selected(rs, "/tmp/x") and selected(rs, "/tmp/xy") and not selected(rs, "/tmp/x/y")


# --- restricted rules ----------------------------------------------------------------------

def test_restricted_regular_rule_selects_only_its_file_types() -> None:
    rs = rules("/etc f,l p", "/etc u")
    assert origin(rs, "/etc/passwd", "f") == "t:1"
    assert origin(rs, "/etc/localtime", "l") == "t:1"
    assert origin(rs, "/etc/ssh", "d") == "t:2"  # the first rule does not apply: next one


def test_restricted_rule_of_the_wrong_type_is_a_partial_match_so_the_directory_is_entered() -> None:
    rs = rules("/srv/www f p")
    decision = rs.decide(b"/srv/www", "d")
    assert decision.result is MatchResult.PARTIAL and decision.rule is None
    assert rs.should_descend(b"/srv/www")


def test_restricted_negative_rule_excludes_only_that_type_and_not_the_contents() -> None:
    rs = rules("!/tmp/x$ d", "/tmp p")
    assert not selected(rs, "/tmp/x", "d") and origin(rs, "/tmp/x", "d") == "t:1"
    assert rs.decide(b"/tmp/x", "d").result is MatchResult.PARTIAL  # still entered
    assert selected(rs, "/tmp/x", "f")
    assert selected(rs, "/tmp/x/y")  # parents are only tested against unrestricted negatives


def test_empty_restriction_restricts_nothing() -> None:
    rs = RuleSet([Rule(RuleKind.REGULAR, "/etc", frozenset(), attrset("p"), "t:1", "/etc 0 p")])
    assert selected(rs, "/etc/x", "s")


# --- regex oddities: AIDE's PCRE2, bytes ---------------------------------------------------

def test_posix_classes_and_pcre_syntax_work() -> None:
    rs = rules("/dev/tty[[:digit:]]+$ c p", "/x/\\Qa.b\\E$ u")
    assert selected(rs, "/dev/tty12", "c") and not selected(rs, "/dev/ttyS0", "c")
    assert selected(rs, "/x/a.b") and not selected(rs, "/x/aXb")


def test_paths_are_bytes_a_dot_matches_one_byte_and_invalid_utf8_is_fine() -> None:
    rs = rules("/tmp/.$ p")
    assert not selected(rs, "/tmp/é")  # two bytes
    assert rs.match(b"/tmp/\xff", "f") is not None


def test_a_rule_set_refuses_a_bad_regex() -> None:
    with pytest.raises(ValueError):
        rules("/etc/(unclosed p")


@pytest.mark.parametrize(("regex", "expected"), [
    (b"/etc/passwd$", Literal(b"/etc/passwd", dollar=True)),
    (b"/boot/x\\.EFI$", Literal(b"/boot/x.EFI", dollar=True)),
    (b"/etc", Literal(b"/etc", whole=True)),
    (b"/etc/ssh?", Literal(b"/etc/ss")),
    (b"/etc/(a|b)", Literal(b"/etc/", after=frozenset(b"ab"))),
    (b"/(var/)?tmp/", Literal(b"/", after=frozenset(b"vt"))),
    (b"/etc/(?i)ab", Literal(b"/etc/")),  # PCRE2 reports one case only: no `after`
    (b"/etc/[^/]+x", Literal(b"/etc/")),
    (b"/etc/(x)?", Literal(b"/etc/")),  # may match nothing more
    (b"/etc|/usr", Literal(b"")),
    (b"/x\\d", Literal(b"/x", after=frozenset(b"0123456789"))),
])
def test_literal_part_of_a_regex(regex: bytes, expected: Literal) -> None:
    assert literal(regex) == expected


@pytest.mark.parametrize("regex", [
    "/etc/passwd$", "/etc", "/etc/", "/a\\.b$", "/etc/ssh?", "/e[t]c", "/x|/e", "/etc/(a|b)$", "/",
])
def test_shortcuts_decide_like_pcre(regex: str) -> None:
    rs = rules(f"{regex} p")
    expect = {Match.FULL: MatchResult.SELECTIVE, Match.PARTIAL: MatchResult.PARTIAL,
              Match.NONE: MatchResult.NONE}
    compiled = Regex(regex.encode())
    for path in ("/", "/e", "/etc", "/etc/", "/etc/passwd", "/etc/passwd\n", "/etc/passwdx", "/etc/a",
                 "/a.b", "/aXb", "/etc/ss", "/etc/ssh", "/x", "/etc/b"):
        node = node_path(regex.encode()).decode().rstrip("/") + "/"
        if not path.startswith(node) or path == node:
            continue  # the rule is only tested on paths below the node it hangs on
        assert rs.decide(path.encode(), "f").result is expect[compiled.match(path.encode())], path


# --- directory pruning ---------------------------------------------------------------------

def test_directory_holding_a_possible_match_is_entered_others_are_pruned() -> None:
    rs = rules("/home/[^/]+/\\.ssh/authorized_keys$ f sha256", "=/var/log$ p", "/opt/app/bin/ p")
    assert rs.should_descend(b"/")
    assert rs.should_descend(b"/home") and rs.should_descend(b"/home/al")  # partial matches
    assert rs.should_descend(b"/home/al/.ssh")
    assert not rs.should_descend(b"/srv") and not rs.should_descend(b"/home/al/docs")
    assert rs.should_descend(b"/var/log")  # equal match: entered (Debian's 0.18.3 fix)
    assert rs.should_descend(b"/opt") and rs.should_descend(b"/opt/app")  # nodes
    assert not rs.should_descend(b"/opt/other")


def test_negatively_matched_directory_without_node_is_pruned() -> None:
    rs = rules("/ p", "!/proc$", "!/tmp/cache$ d")
    assert not rs.should_descend(b"/proc")
    assert rs.should_descend(b"/tmp/cache")  # a restricted negative leaves a partial match
    assert rs.should_descend(b"/usr")


def test_empty_ruleset_selects_nothing_and_enters_only_the_root() -> None:
    rs = RuleSet([])
    assert rs.match(b"/", "d") is None and rs.match(b"/etc", "d") is None
    assert rs.should_descend(b"/") and not rs.should_descend(b"/etc")
