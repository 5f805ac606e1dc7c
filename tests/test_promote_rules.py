"""promote copies the live rules onto the vault: when they differ from the vault's copy, it shows
the diff and what the baseline would stop covering, and asks separately; --yes refuses unless
--accept-rules. An intruder's rule edit that hides a file is thus seen before it is protected."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from conftest import (
    REMOVE,
    RESTORE,
    Admin,
    VaultSite,
    aidepy,
    backdate,
    promote_in_process,
    requires_root,
)

from aidepy.config import evaluate as config
from aidepy.config.evaluate import parse_text
from aidepy.errors import UsageError
from aidepy.jobs.console import Console, Declined
from aidepy.jobs.promote import Promotion
from aidepy.jobs.rules_review import no_longer_selected
from aidepy.scan.walk import scan

pytestmark = requires_root

RULES_QUESTION = "Accept these rule changes"


@pytest.fixture
def promoted(vault_site: VaultSite) -> VaultSite:
    backdate(vault_site.tree)
    assert promote_in_process(vault_site)[0] == 1
    return vault_site


def hide_passwd(site: VaultSite) -> None:
    """What an intruder with root does: a rule that stops the check from looking at a file."""
    site.config_path.write_text(f"!{site.tree}/passwd$\n" + site.config_path.read_text())


def vault_rules(site: VaultSite) -> str:
    return (site.mountpoint / "aidepy.conf").read_text()


def test_promote_shows_a_hiding_rule_edit_and_keeps_everything_when_refused(promoted: VaultSite) -> None:
    site = promoted
    before = vault_rules(site)
    hide_passwd(site)
    shown = Admin()
    declined = Promotion(config.load(site.config_path), Console(io.StringIO("y\nn\n"), shown)).run()
    assert isinstance(declined, Declined) and "rule changes not accepted" in declined.reason
    out = shown.getvalue()
    assert f"+!{site.tree}/passwd$" in out and f"vault copy of {site.config_path}" in out
    assert "1 paths of the vault's baseline are no longer selected" in out
    assert f"\n  {site.tree}/passwd" in out
    assert RULES_QUESTION in out and REMOVE not in out  # asked, and nothing was unlocked
    assert site.baseline()[0] == 1 and vault_rules(site) == before


def test_accepted_rule_changes_become_the_vaults_copy(promoted: VaultSite) -> None:
    site = promoted
    hide_passwd(site)
    site.loop.set_read_only(True)
    admin = (Admin().on(REMOVE, lambda: site.loop.set_read_only(False))
             .on(RESTORE, lambda: site.loop.set_read_only(True)))
    Promotion(config.load(site.config_path), Console(io.StringIO("y\ny\ncorrect horse\n"), admin),
              poll=0.05, patience=60).run()
    assert RULES_QUESTION in admin.getvalue()
    assert site.baseline()[0] == 2 and vault_rules(site) == site.config_path.read_text()


def test_yes_refuses_changed_rules_without_accept_rules(promoted: VaultSite) -> None:
    site = promoted
    hide_passwd(site)
    with pytest.raises(UsageError, match="--accept-rules"):
        Promotion(config.load(site.config_path), Console(io.StringIO(), io.StringIO()), assume_yes=True).run()
    assert site.baseline()[0] == 1


def test_unchanged_rules_ask_nothing_more(promoted: VaultSite) -> None:
    (promoted.tree / "motd").write_text("changed\n")
    generation, out = promote_in_process(promoted)
    assert generation == 2 and RULES_QUESTION not in out and "differ from the vault's copy" not in out


def test_vault_install_shows_the_same_review_and_keeps_the_copy_when_refused(promoted: VaultSite) -> None:
    site = promoted
    before = vault_rules(site)
    hide_passwd(site)
    site.loop.set_read_only(False)
    run = aidepy("vault", "install", "-c", str(site.config_path), input="n\n")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"+!{site.tree}/passwd$" in run.stdout and f"\n  {site.tree}/passwd" in run.stdout
    assert "rule changes not accepted" in run.stderr
    assert vault_rules(site) == before and not (site.mountpoint / "RUNTIME").exists()


def test_rules_no_longer_selected_include_what_lies_in_a_directory_no_longer_entered(tmp_path: Path) -> None:
    for name in ("keep", "gone/a", "gone/sub/b"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n")
    old = parse_text(f"{tmp_path} p\n").ruleset
    entries = list(scan(old, workers=1, on_warning=lambda w: None))
    new = parse_text(f"{tmp_path} p\n!{tmp_path}/gone$\n").ruleset
    assert no_longer_selected(entries, new) == [os.fsencode(tmp_path / p) for p in
                                                ("gone", "gone/a", "gone/sub", "gone/sub/b")]
    assert no_longer_selected(entries, old) == []
