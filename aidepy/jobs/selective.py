"""A selective promote: the new baseline takes the changes that were accepted and keeps the old
record of every other one (it stays in the daily report until it is accepted in turn).

A selection maps each listed change's path to accepted or not: every change (`promote --yes`),
the `archive`-explained ones (`--explained-only`), or the admin's answers (`jobs.review`); one
flow turns it into the baseline to sign. Pure: the fresh scan's entries (canonical order) and
the changes to keep, in; the entries of the baseline to sign, out, in canonical order.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping

from aidepy.compare import Change, ChangeKind
from aidepy.entry import Entry, sort_key
from aidepy.explain.model import Evidence, Explained, Kind


def archive_explained(change: Change, explained: Explained | None) -> bool:
    """Whether `change` is explained by a package with evidence `archive` (what
    `promote --explained-only` accepts)."""
    if explained is None:
        return False
    e = explained.of(change.path)
    return e.kind is Kind.PACKAGE and e.evidence is Evidence.ARCHIVE


def explained_only(changes: Iterable[Change], explained: Explained | None) -> dict[bytes, bool]:
    """The selection of `promote --explained-only`: the changes explained with evidence `archive`."""
    return {c.path: archive_explained(c, explained) for c in changes}


def kept_records(changes: Iterable[Change], accepted: Mapping[bytes, bool]) -> dict[bytes, Entry | None]:
    """Path -> the old record to keep (None: the path was added, so it stays out) for every
    listed change not accepted."""
    return {c.path: c.old for c in changes
            if c.kind is not ChangeKind.ATTRIBUTES and not accepted.get(c.path, False)}


def with_old_records(fresh: Iterable[Entry], kept: Mapping[bytes, Entry | None]) -> Iterator[Entry]:
    """`fresh` with every path in `kept` replaced by its old record (or left out), and the old
    records of removed paths put back in their place."""
    def filtered() -> Iterator[Entry]:
        for entry in fresh:
            if entry.path not in kept:
                yield entry
            elif (old := kept[entry.path]) is not None:
                yield old

    restored = sorted((e for e in kept.values() if e is not None), key=lambda e: sort_key(e.path))
    merged = heapq.merge(filtered(), restored, key=lambda e: sort_key(e.path))
    previous: bytes | None = None
    for entry in merged:
        if entry.path != previous:  # a kept old record and the fresh one it replaced
            yield entry
        previous = entry.path
