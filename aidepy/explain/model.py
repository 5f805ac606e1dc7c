"""Why a path changed: the values the explanation engine hands to the reports.

An `Explanation` says who accounts for one added, removed or changed path: a package version
(with the evidence: `archive`, the content equals a `.deb` whose digest a signed archive index
lists; `dpkg`, only dpkg's own md5sums agree), a generator that aidepy recomputed, or nobody
(`mismatch`: the owning package ships something else; `unexplained`: with the reason).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Kind(Enum):
    PACKAGE = "package"
    GENERATED = "generated"
    MISMATCH = "mismatch"
    UNEXPLAINED = "unexplained"


class Evidence(Enum):
    ARCHIVE = "archive"
    """The content equals a member of a `.deb` whose SHA-256 a verified archive index lists."""
    DPKG = "dpkg"
    """Only dpkg's own md5sums agree (root can rewrite them: weaker, shown as such)."""


@dataclass(frozen=True)
class Explanation:
    """Who accounts for one change (see the module docstring)."""

    kind: Kind
    package: str | None = None
    version: str | None = None
    evidence: Evidence | None = None
    by: str | None = None
    """The generator, for `generated`."""
    reason: str = ""
    """Why it is not explained (or "modified conffile"), for the admin."""
    previous: str | None = None
    """The version installed before (from dpkg's log, an index only), for grouping."""

    @property
    def explained(self) -> bool:
        return self.kind in (Kind.PACKAGE, Kind.GENERATED)

    def as_json(self) -> dict[str, Any]:
        """The JSON report's `"explanation"` object."""
        doc: dict[str, Any] = {"kind": self.kind.value}
        if self.kind in (Kind.PACKAGE, Kind.MISMATCH):
            doc.update(package=self.package, version=self.version)
        if self.kind is Kind.PACKAGE:
            assert self.evidence is not None
            doc["evidence"] = self.evidence.value
        if self.kind is Kind.GENERATED:
            doc["by"] = self.by
        if self.reason:
            doc["reason"] = self.reason
        return doc


UNEXPLAINED = Explanation(Kind.UNEXPLAINED)


@dataclass(frozen=True)
class Explained:
    """The explanations of one report's changes, by path, and what limited them."""

    by_path: Mapping[bytes, Explanation]
    notices: tuple[str, ...] = field(default=())

    def of(self, path: bytes) -> Explanation:
        return self.by_path.get(path, UNEXPLAINED)
