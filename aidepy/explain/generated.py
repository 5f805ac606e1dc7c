"""Files that package scripts and triggers write, explained only where aidepy can recompute or
check the result from inputs that are themselves explained (evidence `generated`).

Generators handled (`GENERATORS`); every other generated file stays unexplained:
* `update-alternatives`: a link `/etc/alternatives/NAME` whose target is one of the choices
  dpkg's alternatives state lists for NAME (the best one when the group is in `auto` mode),
  and the link a group installs (`/usr/bin/editor` -> `/etc/alternatives/editor`);
* `update-ca-certificates`: a hash link `/etc/ssl/certs/HHHHHHHH.N` whose name is the subject
  hash (`openssl x509 -subject_hash`) of the certificate it points at, a link
  `/etc/ssl/certs/NAME.pem` pointing at a certificate under `/usr/share/ca-certificates`, and
  the bundle `/etc/ssl/certs/ca-certificates.crt` equal to the concatenation, in the tool's
  order, of the certificates `/etc/ca-certificates.conf` selects and the local ones under
  `/usr/local/share/ca-certificates` (each must be explained or unchanged and a package's: a
  local certificate leaves the bundle unexplained, with that reason);
* `ldconfig`: `/etc/ld.so.cache` equal to the cache `ldconfig -X -C` builds afresh into a private
  temporary file, when every library it lists belongs to an installed package.
In each case the files pointed at must be explained in the same report, or unchanged and owned
by an installed package. A file one of them makes that is not what it makes from such inputs
is unexplained with the generator named in the reason.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from aidepy.attributes import BY_NAME
from aidepy.compare import Change
from aidepy.entry import Entry
from aidepy.explain.judge import CRYPTO_HASHES
from aidepy.explain.model import Explanation, Kind

GENERATORS = ("update-alternatives", "update-ca-certificates", "ldconfig")
ALTERNATIVES = b"/etc/alternatives/"
CERTS = b"/etc/ssl/certs/"
LD_CACHE = b"/etc/ld.so.cache"
_HASH_LINK = re.compile(rb"^/etc/ssl/certs/([0-9a-f]{8})\.\d+$")
_CERT_LINK = re.compile(rb"^/etc/ssl/certs/[^/]+\.pem$")
CA_BUNDLE = b"/etc/ssl/certs/ca-certificates.crt"
CA_CONF = "etc/ca-certificates.conf"
CA_SHARED = b"/usr/share/ca-certificates/"
CA_LOCAL = b"/usr/local/share/ca-certificates"

Trusted = Callable[[bytes], bool]
"""Whether a path's content can be relied on: explained in this report, or unchanged and
owned by an installed package."""
Owned = Callable[[bytes], bool]
"""Whether an installed package owns a path (dpkg's index)."""


def _alternatives(root: Path) -> dict[bytes, tuple[bytes, set[bytes]]]:
    """Alternative name -> (the link it installs, the targets it may point at), for masters and
    slaves, from dpkg's alternatives state (`auto` groups: the best choice only)."""
    found: dict[bytes, tuple[bytes, set[bytes]]] = {}
    directory = root / "var/lib/dpkg/alternatives"
    for state in sorted(directory.iterdir()) if directory.is_dir() else []:
        try:
            lines = state.read_bytes().split(b"\n")
        except OSError:
            continue
        if len(lines) < 3:
            continue
        mode, link = lines[0], lines[1]
        slaves: list[tuple[bytes, bytes]] = []
        i = 2
        while i + 1 < len(lines) and lines[i]:
            slaves.append((lines[i], lines[i + 1]))
            i += 2
        i += 1
        choices: list[tuple[int, bytes, list[bytes]]] = []
        while i + 1 < len(lines) and lines[i]:
            path, priority = lines[i], lines[i + 1]
            targets = lines[i + 2: i + 2 + len(slaves)]
            choices.append((int(priority) if priority.strip().lstrip(b"-").isdigit() else 0, path, targets))
            i += 2 + len(slaves)
        if mode == b"auto" and choices:
            choices = [max(choices, key=lambda c: c[0])]
        found[os.fsencode(state.name)] = (link, {c[1] for c in choices})
        for k, (name, slave_link) in enumerate(slaves):
            found[name] = (slave_link, {c[2][k] for c in choices if k < len(c[2]) and c[2][k]})
    return found


def _subject_hash(path: Path) -> bytes | None:
    run = subprocess.run(["openssl", "x509", "-noout", "-subject_hash", "-in", str(path)],
                         capture_output=True, timeout=30, check=False)
    return run.stdout.strip() if run.returncode == 0 else None


def _resolve(root: Path, path: bytes, target: bytes, hops: int = 8) -> bytes | None:
    """Where the link at `path` (pointing at `target`) leads inside `root`, links followed."""
    for _ in range(hops):
        path = os.path.normpath(os.path.join(os.path.dirname(path), target))
        try:
            target = os.readlink(os.fsencode(root) + path)
        except OSError:
            return path  # not a link (or gone): the end of the chain
    return None


def ld_cache(root: Path) -> tuple[bytes, list[bytes]] | None:
    """(the cache `ldconfig` builds now from the libraries under `root`, the libraries it lists),
    written to a private temporary file (no links are changed: -X)."""
    inside = str(root) != "/"
    with tempfile.TemporaryDirectory(prefix=".aidepy-ldconfig-", dir=root if inside else None) as work:
        cache = f"/{Path(work).name}/ld.so.cache" if inside else f"{work}/ld.so.cache"
        chroot = ["-r", str(root)] if inside else []
        build = subprocess.run(["ldconfig", "-X", *chroot, "-C", cache], capture_output=True, timeout=120,
                               check=False)
        listing = subprocess.run(["ldconfig", *chroot, "-C", cache, "-p"], capture_output=True,
                                 timeout=60, check=False)
        if build.returncode != 0 or listing.returncode != 0:
            return None
        data = Path(work, "ld.so.cache").read_bytes()
    libraries = [line.rsplit(b" => ", 1)[1].strip() for line in listing.stdout.splitlines()
                 if b" => " in line]
    return data, libraries


def explain_generated(changes: Iterable[Change], root: Path, trusted: Trusted,
                      owned: Owned) -> dict[bytes, Explanation]:
    """Explanations for the `changes` a handled generator accounts for (evidence `generated`),
    and for those that a handled generator makes but that are not what it makes from explained
    inputs (unexplained, with the reason)."""
    changes = list(changes)
    alternatives = _alternatives(root) if changes else {}
    found = {}
    for change in changes:
        if change.new is not None and (made := _generator(change.path, change.new, root, trusted, owned,
                                                            alternatives)):
            by, why = made
            found[change.path] = Explanation(Kind.GENERATED, by=by) if why is None else \
                Explanation(Kind.UNEXPLAINED, reason=f"{by}: {why}")
    return found


Made = tuple[str, str | None]
"""The generator that makes a path, and why it is not what it makes from explained inputs
(None: it is)."""


def _made(by: str, ok: bool) -> Made:
    return by, None if ok else "not what it makes from explained inputs"


def _generator(path: bytes, new: Entry, root: Path, trusted: Trusted, owned: Owned,
               alternatives: Mapping[bytes, tuple[bytes, set[bytes]]]) -> Made | None:
    """The handled generator that makes `path`, and whether it accounts for `new`; None when no
    handled generator makes it."""
    target = new.values.get("l")
    if new.ftype == "f" and path == LD_CACHE:
        return _made("ldconfig", _ldconfig(new, root, owned))
    if new.ftype == "f" and path == CA_BUNDLE:
        return "update-ca-certificates", _ca_bundle(new, root, trusted)
    if new.ftype != "l" or not isinstance(target, bytes):
        return None
    if path.startswith(ALTERNATIVES) or target.startswith(ALTERNATIVES):
        return _made("update-alternatives", _alternative(path, target, alternatives, trusted))
    if (m := _HASH_LINK.match(path)) is not None:
        end = _resolve(root, path, target)
        return _made("update-ca-certificates", end is not None and trusted(end) and _subject_hash(
            Path(os.fsdecode(os.fsencode(root) + end))) == m.group(1))
    if _CERT_LINK.match(path):
        return _made("update-ca-certificates", target.startswith(CA_SHARED) and trusted(target))
    return None


def _bundled(root: Path) -> list[bytes]:
    """The certificates `update-ca-certificates` concatenates into its bundle, in its order: those
    `/etc/ca-certificates.conf` selects (not `!`-deselected, present), then the local ones
    (`/usr/local/share/ca-certificates/**/*.crt`, sorted)."""
    try:
        lines = (root / CA_CONF).read_bytes().splitlines()
    except OSError:
        lines = []
    selected = [os.path.normpath(CA_SHARED + line.strip()) for line in lines
                if line.strip() and not line.startswith((b"#", b"!"))]
    prefix = os.fsencode(root).rstrip(b"/")
    found = [p for p in selected if os.path.isfile(prefix + p)]
    local = []
    for directory, _, files in os.walk(prefix + CA_LOCAL):  # a linked directory's are missed: unexplained
        local += [os.path.join(directory, f)[len(prefix):] for f in files if f.endswith(b".crt")]
    return found + sorted(local)


def _ca_bundle(entry: Entry, root: Path, trusted: Trusted) -> str | None:
    """Why `entry` is not the bundle `update-ca-certificates` makes from explained certificates
    (each with a newline added where it lacks one), or None when it is."""
    certs = _bundled(root)
    untrusted = [os.fsdecode(c) for c in certs if not trusted(c)]
    if untrusted:
        more = f" (and {len(untrusted) - 1} more)" if len(untrusted) > 1 else ""
        return f"it includes {untrusted[0]}{more}, which this report does not explain and no package " \
               "ships unchanged"
    parts = []
    for cert in certs:
        data = _regular_file(os.fsencode(root) + cert)
        if data is None:
            return f"{os.fsdecode(cert)} is not a readable regular file"
        parts.append(data + b"\n" if data and not data.endswith(b"\n") else data)
    if not _same_content(entry, b"".join(parts)):
        return "not the concatenation of the certificates /etc/ca-certificates.conf selects"
    return None


def _regular_file(path: bytes) -> bytes | None:
    """The content of the regular file at `path` (a fifo or device is never read: it could block)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return None
    with open(fd, "rb") as f:
        return f.read() if stat.S_ISREG(os.fstat(fd).st_mode) else None


def _same_content(entry: Entry, data: bytes) -> bool:
    """Whether `data` is the content `entry` records, by its first cryptographic hash (False
    when it records none)."""
    recorded = sorted(entry.attrs & CRYPTO_HASHES)
    new = BY_NAME[recorded[0]].new_hash if recorded else None
    if new is None:
        return False
    hasher = new()
    hasher.update(data)
    return hasher.digest() == entry.values.get(recorded[0])


def _alternative(path: bytes, target: bytes, alternatives: Mapping[bytes, tuple[bytes, set[bytes]]],
                 trusted: Trusted) -> bool:
    if path.startswith(ALTERNATIVES):
        link, choices = alternatives.get(path[len(ALTERNATIVES):], (b"", set()))
        ok = target in choices and trusted(target)
    else:  # the group's own link, e.g. /usr/bin/editor -> /etc/alternatives/editor
        link, _ = alternatives.get(target[len(ALTERNATIVES):], (b"", set()))
        ok = link == path
    return ok


def _ldconfig(entry: Entry, root: Path, owned: Owned) -> bool:
    if not entry.attrs & CRYPTO_HASHES:
        return False
    built = ld_cache(root)
    if built is None or not _same_content(entry, built[0]):
        return False
    prefix = os.fsencode(root) if str(root) != "/" else b""
    return all(owned(lib) or owned(os.path.realpath(prefix + lib)[len(prefix):]) for lib in built[1])
