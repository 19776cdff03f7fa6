#!/usr/bin/env bash
# The cluster tier (npm run test:cluster; test/run.sh runs it): the shipped install on a real one-node cluster. The
# image is built from the Dockerfile (test/image/build.sh: BuildKit, stand-in bases, layers cached), then
# test/cluster/*.test.ts run through the node tier's runner (test/node/run.sh: same toolchain, containerd, private
# network and mount namespace), where test/harness/cluster.ts adds the scheduler, controller-manager and kube-proxy.
# Locally a missing prerequisite skips with a printed reason; under CI=true it fails.
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
if [ "$(id -u)" != 0 ] || [ "$(uname -s)" != Linux ]; then
  [ "${CI:-}" = true ] && { echo "cluster: FAILED: needs root on Linux under CI=true" >&2; exit 1; }
  echo "cluster: skipped: needs root on Linux (buildkitd, containerd, kubelet, network namespaces)"; exit 0
fi
start=$SECONDS
bash test/setup/node-deps.sh image || { echo "cluster: FAILED: cannot install mmdebstrap/runc" >&2; exit 1; }
bash test/setup/helm.sh || { echo "cluster: FAILED: helm and kustomize could not be built" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/asm-cni-cluster-XXXXXX")
trap 'rm -rf -- "$work"' EXIT
# The tag the tier's overlay and values name (the documented image override); a registry name nothing pulls from.
export ASM_IMAGE_REF=asm-cni.test/asm-cni:dev ASM_IMAGE_ARCHIVE="$work/asm-cni.tar"
bash test/image/build.sh "$ASM_IMAGE_ARCHIVE" "$ASM_IMAGE_REF" || { echo "cluster: FAILED: building the image" >&2; exit 1; }
echo "cluster: image ready after $((SECONDS - start))s"
ASM_NODE_TIER=cluster bash test/node/run.sh "$@"
rc=$?
echo "cluster: image build and tier together: $((SECONDS - start))s (exit $rc)"
exit $rc
