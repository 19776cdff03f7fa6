#!/usr/bin/env bash
# Installs the Debian packages the real-node tiers need. Idempotent; installing starts no daemon here (the tiers run
# their own containerd with a private config); without root it only reports what is missing.
#   node-deps.sh          the node and cluster tiers: containerd (1.6 on bookworm) and runc, procps (the sweep finds
#                         left-over processes with pgrep), nftables (kube-proxy's nftables mode runs nft)
#   node-deps.sh image    building the image (test/image/build.sh): mmdebstrap for the stand-in bases' rootfs, runc
#                         for buildkitd's OCI worker
set -euo pipefail
case ${1:-node} in
  node) wanted=(containerd:containerd ctr:containerd runc:runc pgrep:procps nft:nftables) ;;
  image) wanted=(mmdebstrap:mmdebstrap runc:runc) ;;
  *) echo "usage: node-deps.sh [node|image]" >&2; exit 2 ;;
esac
need=()
for w in "${wanted[@]}"; do
  command -v "${w%%:*}" >/dev/null 2>&1 || [[ " ${need[*]} " == *" ${w#*:} "* ]] || need+=("${w#*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "node-deps: missing ${need[*]} (run as root to install them)" >&2
  exit 1
fi
echo "node-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
