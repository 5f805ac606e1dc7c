"""AIDE's regex engine as aidepy calls it: anchored PCRE2, bytes, soft partial matching."""

from __future__ import annotations

import threading

import pytest

from aidepy.pcre import Match, Regex, RegexError, first_bytes


def test_matches_are_anchored_at_the_start_and_partial_when_the_path_runs_out() -> None:
    rx = Regex(rb"/home/[^/]+/\.ssh$")
    assert rx.match(b"/home/al/.ssh") is Match.FULL
    assert rx.match(b"/home/al") is Match.PARTIAL  # a directory that may hold a match
    assert rx.match(b"/home") is Match.PARTIAL
    assert rx.match(b"/srv/home/al/.ssh") is Match.NONE
    assert rx.match(b"/home/al/.sshd") is Match.NONE


def test_a_full_match_wins_over_a_longer_partial_one() -> None:
    assert Regex(rb"/etc(/passwd)?").match(b"/etc/pa") is Match.FULL


def test_pcre_syntax_python_lacks() -> None:
    assert Regex(rb"/dev/tty[[:digit:]]+$").match(b"/dev/tty7") is Match.FULL
    assert Regex(rb"/a/\Q(x)\E$").match(b"/a/(x)") is Match.FULL
    assert Regex(rb"/a\h$").match(b"/a ") is Match.FULL


def test_subjects_are_bytes_not_utf8() -> None:
    assert Regex(rb"/t/.$").match("/t/é".encode()) is Match.NONE  # é is two bytes
    assert Regex(rb"/t/..$").match("/t/é".encode()) is Match.FULL
    assert Regex(rb"/t/.$").match(b"/t/\xff") is Match.FULL  # invalid UTF-8 is just a byte


def test_invalid_pattern_names_pcre_reason_and_offset() -> None:
    with pytest.raises(RegexError) as exc:
        Regex(rb"/etc/(x")
    assert exc.value.message == "missing closing parenthesis" and exc.value.offset == 7
    with pytest.raises(RegexError, match="unknown POSIX class"):
        Regex(rb"/a[[:nope:]]")


def test_threads_match_concurrently_without_mixing_results() -> None:
    patterns = [(Regex(rb"/a/[0-9]+$"), b"/a/123", b"/a/x"), (Regex(rb"/b/(x|y)z$"), b"/b/yz", b"/b/q")]
    failures: list[str] = []

    def work(rx: Regex, good: bytes, bad: bytes) -> None:
        for _ in range(3000):
            if rx.match(good) is not Match.FULL or rx.match(bad) is not Match.NONE:
                failures.append(repr(rx))
                return

    threads = [threading.Thread(target=work, args=p) for p in patterns * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_first_bytes_is_what_pcre_knows_a_match_starts_with() -> None:
    assert first_bytes(rb"(var/)?tmp") == frozenset(b"vt")
    assert first_bytes(rb"[0-9]+x") == frozenset(b"0123456789")
    assert first_bytes(rb"x?") is None  # may match the empty string
    assert first_bytes(rb".") is None  # any byte but newline: not worth a set
    assert first_bytes(rb"(unclosed") is None
