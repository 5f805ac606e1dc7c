#!/usr/bin/env bash
# Install what aidepy and its test suite need on a Debian machine (run as root):
# Debian packages (AIDE as the reference oracle, exim4 as the local MTA, udev, e2fsprogs,
# python3-docutils and man-db for the man pages, ...) and a virtual environment in .venv with
# aidepy installed in editable mode.
set -euo pipefail
cd "$(dirname "$0")"

packages=(aide aide-common exim4 udev e2fsprogs util-linux mount acl attr libcap2-bin systemd cron ufiformat
          python3-venv procps gpgv gnupg apt-utils dpkg-dev python3-docutils man-db)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [[ " ${missing[*]} " == *" aide-common "* ]]; then
        # aide-common brings Debian's /etc/aide/aide.conf (the tests read it), and with it a
        # daily `aide --update` of the whole system; aidepy has its own daily report, so that
        # run is switched off again, the way Debian documents (CRON_DAILY_RUN=no)
        systemctl disable dailyaidecheck.timer >/dev/null 2>&1 || true
        if [[ -d /run/systemd/system ]]; then
            systemctl stop dailyaidecheck.timer >/dev/null 2>&1 || true
        fi
        printf '\n# set by aidepy setup.sh: aidepy runs its own daily report\nCRON_DAILY_RUN=no\n' \
            >> /etc/default/aide
        echo "setup.sh: installed aide-common for /etc/aide/aide.conf and switched off its daily" \
             "aide run (dailyaidecheck.timer; CRON_DAILY_RUN=no in /etc/default/aide)" >&2
    fi
fi

if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
