#!/usr/bin/env bash
# The project's one test command (npm test; .ci/run calls it). Installs what the tiers need, builds, then runs
# every tier: TypeScript unit/integration (tap), Go unit + network-namespace tests, the API-server end-to-end suite,
# the node tier (a real kubelet + containerd calling the plugin), the image tier (the Dockerfile built by BuildKit) and
# the cluster tier (the shipped manifests and chart installed on a one-node cluster, as pods of that image).
# ASM_TIERS="unit go" runs a subset. Under CI=true every tier is mandatory: a missing prerequisite fails it.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
tiers=${ASM_TIERS:-"unit go e2e node image cluster"}

bash test/setup/system-deps.sh || exit 1
# helm and kustomize for the chart tests (unit and e2e), built from the Go module proxy once and cached.
bash test/setup/helm.sh || exit 1
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund || exit 1
fi
npm run --silent build || { echo "build failed"; exit 1; }

passed=0 failed=0 failed_names=()
run_tier() {
  local name=$1; shift
  echo "=== tier $name: $*"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1)); echo "=== tier $name passed ($((SECONDS - start))s)"
  else
    failed=$((failed + 1)); failed_names+=("$name"); echo "=== tier $name FAILED ($((SECONDS - start))s)"
  fi
}
for tier in $tiers; do
  case $tier in
    unit) run_tier unit npx tap ;;
    go) run_tier go bash test/go-tests.sh ;;
    e2e) run_tier e2e bash test/e2e/run.sh ;;
    node) run_tier node bash test/node/run.sh ;;
    image) run_tier image bash test/image/run.sh ;;
    cluster) run_tier cluster bash test/cluster/run.sh ;;
    *) echo "unknown tier $tier"; failed=$((failed + 1)); failed_names+=("$tier") ;;
  esac
done
[ $failed -gt 0 ] && echo "failed tiers: ${failed_names[*]}"
echo "tiers: $passed passed, $failed failed"
[ $failed -eq 0 ]
