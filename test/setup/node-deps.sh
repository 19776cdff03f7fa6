#!/usr/bin/env bash
# Installs what the node and cluster tiers run pods with: Debian's containerd (1.6 on bookworm) and runc (and procps,
# nftables). Idempotent. Installing
# the package starts no daemon here (the tier runs its own containerd with a private config); without root it only
# reports what is missing.
set -euo pipefail
need=()
command -v containerd >/dev/null 2>&1 && command -v ctr >/dev/null 2>&1 || need+=(containerd)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v pgrep >/dev/null 2>&1 || need+=(procps) # the tier's sweep finds left-over processes with it
command -v nft >/dev/null 2>&1 || need+=(nftables) # kube-proxy's nftables mode (the cluster tier) runs nft
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "node-deps: missing ${need[*]} (run as root to install them)" >&2
  exit 1
fi
echo "node-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
