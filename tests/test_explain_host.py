"""What dpkg and package scripts do to a host beyond unpacking `.deb` files, explained or named:
dpkg-statoverride's owners and modes, dpkg-divert's diversions, the certificate bundle
update-ca-certificates writes, sources whose key is written inline in their `.sources` file,
and `.deb` files with hard links. Real packages (dpkg-deb), a signed repository
(apt-ftparchive, gpg), installed and upgraded into a tree by apt-get; the real tools run on it."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from conftest import AptTree, VaultSite, aidepy, promote_in_process, requires_root
from test_explain import RULE, explanations, site_config, version_1, version_2

from aidepy.compare import Change, compare
from aidepy.config.evaluate import parse_text
from aidepy.entry import Entry
from aidepy.explain.archive import deb_members
from aidepy.explain.dpkg import Override
from aidepy.explain.engine import Sources, explain
from aidepy.explain.judge import STATOVERRIDE, Ids, Shipped, judge
from aidepy.explain.keyring import copies, trusted_keyrings
from aidepy.explain.model import Evidence, Explanation, Kind
from aidepy.scan.walk import scan


def explained_by(tree: AptTree, change: Callable[[], object]) -> dict[str, Explanation]:
    """The explanations of what `change` does to the tree's /usr and /etc, with the test
    archive's keyring (as promote would have copied it)."""
    config = parse_text(f"root_prefix={tree.root}\n/usr {RULE}\n/etc {RULE}\n")
    before = list(scan(config.ruleset, root_prefix=config.root_prefix, on_warning=print))
    since = time.time() - 1
    change()
    changes = list(compare(before, scan(config.ruleset, root_prefix=config.root_prefix, on_warning=print)))
    keyring = (tree.root / "etc/apt/trusted.gpg.d/test-archive.gpg").read_bytes()
    explained = explain(changes, Sources(config.root_prefix, [keyring], since))
    assert explained is not None
    return {os.fsdecode(c.path): explained.of(c.path) for c in changes}


def archive(package: str, version: str, previous: str, reason: str = "") -> Explanation:
    return Explanation(Kind.PACKAGE, package, version, Evidence.ARCHIVE, reason=reason, previous=previous)


# --- dpkg-statoverride ---------------------------------------------------------------------------


TOOL = "/usr/bin/aidepy-test-s"


def install_tool(tree: AptTree) -> Path:
    """Version 1.0 of a package shipping TOOL (root:root 0755) installed; a group `staff`."""
    with open(tree.root / "etc/group", "a") as group:
        group.write("staff:x:50:\n")
    tree.publish(tree.build("aidepy-test-s", "1.0", {TOOL: ("#!/bin/sh\necho 1\n", 0o755)}))
    tree.install("aidepy-test-s")
    return tree.root / TOOL.lstrip("/")


def upgrade_with_override(tree: AptTree, mode: str) -> None:
    """dpkg-statoverride gives TOOL group staff and `mode`; then version 2.0 is installed."""
    subprocess.run(["dpkg-statoverride", "--root", str(tree.root), "--update", "--add", "root", "staff", mode,
                    TOOL], check=True, capture_output=True)
    tree.publish(tree.build("aidepy-test-s", "2.0", {TOOL: ("#!/bin/sh\necho 2\n", 0o755)}))
    tree.upgrade()


@requires_root
def test_a_mode_and_group_from_dpkg_statoverride_are_explained_with_that_reason(apt_tree: AptTree) -> None:
    tree, tool = apt_tree, TOOL
    binary = install_tool(tree)
    found = explained_by(tree, lambda: upgrade_with_override(tree, "4750"))
    assert stat.S_IMODE(binary.stat().st_mode) == 0o4750 and binary.stat().st_gid == 50  # dpkg applied it
    assert found[tool] == archive("aidepy-test-s", "2.0", "1.0", STATOVERRIDE)
    assert "dpkg-statoverride" in STATOVERRIDE and "no evidence of its own" in STATOVERRIDE
    # a mode the override does not give stays what it is: a mismatch with the package
    found = explained_by(tree, lambda: binary.chmod(0o4755))
    assert found[tool].kind is Kind.MISMATCH
    assert found[tool].reason == "differs from what the package ships (Perm, Gid)"


# --- dpkg-divert ---------------------------------------------------------------------------------


def test_a_diverted_file_is_explained_where_dpkg_divert_sends_it(apt_tree: AptTree) -> None:
    tree, r = apt_tree, apt_tree.root

    def a(version: str) -> Path:
        return tree.build("aidepy-test-a", version, {
            "/usr/bin/aidepy-test-d": f"#!/bin/sh\necho a {version}\n",
            "/usr/bin/aidepy-test-l": f"#!/bin/sh\necho l {version}\n"})

    wrapper = tree.build("aidepy-test-wrapper", "1.0",
                         {"/usr/bin/aidepy-test-d": "#!/bin/sh\necho wrapped\n"})
    a1 = a("1.0")
    tree.publish(a1, wrapper)
    tree.install("aidepy-test-a")
    divert = ["dpkg-divert", "--root", str(r), "--rename"]
    subprocess.run([*divert, "--package", "aidepy-test-wrapper", "--divert", "/usr/bin/aidepy-test-d.real",
                    "--add", "/usr/bin/aidepy-test-d"], check=True, capture_output=True)
    subprocess.run([*divert, "--local", "--divert", "/usr/bin/aidepy-test-l.orig", "--add",
                    "/usr/bin/aidepy-test-l"], check=True, capture_output=True)
    tree.install("aidepy-test-wrapper")
    (r / "usr/bin/aidepy-test-l").write_text("#!/bin/sh\necho the admin's\n")

    def upgrade_and_edit() -> None:
        tree.publish(a("2.0"), wrapper)
        tree.upgrade()
        (r / "usr/bin/aidepy-test-l").write_text("#!/bin/sh\necho the admin's, edited\n")

    found = explained_by(tree, upgrade_and_edit)
    assert (r / "usr/bin/aidepy-test-d.real").read_text() == "#!/bin/sh\necho a 2.0\n"  # dpkg honoured it
    assert found["/usr/bin/aidepy-test-d.real"] == archive("aidepy-test-a", "2.0", "1.0")
    assert found["/usr/bin/aidepy-test-l.orig"] == archive("aidepy-test-a", "2.0", "1.0")
    assert found["/usr/bin/aidepy-test-l"] == Explanation(Kind.UNEXPLAINED, reason=(
        "dpkg-divert --local moved the package's file aside: what is here is the admin's"))
    assert "/usr/bin/aidepy-test-d" not in found  # the wrapper's file, untouched by the upgrade
    # the file at the diverted name is the diverting package's: compared with what it ships
    found = explained_by(tree, lambda: (r / "usr/bin/aidepy-test-d").write_text("#!/bin/sh\necho evil\n"))
    assert found["/usr/bin/aidepy-test-d"].kind is Kind.MISMATCH
    assert found["/usr/bin/aidepy-test-d"].package == "aidepy-test-wrapper"


# --- update-ca-certificates' bundle --------------------------------------------------------------


def _certificate(work: Path, name: str) -> bytes:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ed25519", "-nodes", "-subj", f"/CN={name}",
                    "-keyout", str(work / f"{name}.key"), "-out", str(work / f"{name}.crt"), "-days", "2"],
                   check=True, capture_output=True)
    return (work / f"{name}.crt").read_bytes()


def update_ca_certificates(root: Path) -> None:
    """Debian's update-ca-certificates, run on the tree (its own options point it there)."""
    (root / "etc/ssl/certs").mkdir(parents=True, exist_ok=True)
    subprocess.run(["update-ca-certificates", "--certsconf", f"{root}/etc/ca-certificates.conf",
                    "--certsdir", f"{root}/usr/share/ca-certificates", "--localcertsdir",
                    f"{root}/usr/local/share/ca-certificates", "--etccertsdir", f"{root}/etc/ssl/certs",
                    "--hooksdir", f"{root}/etc/ca-certificates/update.d"], check=True, capture_output=True)


def test_the_certificate_bundle_is_explained_as_the_concatenation_of_explained_certificates(
        apt_tree: AptTree) -> None:
    tree, r = apt_tree, apt_tree.root
    one, two = _certificate(tree.work, "aidepy one"), _certificate(tree.work, "aidepy two")

    def ca(version: str, first: bytes) -> Path:  # the second lacks its last newline, as some do
        return tree.build("aidepy-test-ca", version, {
            "/usr/share/ca-certificates/aidepy/one.crt": first,
            "/usr/share/ca-certificates/aidepy/two.crt": two.rstrip()})

    tree.publish(ca("1.0", one))
    tree.install("aidepy-test-ca")
    (r / "etc/ca-certificates.conf").write_text(
        "# selected\naidepy/one.crt\naidepy/two.crt\n!aidepy/gone.crt\n")
    update_ca_certificates(r)
    bundle = "/etc/ssl/certs/ca-certificates.crt"

    def upgrade() -> None:
        tree.publish(ca("2.0", _certificate(tree.work, "aidepy one renewed")))
        tree.upgrade()
        update_ca_certificates(r)

    found = explained_by(tree, upgrade)
    assert (r / bundle.lstrip("/")).read_bytes().count(b"BEGIN CERTIFICATE") == 2
    assert found[bundle] == Explanation(Kind.GENERATED, by="update-ca-certificates")
    # a local certificate is the admin's: the bundle holding it is not explained, and says why
    local = r / "usr/local/share/ca-certificates"

    def upgrade_with_a_local_certificate() -> None:
        local.mkdir(parents=True)
        (local / "site.crt").write_bytes(_certificate(tree.work, "site"))
        tree.publish(ca("3.0", one))
        tree.upgrade()
        update_ca_certificates(r)

    found = explained_by(tree, upgrade_with_a_local_certificate)
    one_crt = found["/usr/share/ca-certificates/aidepy/one.crt"]
    assert (one_crt.kind, one_crt.version, one_crt.evidence) == (Kind.PACKAGE, "3.0", Evidence.ARCHIVE)
    assert found[bundle] == Explanation(Kind.UNEXPLAINED, reason=(
        "update-ca-certificates: it includes /usr/local/share/ca-certificates/site.crt, which this report "
        "does not explain and no package ships unchanged"))
    # a certificate slipped into the bundle by hand is not what the tool makes
    (local / "site.crt").unlink()
    update_ca_certificates(r)

    def upgrade_and_slip_in() -> None:
        tree.publish(ca("4.0", one))
        tree.upgrade()
        update_ca_certificates(r)
        with open(r / bundle.lstrip("/"), "ab") as f:
            f.write(_certificate(tree.work, "intruder"))

    found = explained_by(tree, upgrade_and_slip_in)
    assert found[bundle] == Explanation(Kind.UNEXPLAINED, reason=(
        "update-ca-certificates: not the concatenation of the certificates "
        "/etc/ca-certificates.conf selects"))


# --- keys written inline in a .sources file ------------------------------------------------------


def inline_source(tree: AptTree) -> None:
    """The test repository as a deb822 source whose Signed-By holds the key itself; apt trusts
    no other keyring."""
    armored = tree.gpg("--armor", "--export").decode().strip().splitlines()
    key = "\n".join(f" {line}" if line else " ." for line in armored)
    (tree.root / "etc/apt/sources.list").unlink()
    (tree.root / "etc/apt/trusted.gpg.d/test-archive.gpg").unlink()
    (tree.root / "etc/apt/sources.list.d/test.sources").write_text(
        f"Types: deb\nURIs: copy:{tree.repo}\nSuites: ./\nSigned-By:\n{key}\n")


def test_an_inline_signed_by_key_is_among_the_keyrings_apt_trusts(apt_tree: AptTree) -> None:
    inline_source(apt_tree)
    found = trusted_keyrings(os.fsencode(apt_tree.root))
    origin = "/etc/apt/sources.list.d/test.sources (inline Signed-By, entry 1)"
    assert list(found) == [origin]
    assert found[origin] == apt_tree.gpg("--armor", "--export")
    assert [(name, o) for name, o, _ in copies(found)] == [("apt-keyrings/00-test-inline-1.asc", origin)]


@requires_root
def test_an_upgrade_from_a_source_with_an_inline_key_is_explained_by_the_archive(
        vault_site: VaultSite, apt_tree: AptTree) -> None:
    site, tree = vault_site, apt_tree
    inline_source(tree)
    a1, b1 = version_1(tree)
    tree.publish(a1, b1)
    tree.install("aidepy-test-a", "aidepy-test-b")
    site_config(site, tree)
    assert promote_in_process(site)[0] == 1  # copies the inline key onto the vault
    tree.publish(version_2(tree), b1)
    tree.upgrade()
    check = aidepy("check", "-c", str(site.config_path), "--json")
    found = explanations(check.stdout)
    assert found["/usr/bin/aidepy-test-a"] == {"kind": "package", "package": "aidepy-test-a",
                                              "version": "2.0", "evidence": "archive"}
    assert "trusted by apt but not on the vault" not in check.stdout


# --- hard links in a .deb ------------------------------------------------------------------------


def test_a_hard_link_in_a_deb_has_its_targets_content(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "DEBIAN").mkdir(parents=True)
    (src / "DEBIAN/control").write_text("Package: aidepy-test-h\nVersion: 1.0\nArchitecture: all\n"
                                        "Maintainer: t <t@example.org>\nDescription: hard links\n")
    (src / "usr/bin").mkdir(parents=True)
    (src / "usr/bin/aidepy-test-h").write_text("#!/bin/sh\necho h\n")
    os.link(src / "usr/bin/aidepy-test-h", src / "usr/bin/aidepy-test-h2")
    deb = tmp_path / "h.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "-b", str(src), str(deb)], check=True,
                   capture_output=True)
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], check=True, capture_output=True, text=True).stdout
    assert "link to" in listing  # one of the two is a hard link in the archive
    digest = hashlib.sha256(b"#!/bin/sh\necho h\n").digest()
    both = {b"/usr/bin/aidepy-test-h2", b"/usr/bin/aidepy-test-h"}
    members = deb_members(deb.read_bytes(), both, ["sha256"])
    only_link = deb_members(deb.read_bytes(), {b"/usr/bin/aidepy-test-h2"}, ["sha256"])
    for found in (members, only_link):
        link = found[b"/usr/bin/aidepy-test-h2"]
        assert link.ftype == "f" and link.digests == {"sha256": digest} and link.size == 17


def test_dpkg_evidence_explains_an_owner_change_only_as_dpkg_statoverride_gives_it() -> None:
    content = b"#!/bin/sh\n"
    md5 = hashlib.md5(content).hexdigest()
    values: dict[str, int | bytes | None] = {"p": 0o100755, "u": 0, "g": 0, "s": len(content),
                                             "sha256": hashlib.sha256(content).digest()}
    old = Entry(b"/usr/bin/x", "f", frozenset(values), values)
    new = Entry(b"/usr/bin/x", "f", frozenset(values), {**values, "p": 0o104750, "g": 50})
    change = Change(b"/usr/bin/x", "f", old, new, ("p", "g"))
    ids = Ids({"root": 0}, {"root": 0, "staff": 50})
    override = Override("root", "staff", 0o4750)
    assert judge(change, [Shipped("pkg", "1", None, md5, override=override)], ids, md5) == \
        Explanation(Kind.PACKAGE, "pkg", "1", Evidence.DPKG, reason=STATOVERRIDE)
    for other in (None, Override("root", "#50", 0o4755)):  # none, or one that gives another mode
        owner = Shipped("pkg", "1", None, md5, override=other)
        assert judge(change, [owner], ids, md5).kind is Kind.UNEXPLAINED


@requires_root
def test_the_report_names_dpkg_statoverride_beside_the_evidence(apt_tree: AptTree, tmp_path: Path) -> None:
    tree = apt_tree
    install_tool(tree)
    config = tmp_path / "aidepy.conf"  # no vault: evidence dpkg at most
    config.write_text(f"database_in=file:{tmp_path}/aidepy.db\ndatabase_out=file:{tmp_path}/aidepy.db\n"
                      f"state_dir={tmp_path}/state\nsigning_key={tmp_path}/none.key\nroot_prefix={tree.root}\n"
                      f"/usr {RULE}\n")
    assert aidepy("init", "-c", str(config)).returncode == 0
    upgrade_with_override(tree, "0750")
    check = aidepy("check", "-c", str(config))
    assert f"aidepy-test-s 1.0 → 2.0: 1 entry (evidence dpkg; {STATOVERRIDE})\n" \
        "  f = p.g mci.H     : /usr/bin/aidepy-test-s" in check.stdout, check.stdout
    # the directory the package transaction changed is explained without the file's reason
    assert "aidepy-test-s 1.0 → 2.0: 1 entry (evidence dpkg)\n  d = ... mc..      : /usr/bin" in check.stdout
    assert "Explanations: 0 unexplained, 2 explained (1 package)" in check.stdout
