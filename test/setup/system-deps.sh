#!/usr/bin/env bash
# Installs the Debian packages the test tiers use (real iptables, real CNI plugins, iproute2, openssl).
# Idempotent and quiet when everything is there. Without root it only reports what is missing.
set -euo pipefail
need=()
command -v iptables-restore >/dev/null 2>&1 || need+=(iptables)
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ] || need+=(containernetworking-plugins)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing ${need[*]} (run as root to install them)" >&2
  [ "${CI:-}" = true ] && exit 1
  exit 0
fi
echo "system-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
