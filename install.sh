#!/bin/sh
# Install a birdd station on a fresh Debian 12 / Raspberry Pi OS bookworm box, in one command:
#
#   sudo sh install.sh --lat 42.45 --lon -76.50 --station garden
#
# Debian packages (apt-get), a venv in /opt/birdd/.venv with birdd and its BirdNET extra, then
# `birdd setup` with every argument given here (docs/stations.md): config, systemd units, the
# all-classes BirdNET model, checks, services started. Run it again to upgrade or change the
# station; `sudo /opt/birdd/.venv/bin/birdd setup --uninstall` removes what setup added.
#
# BIRDD_PACKAGE: what pip installs (a wheel, an sdist, a folder or a git URL; default: the folder
# holding this script, a checkout). BIRDD_VENV: the venv (default /opt/birdd/.venv).
# BIRDD_BROKER_PACKAGE: set it empty to not install Debian's mosquitto (a broker elsewhere: --broker).
set -eu

say() { printf 'birdd install: %s\n' "$*" >&2; }
fail() { say "error: $*"; exit 1; }

VENV=${BIRDD_VENV:-/opt/birdd/.venv}
PACKAGE=${BIRDD_PACKAGE:-$(cd "$(dirname "$0")" && pwd)}
BROKER=${BIRDD_BROKER_PACKAGE-mosquitto}
APT_PACKAGES="python3 python3-venv libportaudio2 alsa-utils ca-certificates procps systemd mosquitto-clients $BROKER"

[ "$(id -u)" -eq 0 ] || fail "run as root: sudo sh install.sh --lat LAT --lon LON ..."
command -v apt-get >/dev/null || fail "no apt-get: this script is for Debian and Raspberry Pi OS"
case "$PACKAGE" in
  *://*|git+*) ;;
  *) [ -e "$PACKAGE" ] || fail "BIRDD_PACKAGE $PACKAGE: no such file or folder" ;;
esac
[ ! -d "$PACKAGE" ] || [ -f "$PACKAGE/pyproject.toml" ] || fail "$PACKAGE: not a birdd checkout (no pyproject.toml)"

missing=""
for p in $APT_PACKAGES; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"; done
if [ -n "$missing" ]; then
  say "Debian packages:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

[ -x "$VENV/bin/python" ] || { say "venv $VENV"; python3 -m venv "$VENV"; }
say "birdd[birdnet] from $PACKAGE into $VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "birdd[birdnet] @ $(case "$PACKAGE" in
  *://*|git+*) printf '%s' "$PACKAGE" ;; *) printf 'file://%s' "$(realpath "$PACKAGE")" ;; esac)"
"$VENV/bin/pip" uninstall -q -y python-daemon 2>/dev/null || true  # it would shadow birdd's `daemon` package

exec "$VENV/bin/birdd" setup "$@"
