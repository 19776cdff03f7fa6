#!/usr/bin/env bash
# Stand-ins for the Dockerfile's base images, which cannot be pulled here (no registry is reachable): a Debian
# bookworm rootfs made by mmdebstrap from Debian's packages, plus this machine's Node (node:NN-bookworm-slim) or Go
# (golang:X-bookworm) toolchain as a second layer, each written as an OCI layout the build names as a context.
# They are stand-ins, not the official images: they hold what this Dockerfile uses (apt, node and npm, go, the CA
# bundle that lets RUN steps reach Debian, npm and the Go module proxy through this machine's egress) and nothing more.
# Output: ${XDG_CACHE_HOME:-$HOME/.cache}/asm-cni/image-bases/<key>/{nodebase,gobase}/ and bases.env with
#   NODE_BASE_REF, NODE_BASE_DIGEST, GO_BASE_REF, GO_BASE_DIGEST; reused while the key (toolchain versions) holds.
# Usage: bases.sh [--env-file]   (prints the path of bases.env)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
node_version=$(node -p 'process.versions.node')
node_major=${node_version%%.*}
go_version=$(go env GOVERSION | sed 's/^go//')
goroot=$(go env GOROOT)
key="bookworm-node${node_version}-go${go_version}"
out="${XDG_CACHE_HOME:-$HOME/.cache}/asm-cni/image-bases/$key"
env_file="$out/bases.env"
[[ "${1:-}" == "--env-file" ]] && { echo "$env_file"; exit 0; }
log() { printf '[bases %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
if [[ -f "$env_file" ]]; then log "cached: $out"; exit 0; fi
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [[ -f "$env_file" ]]; then log "cached: $out"; exit 0; fi
command -v mmdebstrap >/dev/null || { echo "bases: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/asm-cni-bases-XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
log "Debian bookworm rootfs (mmdebstrap, minbase + ca-certificates)"
mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "$work/rootfs.tar"

# This machine's CA bundle: its egress to the registries presents certificates only that bundle trusts.
mkdir -p "$work/ca/etc/ssl/certs"
cp /etc/ssl/certs/ca-certificates.crt "$work/ca/etc/ssl/certs/ca-certificates.crt"

log "Node $node_version layer"
mkdir -p "$work/node/usr/bin" "$work/node/usr/lib/node_modules" "$work/node/etc/ssl/certs"
cp "$(command -v node)" "$work/node/usr/bin/node"
cp -r "$(dirname "$(readlink -f "$(command -v npm)")")/.." "$work/node/usr/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/node/usr/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/node/usr/bin/npx"
cp "$work/ca/etc/ssl/certs/ca-certificates.crt" "$work/node/etc/ssl/certs/"
tar -C "$work/node" -cf "$work/node.tar" .

log "Go $go_version layer"
mkdir -p "$work/go/usr/local" "$work/go/etc/ssl/certs"
cp -r "$goroot" "$work/go/usr/local/go"
cp "$work/ca/etc/ssl/certs/ca-certificates.crt" "$work/go/etc/ssl/certs/"
tar -C "$work/go" -cf "$work/go.tar" .

path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
node_digest=$(node "$here/oci-layout.mjs" "$work/nodebase" \
  "{\"Env\":[\"PATH=$path\",\"NODE_VERSION=$node_version\",\"NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt\"],\"Cmd\":[\"node\"]}" \
  "$work/rootfs.tar" "$work/node.tar")
go_digest=$(node "$here/oci-layout.mjs" "$work/gobase" \
  "{\"Env\":[\"PATH=/go/bin:/usr/local/go/bin:$path\",\"GOPATH=/go\",\"GOTOOLCHAIN=local\",\"GOLANG_VERSION=$go_version\"],\"WorkingDir\":\"/go\"}" \
  "$work/rootfs.tar" "$work/go.tar")
rm -rf "$out/nodebase" "$out/gobase"
mv "$work/nodebase" "$work/gobase" "$out/"
cat > "$env_file.partial" <<EOF
NODE_BASE_REF=node:${node_major}-bookworm-slim
NODE_BASE_DIGEST=$node_digest
GO_BASE_REF=golang:${go_version}-bookworm
GO_BASE_DIGEST=$go_digest
EOF
mv "$env_file.partial" "$env_file"
log "done in $(( $(date +%s) - start ))s: $out"
