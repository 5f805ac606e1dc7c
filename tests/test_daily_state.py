"""The daily report against whoever controls the state directory or the live config's locations:
it never re-reads what it wrote there by name, finds a moved vault from the host's config, and
never blocks on a file swapped for a FIFO."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import (
    LoopDevice,
    VaultSite,
    daily_report,
    promote_in_process,
    requires_root,
    sent_mail,
    time_limit,
)

from aidepy.config.evaluate import parse_text
from aidepy.jobs.baseline import rehasher
from aidepy.scan.walk import scan

pytestmark = requires_root

# The state directory's owner swaps aidepy.db.new for a copy of the baseline right after the
# report renamed it into place, before anything reads it back: the moment the old report
# re-opened the file by name.
SWAP = r"""
import os, shutil, sys
from aidepy.cli import main
conf, new_db, baseline_copy = sys.argv[1:4]
real_replace = os.replace

def replace(src, dst, *args, **kw):
    real_replace(src, dst, *args, **kw)
    if os.fspath(dst) == new_db:
        shutil.copyfile(baseline_copy, new_db + ".forged")
        real_replace(new_db + ".forged", new_db)

os.replace = replace
sys.exit(main(["report", "-c", conf, "-A", f"sendmail={sys.argv[4]}"]))
"""


def test_a_database_swapped_in_after_the_write_does_not_hide_a_change(tmp_path: Path,
                                                                       vault_site: VaultSite) -> None:
    site = vault_site
    assert promote_in_process(site)[0] == 1
    (site.tree / "passwd").write_text("root:x:0:0::/root:/bin/sh\nevil:x:0:0::/:/bin/sh\n")
    baseline_copy = tmp_path / "baseline-copy.db"
    baseline_copy.write_bytes((site.mountpoint / "aidepy.db").read_bytes())
    sink = tmp_path / "sendmail"
    sink.write_text(f"#!/bin/sh\ncat > {tmp_path}/mail\n")
    sink.chmod(0o755)
    new_db = site.state_dir / "aidepy.db.new"
    run = subprocess.run([sys.executable, "-c", SWAP, str(site.config_path), str(new_db), str(baseline_copy),
                          str(sink)], capture_output=True, text=True, timeout=120)
    assert new_db.read_bytes() == baseline_copy.read_bytes(), "the swap did not happen"
    assert run.returncode == 4, run.stdout + run.stderr
    assert f"{site.tree}/passwd" in run.stdout
    assert "no changes" not in (tmp_path / "mail").read_text()


def test_a_moved_vault_is_found_from_the_hosts_config_not_the_rules_copy(
        vault_site: VaultSite, make_loop_device: Callable[..., LoopDevice]) -> None:
    site = vault_site
    assert promote_in_process(site)[0] == 1  # the vault's rules copy names the old device
    old = site.loop.device
    subprocess.run(["umount", str(site.mountpoint)], check=True)
    subprocess.run(["losetup", "-d", old], check=True)
    make_loop_device(name="other.img")  # something else now sits where the vault was
    moved = subprocess.run(["losetup", "-f", "--show", site.loop.image], check=True, capture_output=True,
                           text=True).stdout.strip()
    site.loop.device = moved  # so the fixture detaches it
    site.write_config(device=moved)  # the admin updates the host's config, as after a move
    site.loop.set_read_only(True)
    assert moved != old
    run = daily_report(site)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ALERT" not in sent_mail(site)["Subject"]
    assert f"Note: {site.config_path} differs from the copy on the vault" in run.stdout
    assert "Rules: the copy on the vault" in run.stdout


def test_a_growing_file_swapped_for_a_fifo_is_not_rehashed_and_does_not_hang(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("line 1\n")
    ruleset = parse_text(f"{log}$ f p+s+sha256+growing\n").ruleset
    [entry] = [e for e in scan(ruleset, workers=1, on_warning=lambda w: None) if e.path == os.fsencode(log)]
    log.unlink()
    os.mkfifo(log)  # a writer-less FIFO: a blocking open would wait forever
    with time_limit(10, "re-hashing a FIFO"):
        assert rehasher(b"")(entry, 7, frozenset({"sha256"})) is None
