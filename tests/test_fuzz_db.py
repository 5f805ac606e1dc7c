"""Hostile database files: random bytes, mutated files, and mutated files re-sealed (digest and
signature recomputed, as the key holder could, so the structure parser itself is exercised) are
read completely or refused with `VerificationError` (exit 20); nothing else escapes, nothing
hangs.

Hypothesis runs derandomized, so CI sees the same examples every run; each example runs under
a SIGALRM time limit.
"""

from __future__ import annotations

import hashlib
import os
import resource
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import TimeLimitExceeded, time_limit
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aidepy.db.file import open_database, write_database
from aidepy.db.format import SIGNATURE_CONTEXT, TAIL_SIZE
from aidepy.entry import Entry
from aidepy.errors import AidepyError, ExitCode, VerificationError

FUZZ = settings(max_examples=500, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
DIGEST = hashlib.sha256(b"x").digest()
ENTRIES = [
    Entry(b"/etc", "d", frozenset({"p", "u", "g", "m", "n", "i"}),
          {"p": 0o40755, "u": 0, "g": 0, "m": 10**18, "n": 90, "i": 2}),
    Entry(b"/etc/dev\ncon", "c", frozenset({"p", "u"}), {"p": 0o20600, "u": 0}),
    Entry(b"/etc/passwd", "f", frozenset({"p", "s", "sha256", "sha512", "xattrs"}),
          {"p": 0o100644, "s": 1234, "sha256": DIGEST, "sha512": hashlib.sha512(b"x").digest(),
           "xattrs": b"user.a = b\n"}),
    Entry(b"/etc/shadow\xff", "f", frozenset({"p", "s", "sha256", "S"}),
          {"p": 0o100640, "s": 0, "sha256": None}),
    Entry(b"/etc/vim", "l", frozenset({"l", "p"}), {"l": b"/usr/share/vim", "p": 0o120777}),
    *(Entry(b"/etc/x%03d" % n, "f", frozenset({"p", "sha256"}), {"p": 0o100644, "sha256": DIGEST})
      for n in range(20)),
]


def _database(tmp: Path, key: Ed25519PrivateKey | None) -> bytes:
    path = tmp / "aidepy.db"
    write_database(path, ENTRIES, host="web1", rules_digest=bytes(32), generation=3, signing_key=key,
                   created=1_800_000_000)
    return path.read_bytes()


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _database(tmp_path_factory.mktemp("signed"), KEY)


@pytest.fixture(scope="module")
def unsigned(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _database(tmp_path_factory.mktemp("unsigned"), None)


def reseal(data: bytes, key: Ed25519PrivateKey | None) -> bytes:
    """Recompute the digest (and signature) over changed bytes, keeping the tail's signer field."""
    if len(data) < TAIL_SIZE:
        return data
    signer = data[-TAIL_SIZE:-96]
    body = data[:-TAIL_SIZE] + signer
    digest = hashlib.sha256(body).digest()
    return body + digest + (key.sign(SIGNATURE_CONTEXT + digest) if key else bytes(64))


def read_or_refuse(path: Path, data: bytes, public_key: Ed25519PublicKey | None) -> list[Entry] | None:
    """Write `data`, open and read it whole: the entries, or None when refused as it must be."""
    path.write_bytes(data)
    with time_limit(10, f"reading a {len(data)}-byte database"):
        try:
            with open_database(path, public_key) as db:
                entries = list(db.entries())
                assert db.header.entry_count == len(entries)
                return entries
        except VerificationError as exc:
            assert exc.exit_code in (ExitCode.VERIFICATION_FAILED, ExitCode.VERSION_MISMATCH)
            assert str(exc).startswith(f"{path}: "), exc
            return None


def mutate(data: bytes, edits: list[tuple[int, int, bytes]], keep_tail: bool) -> bytes:
    """Apply (offset, deleted length, inserted bytes) edits, inside the body when `keep_tail`."""
    out = bytearray(data)
    limit = len(data) - TAIL_SIZE if keep_tail else len(data)
    for offset, delete, insert in edits:
        at = offset % max(1, min(limit, len(out)))
        out[at:at + delete] = insert
    return bytes(out)


EDITS = st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 8), st.binary(max_size=8)),
                 min_size=1, max_size=4)


def test_the_fuzz_seeds_read_back(tmp_path: Path, signed: bytes, unsigned: bytes) -> None:
    assert read_or_refuse(tmp_path / "db", signed, KEY.public_key()) == ENTRIES
    assert read_or_refuse(tmp_path / "db", unsigned, None) == ENTRIES
    assert read_or_refuse(tmp_path / "db", reseal(signed, KEY), KEY.public_key()) == ENTRIES


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_are_refused(tmp_path: Path, data: bytes) -> None:
    assert read_or_refuse(tmp_path / "db", data, None) is None
    assert read_or_refuse(tmp_path / "db", data, KEY.public_key()) is None


@FUZZ
@given(EDITS)
def test_mutated_signed_database_is_refused(tmp_path: Path, signed: bytes,
                                            edits: list[tuple[int, int, bytes]]) -> None:
    changed = mutate(signed, edits, keep_tail=False)
    if changed != signed:
        assert read_or_refuse(tmp_path / "db", changed, KEY.public_key()) is None


@FUZZ
@given(EDITS)
def test_mutated_and_resealed_database_is_read_or_refused(
    tmp_path: Path, signed: bytes, edits: list[tuple[int, int, bytes]],
) -> None:
    read_or_refuse(tmp_path / "db", reseal(mutate(signed, edits, keep_tail=True), KEY), KEY.public_key())


@FUZZ
@given(EDITS)
def test_mutated_unsigned_database_with_fixed_digest_is_read_or_refused(
    tmp_path: Path, unsigned: bytes, edits: list[tuple[int, int, bytes]],
) -> None:
    read_or_refuse(tmp_path / "db", reseal(mutate(unsigned, edits, keep_tail=True), None), None)


@FUZZ
@given(st.integers(0, 1 << 20), st.binary(min_size=1, max_size=4))
def test_resealed_length_and_count_fields_cannot_exhaust_memory(
    tmp_path: Path, signed: bytes, offset: int, value: bytes,
) -> None:
    # Overwrite bytes with large values (0xff.. runs), where lengths and counts tend to live.
    at = offset % (len(signed) - TAIL_SIZE)
    big = b"\xff" * len(value) if value[0] & 1 else value
    changed = signed[:at] + big + signed[at + len(big):]
    read_or_refuse(tmp_path / "db", reseal(changed[:len(signed)], KEY), KEY.public_key())


def _in_child_with_memory_cap(check: Callable[[], None], headroom: int = 512 << 20) -> str:
    """Run `check` in a forked child whose address space may grow by `headroom` bytes only;
    returns "" or the child's failure (a MemoryError from a huge allocation is one)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(read)
        failure = ""
        try:
            size = int(next(line for line in Path("/proc/self/status").read_text().splitlines()
                            if line.startswith("VmSize:")).split()[1]) * 1024
            resource.setrlimit(resource.RLIMIT_AS, (size + headroom, size + headroom))
            check()
        except BaseException:
            failure = traceback.format_exc()
        finally:
            os.write(write, failure.encode()[:60000])
            os._exit(0)
    os.close(write)
    with time_limit(120, "the memory-capped reader"), os.fdopen(read, "rb") as inp:
        failure = inp.read().decode()
    os.waitpid(pid, 0)
    return failure


def test_huge_lengths_at_every_offset_are_refused_within_bounded_memory(
    tmp_path: Path, signed: bytes,
) -> None:
    """Every 4-byte window of the body set to huge values, re-sealed: read or refused, and the
    reader never needs more than a bounded amount of memory to find out."""
    body_end = len(signed) - TAIL_SIZE

    def check() -> None:
        for offset in range(0, body_end - 3):
            for big in (b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x01\x00\x00"):
                changed = signed[:offset] + big + signed[offset + 4:]
                read_or_refuse(tmp_path / "db", reseal(changed, KEY), KEY.public_key())

    assert _in_child_with_memory_cap(check) == ""


def test_a_fifo_in_place_of_the_database_is_refused_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "aidepy.db")
    try:
        with time_limit(3, "opening a fifo as a database"), pytest.raises(AidepyError):
            open_database(tmp_path / "aidepy.db", None)
    except TimeLimitExceeded as exc:
        pytest.fail(str(exc))
