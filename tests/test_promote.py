"""promote's workflow on a real loop-device vault, driven through its Console parameter.

The test plays the admin: it answers on the input stream and, when promote asks for it, flips
the kernel's write protection (`blockdev --setrw/--setro`), takes the medium out and puts it
back (`losetup -d`, `losetup -f`), or presses Ctrl-C.
"""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import (
    ACCEPT,
    NOBODY,
    REMOVE,
    RESTORE,
    Admin,
    VaultSite,
    as_nobody,
    require_tool,
    requires_root,
)

from aidepy.config import evaluate as config
from aidepy.db import file as db
from aidepy.db.file import write_database
from aidepy.entry import Entry
from aidepy.errors import PassphraseError, VaultError
from aidepy.jobs.console import Console, Declined
from aidepy.jobs.promote import NOT_ACCEPTED, Promoted, Promotion
from aidepy.keys import generate_keypair
from aidepy.vault.vault import Vault


def tree_entries(tree: Path) -> Callable[[], Iterator[Entry]]:
    """Entries for `tree` in canonical order (permissions and size), standing in for the scanner."""
    def entries() -> Iterator[Entry]:
        for path in sorted([tree, *tree.rglob("*")], key=lambda p: bytes(p).split(b"/")):
            st = path.lstat()
            yield Entry(bytes(path), "d" if path.is_dir() else "f", frozenset({"p", "s"}),
                        {"p": st.st_mode, "s": st.st_size})
    return entries


def run_promote(site: VaultSite, answers: str, admin: Admin, *,
                assume_yes: bool = False) -> Promoted | Declined:
    console = Console(io.StringIO(answers), admin)
    return Promotion(config.load(site.config_path), console, assume_yes=assume_yes, poll=0.05, patience=60,
                     entries=tree_entries(site.tree)).run()


def promote(site: VaultSite, answers: str, admin: Admin, *, assume_yes: bool = False) -> Promoted:
    result = run_promote(site, answers, admin, assume_yes=assume_yes)
    assert isinstance(result, Promoted), result
    return result


def flips(site: VaultSite) -> Admin:
    """An admin who lifts the protection when asked and restores it when asked."""
    return (Admin().on(REMOVE, lambda: site.loop.set_read_only(False))
            .on(RESTORE, lambda: site.loop.set_read_only(True)))


@pytest.fixture
def protected_site(vault_site: VaultSite) -> VaultSite:
    """The vault with a first baseline (generation 1) and its write protection on."""
    promote(vault_site, "y\ncorrect horse\n", flips(vault_site))
    vault_site.loop.set_read_only(True)
    return vault_site


def test_promote_waits_for_the_admin_then_writes_a_verified_baseline(vault_site: VaultSite) -> None:
    vault_site.loop.set_read_only(True)
    admin = flips(vault_site)
    result = promote(vault_site, "y\ncorrect horse\n", admin)
    out = admin.getvalue()
    assert out.index("Accept these differences") < out.index(REMOVE) < out.index(RESTORE)
    assert result.generation == 1 and result.entries == 3
    assert vault_site.baseline() == (1, result.sha256)
    assert f"sha256       {result.sha256}" in out and f"signed by    {result.key_fingerprint}" in out
    # Left write-protected and mounted read-only, with the rules beside the baseline.
    assert vault_site.write_protected()
    assert str(vault_site.mountpoint) in vault_site.loop.mountpoints()
    assert (vault_site.mountpoint / "aidepy.conf").read_bytes() == vault_site.config_path.read_bytes()
    with pytest.raises(OSError):
        (vault_site.mountpoint / "x").write_text("x")


def test_the_diff_shows_what_changed_since_the_vaults_baseline(protected_site: VaultSite) -> None:
    (protected_site.tree / "motd").write_text("a longer welcome\n")
    (protected_site.tree / "new").write_text("new\n")
    admin = flips(protected_site)
    result = promote(protected_site, "y\ncorrect horse\n", admin)
    out = admin.getvalue()
    assert re.search(r"Added entries:\s+1\n", out) and re.search(r"Changed entries:\s+1\n", out)
    assert f"{protected_site.tree}/new" in out
    assert result.generation == 2 and (result.summary.added, result.summary.changed) == (1, 1)
    assert protected_site.baseline() == (2, result.sha256)


def test_the_real_scan_shows_hostile_names_escaped_on_the_console(vault_site: VaultSite) -> None:
    # A local user can name a file with terminal escape sequences; promote runs on root's
    # console, so the scanner's warning about that name must not reach the terminal raw.
    hostile = b"clear\x1b[2J\x1b]0;owned\x07\nnext line"
    with open(os.path.join(os.fsencode(vault_site.tree), hostile), "wb") as f:
        f.write(b"x")
    admin = flips(vault_site)
    console = Console(io.StringIO("y\ncorrect horse\n"), admin)
    result = Promotion(config.load(vault_site.config_path), console, poll=0.05, patience=60).run()
    assert isinstance(result, Promoted)
    out = admin.getvalue()
    escaped = "clear\\033[2J\\033]0;owned\\007\\012next line"
    assert f"warning: {vault_site.tree}/{escaped}: name contains a newline" in out
    assert "\x1b" not in out and "\x07" not in out
    assert result.entries == 4  # the tree, passwd, motd and the hostile name


def test_declining_writes_nothing(protected_site: VaultSite) -> None:
    before = protected_site.baseline()
    admin = flips(protected_site)
    assert run_promote(protected_site, "n\n", admin) == Declined(NOT_ACCEPTED)
    assert REMOVE not in admin.getvalue()
    assert protected_site.baseline() == before


def test_wrong_passphrase_three_times_writes_nothing(protected_site: VaultSite) -> None:
    before = protected_site.baseline()
    admin = flips(protected_site)
    with pytest.raises(PassphraseError):
        promote(protected_site, "y\nwrong\nwrong again\nstill wrong\n", admin)
    assert admin.getvalue().count("wrong passphrase; try again") == 2
    assert "nothing was written; the vault keeps its old baseline (generation 1)" in admin.getvalue()
    assert protected_site.baseline() == before


@pytest.mark.parametrize("step", ["Accept these differences", "Passphrase for", REMOVE])
def test_ctrl_c_before_writing_keeps_the_old_baseline(protected_site: VaultSite, step: str) -> None:
    before = protected_site.baseline()

    def interrupt() -> None:
        raise KeyboardInterrupt

    admin = Admin().on(step, interrupt)
    with pytest.raises(KeyboardInterrupt):
        promote(protected_site, "y\ncorrect horse\n", admin)
    assert "Interrupted: nothing was written; the vault keeps its old baseline (generation 1)." \
        in admin.getvalue()
    assert protected_site.baseline() == before
    assert not [p for p in protected_site.state_dir.iterdir() if p.name.startswith("promote-")]


def test_ctrl_c_after_writing_says_the_new_baseline_is_in_place(protected_site: VaultSite) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    admin = Admin().on(REMOVE, lambda: protected_site.loop.set_read_only(False)).on(RESTORE, interrupt)
    with pytest.raises(KeyboardInterrupt):
        promote(protected_site, "y\ncorrect horse\n", admin)
    assert "the new baseline (generation 2) is already written and verified" in admin.getvalue()
    assert protected_site.baseline()[0] == 2


def test_yes_fails_at_once_on_a_write_protected_medium(tmp_path: Path, vault_site: VaultSite) -> None:
    key = tmp_path / "plain.key"
    generate_keypair(key, None)
    vault_site.key.unlink()
    vault_site.key.with_name("signing.key.pub").unlink()
    os.link(key, vault_site.key)
    # The vault was formatted for the other key: --yes still refuses before it would write.
    vault_site.loop.set_read_only(True)
    admin = Admin()
    with pytest.raises(VaultError):
        promote(vault_site, "", admin, assume_yes=True)
    assert REMOVE not in admin.getvalue()


def test_yes_needs_a_key_without_passphrase(protected_site: VaultSite) -> None:
    protected_site.loop.set_read_only(False)
    with pytest.raises(PassphraseError, match="--yes needs a signing key without a passphrase"):
        promote(protected_site, "", Admin(), assume_yes=True)
    assert protected_site.baseline()[0] == 1


def test_promote_notices_the_medium_taken_out_and_put_back(tmp_path: Path, vault_site: VaultSite) -> None:
    """With the vault named by label, the admin removes the medium, and it comes back as another
    loop device, writable: promote follows it."""
    vault_site.write_config(device=f"LABEL={vault_site.label}")
    vault_site.loop.set_read_only(True)
    losetup = require_tool("losetup")
    gone = threading.Event()
    reattached: list[str] = []

    def take_out() -> None:
        subprocess.run([losetup, "-d", vault_site.loop.device], check=True)

    def put_back() -> None:
        assert gone.wait(60), "promote never noticed the medium was gone"
        out = subprocess.run([losetup, "-f", "--show", vault_site.loop.image], check=True,
                             capture_output=True, text=True)
        reattached.append(out.stdout.strip())
        # The switch was flipped while the medium was out (and the kernel may remember an old
        # --setro of this loop device number).
        subprocess.run(["blockdev", "--setrw", reattached[0]], check=True)

    helper = threading.Thread(target=put_back)

    def remove() -> None:
        take_out()
        helper.start()

    admin = (Admin().on(REMOVE, remove)
             .on("the medium is gone", gone.set)
             .on(RESTORE, lambda: subprocess.run(["blockdev", "--setro", reattached[0]], check=True)))
    try:
        result = promote(vault_site, "y\ncorrect horse\n", admin)
        helper.join()
        assert "the medium is gone; waiting for it to come back" in admin.getvalue()
        assert result.generation == 1
        vault_site.loop.device = reattached[0]  # so the fixture cleans up the new device
        with db.open_database(Path(result.path), None) as written:
            assert written.header.generation == 1
    finally:
        helper.join(timeout=1)
        for device in reattached:
            vault_site.loop.device = device


@requires_root
def test_the_state_directorys_owner_cannot_swap_the_scan_promote_signs(vault_site: VaultSite) -> None:
    """In the least-privilege layout an unprivileged account owns state_dir, where promote keeps
    its work directory: renaming that directory away and planting one with a forged scan, at
    the moment promote asks, must not change what promote signs."""
    site = vault_site
    site.state_dir.mkdir()
    os.chown(site.state_dir, NOBODY, NOBODY)
    forged = site.root / "forged.db"
    write_database(forged, [], host=socket.gethostname(), rules_digest=b"\0" * 32, generation=0,
                   signing_key=None)
    forged.chmod(0o644)

    data = forged.read_bytes()

    def swap() -> None:  # the owner's moves, through a descriptor (tmp_path's parents are root's)
        [work] = [p.name for p in site.state_dir.glob("promote-*")]
        fd = os.open(site.state_dir, os.O_RDONLY | os.O_DIRECTORY)

        def plant() -> None:
            os.rename(work, "moved-away", src_dir_fd=fd, dst_dir_fd=fd)
            os.mkdir(work, dir_fd=fd)
            out = os.open(f"{work}/candidate.db", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            os.write(out, data)
            os.close(out)

        try:
            as_nobody(plant)
        finally:
            os.close(fd)

    site.loop.set_read_only(True)
    admin = (Admin().on(ACCEPT, swap)
             .on(REMOVE, lambda: site.loop.set_read_only(False))
             .on(RESTORE, lambda: site.loop.set_read_only(True)))
    Promotion(config.load(site.config_path), Console(io.StringIO("y\ncorrect horse\n"), admin),
              poll=0.05, patience=60).run()
    assert (site.state_dir / "moved-away").exists(), "the swap did not happen"
    vault = Vault.open(config.load(site.config_path))
    with vault.mounted(), db.open_database(vault.baseline_path(), vault.public_key()) as baseline:
        assert {e.path for e in baseline.entries()} >= {os.fsencode(site.tree / "passwd")}
