"""The baseline database on disk: write (compress, digest, sign) and open (verify, then stream).

The byte layout is specified in `docs/database-format.md` and encoded by `aidepy.db.format`
(envelope, header) and `aidepy.db.blocks` (body); this module adds the SHA-256 digest, the
Ed25519 signature and file handling.
`open_database` verifies a whole file before it returns; nothing of a file that fails is used.
Callers that write nothing and report only once the whole stream was read (check, compare),
and readers of a file they have just written, open with `check_records=False` and save a full
decode: digest and signature are still checked first, and `entries()` checks every record it
decodes.

    info = write_database(path, entries, host="web1", rules_digest=cfg.digest,
                          generation=7, signing_key=key)
    with open_database(path, public_key) as db:
        for entry in db.entries():
            ...
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from aidepy import __version__
from aidepy.db.blocks import BlockDecoder, BlockEncoder
from aidepy.db.format import (
    FORMAT_VERSION,
    MAGIC,
    MAX_BLOCK_BYTES,
    PREFIX_SIZE,
    SCHEME_ED25519,
    SCHEME_NONE,
    SIGNATURE_CONTEXT,
    TABLE,
    TAIL_SIZE,
    Header,
    decode_header,
    encode_header,
)
from aidepy.entry import Entry
from aidepy.errors import DatabaseReadError, DatabaseWriteError, UnsupportedFormatError, VerificationError
from aidepy.keys import fingerprint, raw_public

__all__ = [
    "Database",
    "DatabaseInfo",
    "Header",
    "open_database",
    "write_and_reopen",
    "write_database",
]

_CHUNK = 1 << 20  # bytes read or written at a time
_SPOOL_MEMORY = 1 << 20  # compressed body kept in memory before the spool moves to a temp file
_MIN_SIZE = PREFIX_SIZE + TAIL_SIZE
_SIGNATURE_OFFSET = 64  # from the end: signature
_DIGEST_OFFSET = 96  # from the end: digest, then signature


@dataclass(frozen=True)
class DatabaseInfo:
    """What `write_database` wrote: its header, the file's SHA-256 and size, whether it is signed."""

    header: Header
    sha256: bytes
    size: int
    signed: bool


def _encode(
    entries: Iterable[Entry], *, host: str, rules_digest: bytes, generation: int,
    signing_key: Ed25519PrivateKey | None, created: int | None,
) -> tuple[Header, Generator[bytes, None, None]]:
    """Consume `entries` into a compressed spool; return the header and the file's byte chunks.

    The body is spooled because the header, which precedes it, holds the entry count and the
    attribute union, known only at the end.
    """
    encoder = BlockEncoder()
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)  # noqa: SIM115 (_chunks closes it)
    try:
        for entry in entries:
            block = encoder.add(entry)
            if block:
                _spool(spool, block)
        _spool(spool, encoder.finish())
    except BaseException:
        spool.close()
        raise
    header = Header(
        format_version=FORMAT_VERSION, aidepy_version=__version__, host=host,
        created=int(time.time()) if created is None else created, generation=generation,
        attributes=encoder.attributes(), rules_digest=rules_digest, entry_count=encoder.count,
    )
    return header, _chunks(header, spool, signing_key)


def _spool(spool: IO[bytes], block: bytes) -> None:
    try:
        spool.write(block)
    except OSError as exc:
        raise DatabaseWriteError(
            f"cannot spool the database body in {tempfile.gettempdir()}: {exc.strerror or exc}"
        ) from exc


def _chunks(
    header: Header, spool: IO[bytes], signing_key: Ed25519PrivateKey | None,
) -> Generator[bytes, None, None]:
    try:
        digest = hashlib.sha256()
        prefix = encode_header(header, TABLE)
        digest.update(prefix)
        yield prefix
        spool.seek(0)
        while chunk := spool.read(_CHUNK):
            digest.update(chunk)
            yield chunk
    finally:
        spool.close()
    if signing_key is None:
        signer = bytes((SCHEME_NONE,)) + bytes(32)
    else:
        signer = bytes((SCHEME_ED25519,)) + raw_public(signing_key.public_key())
    digest.update(signer)
    d = digest.digest()
    signature = bytes(64) if signing_key is None else signing_key.sign(SIGNATURE_CONTEXT + d)
    yield signer + d + signature


def write_database(
    path: Path, entries: Iterable[Entry], *, host: str, rules_digest: bytes, generation: int,
    signing_key: Ed25519PrivateKey | None, created: int | None = None,
) -> DatabaseInfo:
    """Write a database atomically: temp file beside `path` (mode 0600), fsync, rename, fsync the
    directory.

    Any failure (including one raised by `entries`) leaves an existing `path` untouched.
    Raises DatabaseWriteError for I/O failures, ValueError for entries out of order.
    """
    return _write(path, entries, host=host, rules_digest=rules_digest, generation=generation,
                  signing_key=signing_key, created=created, keep=False)[0]


def write_and_reopen(
    path: Path, entries: Iterable[Entry], *, host: str, rules_digest: bytes, generation: int,
    signing_key: Ed25519PrivateKey | None,
) -> tuple[DatabaseInfo, Database]:
    """`write_database`, then the file just written, open for reading through the descriptor it
    was written with: whoever can rename files in `path`'s directory cannot swap what is read.
    Digest and signature are checked again; records as `entries()` reads them."""
    info, fd = _write(path, entries, host=host, rules_digest=rules_digest, generation=generation,
                      signing_key=signing_key, created=None, keep=True)
    assert fd is not None
    return info, Database(Path(path), None, check_records=False, fd=fd)


def _write(
    path: Path, entries: Iterable[Entry], *, host: str, rules_digest: bytes, generation: int,
    signing_key: Ed25519PrivateKey | None, created: int | None, keep: bool,
) -> tuple[DatabaseInfo, int | None]:
    header, chunks = _encode(entries, host=host, rules_digest=rules_digest, generation=generation,
                             signing_key=signing_key, created=created)
    path = Path(path)
    directory = path.parent
    file_hash = hashlib.sha256()
    size = 0
    tmp: str | None = None
    kept: int | None = None
    renamed = False
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        if keep:
            kept = os.dup(fd)
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                file_hash.update(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        tmp = None
        renamed = True
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        if kept is not None:
            os.close(kept)
            kept = None
        intact = not renamed and path.exists()
        raise DatabaseWriteError(
            f"cannot write database {path}: {exc.strerror or exc}"
            + (" (the previous database is intact)" if intact else "")
        ) from exc
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
            if kept is not None:
                os.close(kept)
        chunks.close()
    return DatabaseInfo(header, file_hash.digest(), size, signing_key is not None), kept


def _foreign(path: Path, start: bytes, size: int) -> VerificationError:
    """The refusal for a file that does not start like an aidepy database."""
    if size == 0:
        return VerificationError(f"{path}: empty file, not an aidepy database")
    if start.startswith(b"\x1f\x8b"):
        return VerificationError(
            f"{path}: a gzip file, probably AIDE's own database, not an aidepy database "
            "(build an aidepy baseline with `aidepy init`)"
        )
    if start.startswith((b"@@begin_db", b"# This file was generated by Aide")):
        return VerificationError(
            f"{path}: AIDE's own (uncompressed) database, not an aidepy database "
            "(build an aidepy baseline with `aidepy init`)"
        )
    if MAGIC.startswith(start[:len(MAGIC)]):
        return VerificationError(f"{path}: truncated: {size} bytes, too short for an aidepy database")
    return VerificationError(f"{path}: not an aidepy database (unknown file type)")


class Database:
    """A verified database, open for streaming its entries. Use `open_database` to get one."""

    def __init__(self, path: Path, public_key: Ed25519PublicKey | None, check_records: bool = True,
                 fd: int | None = None) -> None:
        self.path = path
        try:
            # O_NONBLOCK: a fifo planted in place of the database must not hang the check.
            if fd is None:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            self._file = os.fdopen(fd, "rb")
        except FileNotFoundError:
            raise DatabaseReadError(f"{path}: no such database") from None
        except OSError as exc:
            raise DatabaseReadError(f"{path}: cannot read database: {exc.strerror or exc}") from exc
        try:
            self._verify(public_key, check_records)
        except BaseException:
            self._file.close()
            raise

    header: Header
    signed: bool
    """True when the file carries an Ed25519 signature (and it verified)."""
    authenticated: bool
    """True when the signature verified against the public key the caller gave."""
    key_fingerprint: str | None
    """Fingerprint of the key that signed the file, None when unsigned."""
    sha256: bytes
    """SHA-256 of the whole file, as `sha256sum` prints it."""

    def _read(self, offset: int, length: int) -> bytes:
        data = os.pread(self._file.fileno(), length, offset)
        if len(data) != length:
            raise VerificationError(f"{self.path}: file shrank while it was read")
        return data

    def _verify(self, public_key: Ed25519PublicKey | None, check_records: bool) -> None:
        st = os.fstat(self._file.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise VerificationError(f"{self.path}: not a regular file, refused as a database")
        size = self._size = st.st_size
        start = os.pread(self._file.fileno(), PREFIX_SIZE, 0)
        if size < _MIN_SIZE or not start.startswith(MAGIC):
            raise _foreign(self.path, start, size)
        file_hash = hashlib.sha256()
        body_end = size - _DIGEST_OFFSET
        offset = 0
        while offset < body_end:
            chunk = self._read(offset, min(_CHUNK, body_end - offset))
            file_hash.update(chunk)
            offset += len(chunk)
        computed = file_hash.digest()
        tail = self._tail = self._read(size - TAIL_SIZE, TAIL_SIZE)
        file_hash.update(tail[-_DIGEST_OFFSET:])
        self.sha256 = file_hash.digest()
        scheme, embedded, stored = tail[0], tail[1:33], tail[33:65]
        if computed != stored:
            raise VerificationError(
                f"{self.path}: digest mismatch: the file is damaged, truncated or was tampered with"
            )
        self._digest = stored
        self._check_signature(scheme, embedded, tail[-_SIGNATURE_OFFSET:], public_key)
        version = int.from_bytes(start[len(MAGIC):len(MAGIC) + 2], "big")
        if version != FORMAT_VERSION:
            newer = "written by a newer aidepy" if version > FORMAT_VERSION else "of an unknown version"
            raise UnsupportedFormatError(
                f"{self.path}: database format version {version} ({newer}); "
                f"this aidepy reads version {FORMAT_VERSION}"
            )
        self.header, self._table = self._read_header()
        if check_records:
            for _ in self._stream():  # structure check of every record, nothing kept
                pass

    def _check_signature(
        self, scheme: int, embedded: bytes, signature: bytes, public_key: Ed25519PublicKey | None,
    ) -> None:
        if scheme == SCHEME_NONE:
            if public_key is not None:
                raise VerificationError(
                    f"{self.path}: database is unsigned, but a public key is configured "
                    f"({fingerprint(public_key)})"
                )
            self.signed = self.authenticated = False
            self.key_fingerprint = None
            return
        if scheme != SCHEME_ED25519:
            raise VerificationError(f"{self.path}: unknown signature scheme {scheme}")
        try:
            signer = Ed25519PublicKey.from_public_bytes(embedded)
        except ValueError:
            raise VerificationError(f"{self.path}: the embedded public key is not an Ed25519 key") from None
        if public_key is not None and raw_public(public_key) != embedded:
            raise VerificationError(
                f"{self.path}: signed by another key ({fingerprint(signer)}), "
                f"expected {fingerprint(public_key)}"
            )
        try:
            signer.verify(signature, SIGNATURE_CONTEXT + self._digest)
        except InvalidSignature:
            raise VerificationError(
                f"{self.path}: signature does not verify with key {fingerprint(signer)}"
            ) from None
        self.signed = True
        self.authenticated = public_key is not None
        self.key_fingerprint = fingerprint(signer)

    def _read_header(self) -> tuple[Header, tuple[str, ...]]:
        prefix = self._read(0, PREFIX_SIZE)
        length = int.from_bytes(prefix[-4:], "big")
        if PREFIX_SIZE + length > self._size - TAIL_SIZE:
            raise VerificationError(f"{self.path}: structure: header length {length} beyond the body")
        try:
            return decode_header(self._read(PREFIX_SIZE, length))
        except VerificationError as exc:
            raise self._located(exc) from None

    def _located(self, exc: VerificationError) -> VerificationError:
        """`exc` with the database path in front, if the message lacks it."""
        prefix = f"{self.path}: "
        return exc if str(exc).startswith(prefix) else type(exc)(prefix + str(exc))

    def _stream(self) -> Iterator[list[Entry]]:
        """Decode the file from the start, checking structure and, at the end, the digest again."""
        header, _ = self._read_header()
        if header != self.header:
            raise VerificationError(f"{self.path}: changed since it was verified (header differs)")
        offset = PREFIX_SIZE + int.from_bytes(self._read(PREFIX_SIZE - 4, 4), "big")
        file_hash = hashlib.sha256(self._read(0, offset))
        body_end = self._size - TAIL_SIZE
        decoder = BlockDecoder(self._table, header.attributes, header.entry_count)
        try:
            while True:
                if offset + 4 > body_end:
                    raise VerificationError("structure: body ends without its end mark")
                frame = self._read(offset, 4)
                file_hash.update(frame)
                offset += 4
                length = int.from_bytes(frame, "big")
                if not length:
                    break
                if length > MAX_BLOCK_BYTES or offset + length > body_end:
                    raise VerificationError(f"structure: block of {length} bytes does not fit")
                payload = self._read(offset, length)
                file_hash.update(payload)
                offset += length
                yield decoder.decode(payload)
            if offset != body_end:
                raise VerificationError("structure: bytes between the end mark and the signature")
            decoder.finish()
        except VerificationError as exc:
            raise self._located(exc) from None
        tail = self._read(body_end, TAIL_SIZE)
        file_hash.update(tail[:-_DIGEST_OFFSET])
        if (file_hash.digest() != self._digest or tail != self._tail
                or os.fstat(self._file.fileno()).st_size != self._size):
            raise VerificationError(f"{self.path}: changed since it was verified")

    def entries(self) -> Iterator[Entry]:
        """Every entry, in canonical order, streamed from the file.

        The file is re-read and its digest recomputed on the way; the last entry is held back
        until that check passed, so a file changed after verification raises
        VerificationError before a caller can see a complete result.
        """
        held: Entry | None = None
        for batch in self._stream():
            if not batch:
                continue
            if held is not None:
                yield held
            yield from batch[:-1]
            held = batch[-1]
        if held is not None:
            yield held

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        self.close()


def open_database(path: Path, public_key: Ed25519PublicKey | None, *, check_records: bool = True
                  ) -> Database:
    """Open and fully verify a database (signature, digest, structure), or raise VerificationError.

    `check_records=False` leaves out the structure check of the records (a full decode): for a
    caller that only wants the header of a file whose digest and signature verified; `entries()`
    still checks each record it decodes.

    With `public_key`, only a database signed by that key is accepted. Without one, an unsigned
    database is accepted (`signed` False) and a signed one is checked with the key it names
    (`authenticated` False). A verified file of a newer format raises UnsupportedFormatError
    (exit code VERSION_MISMATCH); a missing or unreadable file raises DatabaseReadError.
    """
    return Database(Path(path), public_key, check_records)
