"""Every alarm of the daily report reaches the mail's subject, before any count, and a subject
never reads "no changes" while the body warns: one test per alarm, each performing it for real."""

from __future__ import annotations

import socket

import pytest
from conftest import (
    VaultSite,
    backdate,
    daily_report,
    promote_in_process,
    requires_root,
    rewrite_vault,
    sent_mail,
)

from aidepy import keys

pytestmark = requires_root

HOST = socket.gethostname()


@pytest.fixture
def promoted(vault_site: VaultSite) -> VaultSite:
    backdate(vault_site.tree)
    assert promote_in_process(vault_site)[0] == 1
    return vault_site


def subject_after_report(site: VaultSite, code: int) -> str:
    run = daily_report(site)
    assert run.returncode == code, run.stdout + run.stderr
    subject = sent_mail(site)["Subject"]
    assert "no changes" not in subject
    return str(subject).strip()  # a long subject is folded onto a second line


def test_a_clean_run_has_no_alarm(promoted: VaultSite) -> None:
    assert daily_report(promoted).returncode == 0
    assert sent_mail(promoted)["Subject"] == f"aidepy: {HOST}: no changes"


def test_a_vault_whose_protection_is_off_is_an_alarm(promoted: VaultSite) -> None:
    promoted.loop.set_read_only(False)
    (promoted.tree / "motd").write_text("changed\n")
    assert subject_after_report(promoted, 4) == \
        f"aidepy: {HOST}: ALERT: VAULT NOT WRITE-PROTECTED; 1 changed; 1 new, 1 pending"


def test_a_vault_key_that_is_not_the_hosts_signing_key_is_an_alarm(promoted: VaultSite) -> None:
    other = promoted.root / "other.key"
    keys.generate_keypair(other, None)
    keys.public_key_beside(promoted.key).write_bytes(keys.public_key_beside(other).read_bytes())
    assert subject_after_report(promoted, 0) == f"aidepy: {HOST}: ALERT: FOREIGN KEY"
    assert "was the medium swapped?" in sent_mail(promoted).get_content()


def test_a_key_nothing_on_the_host_pins_is_an_alarm(promoted: VaultSite) -> None:
    keys.public_key_beside(promoted.key).unlink()
    assert subject_after_report(promoted, 0) == f"aidepy: {HOST}: ALERT: KEY NOT PINNED"
    assert "set public_key=SHA256:" in sent_mail(promoted).get_content()


def test_a_pinned_key_settles_it(promoted: VaultSite) -> None:
    keys.public_key_beside(promoted.key).rename(promoted.root / "pinned.pub")
    assert daily_report(promoted, "-A", f"public_key={promoted.root}/pinned.pub").returncode == 0
    assert sent_mail(promoted)["Subject"] == f"aidepy: {HOST}: no changes"


def test_a_vault_without_the_rules_copy_is_an_alarm(promoted: VaultSite) -> None:
    rewrite_vault(promoted, "rm -r aidepy.conf rules")
    assert subject_after_report(promoted, 0) == f"aidepy: {HOST}: ALERT: RULES NOT FROM THE VAULT"


def test_a_rolled_back_baseline_is_an_alarm(promoted: VaultSite) -> None:
    old = (promoted.mountpoint / "aidepy.db").read_bytes()
    assert promote_in_process(promoted)[0] == 2
    assert daily_report(promoted).returncode == 0  # generation 2 verified here
    (promoted.root / "old.db").write_bytes(old)
    rewrite_vault(promoted, f"cp {promoted.root}/old.db aidepy.db")
    assert subject_after_report(promoted, 20) == f"aidepy: {HOST}: ALERT: ROLLBACK, NO CHECK DONE"


def test_a_missing_anchored_copy_is_an_alarm(anchored_site: VaultSite) -> None:
    (anchored_site.state_dir / "aidepy.1.db").unlink()
    assert (subject_after_report(anchored_site, 20)
            == f"aidepy: {HOST}: ALERT: ANCHORED COPY MISSING OR CHANGED, NO CHECK DONE")


def test_a_baseline_signed_with_another_key_than_the_pinned_one_is_an_alarm(promoted: VaultSite) -> None:
    other = promoted.root / "other.key"
    keys.generate_keypair(other, None)
    promoted.write_config(extra=f"public_key={keys.public_key_beside(other)}\n")
    assert subject_after_report(promoted, 20) == f"aidepy: {HOST}: ALERT: FOREIGN KEY, NO CHECK DONE"
