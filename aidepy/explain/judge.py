"""The pure core of the explanations: a change and what the owning packages ship, in; an
`Explanation` out. Nothing here reads a file.

A path is explained by a package when everything its new entry records agrees with what that
package version ships: the type, permission bits, owner and group (by name, as dpkg resolves
them), the size, modification time and link target, and the content under every cryptographic
hash recorded. What installing a file implies anyway (a new inode, ctime, atime, link count,
blocks) may differ. A package-owned directory or link whose only changes are such implied ones
is explained by a package transaction that explains an entry below it (or, for a link, of the
same package). Owner, group and mode that differ from the package's because dpkg-statoverride
says so are explained with that reason, never with stronger evidence than the content's.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from aidepy.attributes import BY_NAME, HASHES, SECOND
from aidepy.attributes import Kind as AttrKind
from aidepy.compare import Change, ChangeKind
from aidepy.entry import Entry
from aidepy.explain.archive import Member
from aidepy.explain.dpkg import Override
from aidepy.explain.model import Evidence, Explanation, Kind

IMPLIED: frozenset[str] = frozenset({"a", "c", "i", "n", "b"})
"""What installing or replacing a file changes whatever the package ships."""
IMPLIED_CONTAINER: frozenset[str] = IMPLIED | {"m", "s"}
"""What a package transaction changes on a directory (its entries) or a link (its times)."""
_UNSHIPPED = frozenset({"acl", "xattrs", "caps"})
"""Attributes a `.deb` cannot carry: a value there is set by someone else."""
STATOVERRIDE = ("owner, group or mode as dpkg-statoverride sets them, whose file root on the host "
                "can rewrite: no evidence of its own")
CRYPTO_HASHES: frozenset[str] = frozenset(a.name for a in BY_NAME.values()
                                          if a.kind is AttrKind.HASH and a.adversarial)


@dataclass(frozen=True)
class Shipped:
    """What one package that owns a path says about it."""

    package: str
    version: str
    member: Member | None
    """What its verified `.deb` ships there (None: no verified `.deb` at hand)."""
    md5: str | None = None
    """dpkg's md5sum or conffile digest (an index: root can rewrite it)."""
    conffile: bool = False
    previous: str | None = None
    evidence: Evidence = Evidence.ARCHIVE
    override: Override | None = None
    """dpkg-statoverride's owner, group and mode for the path, if it has one."""

    def explanation(self, kind: Kind = Kind.PACKAGE, reason: str = "",
                    evidence: Evidence | None = None) -> Explanation:
        return Explanation(kind, self.package, self.version,
                           (evidence or self.evidence) if kind is Kind.PACKAGE else None,
                           reason=reason, previous=self.previous)


@dataclass(frozen=True)
class Ids:
    """User and group names -> ids on the host (how dpkg maps a member's owner)."""

    users: Mapping[str, int]
    groups: Mapping[str, int]


def disagreements(entry: Entry, member: Member, ids: Ids) -> list[str]:
    """The attributes `entry` records whose values differ from what `member` ships."""
    v = entry.values
    wrong = []
    if entry.ftype != member.ftype:
        return ["ftype"]
    checks: dict[str, object] = {
        "p": member.mode,
        "u": ids.users.get(member.uname, member.uid),
        "g": ids.groups.get(member.gname, member.gid),
    }
    if entry.ftype == "f":
        checks["s"] = member.size
        checks["m"] = member.mtime
    if entry.ftype == "l":
        checks["l"] = member.linkname
    for name, expected in checks.items():
        if name not in entry.attrs:
            continue
        value = v.get(name)
        if name == "p" and isinstance(value, int):
            value &= 0o7777
        if name == "m" and isinstance(value, int):
            value //= SECOND
        if value != expected:
            wrong.append(name)
    if entry.ftype == "f":
        wrong += [h for h in sorted(entry.attrs & HASHES)
                  if h in member.digests and v.get(h) != member.digests[h]]
    wrong += [name for name in sorted(entry.attrs & _UNSHIPPED) if v.get(name)]
    return wrong


def _id(name: str, table: Mapping[str, int]) -> int:
    """The id dpkg-statoverride's `name` (a name, or `#id`) stands for (-1: unknown here)."""
    return int(name[1:]) if name.startswith("#") and name[1:].isdigit() else table.get(name, -1)


def _overridden(member: Member, override: Override, ids: Ids) -> Member:
    """`member` with the owner, group and mode dpkg-statoverride gives it."""
    return replace(member, mode=override.mode, uname=override.user, uid=_id(override.user, ids.users),
                   gname=override.group, gid=_id(override.group, ids.groups))


def _as_overridden(entry: Entry, override: Override, ids: Ids) -> bool:
    """Whether the owner, group and mode `entry` records are the ones `override` gives."""
    expected = {"p": override.mode, "u": _id(override.user, ids.users), "g": _id(override.group, ids.groups)}
    values = {n: v & 0o7777 if n == "p" and isinstance(v, int) else v for n, v in entry.values.items()}
    return all(values.get(n) == v for n, v in expected.items() if n in entry.attrs)


def agreement(entry: Entry, owner: Shipped, ids: Ids) -> tuple[list[str], str]:
    """(what `entry` records that differs from `owner`'s member, the reason it agrees anyway):
    an override that accounts for every difference leaves none, with its reason."""
    assert owner.member is not None
    wrong = disagreements(entry, owner.member, ids)
    if wrong and owner.override is not None \
            and not disagreements(entry, _overridden(owner.member, owner.override, ids), ids):
        return [], STATOVERRIDE
    return wrong, ""


def content_proven(entry: Entry, member: Member) -> bool:
    """Whether a cryptographic hash ties `entry`'s content to `member`'s (true for what has no
    content; false for a file whose rules record no cryptographic hash)."""
    return entry.ftype != "f" or bool(entry.attrs & CRYPTO_HASHES & set(member.digests))


def judge(change: Change, owners: Sequence[Shipped], ids: Ids, live_md5: str | None = None) -> Explanation:
    """Who accounts for `change`, from what its owning packages ship (see the module docstring);
    `live_md5` is the md5 of the new content, for evidence `dpkg`."""
    if change.kind is ChangeKind.REMOVED:
        return _removed(change, owners, ids)
    if not owners:
        return Explanation(Kind.UNEXPLAINED, reason="no installed package owns it")
    entry = change.new
    assert entry is not None
    mismatch: Explanation | None = None
    for owner in owners:
        if owner.member is None:
            continue
        wrong, reason = agreement(entry, owner, ids)
        if not wrong and content_proven(entry, owner.member):
            return owner.explanation(reason=reason)
        if not wrong:
            return Explanation(Kind.UNEXPLAINED, owner.package, owner.version,
                               reason="its content is recorded without a cryptographic hash")
        if wrong:
            mismatch = mismatch or owner.explanation(Kind.MISMATCH, _mismatch_reason(owner, wrong))
    if mismatch is not None:
        return mismatch
    return _dpkg_only(change, owners, ids, live_md5)


def _mismatch_reason(owner: Shipped, wrong: Sequence[str]) -> str:
    if owner.conffile and set(wrong) & (CRYPTO_HASHES | {"s"}):
        return "modified conffile"
    names = ", ".join(BY_NAME[n].label if n in BY_NAME else n for n in wrong)
    return f"differs from what the package ships ({names})"


def _dpkg_only(change: Change, owners: Sequence[Shipped], ids: Ids, live_md5: str | None) -> Explanation:
    """Evidence `dpkg`: no verified `.deb`, but dpkg's md5 agrees and only content-related
    attributes changed."""
    entry = change.new
    assert entry is not None
    if entry.ftype != "f":
        return Explanation(Kind.UNEXPLAINED, owners[0].package, owners[0].version,
                           reason="no verified .deb of the package at hand")
    for owner in owners:
        if owner.md5 is None or live_md5 is None:
            continue
        if owner.md5 != live_md5:
            reason = "modified conffile" if owner.conffile else "differs from dpkg's md5sums"
            return owner.explanation(Kind.MISMATCH, reason)
        owner_changed = bool(set(change.changed) & {"p", "u", "g"})
        override = owner.override
        overridden = owner_changed and override is not None and _as_overridden(entry, override, ids)
        if set(change.changed) & {"l", "ftype"} or (owner_changed and not overridden):
            return Explanation(Kind.UNEXPLAINED, owner.package, owner.version,
                               reason="mode or owner changed, and no verified .deb to compare with")
        return owner.explanation(evidence=Evidence.DPKG, reason=STATOVERRIDE if overridden else "")
    return Explanation(Kind.UNEXPLAINED, owners[0].package, owners[0].version,
                       reason="no verified .deb of the package at hand, and no md5sum to compare")


def _removed(change: Change, owners: Sequence[Shipped], ids: Ids) -> Explanation:
    """A removed path: `owners` are the versions installed before (as dpkg's log says) whose
    `.deb` shipped it; their member must be what the baseline recorded there. Evidence
    `archive` only if that `.deb` verified (once a version leaves the archive's index, its
    `.deb` no longer does: then `dpkg`)."""
    old = change.old
    assert old is not None
    for owner in owners:
        if owner.member is not None and not disagreements(old, owner.member, ids) \
                and content_proven(old, owner.member):
            return owner.explanation()
    return Explanation(Kind.UNEXPLAINED, reason="removed, and no .deb of a version installed before "
                       "(as dpkg's log names them) ships what the baseline recorded there")


def implied(change: Change, explained_below: Collection[Explanation], own: Sequence[Shipped],
            ids: Ids) -> Explanation | None:
    """The explanation of a package-owned directory or link whose only changes are implied by a
    package transaction: the first of `explained_below` (the explained entries right below the
    directory, or those of the link's own package). None when that does not apply."""
    if change.kind is not ChangeKind.CHANGED or not own or change.new is None:
        return None
    if set(change.changed) - IMPLIED_CONTAINER:
        return None
    if any(o.member is not None and agreement(change.new, o, ids)[0] for o in own):
        return None
    explained = [e for e in explained_below if e.explained]
    return replace(explained[0], reason="") if explained else None  # the entry's reason is its own

