#!/bin/sh
# Installs the Debian packages encore builds and tests with. Idempotent: when
# every package is already present it does nothing and needs no network.
# sentencepiece (spm_encode) is for tests only: t_tokenizer compares against it.
set -eu
pkgs="build-essential pkg-config libopenblas-dev libzmq3-dev libprotobuf-c-dev
protobuf-c-compiler libsqlite3-dev libavformat-dev libavcodec-dev libavutil-dev
libswresample-dev libswscale-dev ffmpeg perl sentencepiece"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages:$missing (run as root or install them)" >&2
    exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
