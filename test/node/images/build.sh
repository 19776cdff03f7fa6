#!/usr/bin/env bash
# Builds the node tier's test-only stand-in binary (main.go here) as a static executable, cached under
# ${XDG_CACHE_HOME:-$HOME/.cache}/asm-cni/node-standin-<hash of the sources>/standin. Prints its path.
# The harness (test/harness/node-images.ts) packs it into the pause, app and proxy images.
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)
hash=$(cat "$src/go.mod" "$src/main.go" | sha256sum | cut -c1-16)
out="${XDG_CACHE_HOME:-$HOME/.cache}/asm-cni/node-standin-$hash"
if [ ! -x "$out/standin" ]; then
  mkdir -p "$out"
  (cd "$src" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w" -o "$out/standin.partial" .)
  mv "$out/standin.partial" "$out/standin"
  # builds of older sources are of no further use
  for old in "$(dirname "$out")"/node-standin-*; do [ "$old" = "$out" ] || rm -rf -- "$old"; done
fi
echo "$out/standin"
