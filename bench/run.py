"""Benchmark: aidepy against Debian's `aide` on the same tree and rules, in one run.

For each tree (default `/usr`, read only, plus a generated tree of many tiny files) it writes
equivalent configs, then alternates the programs for several repetitions: `init`, then `check`
of the unchanged tree, AIDE once per `--aide-workers` setting. It reports medians of wall
time, CPU time (user+sys of the child) and peak RSS, the database sizes, and the hashing limit:
bytes of regular files / (cores x single-core throughput of the rule's hashes, measured here).

    .venv/bin/python bench/run.py                      # /usr and 200,000 tiny files
    .venv/bin/python bench/run.py --tree /usr --no-tiny --reps 5
    .venv/bin/python bench/run.py --tree /etc --tiny-files 20000 --json out.json
    .venv/bin/python bench/run.py --no-tiny --scaled 5   # + aidepy's RSS on 5 copies of /usr

`--scaled N` also builds N hard-linked copies of `--tree` (`cp -al`, on the same file system,
in `--scaled-dir`) and runs aidepy's `init` and `check` on them once, to show that its peak
RSS does not grow with the tree (AIDE is not run there: it would take most of the hour).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import cast

HERE = Path(__file__).resolve().parent
AIDEPY = [sys.executable, "-m", "aidepy"]


@dataclass
class Run:
    """One measured command."""

    wall: float
    cpu: float
    rss_mb: float
    rc: int


@dataclass
class Series:
    """Repetitions of one program/command/setting."""

    label: str
    runs: list[Run] = field(default_factory=list)
    db_size: int = 0

    def median(self, what: str) -> float:
        return float(statistics.median(getattr(r, what) for r in self.runs))


def measure(cmd: list[str], env: dict[str, str] | None = None) -> Run:
    """Run `cmd` (output discarded): its wall time, CPU time and peak RSS, from wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1, 2, 3, 4, 5, 6, 7):
        sys.stderr.write(f"{' '.join(cmd)} exited {proc.returncode}:\n{err.decode(errors='replace')}\n")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode)


def regular_files(root: Path) -> Iterator[tuple[str, int]]:
    """Path and size of every regular file below `root` (no symlinks followed)."""
    stack = [str(root)]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue
        with it:
            for e in it:
                try:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        yield e.path, e.stat(follow_symlinks=False).st_size
                except OSError:
                    pass


def tree_bytes(root: Path) -> tuple[int, int]:
    """Regular files and their total size below `root`."""
    sizes = [size for _, size in regular_files(root)]
    return len(sizes), sum(sizes)


def read_hash_cpu(root: Path, hashes: list[str]) -> float:
    """CPU seconds one process needs to open, read (64 KiB at a time, as aidepy does) and hash
    every regular file below `root`, and nothing else (the list of files is made first): the
    floor below any scanner's cost."""
    from aidepy.attributes import BY_NAME
    news = [BY_NAME[h].new_hash for h in hashes]
    buf = memoryview(bytearray(64 << 10))
    paths = [path for path, _ in regular_files(root)]  # the walk is not part of the floor
    start = resource.getrusage(resource.RUSAGE_SELF)
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NOATIME", 0))
        except OSError:
            continue
        try:
            hashers = [new() for new in news if new is not None]
            while n := os.readv(fd, (buf,)):
                chunk = cast(bytes, buf[:n] if n < len(buf) else buf)  # hashlib takes any buffer
                for h in hashers:
                    h.update(chunk)
        except OSError:
            pass
        finally:
            os.close(fd)
    end = resource.getrusage(resource.RUSAGE_SELF)
    return end.ru_utime - start.ru_utime + end.ru_stime - start.ru_stime


def hash_throughput(hashes: list[str], seconds: float = 1.0) -> float:
    """Bytes per second one core hashes with all `hashes` (one pass), best of a few rounds."""
    from aidepy.attributes import BY_NAME
    buf = os.urandom(1 << 20)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or best == 0.0:
        hashers = [new() for h in hashes if (new := BY_NAME[h].new_hash) is not None]
        start = time.perf_counter()
        for _ in range(64):
            for hasher in hashers:
                hasher.update(buf)
        best = max(best, 64 * len(buf) / (time.perf_counter() - start))
    return best


def make_tiny_tree(root: Path, files: int, seed: int = 6) -> None:
    """`files` files of 0-4 KiB in directories of 1,000 (kept when already built the same way)."""
    marker = root / ".aidepy-bench"
    if marker.exists() and marker.read_text() == f"{files} {seed}\n":
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(seed)
    pool = rng.randbytes(1 << 16)
    for i in range(files):
        d = root / f"d{i // 1000:04}"
        if i % 1000 == 0:
            d.mkdir(parents=True)
        size = rng.randrange(4097)
        off = rng.randrange(len(pool) - size + 1)
        (d / f"f{i % 1000:03}").write_bytes(pool[off:off + size])
    marker.write_text(f"{files} {seed}\n")


def make_scaled_tree(tree: Path, root: Path, copies: int) -> None:
    """`copies` hard-linked copies of `tree` in `root` (kept when already built the same way)."""
    marker = root / ".aidepy-bench"
    if marker.exists() and marker.read_text() == f"{tree} {copies}\n":
        return
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for i in range(copies):
        subprocess.run(["cp", "-a", "--link", f"{tree}/.", str(root / f"copy{i}")], check=True)
    marker.write_text(f"{tree} {copies}\n")


def bench_scaled(scaled: Path, args: argparse.Namespace, work: Path) -> dict[str, object]:
    """aidepy's init and check on the scaled tree, once each (after a warming init)."""
    _, aidepy_conf = write_configs(work, scaled, args.attrs, None)
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    measure([*AIDEPY, "init", "-c", str(aidepy_conf)], env)
    init = measure([*AIDEPY, "init", "-c", str(aidepy_conf)], env)
    check = measure([*AIDEPY, "check", "-c", str(aidepy_conf)], env)
    files, total = tree_bytes(scaled)
    return {"tree": str(scaled), "files": files, "bytes": total, "init": asdict(init), "check": asdict(check),
            "load_average_1min_at_end": os.getloadavg()[0]}


def report_scaled(result: dict[str, object], base: dict[str, object]) -> str:
    series: dict[str, dict[str, float]] = base["series"]  # type: ignore[assignment]
    lines = [f"## {result['tree']}: {result['files']} files, {int(result['bytes']) / 1e9:.2f} GB "  # type: ignore[call-overload]
             f"(load average {float(result['load_average_1min_at_end']):.1f})",  # type: ignore[arg-type]
             "", "| run | wall s | CPU s | peak RSS MB | RSS / on the tree itself |",
             "|---|---:|---:|---:|---:|"]
    for what in ("init", "check"):
        run: dict[str, float] = result[what]  # type: ignore[assignment]
        own = series[f"aidepy {what}"]["median_rss_mb"]
        lines.append(f"| aidepy {what} | {run['wall']:.2f} | {run['cpu']:.2f} | {run['rss_mb']:.1f} | "
                     f"{run['rss_mb'] / own:.2f} |")
    return "\n".join(lines) + "\n"


def write_configs(work: Path, tree: Path, attrs: str, key: Path | None) -> tuple[Path, Path]:
    aide_conf, aidepy_conf = work / "aide.conf", work / "aidepy.conf"
    rule = f"{tree} {attrs}\n!{work}\n"
    aide_conf.write_text(
        f"database_in=file:{work}/aide.db.gz\ndatabase_out=file:{work}/aide.db.gz\n"
        f"gzip_dbout=yes\nreport_url=stdout\n{rule}")
    signing = f"signing_key={key}\npublic_key={key}.pub\n" if key else f"signing_key={work}/none\n"
    aidepy_conf.write_text(
        f"database_in=file:{work}/aidepy.db\ndatabase_out=file:{work}/aidepy.db\n{signing}{rule}")
    return aide_conf, aidepy_conf


def bench_tree(tree: Path, args: argparse.Namespace, work: Path) -> dict[str, object]:
    aide = shutil.which("aide") or "/usr/bin/aide"
    key: Path | None = None
    if args.sign:
        key = work / "bench.key"
        if not key.exists():
            subprocess.run([*AIDEPY, "keygen", "--out", str(key), "--no-passphrase"], check=True,
                           stdout=subprocess.DEVNULL)
    aide_conf, aidepy_conf = write_configs(work, tree, args.attrs, key)
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    series: dict[str, Series] = {}
    programs: list[tuple[str, list[str], list[str], Path]] = []
    for w in args.aide_workers:
        programs.append((f"aide -W {w}", [aide, "-i", "-c", str(aide_conf), "-W", str(w)],
                         [aide, "-C", "-c", str(aide_conf), "-W", str(w)], work / "aide.db.gz"))
    for w in args.aidepy_workers:
        extra = [f"-A num_workers={w}"] if w else []
        init = [*AIDEPY, "init", "-c", str(aidepy_conf), *_split(extra)]
        check = [*AIDEPY, "check", "-c", str(aidepy_conf), *_split(extra)]
        programs.append((f"aidepy{f' workers={w}' if w else ''}", init, check, work / "aidepy.db"))
    for _label, init, _, _ in programs:  # warm the page cache and the programs' own files
        measure(init, env)
    for _ in range(args.reps):
        for label, init, check, db in programs:
            s = series.setdefault(f"{label} init", Series(f"{label} init"))
            s.runs.append(measure(init, env))
            s.db_size = db.stat().st_size
            c = series.setdefault(f"{label} check", Series(f"{label} check"))
            c.runs.append(measure(check, env))
    load = os.getloadavg()[0]
    files, total = tree_bytes(tree)
    cores = os.cpu_count() or 1
    rate = hash_throughput(args.attrs_hashes)
    limit = total / (cores * rate)
    floor = read_hash_cpu(tree, args.attrs_hashes) / cores
    return {"tree": str(tree), "load_average_1min_at_end": load, "files": files, "bytes": total,
            "cores": cores, "hash_rate_MBps": rate / 1e6, "hashing_limit_s": limit,
            "read_hash_floor_s": floor,
            "series": {k: {**asdict(v), "median_wall": v.median("wall"), "median_cpu": v.median("cpu"),
                           "median_rss_mb": v.median("rss_mb")} for k, v in series.items()}}


def _split(options: list[str]) -> list[str]:
    out: list[str] = []
    for o in options:
        flag, value = o.split(" ", 1)
        out += [flag, value]
    return out


def report(result: dict[str, object]) -> str:
    series: dict[str, dict[str, float]] = result["series"]  # type: ignore[assignment]
    limit = float(result["hashing_limit_s"])  # type: ignore[arg-type]
    floor = float(result["read_hash_floor_s"])  # type: ignore[arg-type]
    lines = [f"## {result['tree']}: {result['files']} files, {int(result['bytes']) / 1e9:.2f} GB "  # type: ignore[call-overload]
             f"(hashing limit {limit:.2f} s: {result['cores']} cores x "
             f"{float(result['hash_rate_MBps']):.0f} MB/s; read+hash floor {floor:.2f} s; load average "  # type: ignore[arg-type]
             f"{float(result['load_average_1min_at_end']):.1f})",  # type: ignore[arg-type]
             "", "| run | wall s | CPU s | peak RSS MB | DB bytes |", "|---|---:|---:|---:|---:|"]
    for name, s in series.items():
        lines.append(f"| {name} | {s['median_wall']:.2f} | {s['median_cpu']:.2f} | "
                     f"{s['median_rss_mb']:.1f} | {s['db_size'] if 'init' in name else ''} |")
    for what in ("init", "check"):
        aides = {k: v for k, v in series.items() if k.startswith("aide ") and k.endswith(what)}
        ours = {k: v for k, v in series.items() if k.startswith("aidepy") and k.endswith(what)}
        if not aides or not ours:
            continue
        best_aide = min(aides.items(), key=lambda kv: kv[1]["median_wall"])
        for name, s in ours.items():
            lines.append(f"- {name}: {s['median_wall'] / best_aide[1]['median_wall']:.2f}x the wall "
                         f"time of {best_aide[0]} (AIDE's best)" +
                         (f", {s['median_wall'] / limit:.2f}x the hashing limit, "
                          f"{s['median_wall'] / floor:.2f}x the read+hash floor" if what == "init" else "")
                         + (f"; database {s['db_size'] / best_aide[1]['db_size']:.2f}x AIDE's"
                            if what == "init" else ""))
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, default=Path("/usr"), help="tree to scan (read only)")
    parser.add_argument("--tiny-files", type=int, default=200_000, help="files in the generated tree")
    parser.add_argument("--tiny-dir", type=Path, default=Path("/var/tmp/aidepy-bench-tiny"))
    parser.add_argument("--no-tiny", action="store_true", help="skip the many-tiny-files tree")
    parser.add_argument("--no-main", action="store_true", help="skip --tree")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--attrs", default="p+i+n+u+g+s+m+c+sha256")
    parser.add_argument("--aide-workers", type=lambda s: [int(x) for x in s.split(",")],
                        default=[1, os.cpu_count() or 1], help="AIDE -W settings (comma-separated)")
    parser.add_argument("--aidepy-workers", type=lambda s: [int(x) for x in s.split(",")], default=[0],
                        help="aidepy num_workers settings; 0 = its default")
    parser.add_argument("--sign", action="store_true", help="sign aidepy's database (key without passphrase)")
    parser.add_argument("--scaled", type=int, default=0, metavar="N",
                        help="also run aidepy on N hard-linked copies of --tree, for its peak RSS")
    parser.add_argument("--scaled-dir", type=Path, default=Path("/var/tmp/aidepy-bench-scaled"))
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args()
    from aidepy.attributes import HASHES
    args.attrs_hashes = [a for a in args.attrs.split("+") if a in HASHES]
    results = []
    trees = [] if args.no_main else [args.tree]
    if not args.no_tiny:
        make_tiny_tree(args.tiny_dir, args.tiny_files)
        trees.append(args.tiny_dir)
    for tree in trees:
        with tempfile.TemporaryDirectory(prefix="aidepy-bench-") as tmp:
            result = bench_tree(tree, args, Path(tmp))
        results.append(result)
        print(report(result), flush=True)
    if args.scaled and not args.no_main:
        make_scaled_tree(args.tree, args.scaled_dir, args.scaled)
        with tempfile.TemporaryDirectory(prefix="aidepy-bench-") as tmp:
            scaled = bench_scaled(args.scaled_dir, args, Path(tmp))
        results.append(scaled)
        print(report_scaled(scaled, results[0]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
