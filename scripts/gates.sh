#!/usr/bin/env bash
# Static gates, run by .ci/run before the test tiers (fail fast) and by developers as `npm run gates`:
# formatting (prettier, gofmt), lint (typescript-eslint type-aware + eslint-plugin-regexp's ReDoS rules;
# go vet, staticcheck), types (tsc over src, test, bench and soak) and the generated test vectors being current.
# Every gate runs; the summary names the ones that failed.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

# staticcheck is built once from the Go module proxy into the project's tool cache (never committed).
STATICCHECK_VERSION=v0.8.2
cache=${ASM_CACHE:-$HOME/.cache/asm-cni}
staticcheck="$cache/staticcheck-$STATICCHECK_VERSION/staticcheck"
ensure_staticcheck() {
  [ -x "$staticcheck" ] && return 0
  echo "gates: building staticcheck $STATICCHECK_VERSION into $(dirname "$staticcheck")"
  mkdir -p "$(dirname "$staticcheck")"
  GOBIN="$(dirname "$staticcheck")" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
}

go_modules=(cni bench/plugin test/node/images)
gofmt_check() {
  local bad
  bad=$(gofmt -l "${go_modules[@]}")
  [ -z "$bad" ] && return 0
  echo "not gofmt-formatted (run npm run fmt):"
  echo "$bad"
  return 1
}
in_modules() {
  local m rc=0
  for m in "${go_modules[@]}"; do (cd "$m" && "$@") || rc=1; done
  return $rc
}
staticcheck_check() {
  ensure_staticcheck || return 1
  in_modules "$staticcheck" ./...
}
vectors_current() {
  local g rc=0
  for g in test/unit/webhook-core/fixtures/gen-*.mjs; do node "$g" || rc=1; done
  return $rc
}

failed=()
gate() {
  local name=$1; shift
  echo "=== gate $name"
  local start=$SECONDS
  if "$@"; then echo "=== gate $name passed ($((SECONDS - start))s)"; else
    echo "=== gate $name FAILED ($((SECONDS - start))s)"; failed+=("$name")
  fi
}
gate prettier npx prettier --check --log-level warn "src/**/*.ts" "test/**/*.ts" "bench/src/**/*.ts" "soak/**/*.ts" "*.js"
gate gofmt gofmt_check
gate go-vet in_modules go vet ./...
gate staticcheck staticcheck_check
gate typecheck npm run --silent typecheck
gate eslint npx eslint --max-warnings 0 .
gate vectors vectors_current
if [ ${#failed[@]} -gt 0 ]; then
  echo "gates failed: ${failed[*]}"
  exit 1
fi
echo "gates: all passed"
