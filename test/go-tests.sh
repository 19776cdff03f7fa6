#!/usr/bin/env bash
# Go tier: unit tests of the plugin plus its namespace tests (root; mandatory under CI=true).
# The namespace tests run the built binary, so it is built first. go vet and staticcheck run as gates (scripts/gates.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/cni/build.sh"
cd "$here/cni"
export ASM_CNI_BINARY="$here/dist/cni/asm-cni"

go test -count=1 -p 1 -timeout 20m ./... "$@"
# Native fuzzing of the plugin's annotation parsers (issue 10), bounded by a number of inputs, not by time, so a
# slow machine runs the same work, only longer. ASM_FUZZ_INPUTS raises it for a longer local hunt.
fuzz_inputs=${ASM_FUZZ_INPUTS:-20000}
for target in FuzzParsePortList FuzzParseCIDRList FuzzParseInterfaceList FuzzParseInterceptionMode; do
  echo "fuzz $target (${fuzz_inputs} inputs)"
  go test -count=1 -run '^$' -fuzz "^${target}\$" -fuzztime="${fuzz_inputs}x" ./internal/rules
done
