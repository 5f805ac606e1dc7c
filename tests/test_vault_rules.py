"""The rules copy on the vault: `config.load(..., rules_root=)` reads every include from its copy,
`Vault.load_rules` loads it, and `aidepy check --vault-rules` uses it, so a rule an attacker adds
to a live include file hides nothing.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import AIDEPY, RESTORE, Admin, VaultSite, requires_root

from aidepy.config import evaluate as config
from aidepy.config.evaluate import copy_path
from aidepy.errors import ConfigError, VaultError
from aidepy.jobs.console import Console
from aidepy.jobs.promote import Promotion
from aidepy.vault.vault import Vault, VaultSettings

ORIGINAL = "/nonexistent/aidepy-rules"  # the original paths need not exist: only their copies are read


def lay_out(rules: Path, original: str, text: str, mode: int = 0o644) -> Path:
    """Put the copy of `original` under `rules/` as `Vault.write_rules` lays it out."""
    copy = rules / original.lstrip("/")
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(text)
    copy.chmod(mode)
    return copy


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    """A `rules/` copy of a file include, a directory include with a rule prefix and an executable
    @@x_include snippet; the main config naming them is `tmp_path/main.conf`."""
    root = tmp_path / "rules"
    lay_out(root, f"{ORIGINAL}/file.conf", "/etc p+sha256\n")
    lay_out(root, f"{ORIGINAL}/conf.d/a.conf", "/logs p\n")
    lay_out(root, f"{ORIGINAL}/conf.d/skipped.txt", "/skipped p\n")
    lay_out(root, f"{ORIGINAL}/gen.sh", "#!/bin/sh\necho '!/tmp'\n", 0o755)
    (tmp_path / "main.conf").write_text(
        f"@@include {ORIGINAL}/file.conf\n@@include {ORIGINAL}/conf.d \\.conf$ /var\n"
        f"@@x_include {ORIGINAL}/gen.sh\n/bin p\n")
    return root


def test_includes_are_read_from_the_copy_and_named_by_their_original_paths(rules: Path) -> None:
    loaded = config.load(rules.parent / "main.conf", rules_root=rules)
    assert [(r.regex, r.origin) for r in loaded.rules] == [
        ("/etc", f"{ORIGINAL}/file.conf:1"), ("/var/logs", f"{ORIGINAL}/conf.d/a.conf:1"),
        ("/tmp", f"{ORIGINAL}/gen.sh (stdout):1"), ("/bin", f"{rules.parent}/main.conf:4")]
    assert loaded.sources == [rules.parent / "main.conf", Path(f"{ORIGINAL}/file.conf"),
                              Path(f"{ORIGINAL}/conf.d/a.conf"), Path(f"{ORIGINAL}/gen.sh")]


def test_without_a_rules_root_the_live_paths_are_read(rules: Path) -> None:
    with pytest.raises(ConfigError, match=f"lstat for '{ORIGINAL}/file.conf' failed"):
        config.load(rules.parent / "main.conf")


def test_a_copy_path_never_leaves_the_rules_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert copy_path(b"/etc/x", None) == b"/etc/x"
    assert copy_path(b"/../../etc/./x", b"/r/") == b"/r/etc/x"
    assert copy_path(b"//etc/a/../x", b"/r") == b"/r/etc/x"
    monkeypatch.chdir(tmp_path)
    assert copy_path(b"../../../../../../x", b"/r") == b"/r/x"
    assert copy_path(b"inc.conf", b"/r") == b"/r" + os.fsencode(tmp_path) + b"/inc.conf"


def test_a_group_writable_copy_is_refused(rules: Path) -> None:
    (rules / ORIGINAL.lstrip("/") / "file.conf").chmod(0o664)
    with pytest.raises(ConfigError, match=f"'{ORIGINAL}/file.conf' is group- or world-writable"):
        config.load(rules.parent / "main.conf", rules_root=rules)


def test_a_missing_copy_names_the_original_and_the_rules_root(rules: Path) -> None:
    (rules / ORIGINAL.lstrip("/") / "file.conf").unlink()
    with pytest.raises(ConfigError, match=f"'{ORIGINAL}/file.conf' \\(its copy under {rules}\\) failed"):
        config.load(rules.parent / "main.conf", rules_root=rules)


def test_a_directory_without_copied_files_includes_nothing(rules: Path) -> None:
    for copy in (rules / ORIGINAL.lstrip("/") / "conf.d").iterdir():
        copy.unlink()
    (rules / ORIGINAL.lstrip("/") / "conf.d").rmdir()  # write_rules leaves no empty directory
    loaded = config.load(rules.parent / "main.conf", rules_root=rules)
    assert [r.regex for r in loaded.rules] == ["/etc", "/tmp", "/bin"]


def live_rules(tmp_path: Path) -> Path:
    """A main config with a file include, a prefixed directory include and an executable snippet."""
    inc = tmp_path / "inc"
    (inc / "conf.d").mkdir(parents=True)
    (inc / "file.conf").write_text("/etc p+sha256\n")
    (inc / "conf.d" / "a.conf").write_text("/logs p\n")
    (inc / "gen.sh").write_text("#!/bin/sh\necho '!/tmp'\n")
    (inc / "gen.sh").chmod(0o755)
    main = tmp_path / "main.conf"
    main.write_text(f"@@include {inc}/file.conf\n@@include {inc}/conf.d \\.conf$ /var\n"
                    f"@@x_include {inc}/gen.sh\n/bin p\n")
    return main


def test_write_rules_then_load_rules_gives_the_rules_back_after_the_live_files_changed(
    tmp_path: Path,
) -> None:
    """A directory vault (no root needed): the round trip that a check from the vault relies on."""
    main = live_rules(tmp_path)
    original = config.load(main)
    (tmp_path / "vault").mkdir()
    vault = Vault(VaultSettings(str(tmp_path / "vault")), warn=lambda m: None)
    with pytest.raises(VaultError, match="holds no copy of the rules"):
        vault.load_rules()
    vault.write_rules(original.sources)
    assert (vault.root / f"rules{tmp_path}/inc/gen.sh").stat().st_mode & 0o777 == 0o700
    with (tmp_path / "inc" / "conf.d" / "evil.conf").open("w") as f:
        f.write("!/\n")
    (tmp_path / "inc" / "file.conf").write_text("!/etc\n")
    assert config.load(main).digest != original.digest
    copy = vault.load_rules()
    assert copy.digest == original.digest
    assert [(r.regex, r.origin) for r in copy.rules][:3] == [(r.regex, r.origin) for r in original.rules][:3]
    assert copy.sources[1:] == original.sources[1:]
    assert vault.load_rules(after=["/usr p"]).rules[-1].regex == "/usr"
    assert vault.rules_changes(config.load(main).sources) == [
        f"{tmp_path}/inc/file.conf differs from the copy on the vault",
        f"{tmp_path}/inc/conf.d/evil.conf is part of the live rules but not of the copy on the vault"]


def check(site: VaultSite, *extra: str) -> subprocess.CompletedProcess[str]:
    """`aidepy check --json` (the config names the vault's baseline and key)."""
    return subprocess.run([*AIDEPY, "check", "--json", "-c", str(site.config_path),
                           *extra], capture_output=True, text=True, timeout=120)


@requires_root
def test_check_with_vault_rules_reports_a_change_the_tampered_live_rules_hide(vault_site: VaultSite) -> None:
    site = vault_site
    inc = site.root / "inc"
    (inc / "conf.d").mkdir(parents=True)
    (inc / "file.conf").write_text(f"{site.tree}/motd$ p+sha256\n")
    (inc / "conf.d" / "a.conf").write_text("/logs$ p\n")
    (inc / "gen.sh").write_text(f"#!/bin/sh\necho '!{site.tree}/cache'\n")
    (inc / "gen.sh").chmod(0o755)
    site.write_config(extra=f"database_in=file:{site.mountpoint}/aidepy.db\n"
                            f"public_key={site.mountpoint}/aidepy.pub\n@@include {inc}/file.conf\n"
                            f"@@include {inc}/conf.d \\.conf$ {site.tree}\n"
                            f"@@x_include {inc}/gen.sh\n")
    original = config.load(site.config_path)
    admin = Admin().on(RESTORE, lambda: site.loop.set_read_only(True))
    Promotion(original, Console(io.StringIO("y\ncorrect horse\n"), admin), poll=0.05, patience=60).run()
    vault = Vault.open(original, warn=lambda m: None)
    vault.umount()  # promote leaves it mounted read-only; --vault-rules mounts it for the run
    assert site.write_protected() and not site.loop.mountpoints()

    # The attacker changes a file and adds a rule that excludes it to a live include file.
    (site.tree / "passwd").write_text("root:x:0:0::/root:/bin/sh\nevil:x:0:0::/:/bin/sh\n")
    with (inc / "conf.d" / "a.conf").open("a") as f:
        f.write("!/passwd$\n")
    (inc / "conf.d" / "zz.conf").write_text("!/shadow$\n"  # and drops in a snippet of its own,
                                            "report_ignore_changed_attrs=R+H+a+b+m+c+s\n")  # quiet too
    assert config.load(site.config_path).digest != original.digest
    with vault.mounted():
        hidden = check(site)
    assert hidden.returncode in (0, 2), hidden.stdout + hidden.stderr  # at most "removed"
    assert str(site.tree / "passwd") not in [c["path"] for c in json.loads(hidden.stdout)["changed"]]

    run = check(site, "--vault-rules")
    assert run.returncode == 4, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert [c["path"] for c in report["changed"]] == [str(site.tree / "passwd")]
    differ = "ALERT RULES DIFFER FROM THE VAULT'S COPY:"
    assert f"{differ} {inc}/conf.d/a.conf differs from the copy on the vault" in report["notices"]
    assert (f"{differ} {inc}/conf.d/zz.conf is part of the live rules but not of the copy on the vault"
            in report["notices"])
    assert not [n for n in report["notices"] if "rules or options differ" in n]
    assert not site.loop.mountpoints()  # mounted for the run only
    with vault.mounted():
        assert vault.load_rules().digest == original.digest
