"""The apt keyrings explanations trust: found on the host by promote, copied onto the vault, and
read back only from the vault at check time (a keyring added on the host later is never trusted).

apt trusts `/etc/apt/trusted.gpg`, the files in `/etc/apt/trusted.gpg.d/` and each source's
`signed-by` keyring (one-line `sources.list` entries and deb822 `.sources` files, whose
`Signed-By:` may also hold the key itself, inline: that key is copied like a file). On the vault
the copies live under `apt-keyrings/`, with an index (`apt-keyrings/SOURCES`: digest, original
path, copy name), the way the rules copy is kept.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

from debian.deb822 import Deb822

from aidepy.errors import VaultFullError
from aidepy.vault.layout import KEYRINGS_DIR, KEYRINGS_INDEX

if TYPE_CHECKING:
    from aidepy.vault.vault import Vault

_INLINE = " (inline Signed-By, entry "
_SIGNED_BY = re.compile(r"\[[^]]*\bsigned-by=([^]\s]+)")


def _under(root: bytes, path: str) -> Path:
    return Path(os.fsdecode(root) + path) if root else Path(path)


def _inline(value: str) -> bytes:
    """An inline `Signed-By:` key as the armored text it stands for (deb822 continuation lines
    unindented, ` .` for an empty line)."""
    lines = [line.strip() for line in value.strip().splitlines()]
    return "".join(("" if line == "." else line) + "\n" for line in lines).encode()


def _signed_by(root: bytes) -> Iterator[tuple[str, bytes | None]]:
    """Each source's `signed-by` keyrings: (path, None) for a keyring file; for a key written
    inline in a deb822 `.sources` file, (`FILE (inline Signed-By, entry N)`, the key)."""
    etc = _under(root, "/etc/apt")
    for path in [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if line.lstrip().startswith("deb") and (m := _SIGNED_BY.search(line)):
                yield from ((p, None) for p in m.group(1).split(","))
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        try:
            with open(path, "rb") as f:
                paragraphs = list(Deb822.iter_paragraphs(f, use_apt_pkg=False))
        except OSError:
            continue
        for number, para in enumerate(paragraphs, 1):
            value = para.get("Signed-By", "").strip()
            if value.startswith("-----BEGIN PGP"):
                yield f"/etc/apt/sources.list.d/{path.name}{_INLINE}{number})", _inline(value)
            elif value.startswith("/"):
                yield from ((p, None) for p in value.split())


def trusted_keyrings(root: bytes = b"") -> dict[str, bytes]:
    """The keyrings apt on the host under `root` trusts: where each comes from (an absolute path
    on that host, or the `.sources` entry that holds it inline) -> its content."""
    paths = []
    if _under(root, "/etc/apt/trusted.gpg").is_file():
        paths.append("/etc/apt/trusted.gpg")
    parts = _under(root, "/etc/apt/trusted.gpg.d")
    if parts.is_dir():
        paths += [f"/etc/apt/trusted.gpg.d/{p.name}" for p in sorted(parts.iterdir())
                  if p.suffix in (".gpg", ".asc") and p.is_file()]
    found: dict[str, bytes] = {}
    for origin, inline in [*((p, None) for p in paths), *_signed_by(root)]:
        if inline is not None:
            found.setdefault(origin, inline)
        elif origin not in found and _under(root, origin).is_file():  # never a fifo that blocks
            with suppress(OSError):
                found[origin] = _under(root, origin).read_bytes()
    return found


def copies(keyrings: dict[str, bytes]) -> list[tuple[str, str, bytes]]:
    """(copy name under the vault's `apt-keyrings/`, origin, content) for each keyring."""
    return [(f"{KEYRINGS_DIR}/{i:02d}-{_copy_name(origin)}", origin, data)
            for i, (origin, data) in enumerate(keyrings.items())]


def _copy_name(origin: str) -> str:
    path, inline, entry = origin.partition(_INLINE)
    return f"{Path(path).stem}-inline-{entry.rstrip(')')}.asc" if inline else Path(path).name


def index_text(entries: list[tuple[str, str, bytes]]) -> bytes:
    return "".join(f"{hashlib.sha256(data).hexdigest()}  {original}  {name}\n"
                   for name, original, data in entries).encode()


def _index(vault_root: Path) -> list[tuple[str, str, str]] | None:
    try:
        lines = (vault_root / KEYRINGS_INDEX).read_text().splitlines()
    except OSError:
        return None
    return [tuple(line.split("  ", 2)) for line in lines if line.count("  ") >= 2]  # type: ignore[misc]


def vault_keyrings(vault_root: Path) -> list[bytes] | None:
    """The keyrings copied onto the (mounted) vault, each checked against its index digest;
    None when the vault holds none."""
    index = _index(vault_root)
    if index is None:
        return None
    found = []
    for digest, _, name in index:
        try:
            data = (vault_root / name).read_bytes()
        except OSError:
            continue
        if hashlib.sha256(data).hexdigest() == digest:
            found.append(data)
    return found


def keyring_changes(vault_root: Path, root: bytes = b"") -> list[str]:
    """How the keyrings apt trusts on the host differ from the vault's copies, one line each."""
    index = _index(vault_root)
    live = trusted_keyrings(root)
    if index is None:
        return ["the vault holds no copy of apt's keyrings (promote copies them)"]
    problems = []
    copied = set()
    for digest, original, _ in index:
        copied.add(original)
        try:
            current = live[original] if original in live or _INLINE in original else \
                _under(root, original).read_bytes()
        except KeyError:  # an inline key no source holds any more
            problems.append(f"apt keyring {original} is no longer trusted by apt")
            continue
        except OSError as exc:
            problems.append(f"apt keyring {original}: {exc.strerror}")
            continue
        if hashlib.sha256(current).hexdigest() != digest:
            problems.append(f"apt keyring {original} differs from the copy on the vault")
        elif original not in live:
            problems.append(f"apt keyring {original} is no longer trusted by apt")
    problems += [f"apt keyring {origin} is trusted by apt but not on the vault (not trusted for "
                 "explanations until promote copies it)" for origin in live if origin not in copied]
    return problems


def write_keyrings(vault: Vault, root: bytes = b"") -> str | None:
    """Copy the keyrings apt trusts onto the read-write mounted vault (a copy already there
    unchanged is left alone), then their index, and remove stale copies. Returns why they were
    not copied (the vault is full) or None; the baseline is written by then, and a vault without
    keyrings only limits explanations to evidence `dpkg`."""
    entries = copies(trusted_keyrings(root))
    there = {name: digest for digest, _, name in _index(vault.root) or []}
    try:
        for name, _, data in entries:
            if there.get(name) != hashlib.sha256(data).hexdigest() or not (vault.root / name).is_file():
                vault.write_file(name, [data])
        vault.write_file(KEYRINGS_INDEX, [index_text(entries)])
    except VaultFullError as exc:
        return f"apt's keyrings were not copied onto the vault ({exc}): explanations are limited to " \
               "evidence 'dpkg' until they fit"
    keep = {name for name, _, _ in entries} | {KEYRINGS_INDEX}
    for path in sorted((vault.root / KEYRINGS_DIR).iterdir()):
        if f"{KEYRINGS_DIR}/{path.name}" not in keep:
            vault.remove(f"{KEYRINGS_DIR}/{path.name}")
    return None
