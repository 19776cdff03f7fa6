#!/usr/bin/env bash
# The e2e tier (npm run test:e2e; test/run.sh calls it): builds or reuses the pinned Kubernetes toolchain, makes sure
# the product is built, then runs the scenarios under test/e2e/ against a real kube-apiserver + etcd on loopback.
# Locally a missing prerequisite skips with a printed reason; under CI=true it fails.
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"

skip_or_fail() {
  if [ "${CI:-}" = true ]; then echo "e2e: FAILED: prerequisite missing under CI=true: $1" >&2; exit 1; fi
  echo "e2e: skipped: $1"
  exit 0
}

command -v go >/dev/null 2>&1 || skip_or_fail "go is not installed (needed to build kube-apiserver, kubectl, etcd)"
command -v openssl >/dev/null 2>&1 || skip_or_fail "openssl is not installed (bash test/setup/system-deps.sh)"

start=$SECONDS
bash test/e2e/toolchain.sh || { echo "e2e: FAILED: the Kubernetes toolchain could not be built (see above)" >&2; exit 1; }
ASM_K8S_BIN="$(bash test/e2e/toolchain.sh --bin-dir)"
bash test/setup/helm.sh || { echo "e2e: FAILED: helm could not be built (see above)" >&2; exit 1; }
export ASM_K8S_BIN

# The scenarios drive the built product (dist/): rebuild when a source is newer than the build.
if [ ! -x dist/cni/asm-cni ] || [ -n "$(find src cni -newer dist/cni/asm-cni -type f -print -quit 2>/dev/null)" ]; then
  echo "e2e: building the product (npm run build)"
  npm run --silent build || { echo "e2e: FAILED: npm run build" >&2; exit 1; }
fi

# Safety net for teardown (test/harness/sweep.sh): what the tests leave behind is swept on exit.
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/asm-cni-e2e-run-XXXXXX")
export ASM_E2E_RUN_DIR="$run_dir"
# shellcheck source=../harness/sweep.sh
source test/harness/sweep.sh
trap 'sweep_run_dir e2e "$run_dir"' EXIT

# Coverage off: these tests drive built binaries and separate processes, not the sources tap would instrument.
# One file at a time: each starts its own control plane, and the machine has two cores.
# Arguments: test files (test/e2e/node.test.ts) pick files; anything else goes to tap.
files=() opts=()
for a in "$@"; do case $a in *.test.ts) files+=("$a") ;; *) opts+=("$a") ;; esac; done
[ ${#files[@]} -eq 0 ] && files=(test/e2e/*.test.ts)
npx tap --disable-coverage --allow-incomplete-coverage --jobs=1 --timeout=900 --reporter="${ASM_E2E_REPORTER:-terse}" \
  ${opts[@]+"${opts[@]}"} "${files[@]}"
rc=$?
echo "e2e: finished in $((SECONDS - start))s (exit $rc)"
exit $rc
