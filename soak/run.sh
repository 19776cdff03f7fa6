#!/usr/bin/env bash
# npm run soak: the bounded reliability suite (a few minutes). Builds what it runs, then runs soak/main.ts with the
# TypeScript loader tap already ships. Loopback and test-owned network namespaces only; removes what it creates.
# Knobs (env): SOAK_SUITES=webhook-load,webhook-abuse,webhook-tls,plugin,installer  SOAK_LOAD_SECONDS=130
#   SOAK_RATE=<reviews/s, skips the capacity measurement>  SOAK_SKIP_BUILD=1  SOAK_KEEP=1 (keep the scratch dir)
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

bash test/setup/system-deps.sh || exit 1
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund || exit 1
fi
if [ "${SOAK_SKIP_BUILD:-}" != 1 ]; then
  npm run --silent build || { echo "soak: build failed"; exit 1; }
fi

# Many idle connections and 50 concurrent plugin runs need file descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Network namespaces of this run carry its id, and so does the environment of every process it starts: a run
# killed hard is swept here afterwards (only processes and namespaces of this run id, each by its id).
export SOAK_RUN_ID=${SOAK_RUN_ID:-$$}
# a marker no process outside this run can carry
export SOAK_OWNER="soak-$$-$(date +%s%N)"
sweep() {
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$pid" = $$ ] && continue
    if { tr '\0' '\n' < "$p/environ"; } 2>/dev/null | grep -qx "SOAK_OWNER=${SOAK_OWNER}"; then kill -9 "$pid" 2>/dev/null || true; fi
  done
  if [ "$(id -u)" = 0 ] && command -v ip >/dev/null; then
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^asmsoak-${SOAK_RUN_ID}-" || true); do
      ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
      ip netns delete "$ns" 2>/dev/null || true
    done
  fi
}
trap sweep EXIT

# A hard upper bound: the suite stops by itself even if something hangs (default 20 minutes).
timeout --signal=TERM --kill-after=30 "${SOAK_TIMEOUT_SECONDS:-1200}" \
  env TS_NODE_TRANSPILE_ONLY=1 TS_NODE_PROJECT=soak/tsconfig.json \
  node --import @isaacs/ts-node-temp-fork-for-pr-2009/import soak/main.ts
