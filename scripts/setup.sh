#!/bin/sh
# setup.sh: installs the Debian packages forgescale needs to build and test.
# Idempotent and quiet when nothing is missing; needs root (or sudo) only
# when something has to be installed.
set -eu

PKGS="build-essential pkg-config meson ninja-build
libcurl4-openssl-dev libjansson-dev libfyaml-dev libsqlite3-dev
libmicrohttpd-dev libcmocka-dev libgnutls28-dev
libprotobuf-c-dev protobuf-c-compiler zlib1g-dev
clang libclang-rt-dev llvm
curl jq wrk prometheus"

missing=""
for p in $PKGS; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
                missing="$missing $p"
        fi
done
[ -z "$missing" ] && exit 0

echo "setup: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
