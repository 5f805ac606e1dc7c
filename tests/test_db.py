"""The baseline database: what goes in comes out, written atomically, read as a stream."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aidepy.attributes import CATALOGUE, Kind
from aidepy.db.blocks import HISTORY
from aidepy.db.file import open_database, write_database
from aidepy.entry import Entry, Value, sort_key
from aidepy.errors import DatabaseReadError, DatabaseWriteError

ALL_ATTRS = frozenset(a.name for a in CATALOGUE)


def value_for(name: str, n: int) -> Value:
    """A value of the right type for attribute `name`, varied by `n`."""
    kind = next(a.kind for a in CATALOGUE if a.name == name)
    if kind is Kind.STAT:
        return n * 1_000_000_007 + 3
    return bytes([n % 256]) * (n % 70)


def odd_entries() -> list[Entry]:
    """Entries that stress the format: odd names, every attribute, None, empty and huge values."""
    every = {a.name: value_for(a.name, 5) for a in CATALOGUE if a.kind is not Kind.FLAG}
    entries = [
        Entry(b"/", "d", frozenset({"p", "u", "g"}), {"p": 0o40755, "u": 0, "g": 0}),
        Entry(b"/bin", "l", frozenset({"l", "p"}), {"l": b"usr/bin", "p": 0o120777}),
        Entry(b"/etc", "d", frozenset(), {}),
        Entry(b"/etc/all", "f", ALL_ATTRS, every),
        Entry(b"/etc/empty values", "f", frozenset({"l", "sha256", "xattrs", "acl"}),
              {"l": b"", "sha256": b"", "xattrs": b"", "acl": b""}),
        Entry(b"/etc/huge", "f", frozenset({"s", "i", "m", "n"}),
              {"s": 2**300 + 1, "i": 2**64 - 1, "m": -(2**70) - 12345, "n": 0}),
        Entry(b"/etc/line\nbreak", "f", frozenset({"p", "md5"}), {"p": None, "md5": None}),
        Entry(b"/etc/negative times", "f", frozenset({"a", "c", "m"}),
              {"a": -1, "c": -1_000_000_000, "m": -999_999_999}),
        Entry(b"/etc/not-utf8-\xff\xfe\x80", "f", frozenset({"sha512"}),
              {"sha512": hashlib.sha512(b"x").digest()}),
        Entry(b"/etc/not-utf8-\xff\xfe\x80/child", "p", frozenset({"S", "I", "ANF", "ARF", "growing"}), {}),
        Entry(b"/etc/only-values", "s", frozenset(), {"u": 7}),
        Entry(b"/etc/tab\tand space", "c", frozenset({"xattrs"}),
              {"xattrs": hashlib.sha256(b"y").digest() * 3125}),
        Entry(b"/etc/\xe2\x82\xac", "b", frozenset({"caps"}), {"caps": b"\0\1\2"}),
        Entry(b"/etc2", "D", frozenset({"ftype"}), {"ftype": b"D"}),
    ]
    assert entries == sorted(entries, key=lambda e: sort_key(e.path))
    return entries


def read_back(path: Path) -> list[Entry]:
    with open_database(path, None) as db:
        return list(db.entries())


def test_odd_entries_round_trip(tmp_path: Path) -> None:
    entries = odd_entries()
    info = write_database(tmp_path / "db", entries, host="h\udcff", rules_digest=b"\x01" * 32,
                          generation=12, signing_key=None, created=1_700_000_000)
    assert read_back(tmp_path / "db") == entries
    with open_database(tmp_path / "db", None) as db:
        assert db.header == info.header
        assert db.header.host == "h\udcff"
        assert db.header.entry_count == len(entries)
        assert db.header.generation == 12 and db.header.created == 1_700_000_000
        assert db.header.attributes == ALL_ATTRS
        assert db.sha256 == info.sha256 and info.size == (tmp_path / "db").stat().st_size
        assert not db.signed and db.key_fingerprint is None


def test_signed_database_names_its_key(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    info = write_database(tmp_path / "db", odd_entries(), host="h", rules_digest=b"", generation=1,
                          signing_key=key)
    assert info.signed
    with open_database(tmp_path / "db", key.public_key()) as db:
        assert db.signed and db.authenticated
        assert db.key_fingerprint is not None and db.key_fingerprint.startswith("SHA256:")
        assert list(db.entries()) == odd_entries()
    with open_database(tmp_path / "db", None) as db:
        assert db.signed and not db.authenticated



def test_empty_database_round_trip(tmp_path: Path) -> None:
    info = write_database(tmp_path / "db", [], host="h", rules_digest=b"", generation=0, signing_key=None)
    assert info.header.entry_count == 0 and info.header.attributes == frozenset()
    assert read_back(tmp_path / "db") == []


def many(n: int, digest_every: int = 0) -> Iterator[Entry]:
    """`n` synthetic regular files in canonical order, spread over directories."""
    attrs = frozenset({"p", "i", "n", "u", "g", "s", "m", "c", "sha256"})
    for k in range(n):
        path = b"/data/d%04d/file%06d" % (k // 1000, k)
        digest = (k % digest_every if digest_every else k).to_bytes(32, "big")
        yield Entry(path, "f", attrs, {
            "p": 0o100644, "i": 1000 + k * 7 % 1013, "n": 1, "u": 0, "g": 0, "s": k * 37 % 100_003,
            "m": 1_600_000_000_123_456_789 + k, "c": 1_700_000_000_000_000_000 - k * 1_000_003,
            "sha256": digest,
        })


def test_many_blocks_round_trip(tmp_path: Path) -> None:
    # Crosses block boundaries: path sharing, deltas and back references carry over.
    write_database(tmp_path / "db", many(10_000, digest_every=97), host="h", rules_digest=b"",
                   generation=1, signing_key=None)
    assert read_back(tmp_path / "db") == list(many(10_000, digest_every=97))


def digests(n: int, period: int) -> Iterator[Entry]:
    """`n` files whose digests repeat every `period` files."""
    for k in range(n):
        yield Entry(b"/f%06d" % k, "f", frozenset({"sha256"}), {"sha256": (k % period).to_bytes(32, "big")})


@pytest.mark.parametrize("period", [HISTORY, HISTORY + 1])
def test_repeats_at_and_beyond_the_history_round_trip(tmp_path: Path, period: int) -> None:
    n = HISTORY + 10
    write_database(tmp_path / "db", digests(n, period), host="h", rules_digest=b"", generation=1,
                   signing_key=None)
    with open_database(tmp_path / "db", None) as db:
        assert all(got == expected for got, expected in zip(db.entries(), digests(n, period), strict=True))


def test_entries_out_of_order_are_refused_and_the_old_database_survives(tmp_path: Path) -> None:
    target = tmp_path / "db"
    write_database(target, odd_entries(), host="h", rules_digest=b"", generation=1, signing_key=None)
    before = target.read_bytes()
    bad = [Entry(b"/a/b", "f", frozenset(), {}), Entry(b"/a.b", "f", frozenset(), {}),
           Entry(b"/a", "d", frozenset(), {})]
    with pytest.raises(ValueError, match="canonical order"):
        write_database(target, bad, host="h", rules_digest=b"", generation=2, signing_key=None)
    with pytest.raises(ValueError, match="canonical order"):
        write_database(target, [bad[0], bad[0]], host="h", rules_digest=b"", generation=2, signing_key=None)
    with pytest.raises(ValueError, match="cannot hold a NUL byte"):
        write_database(target, [Entry(b"/a\0b", "f", frozenset(), {})], host="h", rules_digest=b"",
                       generation=2, signing_key=None)
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["db"]


def test_a_failing_entry_stream_leaves_the_old_database_intact(tmp_path: Path) -> None:
    target = tmp_path / "db"
    write_database(target, odd_entries(), host="h", rules_digest=b"", generation=1, signing_key=None)
    before = target.read_bytes()

    def failing() -> Iterator[Entry]:
        yield from many(5000)
        raise OSError("disk vanished mid-scan")

    with pytest.raises(OSError, match="mid-scan"):
        write_database(target, failing(), host="h", rules_digest=b"", generation=2, signing_key=None)
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["db"]


def test_bad_values_are_refused(tmp_path: Path) -> None:
    for values in ({"p": b"not an int"}, {"sha256": 5}, {"p": True}, {"nosuch": 1}):
        entry = Entry(b"/x", "f", frozenset(), values)
        with pytest.raises(ValueError):
            write_database(tmp_path / "db", [entry], host="h", rules_digest=b"", generation=1,
                           signing_key=None)
    with pytest.raises(ValueError, match="file type"):
        write_database(tmp_path / "db", [Entry(b"/x", "x", frozenset(), {})], host="h", rules_digest=b"",
                       generation=1, signing_key=None)


def test_writing_into_a_missing_directory_is_a_write_error(tmp_path: Path) -> None:
    with pytest.raises(DatabaseWriteError, match="cannot write database"):
        write_database(tmp_path / "nodir" / "db", [], host="h", rules_digest=b"", generation=1,
                       signing_key=None)


FULL_DISK_WRITER = """
import resource, signal, sys
from pathlib import Path
from aidepy.db.file import write_database
from aidepy.errors import DatabaseWriteError
sys.path.insert(0, sys.argv[2])
from test_db import many
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # writes beyond 20 kB fail: EFBIG
try:
    write_database(Path(sys.argv[1]), many(20_000), host="h", rules_digest=b"", generation=2,
                   signing_key=None)
except DatabaseWriteError as exc:
    print(exc)
"""


def test_a_write_that_runs_out_of_space_keeps_the_previous_database(tmp_path: Path) -> None:
    target = tmp_path / "db"
    write_database(target, odd_entries(), host="h", rules_digest=b"", generation=1, signing_key=None)
    before = target.read_bytes()
    result = subprocess.run([sys.executable, "-c", FULL_DISK_WRITER, str(target), str(Path(__file__).parent)],
                            capture_output=True, text=True, check=True)
    assert "cannot write database" in result.stdout and "the previous database is intact" in result.stdout
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["db"]


def test_a_missing_database_is_a_read_error(tmp_path: Path) -> None:
    with pytest.raises(DatabaseReadError, match="no such database"):
        open_database(tmp_path / "absent", None)


# Peak RSS from VmHWM: ru_maxrss would carry the (larger) test process's peak across fork+exec.
READER = """
import re, sys
from pathlib import Path
from aidepy.db.file import open_database
with open_database(Path(sys.argv[1]), None) as db:
    count = sum(1 for _ in db.entries())
print(count, re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text())[1])
"""


def test_reading_streams_instead_of_holding_the_database(tmp_path: Path) -> None:
    n = 100_000
    write_database(tmp_path / "db", many(n), host="h", rules_digest=b"", generation=1, signing_key=None)
    out = subprocess.run([sys.executable, "-c", READER, str(tmp_path / "db")],
                         capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) == n
    # Measured here: the interpreter with aidepy imported peaks near 28 MB, streaming adds about
    # 11 MB (one block of 4,096 entries, column streams, value history), while holding the
    # 100,000 entries (an Entry, a dict of nine values, bytes and ints each) adds over 45 MB.
    assert int(out[1]) < 60 * 1024, f"peak RSS {out[1]} KiB"


def test_a_file_renamed_over_after_opening_does_not_change_what_is_read(tmp_path: Path) -> None:
    write_database(tmp_path / "db", odd_entries(), host="h", rules_digest=b"", generation=1, signing_key=None)
    with open_database(tmp_path / "db", None) as db:
        write_database(tmp_path / "db", many(10), host="h", rules_digest=b"", generation=2, signing_key=None)
        assert list(db.entries()) == odd_entries()


names = st.binary(min_size=1, max_size=6).filter(lambda c: b"/" not in c and b"\0" not in c)
paths = st.lists(st.lists(names, min_size=1, max_size=4), max_size=30)
values = st.one_of(st.none(), st.integers(min_value=-(2**80), max_value=2**80))
blobs = st.one_of(st.none(), st.binary(max_size=40), st.sampled_from([b"same", b""]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(paths, st.data())
def test_any_entries_round_trip(components: list[list[bytes]], data: st.DataObject) -> None:
    unique = sorted({b"/" + b"/".join(c) for c in components}, key=sort_key)
    entries = []
    for path in unique:
        names = data.draw(st.sets(st.sampled_from(["p", "s", "m", "i", "sha256", "l", "xattrs", "S"])))
        vals: dict[str, Value] = {}
        for name in names - {"S"}:
            vals[name] = data.draw(blobs if name in ("sha256", "l", "xattrs") else values)
        entries.append(Entry(path, data.draw(st.sampled_from("fdlcbpsD")), frozenset(names), vals))
    with tempfile.TemporaryDirectory() as tmp:
        write_database(Path(tmp) / "db", entries, host="h", rules_digest=b"", generation=1, signing_key=None)
        assert read_back(Path(tmp) / "db") == entries


# names that are prefixes of each other, followed by bytes below and above "/"
close_names = st.sampled_from([b"a", b"a.", b"a-", b"a\x01", b"a0", b"\xff", b"b"])


@given(st.lists(st.lists(close_names, min_size=1, max_size=4), min_size=2, max_size=20))
def test_the_canonical_order_compares_paths_component_by_component(components: list[list[bytes]]) -> None:
    # sort_key is one bytes object; the order it gives must be the component-wise one: a
    # directory right before its contents, siblings by name bytes (b"/a/b" before b"/a.b")
    paths = [b"/" + b"/".join(c) for c in components]
    assert sorted(paths, key=sort_key) == sorted(paths, key=lambda p: p.split(b"/"))
