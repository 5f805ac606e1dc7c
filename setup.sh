#!/usr/bin/env bash
# Install what aidepy and its test suite need on a Debian machine (run as root):
# Debian packages (AIDE as the reference oracle, exim4 as the local MTA, udev, e2fsprogs, ...)
# and a virtual environment in .venv with aidepy installed in editable mode.
set -euo pipefail
cd "$(dirname "$0")"

packages=(aide aide-common exim4 udev e2fsprogs util-linux mount acl attr libcap2-bin systemd cron
          python3-venv procps)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
