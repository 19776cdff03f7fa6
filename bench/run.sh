#!/usr/bin/env bash
# npm run bench: the webhook and the CNI plugin against their floors. Writes bench/results.json, bench/results.md and
# bench/latency.svg and prints the table. Needs root for the plugin half (network namespaces, iptables); takes ~5 minutes.
# Bounded to loopback and network namespaces it creates and removes. See docs/bench.md.
#   ASM_BENCH_ONLY=webhook|plugin   run one half (the other is left out of the results)
#   ASM_BENCH_FLOOR_ONLY=1          measure the floors alone (harness check, before the product is built)
#   ASM_BENCH_SKIP_BUILD=1          use dist/ as it is
#   ASM_BENCH_PROFILE=1             start the webhook with --cpu-prof; the profile lands in bench/profiles/
#   ASM_BENCH_CLIENT_CPU / ASM_BENCH_SERVER_CPU   CPUs of load generator and webhook server (default 0 and 1)
#   ASM_BENCH_OUT_DIR               where results.json/.md and latency.svg go (default bench/; bench/.build/ for partial
#                                   and what-if runs, so that those never replace the committed results)
#   ASM_BENCH_NICE                  niceness of everything the bench runs (default -15 as root; 0 = unchanged)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
only=${ASM_BENCH_ONLY:-all}
floor_only=()
[ "${ASM_BENCH_FLOOR_ONLY:-}" = 1 ] && floor_only=(--floor-only)
build=bench/.build
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

if [ "$(id -u)" != 0 ] && [ "$only" != webhook ]; then
  echo "bench: the plugin half needs root (network namespaces, iptables); run as root or set ASM_BENCH_ONLY=webhook" >&2
  exit 1
fi
bash test/setup/system-deps.sh
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
if [ "${ASM_BENCH_SKIP_BUILD:-}" != 1 ] && [ ${#floor_only[@]} -eq 0 ]; then
  echo "bench: building the product (npm run build)" >&2
  npm run --silent build
fi
echo "bench: building the harness" >&2
node_modules/.bin/tsc -p bench/tsconfig.json
(cd bench/plugin && CGO_ENABLED=0 go build -o ../.build/plugin-bench .)

cores=$(nproc)
client_cpu=${ASM_BENCH_CLIENT_CPU:-0}
export ASM_BENCH_SERVER_CPU=${ASM_BENCH_SERVER_CPU:-1}
# Raised priority (root only) for everything the bench starts, servers and floors alike: background work on the machine
# then disturbs the figures far less. ASM_BENCH_NICE=0 turns it off.
prio=()
nice_level=${ASM_BENCH_NICE:--15}
[ "$(id -u)" = 0 ] && [ "$nice_level" != 0 ] && prio=(nice -n "$nice_level")
pin=("${prio[@]}" taskset -c "$client_cpu")
if [ "$cores" -lt 2 ]; then
  echo "bench: only $cores CPU: load generator and server share it (figures are pessimistic)" >&2
  pin=("${prio[@]}"); export ASM_BENCH_SERVER_CPU=0
fi
awk '$1 > 1.0 { printf "bench: warning: load average %s before the run: other work competes for the CPUs, figures will be noisy\n", $1 > "/dev/stderr" }' /proc/loadavg

rm -f "$build/webhook.json" "$build/plugin.json"
status=0
if [ "$only" = all ] || [ "$only" = webhook ]; then
  "${pin[@]}" node "$build/js/bench/src/webhook-bench.js" --out "$build/webhook.json" "${floor_only[@]}" || status=1
fi
if [ "$only" = all ] || [ "$only" = plugin ]; then
  "${prio[@]}" node "$build/js/bench/src/plugin-bench.js" --out "$build/plugin.json" --driver "$build/plugin-bench" "${floor_only[@]}" || status=1
fi
# Partial and what-if runs write their results beside the harness, never over the committed ones.
out_dir=${ASM_BENCH_OUT_DIR:-bench}
if [ -z "${ASM_BENCH_OUT_DIR:-}" ] && { [ "$only" != all ] || [ ${#floor_only[@]} -gt 0 ] || [ -n "${ASM_BENCH_WEBHOOK_LOG_LEVEL:-}${ASM_BENCH_WEBHOOK_NODE_FLAGS:-}${ASM_BENCH_IPTABLES_BACKEND:-}${ASM_BENCH_PLUGIN_BINARY:-}${ASM_BENCH_PROFILE:-}" ]; }; then
  out_dir=$build
  echo "bench: partial or what-if run: results go to $out_dir/ (bench/results.* are left as they are)" >&2
fi
node "$build/js/bench/src/report.js" --webhook "$build/webhook.json" --plugin "$build/plugin.json" --out-dir "$out_dir" \
  --started "$started" --load-start "$load_start"
exit $status
