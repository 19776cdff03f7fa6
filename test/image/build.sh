#!/usr/bin/env bash
# Builds the image from the repository's Dockerfile with a real builder (BuildKit), with no registry reachable: the
# Dockerfile's bases are the stand-ins of bases.sh, given as named build contexts; the Dockerfile itself is used
# unchanged (it still builds with `docker build` where the bases can be pulled). buildkitd runs privately (its own
# root, socket and state under a temp dir) and is stopped at the end.
# Usage: build.sh OUT.tar [TAG]   writes a docker-archive tarball of TAG (default asm-cni:dev), for
#        `ctr -n k8s.io images import OUT.tar`. Needs root (buildkitd's OCI worker runs runc).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:?usage: build.sh OUT.tar [TAG]}
tag=${2:-asm-cni:dev}
log() { printf '[image %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

bash "$here/buildkit.sh"
bin=$(bash "$here/buildkit.sh" --bin-dir)
bash "$here/bases.sh"
# shellcheck disable=SC1090
source "$(bash "$here/bases.sh" --env-file)"
bases=$(dirname "$(bash "$here/bases.sh" --env-file)")

run=$(mktemp -d "${TMPDIR:-/tmp}/asm-cni-buildkit-XXXXXX")
sock="$run/buildkitd.sock"
# The build cache persists in the user's cache dir (layers of unchanged steps are reused by the next build). One
# build at a time on the machine, whatever its cache dir: every buildkitd's runc keeps its state in /run/runc, which
# the cleanup below removes.
state="${XDG_CACHE_HOME:-$HOME/.cache}/asm-cni/buildkit-state"
mkdir -p "$state"
exec 8>"${TMPDIR:-/tmp}/asm-cni-buildkit.lock"
flock 8
# buildkitd (its otel socket) and runc (its state) also write under /run whatever --root says: what did not exist
# before the build is removed after it.
host_leftovers=()
for d in /run/buildkit /run/runc; do [[ -e $d ]] || host_leftovers+=("$d"); done
cleanup() {
  if [[ -n "${pid:-}" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  for d in ${host_leftovers[@]+"${host_leftovers[@]}"}; do rm -rf -- "$d"; done
  # buildkitd's OCI worker leaves overlay mounts under its root while a build runs; unmount before leaving
  grep -oE " ($run|$state)/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT
log "starting buildkitd (state $state)"
"$bin/buildkitd" --root "$state" --addr "unix://$sock" --oci-worker=true --containerd-worker=false \
  --oci-worker-binary="$(command -v runc)" --oci-worker-net=host >"$run/buildkitd.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  "$bin/buildctl" --addr "unix://$sock" debug workers >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$run/buildkitd.log" >&2; echo "image: buildkitd exited" >&2; exit 1; }
  sleep 0.2
done
"$bin/buildctl" --addr "unix://$sock" debug workers >/dev/null || { cat "$run/buildkitd.log" >&2; exit 1; }

start=$(date +%s)
log "building $tag from $repo/Dockerfile (bases: $NODE_BASE_REF, $GO_BASE_REF stand-ins)"
# --opt cmdline= keeps the Dockerfile's `# syntax=` line from pulling a frontend image.
"$bin/buildctl" --addr "unix://$sock" build \
  --frontend dockerfile.v0 --opt cmdline= \
  --local context="$repo" --local dockerfile="$repo" \
  --oci-layout nodebase="$bases/nodebase" --oci-layout gobase="$bases/gobase" \
  --opt "context:$NODE_BASE_REF=oci-layout://nodebase@$NODE_BASE_DIGEST" \
  --opt "context:$GO_BASE_REF=oci-layout://gobase@$GO_BASE_DIGEST" \
  --output "type=docker,name=$tag,dest=$out.partial" \
  --progress plain >"$run/build.log" 2>&1 || { tail -n 60 "$run/build.log" >&2; echo "image: the build failed (above: the end of its log)" >&2; exit 1; }
mv "$out.partial" "$out"
log "built $tag in $(( $(date +%s) - start ))s: $out ($(du -h "$out" | cut -f1))"
