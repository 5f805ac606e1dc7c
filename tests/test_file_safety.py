"""Secrets and files: the signing key is private, rules nobody else can write, temp files beside
their target, and no external command ever goes through a shell string."""

from __future__ import annotations

import ast
import contextlib
import os
import stat
from pathlib import Path

import pytest

from aidepy import keys
from aidepy.config.evaluate import load
from aidepy.errors import ConfigError, ExitCode, KeyFileError

PACKAGE = Path(keys.__file__).parent


def test_signing_key_is_created_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        keys.generate_keypair(tmp_path / "signing.key", b"secret")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "signing.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "signing.key.pub").stat().st_mode) == 0o644


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644])
def test_signing_key_readable_or_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    key = tmp_path / "signing.key"
    keys.generate_keypair(key, None)
    key.chmod(mode)
    with pytest.raises(KeyFileError, match=f"mode {mode:04o}.*chmod 600") as info:
        keys.load_private_key(key, None)
    assert str(key) in str(info.value)


def test_key_generation_leaves_no_temp_file_and_never_replaces_a_key(tmp_path: Path) -> None:
    key = tmp_path / "signing.key"
    keys.generate_keypair(key, None)
    before = key.read_bytes()
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        keys.generate_keypair(key, None)
    assert key.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["signing.key", "signing.key.pub"]


@pytest.mark.parametrize("mode", [0o666, 0o664, 0o646])
def test_group_or_world_writable_config_is_refused_with_the_reason(tmp_path: Path, mode: int) -> None:
    config = tmp_path / "aidepy.conf"
    config.write_text("/etc p\n")
    config.chmod(mode)
    with pytest.raises(ConfigError, match=f"group- or world-writable \\(mode {mode:04o}\\)") as info:
        load(config)
    assert info.value.file == str(config)
    assert info.value.exit_code == ExitCode.INVALID_CONFIG


def test_world_writable_included_rules_file_is_refused_naming_it(tmp_path: Path) -> None:
    rules = tmp_path / "mail.rules"
    rules.write_text("/etc/postfix p\n")
    rules.chmod(0o666)
    config = tmp_path / "aidepy.conf"
    config.write_text(f"/etc p\n@@include {rules}\n")
    with pytest.raises(ConfigError, match="world-writable") as info:
        load(config)
    assert (info.value.file, info.value.line) == (str(config), 2)
    assert str(rules) in info.value.reason
    rules.chmod(0o644)
    assert [r.regex for r in load(config).rules] == ["/etc", "/etc/postfix"]


def test_world_writable_file_in_an_included_directory_is_refused(tmp_path: Path) -> None:
    snippets = tmp_path / "rules.d"
    snippets.mkdir()
    (snippets / "10_ok").write_text("/ok p\n")
    (snippets / "20_open").write_text("/open p\n")
    (snippets / "20_open").chmod(0o646)
    config = tmp_path / "aidepy.conf"
    config.write_text(f"@@include {snippets} ^[0-9]\n")
    with pytest.raises(ConfigError, match="20_open' is group- or world-writable"):
        load(config)


def test_world_writable_include_directory_is_refused(tmp_path: Path) -> None:
    snippets = tmp_path / "rules.d"
    snippets.mkdir()
    (snippets / "10_ok").write_text("/ok p\n")
    snippets.chmod(0o777)
    config = tmp_path / "aidepy.conf"
    config.write_text(f"@@include {snippets} ^[0-9]\n")
    with pytest.raises(ConfigError, match=r"rules\.d' is group- or world-writable \(mode 0777\)"):
        load(config)
    snippets.chmod(0o755)
    assert [r.regex for r in load(config).rules] == ["/ok"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root (runs as root in CI)")
def test_config_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "aidepy.conf"
    config.write_text("/etc p\n")
    os.chown(config, 65534, 65534)
    with pytest.raises(ConfigError, match="owned by another user \\(uid 65534\\)"):
        load(config)


def test_cli_refuses_a_world_writable_config_with_exit_17(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from aidepy.cli import main

    config = tmp_path / "aidepy.conf"
    config.write_text("/etc p\n")
    config.chmod(0o666)
    assert main(["config-check", "-c", str(config)]) == ExitCode.INVALID_CONFIG
    assert "world-writable" in capsys.readouterr().err


def _calls(tree: ast.AST) -> list[tuple[str, ast.Call]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            found.append((name, node))
    return found


def test_no_external_command_runs_through_a_shell_string() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 20
    offenders = []
    for source in sources:
        tree = ast.parse(source.read_text(), str(source))
        for name, call in _calls(tree):
            where = f"{source.relative_to(PACKAGE.parent)}:{call.lineno}"
            if name in {"system", "popen", "getoutput", "getstatusoutput"}:
                offenders.append(f"{where}: {name}()")
            for kw in call.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    offenders.append(f"{where}: shell=")
            constants = [a.value for a in ast.walk(call) if isinstance(a, ast.Constant)]
            if "-c" in constants and any(c in ("sh", "bash", "/bin/sh", "/bin/bash") for c in constants):
                offenders.append(f"{where}: a shell given a command string")
            if name in {"run", "Popen", "call", "check_call", "check_output"} and call.args and \
                    isinstance(call.args[0], (ast.Constant, ast.JoinedStr, ast.BinOp)):
                offenders.append(f"{where}: {name}() with a command string")
    assert offenders == []


def test_temp_files_are_made_in_the_target_directory_not_in_tmp() -> None:
    # A temp file without dir= would land in /tmp and could not be renamed over its target
    # atomically; mkdtemp (a private 0700 directory, e.g. a mount point) is fine anywhere.
    offenders = []
    for source in sorted(PACKAGE.rglob("*.py")):
        for name, call in _calls(ast.parse(source.read_text())):
            if name in {"mkstemp", "NamedTemporaryFile", "TemporaryFile"} and \
                    not any(kw.arg == "dir" for kw in call.keywords):
                offenders.append(f"{source.name}:{call.lineno}: {name} without dir=")
            if name == "mktemp":
                offenders.append(f"{source.name}:{call.lineno}: mktemp (racy)")
    assert offenders == []


def test_rollback_state_temp_file_does_not_follow_a_planted_symlink(tmp_path: Path) -> None:
    from aidepy.rollback import Identity, Record
    from aidepy.state import ROLLBACK_RECORD

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    state = tmp_path / "state"
    state.mkdir()
    (state / f".{ROLLBACK_RECORD}.tmp").symlink_to(victim)
    with contextlib.suppress(OSError):  # refusing is fine too; overwriting the victim is not
        Record.read(state).record(Identity("SHA256:key"), 7)
    assert victim.read_text() == "precious\n"


def test_saved_report_does_not_follow_a_symlink_planted_at_the_old_temp_name(tmp_path: Path) -> None:
    from aidepy.cli.report import save_report
    from aidepy.state import FULL_REPORT

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / f".{FULL_REPORT}.tmp").symlink_to(victim)
    assert save_report(tmp_path / FULL_REPORT, "the report\n") is None
    assert victim.read_text() == "precious\n"
    assert (tmp_path / FULL_REPORT).read_text() == "the report\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(f".{FULL_REPORT}.")] == [
        f".{FULL_REPORT}.tmp"]  # only the planted link: no temp file left behind
