"""promote's review, as the admin answers it: accept some changes, keep the old records of
others (they stay in the daily report), a whole directory at once, the detail and the diff on
request; in process, and once through a real pty."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from conftest import (
    ACCEPT,
    REVIEW,
    VaultSite,
    aidepy,
    backdate,
    promote_in_process,
    sign_and_write,
    spawn_promote,
)

from aidepy.config import evaluate as config
from aidepy.jobs.console import Console, Declined
from aidepy.jobs.promote import NOT_ACCEPTED, Promotion

FINAL = "Make this the vault's new baseline"


def reported(site: VaultSite) -> list[str]:
    """The paths the next check lists as added, removed or changed."""
    doc = json.loads(aidepy("check", "-c", str(site.config_path), "--json").stdout)
    return sorted(e["path"] for kind in ("added", "removed", "changed") for e in doc[kind])


@pytest.fixture
def changed(vault_site: VaultSite, public_dir: Path) -> VaultSite:
    """Generation 1 promoted, then: motd and passwd edited, a directory with two files added, and
    a config file whose content the rules record edited."""
    site = vault_site
    etc = public_dir / "etc"
    etc.mkdir()
    (etc / "app.conf").write_text("listen=127.0.0.1\nworkers=4\n")
    site.write_config(extra=f"{etc} f p+s+sha256+content\n")
    for path in (site.tree, *site.tree.iterdir()):  # so every edit below changes m
        backdate(path)
    assert promote_in_process(site)[0] == 1
    (site.tree / "motd").write_text("welcome, today\n")
    (site.tree / "passwd").write_text("root:x:0:0::/root:/bin/bash\n")
    (site.tree / "new").mkdir()
    (site.tree / "new" / "a").write_text("a\n")
    (site.tree / "new" / "b").write_text("b\n")
    (etc / "app.conf").write_text("listen=0.0.0.0\nworkers=4\n")
    return site


def test_review_accepts_some_keeps_others_and_shows_the_diff(changed: VaultSite) -> None:
    site = changed
    # tree (its times: kept), motd (accepted), new (accepted), new/a and new/b (accepted as a
    # directory), passwd (kept), app.conf (the detail, then accepted)
    generation, out = promote_in_process(site, "r\nk\na\na\nA\nk\nd\na\ny\n")
    assert generation == 2
    assert f"[1/7] d = ... m .n      : {site.tree}\n    not explained\n" in out
    assert f"[4/7] f+++++++++++++++++: {site.tree}/new/a\n" in out
    assert f"A/K=accept/keep all 2 in {site.tree}/new/ ?" in out
    assert f"[6/7] f > ... m ..H     : {site.tree}/passwd\n" in out  # new/b was answered with new/a
    assert "   -listen=127.0.0.1\n   +listen=0.0.0.0\n" in out  # the detail's diff
    assert f"{FINAL}: 5 changes accepted, 2 kept as before" in out
    assert "; 2 kept as before)" in out  # the summary
    assert reported(site) == [str(site.tree), f"{site.tree}/passwd"]


def test_keeping_a_directory_keeps_everything_below_it(changed: VaultSite) -> None:
    site = changed
    generation, out = promote_in_process(site, "r\na\nK\na\ny\n")  # tree, then K at motd, app.conf
    assert generation == 2
    assert f"A/K=accept/keep all 5 in {site.tree}/ ?" in out
    assert reported(site) == sorted(f"{site.tree}/{p}" for p in ("motd", "new", "new/a", "new/b", "passwd"))


def test_end_of_input_in_the_review_writes_nothing(changed: VaultSite) -> None:

    before = changed.baseline()
    assert Promotion(config.load(changed.config_path),
                     Console(io.StringIO("r\na\n"), io.StringIO())).run() == Declined(NOT_ACCEPTED)
    assert changed.baseline() == before


def test_the_review_at_a_real_console(changed: VaultSite) -> None:
    site = changed
    os.unlink(site.tree / "new" / "a")
    os.unlink(site.tree / "new" / "b")
    os.rmdir(site.tree / "new")
    site.loop.set_read_only(True)
    child = spawn_promote(site)
    child.expect(ACCEPT)
    child.sendline("r")
    for answer in ("k", "a", "x", "k", "d"):  # tree, motd, a wrong key, passwd, app.conf
        child.expect(REVIEW)
        child.sendline(answer)
        if answer == "x":
            child.expect("Please answer one of a, k, d, A, K.")
    child.expect(r"\+listen=0\.0\.0\.0")
    child.expect(REVIEW)
    child.sendline("a")
    child.expect(f"{FINAL}: 2 changes accepted, 2 kept as before")
    child.sendline("y")
    assert "generation   2 (was 1)" in sign_and_write(child, site)
    assert reported(site) == [str(site.tree), f"{site.tree}/passwd"]
