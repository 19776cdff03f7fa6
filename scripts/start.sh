#!/usr/bin/env bash
# npm start: runs the asm-cni webhook locally on a fresh clone. Installs dependencies when node_modules is missing
# or older than the lockfile, rebuilds the TypeScript when dist/ is missing or older than the sources, generates dev
# certificates into ${ASM_DEV_CERT_DIR:-certs/dev} when there are none, then execs `asm-cni-webhook serve`.
# Any argument is passed to serve (e.g. npm start -- --port 8443); ASM_* variables work as documented.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "start: installing dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
fi

entry=dist/webhook/server/cli.js
if [ ! -f "$entry" ] || [ -n "$(find src tsconfig.json tsconfig.build.json package.json -newer "$entry" -print -quit)" ]; then
  echo "start: building the TypeScript (dist/ is missing or older than src/)" >&2
  npm run --silent build:ts >&2
fi

cert_dir=${ASM_DEV_CERT_DIR:-certs/dev}
if [ -z "${ASM_TLS_CERT:-}" ] && { [ ! -s "$cert_dir/tls.crt" ] || [ ! -s "$cert_dir/tls.key" ] || [ ! -s "$cert_dir/ca.crt" ]; }; then
  bash certs/generate.sh --out "$cert_dir" >&2
fi
# The dev CA, for the CA expiry metric; only with the dev certificate it issued.
[ -z "${ASM_TLS_CERT:-}" ] && export ASM_TLS_CA=${ASM_TLS_CA:-$cert_dir/ca.crt}
export ASM_TLS_CERT=${ASM_TLS_CERT:-$cert_dir/tls.crt}
export ASM_TLS_KEY=${ASM_TLS_KEY:-$cert_dir/tls.key}
echo "start: serving with $ASM_TLS_CERT (CA: $cert_dir/ca.crt); try:" >&2
echo "  curl --cacert $cert_dir/ca.crt https://localhost:${ASM_WEBHOOK_PORT:-9443}/readyz" >&2
# V8's young generation grows to 2 x 16 MiB under a steady request load; 4 MiB semi-spaces keep the resident size
# about 20 MB lower (under 100 MB after 100k reviews) with no measurable throughput cost. NODE_OPTIONS may override.
exec node --max-semi-space-size=4 "$entry" serve "$@"
