"""Where promote puts the baseline is decided, and said, before the write protection comes off:
on the vault when it fits, else anchored (the baseline in state_dir, 0600, a signed anchor on
the vault); an anchored vault stays anchored until the admin asks otherwise."""

from __future__ import annotations

import stat

import pytest
from conftest import REMOVE, VaultSite, promote_in_process, requires_root, rewrite_vault, vault_filler

from aidepy.errors import VaultFullError
from aidepy.jobs.promote import Layout

pytestmark = requires_root


def anchored_copies(site: VaultSite) -> list[str]:
    return sorted(p.name for p in site.state_dir.glob("aidepy.*.db"))


def test_anchoring_is_decided_and_said_before_the_protection_comes_off(vault_site: VaultSite) -> None:
    site = vault_site
    site.mountpoint.mkdir()
    vault_filler(site, 12 * 1024)
    for i in range(600):
        (site.tree / f"file{i:03d}").write_text(f"{i}\n")
    site.loop.set_read_only(True)
    generation, out = promote_in_process(site)
    assert generation == 1
    said = out.index("Anchored: the baseline (")
    assert "does not fit the vault (" in out[said:] and said < out.index(REMOVE)
    assert anchored_copies(site) == ["aidepy.1.db"]
    st = (site.state_dir / "aidepy.1.db").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o600, 0)


def test_an_anchored_vault_stays_anchored_when_the_baseline_would_fit(anchored_site: VaultSite) -> None:
    site = anchored_site
    rewrite_vault(site, "rm filler")  # room enough now
    (site.tree / "file000").write_text("changed\n")
    generation, out = promote_in_process(site)
    assert generation == 2 and "Anchored: as before (--layout vault moves it back)" in out
    assert not (site.mountpoint / "aidepy.db").exists() and (site.mountpoint / "aidepy.anchor").exists()
    assert anchored_copies(site) == ["aidepy.2.db"]  # the superseded copy is gone


def test_layout_vault_moves_it_back_and_removes_the_anchored_copy(anchored_site: VaultSite) -> None:
    site = anchored_site
    rewrite_vault(site, "rm filler")
    generation, out = promote_in_process(site, layout=Layout.VAULT)
    assert generation == 2 and "Anchored" not in out
    assert (site.mountpoint / "aidepy.db").exists() and not (site.mountpoint / "aidepy.anchor").exists()
    assert anchored_copies(site) == []
    assert site.baseline()[0] == 2


def test_layout_vault_that_does_not_fit_is_refused_before_anything_is_written(
        anchored_site: VaultSite) -> None:
    site = anchored_site
    site.loop.set_read_only(True)
    with pytest.raises(VaultFullError, match=r"aidepy\.db does not fit on the vault"):
        promote_in_process(site, layout=Layout.VAULT)
    assert site.write_protected(), "the admin was asked to lift the write protection"
    assert site.baseline()[0] == 1 and anchored_copies(site) == ["aidepy.1.db"]
