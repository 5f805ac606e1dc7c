"""compare: the streaming merge of a baseline and a scan, with AIDE's rules for what counts."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from aidepy.attributes import BY_NAME, AttrSet, Kind, attrset
from aidepy.compare import Change, ChangeKind, Summary, changed_attributes, compare, refilter
from aidepy.entry import Entry, Value, sort_key

RULE = "p+u+g+s+m+c+i+n+sha256"
SECOND = 10**9


def make_entry(path: bytes, ftype: str = "f", attrs: str = RULE, **values: Value) -> Entry:
    """An `Entry` for pure tests: attributes as `p+s+...`, values by attribute name; attributes
    not given get defaults (p 0o100644, times 1e18 ns, n 1, other ints 0, digests 32 zero bytes)."""
    names = attrset(attrs)
    filled: dict[str, Value] = dict(values)
    defaults = {"p": 0o100644, "a": 10**18, "m": 10**18, "c": 10**18, "n": 1}
    for name in names - values.keys():
        kind = BY_NAME[name].kind
        if kind is Kind.STAT:
            filled[name] = defaults.get(name, 0)
        elif kind is Kind.HASH:
            filled[name] = bytes(32)
        elif kind in (Kind.LINKNAME, Kind.META):
            filled[name] = b""
    return Entry(path, ftype, names, filled)


def run(old: list[Entry], new: list[Entry], **kw: object) -> tuple[list[Change], Summary]:
    comparison = compare(old, new, **kw)  # type: ignore[arg-type]
    return list(comparison), comparison.summary


def test_identical_streams_have_no_changes_and_exit_zero() -> None:
    tree = [make_entry(b"/etc", "d"), make_entry(b"/etc/passwd"), make_entry(b"/etc/shadow")]
    changes, summary = run(tree, tree)
    assert changes == []
    assert (summary.total, summary.exit_code) == (3, 0)


def test_added_removed_changed_in_canonical_order_with_exit_bits() -> None:
    old = [make_entry(b"/a", "d"), make_entry(b"/a/gone"), make_entry(b"/a/x"), make_entry(b"/a b")]
    new = [make_entry(b"/a", "d"), make_entry(b"/a/new"), make_entry(b"/a/x", p=0o104755),
           make_entry(b"/a b")]
    changes, summary = run(old, new)
    assert [(c.path, c.kind) for c in changes] == [
        (b"/a/gone", ChangeKind.REMOVED), (b"/a/new", ChangeKind.ADDED), (b"/a/x", ChangeKind.CHANGED)]
    assert changes[2].changed == ("p",)
    assert (summary.added, summary.removed, summary.changed, summary.total) == (1, 1, 1, 4)
    assert summary.exit_code == 7


def test_directory_sorts_before_its_contents_not_before_siblings_with_longer_names() -> None:
    # "/a" < "/a/z" < "/a b": component-wise order; a byte-wise merge would pair them wrongly.
    old = [make_entry(b"/a", "d"), make_entry(b"/a/z"), make_entry(b"/a b")]
    new = [make_entry(b"/a", "d"), make_entry(b"/a/z"), make_entry(b"/a b", s=5)]
    changes, _ = run(old, new)
    assert [(c.path, c.changed) for c in changes] == [(b"/a b", ("s",))]


def test_only_attributes_both_entries_carry_are_compared() -> None:
    old = make_entry(b"/f", attrs="p+s", p=0o644, s=1)
    new = make_entry(b"/f", attrs="p+m", p=0o644, m=5)
    assert changed_attributes(old, new) == frozenset()
    changes, summary = run([old], [new])
    assert [c.kind for c in changes] == [ChangeKind.ATTRIBUTES]  # listed as "different attributes"
    assert summary.changed == 0 and summary.exit_code == 0


def test_times_are_compared_to_the_second_as_aide_compares_them() -> None:
    base = make_entry(b"/f", attrs="m+c+a", m=5 * SECOND, c=5 * SECOND, a=5 * SECOND)
    # a baseline from an earlier aidepy held nanoseconds; a scan now records whole seconds
    within = make_entry(b"/f", attrs="m+c+a", m=5 * SECOND + 999_999_999, c=5 * SECOND + 1, a=5 * SECOND + 7)
    assert changed_attributes(within, base) == frozenset()
    assert changed_attributes(base, within) == frozenset()
    later = make_entry(b"/f", attrs="m+c+a", m=6 * SECOND, c=5 * SECOND, a=4 * SECOND + 999_999_999)
    assert changed_attributes(base, later) == frozenset({"m", "a"})
    # growing: only going back in time counts, also to the second
    log = make_entry(b"/f", attrs="m+c+a+growing", m=5 * SECOND + 500, c=5 * SECOND, a=5 * SECOND)
    older = make_entry(b"/f", attrs="m+c+a+growing", m=5 * SECOND, c=6 * SECOND, a=4 * SECOND + 999_999_999)
    assert changed_attributes(log, older) == frozenset({"a"})


def test_file_type_change_is_reported_as_ftype() -> None:
    old = make_entry(b"/x", "f", attrs="p+ftype")
    new = make_entry(b"/x", "d", attrs="p+ftype", p=0o40755)
    assert changed_attributes(old, new) == {"ftype", "p"}


def test_content_change_with_size_and_mtime_kept_is_a_hash_change() -> None:
    old = make_entry(b"/bin/ls", sha256=hashlib.sha256(b"good").digest(), c=SECOND)
    new = make_entry(b"/bin/ls", sha256=hashlib.sha256(b"evil").digest(), c=2 * SECOND)
    assert changed_attributes(old, new) == {"sha256", "c"}


def test_growing_log_ignores_growth_but_not_shrinking() -> None:
    rule = "p+s+b+m+c+sha256+growing"
    old = make_entry(b"/var/log/x", attrs=rule, s=100, b=8, m=SECOND, c=SECOND, sha256=b"old")
    grown = make_entry(b"/var/log/x", attrs=rule, s=200, b=16, m=2 * SECOND, c=2 * SECOND, sha256=b"new")
    shrunk = make_entry(b"/var/log/x", attrs=rule, s=50, b=8, m=2 * SECOND, c=2 * SECOND, sha256=b"new")
    calls: list[tuple[int, AttrSet]] = []

    def rehash(entry: Entry, size: int, hashes: AttrSet) -> dict[str, bytes]:
        calls.append((size, hashes))
        return {"sha256": b"old"}  # the first 100 bytes are what they were

    assert changed_attributes(old, grown, rehash) == frozenset()
    assert calls == [(100, frozenset({"sha256"}))]
    assert changed_attributes(old, shrunk, rehash) == {"s", "sha256"}
    assert changed_attributes(old, grown, lambda e, s, h: {"sha256": b"other"}) == {"sha256"}


def test_growing_without_rehash_keeps_hash_change_as_aide_compare_does() -> None:
    rule = "s+sha256+growing"
    old = make_entry(b"/log", attrs=rule, s=10, sha256=b"a")
    new = make_entry(b"/log", attrs=rule, s=20, sha256=b"b")
    assert changed_attributes(old, new) == {"sha256"}
    empty_before = make_entry(b"/log", attrs=rule, s=0, sha256=b"a")
    assert changed_attributes(empty_before, new, lambda e, s, h: None) == frozenset()


def test_S_flags_only_a_shrinking_size() -> None:
    old = make_entry(b"/log", attrs="p+S", s=100)
    assert changed_attributes(old, make_entry(b"/log", attrs="p+S", s=150)) == frozenset()
    assert changed_attributes(old, make_entry(b"/log", attrs="p+S", s=10)) == {"S"}


def test_renamed_file_under_I_is_not_reported() -> None:
    rule = RULE + "+I"
    old = [make_entry(b"/d", "d", attrs=rule), make_entry(b"/d/a", attrs=rule, i=42, c=SECOND),
           make_entry(b"/d/sub", "d", attrs=rule)]
    new = [make_entry(b"/d", "d", attrs=rule), make_entry(b"/d/sub", "d", attrs=rule),
           make_entry(b"/d/z", attrs=rule, i=42, c=9 * SECOND)]
    changes, summary = run(old, new)
    assert changes == [] and summary.exit_code == 0


def test_rename_with_changed_content_is_still_added_and_removed() -> None:
    rule = RULE + "+I"
    old = [make_entry(b"/d", "d", attrs=rule), make_entry(b"/d/a", attrs=rule, i=42)]
    new = [make_entry(b"/d", "d", attrs=rule), make_entry(b"/d/z", attrs=rule, i=42, sha256=b"x")]
    changes, summary = run(old, new)
    assert [(c.path, c.kind) for c in changes] == [
        (b"/d/a", ChangeKind.REMOVED), (b"/d/z", ChangeKind.ADDED)]
    assert summary.exit_code == 3


def test_rename_without_I_or_across_directories_is_reported() -> None:
    old = [make_entry(b"/d", "d"), make_entry(b"/d/a", i=42)]
    new = [make_entry(b"/d", "d"), make_entry(b"/d/z", i=42)]
    assert run(old, new)[1].exit_code == 3
    rule = RULE + "+I"
    old = [make_entry(b"/d", "d"), make_entry(b"/d/a", attrs=rule, i=42), make_entry(b"/e", "d")]
    new = [make_entry(b"/d", "d"), make_entry(b"/e", "d"), make_entry(b"/e/a", attrs=rule, i=42)]
    assert run(old, new)[1].exit_code == 3


def test_ANF_hides_additions_and_ARF_hides_removals() -> None:
    old = [make_entry(b"/spool", "d"), make_entry(b"/spool/old", attrs=RULE + "+ARF")]
    new = [make_entry(b"/spool", "d"), make_entry(b"/spool/new", attrs=RULE + "+ANF")]
    changes, summary = run(old, new)
    assert changes == [] and summary.exit_code == 0
    # ARF belongs to the old entry: a baseline without it still reports the removal.
    changes, summary = run([make_entry(b"/spool/old")], [], )
    assert summary.removed == 1


def test_ignored_changed_attributes_do_not_count() -> None:
    old = [make_entry(b"/f", m=SECOND, c=SECOND)]
    new = [make_entry(b"/f", m=2 * SECOND, c=2 * SECOND)]
    changes, summary = run(old, new, ignore_changed=frozenset({"m", "c"}))
    assert changes == [] and summary.exit_code == 0
    changed = make_entry(b"/f", m=2 * SECOND, c=2 * SECOND, p=0o600)
    changes, summary = run(old, [changed], ignore_changed=frozenset({"c"}))
    assert changes[0].changed == ("p", "m") and changes[0].ignored == ("c",)
    assert summary.exit_code == 4


def test_compare_streams_without_holding_unchanged_entries() -> None:
    count = 5000
    produced = 0

    def entries() -> object:
        nonlocal produced
        for i in range(count):
            produced += 1
            yield make_entry(b"/f%06d" % i)

    comparison = compare(entries(), entries())  # type: ignore[arg-type]
    assert list(comparison) == []
    assert comparison.summary.total == count and produced == 2 * count


def test_e2fs_flags_named_in_report_ignore_e2fsattrs_do_not_count() -> None:
    old = make_entry(b"/f", attrs="p+e2fsattrs", e2fsattrs=b"----------------e-----")
    new_a = make_entry(b"/f", attrs="p+e2fsattrs", e2fsattrs=b"---------------Ie-----")
    new_i = make_entry(b"/f", attrs="p+e2fsattrs", e2fsattrs=b"----i-----------e-----")
    changes, summary = run([old], [new_a], ignore_e2fsattrs="I")
    assert changes == [] and summary.exit_code == 0
    changes, summary = run([old], [new_i], ignore_e2fsattrs="I")
    assert changes[0].changed == ("e2fsattrs",) and summary.exit_code == 4


def test_rename_over_an_existing_file_under_I_reports_the_overwritten_file_removed() -> None:
    # `mv a b` where b existed: AIDE reports the old b as removed and hides a's move.
    rule = RULE + "+I"
    old = [make_entry(b"/d", "d", attrs=rule), make_entry(b"/d/a", attrs=rule, i=42, sha256=b"A"),
           make_entry(b"/d/b", attrs=rule, i=43, sha256=b"B")]
    new = [make_entry(b"/d", "d", attrs=rule), make_entry(b"/d/b", attrs=rule, i=42, sha256=b"A")]
    changes, summary = run(old, new)
    assert [(c.path, c.kind) for c in changes] == [(b"/d/b", ChangeKind.REMOVED)]
    assert changes[0].old is not None and changes[0].old.values["sha256"] == b"B"
    assert (summary.removed, summary.changed, summary.exit_code) == (1, 0, 2)


_names = st.sampled_from([b"a", b"a b", b"a-b", b"b", b"\xff", b"a.b", b"z"])
_paths = st.lists(_names, min_size=1, max_size=4).map(lambda parts: b"/" + b"/".join(parts))


@given(old_paths=st.sets(_paths, max_size=25), new_paths=st.sets(_paths, max_size=25),
       modes=st.dictionaries(_paths, st.sampled_from([0o100644, 0o100600]), max_size=25))
@settings(max_examples=150, deadline=None)
def test_streaming_merge_agrees_with_set_arithmetic(
    old_paths: set[bytes], new_paths: set[bytes], modes: dict[bytes, int],
) -> None:
    def stream(paths: set[bytes], with_modes: bool) -> list[Entry]:
        ordered_paths = sorted(paths, key=sort_key)
        return [make_entry(p, attrs="p", p=modes.get(p, 0o100644) if with_modes else 0o100644)
                for p in ordered_paths]

    changes, summary = run(stream(old_paths, False), stream(new_paths, True))
    assert {c.path for c in changes if c.kind is ChangeKind.ADDED} == new_paths - old_paths
    assert {c.path for c in changes if c.kind is ChangeKind.REMOVED} == old_paths - new_paths
    assert {c.path for c in changes if c.kind is ChangeKind.CHANGED} == {
        p for p in old_paths & new_paths if modes.get(p, 0o100644) != 0o100644}
    assert [sort_key(c.path) for c in changes] == sorted(sort_key(c.path) for c in changes)
    assert summary.total == len(new_paths)


def test_a_report_that_ignores_more_drops_what_only_it_ignores() -> None:
    old = [make_entry(b"/a", p=0o100644), make_entry(b"/b", s=1), make_entry(b"/gone")]
    new = [make_entry(b"/a", p=0o100600), make_entry(b"/b", s=2)]
    comparison = compare(old, new)
    changes = list(comparison)
    assert comparison.summary.exit_code == 6
    shown, summary = refilter(changes, comparison.summary, ignore_changed=frozenset({"p"}),
                              ignore_e2fsattrs="")
    assert [(c.path, c.kind) for c in shown] == [(b"/b", ChangeKind.CHANGED), (b"/gone", ChangeKind.REMOVED)]
    assert (summary.total, summary.added, summary.removed, summary.changed) == (2, 0, 1, 1)
    same, _ = refilter(changes, comparison.summary, ignore_changed=frozenset(), ignore_e2fsattrs="")
    assert same == changes
