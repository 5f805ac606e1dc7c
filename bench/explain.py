"""Benchmark: what explaining the changes of an upgrade costs, as a ratio to the check alone.

Real Debian packages (from apt's cache, else `apt-get download`) are repacked twice with a
bumped version (`+bench1`, `+bench2`; maintainer scripts and dependencies dropped, so they
install into a tree), published in a local repository signed with a test key, installed into
a tree by apt-get (`AptTree` of tests/conftest.py), recorded, then upgraded: every file is replaced,
as in a real upgrade. Then, alternating, the check of a real tree (`--reference`, default
/usr, read only, as a server's daily check covers it), the check of the upgraded tree (scan
and compare with the baseline), the explanations of its changes (dpkg index, gpgv, the `.deb`
files read and hashed), and the verification of the host's own apt indexes (its `InRelease`
files and `Packages` indexes, with the keyrings apt trusts, for the same package names: what
a real host adds to the tree's one small source), and the medians:

    .venv/bin/python bench/explain.py                 # 50 packages, 3 rounds, /usr as reference
    .venv/bin/python bench/explain.py --packages 80 --rounds 5 --reference /usr/lib
    .venv/bin/python bench/explain.py --rounds 1 --profile 40

Each part is measured in CPU time (user and system time of this process and of the children
it waited for: the scan's workers, the explanations' worker processes, gpgv, apt-helper), which
other work on a shared machine disturbs far less than wall time (also printed). Ratios: to the
check of the upgraded packages' files alone (the worst case: nothing else is checked), and to
the check of the real tree, without and with the host's indexes.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # conftest

from conftest import AptTree

from aidepy.compare import Change, compare
from aidepy.config.evaluate import Config, parse_text
from aidepy.db.file import open_database, write_database
from aidepy.explain.archive import ArchiveIndex
from aidepy.explain.engine import Sources, explain
from aidepy.explain.keyring import trusted_keyrings
from aidepy.scan.walk import scan

CACHE = Path("/var/cache/apt/archives")
HOST_LISTS = Path("/var/lib/apt/lists")
T = TypeVar("T")
DROP = ("Depends", "Pre-Depends", "Recommends", "Suggests", "Breaks", "Conflicts", "Replaces",
        "Essential", "Protected", "Enhances")


def cpu_seconds() -> float:
    """User and system time of this process and of the children it waited for (scan workers,
    the explanations' worker processes, gpgv, ldconfig)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measured(run: Callable[[], T]) -> tuple[T, float, float]:
    """What `run` returns, with the CPU seconds (see cpu_seconds) and wall seconds it took."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    result = run()
    return result, cpu_seconds() - cpu, time.perf_counter() - wall


def real_debs(count: int) -> list[Path]:
    """`count` real .deb files of 20 KiB to 4 MiB from apt's cache (one version per package)."""
    seen: set[str] = set()
    found = []
    for deb in sorted(CACHE.glob("*.deb")):
        name = deb.name.split("_")[0]
        if name in seen or not 20 << 10 <= deb.stat().st_size <= 4 << 20:
            continue
        seen.add(name)
        found.append(deb)
        if len(found) == count:
            return found
    raise SystemExit(f"only {len(found)} usable .deb files in {CACHE} (apt-get download some)")


def repack(deb: Path, suffix: str, out: Path, work: Path) -> Path:
    """`deb` with `suffix` added to its version, without maintainer scripts or dependencies."""
    src = work / f"{deb.stem}{suffix}"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(src)], check=True)
    control = src / "DEBIAN/control"
    lines, skip = [], False
    for line in control.read_text().splitlines():
        if not line.startswith((" ", "\t")):
            skip = line.split(":", 1)[0] in DROP
        if skip:
            continue
        lines.append(line + suffix if line.startswith("Version:") else line)
    control.write_text("\n".join(lines) + "\n")
    for script in ("preinst", "postinst", "prerm", "postrm", "config", "triggers", "templates"):
        (src / "DEBIAN" / script).unlink(missing_ok=True)
    target = out / f"{deb.stem}{suffix}.deb"
    subprocess.run(["dpkg-deb", "-Zxz", "-b", str(src), str(target)], check=True, capture_output=True)
    subprocess.run(["rm", "-rf", str(src)], check=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packages", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="first profile one explanation run (cProfile, this process only) and "
                             "print its N most expensive calls")
    parser.add_argument("--reference", default="/usr",
                        help="a real tree whose check the explanations are also compared with (read only)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aidepy-bench-explain-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        tree = AptTree(work / "apt")
        tree.work.mkdir()
        tree.setup()
        (work / "v1").mkdir()
        (work / "v2").mkdir()
        debs = real_debs(args.packages)
        v1 = [repack(d, "+bench1", work / "v1", work) for d in debs]
        v2 = [repack(d, "+bench2", work / "v2", work) for d in debs]
        names = sorted({d.name.split("_")[0] for d in debs})
        overwrite = ("-o", "DPkg::Options::=--force-overwrite")
        tree.publish(*v1)
        tree.apt_get("update")
        tree.apt_get(*overwrite, "install", *names)
        config = parse_text(f"root_prefix={tree.root}\n/usr p+i+n+u+g+s+m+c+sha256\n"
                            f"/etc p+i+n+u+g+s+m+c+sha256\n")
        baseline = work / "aidepy.db"
        write_database(baseline, scan(config.ruleset, root_prefix=config.root_prefix, on_warning=print),
                       host=socket.gethostname(), rules_digest=config.digest, generation=1,
                       signing_key=None)
        since = time.time() - 1
        tree.publish(*v2)
        tree.apt_get("update")
        tree.apt_get(*overwrite, "upgrade")
        reference = parse_text(f"{args.reference} p+i+n+u+g+s+m+c+sha256\n")
        reference_db = work / "reference.db"
        write_database(reference_db, scan(reference.ruleset, on_warning=lambda w: None),
                       host=socket.gethostname(), rules_digest=reference.digest, generation=1,
                       signing_key=None)
        keyring = (tree.root / "etc/apt/trusted.gpg.d/test-archive.gpg").read_bytes()
        sources = Sources(config.root_prefix, [keyring], since)
        if args.profile:
            with cProfile.Profile() as profile:
                explain(changes_of(baseline, config), sources)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(args.profile)
        host_keyrings = list(trusted_keyrings().values())
        parts = ("reference", "check", "explain", "host index")
        cpu: dict[str, list[float]] = {k: [] for k in parts}
        wall: dict[str, list[float]] = {k: [] for k in parts}
        for _ in range(args.rounds):
            _, c, w = measured(lambda: changes_of(reference_db, reference))
            cpu["reference"].append(c)
            wall["reference"].append(w)
            changes, c, w = measured(lambda: changes_of(baseline, config))
            cpu["check"].append(c)
            wall["check"].append(w)
            explained, c, w = measured(lambda: explain(changes, sources))  # noqa: B023 (called at once)
            cpu["explain"].append(c)
            wall["explain"].append(w)
            index, c, w = measured(lambda: ArchiveIndex.load(HOST_LISTS, host_keyrings, names))
            cpu["host index"].append(c)
            wall["host index"].append(w)
        assert explained is not None
        by_evidence: dict[str, int] = {}
        for e in (explained.of(c.path) for c in changes):
            key = e.kind.value + (f"/{e.evidence.value}" if e.evidence else "")
            by_evidence[key] = by_evidence.get(key, 0) + 1
        print(f"{len(names)} packages, {len(changes)} changes: {by_evidence}; load average "
              f"{os.getloadavg()[0]:.1f}; medians of {args.rounds} rounds")
        print(f"the host's apt indexes ({HOST_LISTS}): {len(index.sha256)} package versions of these "
              f"names verified; problems: {index.problems or 'none'}")
        for figures, unit in ((cpu, "CPU s"), (wall, "wall s")):
            usr, check, extra, host = (statistics.median(figures[k]) for k in parts)
            print(f"{unit}: check of the upgraded packages' files {check:.2f}, explanations {extra:.2f} "
                  f"({(check + extra) / check:.2f}x that check); the host's indexes verified {host:.2f}; "
                  f"check of {args.reference} {usr:.2f}, with these explanations "
                  f"{(usr + extra) / usr:.2f}x, with the host's indexes too "
                  f"{(usr + extra + host) / usr:.2f}x")


def changes_of(database: Path, config: Config) -> list[Change]:
    """The check: the tree scanned and compared with `database`."""
    with open_database(database, None) as db:
        fresh = scan(config.ruleset, root_prefix=config.root_prefix, on_warning=lambda w: None)
        return list(compare(db.entries(), fresh))


if __name__ == "__main__":
    main()
