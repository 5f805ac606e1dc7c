"""The daily job without root: the scan runs as an unprivileged user holding only
CAP_DAC_READ_SEARCH (as Debian's dailyaidecheck runs aide under `capsh`), after root has
mounted the vault read-only. It still reads root-only files; it cannot write them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence

import pytest
from conftest import AIDEPY, RESTORE, Admin, RootMailbox, VaultSite, require_tool, requires_root

from aidepy.config import evaluate as config
from aidepy.db import file as db
from aidepy.jobs.console import Console
from aidepy.jobs.promote import Promotion
from aidepy.state import NEW_DATABASE

pytestmark = requires_root

USER, GROUP = "nobody", "nogroup"
SECRET = b"root-only secret\n"


def setpriv(command: Sequence[str]) -> list[str]:
    """`command` as USER with CAP_DAC_READ_SEARCH as its only capability (argument list, no shell)."""
    return [require_tool("setpriv"), f"--reuid={USER}", f"--regid={GROUP}", "--init-groups",
            "--inh-caps=-all,+dac_read_search", "--ambient-caps=-all,+dac_read_search", "--", *command]


def capsh(command: Sequence[str]) -> list[str]:
    """The same with `capsh`, the way Debian's /etc/cron.daily/aide starts dailyaidecheck; the
    command goes to the shell as positional arguments, never inside the shell string."""
    return [require_tool("capsh"), "--caps=cap_dac_read_search+eip cap_setpcap,cap_setuid,cap_setgid+ep",
            "--keep=1", f"--user={USER}", "--addamb=cap_dac_read_search", "--", "-c", 'exec "$@"', "sh",
            *command]


PROBE = r"""
import errno, hashlib, os, sys
secret = sys.argv[1]
with open(secret, "rb") as f:
    print("read", hashlib.sha256(f.read()).hexdigest())
for what, attempt in (("open-for-writing", lambda: open(secret, "r+b")),
                      ("chmod", lambda: os.chmod(secret, 0o666)),
                      ("unlink", lambda: os.unlink(secret))):
    try:
        attempt()
        print(what, "succeeded")
    except OSError as exc:
        print(what, errno.errorcode[exc.errno])
print("caps", [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0])
"""


@pytest.fixture
def unprivileged_site(vault_site: VaultSite) -> VaultSite:
    """A promoted, write-protected vault whose tree holds a root-only file, mounted read-only by
    root, with the state directory handed to the unprivileged user."""
    secret = vault_site.tree / "secret"
    secret.write_bytes(SECRET)
    os.chown(secret, 0, 0)
    secret.chmod(0o600)
    vault_site.loop.set_read_only(False)
    admin = Admin().on(RESTORE, lambda: vault_site.loop.set_read_only(True))
    Promotion(config.load(vault_site.config_path), Console(io.StringIO("y\ncorrect horse\n"), admin),
              poll=0.05, patience=60).run()
    # What root does before dropping privileges: mount the vault (read-only), own state_dir.
    mount = subprocess.run([*AIDEPY, "vault", "mount", "-c",
                            str(vault_site.config_path)], capture_output=True, text=True, timeout=60)
    assert mount.returncode == 0, mount.stderr
    for path in [vault_site.state_dir, *vault_site.state_dir.rglob("*")]:
        os.chown(path, 65534, 65534, follow_symlinks=False)
    return vault_site


def test_report_as_an_unprivileged_user_reads_root_only_files(
    unprivileged_site: VaultSite, root_mailbox: RootMailbox,
) -> None:
    site = unprivileged_site
    (site.tree / "secret").write_bytes(SECRET + b"changed\n")
    run = subprocess.run(setpriv([*AIDEPY, "report", "-c", str(site.config_path)]),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 4, run.stdout + run.stderr  # changed: the secret's new content was read
    assert "signature verified with the vault's key" in run.stdout
    assert f"{site.tree}/secret" in run.stdout
    new = site.state_dir / NEW_DATABASE
    assert new.stat().st_uid == 65534  # written by the unprivileged run
    with db.open_database(new, None) as fresh:
        secret = next(e for e in fresh.entries() if e.path == bytes(site.tree / "secret"))
    assert secret.values["sha256"] == hashlib.sha256(SECRET + b"changed\n").digest()
    mode = secret.values["p"]
    assert secret.values["u"] == 0 and isinstance(mode, int) and mode & 0o777 == 0o600
    [mail] = root_mailbox.wait_for(1)  # the setuid sendmail still delivers
    assert "1 changed" in mail["Subject"]


@pytest.mark.parametrize("drop", [setpriv, capsh], ids=["setpriv", "capsh"])
def test_the_unprivileged_scan_reads_but_cannot_write_root_only_files(
    unprivileged_site: VaultSite, drop: Callable[[Sequence[str]], list[str]],
) -> None:
    secret = unprivileged_site.tree / "secret"
    probe = subprocess.run(drop([sys.executable, "-c", PROBE, str(secret)]),
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    lines = dict(line.split(" ", 1) for line in probe.stdout.splitlines())
    assert lines["read"] == hashlib.sha256(SECRET).hexdigest()
    assert lines["open-for-writing"] in ("EACCES", "EPERM")
    assert lines["chmod"] == "EPERM" and lines["unlink"] in ("EACCES", "EPERM")
    assert int(lines["caps"], 16) == 1 << 2  # CAP_DAC_READ_SEARCH, nothing else
    assert secret.read_bytes() == SECRET and secret.stat().st_mode & 0o777 == 0o600


def test_without_a_mounted_vault_the_unprivileged_run_mails_an_alert(
    unprivileged_site: VaultSite, root_mailbox: RootMailbox,
) -> None:
    """Mounting needs root: when nobody mounted the vault first, the run cannot, and says so."""
    site = unprivileged_site
    subprocess.run([*AIDEPY, "vault", "umount", "-c", str(site.config_path)],
                   check=True, capture_output=True, timeout=60)
    run = subprocess.run(setpriv([*AIDEPY, "report", "-c", str(site.config_path)]),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 21, run.stdout + run.stderr
    assert "NO CHECK WAS DONE TODAY" in run.stdout and "mount" in run.stdout
    [mail] = root_mailbox.wait_for(1)
    assert "ALERT" in mail["Subject"]


def test_check_as_an_unprivileged_user_reads_root_only_files(unprivileged_site: VaultSite) -> None:
    """`aidepy check` against the baseline on the (root-mounted) vault, verified with its key."""
    site = unprivileged_site
    (site.tree / "secret").write_bytes(SECRET + b"changed\n")
    check = [*AIDEPY, "check", "--json", "-c", str(site.config_path),
             "-A", f"database_in=file:{site.mountpoint}/aidepy.db",
             "-A", f"public_key={site.mountpoint}/aidepy.pub"]
    run = subprocess.run(setpriv(check), capture_output=True, text=True, timeout=120)
    assert run.returncode == 4, run.stdout + run.stderr
    result = json.loads(run.stdout)
    assert result["database"]["signature"] == "verified"
    [changed] = result["changed"]
    assert changed["path"] == str(site.tree / "secret")
    assert changed["attributes"]["sha256"]["new"] == hashlib.sha256(SECRET + b"changed\n").hexdigest()
