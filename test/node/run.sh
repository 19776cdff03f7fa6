#!/usr/bin/env bash
# The node tier (npm run test:node; test/run.sh calls it): a real kubelet and containerd start the pods the webhook
# rewrote, and containerd calls the CNI chain with asm-cni in it. Builds or reuses what it needs (the Kubernetes
# toolchain, crictl, Debian's containerd and runc, the stand-in images), then runs test/node/*.test.ts.
#
# Everything runs in a private network and mount namespace made here (unshare): the API server, webhook, containerd,
# kubelet, the pod bridge and every iptables rule live in it, and a tmpfs over /run takes what containerd 1.6, runc,
# netns pins and the plugin's backend cache write there. When the last process of the namespaces is gone, so is all
# of it; temp dirs, processes and the kubelet's cgroups are swept below.
# Locally a missing prerequisite skips with a printed reason; under CI=true it fails.
# The cluster tier (test/cluster/run.sh) runs its files through this script too, with ASM_NODE_TIER=cluster.
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
tier=${ASM_NODE_TIER:-node}

skip_or_fail() {
  if [ "${CI:-}" = true ]; then echo "$tier: FAILED: prerequisite missing under CI=true: $1" >&2; exit 1; fi
  echo "$tier: skipped: $1"
  exit 0
}

if [ -z "${ASM_NODE_INSIDE:-}" ]; then
  [ "$(id -u)" = 0 ] || skip_or_fail "not root (containerd, kubelet and network namespaces need root)"
  [ "$(uname -s)" = Linux ] || skip_or_fail "not Linux"
  command -v go >/dev/null 2>&1 || skip_or_fail "go is not installed (kubelet, crictl and the stand-in images are built with it)"
  command -v unshare >/dev/null 2>&1 || skip_or_fail "unshare (util-linux) is not installed"
  bash test/setup/system-deps.sh || exit 1
  bash test/setup/node-deps.sh || { echo "$tier: FAILED: installing containerd/runc" >&2; exit 1; }
  # Platform assumptions this tier was made for; anything else is reported, not guessed at.
  cgroup=$(stat -fc %T /sys/fs/cgroup)
  [ "$cgroup" = tmpfs ] || skip_or_fail "cgroup v1 is required (found $cgroup at /sys/fs/cgroup: cgroup v2 is not covered yet)"
  containerd_version=$(containerd --version | awk '{print $3}')
  case $containerd_version in
    1.6.*) ;;
    *) skip_or_fail "containerd $containerd_version found; this tier is made for containerd 1.6 (Debian bookworm's): its config and CNI options differ in 1.7/2.x" ;;
  esac
  start=$SECONDS
  bash test/e2e/toolchain.sh || { echo "$tier: FAILED: the Kubernetes toolchain could not be built" >&2; exit 1; }
  bash test/setup/crictl.sh || { echo "$tier: FAILED: crictl could not be built" >&2; exit 1; }
  if [ ! -x dist/cni/asm-cni ] || [ -n "$(find src cni -newer dist/cni/asm-cni -type f -print -quit 2>/dev/null)" ]; then
    echo "$tier: building the product (npm run build)"
    npm run --silent build || { echo "$tier: FAILED: npm run build" >&2; exit 1; }
  fi
  ASM_NODE_STANDIN="$(bash test/node/images/build.sh)" || { echo "$tier: FAILED: building the stand-in images" >&2; exit 1; }
  export ASM_NODE_STANDIN ASM_K8S_BIN="$(bash test/e2e/toolchain.sh --bin-dir)" ASM_CRICTL="$(bash test/setup/crictl.sh --path)"
  echo "$tier: containerd $containerd_version, $(runc --version | head -1), cgroup v1, prepared in $((SECONDS - start))s"
  # --fork: the shell below is PID 1 of nothing; --kill-child: if this script dies, the inner run dies with it.
  ASM_NODE_INSIDE=1 unshare --net --mount --propagation private --fork --kill-child -- bash "$0" "$@"
  rc=$?
  echo "$tier: finished in $((SECONDS - start))s (exit $rc)"
  exit $rc
fi

# Inside the private namespaces.
mount -n -t tmpfs -o mode=0755 asm-node-run /run || { echo "$tier: FAILED: mounting a private /run" >&2; exit 1; }
ip link set lo up
# The node's address (kubelet refuses a loopback node IP), documentation range, on one end of a veth pair whose both
# ends stay in this namespace (no dummy module needed). The range's upper half is the cluster tier's ClusterIPs
# (test/harness/cluster.ts).
ip link add asm-node0 type veth peer name asm-node0p && ip link set asm-node0p up &&
  ip addr add 192.0.2.1/25 dev asm-node0 && ip link set asm-node0 up &&
  ip route add default dev asm-node0 || { echo "$tier: FAILED: node interface" >&2; exit 1; }
export ASM_NODE_IP=192.0.2.1

run_dir=$(mktemp -d "${TMPDIR:-/tmp}/asm-cni-node-run-XXXXXX")
export ASM_E2E_RUN_DIR="$run_dir"
# Safety net for teardown (test/harness/sweep.sh; the tests stop all of it themselves): process groups, the shims and
# container processes found by the node's containerd socket and cgroup root, temp dirs, the cgroups.
# shellcheck source=../harness/sweep.sh
source test/harness/sweep.sh
trap 'sweep_run_dir "$tier" "$run_dir"' EXIT

files=() opts=()
for a in "$@"; do case $a in *.test.ts) files+=("$a") ;; *) opts+=("$a") ;; esac; done
[ ${#files[@]} -eq 0 ] && files=(test/"$tier"/*.test.ts)
npx tap --disable-coverage --allow-incomplete-coverage --jobs=1 --timeout=1800 --reporter="${ASM_E2E_REPORTER:-terse}" \
  ${opts[@]+"${opts[@]}"} "${files[@]}"
