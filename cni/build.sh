#!/usr/bin/env bash
# Builds the CNI plugin as a static, stripped binary at dist/cni/asm-cni (what the installer ships).
# ASM_CNI_OUT: another output path; ASM_CNI_TAGS: build tags (the bench's prototype builds, never shipped).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="${ASM_CNI_OUT:-$here/../dist/cni/asm-cni}"
mkdir -p "$(dirname "$out")"
version=$(node -p "require('$here/../package.json').version" 2>/dev/null || echo dev)
cd "$here"
CGO_ENABLED=0 go build ${ASM_CNI_TAGS:+-tags "$ASM_CNI_TAGS"} -trimpath -ldflags "-s -w -X main.version=$version" -o "$out" ./cmd/asm-cni
