"""`aidepy promote` at a real console: a pty (pexpect) on a loop-device vault.

The test is the admin at the keyboard: it answers the prompts, types the passphrase, flips the
write protection with `blockdev --setrw/--setro` when promote asks, or presses Ctrl-C.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from conftest import (
    ACCEPT,
    AIDEPY,
    COMMENT,
    PASSPHRASE,
    REMOVE,
    RESTORE,
    VaultSite,
    finish,
    spawn_promote,
    to_writable,
)

from aidepy import keys
from aidepy.vault.vault import format_vault


def promote_at_console(site: VaultSite, comment: str = "") -> str:
    """A whole promote, the admin doing everything asked; returns the output from the summary on."""
    child = spawn_promote(site)
    to_writable(child, site, comment)
    child.expect(RESTORE)
    site.loop.set_read_only(True)
    child.expect("Promoted: ")
    rest: str = child.read()
    child.close()
    assert child.exitstatus == 0, rest
    return rest


def test_admin_promotes_at_the_console(vault_site: VaultSite) -> None:
    vault_site.loop.set_read_only(True)
    summary = promote_at_console(vault_site)
    digest = re.search(r"sha256\s+([0-9a-f]{64})", summary)
    fingerprint = re.search(r"signed by\s+(SHA256:\S+)", summary)
    assert digest and fingerprint
    assert vault_site.baseline() == (1, digest[1])
    public = keys.load_public_key(keys.public_key_beside(vault_site.key))
    assert fingerprint[1] == keys.fingerprint(public)

    # The vault: write-protected, mounted read-only, the rules beside the baseline.
    assert vault_site.write_protected()
    assert str(vault_site.mountpoint) in vault_site.loop.mountpoints()
    assert (vault_site.mountpoint / "aidepy.conf").read_bytes() == vault_site.config_path.read_bytes()
    assert "generation   1 (was 0)" in summary


def test_the_comment_typed_at_the_console_goes_into_the_approval_log(vault_site: VaultSite) -> None:
    vault_site.loop.set_read_only(True)
    promote_at_console(vault_site, comment="first baseline of the new mail gateway")
    run = subprocess.run([*AIDEPY, "log", "--json", "-c", str(vault_site.config_path)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    [record] = json.loads(run.stdout)["records"]
    assert record["comment"] == "first baseline of the new mail gateway"
    assert record["tty"] and record["tty"].startswith("/dev/pts/")  # the pty the admin typed on
    assert record["generation"] == 1 and record["accepted"] == 3  # the tree, passwd and motd


@pytest.fixture
def promoted(vault_site: VaultSite) -> VaultSite:
    """A vault holding generation 1, write-protected."""
    vault_site.loop.set_read_only(True)
    promote_at_console(vault_site)
    (vault_site.tree / "motd").write_text("a changed welcome\n")
    return vault_site


@pytest.mark.parametrize("prompt", [ACCEPT, PASSPHRASE, COMMENT, REMOVE])
def test_ctrl_c_at_a_prompt_keeps_the_old_baseline(promoted: VaultSite, prompt: str) -> None:
    before = promoted.baseline()
    child = spawn_promote(promoted)
    for step, answer in ((ACCEPT, "y"), (PASSPHRASE, promoted.passphrase), (COMMENT, ""), (REMOVE, None)):
        child.expect(step)
        if step == prompt:
            child.sendintr()
            break
        child.sendline(answer)
    child.expect(r"Interrupted: nothing was written; the vault keeps its old baseline \(generation 1\)\.")
    assert finish(child) == 130
    assert promoted.baseline() == before
    assert promoted.write_protected()


def test_ctrl_c_while_waiting_for_protection_says_the_new_baseline_is_written(promoted: VaultSite) -> None:
    child = spawn_promote(promoted)
    child.expect(ACCEPT)
    child.sendline("y")
    child.expect(PASSPHRASE)
    child.sendline(promoted.passphrase)
    child.expect(COMMENT)
    child.sendline("")
    child.expect(REMOVE)
    promoted.loop.set_read_only(False)
    child.expect(RESTORE)
    child.sendintr()
    child.expect(r"the new baseline \(generation 2\) is already written and verified")
    assert finish(child) == 130
    assert promoted.baseline()[0] == 2


def test_long_differences_are_paged(promoted: VaultSite) -> None:
    for i in range(30):
        (promoted.tree / f"new{i:02}").write_text("x\n")
    child = spawn_promote(promoted, rows=12, pager=None)  # the default pager, on a 12-line terminal
    child.expect("Start timestamp")
    child.expect(":")  # the pager's prompt: promote waits behind it
    assert ACCEPT not in child.before
    child.send("q")
    child.expect(ACCEPT)
    child.sendintr()
    assert finish(child) == 130


def promote_yes(site: VaultSite) -> subprocess.CompletedProcess[str]:
    """`aidepy promote --yes` as a script runs it: no terminal, no input (timeout: it must not wait)."""
    return subprocess.run([*AIDEPY, "promote", "--yes", "-c", str(site.config_path)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


@pytest.fixture
def unattended(vault_site: VaultSite) -> VaultSite:
    """The site with a signing key without passphrase (for --yes), the vault formatted for it."""
    keys.generate_keypair(vault_site.key, None, overwrite=True)
    format_vault(vault_site.loop.device, label=vault_site.label, force=True,
                 public_key=keys.public_key_beside(vault_site.key), warn=lambda m: None)
    return vault_site


def test_yes_with_a_comment_records_it_without_asking(unattended: VaultSite) -> None:
    run = subprocess.run([*AIDEPY, "promote", "--yes", "--comment", "nightly rebuild", "-c",
                          str(unattended.config_path)], stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert COMMENT not in run.stdout
    log = subprocess.run([*AIDEPY, "log", "--json", "-c", str(unattended.config_path)], capture_output=True,
                         text=True, timeout=60)
    [record] = json.loads(log.stdout)["records"]
    assert (record["comment"], record["tty"]) == ("nightly rebuild", None)


def test_yes_fails_clearly_on_a_write_protected_medium(unattended: VaultSite) -> None:
    unattended.loop.set_read_only(True)
    run = promote_yes(unattended)
    assert run.returncode == 21
    assert "write-protected" in run.stderr and "--yes does not wait" in run.stderr
    assert REMOVE not in run.stdout


def test_yes_on_a_terminal_shows_long_differences_without_a_pager(unattended: VaultSite) -> None:
    # --yes never waits: not for a question, and not behind a pager (`aidepy demo` runs it so)
    for i in range(30):
        (unattended.tree / f"new{i:02}").write_text("x\n")
    child = spawn_promote(unattended, "--yes", rows=12, pager=None)  # the default pager, 12 lines
    assert finish(child) == 0, child.before
    assert f"{unattended.tree}/new29" in child.before and "Promoted: " in child.before
    assert unattended.baseline()[0] == 1


def test_yes_promotes_without_questions_on_a_writable_medium(unattended: VaultSite) -> None:
    run = promote_yes(unattended)
    assert run.returncode == 0, run.stderr
    assert "write protection is OFF: turn it back on" in run.stdout
    assert unattended.baseline()[0] == 1
