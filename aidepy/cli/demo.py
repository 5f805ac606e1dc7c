"""`aidepy demo`: the whole practice on a built-in default, with an image file as the vault."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from aidepy.cli.options import DEFAULT_CONFIG
from aidepy.errors import ExitCode, UsageError
from aidepy.keys import public_key_beside

NAME = "demo"
HELP = "run the main job on a built-in default: image-file vault, new key, small rule set"
DESCRIPTION = """\
Show what aidepy does without a floppy, a USB stick or an edit to /etc. In DIR (default
/var/lib/aidepy-demo) the demo writes a small rule set (aidepy.conf: /etc, /usr/sbin and a
sample tree of its own), generates a signing key without a passphrase, formats a 1722 KiB
image file as the vault (as much as a 3.5" floppy formatted as /dev/fd0u1722 holds),
promotes a first signed baseline onto it, write-protects the image (for an image file, the
tab is its write permission), changes a file in the sample tree, and runs the daily report,
which is also mailed to root through the local MTA. The vault stays mounted read-only at
DIR/vault afterwards; `aidepy vault umount -c DIR/aidepy.conf` detaches it.

Each step is printed as the aidepy command that does it, so the demo doubles as a tour of the
commands. Run it again to start over (--reset) or to see another daily report on the same
vault. It needs root (mke2fs and mount on a loop device). Exit code: the daily report's
(4: the demo's sample file changed, as intended).
"""

DEMO_DIR = "/var/lib/aidepy-demo"
FLOPPY_BYTES = 1722 * 1024
CONFIG = Path(DEFAULT_CONFIG).name
"""The demo's config in DIR, named as on a real host."""
SIGNING_KEY = "signing.key"

RULES = """\
# aidepy demo: a small rule set. Real servers start from rules/aidepy.conf.
vault_device={dir}/vault.img
vault_label=AIDEPYDEMO
vault_mountpoint={dir}/vault
signing_key={dir}/signing.key
state_dir={dir}/state
report_email=root

Watch = p+u+g+ftype+n+i+s+m+c+l+sha256
/etc Watch
!/etc/(mtab|adjtime|resolv\\.conf|ld\\.so\\.cache)$
/usr/sbin Watch
{dir}/sample Watch
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default=DEMO_DIR, type=Path, help=f"working directory (default: {DEMO_DIR})")
    parser.add_argument("--reset", action="store_true", help="start over: new key, new vault, new baseline")


def _step(argv: list[str]) -> int:
    """Print one aidepy command and run it in this process."""
    from aidepy.cli import main

    print(f"\n$ aidepy {shlex.join(argv)}", flush=True)
    return main(argv)


def _prepare(work: Path, reset: bool) -> bool:
    """Write the rules, the sample tree and the image; True if a new vault must be made."""
    if reset and work.exists():
        _step(["vault", "umount", "-c", str(work / CONFIG)])
        for path in (work / SIGNING_KEY, public_key_beside(work / SIGNING_KEY), work / "vault.img"):
            path.unlink(missing_ok=True)
    (work / "state").mkdir(parents=True, exist_ok=True)
    (work / "vault").mkdir(exist_ok=True)
    (work / CONFIG).write_text(RULES.format(dir=work))
    sample = work / "sample"
    sample.mkdir(exist_ok=True)
    (sample / "motd").write_text("Welcome to the demo host.\n")
    (sample / "hosts.allow").write_text("sshd: 192.0.2.0/24\n")
    image = work / "vault.img"
    if image.exists():
        return False
    with image.open("wb") as f:
        f.truncate(FLOPPY_BYTES)
    return True


def run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise UsageError("the demo needs root: it formats and mounts an image file through a loop device")
    work: Path = args.dir.resolve()
    conf = ["-c", str(work / CONFIG)]
    new_vault = _prepare(work, args.reset)
    key = work / SIGNING_KEY
    steps: list[list[str]] = []
    if not key.exists():
        steps.append(["keygen", "--out", str(key), "--no-passphrase"])
    if new_vault:
        steps.append(["vault", "format", str(work / "vault.img"), "--public-key", str(public_key_beside(key)),
                      *conf])
        steps.append(["promote", "--yes", *conf])
    for argv in steps:
        code = _step(argv)
        if code != ExitCode.OK:
            print(f"aidepy demo: step failed with exit code {code}", file=sys.stderr)
            return code
    image = work / "vault.img"
    if image.stat().st_mode & 0o222:
        image.chmod(0o444)  # an image file's write-protect tab is its write permission
        print(f"\n# chmod a-w {image}   (the write-protect tab: the vault is read-only from now on)")
    with (work / "sample" / "hosts.allow").open("a") as f:
        f.write("ALL: ALL\n")  # the intruder's edit the daily report must show
    print("\n# appended 'ALL: ALL' to sample/hosts.allow; the daily report must show it")
    code = _step(["vault", "status", *conf])
    return _step(["report", *conf]) if code == ExitCode.OK else code
