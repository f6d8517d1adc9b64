#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian/Ubuntu machine, then run it.
# torch goes first (a CPU build), so nothing later pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: poppler-utils renders report PDFs to PNG/text in the tests; the EGL/Mesa
# libraries let slicer-core render slice views offscreen; chromium is the browser the web
# tests drive through playwright (never `playwright install`: Debian's build is used).
DEB_PACKAGES="poppler-utils libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1 libgl1 libglu1-mesa libxt6 chromium"
missing=$(for p in $DEB_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -e ".[test,web]" playwright
python3 -m pytest "$@"
