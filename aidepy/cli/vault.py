"""`aidepy vault format|mount|umount|status|install`: argument parsing and output over
`aidepy.vault.vault`."""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from aidepy import keys
from aidepy.cli.options import add_config_arguments
from aidepy.config.evaluate import Config, load
from aidepy.errors import ExitCode, PassphraseError, UsageError
from aidepy.jobs.baseline import Pin
from aidepy.jobs.console import Console
from aidepy.jobs.rules_review import confirm_rules, review_vault_rules
from aidepy.keys import public_key_beside
from aidepy.lock import run_lock
from aidepy.report import mail as notify
from aidepy.vault.layout import format_vault
from aidepy.vault.medium import warn_stderr
from aidepy.vault.program import install
from aidepy.vault.runtime import absent_alarm
from aidepy.vault.vault import Vault, VaultStatus

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

NAME = "vault"
HELP = "prepare, mount and inspect the write-protected medium that holds the baseline"
DESCRIPTION = """\
The vault is the medium the host cannot write while its protection is on: a floppy
(/dev/fd0u1722) with its write-protect tab, a USB stick or SD card with a lock switch, or an
image file attached read-only. It holds the signed baseline (aidepy.db, or a signed anchor of
a baseline kept under the state directory when the medium is too small), the public key it
is verified with, a copy of the rules, and optionally aidepy itself.

  format DEVICE   make DEVICE a vault: ext2 (mke2fs -L LABEL -m 0), VAULT marker, public key.
                  DEVICE is a device node (a missing /dev/fd0u1722 is created), LABEL=, UUID=,
                  an image file, or, for trials only, a directory (nothing protects it).
                  Refuses a mounted device, and one holding another filesystem unless --force.
  mount [--rw]    mount the vault (vault_device, else LABEL=vault_label) at vault_mountpoint,
                  read-only with nosuid,nodev; --rw only while writing a new baseline.
  umount          unmount it (and detach an image's loop device).
  status          device, label, mountpoint, ro/rw, write protection, free space, key
                  fingerprint, the baseline's creation time and whether it verifies.
  install         copy the rules (the config and every file it includes) onto the vault (when
                  they differ from the vault's copy: the diff and the paths of the baseline they
                  no longer select are shown, and you are asked; --accept-rules does not ask), and
                  aidepy itself when it fits: lib/aidepy.zip (aidepy and its pure-Python
                  dependencies), the launcher bin/aidepy, and RUNTIME, the manifest of what
                  the vault cannot hold (interpreter, standard library, compiled extensions,
                  shared libraries) with their SHA-256, signed with signing_key (its
                  passphrase is asked for). bin/aidepy checks all of it whenever it starts.
  alarm           mail (and log) the ALERT that the daily check from the vault did not run,
                  saying why: the vault not mounted, no program on it, or the program failed.
                  What the shipped units and cron line run then; it checks nothing.

Write protection is read from the kernel (sysfs ro), from mount falling back to read-only,
and from a real test write. Exit status 21 when the vault is unusable or write-protected
for a write, 14 when a file does not fit (the previous one is intact); status exits 0 only
when the medium is a vault without problems (a baseline that does not verify is one)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="vault_command", metavar="ACTION")
    fmt = sub.add_parser("format", help="make a device, image or directory a vault")
    fmt.add_argument("device", metavar="DEVICE", help="device node, LABEL=, UUID=, image file or directory")
    fmt.add_argument("--label", help="filesystem label (default: vault_label from the config, AIDEPY)")
    fmt.add_argument("--force", action="store_true", help="overwrite a filesystem that is not a vault")
    fmt.add_argument("--fdformat", action="store_true",
                     help="low-level format a floppy first: fdformat for a drive on the floppy controller, "
                          "ufiformat (Debian package ufiformat) for a USB floppy drive")
    fmt.add_argument("--public-key", type=Path, metavar="FILE",
                     help="public key to put on the vault (default: public_key, else <signing_key>.pub)")
    mount = sub.add_parser("mount", help="mount the vault (read-only unless --rw)")
    mount.add_argument("--rw", action="store_true", help="mount read-write (to write a baseline)")
    sub.add_parser("umount", help="unmount the vault")
    status = sub.add_parser("status", help="show the vault's state")
    status.add_argument("--json", action="store_true", help="print JSON")
    install = sub.add_parser("install", help="copy the rules and aidepy itself onto the vault")
    install.add_argument("--accept-rules", action="store_true",
                         help="replace the vault's copy of the rules without asking, also when the live "
                              "rules differ from it (the diff is still shown)")
    sub.add_parser("alarm", help="mail the ALERT that the daily check from the vault did not run")
    for action in sub.choices.values():
        add_config_arguments(action)
        if action is not fmt:
            action.add_argument("--device", metavar="DEVICE",
                                help="the vault device (overrides vault_device)")


def _config(args: argparse.Namespace) -> Config:
    return load(Path(args.config), args.before, args.after)


def _vault(args: argparse.Namespace) -> Vault:
    return Vault.open(_config(args), device=args.device, warn=warn_stderr)


def run(args: argparse.Namespace) -> int:
    command = args.vault_command
    if command is None:
        raise UsageError("aidepy vault needs an action: format, mount, umount, status, install or alarm")
    if command == "format":
        return _format(args)
    if command == "alarm":  # mounts nothing, and must mail even while a run holds the lock
        return _alarm(args)
    # Each of these may mount or unmount the vault: never under a running report or promote.
    with run_lock(_config(args).state_dir):
        return _run(args, command)


def _run(args: argparse.Namespace, command: str) -> int:
    if command == "mount":
        root = _vault(args).mount(rw=args.rw)
        print(f"vault mounted {'read-write' if args.rw else 'read-only'} at {root}")
    elif command == "umount":
        _vault(args).umount()
    elif command == "status":
        pin = Pin.from_config(_config(args))
        status = _vault(args).status(pin.fingerprint if pin is not None else None)
        print(json.dumps(status.as_dict(), indent=2) if args.json else _render(status))
        return ExitCode.OK if status.is_vault and not status.problems else ExitCode.VAULT_ERROR
    elif command == "install":
        config = _config(args)
        vault = Vault.open(config, device=args.device, warn=warn_stderr)
        declined = confirm_rules(review_vault_rules(vault, config), Console.terminal(),
                                 assume_yes=args.accept_rules, accept_rules=args.accept_rules)
        if declined is not None:
            print(f"aidepy: {declined.reason}", file=sys.stderr)
            return ExitCode.OK
        key = _signing_key(Path(config.signing_key))
        with vault.mounted(rw=True):
            rules = vault.write_rules(config.sources)
            report = install(vault, key)
        print(f"rules: {config.sources[0]} and {len(rules) - 2} included file(s) copied to the vault")
        print(report.message)
    return ExitCode.OK


def _signing_key(path: Path) -> Ed25519PrivateKey:
    """The signing key (the program's manifest is signed like a baseline), its passphrase asked
    on the terminal when it has one."""
    try:
        return keys.load_private_key(path, None)
    except PassphraseError:
        passphrase = Console.terminal(paged=False).secret(f"Passphrase for the signing key {path}: ")
        return keys.load_private_key(path, passphrase.encode())


def _alarm(args: argparse.Namespace) -> int:
    config = _config(args)
    outcome, body = absent_alarm(socket.gethostname(), Path(config.vault_mountpoint))
    notify.log_summary(outcome)
    notify.send(notify.build_message(config.report_email, outcome, body), config.sendmail,
                timeout=config.sendmail_timeout)
    print(body, end="")
    return ExitCode.OK


def _format(args: argparse.Namespace) -> int:
    label, public_key = args.label, args.public_key
    if label is None or public_key is None:
        config = _config(args)
        label = label or config.vault_label
        public_key = public_key or Path(config.public_key or public_key_beside(Path(config.signing_key)))
    medium = format_vault(args.device, label=label, public_key=public_key, force=args.force,
                          fdformat=args.fdformat, warn=warn_stderr)
    print(f"{medium.spec}: formatted as aidepy vault {label!r}")
    return ExitCode.OK


def _render(s: VaultStatus) -> str:
    def size(n: int | None) -> str:
        return "?" if n is None else f"{n} bytes ({n // 1024} KiB)"

    db = s.database
    if db.layout == "none":
        baseline = "none" + (f" ({db.problem})" if db.problem else "")
    elif db.verified:
        created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(db.created or 0))
        where = "on the vault" if db.layout == "vault" else f"anchored, on disk at {db.path}"
        state = "signature verified" if db.signed else "UNSIGNED"
        baseline = f"{where}, generation {db.generation}, created {created}, {db.size} bytes, {state}"
    else:
        baseline = f"DOES NOT VERIFY: {db.problem}"
    mounted = "no" if s.mounted is None else f"{'read-only' if s.mounted == 'ro' else 'read-write'}"
    lines = [
        f"vault:           {s.spec} ({s.kind}{', ' + s.device if s.device and s.device != s.spec else ''})",
        f"filesystem:      {s.fstype or 'none'}, label {s.label or '-'}, uuid {s.uuid or '-'}",
        f"aidepy vault:    {'yes' if s.is_vault else 'NO (no VAULT marker)'}",
        f"mounted:         {mounted} (mountpoint {s.mountpoint})",
        "write-protected: " + (f"yes ({s.write_protect_kind}): {s.write_protect_reason}" if s.write_protected
                               else "NO (writable)"),
        f"size:            {size(s.size_bytes)}, free {size(s.free_bytes)}",
        f"public key:      {s.key_fingerprint or 'none'}",
        f"baseline:        {baseline}",
    ]
    if s.runtime_changes is not None:
        lines.append("runtime:         " + ("unchanged since install" if not s.runtime_changes
                                           else "; ".join(s.runtime_changes)))
    lines += [f"problem:         {p}" for p in s.problems]
    return "\n".join(lines)
