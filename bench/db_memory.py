"""Benchmark: peak memory of writing a large signed database and of comparing a scan against it.

    .venv/bin/python bench/db_memory.py [--entries 1000000] [--dir DIR]

Writes a signed database of synthetic entries (`p+i+n+u+g+s+m+c+sha256`, a tree of
directories and files like a large server's), then opens it (full verification) and compares
its entry stream with a synthetic "scan" stream that differs in a few places (changed,
added and removed files), as `check` does. Each phase runs in a fresh Python process and
reports its own peak RSS (`VmHWM`; `ru_maxrss` would carry the parent's peak across exec).
Target: the compare phase stays under 100 MB at 1,000,000 entries. A benchmark, not a test:
it asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from aidepy.entry import Entry

ATTRS = frozenset({"p", "i", "n", "u", "g", "s", "m", "c", "sha256"})
DIR_ATTRS = ATTRS - {"sha256"}


def synthetic(entries: int, *, scan: bool = False) -> Iterator[Entry]:
    """About `entries` entries in canonical order: /srv/aNNN/bNNN/fileNNNNNN.

    With `scan`, every 997th file has a new size and digest, every 1009th is missing and every
    1013th has a new sibling, so the comparison has work beyond the merge.
    """
    per_dir = 100
    top = max(1, round((entries / (per_dir + 1)) ** 0.5))
    number = 0
    t0 = 1_700_000_000_000_000_000
    yield Entry(b"/srv", "d", DIR_ATTRS, {"p": 0o40755, "i": 2, "n": top + 2, "u": 0, "g": 0, "s": 4096,
                                          "m": t0, "c": t0})
    for a in range(top):
        yield Entry(b"/srv/a%03d" % a, "d", DIR_ATTRS,
                    {"p": 0o40755, "i": 10 + a, "n": top + 2, "u": 0, "g": 0, "s": 4096, "m": t0, "c": t0})
        for b in range(top):
            directory = b"/srv/a%03d/b%03d" % (a, b)
            yield Entry(directory, "d", DIR_ATTRS, {"p": 0o40755, "i": 100_000 + a * top + b, "n": 2,
                                                    "u": 0, "g": 0, "s": 4096, "m": t0, "c": t0})
            for f in range(per_dir):
                number += 1
                if scan and number % 1009 == 0:
                    continue
                size = number * 7919 % 250_000
                content = number.to_bytes(8, "big")
                if scan and number % 997 == 0:
                    size, content = size + 1, content + b"changed"
                yield Entry(directory + b"/file%06d" % f, "f", ATTRS, {
                    "p": 0o100644, "i": 1_000_000 + number, "n": 1, "u": 0, "g": 0, "s": size,
                    "m": t0 + number * 1_000_003, "c": t0 + number * 999_983 + 17,
                    "sha256": hashlib.sha256(content).digest(),
                })
                if scan and number % 1013 == 0:
                    yield Entry(directory + b"/file%06d.new" % f, "f", ATTRS, {
                        "p": 0o100600, "i": 9_000_000 + number, "n": 1, "u": 0, "g": 0, "s": 1,
                        "m": t0, "c": t0, "sha256": hashlib.sha256(b"new").digest(),
                    })


def peak_rss_kib() -> int:
    found = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    assert found, "no VmHWM in /proc/self/status"
    return int(found[1])


def phase_write(path: Path, entries: int) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from aidepy.db.file import write_database

    key = Ed25519PrivateKey.generate()
    (path.parent / "key.raw").write_bytes(key.private_bytes_raw())
    start, cpu = time.perf_counter(), time.process_time()
    info = write_database(path, synthetic(entries), host="bench", rules_digest=bytes(32), generation=1,
                          signing_key=key)
    print(f"write:   {info.header.entry_count:,} entries, {info.size:,} bytes "
          f"({info.size / info.header.entry_count:.1f} B/entry), wall {time.perf_counter() - start:.1f} s, "
          f"cpu {time.process_time() - cpu:.1f} s, peak RSS {peak_rss_kib() / 1024:.1f} MB")


def phase_compare(path: Path, entries: int) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from aidepy.compare import compare
    from aidepy.db.file import open_database

    public = Ed25519PrivateKey.from_private_bytes((path.parent / "key.raw").read_bytes()).public_key()
    start, cpu = time.perf_counter(), time.process_time()
    with open_database(path, public) as db:
        verified = time.perf_counter() - start
        comparison = compare(db.entries(), synthetic(entries, scan=True))
        changes = sum(1 for _ in comparison)
    summary = comparison.summary
    print(f"compare: verify {verified:.1f} s, then {changes:,} changes "
          f"({summary}), wall {time.perf_counter() - start:.1f} s, cpu {time.process_time() - cpu:.1f} s, "
          f"peak RSS {peak_rss_kib() / 1024:.1f} MB (target < 100 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--entries", type=int, default=1_000_000, help="database size (default 1,000,000)")
    parser.add_argument("--dir", type=Path, help="where to write the database (default: a temp dir)")
    parser.add_argument("--phase", choices=["write", "compare"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        (phase_write if args.phase == "write" else phase_compare)(args.dir / "bench.db", args.entries)
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print(f"aidepy database memory benchmark, {args.entries:,} entries, load {os.getloadavg()[0]:.2f}")
        for phase in ("write", "compare"):
            subprocess.run([sys.executable, __file__, "--phase", phase, "--dir", tmp,
                            "--entries", str(args.entries)], check=True)


if __name__ == "__main__":
    main()
