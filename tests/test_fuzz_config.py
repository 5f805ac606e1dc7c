"""Hostile config text: random, token-built and mutated configs are accepted or refused with a
`ConfigError` naming file and line (exit 17); nothing else escapes, nothing hangs.

Hypothesis runs derandomized (the same examples in every run, so CI is reproducible); each
example runs under a SIGALRM time limit, so a hang fails the test instead of stalling CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import time_limit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aidepy.config.evaluate import Config, load, parse_text
from aidepy.errors import ConfigError, ExitCode

FUZZ = settings(max_examples=600, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Pieces AIDE's lexer and aidepy's evaluator care about; no real file paths, so nothing random
# includes or executes a file of this machine.
TOKENS = [
    "/a", "=/b", "!/c", "/", " ", "\t", "\n", "\n", "\n", "p", "+", "-", ",", "f", "d", "l", "R", "L",
    "G1", "sha256", "xxhash", "S", "growing", "@@define", "@@undef", "@@ifdef", "@@ifndef", "@@if",
    "@@else", "@@endif", "@@ifhost", "@@ifnhost", "@@include", "@@x_include", "@@x_include_setenv",
    "@@{X}", "@@{", "}", "defined", "not", "exists", "hostname", "X", "=", " = ", "\\", "\\\\",
    "\\ ", "\\n", "#", "(", ")", ".*", "[", "]", "[[:alpha:]]", "*", "?", "{2,}", "|", "^", "$",
    "database_in", "database_out", "report_level", "report_url", "num_workers", "vault_device",
    "file:", "stdout", "summary", "=true", "=0", "=-1", "=99999999999999999999", "\r", "\x00",
    "\x1b[2J", "ä", "\udcff", "%", "0", "E", ">", "H", "X", "I", "ANF", "ARF", "acl", "xattrs",
]
VALID = """\
@@define MAIL postfix
G1 = p+i+n+u+g+s+m+c+sha256
Logs = p+u+g+i+n+S
report_level = changed_attributes
@@ifdef MAIL
/etc/@@{MAIL} G1
=/var/log$ d Logs
@@else
/etc R
@@endif
!/proc
/usr/bin f,l L+sha512-n
"""


def _accepted_or_refused(text: str) -> Config | None:
    """Parse `text`; a refusal must be a ConfigError naming a line of `text`."""
    with time_limit(10, f"parsing {text[:200]!r}"):
        try:
            return parse_text(text, "fuzz.conf")
        except ConfigError as exc:
            assert exc.exit_code == ExitCode.INVALID_CONFIG
            assert exc.reason
            assert exc.file == "fuzz.conf", exc  # no random text includes another file
            assert 0 <= exc.line <= text.count("\n") + 1, exc
            return None


@pytest.fixture(autouse=True)
def _in_empty_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Relative include paths resolve inside an empty directory, never in the checkout."""
    monkeypatch.chdir(tmp_path)
    yield


def test_the_seed_config_is_valid() -> None:
    config = _accepted_or_refused(VALID)
    assert config is not None
    assert [r.regex for r in config.rules] == ["/etc/postfix", "/var/log$", "/proc", "/usr/bin"]


@FUZZ
@given(st.text(max_size=400))
def test_random_text_is_read_or_refused(text: str) -> None:
    _accepted_or_refused(text)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=60))
def test_token_soup_is_read_or_refused(tokens: list[str]) -> None:
    config = _accepted_or_refused("".join(tokens))
    if config is not None:  # what was accepted is usable: accessors and matching do not crash
        for rule in config.rules:
            assert rule.origin.startswith("fuzz.conf:")
        config.ruleset.match(b"/a/b", "f")
        config.ruleset.should_descend(b"/a")
        assert len(config.digest) == 32


@FUZZ
@given(st.data())
def test_mutated_valid_config_is_read_or_refused(data: st.DataObject) -> None:
    text = VALID
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(text)))
        action = data.draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        piece = data.draw(st.sampled_from(TOKENS))
        if action == "insert":
            text = text[:at] + piece + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + data.draw(st.integers(1, 20)):]
        elif action == "replace":
            text = text[:at] + piece + text[at + len(piece):]
        else:
            text = text[:at] + text[at:at + 40] + text[at:]
    _accepted_or_refused(text)


@FUZZ
@given(st.binary(max_size=400))
def test_random_config_file_bytes_are_read_or_refused(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "fuzz.conf"
    path.write_bytes(raw)
    with time_limit(10, f"loading {raw[:200]!r}"):
        try:
            load(path)
        except ConfigError as exc:
            assert exc.file == str(path), exc
            assert exc.exit_code == ExitCode.INVALID_CONFIG


def test_deep_nesting_and_huge_expansions_are_bounded() -> None:
    depth = 10_000
    nested = "@@ifdef X\n" * depth + "/a p\n" + "@@endif\n" * depth
    config = _accepted_or_refused(nested)
    assert config is not None and config.rules == []
    # Macros doubling each other: 20 times expand to a 1 MiB regex (refused as too large), and
    # 40 times would need a TiB; refused when a value passes 1 MiB, not a MemoryError.
    doubling = "@@define A0 x\n" + "".join(f"@@define A{i} @@{{A{i - 1}}}@@{{A{i - 1}}}\n"
                                            for i in range(1, 41))
    with pytest.raises(ConfigError, match="@@define A21: value longer than 1048576 bytes") as info:
        parse_text(doubling, "fuzz.conf")
    assert info.value.line == 22
    small = doubling.split("@@define A21")[0]
    assert _accepted_or_refused(small + "/@@{A20} p\n") is None
    config = _accepted_or_refused("/" + "a" * 10_000 + " p\n")
    assert config is not None and len(config.rules[0].regex) == 10_001


def test_self_including_config_is_refused_not_looping(tmp_path: Path) -> None:
    config = tmp_path / "loop.conf"
    config.write_text(f"/a p\n@@include {config}\n")
    with time_limit(10, "self-include"), pytest.raises(ConfigError, match="nested too deeply"):
        load(config)


@settings(FUZZ, max_examples=200)
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_config_check_exits_0_or_17_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tokens: list[str],
) -> None:
    from aidepy.cli import main

    path = tmp_path / "fuzz.conf"
    path.write_text("".join(tokens), errors="surrogateescape")
    capsys.readouterr()
    with time_limit(10, "config-check"):
        code = main(["config-check", "-c", str(path)])
    err = capsys.readouterr().err
    assert code in (ExitCode.OK, ExitCode.INVALID_CONFIG), err
    if code == ExitCode.INVALID_CONFIG:
        assert "Traceback" not in err and err.startswith(f"aidepy: {path}:"), err
