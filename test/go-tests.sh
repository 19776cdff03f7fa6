#!/usr/bin/env bash
# Go tier: unit tests of the plugin plus its namespace tests (root; mandatory under CI=true).
# The namespace tests run the built binary, so it is built first. go vet and staticcheck run as gates (scripts/gates.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/cni/build.sh"
cd "$here/cni"
export ASM_CNI_BINARY="$here/dist/cni/asm-cni"

go test -count=1 -p 1 -timeout 20m ./... "$@"
