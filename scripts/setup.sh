#!/usr/bin/env bash
# One-time, idempotent set-up for Linux without a GPU (Debian 12 / bookworm and later):
#   - Mesa lavapipe >= 24 (CPU Vulkan) and the Vulkan loader, so Dawn finds an adapter;
#   - Debian's Chromium, for the browser half of the test suite;
#   - the npm dependencies (npm ci).
# It skips what is already there. Run as root (or with sudo available).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

mesa_version() {
  dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | sed -E 's/^[0-9]+://; s/[^0-9.].*//'
}

mesa_ok() {
  local v; v=$(mesa_version)
  [ -n "$v" ] && [ "${v%%.*}" -ge 24 ]
}

codename() { . /etc/os-release; echo "${VERSION_CODENAME:-}"; }

# Derive a <codename>-backports source entry from the existing Debian entry (same URI, same keyring).
add_backports() {
  local code="$1" list=/etc/apt/sources.list.d/ecg-jepa-backports.sources
  [ -f "$list" ] && return 0
  local src uri keyring
  for src in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    [ -f "$src" ] || continue
    if [[ "$src" == *.sources ]]; then
      uri=$(awk '/^URIs:/{print $2; exit}' "$src")
      keyring=$(awk '/^Signed-By:/{print $2; exit}' "$src")
    else
      uri=$(awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' "$src")
    fi
    [ -n "${uri:-}" ] && break
  done
  [ -n "${uri:-}" ] || { echo "setup: no Debian source entry found to derive ${code}-backports from" >&2; exit 1; }
  echo "setup: adding ${code}-backports from ${uri}"
  {
    echo "Types: deb"; echo "URIs: ${uri}"; echo "Suites: ${code}-backports"; echo "Components: main"
    [ -n "${keyring:-}" ] && echo "Signed-By: ${keyring}"
  } | $SUDO tee "$list" >/dev/null
}

apt_updated=0
apt_update() { [ $apt_updated -eq 1 ] || { $SUDO apt-get update -qq; apt_updated=1; }; }
apt_install() { DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }

if command -v apt-get >/dev/null; then
  if ! mesa_ok || ! have_pkg libvulkan1; then
    code=$(codename)
    apt_update
    if [ "$code" = "bookworm" ]; then
      add_backports "$code"; apt_updated=0; apt_update
      apt_install -t bookworm-backports mesa-vulkan-drivers libvulkan1
    else
      apt_install mesa-vulkan-drivers libvulkan1
    fi
  fi
  mesa_ok || { echo "setup: lavapipe $(mesa_version) is older than 24; Dawn will not accept it" >&2; exit 1; }
  echo "setup: lavapipe (mesa-vulkan-drivers) $(mesa_version)"
  if ! command -v chromium >/dev/null; then
    apt_update; apt_install chromium
  fi
  echo "setup: $(chromium --version 2>/dev/null || echo 'chromium missing')"
else
  echo "setup: not a Debian-like system; install Mesa lavapipe >= 24, libvulkan and Chromium yourself" >&2
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
echo "setup: done"
