#!/usr/bin/env bash
# Installs the Debian packages alloc builds and tests with, when any is missing.
# Runs apt-get update first (a fresh machine has no package lists). Idempotent.
set -euo pipefail

packages=(
    build-essential pkg-config
    librabbitmq-dev libhiredis-dev libpq-dev libjansson-dev zlib1g-dev libssl-dev libxlsxwriter-dev
    rabbitmq-server redis-server postgresql postgresql-contrib
    docker-compose
    chromium
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# Debian's postinst scripts try to start the system services; the local cluster
# runs its own instances, so keep the packaged ones from starting.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
