"""Explain a report's changes: the I/O around the pure core (`aidepy.explain.judge`).

For every added, removed or changed path: the owning packages from dpkg's database (an index;
a file dpkg-divert moved is looked up by the name its package ships), what their `.deb` ships
when a verified one is at hand (`aidepy.explain.archive`, with the keyrings from the vault),
dpkg's md5sums otherwise; then the judgement, and a second pass for package-owned directories
and links whose only changes a package transaction implies.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aidepy.attributes import BY_NAME, HASHES
from aidepy.compare import Change, ChangeKind, Rehash
from aidepy.explain import archive
from aidepy.explain.archive import ArchiveError, ArchiveIndex, Contents, Member, PackageId
from aidepy.explain.dpkg import Diversion, Dpkg, Installed
from aidepy.explain.generated import explain_generated
from aidepy.explain.judge import CRYPTO_HASHES, Ids, Shipped, implied, judge
from aidepy.explain.model import Evidence, Explained, Explanation, Kind

LISTED = (ChangeKind.ADDED, ChangeKind.REMOVED, ChangeKind.CHANGED)


@dataclass(frozen=True)
class Sources:
    """Where the evidence comes from."""

    root: bytes
    """`root_prefix`: dpkg's database, apt's lists and cache, passwd and group below it."""
    keyrings: Sequence[bytes] | None
    """The apt keyrings from the vault; None without a vault (evidence `dpkg` only)."""
    since: float
    """When the baseline was recorded (dpkg's log after it names the versions before)."""
    cache: Sequence[Path] = ()
    """Directories with `.deb` files (default: apt's cache under `root`)."""
    rehash: Rehash | None = None
    """Hashes a live file (for evidence `dpkg`: md5 of the content the scan recorded)."""

    def under(self, path: str) -> Path:
        return Path(os.fsdecode(self.root) + "/" + path) if self.root else Path("/" + path)


def explain(changes: Iterable[Change], sources: Sources) -> Explained | None:
    """Explanations of `changes`; None when the host has no dpkg database or no change involves
    a package (nothing to explain with, and the report keeps its plain layout)."""
    dpkg = Dpkg(sources.root)
    if not dpkg.present():
        return None
    listed = [c for c in changes if c.kind in LISTED]
    removed = [c for c in listed if c.kind is ChangeKind.REMOVED]
    # the name dpkg knows each path by (merged /usr: /usr/bin/ls is dpkg's /bin/ls; a diverted
    # package's file, at the path dpkg-divert sends it to, by the path the package ships)
    diversions = _diversions(dpkg, listed)
    candidates = {c.path: dpkg.names(r[0].original if (r := diversions.get(c.path)) and r[1] else c.path)
                  for c in listed}
    known = dpkg.owners(n for names in candidates.values() for n in names)
    name = {path: next((n for n in names if n in known), path) for path, names in candidates.items()}
    owners = {path: _diverted_owners(known[n], diversions.get(path))
              for path, n in name.items() if n in known}
    owners = {path: packages for path, packages in owners.items() if packages}
    previous = dpkg.previous_versions(sources.since)
    hashes = {h for c in listed for e in (c.new, c.old) if e is not None
              for h in e.attrs & HASHES if BY_NAME[h].new_hash is not None}

    wanted: dict[PackageId, set[bytes]] = {}
    for path, packages in owners.items():
        for p in packages:
            wanted.setdefault((p.package, p.version, p.architecture), set()).add(name[path])
    olds = {(name, version, arch or "all") for name, (version, arch) in previous.items()}
    successors = _successors(dpkg, olds)
    gone = {n for c in removed for n in candidates[c.path]}
    for pkg in olds:
        wanted.setdefault(pkg, set()).update(gone)
        if pkg in successors:  # its verified .deb, not shipping a removed path, proves the removal
            wanted.setdefault(successors[pkg], set()).update(gone)

    notices: list[str] = []
    index: ArchiveIndex | None = None
    if sources.keyrings is None:
        notices.append("Explanations: no vault, so no keyring to verify the archive with: "
                       "explanations are limited to evidence 'dpkg' (dpkg's own md5sums).")
    elif not sources.keyrings:
        notices.append("Explanations: the vault holds no copy of apt's keyrings (promote copies "
                       "them): explanations are limited to evidence 'dpkg' (dpkg's own md5sums).")
    elif wanted:
        index = ArchiveIndex.load(sources.under(archive.LISTS), sources.keyrings,
                                  {name for name, _, _ in wanted})
        notices += [f"Note: apt index {problem}: not used as evidence." for problem in index.problems]
    cache = list(sources.cache) or [sources.under(archive.CACHE)]
    members = _read_packages(cache, {pkg: paths for pkg, paths in wanted.items() if paths}, index,
                             olds, hashes, notices)

    ids = Ids(dpkg.ids("passwd"), dpkg.ids("group"))
    overrides = dpkg.statoverrides()
    md5sums: dict[str, dict[bytes, str]] = {}

    def shipped(p: Installed, scanned: bytes) -> Shipped:
        pkg = (p.package, p.version, p.architecture)
        path = name.get(scanned, scanned)
        conffile = path in p.conffiles
        if conffile:
            md5: str | None = p.conffiles[path]
        else:
            if p.key not in md5sums:
                md5sums[p.key] = dpkg.md5sums(p)
            md5 = md5sums[p.key].get(path)
        prior = previous.get(p.package)
        verified, ok = members.get(pkg, ({}, False))
        override = next((overrides[n] for n in dpkg.names(scanned) if n in overrides), None)
        return Shipped(p.package, p.version, verified.get(path) if ok else None, md5, conffile,
                       prior[0] if prior else None, override=override)

    found: dict[bytes, Explanation] = {}
    for change in listed:
        if (r := diversions.get(change.path)) is not None and r[0].by is None and not r[1]:
            found[change.path] = Explanation(Kind.UNEXPLAINED, reason="dpkg-divert --local moved the "
                                             "package's file aside: what is here is the admin's")
            continue
        if change.kind is ChangeKind.REMOVED:
            if change.path in owners:
                p = owners[change.path][0]
                found[change.path] = Explanation(Kind.UNEXPLAINED, p.package, p.version,
                                                 reason="removed, but the installed package still ships it")
                continue
            shipped_before = [_shipped_before(pkg, m[0][n], m[1], successors.get(pkg), members,
                                              candidates[change.path])
                              for pkg in sorted(olds) if (m := members.get(pkg))
                              for n in candidates[change.path] if n in m[0]]
            found[change.path] = judge(change, shipped_before, ids)
            continue
        own = [shipped(p, change.path) for p in owners.get(change.path, [])]
        found[change.path] = judge(change, own, ids, _live_md5(change, own, sources.rehash))
    def trusted(path: bytes) -> bool:
        known = found.get(path)
        return known.explained if known is not None else dpkg.owned(path)

    orphans = [c for c in listed if found[c.path].kind is Kind.UNEXPLAINED and found[c.path].package is None]
    found.update(explain_generated(orphans, sources.under(""), trusted, dpkg.owned))
    _containers(listed, found, owners, shipped, ids)
    if all(e.kind is Kind.UNEXPLAINED and e.package is None for e in found.values()):
        return None  # no package is involved: the report stays as it is without explanations
    return Explained(found, tuple(notices))


Routed = tuple[Diversion, bool]
"""A diversion a path takes part in, and whether the path is where it sends the diverted file."""


def _diversions(dpkg: Dpkg, changes: Iterable[Change]) -> dict[bytes, Routed]:
    """The diversion each of `changes`' paths takes part in (under any name dpkg knows it by)."""
    diversions = dpkg.diversions()
    found: dict[bytes, Routed] = {}
    for change in changes if diversions else ():
        names = dpkg.names(change.path)
        d = next((diversions[n] for n in names if n in diversions), None)
        if d is not None:
            found[change.path] = (d, d.to in names)
    return found


def _successors(dpkg: Dpkg, olds: Collection[PackageId]) -> dict[PackageId, PackageId]:
    """The version installed now of each package in `olds` that was upgraded since (same name
    and architecture, another version), as dpkg's status file says."""
    now = {(p.package, p.architecture): (p.package, p.version, p.architecture)
           for p in dpkg.installed.values()}
    return {old: new for old in olds if (new := now.get((old[0], old[2]))) is not None and new[1] != old[1]}


def _shipped_before(old: PackageId, member: Member, verified: bool, successor: PackageId | None,
                    members: dict[PackageId, Contents], names: Collection[bytes]) -> Shipped:
    """What version `old` shipped at a removed path. Evidence `archive` when its `.deb`
    verified, or when the version it was upgraded to has a verified `.deb` that ships the path
    under none of its `names` (the signed archive says the upgrade drops it); then it is
    explained by that upgrade. Otherwise dpkg's log is the only word on which version was there."""
    if not verified and successor is not None and (now := members.get(successor)) is not None \
            and now[1] and not any(n in now[0] for n in names):
        return Shipped(successor[0], successor[1], member, previous=old[1], evidence=Evidence.ARCHIVE)
    return Shipped(old[0], old[1], member, previous=old[1],
                   evidence=Evidence.ARCHIVE if verified else Evidence.DPKG)


def _diverted_owners(packages: list[Installed], routed: Routed | None) -> list[Installed]:
    """Of the `packages` that ship a diverted path, those whose file is at the path: the
    diverting package's at the original path, the others' where the diversion sends them."""
    if routed is None:
        return packages
    diversion, sent = routed
    return [p for p in packages if (p.package == diversion.by) != sent]


def _read_packages(cache: Sequence[Path], wanted: dict[PackageId, set[bytes]], index: ArchiveIndex | None,
                   olds: Collection[PackageId], hashes: Collection[str], notices: list[str]
                   ) -> dict[PackageId, Contents]:
    """What each wanted package version ships at its paths, and whether its `.deb` verified
    (one worker process per CPU: decompressing `.deb` files is most of the cost). An
    unverified `.deb` is read only for an old version (dpkg's word on a removal)."""
    expected = {pkg: (index.sha256.get(pkg, set()) if index is not None else set()) for pkg in wanted}
    jobs = [pkg for pkg in sorted(wanted) if expected[pkg] or pkg in olds]
    members: dict[PackageId, Contents] = {}
    if not jobs:
        return members
    with ProcessPoolExecutor(min(len(jobs), os.cpu_count() or 1) or 1,
                             mp_context=multiprocessing.get_context("fork")) as pool:
        futures = {pool.submit(archive.package_contents, cache, pkg, expected[pkg], wanted[pkg], hashes,
                               pkg in olds): pkg for pkg in jobs}
        for future, pkg in futures.items():
            try:
                if (result := future.result()) is not None:
                    members[pkg] = result
            except ArchiveError as exc:
                notices.append(f"Note: {archive.deb_name(*pkg)}: {exc}")
    return members


def _live_md5(change: Change, own: Sequence[Shipped], rehash: Rehash | None) -> str | None:
    """md5 of the content the scan recorded, when dpkg's md5sums are the only evidence left:
    the live file hashed once more, and accepted only if its cryptographic digest is still the
    one recorded (so it is the same content)."""
    entry = change.new
    if (rehash is None or entry is None or entry.ftype != "f" or not own
            or any(o.member is not None for o in own) or not any(o.md5 for o in own)):
        return None
    recorded = sorted(entry.attrs & CRYPTO_HASHES)
    size = entry.values.get("s")
    if not recorded or not isinstance(size, int):
        return None
    digests = rehash(entry, size, frozenset({"md5", recorded[0]}))
    if digests is None or digests.get(recorded[0]) != entry.values.get(recorded[0]):
        return None
    return digests["md5"].hex()


def _containers(listed: Collection[Change], found: dict[bytes, Explanation],
                owners: dict[bytes, list[Installed]], shipped: Callable[[Installed, bytes], Shipped],
                ids: Ids) -> None:
    """Second pass: directories and links whose only changes a package transaction implies."""
    below: dict[bytes, list[Explanation]] = {}
    by_package: dict[str, list[Explanation]] = {}
    for change in listed:
        e = found[change.path]
        if e.explained:
            below.setdefault(os.path.dirname(change.path), []).append(e)
            by_package.setdefault(e.package or "", []).append(e)
    for change in listed:
        if found[change.path].explained or change.new is None or change.new.ftype not in "dl":
            continue
        own = [shipped(p, change.path) for p in owners.get(change.path, [])]
        context = below.get(change.path, []) if change.new.ftype == "d" else \
            [e for o in own for e in by_package.get(o.package, [])]
        explanation = implied(change, context, own, ids)
        if explanation is not None:
            found[change.path] = explanation

