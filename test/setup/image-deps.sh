#!/usr/bin/env bash
# Installs what building the image needs (test/image/build.sh): mmdebstrap for the stand-in bases' Debian rootfs, runc
# for buildkitd's OCI worker. Idempotent; without root it only reports what is missing.
set -euo pipefail
need=()
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v runc >/dev/null 2>&1 || need+=(runc)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "image-deps: missing ${need[*]} (run as root to install them)" >&2
  exit 1
fi
echo "image-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
